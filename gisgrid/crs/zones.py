"""The metric CRS a workspace uses: a CGCS2000 3-degree Gauss–Krüger zone in China,
the UTM zone of the data elsewhere.

Official Chinese data is CGCS2000 (EPSG:4490). Metric work uses a CGCS2000
3-degree Gauss–Krüger zone without zone prefix (EPSG:4534–4554, central
meridians 75°E–135°E, false easting 500 000 m), where the data lies inside
that zone's EPSG area of use. Anywhere else (Helsinki, Paris, Prague) a far
Chinese zone would make areas tens of percent wrong, so the WGS 84 UTM zone of
the data's centre is taken instead, as PROJ's database names it. EPSG gives
the Gauss–Krüger CRSs northing-first, so every transformer here is built with
``always_xy=True``.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyproj
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

from gisgrid._errors import CRSError, argument
from gisgrid.crs.names import CGCS2000

__all__ = ["gk_zone_crs", "local_crs", "metric_crs", "utm_zone_crs"]

_FIRST_GK_EPSG, _FIRST_CM, _LAST_CM = 4534, 75, 135


def gk_zone_crs(lon: float) -> pyproj.CRS:
    """The CGCS2000 3-degree Gauss–Krüger CRS whose zone holds ``lon``.

    Parameters
    ----------
    lon
        Longitude in degrees east.

    Returns
    -------
    pyproj.CRS
        One of EPSG:4534 (75°E) … EPSG:4554 (135°E).

    Examples
    --------
    >>> gk_zone_crs(113.1).to_epsg()  # Zhuzhou: central meridian 114°E
    4547
    """
    if not np.isfinite(lon):
        raise CRSError(f"cannot choose a Gauss–Krüger zone for longitude {lon!r}")
    cm = int(np.clip(3 * np.floor(lon / 3 + 0.5), _FIRST_CM, _LAST_CM))  # zone [cm-1.5, cm+1.5)
    return pyproj.CRS.from_epsg(_FIRST_GK_EPSG + (cm - _FIRST_CM) // 3)


def utm_zone_crs(lon: float, lat: float) -> pyproj.CRS:
    """The WGS 84 UTM zone holding a point (PROJ's database, with its exceptions).

    Examples
    --------
    >>> utm_zone_crs(2.35, 48.86).to_epsg()  # Paris
    32631
    >>> utm_zone_crs(24.94, 60.17).to_epsg()  # Helsinki
    32635
    """
    if not (np.isfinite(lon) and np.isfinite(lat) and -180 <= lon <= 180 and -80 <= lat <= 84):
        raise CRSError(f"no UTM zone holds ({lon!r}, {lat!r}); give a metric EPSG code")
    found = query_utm_crs_info(
        datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat)
    )
    return pyproj.CRS.from_epsg(found[0].code)


def _in_area(crs: pyproj.CRS, lon: float, lat: float) -> bool:
    area = crs.area_of_use
    return area is not None and area.west <= lon <= area.east and area.south <= lat <= area.north


def metric_crs(text: str) -> pyproj.CRS:
    """A user's metric CRS (``EPSG:3067``, ``3067``): projected, in metres.

    Examples
    --------
    >>> metric_crs("3067").to_epsg()
    3067
    """
    code = text.strip()
    try:
        crs = pyproj.CRS.from_user_input(f"EPSG:{code}" if code.isdigit() else code)
    except pyproj.exceptions.CRSError:
        crs = None
    if crs is None or crs.to_epsg() is None:
        raise CRSError(f"{argument('metric_crs')} takes an EPSG code such as 3067, not {text!r}")
    unit = crs.axis_info[0].unit_name if crs.axis_info else ""
    if not crs.is_projected or unit not in ("metre", "meter"):
        raise CRSError(
            f"{argument('metric_crs')} must be a projected CRS in metres; "
            f"EPSG:{crs.to_epsg()} ({crs.name}) is not"
        )
    return crs


def local_crs(frame: gpd.GeoDataFrame) -> pyproj.CRS:
    """The metric CRS for the centre of a layer's extent: its Gauss–Krüger zone inside
    China, else its UTM zone.

    Parameters
    ----------
    frame
        Any layer with a CRS.

    Returns
    -------
    pyproj.CRS
    """
    if frame.crs is None:
        raise CRSError(
            f"the layer has no CRS; declare one with {argument('crs')} (for example wgs84)"
        )
    minx, miny, maxx, maxy = frame.to_crs(CGCS2000).total_bounds
    lon, lat = (minx + maxx) / 2, (miny + maxy) / 2
    if _FIRST_CM - 1.5 <= lon < _LAST_CM + 1.5:
        zone = gk_zone_crs(lon)
        if _in_area(zone, lon, lat):
            return zone
    return utm_zone_crs(lon, lat)
