"""Coordinate systems: the one parser of CRS names, GCJ-02/BD-09, and metric zones.

Everything else in gisgrid names a CRS through :func:`parse_crs` and brings
lon/lat to WGS84 through :func:`to_wgs84` (points) or :func:`to_crs` (layers).
"""

from gisgrid.crs.names import CGCS2000, WGS84, InputCRS, off_the_map, parse_crs, to_crs, unshift
from gisgrid.crs.zones import gk_zone_crs, local_crs, metric_crs, utm_zone_crs

__all__ = [
    "CGCS2000",
    "WGS84",
    "InputCRS",
    "gk_zone_crs",
    "local_crs",
    "metric_crs",
    "off_the_map",
    "parse_crs",
    "to_crs",
    "unshift",
    "utm_zone_crs",
]
