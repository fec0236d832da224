"""Benchmark: re-delineating after 2 % of buildings change, incremental vs full.

    python benchmarks/bench_stability.py [--share 0.02] [--seed 0]

On the demo district: delineate, then change a share of buildings at random (a
third removed, a third with new household counts, a third added as new towers
beside existing ones), then re-delineate twice on the same changed data:
incrementally (the default) and with ``--full``. Reports time, stability (share
of households keeping their grid code) and the DESIGN §5 metrics of both.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_delineation import build_workspace, run_gisgrid

from gisgrid.io.workspace import Workspace


def change(ws: Workspace, share: float, seed: int) -> dict[str, int]:
    """Remove, re-count and add buildings: ``share`` of the buildings in all."""
    rng = np.random.default_rng(seed)
    b = ws.read("buildings")
    n = max(3, round(len(b) * share))
    picked = rng.choice(len(b), size=n, replace=False)
    removed, recount, source = np.array_split(picked, 3)
    b.loc[b.index[recount], "households"] = (
        (b.loc[b.index[recount], "households"] * rng.uniform(0.3, 2.0, len(recount)))
        .round()
        .astype(int)
    )
    added = b.iloc[source].copy()
    added["building_id"] = [f"N{i:06d}" for i in range(len(added))]
    shifted = []
    for geom in added.geometry.values:  # a new building of the same kind just beside
        w = geom.bounds[2] - geom.bounds[0]
        shifted.append(shapely.transform(geom, lambda xy, dx=w + 6.0: xy + np.array([dx, 0.0])))
    added["geometry"] = shifted
    added["grid_code"] = None
    keep = b.drop(index=b.index[removed])
    out = gpd.GeoDataFrame(pd.concat([keep, added], ignore_index=True), crs=b.crs)
    ws.write({"buildings": out})
    return {"removed": len(removed), "recounted": len(recount), "added": len(added)}


def delineate(path: Path, *extra: str) -> tuple[dict, float]:
    metrics, seconds, _ = run_gisgrid(path, 2, *extra)
    return metrics, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--share", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    ws = build_workspace(work / "demo.gpkg", scale=1.0)
    _first, t_first = delineate(ws.path)
    changes = change(ws, args.share, args.seed)
    full_path = work / "full.gpkg"
    shutil.copy(ws.path, full_path)
    inc, t_inc = delineate(ws.path)
    full, t_full = delineate(full_path, "--full")
    keys = [
        "grids",
        "in_band_households",
        "contiguity",
        "coverage_min",
        "overlap_m2",
        "nesting",
        "building_integrity",
        "compound_splits_avoidable",
        "natural_boundaries",
        "stability",
    ]
    print(
        f"changes: {changes} (share {args.share:.0%}, seed {args.seed}); "
        f"first delineation {t_first:.2f} s\n"
    )
    print("| metric | incremental | full |\n|---|---|---|")
    print(f"| seconds (CLI, end to end) | {t_inc:.2f} | {t_full:.2f} |")
    for k in keys:
        a, b = inc[k], full[k]
        fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
        print(f"| {k} | {fmt(a)} | {fmt(b)} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
