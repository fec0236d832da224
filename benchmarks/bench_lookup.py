"""Batch point lookup: gisgrid's GridLocator against DuckDB spatial and geopandas.sjoin on
the same points, one core each; then `gisgrid lookup --csv` over a CSV of 10 M rows.

    pip install -e ".[bench]"
    python benchmarks/bench_lookup.py --workspace demo/demo.gpkg --csv-rows 10000000

Every engine answers the same random points over the published grids (lon/lat); the
answers are compared with gisgrid's. DuckDB runs with one thread (and, for reference,
with all cores) on an R-tree indexed table of the grids, loading its spatial extension
from the duckdb-extension-spatial wheel (nothing downloaded). The CSV run is a separate
`gisgrid lookup` process timed by /usr/bin/time; its rows per grid are checked against
an in-memory lookup of the same points.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from gisgrid.delineate.publication import published_grids
from gisgrid.io.workspace import Workspace
from gisgrid.lookup.locator import GridLocator


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def duckdb_lookup(grids: gpd.GeoDataFrame, lon: np.ndarray, lat: np.ndarray, threads: int):
    import duckdb
    import duckdb_extension_spatial

    ext = next(Path(duckdb_extension_spatial.__file__).parent.rglob("spatial.duckdb_extension"))
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "threads": threads})
    con.execute(f"LOAD '{ext}'")
    table = pd.DataFrame({"code": grids["grid_code"], "wkb": grids.geometry.to_wkb()})
    con.register("g_in", table)
    con.execute("CREATE TABLE g AS SELECT code, ST_GeomFromWKB(wkb) AS geom FROM g_in")
    con.execute("CREATE INDEX g_idx ON g USING RTREE (geom)")
    con.register("p_in", pd.DataFrame({"i": np.arange(len(lon)), "x": lon, "y": lat}))
    con.execute("CREATE TABLE p AS SELECT i, ST_Point(x, y) AS geom FROM p_in")

    def run():
        return con.execute(
            "SELECT p.i, any_value(g.code) FROM p JOIN g ON ST_Intersects(g.geom, p.geom) "
            "GROUP BY p.i"
        ).fetchnumpy()

    seconds, got = best_of(run)
    codes = np.full(len(lon), "", dtype=object)
    codes[got["i"]] = got[list(got)[1]]
    return seconds, codes


def csv_run(ws: Path, loc: GridLocator, bounds, rows: int, folder: Path) -> None:
    rng = np.random.default_rng(1)
    x0, y0, x1, y1 = bounds
    path = folder / "events.csv"
    lon, lat = rng.uniform(x0, x1, rows), rng.uniform(y0, y1, rows)
    t = time.perf_counter()
    with path.open("w", encoding="utf-8") as f:
        f.write("event_id,lon,lat,kind\n")
        for k in range(0, rows, 1_000_000):
            block = pd.DataFrame(
                {
                    "event_id": np.arange(k, min(rows, k + 1_000_000)),
                    "lon": lon[k : k + 1_000_000].round(7),
                    "lat": lat[k : k + 1_000_000].round(7),
                    "kind": "噪音扰民",
                }
            )
            block.to_csv(f, header=False, index=False)
    size = path.stat().st_size
    written = time.perf_counter() - t
    print(f"\n2. CSV of {rows:,} rows ({size / 1e6:,.0f} MB), written in {written:.0f} s")
    out, counts = folder / "out.csv", folder / "per-grid.csv"
    cmd = ["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "gisgrid.cli", "lookup",
           str(ws), "--csv", str(path), "--out", str(out), "--counts", str(counts)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall, peak_kb = done.stderr.strip().splitlines()[-1].split()
    per = pd.read_csv(counts, dtype={"grid_code": str}, encoding="utf-8-sig")
    exact = pd.Series(loc.codes(lon.round(7), lat.round(7))).value_counts()
    exact = exact[exact.index != ""]
    same = (
        per.set_index("grid_code")["rows"].sort_index().equals(exact.sort_index().astype("int64"))
    )
    print(
        f"   gisgrid lookup --csv: {float(wall):.1f} s ({rows / float(wall):,.0f} rows/s), "
        f"peak RSS {int(peak_kb) / 1024:,.0f} MB; rows per grid equal to the in-memory "
        f"lookup's: {same}; output {out.stat().st_size / 1e6:,.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--csv-rows", type=int, default=0)
    parser.add_argument(
        "--baseline", type=Path, help="A checkout whose gisgrid/lookup/locator.py to time too."
    )
    args = parser.parse_args()
    import duckdb

    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    versions = f"duckdb {duckdb.__version__}, geopandas {gpd.__version__}"
    print(f"date: {time.strftime('%Y-%m-%d')}; {versions}")
    grids = published_grids(Workspace(args.workspace)).to_crs(4326)
    t = time.perf_counter()
    loc = GridLocator(grids)
    build = time.perf_counter() - t
    rng = np.random.default_rng(0)
    bounds = grids.total_bounds
    x0, y0, x1, y1 = bounds
    n = args.points
    lon, lat = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
    ours, pos = best_of(lambda: loc.locate(lon, lat), repeat=5)
    codes = np.where(pos >= 0, loc.grid_codes[np.maximum(pos, 0)], "")
    print(f"\n1. {n:,} points over {len(grids)} grids ({(pos >= 0).mean():.1%} in a grid)")
    print(f"   GridLocator: {n / ours / 1e6:.2f} M points/s ({ours:.3f} s; index {build:.2f} s)")
    if args.baseline:
        spec = importlib.util.spec_from_file_location(
            "baseline_locator", args.baseline / "gisgrid/lookup/locator.py"
        )
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        t = time.perf_counter()
        base = old.GridLocator(grids)
        base_build = time.perf_counter() - t
        secs, base_pos = best_of(lambda: base.locate(lon, lat), repeat=5)
        print(
            f"   baseline GridLocator ({args.baseline}): {n / secs / 1e6:.2f} M points/s "
            f"({secs:.3f} s; index {base_build:.2f} s), same answers: "
            f"{bool((base_pos == pos).all())}; today {secs / ours:.2f}× faster"
        )
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    g = grids[["grid_code", "geometry"]]
    sj, joined = best_of(lambda: gpd.sjoin(pts, g, predicate="intersects", how="left"), 1)
    joined = joined[~joined.index.duplicated()]
    agree = (joined["grid_code"].fillna("").to_numpy(str) == codes).mean()
    print(f"   geopandas.sjoin: {n / sj / 1e6:.2f} M points/s ({sj:.3f} s), agree {agree:.4%}")
    one_core = sj
    for threads in (1, os.cpu_count() or 1):
        dt, dcodes = duckdb_lookup(g, lon, lat, threads)
        agree = (dcodes.astype(str) == codes).mean()
        print(
            f"   DuckDB spatial, {threads} thread(s): {n / dt / 1e6:.2f} M points/s "
            f"({dt:.3f} s), agree {agree:.4%}"
        )
        one_core = min(one_core, dt) if threads == 1 else one_core
    print(f"   GridLocator against the fastest other engine on one core: {one_core / ours:.1f}×")
    if args.csv_rows:
        with tempfile.TemporaryDirectory() as tmp:
            csv_run(args.workspace, loc, bounds, args.csv_rows, Path(tmp))


if __name__ == "__main__":
    main()
