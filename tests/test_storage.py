"""A workspace many people use at once: transactions, revisions, conflicts, crash safety.

Real concurrency only: separate processes running the `gisgrid` command, real
HTTP clients against `gisgrid serve`, and kill -9 at random moments. Every test
that takes ``small_copy`` (or ``put``) runs twice: on a GeoPackage and on a
PostGIS schema of the real test database.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import geopandas as gpd
import httpx
import pandas as pd
import psycopg
import pyogrio
import pytest
import shapely

from gisgrid import ConflictError
from gisgrid.delineate.edits import move
from gisgrid.io.digest import input_digest
from gisgrid.io.workspace import Workspace, copy_workspace

from .conftest import KEYS, _drop_schema, serving, snapshot

GISGRID = [sys.executable, "-m", "gisgrid.cli"]


def run(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([*GISGRID, *args], capture_output=True, text=True, check=check)


def state(where: str) -> str:
    """A digest of every layer (attributes and geometry): read by GDAL from a GeoPackage,
    by the workspace from PostGIS."""
    parts = []
    if where.endswith(".gpkg"):
        for name, _ in sorted(pyogrio.list_layers(where), key=lambda r: r[0]):
            parts.append(pyogrio.read_dataframe(where, layer=name))
    else:
        ws = Workspace(where)
        parts = [ws.read(name) for name in sorted(ws.layers())]
    return input_digest(
        *(f.drop(columns=[c for c in ("started_at", "seconds") if c in f]) for f in parts)
    )


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*GISGRID, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def served_copy(small_copy, tmp_path):
    """The small demo (9 grids), served, on each backend."""
    with serving(small_copy.location, tmp_path) as served:
        yield served


@pytest.fixture
def served_demo(demo_full, put, tmp_path):
    """The whole demo district (432 grids), served, on each backend."""
    with serving(put(demo_full.workspace).location, tmp_path) as served:
        yield served


@pytest.fixture
def small_gpkg(small, tmp_path) -> Workspace:
    """A copy of the small demo as a GeoPackage, for what only a file has."""
    shutil.copy(small, tmp_path / "small.gpkg")
    return Workspace(tmp_path / "small.gpkg")


def test_twelve_planners_lock_twelve_grids_at_once_over_http(served_demo):
    base, where = served_demo
    codes = Workspace(str(where)).read("grids")["grid_code"].tolist()[:12]
    assert len(codes) == 12

    def lock(code: str) -> int:
        r = httpx.post(
            f"{base}/plan/locks",
            json={"grid_codes": [code]},
            headers={"X-API-Key": KEYS["planner"]},
            timeout=60,
        )
        return r.status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lock, codes))
    assert statuses == [200] * 12
    grids = Workspace(str(where)).read("grids").set_index("grid_code")
    assert grids.loc[codes, "locked"].astype(bool).all()
    assert int(grids["locked"].astype(bool).sum()) == 12


def test_two_imports_of_different_layers_at_once_both_land(small_copy, tmp_path):
    roads = small_copy.read("roads").to_crs(4326)
    water = small_copy.read("water").to_crs(4326)
    for road, river in (("新路", "新水"), ("另一路", "另一水"), ("第三路", "第三水")):
        roads.assign(name=road).to_file(tmp_path / "roads.geojson")
        water.assign(name=river).to_file(tmp_path / "water.geojson")
        procs = [
            start("import", small_copy.location, "roads", str(tmp_path / "roads.geojson")),
            start("import", small_copy.location, "water", str(tmp_path / "water.geojson")),
        ]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err.decode()
        assert set(small_copy.read("roads")["name"]) == {road}
        assert set(small_copy.read("water")["name"]) == {river}


def test_a_move_beside_a_full_redelineation_lands_or_conflicts_never_vanishes(small_copy):
    b = small_copy.read("buildings")
    grids = small_copy.read("grids")
    row = b.iloc[0]
    target = next(
        c
        for c, g in zip(grids["grid_code"], grids.geometry, strict=True)
        if c != row["grid_code"] and g.distance(row.geometry) < 50
    )
    full = start("delineate", small_copy.location, "--full")
    time.sleep(0.5)  # the delineation has read the workspace and is working
    moved = run(
        "move", small_copy.location, "--building", row["building_id"], "--to", target, "--force"
    )
    _, err = full.communicate(timeout=300)
    assert moved.returncode in (0, 2), moved.stderr
    runs = pd.DataFrame(small_copy.read("runs"))
    final = small_copy.read("buildings").set_index("building_id").loc[row["building_id"]]
    if moved.returncode == 0 and full.returncode == 0:
        # both landed: the move came first and the delineation redrew around it, or the
        # move came after it; either way the move is in the history
        assert "move" in runs["kind"].tolist()
    elif moved.returncode == 2:
        assert "changed" in moved.stderr and "nothing was written" in moved.stderr
    else:  # the delineation lost: the move landed under it and it was refused
        assert full.returncode == 2 and b"changed" in err
        assert final["grid_code"] == target


def test_two_writers_of_the_same_rows_one_wins_the_other_gets_a_conflict(small_copy):
    b = small_copy.read("buildings")
    grids = small_copy.read("grids")
    row = b.iloc[0]
    near = [
        c
        for c, g in zip(grids["grid_code"], grids.geometry, strict=True)
        if c != row["grid_code"] and g.distance(row.geometry) < 50
    ]
    first, second = Workspace(small_copy.location), Workspace(small_copy.location)
    first.read("grids"), first.read("buildings")  # both read the same state …
    second.read("grids"), second.read("buildings")
    move(first, building=row["building_id"], to=near[0], force=True)  # … one writes …
    before = snapshot(small_copy)
    with pytest.raises(ConflictError, match=r"buildings.*grids.*nothing was written") as info:
        move(second, building=row["building_id"], to=row["grid_code"], force=True)
    assert info.value.revision == Workspace(small_copy.location).revision
    assert snapshot(small_copy) == before  # … and the second wrote nothing


def test_conflict_is_exit_2_naming_what_changed(small_copy, monkeypatch):
    from typer.testing import CliRunner

    from gisgrid.cli import app
    from gisgrid.delineate import run as run_module

    real = run_module._read_inputs

    def read_then_someone_writes(ws):  # another planner locks a grid right after our read
        inputs = real(ws)
        Workspace(ws.location).update(
            "grids",
            key="grid_code",
            keys=[inputs.previous["grid_code"].iloc[0]],
            values={"locked": True},
        )
        return inputs

    monkeypatch.setattr(run_module, "_read_inputs", read_then_someone_writes)
    before = Workspace(small_copy.location).revision
    result = CliRunner().invoke(app, ["delineate", small_copy.location, "--full"])
    assert result.exit_code == 2
    assert "grids changed" in result.output and "nothing was written" in result.output
    assert Workspace(small_copy.location).revision == before + 1  # only the lock landed


BAD_BUILDINGS = {
    "another city": lambda f: f.set_geometry(f.geometry.translate(2.0, 5.0)),
    "swapped lat/lon": lambda f: f.set_geometry(
        shapely.transform(f.geometry.values, lambda xy: xy[:, ::-1])
    ),
    "floors -1": lambda f: f.assign(floors=-1),
    "households -5": lambda f: f.assign(households=-5),
    "lines as buildings": lambda f: f.set_geometry(f.geometry.boundary),
    "points as buildings": lambda f: f.set_geometry(f.geometry.representative_point()),
    "empty geometries": lambda f: f.set_geometry([shapely.Polygon()] * len(f)),
    "no ids": lambda f: f.assign(building_id=None),
    "one id for all": lambda f: f.assign(building_id="B1"),
}


@pytest.mark.parametrize("case", BAD_BUILDINGS)
def test_an_import_that_rejects_every_row_changes_nothing(small_copy, tmp_path, case):
    good = small_copy.read("buildings").to_crs(4326)[["building_id", "kind", "floors", "geometry"]]
    good["households"] = 3
    bad = BAD_BUILDINGS[case](good)
    path = tmp_path / "bad.gpkg"
    gpd.GeoDataFrame(bad, crs=4326).to_file(path)
    before = snapshot(small_copy)
    result = run("import", small_copy.location, "buildings", str(path))
    assert result.returncode == 2, (case, result.stdout, result.stderr)
    assert "nothing" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(small_copy) == before  # a GeoPackage byte for byte
    assert len(small_copy.read("buildings")) == len(good)


def test_an_import_that_would_gut_the_buildings_is_refused(small_copy, tmp_path):
    comms = small_copy.read("communities").to_crs(4326)
    comms = comms.set_geometry(comms.geometry.translate(1.0, 1.0))  # the wrong place
    comms.to_file(tmp_path / "c.geojson")
    before = snapshot(small_copy)
    result = run("import", small_copy.location, "communities", str(tmp_path / "c.geojson"))
    said = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert "would cut buildings" in said or "in no community" in said, said
    assert snapshot(small_copy) == before


def test_append_and_update_modes(small_copy, tmp_path):
    sites = small_copy.read("resources").to_crs(4326)
    first = sites.iloc[:3].copy()
    first["name"] = "改名"
    extra = sites.iloc[:1].copy()
    extra["resource_id"] = "NEW1"
    path = tmp_path / "r.geojson"
    pd.concat([first, extra]).pipe(gpd.GeoDataFrame, crs=4326).to_file(path)
    n = len(sites)
    appended = run(
        "import",
        small_copy.location,
        "resources",
        str(path),
        "--mode",
        "append",
        "--max-rejected",
        "1",
    )
    assert appended.returncode == 0, appended.stderr
    after = small_copy.read("resources")
    assert len(after) == n + 1 and "NEW1" in set(after["resource_id"])
    assert "duplicate id" in appended.stdout  # the three already there were rejected
    updated = run("import", small_copy.location, "resources", str(path), "--mode", "update")
    assert updated.returncode == 0, updated.stderr
    after = small_copy.read("resources").set_index("resource_id")
    assert len(after) == n + 1
    assert (after.loc[first["resource_id"], "name"] == "改名").all()


def test_readers_see_before_or_after_never_wait(small_copy):
    """A reader answers at once, with the committed state, while a writer holds its
    transaction open having emptied the grids (GDAL reads the GeoPackage too)."""
    inside, done = threading.Event(), threading.Event()
    empty = small_copy.read("grids").iloc[:0]

    class RollBackError(Exception):
        pass

    def writer() -> None:
        with contextlib.suppress(RollBackError), small_copy.transaction(check=False) as tx:
            tx.replace("grids", empty)
            inside.set()
            done.wait(30)
            raise RollBackError

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert inside.wait(30)
        t0 = time.perf_counter()
        grids = Workspace(small_copy.location).read("grids")
        if small_copy.location.endswith(".gpkg"):
            assert len(pyogrio.read_dataframe(small_copy.path, layer="grids")) == len(grids)
        waited = time.perf_counter() - t0
    finally:
        done.set()
        thread.join(30)
    assert len(grids) > 0 and waited < 2  # the committed state, at once
    assert len(Workspace(small_copy.location).read("grids")) == len(grids)  # rolled back


def test_leftovers_of_old_versions_are_removed(small_gpkg):
    stray = small_gpkg.path.parent / f".{small_gpkg.path.stem}.abc123.tmp.gpkg"
    stray.write_bytes(b"x" * 1000)
    small_gpkg.update("grids", key="grid_code", keys=["nothing"], values={"locked": True})
    assert not stray.exists()


OPERATIONS = [
    ("lock", lambda ws, code, roads: ["lock", ws, code]),
    ("unlock", lambda ws, code, roads: ["unlock", ws, code]),
    ("import", lambda ws, code, roads: ["import", ws, "roads", roads]),
    ("delineate", lambda ws, code, roads: ["delineate", ws, "--full"]),
]


@contextlib.contextmanager
def trial(source: Workspace, folder: Path, name: str) -> Iterator[str]:
    """A copy of a workspace for one trial, removed afterwards: a file alone in ``folder``,
    or a schema of its own."""
    if source.location.endswith(".gpkg"):
        work = folder / "ws.gpkg"
        shutil.copy(source.path, work)
        yield str(work)
        work.unlink()
        return
    url = source.location.replace("?schema=", f"?schema={name}_")
    copy_workspace(source.location, url)
    try:
        yield url
    finally:
        _drop_schema(url)


def strays(where: str, folder: Path) -> list[str]:
    """What a write left that nothing uses: files beside the GeoPackage, or tables of the
    schema that no layer holds and that are not queued to be dropped."""
    if where.endswith(".gpkg"):
        con = sqlite3.connect(where)  # opening recovers an interrupted transaction
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        return sorted(p.name for p in folder.iterdir() if p.name != "ws.gpkg")
    base, schema = where.split("?schema=")
    with psycopg.connect(base) as con:
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        }
        con.execute(f'SET search_path TO "{schema}"')
        used = {r[0] for r in con.execute("SELECT physical FROM gisgrid_contents")}
        used |= {r[0] for r in con.execute("SELECT physical FROM gisgrid_garbage")}
    return sorted(t for t in tables - used if not t.startswith("gisgrid_"))


def test_kill_9_at_random_moments_leaves_before_or_after_and_nothing_else(small_copy, tmp_path):
    rng = random.Random(11)
    roads = tmp_path / "roads.geojson"
    r = small_copy.read("roads").to_crs(4326)
    r["name"] = "杀"
    r.to_file(roads)
    code = small_copy.read("grids")["grid_code"].iloc[0]
    folder = tmp_path / "w"
    folder.mkdir()
    with trial(small_copy, folder, "before") as where:
        before = state(where)
    after, took = {}, {}  # each operation's state after an uninterrupted run, and its time
    for name, make in OPERATIONS:
        with trial(small_copy, folder, name) as where:
            t0 = time.perf_counter()
            assert run(*make(where, code, str(roads))).returncode == 0
            took[name] = time.perf_counter() - t0
            after[name] = state(where)
    # 32 on a GeoPackage, where atomicity is our writer's; 12 on PostGIS, where it is the
    # database's transaction (and each trial copies a schema): the suite's time is bounded
    trials = 32 if small_copy.location.endswith(".gpkg") else 12
    kills = 0
    for i in range(trials):
        name, make = OPERATIONS[i % len(OPERATIONS)]
        with trial(small_copy, folder, f"k{i}") as where:
            proc = start(*make(where, code, str(roads)))
            time.sleep(rng.uniform(0.4, 0.9) * took[name])  # late: where the writing is
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(60)
            assert strays(where, folder) == [], (i, name)
            assert state(where) in (before, after[name]), (i, name)
    assert kills >= trials // 2  # most runs were really interrupted


def test_readers_over_http_never_wait_for_a_committing_delineation(served_copy):
    base, path = served_copy
    full = start("delineate", str(path), "--full")
    slowest, answered = 0.0, 0
    with httpx.Client(base_url=base, timeout=30) as http:
        while full.poll() is None:
            t0 = time.perf_counter()
            assert http.get("/collections/grids/items", params={"limit": 5}).status_code == 200
            slowest = max(slowest, time.perf_counter() - t0)
            answered += 1
    _, err = full.communicate()
    assert full.returncode == 0, err
    assert answered > 5 and slowest < 2.0  # (benchmarks/RESULTS.md has the figures)
