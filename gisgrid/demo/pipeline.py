"""``gisgrid demo``: generate the demo district and run the whole pipeline on it.

Each stage of gisgrid adds itself here, so the demo always runs everything
there is: today, generation → households from census points → workspace →
grid delineation → re-division of oversized communities → role assignment and
service coverage → map.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

import gisgrid
from gisgrid.delineate.publication import publish, published_buildings, published_grids
from gisgrid.delineate.redivision import redivide
from gisgrid.delineate.run import delineate
from gisgrid.demo.district import make_district
from gisgrid.io.datasets import ATTRIBUTION
from gisgrid.io.ingest import derive_buildings
from gisgrid.io.validation import rejected_table
from gisgrid.io.workspace import Workspace
from gisgrid.publish.webmap import district_map, write_map
from gisgrid.roster.assignment import assign
from gisgrid.roster.coverage import coverage_of
from gisgrid.roster.roster import rosters

__all__ = ["DemoResult", "count_households", "run_demo"]

logger = logging.getLogger(__name__)


@dataclass
class DemoResult:
    """What ``gisgrid demo`` produced."""

    workspace: Path
    map: Path
    counts: dict[str, int] = field(default_factory=dict)
    households: int = 0
    population: int = 0
    rejected: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    grids: int = 0
    redivided: list[str] = field(default_factory=list)
    gaps: int = 0
    coverage: float = 0.0


def count_households(layers: dict) -> pd.DataFrame:
    """Fill the generated buildings' households and population from the census points,
    as an import would; returns the ``rejected`` rows (stray census points)."""
    derived = derive_buildings(
        layers["buildings"].drop(columns=["planned_households", "compound_name"]),
        communities=layers["communities"],
        census=layers["census_points"],
        source="demo",
    )
    layers["buildings"] = derived.buildings
    return rejected_table([derived.rejected_buildings, derived.rejected_points])


def hotline_events(ws: Workspace, path: Path, *, n: int = 2000, seed: int = 0) -> Path:
    """A synthetic 12345 hotline log to try ``gisgrid lookup --csv`` on: events near homes,
    in WGS84 lon/lat, a few of them outside the district."""
    rng = np.random.default_rng([seed, 12345])
    b = ws.read("buildings", columns=["households"]).to_crs(4326)
    w = b["households"].fillna(0).to_numpy(float) + 1.0
    pick = rng.choice(len(b), size=n, p=w / w.sum())
    pts = shapely.get_coordinates(b.geometry.values[pick].representative_point())
    pts += rng.normal(0, 0.0002, pts.shape)  # about 20 m
    far = rng.random(n) < 0.02
    pts[far] += 0.3  # 30 km away: outside every grid
    kinds = ["噪音扰民", "占道经营", "环境卫生", "物业纠纷", "道路破损", "停车难", "供水供电"]
    start = np.datetime64("2026-10-01T00:00")
    events = pd.DataFrame(
        {
            "event_id": [f"12345-{i:06d}" for i in range(1, n + 1)],
            "reported_at": (
                start + rng.integers(0, 31 * 24 * 60, n).astype("timedelta64[m]")
            ).astype(str),
            "category": rng.choice(kinds, n),
            "lon": pts[:, 0].round(6),
            "lat": pts[:, 1].round(6),
        }
    ).sort_values("reported_at")
    events.to_csv(path, index=False, encoding="utf-8-sig")
    return path


class _Stages:
    """Announces each stage of the demo and times it."""

    def __init__(self, announce: Callable[[str], None]) -> None:
        self.announce = announce
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str, key: str) -> Iterator[None]:
        self.announce(stage)
        t = time.perf_counter()
        yield
        self.seconds[key] = time.perf_counter() - t


def _write_workspace(
    path: Path, layers: dict, rejected: pd.DataFrame, *, scale: float, seed: int
) -> Workspace:
    """A new workspace holding the district's layers, its CRS and its attribution."""
    ws = Workspace(path)
    ws.write(
        {**layers, "rejected": rejected},
        fresh=True,
        meta={
            "crs": layers["buildings"].crs.to_string(),
            "gisgrid_version": gisgrid.__version__,
            "attribution": ATTRIBUTION,
            "demo_scale": str(scale),
            "demo_seed": str(seed),
        },
    )
    return ws


_MAP_LAYERS = (
    "streets",
    "communities",
    "roads",
    "water",
    "resources",
    "community_history",
    "service_areas",
    "uncovered",
)


def _draw_map(ws: Workspace, path: Path) -> Path:
    """The offline map of the workspace, with each grid's public roster."""
    stored = {name: ws.read(name) for name in _MAP_LAYERS if name in ws}
    stored["grids"] = published_grids(ws)  # the map is public: what is published
    stored["buildings"] = published_buildings(ws)
    stored["rosters"] = rosters(ws, private=False)
    return write_map(district_map(stored, title="石峰区 demo · gisgrid"), path)


def run_demo(
    out: str | Path = "demo",
    *,
    scale: float = 1.0,
    seed: int = 0,
    workers: int = 1,
    redivide_over: int | None = None,
    redivide_to: int = 8000,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Generate the demo district into ``out/demo.gpkg``, draw ``out/demo.html`` and write
    ``out/hotline.csv`` (synthetic 12345 hotline events).

    Parameters
    ----------
    out
        Output folder (created when missing).
    scale
        Size of the district; see :func:`gisgrid.demo.make_district`.
    seed
        Random seed: the same seed gives the same district.
    workers
        Processes for the delineation.
    redivide_over, redivide_to
        When given, re-divide every community above ``redivide_over`` households into
        communities of at most ``redivide_to`` (the map shows the old boundaries).
    progress
        Optional callable taking a stage name, called as each stage starts.

    Returns
    -------
    DemoResult
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timed = _Stages(progress or (lambda name: None))
    with timed("generating the district", "generate"):
        layers = make_district(scale=scale, seed=seed)
    with timed("counting households from census points", "households"):
        rejected = count_households(layers)
    with timed("writing the workspace", "write"):
        ws = _write_workspace(out / "demo.gpkg", layers, rejected, scale=scale, seed=seed)
    with timed("delineating grids", "delineate"):
        run = delineate(ws, workers=workers)
    redivided: list[str] = []
    if redivide_over is not None:
        with timed("re-dividing oversized communities", "redivide"):
            per = ws.read("buildings").groupby("community_code")["households"].sum()
            for code in sorted(c for c, h in per.items() if h > redivide_over):
                redivide(ws, code, max_households=redivide_to, workers=workers)
                redivided.append(code)
    publish(ws, note="演示区划 the demo's first delineation")
    with timed("assigning rosters and measuring coverage", "assign"):
        assigned = assign(ws)
        cov = coverage_of(ws)
    hotline_events(ws, out / "hotline.csv", seed=seed)
    with timed("drawing the map", "map"):
        html = _draw_map(ws, out / "demo.html")
    seconds = timed.seconds
    b = layers["buildings"]
    return DemoResult(
        workspace=ws.path,
        map=html,
        counts={k: len(v) for k, v in layers.items()},
        households=int(b["households"].sum()),
        population=int(b["population"].sum()),
        rejected=len(rejected),
        seconds=seconds,
        metrics=run.metrics,
        grids=len(ws.read("grids")),
        redivided=redivided,
        gaps=len(assigned.gaps),
        coverage=cov.households_share,
    )
