"""Synthetic road network and river of the demo district.

Roads run on a slightly rotated, wobbly grid: arterials about every 1.1 km,
secondary roads between them in the urban zone, local streets about every
230 m in the urban core. A river (白石港) meanders across the district.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gisgrid.demo import names

ARTERIAL_SPACING = 1100.0
LOCAL_SPACING = 230.0
RIVER_HALF_WIDTH = 45.0


@dataclass
class RoadNet:
    """Roads (with ``road_class`` and ``name``) and the river."""

    roads: gpd.GeoDataFrame
    river_line: BaseGeometry
    river: BaseGeometry
    angle: float


def _rotate(xy: np.ndarray, angle: float, origin: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    d = xy - origin
    return np.column_stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]]) + origin


def _family(
    positions: np.ndarray,
    extent: tuple[float, float],
    *,
    vertical: bool,
    wobble: float,
    angle: float,
    origin: np.ndarray,
    rng: np.random.Generator,
) -> list[BaseGeometry]:
    """Parallel wobbly lines at ``positions`` (offsets from ``origin``) across ``extent``,
    rotated about ``origin``."""
    t = np.arange(extent[0], extent[1] + 200.0, 200.0)
    lines = []
    for p in positions:
        phase, wave = rng.uniform(0, 2 * np.pi), rng.uniform(1800, 3200)
        offset = p + wobble * np.sin(2 * np.pi * t / wave + phase)
        xy = np.column_stack([offset, t] if vertical else [t, offset]) + origin
        lines.append(shapely.LineString(_rotate(xy, angle, origin)))
    return lines


def make_roads(
    territory: BaseGeometry,
    core: np.ndarray,
    *,
    urban_radius: float,
    core_radius: float,
    crs: object,
    rng: np.random.Generator,
) -> RoadNet:
    """Generate roads and a river over a territory.

    Parameters
    ----------
    territory
        The district polygon in a metric CRS.
    core
        The urban centre (x, y).
    urban_radius, core_radius
        Radii (m) within which secondary roads and local streets are laid.
    crs
        CRS of the output.
    rng
        Random generator.

    Returns
    -------
    RoadNet
    """
    angle = np.deg2rad(rng.uniform(6.0, 14.0))
    minx, miny, maxx, maxy = territory.bounds
    half = 0.75 * max(maxx - minx, maxy - miny)
    extent = (-half, half)
    origin = np.asarray(core, dtype=float)

    def grid(spacing: float, shift: float, jitter: float, n: int) -> np.ndarray:
        k = np.arange(-n, n + 1)
        return k * spacing + shift + rng.uniform(-jitter, jitter, len(k))

    n_art = int(half / ARTERIAL_SPACING) + 1
    art_u = grid(ARTERIAL_SPACING, 0.0, 120.0, n_art)
    art_v = grid(ARTERIAL_SPACING, 0.0, 120.0, n_art)
    sec_u = (art_u[:-1] + art_u[1:]) / 2 + rng.uniform(-60, 60, len(art_u) - 1)
    sec_v = (art_v[:-1] + art_v[1:]) / 2 + rng.uniform(-60, 60, len(art_v) - 1)
    major = np.sort(np.concatenate([art_u, sec_u])), np.sort(np.concatenate([art_v, sec_v]))
    n_loc = int(half / LOCAL_SPACING) + 1
    local = []
    for axis in range(2):
        cand = grid(LOCAL_SPACING, LOCAL_SPACING / 2, 25.0, n_loc)
        gap = np.min(np.abs(cand[:, None] - major[axis][None, :]), axis=1)
        local.append(cand[gap > 90.0])

    def place(u: np.ndarray, v: np.ndarray, wobble: float) -> list[BaseGeometry]:
        return [
            *_family(u, extent, vertical=True, wobble=wobble, angle=angle, origin=origin, rng=rng),
            *_family(v, extent, vertical=False, wobble=wobble, angle=angle, origin=origin, rng=rng),
        ]

    urban = shapely.Point(core).buffer(urban_radius, quad_segs=32)
    inner = shapely.Point(core).buffer(core_radius, quad_segs=32)
    rows: list[tuple[BaseGeometry, str, str]] = []
    art_names = itertools.cycle(rng.permutation(names.ARTERIAL).tolist())  # any scale
    for line in place(art_u, art_v, 35.0):
        rows.append((line.intersection(territory), "arterial", next(art_names)))
    urban_area = territory.intersection(urban)
    for line in place(sec_u, sec_v, 20.0):
        name = names.pick(rng, names.SECONDARY_STEM) + names.pick(rng, names.SECONDARY_SUFFIX)
        rows.append((line.intersection(urban_area), "secondary", name))
    core_area = territory.intersection(inner)
    for line in place(local[0], local[1], 6.0):
        name = names.pick(rng, names.SECONDARY_STEM) + names.pick(rng, names.LOCAL_SUFFIX)
        rows.append((line.intersection(core_area), "local", name))
    geoms = np.array([r[0] for r in rows], dtype=object)
    keep = ~shapely.is_empty(geoms) & (shapely.length(geoms) > 50.0)
    roads = gpd.GeoDataFrame(
        {"road_class": [r[1] for r in rows], "name": [r[2] for r in rows]},
        geometry=list(geoms),
        crs=crs,
    )[keep].explode(ignore_index=True)
    roads = roads[roads.geometry.length > 50.0].reset_index(drop=True)
    roads.insert(0, "road_id", [f"R{i:05d}" for i in range(1, len(roads) + 1)])

    river_line = _river(territory, core, rng)
    return RoadNet(roads, river_line, river_line.buffer(RIVER_HALF_WIDTH, quad_segs=4), angle)


def _river(territory: BaseGeometry, core: np.ndarray, rng: np.random.Generator) -> BaseGeometry:
    """A meandering river from the north-east of the territory past the core."""
    minx, miny, maxx, maxy = territory.bounds
    span = np.hypot(maxx - minx, maxy - miny)
    heading = np.deg2rad(rng.uniform(195.0, 235.0))  # flowing to the south-west
    direction = np.array([np.cos(heading), np.sin(heading)])
    normal = np.array([-direction[1], direction[0]])
    t = np.linspace(-span, span, 400)
    bend = 300.0 * np.sin(2 * np.pi * t / 3500.0 + rng.uniform(0, 6.28)) + 120.0 * np.sin(
        2 * np.pi * t / 900.0
    )
    start = core + normal * rng.uniform(300.0, 800.0)
    xy = start + t[:, None] * direction + bend[:, None] * normal
    line = shapely.LineString(xy).intersection(territory)
    if line.geom_type == "MultiLineString":
        line = max(line.geoms, key=lambda g: g.length)
    return line
