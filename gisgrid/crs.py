"""Coordinate systems: what an input is in, and the metric CRS a workspace uses.

Official Chinese data is CGCS2000 (EPSG:4490). Metric work uses a CGCS2000
3-degree Gauss–Krüger zone without zone prefix (EPSG:4534–4554, central
meridians 75°E–135°E, false easting 500 000 m). EPSG gives those CRSs
northing-first, so every transformer here is built with ``always_xy=True``.

Web-map coordinates come in GCJ-02 (Amap, Tencent) or BD-09 (Baidu); PROJ does
not know them, so an input declared as such is first brought back to WGS84 by
:mod:`gisgrid.gcj02`. CGCS2000 and WGS84 agree to a few centimetres, well
inside the metre-level accuracy of governance data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import pyproj
import shapely

from gisgrid import gcj02
from gisgrid._errors import CRSError

__all__ = [
    "CGCS2000",
    "InputCRS",
    "gk_zone_crs",
    "local_crs",
    "parse_crs",
    "to_crs",
    "unshift",
]

logger = logging.getLogger(__name__)

CGCS2000 = pyproj.CRS.from_epsg(4490)
WGS84 = pyproj.CRS.from_epsg(4326)
_FIRST_GK_EPSG, _FIRST_CM, _LAST_CM = 4534, 75, 135

Shift = Literal["gcj02", "bd09"]

_ALIASES: dict[str, tuple[pyproj.CRS, Shift | None]] = {
    "wgs84": (WGS84, None),
    "cgcs2000": (CGCS2000, None),
    "gcj02": (WGS84, "gcj02"),
    "bd09": (WGS84, "bd09"),
}


@dataclass(frozen=True)
class InputCRS:
    """What an input's coordinates are in.

    Attributes
    ----------
    crs
        The CRS PROJ understands (WGS84 for GCJ-02 and BD-09 inputs).
    shift
        ``"gcj02"`` or ``"bd09"`` when coordinates carry a Chinese web-map
        offset on top of ``crs``; None otherwise.
    """

    crs: pyproj.CRS
    shift: Shift | None = None

    def __str__(self) -> str:
        return self.shift or self.crs.to_string()


def parse_crs(text: str) -> InputCRS:
    """Parse a ``--crs`` value.

    Parameters
    ----------
    text
        ``wgs84``, ``cgcs2000``, ``gcj02``, ``bd09`` (case and hyphens ignored),
        or anything PROJ understands: ``EPSG:4547``, ``4547``, a WKT or PROJ
        string.

    Returns
    -------
    InputCRS

    Raises
    ------
    CRSError
        When PROJ does not understand ``text``.

    Examples
    --------
    >>> parse_crs("GCJ-02").shift
    'gcj02'
    >>> parse_crs("4547").crs.to_epsg()
    4547
    """
    key = text.strip().lower().replace("-", "").replace("_", "")
    if key in _ALIASES:
        crs, shift = _ALIASES[key]
        return InputCRS(crs, shift)
    try:
        return InputCRS(pyproj.CRS.from_user_input(int(key) if key.isdigit() else text))
    except pyproj.exceptions.CRSError as exc:
        raise CRSError(
            f"unknown CRS {text!r}: use wgs84, cgcs2000, gcj02, bd09 or an EPSG code "
            "such as EPSG:4490"
        ) from exc


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
        raise CRSError("the layer has no CRS; declare one with --crs (for example --crs wgs84)")
    minx, _, maxx, _ = frame.to_crs(CGCS2000).total_bounds
    return gk_zone_crs((minx + maxx) / 2)


def unshift(geometry: np.ndarray, shift: Shift) -> np.ndarray:
    """Remove a GCJ-02 or BD-09 offset from lon/lat geometries.

    Parameters
    ----------
    geometry
        Shapely geometries in shifted lon/lat.
    shift
        ``"gcj02"`` or ``"bd09"``.

    Returns
    -------
    numpy.ndarray
        The same geometries in WGS84.
    """
    inverse = gcj02.gcj02_to_wgs84 if shift == "gcj02" else gcj02.bd09_to_wgs84

    def _apply(coords: np.ndarray) -> np.ndarray:
        lon, lat = inverse(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(np.asarray(geometry), _apply)


def to_crs(
    frame: gpd.GeoDataFrame, target: pyproj.CRS, *, source: InputCRS | None = None
) -> gpd.GeoDataFrame:
    """Reproject a layer, honouring a declared source CRS and web-map offsets.

    Parameters
    ----------
    frame
        The layer as read.
    target
        The CRS to return.
    source
        What the coordinates really are in. Overrides the CRS the file claims
        (GCJ-02 files usually claim EPSG:4326). Required when the file has none.

    Returns
    -------
    geopandas.GeoDataFrame

    Raises
    ------
    CRSError
        When neither the file nor ``source`` gives a CRS.
    """
    if source is None:
        if frame.crs is None:
            raise CRSError(
                "the input has no CRS; declare it with --crs "
                "(wgs84, cgcs2000, gcj02, bd09 or an EPSG code)"
            )
        return frame.to_crs(target)
    if frame.crs is not None and not source.shift and not frame.crs.equals(source.crs):
        logger.warning("input claims %s; using the declared %s", frame.crs.to_string(), source)
    out = frame.set_crs(source.crs, allow_override=True)
    if source.shift:
        out = out.set_geometry(unshift(out.geometry.values, source.shift), crs=source.crs)
    return out.to_crs(target)
