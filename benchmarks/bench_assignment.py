"""Benchmark: network build, role assignment, coverage and suggested sites on the demo.

    python benchmarks/bench_assignment.py [--scale 1] [--suggest 5]

Generates the demo district as ``gisgrid demo`` does (delineated, oversized
communities re-divided), then times on the same workspace:

- building the road network with buildings and resources attached (the cache
  layers are dropped first, so this is a cold build);
- ``assign`` with the default policy;
- ``coverage`` (15 minutes, with the service-area polygons);
- ``coverage --suggest 5``, exact (HiGHS MILP) and greedy.

Baseline for grid workers, in the same run: the greedy rule a clerk would
follow (grids in code order, each takes the nearest free candidate of its
street), on the same distances; the ratio of total walking distances shows what
solving the assignment exactly buys.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from gisgrid.demo.pipeline import run_demo
from gisgrid.io.workspace import Workspace
from gisgrid.roster.assignment import assign
from gisgrid.roster.coverage import coverage_of, suggest_sites
from gisgrid.roster.network import network_of


def greedy_workers(ws: Workspace, net) -> float:
    """Total distance of the clerk's greedy rule over the same cost as ``assign``."""
    from gisgrid.roster.scopes import locate, scopes_of

    grids = ws.read("grids").sort_values("grid_code").reset_index(drop=True)
    b = ws.read("buildings", columns=["building_id", "community_code", "grid_code", "households"])
    b["grid_code"] = b["grid_code"].fillna("")
    res = locate(ws.read("resources"), communities=ws.read("communities"), grids=grids, buildings=b)
    cand = res[res["kind"] == "grid_worker"].reset_index(drop=True)
    sc = scopes_of("grid", b, grids, ws.read("communities"))
    keys = [f"buildings:{x}" for x in b["building_id"]]
    d = net.node_distances([f"resources:{r}" for r in cand["resource_id"]])[:, net.node_of(keys)]
    d = np.where(np.isfinite(d + net.access(keys)), d + net.access(keys), 1e12)
    cost = (sc.weights.T @ d.T).T
    free = np.ones(len(cand), bool)
    total = 0.0
    street = cand["at_street"].to_numpy(str)
    for s, row in enumerate(sc.frame.itertuples()):
        ok = free & (street == row.street_code)
        if not ok.any():
            continue
        r = np.flatnonzero(ok)[np.argmin(cost[ok, s])]
        free[r] = False
        total += cost[r, s]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--suggest", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo = run_demo(Path(tmp), scale=args.scale, seed=0, redivide_over=15000, workers=2)
        ws = Workspace(demo.workspace)
        # drop the network the demo cached, for a cold build
        import pyogrio

        for layer in ("network_edges", "network_nodes", "network_pieces"):
            pyogrio.write_dataframe(ws.read("grids").iloc[:0], ws.path, layer=layer)
        ws.write({}, meta={"network_digest": "cold"})
        t = time.perf_counter()
        net = network_of(ws)
        t_net = time.perf_counter() - t
        t = time.perf_counter()
        run = assign(ws)
        t_assign = time.perf_counter() - t
        t = time.perf_counter()
        cov = coverage_of(ws)
        t_cov = time.perf_counter() - t
        t = time.perf_counter()
        exact = suggest_sites(net, cov, args.suggest, exact=True)
        t_exact = time.perf_counter() - t
        t = time.perf_counter()
        greedy = suggest_sites(net, cov, args.suggest, exact=False)
        t_greedy = time.perf_counter() - t
        baseline = greedy_workers(ws, net)
        workers = run.totals["grid_worker"]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}"
        )
        print(
            f"network: {net.graph.number_of_nodes():,} nodes, {net.graph.number_of_edges():,} edges"
        )
        print("| step | seconds |\n|---|---|")
        print(f"| network build (cold) | {t_net:.1f} |")
        print(f"| assign (8 roles) | {t_assign:.1f} |")
        print(f"| coverage (15 min, areas) | {t_cov:.1f} |")
        print(f"| **network + assign + coverage** | **{t_net + t_assign + t_cov:.1f}** |")
        print(f"| suggest {args.suggest}, exact | {t_exact:.1f} |")
        print(f"| suggest {args.suggest}, greedy | {t_greedy:.1f} |")
        print(f"peak RSS {peak:.0f} MB")
        print(
            f"grid workers: {workers['filled']}/{workers['needed']} grids, total "
            f"{workers['total_m'] / 1000:.1f} km, mean {workers['mean_m']:.0f} m; greedy baseline "
            f"{baseline / 1000:.1f} km (optimal/greedy = {workers['total_m'] / baseline:.3f})"
        )
        for name, tot in run.totals.items():
            print(f"  {name}: {tot['filled']}/{tot['needed']}, mean {tot['mean_m']:.0f} m")
        print(
            f"coverage: {100 * cov.households_share:.1f} % of households, "
            f"{100 * cov.grids_share:.1f} % of grids wholly covered"
        )
        print(
            f"suggest {args.suggest}: exact adds {exact.added:,} households, "
            f"greedy {greedy.added:,}; greedy's own bound {greedy.bound:,.0f}"
        )
        gaps = run.gaps.groupby(["role", "gap"]).size()
        print("gaps:", ", ".join(f"{r} {g} {n}" for (r, g), n in gaps.items()))


if __name__ == "__main__":
    main()
