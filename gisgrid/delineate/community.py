"""Delineate the grids of one community.

    buildings → units (compounds, pieces, dedicated, entrance slices)
      → blocks along roads, rivers, walls → cells (building-based tessellation)
      → cell graph → own grids (dedicated, indivisible buildings)
      → each connected rest: k grids by METIS + refinement
      → grid polygons, types, flags and reasons → codes

Locked grids are kept as they are; the rest of the community is delineated
around them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gisgrid.delineate.cells import GRID_SIZE, blocks_of, dissolve, tessellate
from gisgrid.delineate.codes import grid_codes
from gisgrid.delineate.graph import CellGraph, cell_graph
from gisgrid.delineate.partition import Band, choose_k, partition
from gisgrid.delineate.units import make_units
from gisgrid.io.households import PERSONS_PER_HOUSEHOLD
from gisgrid.io.schema import DEDICATED_KINDS, DEDICATED_MIN_FLOOR_M2

__all__ = ["CommunityResult", "CommunityTask", "Params", "delineate_community"]

EXPAND_ROUNDS = 3  # rounds of freeing kept neighbours of grids still out of band

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Params:
    """What a delineation aims at (all are parameters, with the published defaults).

    Attributes
    ----------
    target_households, band
        About 400 households per basic grid, accepted 300–500.
    persons_per_household
        What turns the household band into the population band: by default (None)
        measured from the buildings, their population ÷ their households (3.0 on the
        demo, where both come from census points), and 2.62 (2020 census) where they
        carry no population; see :meth:`with_people`.
    target_population, population_band
        People per basic grid (secondary to households): by default the household
        target and band × ``persons_per_household`` (at 2.62: 1,048, 786–1,310), so
        that the two bands agree; 0 and (0, 0) ask for that, other values set them
        explicitly.
    dedicated_kinds, dedicated_min_floor_m2
        Building kinds whose compound gets its own grid (专属网格), from this floor
        area (m², footprint × floors); the buildings' ``dedicated`` field overrides.
    seed
        Seed for METIS: the same seed, the same grids.

    Examples
    --------
    >>> Params(persons_per_household=2.62).population_band
    (786, 1310)
    >>> Params().with_people(households=128_720, population=386_160).population_band
    (900, 1500)
    >>> Params(population_band=(900, 1600)).with_people(households=10, population=26).population
    Band(target=1040, low=900, high=1600, ceiling_is_hard=False)
    """

    target_households: int = 400
    band: tuple[int, int] = (300, 500)
    persons_per_household: float | None = None
    target_population: int = 0
    population_band: tuple[int, int] = (0, 0)
    dedicated_kinds: tuple[str, ...] = DEDICATED_KINDS
    dedicated_min_floor_m2: float = DEDICATED_MIN_FLOOR_M2
    seed: int = 0

    def __post_init__(self) -> None:
        pph = self.persons_per_household
        if pph is None:
            return  # derived by with_people, once the buildings are known
        if self.target_population == 0:
            object.__setattr__(self, "target_population", round(self.target_households * pph))
        if tuple(self.population_band) == (0, 0):
            low, high = self.band
            object.__setattr__(self, "population_band", (round(low * pph), round(high * pph)))

    def with_people(self, *, households: float, population: float) -> Params:
        """These parameters with persons per household measured, when it is not set.

        Parameters
        ----------
        households, population
            Totals over the district's buildings; with no population, 2.62.

        Returns
        -------
        Params
            ``self`` when ``persons_per_household`` is set, else a copy with it set
            (to two decimals) and the population target and band that follow.
        """
        if self.persons_per_household is not None:
            return self
        measured = population / households if households > 0 and population > 0 else 0.0
        return replace(self, persons_per_household=round(measured, 2) or PERSONS_PER_HOUSEHOLD)

    @property
    def households(self) -> Band:
        """The household band."""
        return Band(self.target_households, *self.band)

    @property
    def population(self) -> Band:
        """The population band (at 2.62 persons per household until measured)."""
        if self.persons_per_household is None:
            return self.with_people(households=0, population=0).population
        return Band(self.target_population, *self.population_band)


@dataclass
class CommunityTask:
    """Everything needed to delineate one community (picklable, for worker processes).

    ``kept`` are grids kept exactly as they are (locked ones, and in an
    incremental run the ones the changes did not touch); the rest of the
    community is delineated around them. ``freed`` are the previous grids being
    re-delineated, whose codes new grids may take over; ``previous`` maps
    building ids to their previous grid codes; ``retired`` are serials never to
    be given again.
    """

    code: str
    name: str
    geometry: shapely.Geometry
    buildings: gpd.GeoDataFrame
    lines: np.ndarray
    kept: gpd.GeoDataFrame
    params: Params
    water: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    roads: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    retired: frozenset[int] = frozenset()
    freed: gpd.GeoDataFrame = field(default_factory=gpd.GeoDataFrame)
    previous: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))


@dataclass
class CommunityResult:
    """The grids of one community and where each building went."""

    grids: gpd.GeoDataFrame
    building_grid: pd.Series
    retired: list[str] = field(default_factory=list)


def _components(graph: CellGraph, nodes: np.ndarray) -> list[np.ndarray]:
    """Connected components of the subgraph induced by ``nodes``."""
    local = np.full(graph.n, -1)
    local[nodes] = np.arange(len(nodes))
    keep = (local[graph.edges[:, 0]] >= 0) & (local[graph.edges[:, 1]] >= 0)
    e = local[graph.edges[keep]]
    matrix = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(nodes),) * 2)
    n_comp, label = connected_components(matrix, directed=False)
    return [nodes[label == c] for c in range(n_comp)]


def delineate_community(task: CommunityTask) -> CommunityResult:
    """Delineate one community's grids, freeing kept neighbours as far as needed.

    When a redrawn grid is still outside the band, the unlocked kept grids that
    touch it are freed too and the free area is redrawn, up to ``EXPAND_ROUNDS``
    times.

    Parameters
    ----------
    task
        The community, its buildings, the lines that may bound grids, the grids
        to keep and the parameters.

    Returns
    -------
    CommunityResult
    """
    result = _delineate_once(task)
    for _ in range(EXPAND_ROUNDS):
        kept_codes = set(task.kept.get("grid_code", []))
        grids = result.grids
        fresh = grids[~grids["grid_code"].isin(kept_codes) & (grids["grid_type"] == "basic")]
        bad = fresh[~task.params.households.contains(fresh["households"])]
        if bad.empty or task.kept.empty:
            break
        locked = (
            task.kept["locked"].fillna(False).astype(bool)
            if "locked" in task.kept
            else pd.Series(False, index=task.kept.index)
        )
        touching = task.kept.intersects(shapely.union_all(bad.geometry.values)) & ~locked
        if not touching.any():
            break
        task = replace(
            task,
            kept=task.kept[~touching].reset_index(drop=True),
            freed=pd.concat([task.freed, task.kept[touching]], ignore_index=True),
        )
        result = _delineate_once(task)
    return result


def _delineate_once(task: CommunityTask) -> CommunityResult:
    """One pass of :func:`delineate_community`, with the kept grids as given."""
    free = task.geometry
    buildings = task.buildings.reset_index(drop=True)
    building_grid = pd.Series(index=buildings["building_id"].astype(str), dtype=object)
    kept_rows = []
    if len(task.kept):
        kept_area = shapely.union_all(task.kept.geometry.values)
        try:  # exact: snap-rounding would open millimetre seams along every kept edge
            free = shapely.difference(free, kept_area)
        except shapely.errors.GEOSException:
            free = shapely.difference(free, kept_area, grid_size=GRID_SIZE)
        rep = shapely.point_on_surface(buildings.geometry.values)
        li, bi = shapely.STRtree(rep).query(task.kept.geometry.values, predicate="contains")
        in_kept = np.zeros(len(buildings), bool)
        in_kept[bi] = True
        for g in range(len(task.kept)):
            mine = bi[li == g]
            building_grid.iloc[mine] = task.kept["grid_code"].iloc[g]
            row = task.kept.iloc[g].to_dict()
            row.update(
                households=int(buildings["households"].iloc[mine].fillna(0).sum()),
                population=int(buildings["population"].iloc[mine].fillna(0).sum()),
                buildings=len(mine),
                locked=bool(row.get("locked") or False),
            )
            kept_rows.append(row)
        buildings = buildings[~in_kept].reset_index(drop=True)
    drafts: list[DraftGrid] = []
    # with every grid kept and no building left over, what remains of the community is
    # the seams of earlier overlays, not land to draw a grid on (a re-run changes nothing)
    seams = (
        len(task.kept) > 0
        and task.freed.empty
        and buildings.empty
        and shapely.area(free) < 1e-3 * shapely.area(task.geometry)
    )
    if not seams and not shapely.is_empty(free) and shapely.area(free) > 1.0:
        drafts = _delineate_free(task, free, buildings)
        if len(task.kept):
            _fit_to(drafts, free)
    kept_codes = set(task.kept.get("grid_code", []))
    households = task.buildings.set_index(task.buildings["building_id"].astype(str))["households"]
    inherited = _inherit(drafts, task.previous, task.freed, households)
    taken = {int(c[-3:]) for c in kept_codes | set(task.freed.get("grid_code", []))}
    taken |= set(task.retired)
    fresh = [d for d, code in zip(drafts, inherited, strict=True) if code is None]
    codes: Iterator[str] = iter([])
    if fresh:
        xy = shapely.get_coordinates(shapely.point_on_surface([d.geometry for d in fresh]))
        row_height = float(np.sqrt(np.median([d.geometry.area for d in fresh])))
        codes = iter(grid_codes(task.code, xy, row_height=row_height, taken=taken))
    rows = []
    for d, code in zip(drafts, inherited, strict=True):
        rows.append(d.row(code if code is not None else next(codes)))
        building_grid.loc[d.building_ids] = rows[-1]["grid_code"]
    grids = gpd.GeoDataFrame(kept_rows + rows, geometry="geometry", crs=task.buildings.crs)
    grids["community_code"] = task.code
    used = {r["grid_code"] for r in rows}
    retired = sorted(set(task.freed.get("grid_code", [])) - used)
    return CommunityResult(grids, building_grid, retired=retired)


def _fit_to(drafts: list[DraftGrid], free: shapely.Geometry) -> None:
    """Make new grids tile exactly the area left by the kept grids.

    A building straddling a kept grid's edge brings its footprint into its new
    cell: clip that overlap off, and give any sliver left uncovered to the new
    grid it borders most.
    """
    geoms = shapely.intersection(np.array([d.geometry for d in drafts], dtype=object), free)
    left = shapely.difference(free, shapely.union_all(geoms))
    for piece in shapely.get_parts(left):
        if piece.geom_type != "Polygon" or piece.area <= 0:
            continue
        shared = shapely.length(shapely.intersection(shapely.boundary(geoms), piece.boundary))
        if shared.max() > 0:
            k = int(np.argmax(shared))
            geoms[k] = shapely.union(geoms[k], piece)
    for d, g in zip(drafts, geoms, strict=True):
        parts = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and p.area > 0]
        d.geometry = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _inherit(
    drafts: list[DraftGrid], previous: pd.Series, freed: gpd.GeoDataFrame, households: pd.Series
) -> list[str | None]:
    """The code each new grid takes over from a freed grid it mostly continues, if any.

    A new grid continues an old one when more than half of its households were in
    that grid and more than half of that grid's households are in it.
    """
    out: list[str | None] = [None] * len(drafts)
    if not len(freed) or previous is None or previous.empty:
        return out
    old = freed.set_index("grid_code")
    old_hh = old["households"].astype(float)
    old_n = old["buildings"].astype(float) if "buildings" in old else old_hh * 0
    claimed: set[str] = set()
    for i, d in enumerate(drafts):
        members = previous.reindex(d.building_ids)
        # households decide; a grid without any (a school, an enterprise: most dedicated
        # grids) is followed by its buildings instead, or it would never keep its code
        by_count = d.households <= 0
        weights = (
            pd.Series(1.0, index=d.building_ids)
            if by_count
            else households.reindex(d.building_ids).fillna(0).astype(float)
        )
        share = weights.groupby(members.to_numpy()).sum()
        share = share[share.index.isin(old_hh.index)]
        if share.empty or not len(d.building_ids):
            continue
        code = share.idxmax()
        size, old_size = (
            (len(d.building_ids), old_n[code])
            if by_count
            else (
                d.households,
                old_hh[code],
            )
        )
        if share[code] > 0.5 * size and share[code] > 0.5 * old_size and code not in claimed:
            out[i] = code
            claimed.add(code)
    return out


@dataclass
class DraftGrid:
    """A grid drawn by a delineation, before it has a code."""

    grid_type: str
    households: int
    population: int
    building_ids: list[str]
    flags: str
    reason: str
    geometry: shapely.Geometry

    def row(self, grid_code: str) -> dict:
        """The grid's row of the ``grids`` layer (without the community's fields)."""
        return {
            "grid_code": grid_code,
            "grid_type": self.grid_type,
            "households": self.households,
            "population": self.population,
            "buildings": len(self.building_ids),
            "flags": self.flags,
            "reason": self.reason,
            "locked": False,
            "geometry": self.geometry,
        }


@dataclass
class _Label:
    """What a label (a grid in the making) is: its type, flags and reason."""

    grid_type: str = "basic"
    flags: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class _Labels:
    """The label of each cell of a community's graph (−1 while unlabelled)."""

    cells: int
    kinds: list[_Label] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.of = np.full(self.cells, -1, dtype=np.int64)

    def new(self, **kind: Any) -> int:
        """A fresh label."""
        self.kinds.append(_Label(**kind))
        return len(self.kinds) - 1


def _delineate_free(
    task: CommunityTask, free: shapely.Geometry, buildings: gpd.GeoDataFrame
) -> list[DraftGrid]:
    """Grids over the community's free area (without locked grids), before codes."""
    table, cells, graph = _cells_of(task, free, buildings)
    cell_unit = cells["unit"].to_numpy()
    labels = _Labels(graph.n)
    _label_own_grids(labels, cell_unit, table)
    empty = _label_partitions(labels, graph, task.params)
    _label_empty_land(labels, graph, empty)
    return [
        draft
        for lab in range(len(labels.kinds))
        if (draft := _draft(lab, labels, graph, cells, table, task.params.households))
    ]


def _cells_of(
    task: CommunityTask, free: shapely.Geometry, buildings: gpd.GeoDataFrame
) -> tuple[pd.DataFrame, gpd.GeoDataFrame, CellGraph]:
    """The units of the free area's buildings, their cells, and the cells' graph."""
    blocks = blocks_of(free, task.lines)
    rep = shapely.point_on_surface(buildings.geometry.values)
    b_idx, k_idx = shapely.STRtree(blocks).query(rep, predicate="intersects")
    block_of = np.full(len(buildings), -1)
    block_of[b_idx[::-1]] = k_idx[::-1]
    outside = block_of < 0
    if outside.any():  # a building off the free area (e.g. mostly under a locked grid)
        nearest = shapely.STRtree(blocks).query_nearest(rep[outside], return_distance=False)
        block_of[np.flatnonzero(outside)[nearest[0]]] = nearest[1]
    units = make_units(
        buildings,
        block_of,
        ceiling=int(task.params.households.high),
        dedicated_kinds=task.params.dedicated_kinds,
        dedicated_min_floor_m2=task.params.dedicated_min_floor_m2,
    )
    cells = tessellate(blocks, units.table)
    graph = cell_graph(cells, units.table, water=task.water, roads=task.roads)
    return units.table, cells, graph


def _label_own_grids(labels: _Labels, cell_unit: np.ndarray, table: pd.DataFrame) -> None:
    """Grids of their own: dedicated compounds and indivisible buildings."""
    dedicated = table["dedicated"].to_numpy(bool)
    over = table["flag"].to_numpy() == "building_over_band"
    households = table["households"].to_numpy()
    for c in np.flatnonzero(cell_unit >= 0):
        u = cell_unit[c]
        if dedicated[u]:
            labels.of[c] = labels.new(grid_type="dedicated", flags=["dedicated"])
        elif over[u]:
            labels.of[c] = labels.new(
                flags=["building_over_band"],
                reason=(
                    f"one building of {households[u]} households with one entrance: "
                    "above the ceiling and cannot be split"
                ),
            )


def _label_partitions(labels: _Labels, graph: CellGraph, p: Params) -> list[np.ndarray]:
    """Partition each connected piece of the unlabelled cells; the pieces without homes."""
    rest = np.flatnonzero(labels.of < 0)
    if not len(rest):
        return []
    empty: list[np.ndarray] = []
    comps = _components(graph, rest)
    whole = len(comps) == 1 and len(rest) == graph.n
    for comp in comps:
        total = int(graph.households[comp].sum())
        if total == 0:
            empty.append(comp)
        elif total < p.households.low:
            why = (
                f"the community holds only {total} households"
                if whole
                else f"{total} households cut off from the rest of the community by "
                "roads, water or dedicated grids"
            )
            labels.of[comp] = labels.new(flags=["under_band"], reason=why)
        else:
            k = choose_k(total, p.households)
            parts = partition(
                graph.subgraph(comp),
                k,
                households=p.households,
                population=p.population,
                seed=p.seed,
            )
            base = len(labels.kinds)
            for _ in range(int(parts.max()) + 1):
                labels.new()
            labels.of[comp] = base + parts
    return empty


def _label_empty_land(labels: _Labels, graph: CellGraph, empty: list[np.ndarray]) -> None:
    """Land without homes joins the grid it borders most (its own grid when it borders none)."""
    while empty:
        waiting = []
        for comp in empty:
            share = _border(graph, comp, labels.of)
            if share:
                labels.of[comp] = max(share, key=lambda g: share[g])
            else:
                waiting.append(comp)
        if len(waiting) == len(empty):  # borders nothing labelled at all: its own grid
            for comp in waiting:
                why = (
                    "no homes in the community"
                    if len(comp) == graph.n
                    else "land without homes, cut off from every other grid"
                )
                labels.of[comp] = labels.new(flags=["empty"], reason=why)
            return
        empty = waiting


def _draft(
    lab: int,
    labels: _Labels,
    graph: CellGraph,
    cells: gpd.GeoDataFrame,
    table: pd.DataFrame,
    hband: Band,
) -> DraftGrid | None:
    """The grid of one label (None when no cell has it), with its flags and reason."""
    mine = np.flatnonzero(labels.of == lab)
    if len(mine) == 0:
        return None
    kind = labels.kinds[lab]
    geom = dissolve(cells.geometry.values[mine])
    cell_unit = cells["unit"].to_numpy()
    units_here = cell_unit[mine][cell_unit[mine] >= 0]
    ids = [b for s in table["buildings"].to_numpy()[units_here] for b in s.split(",") if b]
    flags = list(kind.flags)
    if (table["flag"].to_numpy()[units_here] == "split_by_entrance").any():
        flags.append("split_by_entrance")
    if geom.geom_type != "Polygon":
        flags.append("not_contiguous")
    hh = int(graph.households[mine].sum())
    reason = kind.reason
    if kind.grid_type == "basic" and not reason and not hband.contains(hh):
        largest = int(table["households"].to_numpy()[units_here].max(initial=0))
        reason = _out_of_band_reason(hh, largest, hband)
        flags.append("over_band" if hh > hband.high else "under_band")
    return DraftGrid(
        grid_type=kind.grid_type,
        households=hh,
        population=int(graph.population[mine].sum()),
        building_ids=list(dict.fromkeys(ids)),
        flags=",".join(dict.fromkeys(flags)),
        reason=reason,
        geometry=geom,
    )


def _out_of_band_reason(households: int, largest: int, hband: Band) -> str:
    """Why a basic grid ended outside the band, in words."""
    side = "above the ceiling" if households > hband.high else "under the floor"
    if largest >= hband.low / 2:
        return (
            f"{households} households, {side}: compounds that fit in a grid stay whole "
            f"(one here holds {largest}) and no grouping of them with their "
            "neighbours fits the band"
        )
    return (
        f"{households} households, {side}: the grids around it could not give or "
        "take enough households without leaving the band themselves"
    )


def _border(graph: CellGraph, comp: np.ndarray, label: np.ndarray) -> dict[int, float]:
    """Shared boundary length between a set of cells and each labelled grid next to it."""
    inside = np.zeros(graph.n, bool)
    inside[comp] = True
    share: dict[int, float] = {}
    for (i, j), length in zip(graph.edges, graph.length, strict=True):
        if inside[i] != inside[j]:
            other = j if inside[i] else i
            if label[other] >= 0:
                share[int(label[other])] = share.get(int(label[other]), 0.0) + float(length)
    return share
