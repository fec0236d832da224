"""What coordinates are in: the one parser of CRS names and the one way to WGS84.

Inputs, lookups and the service all name a CRS through :func:`parse_crs`:
``wgs84``, ``cgcs2000``, ``gcj02`` (Amap, Tencent), ``bd09`` (Baidu), case,
hyphens and underscores ignored, or anything PROJ understands. Web-map
coordinates in GCJ-02 or BD-09 are not known to PROJ, so they are first brought
back to WGS84 by :mod:`gisgrid.crs.gcj02`. CGCS2000 and WGS84 agree to a few
centimetres, well inside the metre-level accuracy of governance data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import ArrayLike

from gisgrid._errors import CRSError, argument
from gisgrid.crs import gcj02

__all__ = [
    "CGCS2000",
    "CRS_NAMES",
    "WGS84",
    "InputCRS",
    "crs_key",
    "off_the_map",
    "parse_crs",
    "shift_geometry",
    "to_crs",
    "to_wgs84",
    "unshift",
]

logger = logging.getLogger(__name__)

CGCS2000 = pyproj.CRS.from_epsg(4490)
WGS84 = pyproj.CRS.from_epsg(4326)

Shift = Literal["gcj02", "bd09"]

_ALIASES: dict[str, tuple[pyproj.CRS, Shift | None]] = {
    "wgs84": (WGS84, None),
    "cgcs2000": (CGCS2000, None),
    "gcj02": (WGS84, "gcj02"),
    "bd09": (WGS84, "bd09"),
}
CRS_NAMES = tuple(_ALIASES)
"""The CRS names gisgrid knows besides PROJ's own (EPSG codes, WKT)."""


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


def crs_key(text: str) -> str:
    """A CRS name as gisgrid compares it: case, spaces, hyphens and underscores ignored
    (``GCJ-02``, ``gcj_02`` and ``gcj02`` are one).

    Examples
    --------
    >>> crs_key(" GCJ-02 ")
    'gcj02'
    """
    return text.strip().lower().replace("-", "").replace("_", "")


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
    key = crs_key(text)
    if key in _ALIASES:
        crs, shift = _ALIASES[key]
        return InputCRS(crs, shift)
    fix = "use wgs84, cgcs2000, gcj02, bd09 or an EPSG code such as EPSG:4490"
    try:
        crs = pyproj.CRS.from_user_input(int(key) if key.isdigit() else text)
    except pyproj.exceptions.CRSError as exc:
        raise CRSError(f"unknown CRS {text!r} ({argument('crs')}): {fix}") from exc
    earth = crs.ellipsoid is not None and abs(crs.ellipsoid.semi_major_metre - 6_378_137) < 5e4
    if not earth:  # "mars2000" is a CRS to PROJ
        raise CRSError(f"{argument('crs')} {text!r} is {crs.name}, not a CRS on Earth: {fix}")
    return InputCRS(crs)


def off_the_map(frame: gpd.GeoDataFrame, crs: pyproj.CRS | None) -> pd.Series:
    """Why each row's coordinates cannot be in ``crs`` (NA where they can): outside
    longitude/latitude ranges for a geographic CRS (saying when swapping them would fit),
    outside the CRS's area of use otherwise.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> f = gpd.GeoDataFrame(geometry=[shapely.Point(113.1, 27.8), shapely.Point(27.8, 113.1)])
    >>> off_the_map(f, WGS84).isna().tolist()
    [True, False]
    """
    out = pd.Series(pd.NA, index=frame.index, dtype="object")
    if crs is None or frame.empty:
        return out
    box = shapely.bounds(frame.geometry.values)  # minx, miny, maxx, maxy; NaN when empty
    known = np.isfinite(box).all(axis=1)
    name = crs.to_string()
    if crs.is_geographic:
        fits = lambda x0, y0, x1, y1: (x0 >= -180) & (x1 <= 180) & (y0 >= -90) & (y1 <= 90)  # noqa: E731
        bad = known & ~fits(*box.T)
        swapped = bad & fits(box[:, 1], box[:, 0], box[:, 3], box[:, 2])
        out[bad] = (
            f"outside longitude −180…180 / latitude −90…90 of {name}: not lon/lat, give the "
            f"right {argument('crs')}"
        )
        out[swapped] = (
            f"outside latitude −90…90 of {name}: longitude and latitude look swapped; swap "
            "the columns (x is longitude)"
        )
        return out
    area = crs.area_of_use
    if area is None:
        return out
    centre = shapely.centroid(shapely.box(*box[known].T)) if known.any() else np.array([])
    lon, lat = np.full(len(frame), np.nan), np.full(len(frame), np.nan)
    if known.any():
        to_lonlat = pyproj.Transformer.from_crs(crs, WGS84, always_xy=True)
        lon[known], lat[known] = to_lonlat.transform(
            shapely.get_x(centre), shapely.get_y(centre), errcheck=False
        )
    margin = 2.0  # degrees: data a little beyond a zone's edge is still that zone's
    inside = (
        (lon >= area.west - margin)
        & (lon <= area.east + margin)
        & (lat >= area.south - margin)
        & (lat <= area.north + margin)
    )
    out[known & ~inside] = (
        f"outside the area of use of {name} ({area.name}): swapped axes or the wrong "
        f"{argument('crs')}"
    )
    return out


def _unshift_xy(lon: ArrayLike, lat: ArrayLike, shift: Shift) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 lon/lat from GCJ-02 or BD-09 lon/lat (BD-09 goes through GCJ-02)."""
    if shift == "bd09":
        lon, lat = gcj02.bd09_to_gcj02(lon, lat)
    return gcj02.gcj02_to_wgs84(lon, lat)


def to_wgs84(lon: ArrayLike, lat: ArrayLike, crs: InputCRS | str) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude in WGS84 from coordinates in any CRS.

    Parameters
    ----------
    lon, lat
        Coordinates (x, y for a projected CRS).
    crs
        An :class:`InputCRS` or any name :func:`parse_crs` reads.

    Returns
    -------
    tuple of numpy.ndarray
        WGS84 longitude and latitude (CGCS2000 lon/lat is taken as it is).

    Examples
    --------
    >>> lon, lat = to_wgs84([113.1], [27.9], "GCJ-02")
    >>> round(float(lon[0]), 4), round(float(lat[0]), 4)
    (113.0941, 27.9031)
    """
    source = crs if isinstance(crs, InputCRS) else parse_crs(crs)
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if source.shift:
        return _unshift_xy(x, y, source.shift)
    if source.crs.equals(WGS84) or source.crs.equals(CGCS2000):
        return x, y
    to = pyproj.Transformer.from_crs(source.crs, WGS84, always_xy=True)
    out_x, out_y = to.transform(x, y)
    return np.asarray(out_x, dtype=float), np.asarray(out_y, dtype=float)


def shift_geometry(geometry: np.ndarray, shift: Shift) -> np.ndarray:
    """Add a GCJ-02 or BD-09 offset to WGS84 lon/lat geometries (the inverse of
    :func:`unshift`): to draw them on Amap, Tencent (GCJ-02) or Baidu (BD-09) maps."""
    forward = gcj02.wgs84_to_gcj02 if shift == "gcj02" else gcj02.wgs84_to_bd09

    def _apply(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(forward(coords[:, 0], coords[:, 1]))

    return shapely.transform(np.asarray(geometry), _apply)


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

    def _apply(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(_unshift_xy(coords[:, 0], coords[:, 1], shift))

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
                f"the input has no CRS; declare it with {argument('crs')} "
                "(wgs84, cgcs2000, gcj02, bd09 or an EPSG code)"
            )
        return frame.to_crs(target)
    if frame.crs is not None and not source.shift and not frame.crs.equals(source.crs):
        logger.warning("input claims %s; using the declared %s", frame.crs.to_string(), source)
    out = frame.set_crs(source.crs, allow_override=True)
    if source.shift:
        out = out.set_geometry(unshift(out.geometry.values, source.shift), crs=source.crs)
    return out.to_crs(target)
