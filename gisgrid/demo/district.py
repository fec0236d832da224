"""The demo district: the real 石峰区 outline and codes, everything else synthesised."""

from __future__ import annotations

import logging
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from shapely import affinity

from gisgrid._errors import InputError
from gisgrid.crs import CGCS2000, gk_zone_crs
from gisgrid.demo import names
from gisgrid.demo.buildings import fill
from gisgrid.demo.land import divide
from gisgrid.demo.people import addresses, census_points, people, resources
from gisgrid.demo.roads import RoadNet, make_roads
from gisgrid.io.datasets import shifeng_codes, shifeng_outline

__all__ = ["BASE_HOUSEHOLDS", "make_district"]

logger = logging.getLogger(__name__)

#: Households at scale 1: the published 321 grids × 400 households of 石峰区.
BASE_HOUSEHOLDS = 321 * 400
_OVERSIZED = (24000, 20500, 17500, 15500)
_BASE_COMMUNITIES = 45
MIN_COMMUNITY = 900  # households


def _codes(n_communities: int, rng: np.random.Generator) -> pd.DataFrame:
    """The real streets and communities, plus synthetic ones beyond the 45 real codes."""
    codes = shifeng_codes()
    real = codes[codes["level"].isin(["town", "village"])].copy()
    extra = n_communities - (real["level"] == "village").sum()
    if extra > 0:
        streets = real[real["level"] == "town"]["code"].tolist()
        used = set(real["code"])
        # each street's next free serial from 100 (then from 001): never a real code
        serials = [*range(100, 1000), *range(1, 100)]
        free = {st: iter([f"{st[:9]}{n:03d}" for n in serials]) for st in streets}
        rows = []
        for i in range(extra):
            parent = streets[i % len(streets)]
            code = next((c for c in free[parent] if c not in used), None)
            if code is None:
                raise InputError(f"a street holds at most 999 communities; {extra} is too many")
            rows.append(
                {
                    "code": code,
                    "parent_code": parent,
                    "level": "village",
                    "ur_code": "111",
                    "name": names.pick(rng, names.SECONDARY_STEM) + f"{i + 1}社区",
                }
            )
        real = pd.concat([real, pd.DataFrame(rows)], ignore_index=True)
    return real


def make_district(*, scale: float = 1.0, seed: int = 0) -> dict[str, gpd.GeoDataFrame]:
    """Generate the demo district's layers.

    Parameters
    ----------
    scale
        1 gives about 128,400 households (321 grids × 400) in the real 5 streets
        and 45 communities, four of them oversized (15,500–24,000 households).
        Below 1, fewer communities (one at 0.02 or less) with proportionally
        fewer households; above 1, a larger city of the same shape with
        ``round(45 × scale)`` communities.
    seed
        Seed of the random generator: the same seed gives the same district.

    Returns
    -------
    dict of geopandas.GeoDataFrame
        ``streets``, ``communities``, ``buildings`` (households and population
        left for the census to fill), ``census_points``, ``roads``,
        ``barriers``, ``water``, ``resources``, all in the CGCS2000
        Gauss–Krüger zone of the district.
    """
    if not (0 < scale <= 100):
        raise ValueError(f"scale must be in (0, 100], got {scale}")
    rng = np.random.default_rng(seed)
    outline = shifeng_outline()
    crs = gk_zone_crs(float(outline.geometry.iloc[0].centroid.x))
    district = outline.to_crs(crs).geometry.iloc[0]
    grow = math.sqrt(max(scale, 1.0))
    origin = district.centroid
    district = affinity.scale(district, grow, grow, origin=origin)

    n_all = max(_BASE_COMMUNITIES, round(_BASE_COMMUNITIES * scale))
    codes = _codes(n_all, rng)
    to_local = pyproj.Transformer.from_crs(CGCS2000, crs, always_xy=True)
    x, y = to_local.transform(codes["lon"].to_numpy(float), codes["lat"].to_numpy(float))
    codes["x"] = origin.x + (x - origin.x) * grow
    codes["y"] = origin.y + (y - origin.y) * grow
    streets_xy = codes.loc[codes["level"] == "town", ["x", "y"]].to_numpy()
    core = streets_xy.mean(axis=0)

    net = make_roads(
        district, core, urban_radius=5500.0 * grow, core_radius=3200.0 * grow, crs=crs, rng=rng
    )
    division = divide(
        district, net.roads, net.river, codes=codes, core=core, falloff=2600.0 * grow, rng=rng
    )
    communities = division.communities
    if scale < 1:  # keep the communities nearest the core
        k = max(1, round(_BASE_COMMUNITIES * scale))
        dist = {c: float(np.hypot(*(division.seeds[c] - core))) for c in communities["code"]}
        keep = sorted(dist, key=lambda c: dist[c])[:k]
        communities = communities[communities["code"].isin(keep)].reset_index(drop=True)
    territory = shapely.union_all(communities.geometry.values)
    streets = _streets(communities, division.streets, crs)
    blocks = division.blocks[division.blocks["community_code"].isin(communities["code"])]

    targets, oversized = _targets(communities, blocks, scale=scale, rng=rng)
    buildings, walls = fill(
        blocks, targets, division.seeds, oversized=oversized, angle=net.angle, rng=rng
    )
    roads = net.roads.clip(territory).explode(ignore_index=True)
    roads = roads[(roads.geom_type == "LineString") & (roads.geometry.length > 1.0)].copy()
    roads["road_id"] = [f"R{i:05d}" for i in range(1, len(roads) + 1)]  # parts get their own
    _name_buildings(buildings, roads, streets)
    points = census_points(buildings, rng)
    res = _resources(buildings, streets, communities, division.seeds, codes, seed=seed, rng=rng)
    res = gpd.GeoDataFrame(res, geometry="geometry", crs=crs)

    barriers, water = _waters(net, walls, territory, crs)
    buildings = buildings.drop(columns=["block_type", "cluster"])
    logger.info(
        "demo district: %d communities, %d buildings, %d planned households",
        len(communities),
        len(buildings),
        buildings["planned_households"].sum(),
    )
    return {
        "streets": streets,
        "communities": communities,
        "buildings": buildings,
        "census_points": points,
        "roads": roads.reset_index(drop=True),
        "barriers": barriers,
        "water": water,
        "resources": res,
    }


def _parts(geometry: shapely.Geometry, kind: str) -> list[shapely.Geometry]:
    """The parts of one type (``"Polygon"`` or ``"LineString"``) of a clipped geometry."""
    return [g for g in shapely.get_parts(geometry) if g.geom_type == kind and not g.is_empty]


def _targets(
    communities: gpd.GeoDataFrame,
    blocks: gpd.GeoDataFrame,
    *,
    scale: float,
    rng: np.random.Generator,
) -> tuple[dict[str, int], set[str]]:
    """Households wanted per community; the roomiest urban ones are oversized."""
    total = BASE_HOUSEHOLDS * scale
    n = len(communities)
    n_over = round(len(_OVERSIZED) * n / _BASE_COMMUNITIES) if n >= 6 else 0
    urban = blocks[blocks["urbanity"] > 0.3]
    room = urban.geometry.area.groupby(urban["community_code"]).sum()
    room = room.reindex(communities["code"]).fillna(0.0)
    oversized = list(room.sort_values(ascending=False, kind="stable").index[:n_over])
    over_hh = {c: _OVERSIZED[i % len(_OVERSIZED)] for i, c in enumerate(oversized)}
    rest = [c for c in communities["code"] if c not in over_hh]
    left = max(total - sum(over_hh.values()), 0.0)
    # an urban community holds a few thousand households (石峰区: ~2,800 on average);
    # none below MIN_COMMUNITY unless the whole district is smaller than that
    floor = min(MIN_COMMUNITY, left / max(len(rest), 1))
    share = rng.lognormal(0.0, 0.45, len(rest))
    extra = (left - floor * len(rest)) * share / share.sum()
    targets = {c: round(floor + v) for c, v in zip(rest, extra, strict=True)}
    targets.update(over_hh)
    return targets, set(oversized)


def _streets(
    communities: gpd.GeoDataFrame, named: gpd.GeoDataFrame, crs: pyproj.CRS
) -> gpd.GeoDataFrame:
    """Streets as the union of their communities, with their codes and names."""
    streets = communities.dissolve("parent_code").reset_index()
    streets = (
        streets[["parent_code", "geometry"]]
        .rename(columns={"parent_code": "code"})
        .merge(named[["code", "name", "parent_code"]], on="code")
    )
    streets = gpd.GeoDataFrame(streets[["code", "name", "parent_code", "geometry"]], crs=crs)
    return streets


def _name_buildings(
    buildings: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, streets: gpd.GeoDataFrame
) -> None:
    """Give the buildings addresses, names and ids (in place)."""
    street_names = dict(zip(streets["code"].str[:9], streets["name"], strict=True))
    buildings["address"] = addresses(buildings, roads, street_names).to_numpy()
    buildings["name"] = np.where(
        buildings["block_type"] == "village",
        buildings["compound_name"],
        buildings["address"].str.extract(r"号(.+)$")[0].fillna(""),
    )
    buildings.insert(0, "building_id", [f"B{i:07d}" for i in range(1, len(buildings) + 1)])


def _resources(
    buildings: gpd.GeoDataFrame,
    streets: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    seeds: dict,
    codes: pd.DataFrame,
    *,
    seed: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Places and organisations, and the people the roles draw on, with their ids."""
    res = resources(
        buildings,
        streets,
        communities,
        seeds,
        dict(zip(codes["code"], codes[["x", "y"]].to_numpy(), strict=True)),
        rng=rng,
    )
    # the people the roles draw on come from their own stream: the district stays the same
    stations = res[(res["kind"] == "police") & (res["level"] == "street")]
    crew = people(buildings, streets, communities, stations, rng=np.random.default_rng([seed, 5]))
    res = pd.concat([res.drop(columns="resource_id"), crew], ignore_index=True)
    res.insert(0, "resource_id", [f"S{i:05d}" for i in range(1, len(res) + 1)])
    return res


def _waters(
    net: RoadNet, walls: gpd.GeoDataFrame, territory: shapely.Geometry, crs: pyproj.CRS
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The barriers (the river's line and compound walls) and the water polygons."""
    river = _parts(net.river_line.intersection(territory), "LineString")
    kinds = ["river"] * len(river) + ["wall"] * len(walls)
    barriers = gpd.GeoDataFrame(
        {
            "barrier_id": [f"W{i:05d}" for i in range(1, len(kinds) + 1)],
            "kind": kinds,
            "name": ["白石港"] * len(river) + walls["name"].tolist(),
        },
        geometry=[*river, *walls.geometry.values],
        crs=crs,
    )
    water_parts = _parts(net.river.intersection(territory), "Polygon")
    water = gpd.GeoDataFrame(
        {"water_id": ["W0001"], "name": ["白石港"]},
        geometry=[shapely.MultiPolygon(water_parts)],
        crs=crs,
    )
    water = water[~water.geometry.is_empty]
    return barriers, water
