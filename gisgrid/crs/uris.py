"""CRSs by their OGC URIs, for the service's ``crs`` and ``bbox-crs`` (OGC API –
Features Part 2), and geometries to and from them.

The service holds its layers in WGS84 lon/lat (CRS84). It offers CRS84, EPSG:4326,
EPSG:4490 (CGCS2000), EPSG:3857 and the workspace's metric zone, and two CRSs no
registry has, named here by URNs: GCJ-02 (Amap, Tencent) and BD-09 (Baidu), lon/lat
with the web-map offsets of :mod:`gisgrid.crs.gcj02`. Coordinates are in each CRS's
own axis order, as Part 2 requires: EPSG:4326 and EPSG:4490 are latitude first, a
Gauss–Krüger zone northing first; CRS84, GCJ-02 and BD-09 are longitude first.

Examples
--------
>>> c = parse_uri("EPSG:4326", offered(None))
>>> c.uri, c.lat_first
('http://www.opengis.net/def/crs/EPSG/0/4326', True)
>>> parse_uri("gcj02", offered(None)).uri
'urn:gisgrid:def:crs:GCJ-02'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyproj
import shapely

from gisgrid._errors import CRSError
from gisgrid.crs.names import WGS84, InputCRS, Shift, crs_key, shift_geometry, to_wgs84

__all__ = [
    "CRS84",
    "ServedCRS",
    "from_wgs84",
    "offered",
    "parse_uri",
    "spellings",
    "to_wgs84_geometry",
]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
_SHIFTED: dict[str, Shift] = {
    "urn:gisgrid:def:crs:GCJ-02": "gcj02",
    "urn:gisgrid:def:crs:BD-09": "bd09",
}


@dataclass(frozen=True)
class ServedCRS:
    """A CRS the service offers.

    Attributes
    ----------
    uri
        Its identifier in responses (``Content-Crs``, a collection's ``crs`` list).
    crs
        What PROJ knows of it (WGS84 for GCJ-02 and BD-09).
    shift
        The web-map offset on top of ``crs``, if any.
    lat_first
        Whether the first coordinate is latitude (or northing).
    """

    uri: str
    crs: pyproj.CRS
    shift: Shift | None = None
    lat_first: bool = False

    @property
    def is_crs84(self) -> bool:
        return self.uri == CRS84


def _epsg(code: int) -> ServedCRS:
    crs = pyproj.CRS.from_epsg(code)
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return ServedCRS(f"{_EPSG}{code}", crs, lat_first=first in ("north", "south"))


def offered(zone: pyproj.CRS | None) -> list[ServedCRS]:
    """The CRSs the service offers, CRS84 first; ``zone`` is the workspace's metric CRS."""
    out = [ServedCRS(CRS84, WGS84), _epsg(4326), _epsg(4490), _epsg(3857)]
    code = zone.to_epsg() if zone is not None else None
    if code is not None and code not in (4326, 4490, 3857):
        out.append(_epsg(code))
    out += [ServedCRS(uri, WGS84, shift) for uri, shift in _SHIFTED.items()]
    return out


def _key(text: str) -> str:
    """A CRS name reduced to compare: URI, ``EPSG:n``, ``n``, ``gcj02``/``GCJ-02`` alike."""
    t = text.strip().strip("<>").strip()
    low = t.lower()
    if low in ("crs84", "ogc:crs84", CRS84.lower()):
        return CRS84
    for prefix in (_EPSG.lower(), "epsg:", "urn:ogc:def:crs:epsg::"):
        if low.startswith(prefix) and low[len(prefix) :].isdigit():
            return f"{_EPSG}{int(low[len(prefix) :])}"
    if low.isdigit():
        return f"{_EPSG}{int(low)}"
    plain = crs_key(low)
    for uri in _SHIFTED:
        if plain in (uri.lower().replace("-", ""), uri.rsplit(":", 1)[1].lower().replace("-", "")):
            return uri
    return t


def parse_uri(text: str | None, choices: list[ServedCRS], *, name: str = "crs") -> ServedCRS:
    """The offered CRS ``text`` names (its URI, ``EPSG:n``, or ``gcj02``/``bd09``);
    CRS84 when ``text`` is None (the parameter was not given).

    Raises
    ------
    CRSError
        Naming the parameter and the CRSs offered, when ``text`` is none of them.
    """
    key = CRS84 if text is None else _key(text)
    for c in choices:
        if c.uri == key:
            return c
    short = ", ".join(c.uri.rsplit("/", 1)[-1].rsplit(":", 1)[-1] for c in choices)
    raise CRSError(
        f"{name} {text!r} is not offered; use one of {short} "
        f"(as URIs, e.g. {_EPSG}4490, or EPSG:4490, gcj02, bd09)"
    )


def spellings(choices: list[ServedCRS]) -> list[str]:
    """Each offered CRS as a URI and in its short form (``EPSG:4490``, ``gcj02``): the
    values a ``crs`` parameter documents."""
    out = []
    for c in choices:
        tail = c.uri.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        short = f"EPSG:{tail}" if tail.isdigit() else tail.lower().replace("-", "")
        out += [c.uri, short]
    return out


def _swap(geoms: np.ndarray) -> np.ndarray:
    return shapely.transform(geoms, lambda xy: xy[:, ::-1])


def from_wgs84(geoms: np.ndarray, target: ServedCRS) -> np.ndarray:
    """WGS84 lon/lat geometries in ``target``, in its axis order."""
    geoms = np.asarray(geoms, dtype=object)
    if target.is_crs84:
        return geoms
    if target.shift is not None:
        return shift_geometry(geoms, target.shift)
    out = geoms
    if not target.crs.equals(WGS84):
        to = pyproj.Transformer.from_crs(WGS84, target.crs, always_xy=True)
        out = shapely.transform(geoms, lambda xy: np.column_stack(to.transform(xy[:, 0], xy[:, 1])))
    return _swap(out) if target.lat_first else out


def to_wgs84_geometry(geom: shapely.Geometry, source: ServedCRS) -> shapely.Geometry:
    """A geometry given in ``source`` (its axis order) in WGS84 lon/lat, by
    :func:`gisgrid.crs.names.to_wgs84`; in a projected CRS its edges are densified first,
    so that a box keeps its true outline."""
    if source.is_crs84:
        return geom
    if source.lat_first:
        geom = _swap(np.asarray([geom]))[0]
    if not source.crs.is_geographic:
        minx, miny, maxx, maxy = geom.bounds
        geom = shapely.segmentize(geom, max(maxx - minx, maxy - miny) / 64 or 1.0)
    where = InputCRS(source.crs, source.shift)
    return shapely.transform(geom, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], where)))
