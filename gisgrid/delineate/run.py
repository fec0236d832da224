"""A delineation run over a workspace: read, fan out per community, measure, write.

Each run writes the ``grids`` layer (grids of the communities it delineated
replace theirs; locked grids stay), each building's ``grid_code``, and one row
of ``runs``: its parameters, a digest of its input, its metrics and its time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid._errors import InputError
from gisgrid.delineate.community import CommunityResult, CommunityTask, Params, delineate_community
from gisgrid.delineate.fanout import fan_out
from gisgrid.delineate.history import next_run_id, record_run
from gisgrid.delineate.metrics import grid_metrics, polsby_popper
from gisgrid.io.schema import WATER_KINDS
from gisgrid.io.workspace import Workspace, WorkspaceLike, open_workspace

__all__ = ["DelineationRun", "delineate"]

logger = logging.getLogger(__name__)

GRID_COLUMNS = [
    "grid_code",
    "community_code",
    "street_code",
    "name",
    "grid_type",
    "households",
    "population",
    "buildings",
    "in_band",
    "polsby_popper",
    "area_m2",
    "flags",
    "reason",
    "locked",
    "run_id",
]


@dataclass
class DelineationRun:
    """The outcome of :func:`delineate`."""

    run_id: int
    grids: gpd.GeoDataFrame
    metrics: dict
    seconds: float
    communities: list[str]
    params: Params  # as used: persons per household measured where it was not set
    out_of_band: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class _Inputs:
    """What a run reads from the workspace."""

    comms: gpd.GeoDataFrame
    stored: gpd.GeoDataFrame  # the buildings as stored, to write back with their grid codes
    buildings: gpd.GeoDataFrame  # the same, typed and filled for the engine
    lines: dict[str, np.ndarray]  # roads, water, and all lines that cut blocks
    previous: gpd.GeoDataFrame | None
    retired: dict[str, set[int]]


def delineate(
    workspace: WorkspaceLike,
    *,
    params: Params | None = None,
    communities: Iterable[str] | None = None,
    workers: int = 1,
    full: bool = False,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DelineationRun:
    """Delineate grids in every community of a workspace (or the named ones).

    Parameters
    ----------
    workspace
        The workspace; needs ``communities`` and ``buildings`` (``roads`` and
        ``barriers`` are used when present).
    params
        Targets, bands, dedicated kinds and the seed.
    communities
        Community codes to delineate; all when None.
    workers
        Local processes to fan out to (communities are independent).
    full
        Re-delineate every unlocked grid. By default a community that already
        has grids is re-delineated incrementally: only the grids whose
        households (recounted on today's buildings) left the band, and their
        neighbours, are redrawn; the others keep their polygon and code. A new
        grid that continues an old one takes its code; other new grids take the
        next free serials; retired codes are never given again.
    scheduler
        A dask.distributed scheduler (``tcp://HOST:PORT``): each community is a task
        on its cluster instead of a local process (:mod:`gisgrid.delineate.fanout`).
        The grids are the same as a local run's.
    progress
        Called with (communities done, communities in all).

    Returns
    -------
    DelineationRun
    """
    started = time.perf_counter()
    ws = open_workspace(workspace)
    inputs = _read_inputs(ws)
    params = (params or Params()).with_people(
        households=float(inputs.buildings["households"].sum()),
        population=float(inputs.buildings["population"].sum()),
    )
    wanted = _wanted(ws, inputs.comms, communities, params)
    tasks = _tasks(
        inputs.comms[inputs.comms["code"].isin(wanted)],
        inputs.buildings,
        inputs.lines,
        inputs.previous,
        params,
        full=full,
        retired=inputs.retired,
    )
    order = sorted(tasks, key=lambda t: -len(t.buildings))  # largest first balances best
    results = fan_out(
        delineate_community,
        order,
        key=lambda t: t.code,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
    )
    run_id = next_run_id(ws)
    new = _new_grids(results, wanted, inputs, params, run_id)
    old_codes = _assign_buildings(inputs, results)
    buildings = inputs.buildings
    metrics = grid_metrics(
        new,
        inputs.comms[inputs.comms["code"].isin(wanted)],
        buildings[buildings["community_code"].isin(wanted)],
        inputs.lines["lines"],
        households=params.households,
        population=params.population,
        stability=_stability(old_codes, buildings, wanted),
    )
    previous = inputs.previous
    kept = previous[~previous["community_code"].isin(wanted)] if previous is not None else None
    grids = (
        new
        if kept is None or kept.empty
        else gpd.GeoDataFrame(pd.concat([kept, new], ignore_index=True), crs=new.crs)
    )
    seconds = time.perf_counter() - started
    layers = {
        "grids": grids,
        "buildings": inputs.stored,
        **record_run(
            ws,
            kind="delineate",
            params=asdict(params),
            grids=grids,
            buildings=inputs.stored,
            run_id=run_id,
            communities=wanted,
            metrics=metrics,
            seconds=seconds,
        ),
        **_retired_layer(ws, results, run_id),
    }
    ws.write(layers)
    bad = new[~new["in_band"]][["grid_code", "households", "flags", "reason"]]
    return DelineationRun(run_id, new, metrics, seconds, wanted, params, bad.reset_index(drop=True))


def _read_inputs(ws: Workspace) -> _Inputs:
    stored = ws.read("buildings")
    roads = ws.read("roads") if "roads" in ws else None
    barriers = ws.read("barriers") if "barriers" in ws else None
    retired: dict[str, set[int]] = {}
    if "retired_grids" in ws:
        for code in ws.read("retired_grids")["grid_code"].astype(str):
            retired.setdefault(code[:12], set()).add(int(code[12:]))
    buildings = _prepared(stored)
    return _Inputs(
        comms=_with_crossing_buildings(ws.read("communities"), buildings),
        stored=stored,
        buildings=buildings,
        lines={
            "roads": _geoms(roads),
            "water": _geoms(barriers, kinds=WATER_KINDS),
            "lines": np.concatenate([_geoms(roads), _geoms(barriers)]),
        },
        previous=ws.read("grids") if "grids" in ws else None,
        retired=retired,
    )


def _with_crossing_buildings(
    comms: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """The communities as grids must tile them: a building across a community line
    belongs to one community (the import gave it the one holding most of its area) and
    stays whole, so that community takes in its whole outline and the others give it up
    (DESIGN §5, real data rules)."""
    if comms.empty or buildings.empty or "community_code" not in buildings:
        return comms
    geoms = comms.geometry.values.copy()
    where = {code: i for i, code in enumerate(comms["code"])}
    lines = shapely.STRtree(shapely.boundary(geoms))
    crossing = np.unique(lines.query(buildings.geometry.values, predicate="crosses")[0])
    for b in crossing:
        outline = buildings.geometry.values[b]
        own = where.get(buildings["community_code"].iloc[b])
        if own is None:
            continue
        for i in shapely.STRtree(geoms).query(outline, predicate="intersects"):
            geoms[i] = (
                shapely.union(geoms[i], outline)
                if i == own
                else shapely.difference(geoms[i], outline)
            )
    out = comms.copy()
    out["geometry"] = shapely.make_valid(geoms)
    return out


def _wanted(
    ws: Workspace, comms: gpd.GeoDataFrame, communities: Iterable[str] | None, params: Params
) -> list[str]:
    """The communities to delineate, checked against the workspace and the band."""
    wanted = list(comms["code"]) if communities is None else list(communities)
    unknown = sorted(set(wanted) - set(comms["code"]))
    if unknown:
        raise InputError(f"no community with code {', '.join(unknown)} in {ws.location}")
    if params.band[0] > params.target_households or params.band[1] < params.target_households:
        raise InputError(
            f"the band {params.band[0]}-{params.band[1]} does not contain the target "
            f"{params.target_households}"
        )
    return wanted


def _new_grids(
    results: dict[str, CommunityResult],
    wanted: list[str],
    inputs: _Inputs,
    params: Params,
    run_id: int,
) -> gpd.GeoDataFrame:
    """The delineated communities' grids with names, band, shape measures and run id."""
    comms = inputs.comms.set_index("code")
    new = pd.concat([results[c].grids for c in wanted if c in results], ignore_index=True)
    new = gpd.GeoDataFrame(new, geometry="geometry", crs=inputs.buildings.crs)
    new["street_code"] = new["community_code"].map(comms["parent_code"])
    new["name"] = (
        new["community_code"].map(comms["name"]).str.replace("社区居委会", "社区")
        + "第"
        + new["grid_code"].str[-3:].astype(int).astype(str)
        + "网格"
    )
    new["in_band"] = params.households.contains(new["households"]) | (
        new["grid_type"] == "dedicated"
    )
    new["area_m2"] = new.geometry.area.round(1)
    new["polsby_popper"] = polsby_popper(new.geometry.values).round(4)
    new["run_id"] = np.where(new["locked"].astype(bool), new.get("run_id", run_id), run_id)
    new = new[[*GRID_COLUMNS, "geometry"]].sort_values("grid_code").reset_index(drop=True)
    single = shapely.get_num_geometries(new.geometry.values) == 1  # store one part as Polygon
    new.loc[single, "geometry"] = shapely.get_geometry(new.geometry.values[single], 0)
    return new


def _assign_buildings(inputs: _Inputs, results: dict[str, CommunityResult]) -> pd.Series:
    """Give the buildings their new grid codes (in place); the codes they had before."""
    buildings = inputs.buildings
    old_codes = (
        buildings["grid_code"]
        if "grid_code" in buildings
        else pd.Series(None, index=buildings.index, dtype=object)
    )
    grid_of = pd.concat([results[c].building_grid for c in results])
    fresh = buildings["building_id"].astype(str).map(grid_of)
    buildings["grid_code"] = fresh.where(fresh.notna(), old_codes).astype(object)
    inputs.stored["grid_code"] = buildings["grid_code"].to_numpy()
    return old_codes


def _retired_layer(
    ws: Workspace, results: dict[str, CommunityResult], run_id: int
) -> dict[str, pd.DataFrame]:
    """``retired_grids`` with the codes this run retired (nothing when it retired none)."""
    newly = [code for c in results for code in results[c].retired]
    if not newly:
        return {}
    table = pd.DataFrame(
        {"grid_code": newly, "community_code": [c[:12] for c in newly], "run_id": run_id}
    )
    if "retired_grids" in ws:
        table = pd.concat([pd.DataFrame(ws.read("retired_grids")), table], ignore_index=True)
    return {"retired_grids": table}


def _stability(
    old_codes: pd.Series, buildings: gpd.GeoDataFrame, wanted: list[str]
) -> float | None:
    """Share of households (in buildings that had a grid) keeping their grid code."""
    had = old_codes.notna() & buildings["community_code"].isin(wanted)
    if not had.any():
        return None
    weight = buildings.loc[had, "households"].astype(float)
    same = buildings.loc[had, "grid_code"].astype(str) == old_codes[had].astype(str)
    return float(weight[same].sum() / weight.sum()) if weight.sum() > 0 else float(same.mean())


def _prepared(buildings: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A copy of the buildings with the fields the engine reads, typed and filled."""
    out = buildings.copy()
    defaults = {"households": 0, "population": 0, "entrances": 1}
    for column, default in defaults.items():
        values = pd.to_numeric(out[column], errors="coerce") if column in out else None
        out[column] = default if values is None else values.fillna(default).astype("int64")
    out["compound_id"] = out["compound_id"].fillna("").astype(str) if "compound_id" in out else ""
    out["kind"] = out["kind"].fillna("residential") if "kind" in out else "residential"
    return out


def _geoms(layer: gpd.GeoDataFrame | None, *, kinds: tuple[str, ...] | None = None) -> np.ndarray:
    if layer is None:
        return np.empty(0, dtype=object)
    if kinds is not None:
        layer = layer[layer["kind"].isin(kinds)]
    return layer.geometry.values[~layer.geometry.is_empty.to_numpy()]


def _tasks(
    comms: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    kinds: dict[str, np.ndarray],
    previous: gpd.GeoDataFrame | None,
    params: Params,
    *,
    full: bool,
    retired: dict[str, set[int]],
) -> list[CommunityTask]:
    trees = {k: shapely.STRtree(v) for k, v in kinds.items() if len(v)}
    by_comm = dict(list(buildings.groupby("community_code")))
    tasks = []

    def near(kind: str, geometry: shapely.Geometry) -> np.ndarray:
        if kind not in trees:
            return kinds[kind]
        return kinds[kind][trees[kind].query(geometry, predicate="intersects")]

    empty = gpd.GeoDataFrame(geometry=[], crs=buildings.crs)
    _check_buildings_inside(comms, by_comm)
    for row in comms.itertuples():
        mine_b = by_comm.get(row.code, buildings.iloc[:0])
        kept, freed = empty, empty
        if previous is not None and (previous["community_code"] == row.code).any():
            grids = previous[previous["community_code"] == row.code].reset_index(drop=True)
            locked = (
                grids["locked"].fillna(False).astype(bool)
                if "locked" in grids
                else pd.Series(False, index=grids.index)
            )
            keep = locked.copy() if full else ~_freed(grids, locked, mine_b, params)
            kept, freed = grids[keep].reset_index(drop=True), grids[~keep].reset_index(drop=True)
        tasks.append(
            CommunityTask(
                code=row.code,
                name=row.name,
                geometry=row.geometry,
                buildings=mine_b,
                lines=near("lines", row.geometry),
                kept=kept,
                params=params,
                water=near("water", row.geometry),
                roads=near("roads", row.geometry),
                retired=frozenset(retired.get(row.code, set())),
                freed=freed,
                previous=_previous_codes(mine_b),
            )
        )
    return tasks


def _previous_codes(buildings: gpd.GeoDataFrame) -> pd.Series:
    """A community's buildings' grid codes before this run, by building id."""
    if "grid_code" not in buildings:
        return pd.Series(dtype=object)
    return buildings.set_index(buildings["building_id"].astype(str))["grid_code"]


def _check_buildings_inside(comms: gpd.GeoDataFrame, by_comm: dict) -> None:
    """Refuse buildings that lie off the community their ``community_code`` names (an
    import gives each the community holding most of it; an edit by hand may not)."""
    count, first = 0, None
    for row in comms.itertuples():
        mine = by_comm.get(row.code)
        if mine is None or mine.empty:
            continue
        rep = shapely.point_on_surface(mine.geometry.values)
        shapely.prepare(row.geometry)
        far = np.flatnonzero(~shapely.intersects(row.geometry, rep))
        if len(far) and first is None:
            gap = shapely.distance(row.geometry, rep[far[0]])
            first = (str(mine["building_id"].iloc[far[0]]), row.code, gap)
        count += len(far)
    if first is not None:
        building, code, gap = first
        raise InputError(
            f"{count:,} buildings lie outside the community their community_code names "
            f"(first: {building} of {code}, {gap:,.0f} m outside it); import the buildings "
            "again (`gisgrid import WORKSPACE buildings FILE`), which gives each the community "
            "holding most of it"
        )


def _freed(
    grids: gpd.GeoDataFrame, locked: pd.Series, buildings: gpd.GeoDataFrame, params: Params
) -> pd.Series:
    """Grids an incremental run re-delineates: unlocked basic grids whose households
    (recounted on today's buildings) changed and left the band, or that a new building
    straddles, and their unlocked neighbours. On unchanged data nothing is freed: a grid
    the last run left out of band (with its reason) would only be drawn again the same."""
    rep = shapely.point_on_surface(buildings.geometry.values)
    g_idx, b_idx = shapely.STRtree(rep).query(grids.geometry.values, predicate="contains")
    hh = np.bincount(
        g_idx, weights=buildings["households"].to_numpy(float)[b_idx], minlength=len(grids)
    )
    basic = (grids["grid_type"] == "basic").to_numpy()
    changed = hh != pd.to_numeric(grids["households"], errors="coerce").fillna(-1).to_numpy()
    out = basic & changed & ~params.households.contains(hh) & ~locked.to_numpy()
    # a new building (no grid yet) across an edge frees the grids it crosses, without
    # their neighbours; one the last run already placed (across a community line, say)
    # does not
    new = (
        buildings["grid_code"].isna().to_numpy()
        if "grid_code" in buildings
        else np.ones(len(buildings), bool)
    )
    crossed = np.zeros(len(grids), bool)
    cross_g, cross_b = shapely.STRtree(buildings.geometry.values).query(
        grids.geometry.values, predicate="overlaps"
    )
    cross_g = cross_g[new[cross_b]]
    crossed[cross_g] = basic[cross_g]
    if not out.any():
        return pd.Series(crossed & ~locked.to_numpy(), index=grids.index)
    tree = shapely.STRtree(grids.geometry.values)
    _, b = tree.query(grids.geometry.values[out], predicate="intersects")
    ring = np.zeros(len(grids), bool)
    ring[b] = True
    return pd.Series((out | (ring & basic) | crossed) & ~locked.to_numpy(), index=grids.index)
