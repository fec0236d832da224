"""The metric CRS a workspace uses: a CGCS2000 3-degree Gauss–Krüger zone.

Official Chinese data is CGCS2000 (EPSG:4490). Metric work uses a CGCS2000
3-degree Gauss–Krüger zone without zone prefix (EPSG:4534–4554, central
meridians 75°E–135°E, false easting 500 000 m). EPSG gives those CRSs
northing-first, so every transformer here is built with ``always_xy=True``.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyproj

from gisgrid._errors import CRSError, argument
from gisgrid.crs.names import CGCS2000

__all__ = ["gk_zone_crs", "local_crs"]

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


def local_crs(frame: gpd.GeoDataFrame) -> pyproj.CRS:
    """The Gauss–Krüger zone for the centre of a layer's extent.

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
    minx, _, maxx, _ = frame.to_crs(CGCS2000).total_bounds
    return gk_zone_crs((minx + maxx) / 2)
