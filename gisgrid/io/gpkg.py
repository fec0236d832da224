"""A GeoPackage written by SQLite itself: in place, in transactions, with the WAL journal.

This module reads and writes the layers with Python's own SQLite, so that a
command replaces several layers, or updates a few rows, in one SQLite
transaction. (GDAL carries a SQLite of its own: two copies of SQLite in one
process that hold the same file break each other's POSIX locks, so gisgrid
never opens a workspace with GDAL.) Readers never wait for a writer (WAL) and
see the state before the transaction or after it, never a half-written one;
``kill -9`` at any moment leaves one of the two. The file follows the GeoPackage 1.3 encoding
(``gpkg_contents``, ``gpkg_geometry_columns``, standard geometry blobs and the
``gpkg_rtree_index`` extension with its triggers), so QGIS and GDAL open it as
it is.

Examples
--------
>>> import tempfile, pathlib, geopandas as gpd, shapely
>>> path = pathlib.Path(tempfile.mkdtemp()) / "w.gpkg"
>>> frame = gpd.GeoDataFrame({"name": ["叫鸡岭"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4547)
>>> with connect(path) as con, transaction(con):
...     write_layer(con, "communities", frame)
>>> import pyogrio
>>> pyogrio.read_dataframe(path, layer="communities")["name"].tolist()
['叫鸡岭']
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import struct
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

__all__ = [
    "GeoPackage",
    "Session",
    "connect",
    "drop_layer",
    "layer_names",
    "read_layer",
    "transaction",
    "update_rows",
    "write_layer",
    "write_rows",
]

GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
GPKG_USER_VERSION = 10300
BUSY_MS = 60_000  # a writer waits this long for another writer before giving up

_CORE = """
CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY,
  organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL,
  definition TEXT NOT NULL, description TEXT);
CREATE TABLE IF NOT EXISTS gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
  identifier TEXT UNIQUE, description TEXT DEFAULT '',
  last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
CREATE TABLE IF NOT EXISTS gpkg_extensions (
  table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL,
  definition TEXT NOT NULL, scope TEXT NOT NULL,
  CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
"""
_REQUIRED_SRS = [
    ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian"),
    ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic"),
]

# the gpkg_rtree_index extension's triggers (GeoPackage 1.3, annex F.3)
_RTREE_TRIGGERS = """
CREATE TRIGGER "rtree_{t}_{c}_insert" AFTER INSERT ON "{t}"
WHEN (new."{c}" NOT NULL AND NOT ST_IsEmpty(NEW."{c}"))
BEGIN INSERT OR REPLACE INTO "rtree_{t}_{c}" VALUES (NEW."{i}",
  ST_MinX(NEW."{c}"), ST_MaxX(NEW."{c}"), ST_MinY(NEW."{c}"), ST_MaxY(NEW."{c}")); END;
CREATE TRIGGER "rtree_{t}_{c}_update1" AFTER UPDATE OF "{c}" ON "{t}"
WHEN OLD."{i}" = NEW."{i}" AND (NEW."{c}" NOTNULL AND NOT ST_IsEmpty(NEW."{c}"))
BEGIN INSERT OR REPLACE INTO "rtree_{t}_{c}" VALUES (NEW."{i}",
  ST_MinX(NEW."{c}"), ST_MaxX(NEW."{c}"), ST_MinY(NEW."{c}"), ST_MaxY(NEW."{c}")); END;
CREATE TRIGGER "rtree_{t}_{c}_update2" AFTER UPDATE OF "{c}" ON "{t}"
WHEN OLD."{i}" = NEW."{i}" AND (NEW."{c}" IS NULL OR ST_IsEmpty(NEW."{c}"))
BEGIN DELETE FROM "rtree_{t}_{c}" WHERE id = OLD."{i}"; END;
CREATE TRIGGER "rtree_{t}_{c}_update3" AFTER UPDATE ON "{t}"
WHEN OLD."{i}" != NEW."{i}" AND (NEW."{c}" NOTNULL AND NOT ST_IsEmpty(NEW."{c}"))
BEGIN DELETE FROM "rtree_{t}_{c}" WHERE id = OLD."{i}";
  INSERT OR REPLACE INTO "rtree_{t}_{c}" VALUES (NEW."{i}",
  ST_MinX(NEW."{c}"), ST_MaxX(NEW."{c}"), ST_MinY(NEW."{c}"), ST_MaxY(NEW."{c}")); END;
CREATE TRIGGER "rtree_{t}_{c}_update4" AFTER UPDATE ON "{t}"
WHEN OLD."{i}" != NEW."{i}" AND (NEW."{c}" IS NULL OR ST_IsEmpty(NEW."{c}"))
BEGIN DELETE FROM "rtree_{t}_{c}" WHERE id IN (OLD."{i}", NEW."{i}"); END;
CREATE TRIGGER "rtree_{t}_{c}_delete" AFTER DELETE ON "{t}" WHEN old."{c}" NOT NULL
BEGIN DELETE FROM "rtree_{t}_{c}" WHERE id = OLD."{i}"; END;
"""

_HEADER = np.dtype(
    [("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs_id", "<i4"), ("env", "<f8", 4)]
)
GEOMETRY_COLUMN = "geom"
FID = "fid"


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection to a GeoPackage (created when missing), in WAL mode.

    Statements run in autocommit mode; group them with :func:`transaction`.
    """
    con = sqlite3.connect(str(path), timeout=BUSY_MS / 1000, isolation_level=None)
    con.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    for name, fn in _SQL_FUNCTIONS.items():
        con.create_function(name, 1, fn, deterministic=True)
    if con.execute("PRAGMA application_id").fetchone()[0] != GPKG_APPLICATION_ID:
        # before WAL, so the file's own header says GPKG (GDAL reads it from the file)
        con.execute(f"PRAGMA application_id = {GPKG_APPLICATION_ID}")
        con.execute(f"PRAGMA user_version = {GPKG_USER_VERSION}")
    if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        _to_wal(con)
    con.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable at checkpoints, never torn
    if not _has_table(con, "gpkg_contents"):
        with transaction(con):
            for statement in _CORE.split(";"):  # executescript would commit half-way
                if statement.strip():
                    con.execute(statement)
            for row in _REQUIRED_SRS:
                con.execute("INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)", row)
            _srs_id(con, pyproj.CRS.from_epsg(4326))
    return con


def _to_wal(con: sqlite3.Connection) -> None:
    """Switch a GeoPackage (one GDAL wrote, say) to the WAL journal, once and for all.

    The switch needs the file to itself for a moment: retry while readers hold it.
    """
    for attempt in range(50):
        try:
            if con.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
        time.sleep(0.1)
    raise sqlite3.OperationalError("the file stays in its old journal mode; is it read-only?")


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed when the block ends, rolled back if it raises.

    ``BEGIN IMMEDIATE`` takes the write lock at once, so two writers queue up
    instead of one failing half-way.
    """
    if con.in_transaction:  # nested: the outer transaction commits
        yield con
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        if con.in_transaction:  # SQLite may have rolled back already (a full disk, I/O)
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def layer_names(con: sqlite3.Connection) -> list[str]:
    """The layers and tables of the GeoPackage, in the order they were written."""
    rows = con.execute("SELECT table_name FROM gpkg_contents ORDER BY rowid").fetchall()
    return [r[0] for r in rows]


def drop_layer(con: sqlite3.Connection, name: str) -> None:
    """Remove a layer with its spatial index and its entries in the GeoPackage tables."""
    for (table,) in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ?",
        (f"rtree_{name}_%",),
    ).fetchall():
        con.execute(f'DROP TABLE IF EXISTS "{table}"')
    con.execute(f'DROP TABLE IF EXISTS "{name}"')
    for meta in ("gpkg_geometry_columns", "gpkg_extensions", "gpkg_contents"):
        con.execute(f"DELETE FROM {meta} WHERE table_name = ?", (name,))
    if _has_table(con, "gpkg_ogr_contents"):  # GDAL's feature counts, when GDAL made the file
        con.execute("DELETE FROM gpkg_ogr_contents WHERE table_name = ?", (name,))


def write_layer(con: sqlite3.Connection, name: str, frame: pd.DataFrame) -> None:
    """Create (or replace) a layer holding ``frame``: features when it has a geometry,
    an attributes table otherwise."""
    drop_layer(con, name)
    spatial = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns
    attrs = frame.drop(columns=frame.geometry.name) if spatial else frame
    columns = [str(c) for c in attrs.columns]
    types = [_sql_type(attrs[c]) for c in attrs.columns]
    body = ", ".join(f'"{c}" {t}' for c, t in zip(columns, types, strict=True))
    geometry_type = _geometry_type(frame) if spatial else ""
    geom_sql = f', "{GEOMETRY_COLUMN}" {geometry_type}' if spatial else ""
    con.execute(
        f'CREATE TABLE "{name}" ("{FID}" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL'
        f"{geom_sql}{', ' + body if body else ''})"
    )
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if not spatial:
        con.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, last_change) "
            "VALUES (?, 'attributes', ?, ?)",
            (name, name, now),
        )
        write_rows(con, name, frame)
        return
    gframe = frame if isinstance(frame, gpd.GeoDataFrame) else gpd.GeoDataFrame(frame)
    srs = _srs_id(con, gframe.crs)
    bounds = gframe.total_bounds if len(gframe) else np.array([np.nan] * 4)
    con.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, last_change, "
        "min_x, min_y, max_x, max_y, srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?)",
        (name, name, now, *(None if np.isnan(v) else float(v) for v in bounds), srs),
    )
    con.execute(
        "INSERT INTO gpkg_geometry_columns VALUES (?, ?, ?, ?, 0, 0)",
        (name, GEOMETRY_COLUMN, geometry_type, srs),
    )
    write_rows(con, name, gframe)
    _index(con, name)


def write_rows(con: sqlite3.Connection, name: str, frame: pd.DataFrame) -> None:
    """Append rows to a layer, adding the columns it lacks."""
    spatial = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns
    attrs = frame.drop(columns=frame.geometry.name) if spatial else frame
    have = {r[1] for r in con.execute(f'PRAGMA table_info("{name}")').fetchall()}
    for column in attrs.columns:
        if str(column) not in have:
            con.execute(f'ALTER TABLE "{name}" ADD COLUMN "{column}" {_sql_type(attrs[column])}')
    names = [str(c) for c in attrs.columns]
    values: list[Sequence[object]] = [_python_values(attrs[c]) for c in attrs.columns]
    if spatial:
        gframe = frame if isinstance(frame, gpd.GeoDataFrame) else gpd.GeoDataFrame(frame)
        names.append(GEOMETRY_COLUMN)
        values.append(_blobs(gframe.geometry.values, _srs_id(con, gframe.crs)))
    if not len(frame):
        return
    marks = ", ".join("?" * len(names))
    quoted = ", ".join(f'"{n}"' for n in names)
    sql = f'INSERT INTO "{name}" ({quoted}) VALUES ({marks})'
    con.executemany(sql, zip(*values, strict=True) if names else [()] * len(frame))


def update_rows(
    con: sqlite3.Connection, name: str, *, key: str, keys: Sequence[object], values: dict
) -> int:
    """Set ``values`` (column → value) on the rows whose ``key`` is in ``keys``; how many
    rows changed."""
    sets = ", ".join(f'"{c}" = ?' for c in values)
    params = [_python_value(v) for v in values.values()]
    changed = 0
    for k in keys:
        cur = con.execute(
            f'UPDATE "{name}" SET {sets} WHERE "{key}" = ? AND ({_differs(values)})',
            [*params, _python_value(k), *params],
        )
        changed += cur.rowcount
    return changed


def _differs(values: dict) -> str:
    """SQL true when a row's value differs from the one to set (NULL-safe)."""
    return " OR ".join(f'"{c}" IS NOT ?' for c in values)


def _has_table(con: sqlite3.Connection, name: str) -> bool:
    row = con.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _srs_id(con: sqlite3.Connection, crs: pyproj.CRS | None) -> int:
    """The ``srs_id`` of a CRS, added to ``gpkg_spatial_ref_sys`` when new."""
    if crs is None:
        return -1
    crs = pyproj.CRS.from_user_input(crs)
    auth = crs.to_authority()
    if auth is not None and auth[0] == "EPSG":
        org, code = "EPSG", int(auth[1])
        srs_id = code
    else:
        org, code = "NONE", 0
        known = con.execute(
            "SELECT srs_id FROM gpkg_spatial_ref_sys WHERE definition = ?", (crs.to_wkt(),)
        ).fetchone()
        if known:
            return int(known[0])
        srs_id = 100_000 + int(
            con.execute("SELECT COUNT(*) FROM gpkg_spatial_ref_sys").fetchone()[0]
        )
    con.execute(
        "INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
        (crs.name, srs_id, org, code, crs.to_wkt("WKT1_GDAL"), crs.name),
    )
    return srs_id


def _geometry_type(frame: pd.DataFrame) -> str:
    """The layer's geometry type: the one all rows share, else GEOMETRY."""
    geoms = frame.geometry.values if isinstance(frame, gpd.GeoDataFrame) else np.empty(0)
    present = np.asarray(geoms)[~shapely.is_missing(np.asarray(geoms))]
    kinds = set(shapely.get_type_id(present).tolist()) if len(present) else set()
    names = {0: "POINT", 1: "LINESTRING", 3: "POLYGON", 4: "MULTIPOINT"}
    names |= {5: "MULTILINESTRING", 6: "MULTIPOLYGON", 7: "GEOMETRYCOLLECTION"}
    return names[kinds.pop()] if len(kinds) == 1 and next(iter(kinds)) in names else "GEOMETRY"


def _blobs(geoms: np.ndarray, srs_id: int) -> list[bytes | None]:
    """GeoPackage geometry blobs: header (with the XY envelope) and ISO WKB, little endian."""
    geoms = np.asarray(geoms, dtype=object)
    missing = shapely.is_missing(geoms)
    empty = ~missing & shapely.is_empty(geoms)
    wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso", output_dimension=2)
    header = np.zeros(len(geoms), dtype=_HEADER)
    header["magic"], header["srs_id"] = b"GP", srs_id
    header["flags"] = np.where(empty, 0b10001, 0b00011)  # little endian; XY envelope or empty
    minx, miny, maxx, maxy = shapely.bounds(geoms).T
    header["env"] = np.column_stack([minx, maxx, miny, maxy])
    raw = header.tobytes()
    out: list[bytes | None] = []
    for i in range(len(geoms)):
        if missing[i]:
            out.append(None)
        elif empty[i]:
            out.append(raw[i * 40 : i * 40 + 8] + wkb[i])
        else:
            out.append(raw[i * 40 : (i + 1) * 40] + wkb[i])
    return out


def _envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) of a geometry blob; None when empty or missing."""
    if blob is None or len(blob) < 8 or blob[:2] != b"GP":
        return None
    flags = blob[3]
    if flags & 0b10000:
        return None
    if (flags >> 1) & 0b111:
        little = flags & 1
        env = struct.unpack(("<" if little else ">") + "4d", blob[8:40])
        return env[0], env[1], env[2], env[3]
    geom = shapely.from_wkb(blob[8:])
    minx, miny, maxx, maxy = shapely.bounds(geom)
    return minx, maxx, miny, maxy


def _st(i: int) -> Any:
    def fn(blob: bytes | None) -> float | None:
        env = _envelope(blob)
        return None if env is None else env[i]

    return fn


_SQL_FUNCTIONS = {
    "ST_MinX": _st(0),
    "ST_MaxX": _st(1),
    "ST_MinY": _st(2),
    "ST_MaxY": _st(3),
    "ST_IsEmpty": lambda blob: None if blob is None else int(_envelope(blob) is None),
}


def _index(con: sqlite3.Connection, name: str) -> None:
    """The layer's R-tree spatial index, filled, with the triggers that keep it."""
    c, i = GEOMETRY_COLUMN, FID
    con.execute(f'CREATE VIRTUAL TABLE "rtree_{name}_{c}" USING rtree(id, minx, maxx, miny, maxy)')
    con.execute(
        f'INSERT INTO "rtree_{name}_{c}" SELECT "{i}", ST_MinX("{c}"), ST_MaxX("{c}"), '
        f'ST_MinY("{c}"), ST_MaxY("{c}") FROM "{name}" WHERE "{c}" NOT NULL '
        f'AND NOT ST_IsEmpty("{c}")'
    )
    for statement in _RTREE_TRIGGERS.format(t=name, c=c, i=i).split("END;"):
        if statement.strip():
            con.execute(statement + "END;")
    con.execute(
        "INSERT OR REPLACE INTO gpkg_extensions VALUES (?, ?, 'gpkg_rtree_index', "
        "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
        (name, c),
    )


def _sql_type(series: pd.Series) -> str:
    kind = series.dtype.kind
    if str(series.dtype) == "boolean" or kind == "b":
        return "BOOLEAN"
    if kind in "iu":
        return "INTEGER"
    if kind == "f":
        return "REAL"
    if kind == "M":
        return "DATETIME"
    return "TEXT"


def _python_values(series: pd.Series) -> list[object]:
    """A column as SQLite values: None for missing, lists and dicts as JSON."""
    kind = series.dtype.kind
    if kind == "M":
        return [
            None if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            for v in series
        ]
    if kind in "biuf" and str(series.dtype) not in ("boolean",) and not series.hasnans:
        return series.to_numpy().tolist()
    return [_python_value(v) for v in series.tolist()]


def _python_value(value: object) -> object:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool | int | float | str | bytes):
        return value
    return str(value)


def read_layer(
    con: sqlite3.Connection,
    name: str,
    *,
    columns: Sequence[str] | None = None,
    geometry: bool = True,
) -> pd.DataFrame:
    """A layer as a GeoDataFrame (features) or a DataFrame (attributes).

    Read with this process's SQLite, never GDAL's: two copies of SQLite in one
    process holding the same file break each other's POSIX locks.
    """
    info = con.execute(f'PRAGMA table_info("{name}")').fetchall()
    geom = con.execute(
        "SELECT column_name, srs_id FROM gpkg_geometry_columns WHERE table_name = ?", (name,)
    ).fetchone()
    geom_col = geom[0] if geom else None
    declared = {r[1]: str(r[2]).upper() for r in info if r[5] == 0 and r[1] != geom_col}
    if not geometry:
        geom_col = None
    wanted = [c for c in declared if columns is None or c in columns]
    select = [*(f'"{c}"' for c in wanted), *([f'"{geom_col}"'] if geom_col else [])]
    rows = con.execute(f'SELECT {", ".join(select) or "1"} FROM "{name}" ORDER BY rowid').fetchall()
    data = list(zip(*rows, strict=True)) if rows else [()] * len(select)
    frame = pd.DataFrame(
        {c: _column(list(data[i]), declared[c]) for i, c in enumerate(wanted)},
        index=pd.RangeIndex(len(rows)),
    )
    if geom_col is None:
        return frame
    shapes = _geometries(list(data[len(wanted)]) if rows else [])
    return gpd.GeoDataFrame(frame, geometry=shapes, crs=_crs(con, int(geom[1])))


def _column(values: list[object], sql_type: str) -> pd.Series:
    if sql_type in ("BOOLEAN",):
        if any(v is None for v in values):
            return pd.Series([None if v is None else bool(v) for v in values], dtype=object)
        return pd.Series([bool(v) for v in values], dtype=bool)
    if sql_type in ("INTEGER", "INT", "MEDIUMINT", "SMALLINT", "TINYINT", "BIGINT"):
        if any(v is None for v in values):
            return pd.Series(values, dtype="float64")
        return pd.Series(values, dtype="int64")
    if sql_type in ("REAL", "DOUBLE", "FLOAT"):
        return pd.Series(values, dtype="float64")
    text = pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty")  # in C
    return pd.Series(values, dtype="str" if text else None)


def _geometries(blobs: list[bytes | None]) -> np.ndarray:
    """Shapely geometries of GeoPackage blobs (None for NULL)."""
    wkb: list[bytes | None] = []
    for blob in blobs:
        if blob is None or len(blob) < 8 or blob[:2] != b"GP":
            wkb.append(None)
            continue
        envelope = (blob[3] >> 1) & 0b111
        wkb.append(bytes(blob[8 + _ENVELOPE_BYTES[envelope] :]))
    return shapely.from_wkb(np.array(wkb, dtype=object))


_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def _crs(con: sqlite3.Connection, srs_id: int) -> pyproj.CRS | None:
    row = con.execute(
        "SELECT organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys "
        "WHERE srs_id = ?",
        (srs_id,),
    ).fetchone()
    if row is None or srs_id in (-1, 0):
        return None
    org, code, definition = row
    if str(org).upper() == "EPSG":
        return pyproj.CRS.from_epsg(int(code))
    return pyproj.CRS.from_user_input(definition)


class Session:
    """One SQLite connection to a GeoPackage, as the workspace uses it (see
    :class:`gisgrid.io.postgis.Session` for the same on PostGIS)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        return self.con.execute(sql, list(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self.con.executemany(sql, rows)

    def has_table(self, name: str) -> bool:
        return _has_table(self.con, name)

    def layer_names(self) -> list[str]:
        return layer_names(self.con)

    def geometry_types(self) -> dict[str, str]:
        rows = self.con.execute("SELECT table_name, geometry_type_name FROM gpkg_geometry_columns")
        return dict(rows.fetchall())

    def read_layer(
        self, name: str, *, columns: Sequence[str] | None = None, geometry: bool = True
    ) -> pd.DataFrame:
        return read_layer(self.con, name, columns=columns, geometry=geometry)

    def write_layer(self, name: str, frame: pd.DataFrame) -> None:
        write_layer(self.con, name, frame)

    def write_rows(self, name: str, frame: pd.DataFrame) -> None:
        write_rows(self.con, name, frame)

    def update_rows(self, name: str, *, key: str, keys: Sequence[object], values: dict) -> int:
        return update_rows(self.con, name, key=key, keys=keys, values=values)

    def drop_layer(self, name: str) -> None:
        drop_layer(self.con, name)

    def table_of(self, name: str) -> str:
        """The table holding a layer (the layer's own name in a GeoPackage)."""
        return name


class GeoPackage:
    """A workspace stored in one GeoPackage file."""

    #: what the driver raises when the file refuses a read or a write
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def location(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.is_file()

    def stamp(self) -> tuple[int, ...]:
        """Sizes and times of the file and its write-ahead log: the cheap test for a commit."""
        out: list[int] = []
        main = os.fspath(self.path)
        for name in (main, main + "-wal"):  # asked on every tile: os.stat, no Path objects
            try:
                st = os.stat(name)
                out += [st.st_mtime_ns, st.st_size]
            except FileNotFoundError:
                out += [0, 0]
        return tuple(out)

    @contextmanager
    def reader(self) -> Iterator[Session]:
        con = sqlite3.connect(str(self.path), timeout=BUSY_MS / 1000)
        try:
            yield Session(con)
        finally:
            con.close()

    @contextmanager
    def writer(self, *, rows: bool = False) -> Iterator[Session]:
        """A write transaction; a first write that fails leaves no file behind. SQLite
        has one writer at a time, so ``rows`` (an edit of rows only) changes nothing."""
        fix = "write it in a folder that exists and that you may write in"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(
                f"cannot create {self.path}: {exc.strerror} ({exc.filename}); {fix}"
            ) from exc
        _remove_leftovers(self.path)
        created = not self.exists()
        try:
            con = connect(self.path)
        except sqlite3.Error as exc:
            raise OSError(f"cannot open {self.path} for writing: {exc}; {fix}") from exc
        try:
            with transaction(con):
                yield Session(con)
        except BaseException:
            con.close()
            if created:
                for part in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        Path(f"{self.path}{part}").unlink()
            raise
        con.close()
        if created:
            os.chmod(self.path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_leftovers(path: Path) -> None:
    """Delete the temporary copies older versions of gisgrid left after a crash."""
    if path.parent.is_dir():
        for stray in path.parent.glob(f".{path.stem}.*.tmp.gpkg"):
            with contextlib.suppress(OSError):
                stray.unlink()
