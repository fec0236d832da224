"""Benchmark: does one heavy batch stall everyone (issue 13)?

    python benchmarks/bench_batch_stall.py [--workspace demo/demo.gpkg] [--baseline 67f8047]

`gisgrid serve` on the demo workspace, today's code and the baseline's, each in its own
process. One client posts the heaviest batch the default settings allow (10,000
addresses, public); meanwhile another asks ``/healthz`` in a loop. Reports the batch's
time and the /healthz answers during it: median and slowest.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_storage import ROOT, baseline_tree, serving


def measure(tree: Path, ws: Path) -> dict[str, float]:
    from gisgrid.io.workspace import Workspace

    addresses = Workspace(ws).read("buildings", columns=["address"], geometry=False)["address"]
    rows = [{"address": a + "附近"} for a in (addresses.tolist() * 2)[:10_000]]
    with serving(tree, str(ws)) as base:
        done: dict[str, float] = {}

        def heavy() -> None:
            t0 = time.perf_counter()
            httpx.post(f"{base}/lookup", json=rows, timeout=600).raise_for_status()
            done["seconds"] = time.perf_counter() - t0

        thread = threading.Thread(target=heavy)
        thread.start()
        waits = []
        with httpx.Client(base_url=base, timeout=600) as http:
            while thread.is_alive():
                t0 = time.perf_counter()
                http.get("/healthz").raise_for_status()
                waits.append(time.perf_counter() - t0)
                time.sleep(0.02)
        thread.join()
    return {
        "batch_s": done["seconds"],
        "healthz": len(waits),
        "median_ms": 1000 * statistics.median(waits),
        "slowest_ms": 1000 * max(waits),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", type=Path, default=ROOT / "demo" / "demo.gpkg")
    parser.add_argument("--baseline", default="67f8047")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    with baseline_tree(args.baseline, tmp) as base_tree:
        for name, tree in ((f"baseline {args.baseline}", base_tree), ("today", ROOT)):
            ws = tmp / "ws.gpkg"
            shutil.copy(args.workspace, ws)
            r = measure(tree, ws)
            print(
                f"{name}: batch of 10,000 addresses {r['batch_s']:.1f} s; /healthz meanwhile "
                f"{r['healthz']:.0f} answers, median {r['median_ms']:.1f} ms, slowest "
                f"{r['slowest_ms']:.0f} ms"
            )


if __name__ == "__main__":
    main()
