"""Manual edits to grids: lock, unlock, and move buildings between grids with checks.

A move takes the land around the moved buildings (their footprints grown by
``MOVE_MARGIN_M``, within the grid they leave) to the target grid, so the grids
still tile the community. It is refused when the target grid is in another
community, when either grid would stop being one polygon, or when either would
leave the household band; ``force`` makes it anyway and flags both grids
``manual_edit``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid._errors import ConflictError, InputError, argument
from gisgrid.delineate.cells import GRID_SIZE
from gisgrid.delineate.community import Params
from gisgrid.delineate.history import record_run
from gisgrid.delineate.partition import Band
from gisgrid.io.workspace import Workspace, WorkspaceLike, open_workspace

__all__ = ["MoveRefusedError", "lock", "move"]

logger = logging.getLogger(__name__)

MOVE_MARGIN_M = 10.0


class MoveRefusedError(InputError):
    """A move that would break a rule; ``reasons`` says which."""

    def __init__(self, reasons: list[str], *, forcible: bool = True) -> None:
        self.reasons = reasons
        self.forcible = forcible
        fix = (
            f"use {argument('force')} to move anyway"
            if forcible
            else "even with --force: grids stay one piece; move a building that borders it"
        )
        super().__init__("move refused: " + "; ".join(reasons) + f" ({fix})")


def _grids(ws: Workspace, columns: list[str] | None = None) -> gpd.GeoDataFrame:
    if "grids" not in ws:
        raise InputError(
            f"{ws.location} has no grids yet; run `gisgrid delineate {ws.location}` first"
        )
    return ws.read("grids", columns=columns)


def lock(workspace: WorkspaceLike, codes: list[str], *, locked: bool = True) -> int:
    """Lock (or unlock) grids: a locked grid is kept as it is by later delineations.

    Returns
    -------
    int
        How many grids changed.
    """
    ws = open_workspace(workspace)
    if "grids" not in ws:
        raise InputError(f"{ws.location} has no grids yet; delineate the workspace first")
    known = set(ws.values("grids", "grid_code"))
    unknown = sorted(set(codes) - known)
    if unknown:
        raise InputError(f"no grid with code {', '.join(unknown)}")
    # only these rows: planners locking different grids at once never overwrite each other
    return ws.update("grids", key="grid_code", keys=list(codes), values={"locked": locked})


@dataclass
class MoveResult:
    """What a move did (or would do): the buildings, the grids' households before and
    after, the rules it breaks (``reasons``, which ``force`` overrides) and the invariants
    (``broken``, which nothing overrides)."""

    buildings: list[str]
    source: list[str]
    target: str
    forced: bool
    households: dict[str, tuple[int, int]]
    reasons: list[str]
    broken: list[str]
    run_id: int | None = None  # None when nothing was written (a dry run)


def move(
    workspace: WorkspaceLike,
    *,
    to: str,
    building: str | None = None,
    compound: str | None = None,
    force: bool = False,
    reason: str = "",
    from_grid: str | None = None,
    dry_run: bool = False,
    params: Params | None = None,
) -> MoveResult:
    """Move a building, or a whole compound, to another grid.

    Parameters
    ----------
    workspace
        The workspace (with grids).
    to
        The grid code to move into.
    building, compound
        What to move: one building id, or every building of a compound.
    force
        Move even when a rule breaks, flagging both grids ``manual_edit``.
    reason
        Why a forced move is made (kept in the grids' ``reason`` and the run).
    from_grid
        The grid the caller saw the building(s) in: when another planner has moved them
        since, nothing is moved (a conflict).
    dry_run
        Only check: say what the move would do and which rules it breaks, and write
        nothing (no refusal is raised).
    params
        Supplies the household band.

    Raises
    ------
    MoveRefusedError
        With the reasons, when a rule would break and ``force`` is off.
    ConflictError
        When the buildings are no longer in ``from_grid``, or another writer changed the
        grids or buildings while the move was worked out.
    """
    band = (params or Params()).households
    ws = open_workspace(workspace)
    if (building is None) == (compound is None):
        raise InputError(f"give exactly one of {argument('building')} or {argument('compound')}")
    grids = _grids(ws).set_index("grid_code", drop=False)
    buildings = ws.read("buildings")
    if to not in grids.index:
        raise InputError(f"no grid with code {to}")
    if building is not None:
        chosen = buildings[buildings["building_id"].astype(str) == building]
        what = f"building {building}"
    else:
        chosen = buildings[buildings["compound_id"].astype(str) == compound]
        what = f"compound {compound}"
    if chosen.empty:
        raise InputError(f"no {what} in {ws.location}")
    now_in = sorted(chosen["grid_code"].dropna().astype(str).unique())
    if from_grid is not None and now_in != [from_grid]:
        raise ConflictError(
            f"{what} is in grid {', '.join(now_in) or 'none'} now, not {from_grid}: another "
            "planner moved it; look at the current grids and move it again",
            layers=["buildings"],
            revision=ws.revision,
        )
    sources = [c for c in now_in if c != to]
    if not sources:
        raise InputError(f"{what} is already in grid {to}")
    plan = _plan_move(grids, buildings, chosen, sources, to, what, band)
    ids = chosen["building_id"].astype(str).tolist()
    if dry_run:
        return MoveResult(ids, sources, to, False, plan.counts, plan.reasons, plan.broken)
    if plan.broken:
        raise MoveRefusedError(plan.broken, forcible=False)
    if plan.reasons and not force:
        raise MoveRefusedError(plan.reasons)
    new_grids = _moved_grids(grids, chosen, sources, to, plan, band, reason=reason)
    buildings.loc[chosen.index, "grid_code"] = to
    layers = record_run(
        ws,
        kind="move",
        params={
            "what": what,
            "to": to,
            "forced": bool(plan.reasons),
            **({"reason": reason} if reason else {}),
        },
        grids=new_grids,
        buildings=buildings,
    )
    ws.write({"grids": new_grids, "buildings": buildings, **layers})
    logger.info("moved %s from %s to %s", what, ", ".join(sources), to)
    run_id = int(layers["runs"]["run_id"].iloc[-1])
    forced = bool(plan.reasons)
    return MoveResult(ids, sources, to, forced, plan.counts, plan.reasons, [], run_id)


@dataclass
class _MovePlan:
    """What a move would do: the grids' new shapes and counts, the rules it breaks, and
    the invariants it would break (which no --force overrides)."""

    geometry: gpd.GeoSeries
    counts: dict[str, tuple[int, int]]
    reasons: list[str]
    broken: list[str]


def _plan_move(
    grids: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    chosen: gpd.GeoDataFrame,
    sources: list[str],
    to: str,
    what: str,
    band: Band,
) -> _MovePlan:
    """Take the chosen buildings, with the land around them (never another building), from
    their grids into ``to``; say which rule that breaks (community, locks, band) and which
    invariant (one piece, nothing left)."""
    reasons, broken = [], []
    if (chosen["community_code"] != grids.loc[to, "community_code"]).any():
        reasons.append(
            f"grid {to} is in community {grids.loc[to, 'community_code']}, "
            f"{what} is not: grids nest in one community"
        )
    locked = [c for c in [*sources, to] if bool(grids.loc[c, "locked"])]
    if locked:
        reasons.append(f"grid {', '.join(locked)} is locked; unlock it first")
    hh = pd.to_numeric(chosen["households"], errors="coerce").fillna(0)
    geoms = grids.geometry.copy()
    counts: dict[str, tuple[int, int]] = {}
    for src in sources:
        stays = buildings[(buildings["grid_code"] == src) & ~buildings.index.isin(chosen.index)]
        geoms[src], piece = _take(geoms[src], chosen.geometry.values, stays.geometry.values)
        joined = shapely.union(geoms[to], piece)
        if joined.geom_type != "Polygon":  # edges that meet within rounding: node them on
            joined = shapely.union(geoms[to], piece, grid_size=GRID_SIZE)  # the cells' grid
        geoms[to] = joined
        before = int(grids.loc[src, "households"])
        counts[src] = (before, before - int(hh[chosen["grid_code"] == src].sum()))
        if geoms[src].is_empty:
            broken.append(f"grid {src} would be left empty")
        elif geoms[src].geom_type != "Polygon":
            broken.append(
                f"grid {src} would fall apart into {len(shapely.get_parts(geoms[src]))} pieces"
            )
        if not geoms[src].is_empty and not band.contains(counts[src][1]):
            reasons.append(
                f"grid {src} would hold {counts[src][1]} households, outside "
                f"{band.low:g}–{band.high:g}"
            )
    arriving = chosen["grid_code"] != to  # a compound's buildings already in ``to`` stay
    after_to = int(grids.loc[to, "households"]) + int(hh[arriving].sum())
    counts[to] = (int(grids.loc[to, "households"]), after_to)
    if geoms[to].geom_type != "Polygon":
        broken.append(f"grid {to} would not be one piece: {what} does not border it")
    if grids.loc[to, "grid_type"] == "basic" and not band.contains(after_to):
        reasons.append(
            f"grid {to} would hold {after_to} households, outside {band.low:g}–{band.high:g}"
        )
    return _MovePlan(geoms, counts, reasons, broken)


def _take(
    grid: shapely.Geometry, moving: np.ndarray, staying: np.ndarray
) -> tuple[shapely.Geometry, shapely.Geometry]:
    """Split a grid into what stays and the piece that leaves with ``moving``: the moving
    buildings whole, with land within ``MOVE_MARGIN_M`` of them but no part of a staying
    building; land the split leaves without a building goes with the piece when it
    touches it. Both come back as a Polygon where they are one piece."""
    grown = shapely.union_all(shapely.buffer(moving, MOVE_MARGIN_M))
    keep = shapely.union_all(staying) if len(staying) else shapely.Polygon()
    piece = shapely.difference(shapely.intersection(grid, grown), keep)
    piece = shapely.union(piece, shapely.intersection(grid, shapely.union_all(moving)))
    rest = shapely.difference(grid, piece)
    parts = list(shapely.get_parts(rest))
    if len(parts) > 1:  # slivers of the margin, cut off from the grid's buildings
        homes = shapely.point_on_surface(staying) if len(staying) else np.empty(0, object)
        held = [bool(len(homes)) and bool(shapely.contains(p, homes).any()) for p in parts]
        if any(held):
            loose = [p for p, h in zip(parts, held, strict=True) if not h]
            rest = shapely.union_all([p for p, h in zip(parts, held, strict=True) if h])
            piece = shapely.union_all([piece, *loose])
    return _one_part(rest), _one_part(piece)


def _one_part(geometry: shapely.Geometry) -> shapely.Geometry:
    """Polygon parts only; a Polygon when there is one."""
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type == "Polygon" and p.area > 0]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _moved_grids(
    grids: gpd.GeoDataFrame,
    chosen: gpd.GeoDataFrame,
    sources: list[str],
    to: str,
    plan: _MovePlan,
    band: Band,
    *,
    reason: str = "",
) -> gpd.GeoDataFrame:
    """The grids layer after the move, re-counted; flagged ``manual_edit`` when forced."""
    pop = pd.to_numeric(chosen["population"], errors="coerce").fillna(0)
    out = grids.copy()
    out["geometry"] = plan.geometry
    for src in sources:
        out.loc[src, "households"] = plan.counts[src][1]
        out.loc[src, "population"] = int(out.loc[src, "population"]) - int(
            pop[chosen["grid_code"] == src].sum()
        )
    out.loc[to, "households"] = plan.counts[to][1]
    arriving = chosen["grid_code"] != to
    out.loc[to, "population"] = int(out.loc[to, "population"]) + int(pop[arriving].sum())
    out["in_band"] = band.contains(out["households"]) | (out["grid_type"] == "dedicated")
    if plan.reasons:
        for code in [*sources, to]:
            flags = [f for f in str(out.loc[code, "flags"] or "").split(",") if f]
            out.loc[code, "flags"] = ",".join(dict.fromkeys([*flags, "manual_edit"]))
            why = f" (because: {reason})" if reason else ""
            out.loc[code, "reason"] = "moved by hand against: " + "; ".join(plan.reasons) + why
    return gpd.GeoDataFrame(out.reset_index(drop=True), crs=grids.crs)
