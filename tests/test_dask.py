"""Delineation on a real Dask cluster: a scheduler and two workers, each a process of its own
(the `dask scheduler` and `dask worker` commands), against the local process pool."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from gisgrid.cli import app
from gisgrid.delineate import fanout
from gisgrid.delineate.redivision import redivide
from gisgrid.delineate.run import delineate
from gisgrid.io.workspace import open_workspace
from tests.conftest import free_port


@pytest.fixture(scope="module")
def district(tmp_path_factory) -> Path:
    """A demo district of 7 communities (scale 0.15)."""
    from gisgrid.demo.pipeline import run_demo

    return Path(run_demo(tmp_path_factory.mktemp("district"), scale=0.15, seed=0).workspace)


class Cluster:
    """`dask scheduler` and `dask worker` processes on loopback ports."""

    def __init__(self, workers: int = 2) -> None:
        self.address = f"tcp://127.0.0.1:{free_port()}"
        port = self.address.rsplit(":", 1)[1]
        self.procs = [self._start("scheduler", "--port", port)]
        self.workers: dict[str, subprocess.Popen] = {}
        for _ in range(workers):
            wport = free_port()
            self.workers[f"tcp://127.0.0.1:{wport}"] = self._start(
                "worker", self.address, "--nthreads", "1", "--no-nanny",
                "--worker-port", str(wport),
            )  # fmt: skip
        from distributed import Client

        try:
            with Client(self.address, timeout=30) as client:
                if workers:
                    client.wait_for_workers(workers, timeout=60)
        except BaseException:
            self.stop()
            raise

    def _start(self, *args: str) -> subprocess.Popen:
        dask = Path(sys.executable).with_name("dask")
        return subprocess.Popen(
            [str(dask), *args, "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        for proc in [*self.workers.values(), *self.procs]:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.stop()


def _copy(district: Path, folder: Path, name: str) -> str:
    path = folder / f"{name}.gpkg"
    shutil.copy(district, path)
    return str(path)


def _outputs(location: str) -> tuple[pd.DataFrame, pd.Series]:
    """The grids (without run times) and each building's grid code, as written."""
    ws = open_workspace(location)
    grids = ws.read("grids").sort_values("grid_code").reset_index(drop=True)
    buildings = ws.read("buildings").set_index("building_id")["grid_code"].sort_index()
    return grids, buildings


def _assert_same(a: str, b: str) -> None:
    (ga, ba), (gb, bb) = _outputs(a), _outputs(b)
    assert len(ga) > 7
    pd.testing.assert_frame_equal(ga.drop(columns="geometry"), gb.drop(columns="geometry"))
    assert shapely.equals_exact(ga.geometry.values, gb.geometry.values, tolerance=0).all()
    pd.testing.assert_series_equal(ba, bb)


def test_the_cli_on_a_cluster_writes_the_local_runs_grids(district, cluster, tmp_path):
    local, remote = _copy(district, tmp_path, "local"), _copy(district, tmp_path, "remote")
    delineate(local, workers=2, full=True)
    env = {**os.environ, "GISGRID_DASK_SCHEDULER": cluster.address}
    out = subprocess.run(
        [sys.executable, "-m", "gisgrid.cli", "delineate", remote, "--full", "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["metrics"]["grids"] > 7
    _assert_same(local, remote)


def test_a_worker_killed_mid_run_loses_nothing(district, cluster, tmp_path, caplog):
    """The worker holding queued and running communities is killed after the first result;
    its communities are sent again to the other worker, and the grids are the local run's."""
    from distributed import Client

    local, remote = _copy(district, tmp_path, "local"), _copy(district, tmp_path, "remote")
    delineate(local, workers=1, full=True)
    killed: list[str] = []

    def kill_a_busy_worker(done: int, total: int) -> None:
        if killed or done == total:
            return
        with Client(cluster.address, timeout=10) as client:
            busy = [a for a, keys in client.processing().items() if keys]
        assert busy, "no worker holds work to lose"
        cluster.workers[busy[0]].send_signal(signal.SIGKILL)
        killed.append(busy[0])

    run = delineate(remote, full=True, scheduler=cluster.address, progress=kill_a_busy_worker)
    assert killed and cluster.workers[killed[0]].wait(10) == -signal.SIGKILL
    resent = [r for r in caplog.records if "lost with its worker" in r.getMessage()]
    assert resent, "no community was lost with the worker"
    assert len(run.communities) == 7
    _assert_same(local, remote)


def test_a_redivision_on_a_cluster_equals_the_local_one(district, cluster, tmp_path):
    local, remote = _copy(district, tmp_path, "local"), _copy(district, tmp_path, "remote")
    buildings = open_workspace(local).read("buildings")
    largest = buildings.groupby("community_code")["households"].sum().idxmax()
    a = redivide(local, largest, parts=2, workers=2)
    b = redivide(remote, largest, parts=2, scheduler=cluster.address)
    assert list(a.communities["code"]) == list(b.communities["code"])
    _assert_same(local, remote)


def test_an_unreachable_scheduler_is_one_line_and_exit_2(district, tmp_path, monkeypatch):
    monkeypatch.setattr(fanout, "CONNECT_SECONDS", 2)
    remote = _copy(district, tmp_path, "remote")
    before = _outputs(remote)
    address = f"tcp://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["delineate", remote, "--scheduler", address])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "dask scheduler" in lines[0]
    assert "Traceback" not in result.output
    after = _outputs(remote)
    pd.testing.assert_frame_equal(
        before[0].drop(columns="geometry"), after[0].drop(columns="geometry")
    )


def test_a_scheduler_without_workers_says_so(district, tmp_path, monkeypatch):
    monkeypatch.setattr(fanout, "WORKERS_SECONDS", 2)
    c = Cluster(workers=0)
    try:
        started = time.monotonic()
        with pytest.raises(ValueError, match=r"no workers.*dask worker"):
            delineate(_copy(district, tmp_path, "remote"), scheduler=c.address)
        assert time.monotonic() - started < 30
    finally:
        c.stop()


def test_a_postgis_workspace_on_a_cluster_equals_the_local_run(
    district, cluster, tmp_path, pg_schema
):
    """The command's machine reads PostGIS and scatters the communities; the workers never
    connect to it; the run is written back in one transaction, as a local run is."""
    from gisgrid.io.workspace import copy_workspace

    local = _copy(district, tmp_path, "local")
    delineate(local, workers=2, full=True)
    copy_workspace(district, pg_schema)
    run = delineate(pg_schema, full=True, scheduler=cluster.address)
    assert len(run.communities) == 7
    _assert_same(local, pg_schema)
