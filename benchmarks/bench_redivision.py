"""Benchmark: re-divide every oversized community of the demo district.

    python benchmarks/bench_redivision.py [--over 15000] [--max-households 6000]

Delineates the demo district, then re-divides every community above ``--over``
households into communities of at most ``--max-households``, and reports per old
community: parts, sizes, tiling error, compounds split across communities, and the
quality of the grids delineated inside the new communities.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_delineation import build_workspace

from gisgrid.delineate.redivision import redivide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--over", type=int, default=15000)
    parser.add_argument("--max-households", type=int, default=6000)
    args = parser.parse_args()
    ws = build_workspace(Path(tempfile.mkdtemp()) / "demo.gpkg", scale=1.0)
    subprocess.run(
        [sys.executable, "-m", "gisgrid.cli", "delineate", str(ws.path), "--json"],
        check=True,
        capture_output=True,
    )
    b = ws.read("buildings")
    per = b.groupby("community_code")["households"].sum()
    oversized = [c for c, h in per.items() if h > args.over]
    old = ws.read("communities").set_index("code").geometry
    print(
        "| community | households | parts | sizes | tiling error | compounds split | "
        "seconds |\n|---|---|---|---|---|---|---|"
    )
    new_codes = []
    for code in oversized:
        t = time.perf_counter()
        plan = redivide(ws, code, max_households=args.max_households, workers=2)
        seconds = time.perf_counter() - t
        new = plan.communities
        union = shapely.union_all(new.geometry.values)
        error = abs(union.area - old[code].area) / old[code].area
        bb = ws.read("buildings")
        mine = bb[bb["community_code"].isin(new["code"]) & (bb["compound_id"] != "")]
        split = int((mine.groupby("compound_id")["community_code"].nunique() > 1).sum())
        sizes = ", ".join(f"{h:,}" for h in sorted(new["households"]))
        print(
            f"| {code} | {per[code]:,} | {len(new)} | {sizes} | {error:.1e} | {split} | "
            f"{seconds:.1f} |"
        )
        new_codes += list(new["code"])
    runs = ws.read("runs")
    metrics = [json.loads(m) for m in runs["metrics"].iloc[-len(oversized) :]]
    keys = [
        "grids",
        "in_band_households",
        "contiguity",
        "coverage_min",
        "nesting",
        "building_integrity",
        "compound_splits_avoidable",
        "natural_boundaries",
    ]
    print("\nGrids delineated inside the new communities (one run per old community):\n")
    print(pd.DataFrame(metrics, index=oversized)[keys].to_markdown())


if __name__ == "__main__":
    main()
