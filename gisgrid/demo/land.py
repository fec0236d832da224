"""Blocks, streets and communities of the demo district.

Communities are unions of the superblocks that arterial and secondary roads,
the river and the district boundary cut the territory into, so they tile the
district exactly and their boundaries run along roads. Each street (街道)
gathers the superblocks nearest its real centre; its communities come from a
weighted k-means of its superblocks, seeded with the real community centres
where the code table gives them.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry


@dataclass
class Division:
    """Streets, communities and buildable blocks.

    Attributes
    ----------
    streets, communities
        Polygon layers with ``code``, ``name``, ``parent_code``.
    blocks
        Buildable blocks (between roads, off the river) with ``community_code``
        and ``urbanity`` (1 at the core, falling off outwards).
    seeds
        Community centres (x, y) by code.
    """

    streets: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    seeds: dict[str, np.ndarray]


def polygonize(lines: list[BaseGeometry], territory: BaseGeometry) -> np.ndarray:
    """Faces of the arrangement of ``lines`` and the territory's boundary."""
    noded = shapely.union_all([*lines, territory.boundary])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    inside = shapely.contains_properly(territory, shapely.point_on_surface(faces))
    return faces[inside]


def _kmeans(
    points: np.ndarray, weights: np.ndarray, seeds: np.ndarray, fixed: int, iterations: int = 12
) -> np.ndarray:
    """Weighted Lloyd iterations from ``seeds``; the first ``fixed`` seeds stay put."""
    centres = seeds.copy()
    for _ in range(iterations):
        label = np.argmin(((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1), axis=1)
        for k in range(fixed, len(centres)):
            m = label == k
            if m.any():
                centres[k] = np.average(points[m], axis=0, weights=weights[m])
    return centres


def _contiguous(merged: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Give each detached piece of a community to the neighbour it borders most.

    Real communities are one piece; nearest-seed assignment can strand a piece
    across a river or behind another community.
    """
    geoms = merged.geometry.to_numpy().copy()
    for _ in range(10):
        moved = False
        for i, geom in enumerate(geoms):
            pieces = shapely.get_parts(geom)
            if len(pieces) <= 1:
                continue
            keep = int(np.argmax(shapely.area(pieces)))
            for j, piece in enumerate(pieces):
                if j == keep:
                    continue
                shared = shapely.length(
                    shapely.intersection(shapely.boundary(geoms), piece.boundary)
                )
                shared[i] = 0.0
                if shared.max() <= 0:
                    continue
                k = int(np.argmax(shared))
                geoms[k] = shapely.union(geoms[k], piece)
                geoms[i] = shapely.difference(geoms[i], piece)
                moved = True
        if not moved:
            break
    return merged.set_geometry(geoms)


def divide(
    territory: BaseGeometry,
    roads: gpd.GeoDataFrame,
    river: BaseGeometry,
    *,
    codes: pd.DataFrame,
    core: np.ndarray,
    falloff: float,
    rng: np.random.Generator,
) -> Division:
    """Cut the territory into streets, communities and blocks.

    Parameters
    ----------
    territory
        District polygon (metric).
    roads
        Roads with ``road_class``.
    river
        River polygon.
    codes
        Streets and communities to create: ``code``, ``name``, ``parent_code``,
        ``level`` (``town``/``village``) and optional projected ``x``/``y``
        centres.
    core
        Urban centre.
    falloff
        Distance (m) over which urbanity falls by a factor e.
    rng
        Random generator.

    Returns
    -------
    Division
    """
    crs = roads.crs
    major = roads.geometry[roads["road_class"].isin(["arterial", "secondary"])].tolist()
    barriers = [river.boundary]
    supers = polygonize(major + barriers, territory)
    blocks = polygonize(roads.geometry.tolist() + barriers, territory)
    blocks = blocks[~shapely.contains_properly(river, shapely.point_on_surface(blocks))]

    centre = shapely.get_coordinates(shapely.centroid(supers))
    area = shapely.area(supers)
    urbanity = np.exp(-np.hypot(*(centre - core).T) / falloff)
    streets_t = codes[codes["level"] == "town"].reset_index(drop=True)
    comms_t = codes[codes["level"] == "village"].reset_index(drop=True)

    s_xy = streets_t[["x", "y"]].to_numpy(float)
    street_of = np.argmin(((centre[:, None] - s_xy[None]) ** 2).sum(-1), axis=1)
    community_of = np.full(len(supers), -1)
    seeds: dict[str, np.ndarray] = {}
    for s, street in streets_t.iterrows():
        mine = np.flatnonzero(street_of == s)
        cs = comms_t.index[comms_t["parent_code"] == street["code"]].to_numpy()
        if len(mine) == 0 or len(cs) == 0:
            continue
        if len(mine) < len(cs):  # too few superblocks: keep the communities that fit
            cs = cs[: len(mine)]
        known = cs[comms_t.loc[cs, "x"].notna().to_numpy()]
        unknown = cs[comms_t.loc[cs, "x"].isna().to_numpy()]
        weight = area[mine] * (urbanity[mine] ** 1.5 + 0.02)
        start = rng.choice(mine, size=len(unknown), replace=False, p=weight / weight.sum())
        init = np.vstack([comms_t.loc[known, ["x", "y"]].to_numpy(float), centre[start]])
        centres = _kmeans(centre[mine], weight, init, fixed=0)
        order = np.concatenate([known, unknown])
        label = np.argmin(((centre[mine][:, None] - centres[None]) ** 2).sum(-1), axis=1)
        for k in range(len(order)):  # a seed that won nothing takes its nearest superblock
            if not (label == k).any():
                counts = np.bincount(label, minlength=len(order))
                d = np.hypot(*(centre[mine] - centres[k]).T)
                d[counts[label] < 2] = np.inf
                label[np.argmin(d)] = k
        community_of[mine] = order[label]
        for k, c in enumerate(order):
            seeds[comms_t.loc[c, "code"]] = centres[k]

    used = community_of >= 0
    parts = gpd.GeoDataFrame({"c": community_of[used]}, geometry=list(supers[used]), crs=crs)
    merged = _contiguous(parts.dissolve("c"))
    communities = gpd.GeoDataFrame(
        comms_t.loc[merged.index, ["code", "name", "parent_code"]].reset_index(drop=True),
        geometry=merged.geometry.values,
        crs=crs,
    )
    streets = communities.dissolve("parent_code").reset_index()[["parent_code", "geometry"]]
    streets = streets.rename(columns={"parent_code": "code"}).merge(
        streets_t[["code", "name", "parent_code"]], on="code"
    )[["code", "name", "parent_code", "geometry"]]

    b_rep = shapely.point_on_surface(blocks)
    tree = shapely.STRtree(communities.geometry.values)
    bi, ci = tree.query(b_rep, predicate="within")
    code = np.full(len(blocks), None, dtype=object)
    code[bi] = communities["code"].to_numpy()[ci]
    has = pd.notna(code)
    b_xy = shapely.get_coordinates(b_rep)
    block_frame = gpd.GeoDataFrame(
        {
            "community_code": code[has],
            "urbanity": np.exp(-np.hypot(*(b_xy[has] - core).T) / falloff),
        },
        geometry=list(blocks[has]),
        crs=crs,
    )
    return Division(gpd.GeoDataFrame(streets, crs=crs), communities, block_frame, seeds)
