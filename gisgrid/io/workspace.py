"""The workspace: one GeoPackage file holding every layer of a jurisdiction.

A workspace opens in QGIS as it is. All layers share one metric CRS, the
CGCS2000 Gauss–Krüger zone chosen at the first import, recorded in the
``gisgrid_meta`` table.

Writes happen in place, in SQLite transactions with the WAL journal
(:mod:`gisgrid.io.gpkg`): a command's layers and rows land together or not at
all, readers never wait for a writer, and ``kill -9`` leaves the state before or
after. Every committed write raises the workspace's **revision** and the
revision of each layer it touched. A workspace object remembers the revision of
each layer it read; a write whose inputs another writer changed in the meantime
fails with :class:`~gisgrid.ConflictError` instead of overwriting them. Edits
that touch only their rows (:meth:`Workspace.update`) do not conflict with
each other.

Examples
--------
>>> import tempfile, pathlib
>>> ws = Workspace(pathlib.Path(tempfile.mkdtemp()) / "w.gpkg")
>>> ws.exists, ws.revision
(False, 0)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd
import pyproj

from gisgrid._errors import (
    ConflictError,
    InputError,
    LayerNotFoundError,
    WorkspaceError,
    argument,
)
from gisgrid.io import gpkg
from gisgrid.io.gpkg import GeoPackage

if TYPE_CHECKING:  # psycopg is imported for a database workspace only
    from gisgrid.io import postgis
    from gisgrid.io.postgis import PostGIS

    Store = GeoPackage | PostGIS
    Session = gpkg.Session | postgis.Session

__all__ = [
    "Transaction",
    "Workspace",
    "WorkspaceLike",
    "copy_workspace",
    "is_postgres",
    "open_workspace",
]

logger = logging.getLogger(__name__)

META_TABLE = "gisgrid_meta"
_STATE = (
    "CREATE TABLE IF NOT EXISTS gisgrid_layers "
    "(layer TEXT PRIMARY KEY, revision INTEGER NOT NULL, changed_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS gisgrid_revision "
    "(id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL, changed_at TEXT)",
)


def is_postgres(target: object) -> bool:
    """Whether a workspace argument names a PostgreSQL database."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


class Workspace:
    """A workspace: a GeoPackage file, or a PostGIS schema.

    Parameters
    ----------
    target
        The ``.gpkg`` file (it need not exist yet: the first write creates it), or
        ``postgresql://user@host/db?schema=NAME``.
    """

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.store: Store
        if is_postgres(target):
            from gisgrid.io.postgis import PostGIS

            self.store = PostGIS(str(target))
        else:
            self.store = GeoPackage(Path(target))
        self.path = Path(target) if isinstance(self.store, GeoPackage) else Path(self.store.schema)
        self._seen: dict[str, int] = {}  # layer → its revision when this object read it
        self.last_revision = 0  # the revision this object's last write committed

    def __repr__(self) -> str:
        return f"Workspace({self.location!r})"

    @property
    def location(self) -> str:
        """Where the workspace is: its file, or its database URL."""
        return self.store.location

    @property
    def exists(self) -> bool:
        """Whether the workspace holds anything yet."""
        try:
            return self.store.exists()
        except OSError:
            return False

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Session]:
        try:
            with self.store.reader() as session:
                yield session
        except sqlite3.DatabaseError as exc:
            raise WorkspaceError(f"{self.location} is not a GeoPackage workspace: {exc}") from exc

    def layers(self) -> list[str]:
        """Names of the layers and tables in the workspace."""
        if not self.exists:
            return []
        with self._reader() as s:
            return s.layer_names()

    def __contains__(self, layer: object) -> bool:
        return layer in self.layers()

    def meta(self) -> dict[str, str]:
        """Key–value settings of the workspace (its CRS, the gisgrid version)."""
        if META_TABLE not in self:
            return {}
        with self._reader() as s:
            rows = s.execute(f'SELECT key, value FROM "{s.table_of(META_TABLE)}"').fetchall()
        return {str(k): str(v) for k, v in rows}

    @property
    def crs(self) -> pyproj.CRS | None:
        """The metric CRS every layer is stored in, once chosen."""
        text = self.meta().get("crs")
        return pyproj.CRS.from_user_input(text) if text else None

    @property
    def revision(self) -> int:
        """The workspace's revision: raised by every committed write (0 before the first)."""
        if not self.exists:
            return 0
        with self._reader() as s:
            if not s.has_table("gisgrid_revision"):
                return 0
            row = s.execute("SELECT revision FROM gisgrid_revision WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def layer_revisions(self, layers: Sequence[str] | None = None) -> dict[str, int]:
        """The revision that last changed each layer (0 for one never written)."""
        if not self.exists:
            return dict.fromkeys(layers or [], 0)
        with self._reader() as s:
            found = _revisions(s)
        names = list(found) if layers is None else list(layers)
        return {name: int(found.get(name, 0)) for name in names}

    def describe(self) -> list[tuple[str, str | None, int]]:
        """Each layer's name, geometry type (None for a table) and row count."""
        if not self.exists:
            return []
        with self._reader() as s:
            types = s.geometry_types()
            count = 'SELECT COUNT(*) FROM "{}"'
            return [
                (
                    name,
                    types.get(name),
                    int(_one(s, count.format(s.table_of(name)))),
                )
                for name in s.layer_names()
            ]

    def values(self, layer: str, column: str) -> list[object]:
        """One column of a layer, read without its geometry (for checks of ids)."""
        with self._reader() as s:
            return [r[0] for r in s.execute(f'SELECT "{column}" FROM "{s.table_of(layer)}"')]

    def count(self, layer: str) -> int:
        """How many rows a layer holds (0 when it is not there)."""
        if layer not in self:
            return 0
        with self._reader() as s:
            return int(_one(s, f'SELECT COUNT(*) FROM "{s.table_of(layer)}"'))

    def read(
        self, layer: str, *, columns: list[str] | None = None, geometry: bool = True
    ) -> gpd.GeoDataFrame:
        """Read one layer, remembering its revision for the conflict check of later writes.

        Parameters
        ----------
        layer
            Layer or table name.
        columns
            Fields to read; all when None.
        geometry
            Read the geometry too (a DataFrame without it otherwise).

        Returns
        -------
        geopandas.GeoDataFrame or pandas.DataFrame
            A DataFrame for tables without geometry.

        Raises
        ------
        LayerNotFoundError
            When the layer is not in the workspace.
        """
        have = self.layers()
        if layer not in have:
            raise LayerNotFoundError(
                f"layer {layer!r} is not in {self.location} (it has: "
                f"{', '.join(have) or 'none'}); add it with "
                f"`gisgrid import {self.location} {layer} FILE`"
            )
        with self._reader() as s:  # the revision before the rows: a later write conflicts
            self._seen.setdefault(layer, _revisions(s).get(layer, 0))
            return s.read_layer(layer, columns=columns, geometry=geometry)

    def write(
        self,
        layers: Mapping[str, pd.DataFrame],
        *,
        meta: Mapping[str, str] | None = None,
        fresh: bool = False,
    ) -> int:
        """Replace layers in one transaction; the new revision.

        Every layer in ``layers`` is replaced as a whole; other layers are kept
        (unless ``fresh``).

        Parameters
        ----------
        layers
            Layer name to (Geo)DataFrame. A DataFrame without geometry becomes a
            table.
        meta
            Settings to merge into the ``gisgrid_meta`` table.
        fresh
            Start from an empty workspace: afterwards it holds only ``layers``
            and ``meta``.

        Raises
        ------
        ConflictError
            When a layer this workspace object read was changed by another writer since.
        """
        with self.transaction(fresh=fresh) as tx:
            for name, frame in layers.items():
                tx.replace(name, frame)
            if meta:
                tx.set_meta(meta)
        return tx.revision

    def prepare(self) -> None:
        """Make a workspace written by other software (GDAL, QGIS, an older gisgrid) ready
        for concurrent use: WAL journal and revision tables, changing no layer."""
        if self.exists:
            with self.transaction(check=False):
                pass

    def update(
        self, layer: str, *, key: str, keys: Sequence[object], values: Mapping[str, object]
    ) -> int:
        """Set ``values`` on the rows of ``layer`` whose ``key`` is in ``keys``, touching no
        other row; how many rows changed. Edits of different rows never conflict."""
        with self.transaction(check=False, rows=True) as tx:
            changed = tx.update(layer, key=key, keys=keys, values=values)
        return changed

    @contextlib.contextmanager
    def transaction(
        self, *, fresh: bool = False, check: bool = True, rows: bool = False
    ) -> Iterator[Transaction]:
        """One write transaction over the workspace.

        It checks first that no layer this object read has changed since
        (unless ``check`` is off), and commits with a new revision when the
        block ends; nothing is written if the block raises. A transaction with
        ``rows`` only updates rows (:meth:`Transaction.update`); on PostGIS such
        transactions run side by side, each waiting only on the rows it changes.
        """
        try:
            with self.store.writer(rows=rows) as session:
                for statement in _STATE:
                    session.execute(statement)
                if check:
                    self._check(session)
                tx = Transaction(session, rows_only=rows)
                if fresh:
                    for name in session.layer_names():
                        tx.drop(name)
                yield tx
                tx.commit()
        except self.store.errors as exc:
            raise WorkspaceError(f"cannot write {self.location}: {exc}") from exc
        except OSError as exc:
            if isinstance(exc, WorkspaceError):
                raise
            raise WorkspaceError(str(exc)) from exc
        self._seen.clear()  # a write ends what this object read for it
        self.last_revision = tx.revision
        logger.info(
            "wrote %s to %s (revision %d)", ", ".join(tx.touched), self.location, tx.revision
        )

    def _check(self, session: Session) -> None:
        if not self._seen:
            return
        now = _revisions(session)
        changed = sorted(name for name, rev in self._seen.items() if now.get(name, 0) != rev)
        if changed:
            row = session.execute("SELECT revision FROM gisgrid_revision WHERE id = 1").fetchone()
            current = int(row[0]) if row else 0
            raise ConflictError(
                f"{', '.join(changed)} changed in {self.location} while this was working "
                f"(now revision {current}); nothing was written: run it again on the current "
                "state",
                layers=changed,
                revision=current,
            )


@dataclass
class Transaction:
    """The writes of one transaction (see :meth:`Workspace.transaction`)."""

    session: Session
    rows_only: bool = False
    touched: list[str] = field(default_factory=list)
    revision: int = 0

    def _whole_layers(self, what: str) -> None:
        if self.rows_only:
            raise WorkspaceError(f"{what} in a row-level transaction; open it without rows=True")

    def replace(self, name: str, frame: pd.DataFrame) -> None:
        """Replace a whole layer (or create it)."""
        self._whole_layers(f"replacing layer {name!r}")
        if isinstance(frame, gpd.GeoDataFrame) and frame.crs is None:
            raise WorkspaceError(f"layer {name!r} has no CRS; refusing to write it")
        self.session.write_layer(name, frame.reset_index(drop=True))
        self._touch(name)

    def append(self, name: str, frame: pd.DataFrame) -> None:
        """Add rows to a layer (created when missing)."""
        self._whole_layers(f"adding rows to {name!r}")
        if name in self.session.layer_names():
            self.session.write_rows(name, frame.reset_index(drop=True))
            self._touch(name)
        else:
            self.replace(name, frame)

    def delete(
        self,
        name: str,
        where: Mapping[str, object],
        *,
        prefix: Mapping[str, str] | None = None,
    ) -> int:
        """Delete the rows of a layer where every ``column = value`` of ``where`` holds and
        every column of ``prefix`` starts with its text; how many rows went."""
        self._whole_layers(f"deleting rows of {name!r}")
        if name not in self.session.layer_names():
            return 0
        tests = [f'"{c}" = ?' for c in where] + [f'substr("{c}", 1, ?) = ?' for c in prefix or {}]
        params: list[object] = list(where.values())
        for text in (prefix or {}).values():
            params += [len(text), text]
        table = self.session.table_of(name)
        cur = self.session.execute(f'DELETE FROM "{table}" WHERE {" AND ".join(tests)}', params)
        if cur.rowcount:
            self._touch(name)
        return int(cur.rowcount)

    def update(
        self, name: str, *, key: str, keys: Sequence[object], values: Mapping[str, object]
    ) -> int:
        """Set values on the rows whose ``key`` is in ``keys``; how many changed."""
        if name not in self.session.layer_names():
            raise LayerNotFoundError(f"layer {name!r} is not in the workspace")
        changed = self.session.update_rows(name, key=key, keys=keys, values=dict(values))
        if changed:
            self._touch(name)
        return changed

    def drop(self, name: str) -> None:
        """Remove a layer."""
        self._whole_layers(f"dropping layer {name!r}")
        self.session.drop_layer(name)
        self._touch(name)

    def set_meta(self, meta: Mapping[str, str]) -> None:
        """Merge settings into ``gisgrid_meta``."""
        old: dict[str, str] = {}
        if META_TABLE in self.session.layer_names():
            table = self.session.table_of(META_TABLE)
            old = dict(self.session.execute(f'SELECT key, value FROM "{table}"').fetchall())
        merged = {**old, **{k: str(v) for k, v in meta.items()}}
        self.replace(
            META_TABLE, pd.DataFrame({"key": list(merged), "value": list(merged.values())})
        )

    def _touch(self, name: str) -> None:
        if name not in self.touched:
            self.touched.append(name)

    def commit(self) -> None:
        """Raise the revision, and stamp every touched layer with it (done by the workspace)."""
        if not self.touched:
            row = self.session.execute(
                "SELECT revision FROM gisgrid_revision WHERE id = 1"
            ).fetchone()
            self.revision = int(row[0]) if row else 0
            return
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.session.execute(
            "INSERT INTO gisgrid_revision VALUES (1, 1, ?) ON CONFLICT (id) DO UPDATE "
            "SET revision = gisgrid_revision.revision + 1, changed_at = excluded.changed_at",
            (now,),
        )
        self.revision = int(
            _one(self.session, "SELECT revision FROM gisgrid_revision WHERE id = 1")
        )
        self.session.executemany(
            "INSERT INTO gisgrid_layers VALUES (?, ?, ?) ON CONFLICT (layer) DO UPDATE "
            "SET revision = excluded.revision, changed_at = excluded.changed_at",
            [(name, self.revision, now) for name in self.touched],
        )


def copy_workspace(source: WorkspaceLike, target: WorkspaceLike, *, replace: bool = False) -> int:
    """Copy every layer and table of a workspace into another, in one transaction; how many
    layers. Works between GeoPackage and PostGIS both ways, losing nothing: rows, codes,
    the CRS, the run history and the retired codes.

    Raises
    ------
    InputError
        When ``source`` holds nothing, or ``target`` holds layers and ``replace`` is off.
    """
    src, dst = open_workspace(source), open_workspace(target)
    names = src.layers()
    if not names:
        raise InputError(f"{src.location} holds no layer to copy")
    if dst.layers() and not replace:
        raise InputError(
            f"{dst.location} already holds layers; copy into an empty workspace, or give "
            f"{argument('replace')} to replace them"
        )
    frames = {name: src.read(name) for name in names}
    with dst.transaction(fresh=True, check=False) as tx:
        for name, frame in frames.items():
            tx.replace(name, frame)
    logger.info("copied %d layers from %s to %s", len(names), src.location, dst.location)
    return len(names)


def _revisions(session: Session) -> dict[str, int]:
    """The revision that last changed each layer that has one."""
    if not session.has_table("gisgrid_layers"):
        return {}
    rows = session.execute("SELECT layer, revision FROM gisgrid_layers").fetchall()
    return {str(name): int(rev) for name, rev in rows}


def _one(session: Session, query: str) -> Any:
    """The first value of the first row a query returns."""
    row = session.execute(query).fetchone()
    if row is None:
        raise WorkspaceError(f"the workspace answered nothing to {query}")
    return row[0]


WorkspaceLike = Workspace | str | os.PathLike[str]
"""A workspace, or the path of one."""


def open_workspace(workspace: WorkspaceLike) -> Workspace:
    """The workspace itself, or the workspace at a path."""
    return workspace if isinstance(workspace, Workspace) else Workspace(workspace)
