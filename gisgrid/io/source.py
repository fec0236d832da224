"""Read an input file of any supported format into a GeoDataFrame.

Formats: GeoPackage, GeoJSON, Shapefile, FlatGeobuf (through pyogrio/GDAL),
GeoParquet (pyarrow), CSV points with lon/lat columns, and OpenStreetMap PBF
(GDAL's OSM driver), from which buildings, roads, barriers and water are taken
with their OSM tags turned into gisgrid fields.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow
import pyogrio
import shapely

from gisgrid._errors import InputError, argument

__all__ = ["read_source"]

logger = logging.getLogger(__name__)

_LON_NAMES = ("lon", "lng", "longitude", "经度", "x")
_LAT_NAMES = ("lat", "latitude", "纬度", "y")


def read_source(
    path: str | Path,
    *,
    layer: str,
    source_layer: str | None = None,
    lon_col: str | None = None,
    lat_col: str | None = None,
    encoding: str | None = None,
) -> gpd.GeoDataFrame:
    """Read one input file for a gisgrid layer.

    Parameters
    ----------
    path
        The file.
    layer
        The gisgrid layer it will become (selects what to take from OSM PBF).
    source_layer
        The layer inside a multi-layer file (GeoPackage); required when it has several.
    lon_col, lat_col
        CSV coordinate columns; guessed from common names when None.
    encoding
        The text encoding of a Shapefile's DBF or a CSV; by default a ``.cpg`` file
        says, else UTF-8 when the bytes are UTF-8, else GB18030 (which reads GBK).

    Returns
    -------
    geopandas.GeoDataFrame
        With the file's CRS (None for CSV: declare it with ``--crs``). Z and M are
        dropped and curves linearised; ``attrs["notes"]`` says what was done.

    Raises
    ------
    InputError
        For a missing, unreadable or unsupported file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input file {path} does not exist")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the file in it to import")
    if encoding is not None:
        _check_encoding(encoding)
    suffix = path.suffix.lower()
    try:
        if suffix in (".pbf", ".osm"):
            return read_osm(path, layer=layer)
        if suffix in (".parquet", ".geoparquet"):
            return gpd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return _read_csv_points(path, lon_col=lon_col, lat_col=lat_col, encoding=encoding)
        return _read_vector(path, source_layer=source_layer, encoding=encoding)
    except InputError:
        raise
    except pd.errors.ParserError as exc:
        raise InputError(f"cannot read {path.name} as a table: {exc}; fix that line") from exc
    except (
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
        OSError,
        ValueError,
    ) as exc:
        raise InputError(
            f"cannot read {path.name}: {exc} (formats: GeoPackage, GeoJSON, Shapefile, "
            "FlatGeobuf, GeoParquet, CSV, OSM PBF)"
        ) from exc


def _check_encoding(encoding: str) -> None:
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(
            f"unknown {argument('encoding')} {encoding!r}: use utf-8, gbk or gb18030"
        ) from None


def _read_vector(path: Path, *, source_layer: str | None, encoding: str | None) -> gpd.GeoDataFrame:
    """A GDAL-readable file: the one layer (or the named one), 2D and linear."""
    notes: list[str] = []
    if path.suffix.lower() == ".shp":
        encoding = encoding or _dbf_encoding(path, notes)
    layers = pyogrio.list_layers(path)
    if source_layer is None and len(layers) > 1:
        names = ", ".join(str(name) for name, _ in layers)
        raise InputError(
            f"{path.name} holds {len(layers)} layers ({names}); name one with "
            f"{argument('source_layer')}"
        )
    info = pyogrio.read_info(path, layer=source_layer, encoding=encoding)
    if info.get("geometry_type") in (None, "None"):
        raise InputError(f"{path.name} has no geometry column; give a layer with geometries")
    kind = str(info["geometry_type"])
    options = {"layer": source_layer, "encoding": encoding, "on_invalid": "fix"}
    try:
        frame = _decoded(pyogrio.read_dataframe(path, use_arrow=True, **options))
    except NotImplementedError:  # curves: GDAL's own reader linearises them
        frame = pyogrio.read_dataframe(path, use_arrow=False, **options)
        notes.append(f"{kind} geometries: curves linearised")
    except pyarrow.ArrowException:  # text that is not UTF-8 (a forced encoding): GDAL's
        try:
            frame = pyogrio.read_dataframe(path, use_arrow=False, **options)
        except UnicodeError as exc:
            raise InputError(
                f"the text of {path.name} is not {encoding or 'UTF-8'}; give its encoding "
                f"with {argument('encoding')} (gbk, gb18030, utf-8)"
            ) from exc
    if " M" in kind or kind.endswith("M") or shapely.has_z(frame.geometry.values).any():
        frame = frame.set_geometry(shapely.force_2d(frame.geometry.values), crs=frame.crs)
        notes.append("Z and M dropped (gisgrid works in 2D)")
    frame.attrs["notes"] = notes
    return frame


def _decoded(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The frame with its text turned into Python strings now, where Arrow fails on bytes
    that are not UTF-8 (it would fail later, at the first use)."""
    for column in frame.columns:
        if column != frame.geometry.name and pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].to_numpy(dtype=object)
    return frame


def _dbf_encoding(path: Path, notes: list[str]) -> str | None:
    """A Shapefile's text encoding: its ``.cpg`` (GDAL reads that), else UTF-8 when the
    DBF's bytes are UTF-8, else GB18030 (the usual file from an office: GBK, no .cpg)."""
    dbf = next(
        (path.with_suffix(s) for s in (".dbf", ".DBF") if path.with_suffix(s).exists()), None
    )
    if dbf is None:
        raise InputError(
            f"{path.name} has no .dbf beside it: a Shapefile's attributes (ids, floors, "
            "names) are in that file; copy all of its files (.shp .shx .dbf .prj .cpg)"
        )
    if any(path.with_suffix(s).exists() for s in (".cpg", ".CPG")):
        return None
    data = dbf.read_bytes()
    header = int.from_bytes(data[8:10], "little") if len(data) >= 10 else 0
    try:
        data[header:].decode("utf-8")
        return None
    except UnicodeDecodeError:
        notes.append(f"{dbf.name} read as GB18030 (GBK): it has no .cpg and is not UTF-8")
        return "gb18030"


def _read_csv_points(
    path: Path, *, lon_col: str | None, lat_col: str | None, encoding: str | None
) -> gpd.GeoDataFrame:
    table, notes = _read_csv(path, encoding)
    lon_col = lon_col or _guess(table.columns, _LON_NAMES)
    lat_col = lat_col or _guess(table.columns, _LAT_NAMES)
    if lon_col is None or lat_col is None or lon_col not in table or lat_col not in table:
        raise InputError(
            f"{path} needs longitude and latitude columns; name them with "
            f"{argument('lon_col')} and {argument('lat_col')} "
            f"(columns are: {', '.join(table.columns)})"
        )
    lon, lat = _number(table[lon_col], notes), _number(table[lat_col], notes)
    points = gpd.points_from_xy(lon, lat)
    points[(lon.isna() | lat.isna()).to_numpy()] = None  # rejected later as empty geometry
    frame = gpd.GeoDataFrame(table.drop(columns=[lon_col, lat_col]), geometry=points, crs=None)
    frame.attrs["notes"] = list(dict.fromkeys(notes))
    return frame


def _read_csv(path: Path, encoding: str | None) -> tuple[pd.DataFrame, list[str]]:
    """The table as text, its separator sniffed (``,`` ``;`` tab), UTF-8 or else GB18030."""
    notes: list[str] = []
    raw = path.read_bytes()
    if encoding is None:
        try:
            raw.decode("utf-8-sig")
            encoding = "utf-8-sig"
        except UnicodeDecodeError:
            encoding = "gb18030"
            notes.append(f"{path.name} read as GB18030 (GBK): it is not UTF-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path.name} is not {encoding} text ({exc.reason} at byte {exc.start}); give "
            f"its encoding with {argument('encoding')}"
        ) from None
    first = text.splitlines()[0] if text.strip() else ""
    sep = max((",", ";", "\t"), key=first.count)
    table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=sep)
    return table, notes


def _number(column: pd.Series, notes: list[str]) -> pd.Series:
    """Numbers of a text column; a decimal comma (113,15) is read as a point."""
    comma = column.str.fullmatch(r"\s*-?\d+,\d+\s*")
    if comma.any():
        notes.append(f"{column.name}: decimal commas read as decimal points")
        column = column.where(~comma, column.str.replace(",", ".", regex=False))
    return pd.to_numeric(column, errors="coerce")


def _guess(columns: pd.Index, names: tuple[str, ...]) -> str | None:
    lowered = {str(c).strip().lower(): str(c) for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


# --- OpenStreetMap -----------------------------------------------------------------

_ROAD_CLASS = {
    **dict.fromkeys(
        ("motorway", "trunk", "primary", "motorway_link", "trunk_link", "primary_link"), "arterial"
    ),
    **dict.fromkeys(("secondary", "tertiary", "secondary_link", "tertiary_link"), "secondary"),
    **dict.fromkeys(("residential", "unclassified", "living_street", "service", "road"), "local"),
    **dict.fromkeys(("footway", "path", "pedestrian", "cycleway", "steps", "track"), "path"),
}
_BUILDING_KIND = {
    **dict.fromkeys(
        (
            "apartments",
            "residential",
            "house",
            "detached",
            "terrace",
            "semidetached_house",
            "dormitory",
            "bungalow",
            "yes",
        ),
        "residential",
    ),
    **dict.fromkeys(("school", "kindergarten", "university", "college"), "school"),
    **dict.fromkeys(("hospital", "clinic"), "hospital"),
    **dict.fromkeys(("industrial", "office", "commercial", "warehouse", "factory"), "enterprise"),
    **dict.fromkeys(("retail", "supermarket"), "market"),
    **dict.fromkeys(("kiosk", "shop"), "shop"),
}


def _tag(other_tags: pd.Series, key: str) -> pd.Series:
    """One key of GDAL's hstore-like ``other_tags`` column."""
    pattern = re.compile(rf'"{re.escape(key)}"=>"((?:[^"\\]|\\.)*)"')
    return other_tags.fillna("").map(lambda s: m.group(1) if (m := pattern.search(s)) else None)


def read_osm(path: Path, *, layer: str) -> gpd.GeoDataFrame:
    """Read buildings, roads, barriers or water from an OSM PBF file.

    Parameters
    ----------
    path
        An ``.osm.pbf`` (or ``.osm``) file.
    layer
        ``buildings`` (floors from ``building:levels``, kind from ``building``),
        ``roads`` (``road_class`` from ``highway``), ``barriers`` (waterways and
        walls) or ``water`` (natural=water areas).

    Returns
    -------
    geopandas.GeoDataFrame
        In WGS84, with gisgrid field names.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GDAL notes on unclosed rings
        if layer == "buildings":
            raw = pyogrio.read_dataframe(
                path, layer="multipolygons", where="building IS NOT NULL", on_invalid="fix"
            )
            way = raw["osm_way_id"].fillna("").astype(str)
            rel = raw["osm_id"].fillna("").astype(str)
            levels = pd.to_numeric(_tag(raw["other_tags"], "building:levels"), errors="coerce")
            street = _tag(raw["other_tags"], "addr:street").fillna("")
            number = _tag(raw["other_tags"], "addr:housenumber").fillna("")
            return gpd.GeoDataFrame(
                {
                    "building_id": np.where(way != "", "w" + way, "r" + rel),
                    "kind": raw["building"].map(_BUILDING_KIND).fillna("public"),
                    "floors": levels.round().astype("Int64"),
                    "address": (street + number).str.strip(),
                    "name": raw["name"].fillna(""),
                },
                geometry=raw.geometry.values,
                crs=raw.crs,
            )
        lines = pyogrio.read_dataframe(path, layer="lines", on_invalid="fix")
        if layer == "roads":
            roads = lines[lines["highway"].isin(list(_ROAD_CLASS))]
            return gpd.GeoDataFrame(
                {
                    "road_id": "w" + roads["osm_id"].astype(str),
                    "road_class": roads["highway"].map(_ROAD_CLASS),
                    "name": roads["name"].fillna(""),
                },
                geometry=roads.geometry.values,
                crs=lines.crs,
            )
        if layer == "barriers":
            water = lines["waterway"].isin(["river", "stream", "canal"])
            wall = lines["barrier"].isin(["wall", "city_wall", "retaining_wall"])
            bar = lines[water | wall]
            return gpd.GeoDataFrame(
                {
                    "barrier_id": "w" + bar["osm_id"].astype(str),
                    "kind": np.where(bar["waterway"].notna(), "river", "wall"),
                    "name": bar["name"].fillna(""),
                },
                geometry=bar.geometry.values,
                crs=lines.crs,
            )
        if layer == "water":
            raw = pyogrio.read_dataframe(
                path, layer="multipolygons", where="natural = 'water'", on_invalid="fix"
            )
            return gpd.GeoDataFrame(
                {
                    "water_id": "w" + raw["osm_way_id"].fillna(raw["osm_id"]).astype(str),
                    "name": raw["name"].fillna(""),
                },
                geometry=raw.geometry.values,
                crs=raw.crs,
            )
    raise InputError(f"OSM files provide buildings, roads, barriers or water, not {layer!r}")
