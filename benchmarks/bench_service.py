"""Benchmark: the 红地图 service on the demo district.

    python benchmarks/bench_service.py [--workspace demo/demo.gpkg] [--seconds 10]

Measures, in one run on this machine:

1. batch point lookup in-process (one core): 1,000,000 points over the
   district's bounding box, :class:`gisgrid.lookup.locator.GridLocator` vs
   ``geopandas.sjoin`` on the same points (answers compared too);
2. HTTP single-point lookup on loopback with ``wrk`` (one connection), p50/p99;
3. tiles: the uncached ``redmap`` tile at z14 over the densest area (in-process
   render, p50 of 20), every z14 tile fetched once over HTTP (uncached, p50),
   then the cached rate with ``wrk`` (2 threads, 16 connections) over them;
4. address lookup: 1,000 demo addresses perturbed the way people write them,
   top-1 accuracy and p50 time.

``wrk`` is Debian's package (``apt-get install wrk``). The server is
``gisgrid serve`` in its own process (one uvicorn worker).
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np

from gisgrid.io.workspace import Workspace
from gisgrid.lookup.gazetteer import Gazetteer, normalise
from gisgrid.lookup.locator import GridLocator
from gisgrid.publish.catalog import Catalog
from gisgrid.publish.tiles import TileSource, tiles_covering

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_storage import ROOT, serving

_CN = "零一二三四五六七八九"


def chinese(n: int) -> str:
    """12 → 十二, 5 → 五, 105 → 一百零五 (as people write building numbers)."""
    if n < 10:
        return _CN[n]
    if n < 20:
        return "十" + (_CN[n % 10] if n % 10 else "")
    if n < 100:
        return _CN[n // 10] + "十" + (_CN[n % 10] if n % 10 else "")
    return "".join(_CN[int(d)] for d in str(n))


def perturb(address: str, street: str, community: str, rng: np.random.Generator) -> str:
    """An address as someone might type it."""
    text = address
    if rng.random() < 0.7:
        text = text.replace("株洲市", "")
    if rng.random() < 0.6:
        text = text.replace("石峰区", "")
    if rng.random() < 0.5:
        text = text.replace(street, "")
    if rng.random() < 0.2:
        text = text.replace("石峰区", "石峰区" + community.replace("居委会", ""), 1)
    if rng.random() < 0.4:  # building number in Chinese numerals
        text = re.sub(r"(\d+)栋", lambda m: chinese(int(m.group(1))) + "栋", text)
    if rng.random() < 0.3:
        text = text.replace("栋", str(rng.choice(["幢", "号楼", "座"])))
    if rng.random() < 0.3:  # full-width digits
        text = text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    if rng.random() < 0.3:
        text += f"{rng.integers(1, 5)}单元{rng.integers(1, 30)}0{rng.integers(1, 4)}室"
    if rng.random() < 0.3:  # a typo: one Chinese character of a name replaced
        hanzi = [
            i
            for i, ch in enumerate(text)
            if "\u4e00" <= ch <= "\u9fff" and ch not in "路街巷号栋幢座单元室区市"
        ]
        if hanzi:
            i = int(rng.choice(hanzi))
            text = (
                text[:i] + str(rng.choice(list("的一是了我不人在他有这个上们来到"))) + text[i + 1 :]
            )
    return text


def wrk(url_or_script: list[str], *, threads: int, conns: int, seconds: int) -> str:
    return subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", *url_or_script],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def latency(report: str, pct: str) -> str:
    return re.search(rf"^\s+{pct}%\s+(\S+)", report, re.M).group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, help="A demo workspace (generated when omitted).")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    if args.workspace is None:
        from gisgrid.demo.pipeline import run_demo

        args.workspace = run_demo(Path(tmp.name), redivide_over=15000, workers=2).workspace
    ws = Workspace(args.workspace)
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    grids = ws.read("grids")

    # 1. batch lookup in-process
    t = time.perf_counter()
    loc = GridLocator(grids)
    build = time.perf_counter() - t
    x0, y0, x1, y1 = grids.to_crs(4326).total_bounds
    rng = np.random.default_rng(0)
    n = 1_000_000
    lon, lat = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        pos = loc.locate(lon, lat)
        runs.append(time.perf_counter() - t)
    ours = min(runs)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    g4326 = grids.to_crs(4326)[["grid_code", "geometry"]]
    t = time.perf_counter()
    joined = gpd.sjoin(pts, g4326, predicate="intersects", how="left")
    sjoin = time.perf_counter() - t
    joined = joined[~joined.index.duplicated()]
    agree = (
        joined["grid_code"].fillna("").to_numpy(str)
        == np.where(pos >= 0, loc.grid_codes[np.maximum(pos, 0)], "")
    ).mean()
    inside = (pos >= 0).mean()
    print(f"\n1. batch lookup of {n:,} points ({inside:.1%} in a grid), index {build:.1f} s")
    print(
        f"   GridLocator {n / ours / 1e6:.2f} M points/s ({ours:.3f} s); "
        f"geopandas.sjoin {n / sjoin / 1e6:.2f} M points/s ({sjoin:.2f} s); "
        f"ratio {sjoin / ours:.1f}×; answers agree on {agree:.4%}"
    )

    # 2.–3. over HTTP
    with serving(ROOT, str(ws.path)) as base:
        p = g4326.geometry.iloc[len(g4326) // 2].representative_point()
        url = f"{base}/lookup?lon={p.x:.6f}&lat={p.y:.6f}"
        httpx.get(url)
        report = wrk([url], threads=1, conns=1, seconds=args.seconds)
        rate = re.search(r"Requests/sec:\s+(\S+)", report).group(1)
        print(
            f"\n2. HTTP point lookup (wrk, 1 connection, {args.seconds} s): "
            f"p50 {latency(report, '50')}, p99 {latency(report, '99')}, {rate} requests/s"
        )

        cat = Catalog(ws)
        cat.refresh()
        src = TileSource(cat)
        tiles = tiles_covering(tuple(cat.frames["buildings"].total_bounds), 14)
        sizes = {t: len(src.render("redmap", *t)) for t in tiles}
        densest = max(sizes, key=sizes.get)
        times = []
        for _ in range(20):
            t = time.perf_counter()
            src.render("redmap", *densest)
            times.append(time.perf_counter() - t)
        print(
            f"\n3. tiles: densest z14 redmap tile {densest} ({sizes[densest]:,} bytes): "
            f"uncached render p50 {1000 * np.median(times):.1f} ms, "
            f"max {1000 * max(times):.1f} ms (in-process, 20 runs)"
        )
        http_times = []
        with httpx.Client() as client:
            for z, x, y in tiles:
                t = time.perf_counter()
                client.get(
                    f"{base}/tiles/redmap/{z}/{x}/{y}.mvt", headers={"Accept-Encoding": "gzip"}
                )
                http_times.append(time.perf_counter() - t)
        print(
            f"   every z14 tile once over HTTP (uncached): "
            f"p50 {1000 * np.median(http_times):.1f} ms, "
            f"max {1000 * max(http_times):.1f} ms over {len(tiles)} tiles"
        )
        script = Path(tmp.name) / "tiles.lua"
        paths = ",".join(f'"/tiles/redmap/{z}/{x}/{y}.mvt"' for z, x, y in tiles)
        script.write_text(
            f"local paths = {{{paths}}}\nlocal i = 0\n"
            "request = function()\n  i = i % #paths + 1\n"
            "  return wrk.format('GET', paths[i], {['Accept-Encoding'] = 'gzip'})\nend\n"
        )
        report = wrk(["-s", str(script), base], threads=2, conns=16, seconds=args.seconds)
        rate = float(re.search(r"Requests/sec:\s+(\S+)", report).group(1))
        print(
            f"   cached (wrk, 2 threads, 16 connections, {args.seconds} s): {rate:,.0f} tiles/s, "
            f"p50 {latency(report, '50')}, p99 {latency(report, '99')}"
        )

    # 4. address lookup
    b = ws.read("buildings", columns=["building_id", "address", "community_code"])
    streets = ws.read("streets")
    comms = ws.read("communities")
    gaz = Gazetteer(b, drop=[*streets["name"], *comms["name"]])
    street_of = dict(zip(streets["code"].str[:9], streets["name"], strict=True))
    comm_of = dict(zip(comms["code"], comms["name"], strict=True))
    sample = b[b["address"] != ""].sample(1000, random_state=1)
    rng = np.random.default_rng(1)
    hits, times, shown = 0, [], []
    for row in sample.itertuples():
        query = perturb(
            row.address,
            street_of.get(row.community_code[:9], ""),
            comm_of.get(row.community_code, ""),
            rng,
        )
        t = time.perf_counter()
        found = gaz.search(query)
        times.append(time.perf_counter() - t)
        ok = bool(found) and (
            found[0].building_id == row.building_id
            or normalise(found[0].address) == normalise(row.address)
        )
        hits += ok
        if len(shown) < 6:
            shown.append(f"{query} → {found[0].address if found else '—'} {'✓' if ok else '✗'}")
    print(
        f"\n4. address lookup, 1,000 perturbed demo addresses: top-1 {hits / 10:.1f} %, "
        f"p50 {1000 * np.median(times):.2f} ms, p99 {1000 * np.percentile(times, 99):.2f} ms"
    )
    for line in shown:
        print(f"   {line}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
