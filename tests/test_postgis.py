"""What only the PostGIS backend has, on a real PostgreSQL: copies both ways, runs equal
to a GeoPackage's, row-level writers.

The storage, edit, delineation and service tests run on both backends (the ``put``,
``small_copy`` and ``served`` fixtures); every PostGIS workspace is a schema of the
test database that `.ci/run` sets up (PostgreSQL 15 with PostGIS 3 on 127.0.0.1:5432).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import shapely

from gisgrid.delineate.run import delineate
from gisgrid.io.digest import input_digest
from gisgrid.io.workspace import Workspace
from gisgrid.roster.assignment import assign
from gisgrid.roster.coverage import coverage_of

GISGRID = [sys.executable, "-m", "gisgrid.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GISGRID, *args], capture_output=True, text=True)


def state(where: str) -> str:
    """A digest of every layer of a workspace (attributes and geometry)."""
    ws = Workspace(where)
    frames = []
    for name in sorted(ws.layers()):
        frame = ws.read(name)
        frames.append(frame.drop(columns=[c for c in ("started_at", "seconds") if c in frame]))
    return input_digest(*frames)


def _same_layer(a: pd.DataFrame, b: pd.DataFrame, name: str) -> None:
    assert list(a.columns) == list(b.columns), name
    assert len(a) == len(b), name
    for column in a.columns:
        if column == "geometry":
            assert bool(shapely.equals(a.geometry.values, b.geometry.values).all()), name
            assert a.crs == b.crs, name
        else:
            left, right = a[column].astype(str).tolist(), b[column].astype(str).tolist()
            assert left == right, (name, column)


def test_copy_to_postgis_and_back_loses_nothing(small, pg_schema, tmp_path):
    result = run("copy", str(small), pg_schema)
    assert result.returncode == 0, result.stderr
    back = tmp_path / "back.gpkg"
    assert run("copy", pg_schema, str(back)).returncode == 0
    a, p, b = Workspace(small), Workspace(pg_schema), Workspace(back)
    assert a.layers() == p.layers() == b.layers()
    assert p.crs == a.crs
    for name in a.layers():
        _same_layer(a.read(name), p.read(name), name)
        _same_layer(a.read(name), b.read(name), name)
    retired = [n for n in a.layers() if n in ("retired_grids", "grid_history", "runs")]
    assert retired  # the history travels too
    again = run("copy", str(small), pg_schema)
    assert again.returncode == 2 and "already holds layers" in again.stderr


def test_runs_on_postgis_give_what_they_give_on_a_geopackage(small, pg_small, tmp_path):
    gpkg = tmp_path / "ws.gpkg"
    shutil.copy(small, gpkg)
    results = {}
    for where in (str(gpkg), pg_small):
        run_ = delineate(where, full=True)
        assigned = assign(where)
        covered = coverage_of(where)
        grids = Workspace(where).read("grids")
        results[where] = (run_.metrics, grids, len(assigned.assignments), covered.households_share)
    (m1, g1, a1, c1), (m2, g2, a2, c2) = results.values()
    assert json.dumps(m1, sort_keys=True) == json.dumps(m2, sort_keys=True)
    assert g1["grid_code"].tolist() == g2["grid_code"].tolist()
    assert bool(shapely.equals(g1.geometry.values, g2.geometry.values).all())
    assert a1 == a2 and c1 == pytest.approx(c2)


def test_planners_editing_different_grids_never_wait_on_each_other(pg_small):
    """One planner's edit holds its transaction open; another's, of a different grid,
    commits meanwhile (row locks, not one lock per workspace); one of the same grid waits
    for it and then finds nothing left to change."""
    ws = Workspace(pg_small)
    first, second = ws.read("grids")["grid_code"].tolist()[:2]
    inside, done = threading.Event(), threading.Event()

    def slow_edit() -> None:
        with ws.transaction(check=False, rows=True) as tx:
            tx.update("grids", key="grid_code", keys=[first], values={"locked": True})
            inside.set()
            done.wait(30)

    thread = threading.Thread(target=slow_edit)
    thread.start()
    try:
        assert inside.wait(30)
        t0 = time.perf_counter()
        other = Workspace(pg_small)
        assert other.update("grids", key="grid_code", keys=[second], values={"locked": True})
        assert time.perf_counter() - t0 < 5  # it did not wait for the open edit (30 s)
        same = ThreadPoolExecutor(1).submit(
            Workspace(pg_small).update,
            "grids",
            key="grid_code",
            keys=[first],
            values={"locked": True},
        )
        time.sleep(0.5)
        assert not same.done()  # the same row: it waits for the open edit …
    finally:
        done.set()
        thread.join(30)
    assert same.result(30) == 0  # … then finds the grid already locked
    assert ws.read("grids").set_index("grid_code").loc[[first, second], "locked"].all()
    assert Workspace(pg_small).revision >= 3


def test_a_reader_keeps_the_tables_its_snapshot_points_to(pg_small):
    """A reader whose snapshot says a layer is in table T, and which has not touched T yet,
    holds no lock on it: a writer replacing the layer dropped T after its commit, and the
    reader failed with 'relation … does not exist' (a planner's move beside a full
    re-delineation, seen in CI). T now stays until no snapshot older than that commit is
    open, and goes with a later write."""
    import psycopg

    ws = Workspace(pg_small)
    roads = ws.read("roads")
    with ws.store.reader() as session:
        assert "roads" in session.layer_names()  # the snapshot: roads in its old table
        ws.write({"roads": roads.assign(name="新路")})  # another connection, committed
        seen = session.read_layer("roads")
    assert seen["name"].tolist() == roads["name"].tolist()  # the reader's own snapshot
    assert set(ws.read("roads")["name"]) == {"新路"}
    ws.write({"roads": roads})  # no old snapshot now: the tables let go of are dropped
    base, schema = pg_small.split("?schema=")
    with psycopg.connect(base) as con:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name LIKE 'roads%%'",
            (schema,),
        ).fetchall()
    assert len(tables) == 1, tables
