"""A delineation run over a workspace: read, fan out per community, measure, write.

Each run writes the ``grids`` layer (grids of the communities it delineated
replace theirs; locked grids stay), each building's ``grid_code``, and one row
of ``runs``: its parameters, a digest of its input, its metrics and its time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

import gisgrid
from gisgrid._errors import InputError
from gisgrid.delineation import CommunityResult, CommunityTask, Params, delineate_community
from gisgrid.history import snapshot_layers
from gisgrid.metrics import grid_metrics, polsby_popper
from gisgrid.workspace import Workspace

__all__ = ["DelineationRun", "delineate"]

logger = logging.getLogger(__name__)

WATER_KINDS = ("river", "canal", "stream", "water")
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
    out_of_band: pd.DataFrame = field(default_factory=pd.DataFrame)


def input_digest(*frames: pd.DataFrame) -> str:
    """SHA-256 of the attributes and geometry of the input layers."""
    h = hashlib.sha256()
    for frame in frames:
        attrs = (
            frame.drop(columns=frame.geometry.name)
            if isinstance(frame, gpd.GeoDataFrame)
            else frame
        )
        h.update(pd.util.hash_pandas_object(attrs.astype(str), index=False).to_numpy().tobytes())
        if isinstance(frame, gpd.GeoDataFrame):
            h.update(b"".join(shapely.to_wkb(frame.geometry.values)))
    return h.hexdigest()


def delineate(
    workspace: Workspace | str,
    *,
    params: Params | None = None,
    communities: Iterable[str] | None = None,
    workers: int = 1,
    full: bool = False,
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
        Processes to fan out to (communities are independent).
    full
        Re-delineate every unlocked grid. By default a community that already
        has grids is re-delineated incrementally: only the grids whose
        households (recounted on today's buildings) left the band, and their
        neighbours, are redrawn; the others keep their polygon and code. A new
        grid that continues an old one takes its code; other new grids take the
        next free serials; retired codes are never given again.
    progress
        Called with (communities done, communities in all).

    Returns
    -------
    DelineationRun
    """
    started = time.perf_counter()
    params = params or Params()
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    comms = ws.read("communities")
    stored = ws.read("buildings")
    buildings = _prepared(stored)
    roads = ws.read("roads") if "roads" in ws else None
    barriers = ws.read("barriers") if "barriers" in ws else None
    kinds = {
        "roads": _geoms(roads),
        "water": _geoms(barriers, kinds=WATER_KINDS),
        "lines": np.concatenate([_geoms(roads), _geoms(barriers)]),
    }
    previous = ws.read("grids") if "grids" in ws else None
    wanted = list(comms["code"]) if communities is None else list(communities)
    unknown = sorted(set(wanted) - set(comms["code"]))
    if unknown:
        raise InputError(
            f"no community with code {', '.join(unknown)} in {ws.path}; "
            "see `gisgrid info` for the layers"
        )
    if params.band[0] > params.target_households or params.band[1] < params.target_households:
        raise InputError(
            f"--band {params.band[0]}-{params.band[1]} does not contain the target "
            f"{params.target_households}"
        )

    retired_table = ws.read("retired_grids") if "retired_grids" in ws else None
    retired: dict[str, set[int]] = {}
    if retired_table is not None:
        for code in retired_table["grid_code"].astype(str):
            retired.setdefault(code[:12], set()).add(int(code[12:]))
    tasks = _tasks(
        comms[comms["code"].isin(wanted)],
        buildings,
        kinds,
        previous,
        params,
        full=full,
        retired=retired,
    )
    results: dict[str, CommunityResult] = {}
    order = sorted(tasks, key=lambda t: -len(t.buildings))
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for i, (task, result) in enumerate(
                zip(order, pool.map(delineate_community, order), strict=True)
            ):
                results[task.code] = result
                if progress:
                    progress(i + 1, len(tasks))
    else:
        for i, task in enumerate(order):
            results[task.code] = delineate_community(task)
            if progress:
                progress(i + 1, len(tasks))

    run_id = _next_run_id(ws)
    streets = comms.set_index("code")["parent_code"]
    names = comms.set_index("code")["name"]
    new = pd.concat([results[c].grids for c in wanted if c in results], ignore_index=True)
    new = gpd.GeoDataFrame(new, geometry="geometry", crs=buildings.crs)
    new["street_code"] = new["community_code"].map(streets)
    new["name"] = (
        new["community_code"].map(names).str.replace("社区居委会", "社区")
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

    grid_of = pd.concat([results[c].building_grid for c in results])
    old_codes = (
        buildings["grid_code"]
        if "grid_code" in buildings
        else pd.Series(None, index=buildings.index, dtype=object)
    )
    fresh = buildings["building_id"].astype(str).map(grid_of)
    buildings["grid_code"] = fresh.where(fresh.notna(), old_codes).astype(object)
    stored["grid_code"] = buildings["grid_code"].to_numpy()
    stability = _stability(old_codes, buildings, wanted)

    done = comms[comms["code"].isin(wanted)]
    metrics = grid_metrics(
        new,
        done,
        buildings[buildings["community_code"].isin(wanted)],
        kinds["lines"],
        households=params.households,
        population=params.population,
        stability=stability,
    )
    kept = previous[~previous["community_code"].isin(wanted)] if previous is not None else None
    grids = (
        new
        if kept is None or kept.empty
        else gpd.GeoDataFrame(pd.concat([kept, new], ignore_index=True), crs=new.crs)
    )
    seconds = time.perf_counter() - started
    run = pd.DataFrame(
        [
            {
                "run_id": run_id,
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(seconds, 3),
                "kind": "delineate",
                "params": json.dumps(asdict(params), ensure_ascii=False),
                "communities": json.dumps(wanted),
                "input_digest": input_digest(comms, buildings),
                "grids": len(new),
                "metrics": json.dumps(metrics),
                "gisgrid_version": gisgrid.__version__,
            }
        ]
    )
    runs = (
        pd.concat([pd.DataFrame(ws.read("runs")), run], ignore_index=True) if "runs" in ws else run
    )
    history, changes = snapshot_layers(ws, run_id, grids, stored)
    runs.loc[runs["run_id"] == run_id, "changes"] = json.dumps(changes)
    layers = {"grids": grids, "buildings": stored, "runs": runs, **history}
    newly_retired = [code for c in results for code in results[c].retired]
    if newly_retired:
        table = pd.DataFrame(
            {
                "grid_code": newly_retired,
                "community_code": [c[:12] for c in newly_retired],
                "run_id": run_id,
            }
        )
        if "retired_grids" in ws:
            table = pd.concat([pd.DataFrame(ws.read("retired_grids")), table], ignore_index=True)
        layers["retired_grids"] = table
    ws.write(layers)
    bad = new[~new["in_band"]][["grid_code", "households", "flags", "reason"]]
    return DelineationRun(run_id, new, metrics, seconds, wanted, bad.reset_index(drop=True))


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


def _next_run_id(ws: Workspace) -> int:
    if "runs" not in ws:
        return 1
    runs = ws.read("runs")
    return int(pd.to_numeric(runs["run_id"]).max()) + 1 if len(runs) else 1


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
    old_grid = (
        buildings.set_index(buildings["building_id"].astype(str))["grid_code"]
        if "grid_code" in buildings
        else pd.Series(dtype=object)
    )
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
                previous=old_grid,
            )
        )
    return tasks


def _freed(
    grids: gpd.GeoDataFrame, locked: pd.Series, buildings: gpd.GeoDataFrame, params: Params
) -> pd.Series:
    """Grids an incremental run re-delineates: unlocked basic grids whose households
    (recounted on today's buildings) left the band or that a building now straddles,
    and their unlocked neighbours."""
    rep = shapely.point_on_surface(buildings.geometry.values)
    g_idx, b_idx = shapely.STRtree(rep).query(grids.geometry.values, predicate="contains")
    hh = np.bincount(
        g_idx, weights=buildings["households"].to_numpy(float)[b_idx], minlength=len(grids)
    )
    basic = (grids["grid_type"] == "basic").to_numpy()
    out = basic & ~params.households.contains(hh) & ~locked.to_numpy()
    # a building that now straddles grids (a new one across an edge) frees the grids it
    # crosses, without their neighbours
    crossed = np.zeros(len(grids), bool)
    cross_g, _ = shapely.STRtree(buildings.geometry.values).query(
        grids.geometry.values, predicate="overlaps"
    )
    crossed[cross_g] = basic[cross_g]
    if not out.any():
        return pd.Series(crossed & ~locked.to_numpy(), index=grids.index)
    tree = shapely.STRtree(grids.geometry.values)
    _, b = tree.query(grids.geometry.values[out], predicate="intersects")
    ring = np.zeros(len(grids), bool)
    ring[b] = True
    return pd.Series((out | (ring & basic) | crossed) & ~locked.to_numpy(), index=grids.index)
