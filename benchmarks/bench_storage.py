"""Benchmark: writes in place, and readers while a writer commits (issue 11).

    python benchmarks/bench_storage.py [--workspace demo/demo.gpkg] [--baseline 67f8047]

Measures in one run, on copies of the demo workspace, today's code against the
baseline commit (whole-file copy and replace on every write), each in its own
processes:

1. a grid lock, end to end in the library (``gisgrid.delineate.edits.lock``):
   median and max of 20 locks of different grids;
2. readers during ``gisgrid delineate --full``: ``gisgrid serve`` in its own
   process, one client fetching ``/collections/grids/items?limit=5`` and
   ``/healthz`` in turn for the whole run; the slowest answer, and the slowest
   in the second around the commit (when the delineation's process exits).

With ``--postgres URL`` it also copies the workspace into a fresh schema there and
measures today's lock on PostGIS, and HTTP point lookups (p50/p99 of 2,000 over one
connection) served from the GeoPackage and from PostGIS.

The baseline is checked out with ``git worktree`` into a temporary folder; its
web assets are linked from this tree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]

LOCK = """
import json, sys, time
ws, n = sys.argv[1], int(sys.argv[2])
try:
    from gisgrid.delineate.edits import lock
    from gisgrid.io.workspace import Workspace
except ImportError:
    from gisgrid.edits import lock
    from gisgrid.workspace import Workspace
codes = Workspace(ws).read("grids", columns=["grid_code"])["grid_code"].tolist()
out = []
for code in codes[:n]:
    t0 = time.perf_counter()
    lock(ws, [code])
    out.append(time.perf_counter() - t0)
print(json.dumps(out))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def locks(tree: Path, ws: Path | str, n: int = 20) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", LOCK, str(ws), str(n)],
        env=env_for(tree),
        cwd=tree,  # `python -m`/`-c` put the working folder first on sys.path
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextmanager
def serving(tree: Path, target: str) -> Iterator[str]:
    """``gisgrid serve`` of ``tree``'s code on ``target``, in its own process: its URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gisgrid.cli", "serve", target, "--port", str(port)],
        env=env_for(tree),
        cwd=tree,  # `python -m`/`-c` put the working folder first on sys.path
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(10)


def readers_during_delineation(tree: Path, ws: Path) -> dict[str, float]:
    env = env_for(tree)
    with serving(tree, str(ws)) as base:
        writer = subprocess.Popen(
            [sys.executable, "-m", "gisgrid.cli", "delineate", str(ws), "--full"],
            env=env,
            cwd=tree,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        samples: list[tuple[float, float]] = []
        ended = None
        with httpx.Client(base_url=base, timeout=60) as http:
            while ended is None or time.perf_counter() < ended + 3.0:
                for path in ("/collections/grids/items?limit=5", "/healthz"):
                    t0 = time.perf_counter()
                    r = http.get(path)
                    r.raise_for_status()
                    samples.append((t0, time.perf_counter() - t0))
                if ended is None and writer.poll() is not None:
                    ended = time.perf_counter()
        around = [d for t, d in samples if ended - 1.0 <= t <= ended + 3.0]
        worst = sorted(samples, key=lambda s: -s[1])[:5]
        shown = [(round(t - ended, 2), round(1000 * d)) for t, d in worst]
        print("  slowest five (seconds after the writer ended, ms):", shown)
        return {
            "requests": len(samples),
            "slowest_ms": 1000 * max(d for _, d in samples),
            "slowest_around_commit_ms": 1000 * max(around),
            "median_ms": 1000 * sorted(d for _, d in samples)[len(samples) // 2],
        }


def lookups(target: str, n: int = 2000) -> tuple[float, float]:
    """p50 and p99 (ms) of HTTP point lookups at grid centres, served from ``target``."""
    from gisgrid.io.workspace import Workspace

    grids = Workspace(target).read("grids").to_crs(4326)
    points = [g.representative_point() for g in grids.geometry.values]
    with serving(ROOT, target) as base:
        times = []
        with httpx.Client(base_url=base) as http:
            for i in range(n):
                p = points[i % len(points)]
                t0 = time.perf_counter()
                http.get("/lookup", params={"lon": p.x, "lat": p.y}).raise_for_status()
                times.append(time.perf_counter() - t0)
        times.sort()
        return 1000 * times[len(times) // 2], 1000 * times[int(len(times) * 0.99)]


def postgres(url: str, workspace: Path) -> None:
    """Today's lock and point lookups on PostGIS, against the GeoPackage in the same run."""
    import uuid

    from gisgrid.io.workspace import copy_workspace

    target = f"{url}?schema=bench_{uuid.uuid4().hex[:8]}"
    copy_workspace(workspace, target)
    times = sorted(locks(ROOT, target))
    print(
        f"PostGIS: lock median {1000 * times[len(times) // 2]:.1f} ms, "
        f"max {1000 * times[-1]:.1f} ms ({len(times)} locks)"
    )
    for name, where in (("GeoPackage", str(workspace)), ("PostGIS", target)):
        p50, p99 = lookups(where)
        print(f"{name}: HTTP point lookup p50 {p50:.2f} ms, p99 {p99:.2f} ms")


@contextmanager
def baseline_tree(revision: str, tmp: Path) -> Iterator[Path]:
    """The baseline's code checked out with ``git worktree`` (web assets linked from this
    tree), removed afterwards."""
    tree = tmp / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision],
        check=True,
        capture_output=True,
    )
    web = ROOT / "gisgrid" / "publish" / "web" / "node_modules"
    for folder in ("web", "publish/web"):  # where the web assets live in that tree
        if (tree / "gisgrid" / folder).is_dir():
            (tree / "gisgrid" / folder / "node_modules").symlink_to(web)
    try:
        yield tree
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            check=False,
            capture_output=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", type=Path, default=ROOT / "demo" / "demo.gpkg")
    parser.add_argument("--baseline", default="67f8047")
    parser.add_argument("--postgres", help="postgresql://… of a database with PostGIS")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    with baseline_tree(args.baseline, tmp) as base_tree:
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
        for name, tree in (("baseline " + args.baseline, base_tree), ("today", ROOT)):
            ws = tmp / f"{name.split()[0]}.gpkg"
            shutil.copy(args.workspace, ws)
            times = sorted(locks(tree, ws))
            print(
                f"{name}: lock median {1000 * times[len(times) // 2]:.1f} ms, "
                f"max {1000 * times[-1]:.1f} ms ({len(times)} locks)"
            )
            shutil.copy(args.workspace, ws)
            r = readers_during_delineation(tree, ws)
            print(
                f"{name}: readers during delineate --full: {r['requests']} requests, "
                f"median {r['median_ms']:.1f} ms, slowest {r['slowest_ms']:.0f} ms, "
                f"slowest around the commit {r['slowest_around_commit_ms']:.0f} ms"
            )
        if args.postgres:
            ws = tmp / "lookups.gpkg"
            shutil.copy(args.workspace, ws)
            postgres(args.postgres, ws)


if __name__ == "__main__":
    main()
