"""Read an input file of any supported format into a GeoDataFrame.

Formats: GeoPackage, GeoJSON, Shapefile, FlatGeobuf (through pyogrio/GDAL),
GeoParquet (pyarrow), CSV points with lon/lat columns, and OpenStreetMap PBF
(GDAL's OSM driver), from which buildings, roads, barriers and water are taken
with their OSM tags turned into gisgrid fields.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

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
) -> gpd.GeoDataFrame:
    """Read one input file for a gisgrid layer.

    Parameters
    ----------
    path
        The file.
    layer
        The gisgrid layer it will become (selects what to take from OSM PBF).
    source_layer
        The layer inside a multi-layer file (GeoPackage); the first when None.
    lon_col, lat_col
        CSV coordinate columns; guessed from common names when None.

    Returns
    -------
    geopandas.GeoDataFrame
        With the file's CRS (None for CSV: declare it with ``--crs``).

    Raises
    ------
    InputError
        For a missing, unreadable or unsupported file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".pbf", ".osm"):
            return read_osm(path, layer=layer)
        if suffix in (".parquet", ".geoparquet"):
            return gpd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return _read_csv_points(path, lon_col=lon_col, lat_col=lat_col)
        return pyogrio.read_dataframe(path, layer=source_layer, use_arrow=True, on_invalid="fix")
    except InputError:
        raise
    except (
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
        OSError,
        ValueError,
    ) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def _read_csv_points(path: Path, *, lon_col: str | None, lat_col: str | None) -> gpd.GeoDataFrame:
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    lon_col = lon_col or _guess(table.columns, _LON_NAMES)
    lat_col = lat_col or _guess(table.columns, _LAT_NAMES)
    if lon_col is None or lat_col is None or lon_col not in table or lat_col not in table:
        raise InputError(
            f"{path} needs longitude and latitude columns; name them with "
            f"{argument('lon_col')} and {argument('lat_col')} "
            f"(columns are: {', '.join(table.columns)})"
        )
    lon = pd.to_numeric(table[lon_col], errors="coerce")
    lat = pd.to_numeric(table[lat_col], errors="coerce")
    points = gpd.points_from_xy(lon, lat)
    points[(lon.isna() | lat.isna()).to_numpy()] = None  # rejected later as empty geometry
    return gpd.GeoDataFrame(table.drop(columns=[lon_col, lat_col]), geometry=points, crs=None)


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
    **dict.fromkeys(("retail", "supermarket", "kiosk"), "market"),
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
