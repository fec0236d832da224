"""Benchmark: tiles and lookups under load (issue 13), today against a baseline revision
and against tippecanoe and nginx, in one run on this machine.

    python benchmarks/bench_tiles.py --workspace demo/demo.gpkg --baseline 8dbdd8e \\
        --tippecanoe /path/to/tippecanoe [--seconds 10]

1. cached tiles: every z14 ``redmap`` tile of the district fetched once, then ``wrk`` (2
   threads, 16 connections) over them, from ``gisgrid serve`` of each tree; nginx
   serving the same bytes from files is the ceiling;
2. the densest z14 ``redmap`` tile rendered uncached in-process (p50 of 20, after one
   render at that zoom);
3. HTTP point lookup (``wrk``, 1 connection) while another client posts 10,000-row
   batches without pause: with the clients on the server's cores, and with the server
   on core 0 and the clients on core 1 (``--only lookup``: three rounds of each);
4. the PMTiles export of ``redmap`` z0–16 (wall time of the CLI), and tippecanoe on the
   same layers and fields (GeoJSON written from the public catalog); with
   ``--export-runs N`` (``--only export`` for this part alone), N rounds of tippecanoe,
   the baseline and today one after the other, and each one's median;
5. gaps and overlap between grids in the densest z12 tile as decoded by GDAL (tile units²
   of a 4096-unit tile): each tree, and tippecanoe ``--detect-shared-borders``.

``wrk`` and nginx are Debian's packages. tippecanoe is built from its source
(github.com/felt/tippecanoe, ``make``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pyogrio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_service import latency, wrk
from bench_storage import ROOT, baseline_tree, env_for, serving

from gisgrid.io.workspace import Workspace
from gisgrid.publish.catalog import Catalog
from gisgrid.publish.tiles import TILESETS, TileSource, _carried, tiles_covering
from tests.test_tiles import _densest, _gaps_and_overlap

RENDER = """
import json, sys, time
from gisgrid.io.workspace import Workspace
from gisgrid.publish.catalog import Catalog
from gisgrid.publish.tiles import TileSource
z, x, y = (int(v) for v in sys.argv[2:5])
src = TileSource(Catalog(Workspace(sys.argv[1])))
src.catalog.refresh()
t = time.perf_counter(); data = src.render("redmap", z, x, y); first = time.perf_counter() - t
times = []
for _ in range(20):
    t = time.perf_counter(); src.render("redmap", z, x, y); times.append(time.perf_counter() - t)
times.sort()
open(sys.argv[5], "wb").write(src.render("grids", *(int(v) for v in sys.argv[6:9])))
print(json.dumps({"first": first, "p50": times[10], "bytes": len(data)}))
"""


def render(tree: Path, ws: str, tile: tuple, grids_tile: tuple, out: Path) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", RENDER, ws, *map(str, tile), str(out), *map(str, grids_tile)],
        env=env_for(tree),
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def cached_rate(base: str, tiles: list, seconds: int, folder: Path) -> float:
    with httpx.Client() as client:
        for z, x, y in tiles:
            client.get(f"{base}/tiles/redmap/{z}/{x}/{y}.mvt", headers={"Accept-Encoding": "gzip"})
    script = folder / "tiles.lua"
    paths = ",".join(f'"/tiles/redmap/{z}/{x}/{y}.mvt"' for z, x, y in tiles)
    script.write_text(
        f"local paths = {{{paths}}}\nlocal i = 0\nrequest = function()\n  i = i % #paths + 1\n"
        "  return wrk.format('GET', paths[i], {['Accept-Encoding'] = 'gzip'})\nend\n"
    )
    report = wrk(["-s", str(script), base], threads=2, conns=16, seconds=seconds)
    return float(re.search(r"Requests/sec:\s+(\S+)", report).group(1))


def nginx_rate(base: str, tiles: list, seconds: int, folder: Path) -> float:
    """nginx (2 workers) serving the tiles' gzip bytes from files: the ceiling."""
    root = folder / "www"
    with httpx.Client() as client:
        for z, x, y in tiles:
            r = client.get(
                f"{base}/tiles/redmap/{z}/{x}/{y}.mvt", headers={"Accept-Encoding": "gzip"}
            )
            path = root / "tiles" / "redmap" / str(z) / str(x) / f"{y}.mvt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(gzip.compress(r.content, mtime=0))
    port = 18080
    conf = folder / "nginx.conf"
    conf.write_text(
        f"worker_processes 2; pid {folder}/nginx.pid; error_log {folder}/error.log;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {root};\n"
        "  location /tiles/ { default_type application/vnd.mapbox-vector-tile;\n"
        "    add_header Content-Encoding gzip; } } }\n"
    )
    subprocess.run(["nginx", "-c", str(conf)], check=True)
    try:
        time.sleep(0.5)
        return cached_rate(f"http://127.0.0.1:{port}", tiles, seconds, folder)
    finally:
        subprocess.run(["nginx", "-c", str(conf), "-s", "stop"], check=False)


def lookup_during_batch(base: str, ws: Workspace, seconds: int, *, pinned: bool = False) -> str:
    """Point lookups (``wrk``, one connection) while another client posts 10,000-row
    batches without pause.

    With ``pinned``, the server's processes (the event loop and its batch workers) run
    on core 0, and this process, its poster thread and ``wrk`` on core 1: the clients then
    no longer take the server's CPU, as clients on other machines would not.
    """
    grids = ws.read("grids").to_crs(4326)
    p = grids.geometry.iloc[len(grids) // 2].representative_point()
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = grids.total_bounds
    batch = [
        {"lon": float(a), "lat": float(b)}
        for a, b in zip(rng.uniform(x0, x1, 10_000), rng.uniform(y0, y1, 10_000), strict=True)
    ]
    body = json.dumps(batch).encode()  # encoded once: the other client costs this machine little
    stop, batches = threading.Event(), []

    def post() -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                t = time.perf_counter()
                client.post(
                    f"{base}/lookup", content=body, headers={"Content-Type": "application/json"}
                )
                batches.append(time.perf_counter() - t)

    mine = os.sched_getaffinity(0)
    if pinned:
        httpx.post(
            f"{base}/lookup",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )  # the batch workers are started by the first batch
        for proc in _server_processes(base):
            proc.cpu_affinity([0])
        os.sched_setaffinity(0, {1})
    worker = threading.Thread(target=post)
    worker.start()
    time.sleep(1)
    try:
        report = wrk(
            [f"{base}/lookup?lon={p.x:.6f}&lat={p.y:.6f}"], threads=1, conns=1, seconds=seconds
        )
    finally:
        stop.set()
        worker.join()
        os.sched_setaffinity(0, mine)
    return (
        f"p50 {latency(report, '50')}, p99 {latency(report, '99')} ({len(batches)} batches of"
        f" 10,000, {np.median(batches):.2f} s each)"
    )


def _server_processes(base: str) -> list:
    """The process listening at ``base`` and its children."""
    import psutil

    port = int(base.rsplit(":", 1)[1])
    pid = next(
        c.pid
        for c in psutil.net_connections()
        if c.laddr and c.laddr.port == port and c.status == "LISTEN"
    )
    server = psutil.Process(pid)
    return [server, *server.children(recursive=True)]


def export(tree: Path, ws: str, out: Path, *extra: str) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gisgrid.cli", "tiles", ws, "--pmtiles", str(out), *extra],
        env=env_for(tree),
        cwd=tree,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - t


def lookup_race(baseline: str, ws_path: str, ws: Workspace, seconds: int, folder: Path) -> None:
    """Point lookups during batches, three rounds on each tree: the clients sharing the
    cores with the server, and pinned apart from it."""
    with baseline_tree(baseline, folder) as old:
        for label, tree in ((f"baseline {baseline}", old), ("today", ROOT)):
            with serving(tree, ws_path) as base:
                for _ in range(3):
                    print(f"3. {label}, shared cores: {lookup_during_batch(base, ws, seconds)}")
                for _ in range(3):
                    got = lookup_during_batch(base, ws, seconds, pinned=True)
                    print(f"3. {label}, server on core 0, clients on core 1: {got}")


def export_race(baseline: str, ws_path: str, tool: str, runs: int, folder: Path) -> None:
    """Rounds of tippecanoe, the baseline's export and today's, one after the other (so
    that a slow spell of the machine falls on all three); each one's median and runs."""
    got: dict[str, list[float]] = {"tippecanoe": [], f"baseline {baseline}": [], "today": []}
    with baseline_tree(baseline, folder) as old:
        for _ in range(runs):
            got["tippecanoe"].append(tippecanoe(tool, Workspace(ws_path), folder)[0])
            got[f"baseline {baseline}"].append(export(old, ws_path, folder / "old.pmtiles"))
            got["today"].append(export(ROOT, ws_path, folder / "today.pmtiles"))
    first = float(np.median(got["tippecanoe"]))
    print(f"4. PMTiles export z0–16, {runs} rounds (median; runs in seconds):")
    for label, secs in got.items():
        median = float(np.median(secs))
        runs_s = ", ".join(f"{v:.2f}" for v in secs)
        print(f"   {label}: {median:.2f} s ({median / first:.2f}× tippecanoe) [{runs_s}]")


def tippecanoe(tool: str, ws: Workspace, folder: Path) -> tuple[float, Path]:
    cat = Catalog(ws)
    cat.refresh()
    layers = []
    for spec in TILESETS["redmap"]:
        if spec.collection in cat.frames:
            path = folder / f"{spec.collection}.geojson"
            _carried(spec, cat, "public").to_file(path, driver="GeoJSON")
            layers += ["-L", f"{spec.collection}:{path}"]
    out = folder / "tippecanoe.pmtiles"
    t = time.perf_counter()
    subprocess.run(
        [tool, "-q", "-f", "-o", str(out), "-Z0", "-z16", "--detect-shared-borders", *layers],
        check=True,
    )
    return time.perf_counter() - t, out


def decoded_grids(data: bytes, tile: tuple, folder: Path, name: str):
    z, x, y = tile
    path = folder / name / str(z) / str(x) / f"{y}.pbf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return pyogrio.read_dataframe(path, layer="grids").geometry.values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", default="demo/demo.gpkg")
    parser.add_argument("--baseline", default="8dbdd8e")
    parser.add_argument("--tippecanoe", default="tippecanoe")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--export-runs", type=int, default=0)
    parser.add_argument("--only", choices=("export", "lookup"))
    args = parser.parse_args()
    ws_path = str(Path(args.workspace).resolve())
    ws = Workspace(ws_path)
    tmp = Path(tempfile.mkdtemp())
    print(
        f"{platform.node()}: {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    if args.export_runs or args.only == "export":
        export_race(args.baseline, ws_path, args.tippecanoe, max(1, args.export_runs), tmp)
    if args.only == "lookup":
        lookup_race(args.baseline, ws_path, ws, args.seconds, tmp)
    if args.only:
        return
    source = TileSource(Catalog(ws))
    source.catalog.refresh()
    tiles = tiles_covering(tuple(source.catalog.frames["buildings"].total_bounds), 14)
    sizes = {t: len(source.render("redmap", *t)) for t in tiles}
    densest = max(sizes, key=sizes.get)
    grid12 = _densest(source, "grids", 12)
    print(f"densest z14 tile {densest} ({sizes[densest]:,} bytes); densest z12 grids tile {grid12}")
    with baseline_tree(args.baseline, tmp) as old:
        for label, tree in ((f"baseline {args.baseline}", old), ("today", ROOT)):
            print(f"\n== {label}")
            with serving(tree, ws_path) as base:
                print(
                    f"1. cached tiles: {cached_rate(base, tiles, args.seconds, tmp):,.0f} tiles/s"
                )
                print(
                    f"3. point lookup during batches: {lookup_during_batch(base, ws, args.seconds)}"
                )
                pinned = lookup_during_batch(base, ws, args.seconds, pinned=True)
                print(f"   server on core 0, clients on core 1: {pinned}")
                if tree is ROOT:
                    print(
                        "   nginx, same bytes: "
                        f"{nginx_rate(base, tiles, args.seconds, tmp):,.0f} tiles/s"
                    )
            got = render(tree, ws_path, densest, grid12, tmp / f"{tree.name}-grids.pbf")
            print(
                f"2. densest z14 tile uncached: p50 {1000 * got['p50']:.1f} ms "
                f"(first at its zoom {1000 * got['first']:.0f} ms)"
            )
            secs = export(tree, ws_path, tmp / f"{tree.name}.pmtiles")
            print(f"4. PMTiles export z0–16: {secs:.1f} s")
            if tree is ROOT:
                print(
                    "   one worker: "
                    f"{export(tree, ws_path, tmp / 'one.pmtiles', '--workers', '1'):.1f} s"
                )
            geoms = decoded_grids(
                (tmp / f"{tree.name}-grids.pbf").read_bytes(), grid12, tmp, tree.name
            )
            gaps, overlap, n = _gaps_and_overlap(source, "grids", *grid12, geoms)
            print(
                f"5. densest z12 grids tile: gaps {gaps:,.1f}, "
                f"overlap {overlap:,.1f} units² ({n} grids)"
            )
    secs, out = tippecanoe(args.tippecanoe, ws, tmp)
    print(f"\n== tippecanoe\n4. PMTiles z0–16, same layers: {secs:.1f} s")
    from pmtiles.reader import MmapSource, Reader

    with open(out, "rb") as handle:
        data = Reader(MmapSource(handle)).get(*grid12)
    geoms = decoded_grids(
        gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data, grid12, tmp, "tippecanoe"
    )
    gaps, overlap, n = _gaps_and_overlap(source, "grids", *grid12, geoms)
    print(f"5. densest z12 grids tile: gaps {gaps:,.1f}, overlap {overlap:,.1f} units² ({n} grids)")


if __name__ == "__main__":
    main()
