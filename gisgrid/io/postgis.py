"""A workspace in a PostGIS schema: ``postgresql://user@host/db?schema=NAME``.

The same layers, revisions and conflicts as a GeoPackage (:mod:`gisgrid.io.gpkg`),
for shared deployments. Each layer is a table with a ``geom`` column of its SRID and
a GiST index; ``gisgrid_contents`` lists the layers in order and says which physical
table holds each. Replacing a layer writes a new physical table and points the layer
at it in the same transaction, so readers (MVCC) keep reading the old one until the
commit and never wait for the writer; the old table is dropped afterwards, once no
open snapshot predates that commit (read from ``pg_stat_activity``, which shows
other roles' sessions only to roles with ``pg_read_all_stats``: readers of one
workspace should share a role). A writer that replaces, adds or drops layers takes
the schema's transaction-level advisory lock, so such writers queue instead of
interleaving (as SQLite's ``BEGIN IMMEDIATE`` does for a GeoPackage); a row-level
edit (a lock, a pin) takes that lock shared, so edits of different rows run side by
side and wait only on PostgreSQL's row locks of the rows they change (and, for an
instant at commit, on the revision counter). Connections come from a pool (psycopg
3).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyproj
import shapely
from psycopg import sql
from psycopg_pool import ConnectionPool

from gisgrid.io.gpkg import _column as gpkg_column
from gisgrid.io.gpkg import _geometry_type, _python_value, _python_values, _sql_type

__all__ = ["PostGIS", "Session"]

logger = logging.getLogger(__name__)

_CONTENTS = (
    "CREATE TABLE IF NOT EXISTS gisgrid_contents (layer text PRIMARY KEY, physical text NOT NULL,"
    " srid integer, geometry_type text, ordinal bigserial)"
)
# ``released``: the transaction that let go of the table (a snapshot older than it may
# still read it); NULL in schemas written before it was kept
_GARBAGE = "CREATE TABLE IF NOT EXISTS gisgrid_garbage (physical text PRIMARY KEY, released xid)"
_SQL_TYPES = {"BOOLEAN": "boolean", "INTEGER": "bigint", "REAL": "double precision"}
_POOLS: dict[str, ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()


def _pool(dsn: str) -> ConnectionPool:
    with _POOLS_LOCK:
        if dsn not in _POOLS:
            _POOLS[dsn] = ConnectionPool(
                dsn, min_size=1, max_size=8, open=True, timeout=60, kwargs={"autocommit": True}
            )
        return _POOLS[dsn]


class Session:
    """One PostgreSQL connection, as the workspace uses it (``?`` placeholders, as in
    SQLite, are turned into psycopg's)."""

    def __init__(self, con: psycopg.Connection, schema: str) -> None:
        self.con = con
        self.schema = schema

    def execute(self, query: str, params: Sequence[object] = ()) -> psycopg.Cursor:
        return self.con.execute(query.replace("?", "%s"), list(params))

    def executemany(self, query: str, rows: Sequence[Sequence[object]]) -> None:
        with self.con.cursor() as cur:
            cur.executemany(query.replace("?", "%s"), rows)

    def has_table(self, name: str) -> bool:
        row = self.con.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (self.schema, name),
        ).fetchone()
        return row is not None

    def _physical(self, name: str) -> str | None:
        if not self.has_table("gisgrid_contents"):
            return None
        row = self.con.execute(
            "SELECT physical FROM gisgrid_contents WHERE layer = %s", (name,)
        ).fetchone()
        return None if row is None else str(row[0])

    def layer_names(self) -> list[str]:
        if not self.has_table("gisgrid_contents"):
            return []
        rows = self.con.execute("SELECT layer FROM gisgrid_contents ORDER BY ordinal").fetchall()
        return [str(r[0]) for r in rows]

    def geometry_types(self) -> dict[str, str]:
        if not self.has_table("gisgrid_contents"):
            return {}
        rows = self.con.execute(
            "SELECT layer, geometry_type FROM gisgrid_contents WHERE geometry_type IS NOT NULL"
        ).fetchall()
        return {str(a): str(b) for a, b in rows}

    def read_layer(
        self, name: str, *, columns: Sequence[str] | None = None, geometry: bool = True
    ) -> pd.DataFrame:
        physical = self._physical(name)
        if physical is None:
            raise KeyError(name)
        (srid,) = self.con.execute(
            "SELECT srid FROM gisgrid_contents WHERE layer = %s", (name,)
        ).fetchone() or (None,)
        cols = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.schema, physical),
        ).fetchall()
        attrs = [(c, t) for c, t in cols if c not in ("fid", "geom")]
        wanted = [(c, t) for c, t in attrs if columns is None or c in columns]
        spatial = geometry and srid is not None
        select: list[sql.Composable] = [sql.Identifier(c) for c, _ in wanted]
        if spatial:
            select.append(sql.SQL("ST_AsBinary(geom)"))
        query = sql.SQL("SELECT {} FROM {} ORDER BY fid").format(
            sql.SQL(", ").join(select) if select else sql.SQL("1"), sql.Identifier(physical)
        )
        rows = self.con.execute(query).fetchall()
        data = list(zip(*rows, strict=True)) if rows else [()] * len(select)
        frame = pd.DataFrame(
            {c: _column(list(data[i]), t) for i, (c, t) in enumerate(wanted)},
            index=pd.RangeIndex(len(rows)),
        )
        if not spatial:
            return frame
        wkb = [None if b is None else bytes(b) for b in (data[len(wanted)] if rows else [])]
        shapes = shapely.from_wkb(np.array(wkb, dtype=object))
        return gpd.GeoDataFrame(frame, geometry=shapes, crs=_crs(int(srid)))

    def write_layer(self, name: str, frame: pd.DataFrame) -> None:
        """A new physical table for the layer, filled; the old one is dropped later."""
        self.con.execute(_CONTENTS)
        _garbage_table(self.con, self.schema)
        spatial = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns
        attrs = frame.drop(columns=frame.geometry.name) if spatial else frame
        physical = f"{name[:40]}__{uuid.uuid4().hex[:10]}"
        body: list[sql.Composable] = [sql.SQL("fid bigserial PRIMARY KEY")]
        srid = None
        if spatial:
            srid = _srid(frame.crs)
            body.append(sql.SQL("geom geometry(Geometry, {})").format(sql.Literal(srid)))
        for column in attrs.columns:
            kind = _SQL_TYPES.get(_sql_type(attrs[column]), "text")
            body.append(sql.SQL("{} {}").format(sql.Identifier(str(column)), sql.SQL(kind)))
        self.con.execute(
            sql.SQL("CREATE TABLE {} ({})").format(
                sql.Identifier(physical), sql.SQL(", ").join(body)
            )
        )
        self._copy(physical, frame, srid)
        if spatial:
            self.con.execute(
                sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(sql.Identifier(physical))
            )
        old = self._physical(name)
        if old is not None:
            self._discard(old)
        geometry_type = _geometry_type(frame) if spatial else None
        self.con.execute(
            "INSERT INTO gisgrid_contents (layer, physical, srid, geometry_type) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (layer) DO UPDATE SET "
            "physical = excluded.physical, srid = excluded.srid, "
            "geometry_type = excluded.geometry_type",
            (name, physical, srid, geometry_type),
        )

    def write_rows(self, name: str, frame: pd.DataFrame) -> None:
        physical = self._physical(name)
        if physical is None:
            raise KeyError(name)
        have = {
            r[0]
            for r in self.con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (self.schema, physical),
            ).fetchall()
        }
        spatial = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns
        attrs = frame.drop(columns=frame.geometry.name) if spatial else frame
        for column in attrs.columns:
            if str(column) not in have:
                kind = _SQL_TYPES.get(_sql_type(attrs[column]), "text")
                self.con.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                        sql.Identifier(physical), sql.Identifier(str(column)), sql.SQL(kind)
                    )
                )
        srid = None
        if spatial:
            row = self.con.execute(
                "SELECT srid FROM gisgrid_contents WHERE layer = %s", (name,)
            ).fetchone()
            srid = int(row[0]) if row and row[0] is not None else _srid(frame.crs)
        self._copy(physical, frame, srid)

    def _copy(self, physical: str, frame: pd.DataFrame, srid: int | None) -> None:
        spatial = srid is not None and isinstance(frame, gpd.GeoDataFrame)
        attrs = frame.drop(columns=frame.geometry.name) if spatial else frame
        names = [str(c) for c in attrs.columns]
        values: list[Sequence[object]] = [_python_values(attrs[c]) for c in attrs.columns]
        if spatial:
            names.append("geom")
            geoms = np.asarray(frame.geometry.values, dtype=object)
            hexes = shapely.to_wkb(shapely.set_srid(geoms, srid), hex=True, include_srid=True)
            values.append([None if g is None else str(g) for g in hexes])
        if not len(frame):
            return
        target = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(physical), sql.SQL(", ").join(map(sql.Identifier, names))
        )
        with self.con.cursor().copy(target) as copy:
            for row in zip(*values, strict=True):
                copy.write_row(row)

    def update_rows(self, name: str, *, key: str, keys: Sequence[object], values: dict) -> int:
        physical = self._physical(name)
        if physical is None:
            raise KeyError(name)
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values)
        differs = sql.SQL(" OR ").join(
            sql.SQL("{} IS DISTINCT FROM %s").format(sql.Identifier(c)) for c in values
        )
        query = sql.SQL("UPDATE {} SET {} WHERE {} = %s AND ({})").format(
            sql.Identifier(physical), sets, sql.Identifier(key), differs
        )
        params = [_python_value(v) for v in values.values()]
        changed = 0
        for k in sorted(keys, key=str):  # one order for every writer: no deadlock between two
            changed += self.con.execute(query, [*params, _python_value(k), *params]).rowcount
        return changed

    def drop_layer(self, name: str) -> None:
        physical = self._physical(name)
        if physical is None:
            return
        _garbage_table(self.con, self.schema)
        self._discard(physical)
        self.con.execute("DELETE FROM gisgrid_contents WHERE layer = %s", (name,))

    def _discard(self, physical: str) -> None:
        """Mark a table no layer will point to once this transaction commits."""
        self.con.execute(
            "INSERT INTO gisgrid_garbage (physical, released) "
            "VALUES (%s, pg_current_xact_id()::xid) ON CONFLICT DO NOTHING",
            (physical,),
        )

    def table_of(self, name: str) -> str:
        """The physical table of a layer (for SQL over it: counts, deletes)."""
        physical = self._physical(name)
        if physical is None:
            raise KeyError(name)
        return physical


class PostGIS:
    """A workspace in one schema of a PostGIS database."""

    #: what the driver raises when the database refuses a read or a write
    errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.schema = (query.pop("schema", ["public"]) or ["public"])[0]
        self.url = url
        self.dsn = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
        self._last_poll = 0.0

    @property
    def location(self) -> str:
        return self.url

    def exists(self) -> bool:
        with self.reader() as s:
            return s.has_table("gisgrid_contents")

    def stamp(self) -> tuple[int, ...]:
        """A tick that changes twice a second: a catalog polls the revision that often."""
        return (int(time.monotonic() * 2),)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            with _pool(self.dsn).connection() as con:
                con.execute(
                    sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema))
                )
                yield con
        except psycopg.OperationalError as exc:
            raise OSError(f"cannot reach {self.url}: {exc}") from exc

    @contextmanager
    def reader(self) -> Iterator[Session]:
        with self._connection() as con, con.transaction():
            con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield Session(con, self.schema)

    @contextmanager
    def writer(self, *, rows: bool = False) -> Iterator[Session]:
        """A write transaction, after every other writer of this schema (advisory lock);
        with ``rows``, one that only updates rows, beside other such writers."""
        with self._connection() as con:
            if not _schema_exists(con, self.schema):
                con.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
            with con.transaction():
                take = "pg_advisory_xact_lock_shared" if rows else "pg_advisory_xact_lock"
                con.execute(f"SELECT {take}(hashtext(%s))", (self.schema,))
                yield Session(con, self.schema)
            self._collect(con)

    def _collect(self, con: psycopg.Connection) -> None:
        """Drop the physical tables no layer points to, unless a reader may still read one:
        a transaction whose snapshot is older than the one that let go of the table may
        have read the old ``gisgrid_contents`` and not yet touched the table (so it holds
        no lock on it), or hold it."""
        if not _garbage_table(con, self.schema, create=False):
            return
        rows = con.execute(
            "SELECT physical FROM gisgrid_garbage g WHERE g.released IS NULL OR NOT EXISTS ("
            " SELECT 1 FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid()"
            " AND a.backend_xmin IS NOT NULL AND age(a.backend_xmin) >= age(g.released))"
        ).fetchall()
        for (physical,) in rows:
            try:
                with con.transaction():
                    con.execute("SET LOCAL lock_timeout = '200ms'")
                    con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(physical)))
                    con.execute("DELETE FROM gisgrid_garbage WHERE physical = %s", (physical,))
            except psycopg.errors.LockNotAvailable:
                logger.info("%s is still read; it is dropped after a later write", physical)


def _garbage_table(con: psycopg.Connection, schema: str, *, create: bool = True) -> bool:
    """Make sure ``gisgrid_garbage`` is there (unless not ``create``) with ``released``,
    which schemas written before it was kept lack; whether it is there."""
    found = {
        str(c)
        for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'gisgrid_garbage'",
            (schema,),
        ).fetchall()
    }
    if not found and not create:
        return False
    if not found:
        con.execute(_GARBAGE)
    elif "released" not in found:
        con.execute("ALTER TABLE gisgrid_garbage ADD COLUMN IF NOT EXISTS released xid")
    return True


def _schema_exists(con: psycopg.Connection, schema: str) -> bool:
    row = con.execute(
        "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
    ).fetchone()
    return row is not None


_GPKG_TYPES = {
    "boolean": "BOOLEAN",
    "bigint": "INTEGER",
    "integer": "INTEGER",
    "smallint": "INTEGER",
    "double precision": "REAL",
    "real": "REAL",
    "numeric": "REAL",
}


def _column(values: list[object], data_type: str) -> pd.Series:
    """A column read back, typed as the same column of a GeoPackage is."""
    return gpkg_column(values, _GPKG_TYPES.get(data_type, "TEXT"))


def _srid(crs: Any) -> int:
    if crs is None:
        return 0
    auth = pyproj.CRS.from_user_input(crs).to_epsg()
    if auth is None:
        raise ValueError(f"PostGIS workspaces store layers in EPSG CRSs; {crs} has no EPSG code")
    return int(auth)


def _crs(srid: int) -> pyproj.CRS | None:
    return pyproj.CRS.from_epsg(srid) if srid > 0 else None
