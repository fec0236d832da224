"""Atomic units: what a grid is made of, never cut by a grid boundary.

A unit is a set of buildings that must stay in one grid:

- a compound (``compound_id``) within one block, when its households fit
  under the band's ceiling;
- a building of a compound too big for one grid (cuts between the buildings of
  one compound are the dearest boundaries, so it splits into as few grids as it
  can, along building lines);
- a building without a compound;
- a dedicated compound (专属网格), which becomes its own grid: one whose buildings
  of a dedicated kind (school, hospital, enterprise, market by default) reach the
  floor area the parameters name (5,000 m² of footprint × floors by default), or
  one that the ``dedicated`` field marks (``yes``/``是``; ``no``/``否`` keeps a
  compound out whatever its kind). A shop or an office in a few hundred square
  metres is a building of a basic grid;
- a slice of a single building above the ceiling, cut by entrance (单元) when
  the data says it has several; otherwise the building is one unit, flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid.io.schema import DEDICATED_MIN_FLOOR_M2, NO, YES

__all__ = ["Units", "make_units", "slice_by_entrance"]

UNIT_COLUMNS = [
    "block",
    "households",
    "population",
    "dedicated",
    "compound_id",
    "flag",
    "buildings",
    "geometry",
]


@dataclass
class Units:
    """Units of one community.

    Attributes
    ----------
    table
        One row per unit: ``block``, ``households``, ``population``,
        ``dedicated`` (bool), ``compound_id``, ``flag`` (why the unit is
        special: ``building_over_band``, ``split_by_entrance`` or empty),
        and ``geometry`` (the union of its buildings, or a building slice).
    building_unit
        For each building (by position in the input), the unit it belongs to;
        -1 for a building split by entrance (its slices are units).
    """

    table: gpd.GeoDataFrame
    building_unit: np.ndarray


def slice_by_entrance(footprint: shapely.Geometry, entrances: int) -> list[shapely.Geometry]:
    """Cut a footprint into ``entrances`` equal slices across its long axis.

    Examples
    --------
    >>> parts = slice_by_entrance(shapely.box(0, 0, 60, 12), 3)
    >>> [round(p.area) for p in parts]
    [240, 240, 240]
    """
    rect = footprint.minimum_rotated_rectangle
    ring = np.asarray(rect.exterior.coords)[:4]
    v1, v3 = ring[1] - ring[0], ring[3] - ring[0]  # the two edges at corner 0
    axis, across = (v1, v3) if np.hypot(*v1) >= np.hypot(*v3) else (v3, v1)
    start = ring[0]
    pad = across / np.hypot(*across) * 10.0
    parts = []
    for i in range(entrances):
        a0 = start + axis * i / entrances
        a1 = start + axis * (i + 1) / entrances
        box = shapely.Polygon([a0 - pad, a1 - pad, a1 + across + pad, a0 + across + pad])
        parts.append(footprint.intersection(box))
    return parts


def _join_overlapping(geoms: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Put buildings whose footprints share area (building parts, one inside another, double
    mapping) in one group."""
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    shared = shapely.area(shapely.intersection(geoms[a], geoms[b])) > 0.01  # not just touching
    a, b = a[shared], b[shared]
    if len(a) == 0:
        return group
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    for i, j in zip(a.tolist(), b.tolist(), strict=True):  # join whole groups, not buildings
        ri, rj = root(group[i]), root(group[j])
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([root(g) for g in group], dtype=object)


def _absorb_enclosed(
    geoms: np.ndarray, group: np.ndarray, has_compound: np.ndarray, block_of: np.ndarray
) -> np.ndarray:
    """A building standing inside a compound's footprint hull (same block) joins its unit.

    Otherwise the compound's land would be cut in two by the building's, and the
    compound's cell, hence its grid, would fall apart.
    """
    group = group.copy()
    tree = shapely.STRtree(geoms)
    for key in np.unique(group[has_compound]):
        members = np.flatnonzero(group == key)
        if len(members) < 2:
            continue
        hull = shapely.convex_hull(shapely.GeometryCollection(list(geoms[members])))
        inside = tree.query(hull, predicate="intersects")
        inside = inside[(block_of[inside] == block_of[members[0]]) & (group[inside] != key)]
        for other in np.unique(group[inside]):
            group[group == other] = key
    return group


def _dedicated_groups(
    buildings: gpd.GeoDataFrame, group: np.ndarray, *, kinds: tuple[str, ...], min_floor_m2: float
) -> set[str]:
    """The groups that become dedicated grids: by the ``dedicated`` field where it says
    yes or no, else by kind and floor area."""
    kind = buildings["kind"].fillna("").astype(str).to_numpy()
    floors = pd.to_numeric(buildings["floors"], errors="coerce").fillna(1).clip(lower=1)
    floor_area = np.where(
        np.isin(kind, kinds), shapely.area(buildings.geometry.values) * floors.to_numpy(), 0.0
    )
    by_rule = pd.Series(floor_area).groupby(group).sum() >= min_floor_m2
    said = (
        buildings["dedicated"].fillna("").astype(str).str.strip().str.lower().to_numpy()
        if "dedicated" in buildings
        else np.full(len(buildings), "")
    )
    yes = set(group[np.isin(said, list(YES))])
    no = set(group[np.isin(said, list(NO))]) - yes
    return (set(by_rule[by_rule].index) - no) | yes


def make_units(
    buildings: gpd.GeoDataFrame,
    block_of: np.ndarray,
    *,
    ceiling: int,
    dedicated_kinds: tuple[str, ...],
    dedicated_min_floor_m2: float = DEDICATED_MIN_FLOOR_M2,
) -> Units:
    """Group a community's buildings into atomic units.

    Parameters
    ----------
    buildings
        The community's buildings with ``compound_id``, ``kind``,
        ``entrances``, ``households``, ``population``.
    block_of
        The block of each building (by position).
    ceiling
        The band's ceiling in households.
    dedicated_kinds, dedicated_min_floor_m2
        Building kinds that make their compound a dedicated grid, from this floor
        area (footprint × floors, summed over the compound's buildings of those kinds).

    Returns
    -------
    Units
    """
    hh = buildings["households"].fillna(0).to_numpy(np.int64)
    pop = buildings["population"].fillna(0).to_numpy(np.int64)
    compound = buildings["compound_id"].fillna("").astype(str).to_numpy()
    entrances = buildings["entrances"].fillna(1).to_numpy(np.int64)
    geoms = buildings.geometry.values
    ids = buildings["building_id"].astype(str).to_numpy()

    has_compound = compound != ""
    group = np.where(
        has_compound, pd.Series(compound).str.cat(block_of.astype(str), sep="@"), "b:" + ids
    )
    group = _join_overlapping(geoms, group)
    group = _absorb_enclosed(geoms, group, has_compound, block_of)
    dedicated_group = _dedicated_groups(
        buildings, group, kinds=dedicated_kinds, min_floor_m2=dedicated_min_floor_m2
    )

    out = _UnitRows(hh, pop, compound, ids, geoms, block_of)
    keys, which = np.unique(group, return_inverse=True)
    cuts = np.cumsum(np.bincount(which, minlength=len(keys)))[:-1]
    by_key = np.split(np.argsort(which, kind="stable"), cuts)[: len(keys)]
    for key, members in zip(keys.tolist(), by_key, strict=True):
        if key in dedicated_group:
            out.add(members, dedicated=True)
            continue
        for b in members[hh[members] > ceiling]:  # one building above the ceiling
            if entrances[b] > 1:
                out.add_entrance_slices(b, int(entrances[b]), ceiling)
            else:
                out.add(np.array([b]), dedicated=False, flag="building_over_band")
        rest = members[hh[members] <= ceiling]
        if len(rest) == 0:
            continue
        if int(hh[rest].sum()) <= ceiling or len(rest) == 1:
            out.add(rest, dedicated=False)
            continue
        # too big for one grid: its buildings become units; cutting between them is
        # the dearest boundary there is, so the compound splits into as few grids as it can
        for b in rest:
            out.add(np.array([b]), dedicated=False)
    table = gpd.GeoDataFrame(
        pd.DataFrame(out.rows, columns=UNIT_COLUMNS), geometry="geometry", crs=buildings.crs
    )
    return Units(table, out.building_unit)


class _UnitRows:
    """The units table as it is built, and the unit of each building (−1 when sliced)."""

    def __init__(
        self,
        hh: np.ndarray,
        pop: np.ndarray,
        compound: np.ndarray,
        ids: np.ndarray,
        geoms: np.ndarray,
        block_of: np.ndarray,
    ) -> None:
        self.hh, self.pop, self.compound, self.ids = hh, pop, compound, ids
        self.geoms, self.block_of = geoms, block_of
        self.rows: list[dict] = []
        self.building_unit = np.full(len(ids), -1, dtype=np.int64)

    def add(
        self,
        members: np.ndarray,
        *,
        dedicated: bool,
        flag: str = "",
        geometry: shapely.Geometry | None = None,
        households: int | None = None,
        population: int | None = None,
    ) -> None:
        """A unit of whole buildings, or (with ``geometry``) a slice of one."""
        self.building_unit[members] = len(self.rows) if geometry is None else -1
        if geometry is None:
            g = self.geoms[members]
            geometry = g[0] if len(members) == 1 else shapely.union_all(g)
        hh = self.hh[members].sum() if households is None else households
        pop = self.pop[members].sum() if population is None else population
        self.rows.append(
            {
                "block": int(self.block_of[members[0]]),
                "households": int(hh),
                "population": int(pop),
                "dedicated": dedicated,
                "compound_id": str(self.compound[members[0]]),
                "flag": flag,
                "buildings": ",".join(self.ids[members]),
                "geometry": geometry,
            }
        )

    def add_entrance_slices(self, b: int, entrances: int, ceiling: int) -> None:
        """A building above the ceiling, cut into runs of entrances (单元) that fit."""
        slices = slice_by_entrance(self.geoms[b], entrances)
        runs = np.array_split(np.arange(entrances), math.ceil(self.hh[b] / ceiling))
        share, pshare = self.hh[b] / entrances, self.pop[b] / entrances
        for run in runs:
            self.add(
                np.array([b]),
                dedicated=False,
                flag="split_by_entrance",
                geometry=shapely.union_all([slices[i] for i in run]),
                households=round(share * len(run)),
                population=round(pshare * len(run)),
            )
