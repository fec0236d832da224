"""A province-sized demo (scale 50) delineated on a Dask LocalCluster (issue 15).

    python benchmarks/bench_province.py --scale 50 --workers 2 --out /tmp/province.gpkg

Builds the district's workspace once (kept at ``--out``; reused when it is there), starts
a LocalCluster of worker processes (one thread each), delineates every community on it
with ``scheduler=`` the cluster's address, and prints time, each worker's peak resident
memory, this process's, and the DESIGN §5 quality figures. ``--compare-local`` then runs
the local process pool on a copy and checks the grids are identical.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).parent))
from bench_delineation import KEYS, build_workspace

from gisgrid.delineate.run import delineate
from gisgrid.io.workspace import Workspace


def _peak_mb(pid: int | str = "self") -> float:
    """A process's peak resident memory (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="8GiB", help="per worker")
    parser.add_argument("--out", type=Path, default=Path("/tmp/province.gpkg"))
    parser.add_argument("--compare-local", action="store_true")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    if not args.out.exists():
        t = time.perf_counter()
        build_workspace(args.out, scale=args.scale)
        print(f"built scale {args.scale} in {time.perf_counter() - t:.1f} s", flush=True)
    ws = Workspace(args.out)
    b = ws.read("buildings")
    print(
        f"{len(ws.read('communities')):,} communities, {len(b):,} buildings, "
        f"{int(b['households'].sum()):,} households, {int(b['population'].sum()):,} people",
        flush=True,
    )
    del b
    work = args.out.with_name(args.out.stem + "-dask.gpkg")
    shutil.copy(args.out, work)
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        last = [0.0]

        def progress(done: int, total: int) -> None:
            if time.perf_counter() - last[0] > 30 or done == total:
                last[0] = time.perf_counter()
                print(f"  {done}/{total} communities", flush=True)

        t = time.perf_counter()
        run = delineate(work, scheduler=cluster.scheduler_address, full=True, progress=progress)
        seconds = time.perf_counter() - t
        peaks = {addr: _peak_mb(pid) for addr, pid in client.run(os.getpid).items()}
    print(f"\nscale {args.scale} on a LocalCluster of {args.workers} worker processes")
    print(f"- delineate, end to end (read, fan out, measure, write): {seconds:.1f} s")
    for addr, mb in sorted(peaks.items()):
        print(f"- worker {addr}: peak {mb:,.0f} MB")
    print(f"- the client process (read, cut, measure, write): peak {_peak_mb():,.0f} MB")
    print("\n| metric | value |\n| --- | --- |")
    for key in KEYS:
        v = run.metrics.get(key)
        print(f"| {key} | {'–' if v is None else (f'{v:.4f}' if isinstance(v, float) else v)} |")
    if args.compare_local:
        local = args.out.with_name(args.out.stem + "-local.gpkg")
        shutil.copy(args.out, local)
        t = time.perf_counter()
        delineate(local, workers=args.workers, full=True)
        print(f"\nlocal pool of {args.workers}: {time.perf_counter() - t:.1f} s")
        a, b2 = (
            Workspace(p).read("grids").sort_values("grid_code").reset_index(drop=True)
            for p in (work, local)
        )
        same = a.drop(columns="geometry").equals(b2.drop(columns="geometry")) and bool(
            shapely.equals_exact(a.geometry.values, b2.geometry.values, tolerance=0).all()
        )
        print(f"identical grids from the Dask and the local path: {same}")
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b2.drop(columns="geometry"))


if __name__ == "__main__":
    main()
