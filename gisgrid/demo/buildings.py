"""Buildings of the demo district: compounds laid out in blocks.

Block types, as in a Chinese city:

- ``tower``: a gated compound (小区) of 18–33-floor towers, 2 entrances (单元),
  2 flats per floor per entrance;
- ``walkup``: a six-floor walk-up estate of the 1980s–90s (often a work unit's
  宿舍), slabs with 3–5 entrances;
- ``village``: an urban village (城中村) of 3–5-floor self-built houses packed
  a few metres apart;
- dedicated blocks: a school, a hospital, an enterprise or a market (no homes).

Each community is filled block by block, nearest its centre first, until it
holds its target number of households.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid.demo import names


@dataclass(frozen=True)
class Layout:
    """How one block type lays out its buildings (metres)."""

    width: float
    depth: float
    gap_x: float
    gap_y: float
    inset: float
    max_buildings: int


LAYOUTS = {
    "tower": Layout(34.0, 16.0, 20.0, 30.0, 14.0, 30),
    "walkup": Layout(60.0, 12.0, 10.0, 18.0, 10.0, 36),
    "village": Layout(12.0, 10.0, 3.0, 3.0, 6.0, 160),
    "school": Layout(70.0, 16.0, 25.0, 30.0, 12.0, 4),
    "hospital": Layout(60.0, 24.0, 20.0, 20.0, 12.0, 3),
    "enterprise": Layout(90.0, 45.0, 25.0, 25.0, 12.0, 4),
    "market": Layout(70.0, 40.0, 20.0, 20.0, 10.0, 1),
}
DEDICATED = ("school", "hospital", "enterprise", "market")
WALL_M = 8.0  # a compound's wall runs this far outside its outermost buildings
DENSE_HH_KM2 = 6000.0  # households per km² of blocks above which a community builds towers


def lattice(
    block: shapely.Polygon, layout: Layout, angle: float, rng: np.random.Generator
) -> np.ndarray:
    """Footprints on a rotated lattice that fit inside the block's inset.

    Returned nearest the block's inner point first.
    """
    inner = block.buffer(-layout.inset, quad_segs=2)
    if inner.is_empty:
        return np.empty(0, dtype=object)
    origin = np.array(inner.centroid.coords[0])
    c, s = np.cos(-angle), np.sin(-angle)
    local = shapely.transform(inner, lambda xy: (xy - origin) @ np.array([[c, s], [-s, c]]))
    minx, miny, maxx, maxy = local.bounds
    step_x, step_y = layout.width + layout.gap_x, layout.depth + layout.gap_y
    xs = np.arange(minx + rng.uniform(0, step_x), maxx, step_x)
    ys = np.arange(miny + rng.uniform(0, step_y), maxy, step_y)
    if len(xs) == 0 or len(ys) == 0:
        return np.empty(0, dtype=object)
    gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
    boxes = shapely.box(
        gx - layout.width / 2, gy - layout.depth / 2, gx + layout.width / 2, gy + layout.depth / 2
    )
    shapely.prepare(local)
    boxes = boxes[shapely.contains(local, boxes)]
    if len(boxes) == 0:
        return boxes
    anchor = np.array(local.representative_point().coords[0])
    centres = shapely.get_coordinates(shapely.centroid(boxes))
    boxes = boxes[np.argsort(np.hypot(*(centres - anchor).T), kind="stable")]
    back = np.array([[c, -s], [s, c]])
    return shapely.transform(boxes, lambda xy: xy @ back + origin)


def _block_type(urbanity: float, dense: bool, rng: np.random.Generator) -> str:
    if dense:
        return "tower" if rng.random() < 0.85 else "walkup"
    if urbanity > 0.55:
        probs = (0.45, 0.40, 0.15)
    elif urbanity > 0.25:
        probs = (0.25, 0.45, 0.30)
    else:
        probs = (0.05, 0.20, 0.75)
    return str(rng.choice(["tower", "walkup", "village"], p=probs))


def _households(kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Floors, entrances and households of ``n`` buildings of a block type."""
    if kind == "tower":
        floors = rng.integers(18, 34, n)
        entrances = np.full(n, 2)
        return floors, entrances, floors * entrances * 2
    if kind == "walkup":
        floors = rng.choice([5, 6, 6, 6, 7], n)
        entrances = rng.integers(3, 6, n)
        return floors, entrances, floors * entrances * 2
    if kind == "village":
        floors = rng.integers(3, 6, n)
        return floors, np.ones(n, int), np.maximum(1, np.round(floors * rng.uniform(0.6, 1.3, n)))
    storeys = {"school": 5, "hospital": 8, "enterprise": 2, "market": 2}[kind]
    return np.full(n, storeys), np.full(n, 2), np.zeros(n, int)


def _facilities(target: int, rng: np.random.Generator) -> list[str]:
    """The dedicated facilities a community of ``target`` households gets."""
    dedicated = ["market"]
    if target > 800:
        dedicated.append("school")
    if rng.random() < 0.3:
        dedicated.append("enterprise")
    if rng.random() < 0.15 or target > 10000:
        dedicated.append("hospital")
    return dedicated


def _compound(
    code: str,
    n: int,
    kind: str,
    floors: np.ndarray,
    entrances: np.ndarray,
    hh: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """The buildings of the ``n``-th compound (or village, or facility) of a community."""
    label = _facility_name(kind, rng) if kind in DEDICATED else names.compound(rng, kind)
    building_kind = (
        kind
        if kind in DEDICATED
        else ("mixed" if kind == "walkup" and rng.random() < 0.15 else "residential")
    )
    return pd.DataFrame(
        {
            "community_code": code,
            # an urban village is houses along lanes, not a gated compound (小区)
            "compound_id": "" if kind == "village" else f"{code}-{n:03d}",
            "cluster": f"{code}-{n:03d}",
            "compound_name": label,
            "kind": building_kind,
            "block_type": kind,
            "floors": floors.astype(int),
            "entrances": entrances.astype(int),
            "planned_households": hh.astype(int),
        }
    )


def fill(
    blocks: gpd.GeoDataFrame,
    targets: dict[str, int],
    seeds: dict[str, np.ndarray],
    *,
    oversized: set[str],
    angle: float,
    rng: np.random.Generator,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Lay out buildings in the blocks of each community until it reaches its target.

    Parameters
    ----------
    blocks
        Buildable blocks with ``community_code`` and ``urbanity``.
    targets
        Households wanted per community code.
    seeds
        Community centres; blocks nearest the centre fill first.
    oversized
        Community codes built up mostly with towers.
    angle
        Orientation of the street grid (radians).
    rng
        Random generator.

    Returns
    -------
    geopandas.GeoDataFrame
        Buildings with ``community_code``, ``compound_id`` (empty in urban villages),
        ``cluster`` (the compound or village laid out together), ``compound_name``,
        ``kind``, ``block_type``, ``floors``, ``entrances`` and
        ``planned_households`` (the households the census will find); and the walls
        (围墙) of gated compounds and facilities, as lines.
    """
    pieces: list[pd.DataFrame] = []
    walls: list[tuple[str, str, shapely.Geometry]] = []
    geoms: list[np.ndarray] = []
    for code, group in blocks.groupby("community_code", sort=True):
        target = int(targets.get(code, 0))
        # a community with little land for its households builds up, like an oversized one
        dense = code in oversized or target / (group.geometry.area.sum() / 1e6) > DENSE_HH_KM2
        rep = shapely.get_coordinates(shapely.point_on_surface(group.geometry.values))
        order = np.argsort(np.hypot(*(rep - seeds[code]).T), kind="stable")
        dedicated = _facilities(target, rng)
        remaining, n_compound = target, 0
        for pos, i in enumerate(order):
            if remaining <= 0 and not dedicated:
                break
            block = group.geometry.iloc[i]
            if dedicated and (pos % 4 == 2 or remaining <= 0):
                kind = dedicated.pop(0)
            elif remaining > 0:
                kind = _block_type(float(group["urbanity"].iloc[i]), dense, rng)
            else:
                continue
            layout = LAYOUTS[kind]
            foot = lattice(block, layout, angle + rng.normal(0, 0.02), rng)[: layout.max_buildings]
            if len(foot) == 0:
                if kind in DEDICATED:
                    dedicated.insert(0, kind)
                continue
            floors, entrances, hh = _households(kind, len(foot), rng)
            if kind not in DEDICATED:
                keep = max(1, int(np.searchsorted(np.cumsum(hh), remaining) + 1))
                foot, floors = foot[:keep], floors[:keep]
                entrances, hh = entrances[:keep], hh[:keep]
                remaining -= int(hh.sum())
            n_compound += 1
            pieces.append(_compound(code, n_compound, kind, floors, entrances, hh, rng))
            name = pieces[-1]["compound_name"].iloc[0]
            geoms.append(foot)
            if kind != "village":  # a gated compound or a facility is walled (围墙)
                wall = shapely.intersection(
                    shapely.buffer(
                        shapely.convex_hull(shapely.multipolygons(foot)),
                        WALL_M,
                        quad_segs=2,
                        join_style="mitre",
                    ),
                    shapely.buffer(block, -2.0),
                )
                walls.append((f"{code}-{n_compound:03d}", name, shapely.boundary(wall)))
    table = pd.concat(pieces, ignore_index=True)
    out = gpd.GeoDataFrame(table, geometry=np.concatenate(geoms), crs=blocks.crs)
    mixed = out["kind"] == "mixed"
    out.loc[mixed, "planned_households"] = np.round(
        out.loc[mixed, "planned_households"] * 5 / 6
    ).astype(int)
    wall_frame = gpd.GeoDataFrame(
        {"compound": [w[0] for w in walls], "name": [w[1] + "围墙" for w in walls]},
        geometry=[w[2] for w in walls],
        crs=blocks.crs,
    )
    return out, wall_frame[~wall_frame.geometry.is_empty].reset_index(drop=True)


def _facility_name(kind: str, rng: np.random.Generator) -> str:
    pool = {
        "school": names.SCHOOL,
        "hospital": names.HOSPITAL,
        "enterprise": names.ENTERPRISE,
        "market": names.MARKET,
    }[kind]
    return names.pick(rng, names.SECONDARY_STEM) + names.pick(rng, pool)
