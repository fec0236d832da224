"""The PostGIS backend on a real PostgreSQL: the same storage, edits, runs and service.

Every workspace here is a schema of the test database that `.ci/run` sets up
(PostgreSQL 15 with PostGIS 3 on 127.0.0.1:5432).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import httpx
import pandas as pd
import pytest
import shapely

from gisgrid import ConflictError
from gisgrid.delineate.edits import move
from gisgrid.delineate.run import delineate
from gisgrid.io.digest import input_digest
from gisgrid.io.workspace import Workspace
from gisgrid.roster.assignment import assign
from gisgrid.roster.coverage import coverage_of

from .conftest import KEYS, serving

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


def test_two_writers_of_the_same_rows_on_postgis(pg_small):
    b = Workspace(pg_small).read("buildings")
    grids = Workspace(pg_small).read("grids")
    row = b.iloc[0]
    near = next(
        c
        for c, g in zip(grids["grid_code"], grids.geometry, strict=True)
        if c != row["grid_code"] and g.distance(row.geometry) < 50
    )
    first, second = Workspace(pg_small), Workspace(pg_small)
    for ws in (first, second):
        ws.read("grids"), ws.read("buildings")
    move(first, building=row["building_id"], to=near, force=True)
    before = state(pg_small)
    with pytest.raises(ConflictError, match=r"buildings.*grids.*nothing was written"):
        move(second, building=row["building_id"], to=row["grid_code"], force=True)
    assert state(pg_small) == before


def test_concurrent_imports_and_a_refused_import_on_postgis(pg_small, tmp_path):
    ws = Workspace(pg_small)
    roads, water = ws.read("roads").to_crs(4326), ws.read("water").to_crs(4326)
    roads.assign(name="新路").to_file(tmp_path / "roads.geojson")
    water.assign(name="新水").to_file(tmp_path / "water.geojson")
    procs = [
        subprocess.Popen([*GISGRID, "import", pg_small, layer, str(tmp_path / f"{layer}.geojson")])
        for layer in ("roads", "water")
    ]
    assert [p.wait(300) for p in procs] == [0, 0]
    assert set(ws.read("roads")["name"]) == {"新路"} and set(ws.read("water")["name"]) == {"新水"}
    bad = ws.read("buildings").to_crs(4326)[["building_id", "geometry"]]
    bad = bad.set_geometry(bad.geometry.translate(3.0, 3.0))  # another city
    gpd.GeoDataFrame(bad, crs=4326).to_file(tmp_path / "bad.gpkg")
    before, revision = state(pg_small), ws.revision
    result = run("import", pg_small, "buildings", str(tmp_path / "bad.gpkg"))
    assert result.returncode == 2 and "nothing written" in result.stderr, result.stderr
    assert state(pg_small) == before and ws.revision == revision


def test_the_service_on_postgis(pg_small, tmp_path):
    ws = Workspace(pg_small)
    codes = ws.read("grids")["grid_code"].tolist()
    with serving(pg_small, tmp_path) as (base, _), httpx.Client(base_url=base, timeout=60) as http:
        items = http.get("/collections/grids/items", params={"limit": 100}).json()
        assert items["numberMatched"] == len(codes)
        grids = ws.read("grids").to_crs(4326)
        p = grids.geometry.iloc[0].representative_point()
        hit = http.get("/lookup", params={"lon": p.x, "lat": p.y}).json()
        assert hit["grid"]["code"] == grids["grid_code"].iloc[0]

        def lock(code: str) -> int:
            r = http.post(f"/grids/{code}/lock", headers={"X-API-Key": KEYS["planner"]})
            return r.status_code

        with ThreadPoolExecutor(len(codes)) as pool:
            assert list(pool.map(lock, codes)) == [200] * len(codes)
    assert ws.read("grids")["locked"].astype(bool).all()


def test_kill_9_during_writes_on_postgis(pg_small):
    """Each killed run leaves the state before it (same revision, same runs) or after it
    (one revision and one run more, the grids those of that run), nothing between."""
    rng = random.Random(5)
    ws = Workspace(pg_small)
    t0 = time.perf_counter()
    assert run("delineate", pg_small, "--full").returncode == 0
    took = time.perf_counter() - t0
    kills = 0
    for _ in range(10):
        revision, runs = ws.revision, len(ws.read("runs"))
        proc = subprocess.Popen(
            [*GISGRID, "delineate", pg_small, "--full"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.4, 0.9) * took)  # late: where the writing is
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(60)
        now = Workspace(pg_small)
        landed = now.revision - revision
        assert landed in (0, 1)
        assert len(now.read("runs")) == runs + landed
        last = int(pd.to_numeric(now.read("runs")["run_id"]).max())
        history = now.read("grid_history")
        snapshot = history[pd.to_numeric(history["run_id"]) == last]
        assert sorted(snapshot["grid_code"]) == sorted(now.read("grids")["grid_code"])
    assert kills >= 4  # most runs were really interrupted
