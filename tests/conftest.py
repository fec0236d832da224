"""Shared fixtures: tiny real files near Zhuzhou, and the demo district."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from gisgrid.crs import gk_zone_crs

LOCAL = gk_zone_crs(113.1)  # EPSG:4547
X0, Y0 = 411_000.0, 3_084_000.0  # a spot in 石峰区, metres in EPSG:4547


def local_frame(data: dict, geoms: list, crs=LOCAL) -> gpd.GeoDataFrame:
    """A GeoDataFrame built in metres near Zhuzhou, returned in ``crs``."""
    frame = gpd.GeoDataFrame(data, geometry=geoms, crs=LOCAL)
    return frame.to_crs(crs) if crs != LOCAL else frame


def square(x: float, y: float, size: float) -> shapely.Polygon:
    return shapely.box(X0 + x, Y0 + y, X0 + x + size, Y0 + y + size)


@pytest.fixture
def streets_file(tmp_path):
    path = tmp_path / "streets.geojson"
    local_frame(
        {"code": ["430204001000"], "name": ["田心街道"], "parent_code": ["430204000000"]},
        [shapely.box(X0, Y0, X0 + 2000, Y0 + 1000)],  # its two communities, side by side
        crs=4326,
    ).to_file(path)
    return path


@pytest.fixture
def communities_file(tmp_path):
    path = tmp_path / "communities.geojson"
    local_frame(
        {
            "code": ["430204001002", "430204001003"],
            "name": ["叫鸡岭社区", "东门社区"],
            "parent_code": ["430204001000", "430204001000"],
        },
        [square(0, 0, 1000), square(1000, 0, 1000)],
        crs=4326,
    ).to_file(path)
    return path


@pytest.fixture
def buildings_frame():
    """Four good buildings, two in each community, in WGS84."""
    return local_frame(
        {
            "building_id": ["b1", "b2", "b3", "b4"],
            "kind": ["residential"] * 4,
            "floors": [6, 6, 18, 3],
        },
        [square(100, 100, 40), square(300, 100, 40), square(1100, 100, 30), square(1300, 300, 12)],
        crs=4326,
    )


@pytest.fixture
def workspace_with_communities(tmp_path, streets_file, communities_file):
    from gisgrid.io.ingest import import_layer

    ws = tmp_path / "ws.gpkg"
    import_layer(ws, "streets", streets_file)
    import_layer(ws, "communities", communities_file)
    return ws


@pytest.fixture(scope="session")
def demo_full(tmp_path_factory):
    """The full-scale demo district, built once per test session."""
    from gisgrid.demo.pipeline import run_demo

    return run_demo(tmp_path_factory.mktemp("demo"), scale=1.0, seed=0)


@pytest.fixture(scope="session")
def small(tmp_path_factory):
    """One community of the demo (scale 0.02), delineated and assigned: its workspace path."""
    from gisgrid.demo.pipeline import run_demo

    return run_demo(tmp_path_factory.mktemp("small"), scale=0.02, seed=0).workspace


BACKENDS = ("gpkg", "postgis")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The kind of workspace a test runs on: each test that asks runs on both."""
    return request.param


@pytest.fixture
def put(backend, request, tmp_path):
    """A function that copies a GeoPackage workspace onto the test's backend (a file, or a
    schema of the test database of its own, dropped afterwards) and opens it there."""
    from gisgrid.io.workspace import Workspace, copy_workspace

    made = 0

    def place(source: Path):
        nonlocal made
        made += 1
        if backend == "gpkg":
            path = tmp_path / f"ws{made}.gpkg"
            shutil.copy(source, path)
            return Workspace(path)
        url = request.getfixturevalue("pg_schema")
        if made > 1:  # one schema per call
            url = url.replace("?schema=", f"?schema=n{made}_")
            request.addfinalizer(lambda: _drop_schema(url))
        copy_workspace(source, url)
        return Workspace(url)

    return place


def snapshot(ws) -> object:
    """Everything a workspace holds, to compare before and after: a GeoPackage's bytes, or
    a PostGIS schema's revision and every layer's rows."""
    from gisgrid.io.digest import input_digest
    from gisgrid.io.workspace import Workspace

    if ws.location.endswith(".gpkg"):
        return ws.path.read_bytes()
    fresh = Workspace(ws.location)
    return fresh.revision, input_digest(*(fresh.read(name) for name in sorted(fresh.layers())))


@pytest.fixture
def small_copy(small, put):
    """A copy of the small demo workspace that a test may change, on each backend."""
    return put(small)


KEYS = {"staff": "staff-secret", "planner": "planner-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(
    source: Path | str, folder: Path, *, settings: str = "", keys: dict[str, str] | None = None
) -> Iterator[tuple[str, Path | str]]:
    """A workspace served by `gisgrid serve` in its own process on a free loopback port,
    with a staff and a planner key (and ``keys``, key → role): (base URL, what is served).
    A GeoPackage is copied first; a PostGIS URL is served as it is."""
    import httpx

    from gisgrid.server import hash_key

    if str(source).startswith("postgresql://"):
        path: Path | str = str(source)
    else:
        path = folder / "ws.gpkg"
        shutil.copy(source, path)
    config = folder / "gisgrid.toml"
    roles = {**{k: role for role, k in KEYS.items()}, **(keys or {})}
    lines = "\n".join(f'"{hash_key(k)}" = "{role}"' for k, role in roles.items())
    where = path if isinstance(path, str) else "ws.gpkg"
    config.write_text(f'workspace = "{where}"\n{settings}\n[api_keys]\n{lines}\n', "utf-8")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gisgrid.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stdout.read().decode()) from None
                time.sleep(0.1)
        yield base, path
    finally:
        proc.terminate()
        proc.wait(10)


POSTGRES = os.environ.get("GISGRID_TEST_POSTGRES", "postgresql://postgres@127.0.0.1/gisgrid_test")


@pytest.fixture(scope="session")
def postgres() -> str:
    """The test database (PostgreSQL with PostGIS; `.ci/run` sets it up). Unreachable is a
    failure, not a skip: the PostGIS backend is tested on a real server or not at all."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES, connect_timeout=10) as con:
            con.execute("SELECT postgis_version()")
    except psycopg.Error as exc:
        pytest.fail(f"the PostGIS test database {POSTGRES} is not there: {exc}")
    return POSTGRES


@pytest.fixture
def pg_schema(postgres) -> Iterator[str]:
    """A workspace URL in a schema of its own, dropped afterwards."""
    import uuid

    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{postgres}?schema={schema}"
    _drop_schema(f"{postgres}?schema={schema}")


def _drop_schema(url: str) -> None:
    import psycopg

    base, schema = url.split("?schema=")
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_small(small, pg_schema) -> str:
    """The small demo copied into its own PostGIS schema: its URL."""
    from gisgrid.io.workspace import copy_workspace

    copy_workspace(small, pg_schema)
    return pg_schema
