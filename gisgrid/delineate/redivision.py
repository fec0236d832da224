"""Re-divide an oversized community into communities of a workable size.

The community is cut into blocks by its roads, rivers and walls; blocks (never
compounds, which lie inside blocks) are grouped into the new communities by the
same partitioner as grids, with a band around an equal share of the households.
Boundaries along arterial and secondary roads, water and walls are the cheap
ones; along a local street they cost ``ALONG_MINOR`` times more. New communities
tile the old one exactly and are contiguous.

Codes: the new community holding most households keeps the old code; the others
take the next serials in the parent street's range. Names are provisional: the
largest compound's, else the main road's. The old community is kept in the
``community_history`` table, and grids are then delineated inside the new ones.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid._errors import InputError, argument
from gisgrid.delineate.cells import blocks_of, dissolve
from gisgrid.delineate.community import Params
from gisgrid.delineate.graph import cell_graph
from gisgrid.delineate.partition import Band, Weights, partition
from gisgrid.io.jurisdictions import community_of
from gisgrid.io.schema import WATER_KINDS
from gisgrid.io.workspace import Workspace, WorkspaceLike, open_workspace

__all__ = ["Redivision", "plan_redivision", "redivide"]

logger = logging.getLogger(__name__)

MAJOR_ROADS = ("arterial", "secondary")
SHARE_TOLERANCE = 0.2  # new communities within ±20 % of an equal share of households
HEADROOM = 0.85  # new communities are sized for 85 % of --max-households
THROUGH_GRID = 10.0  # cutting through an existing grid costs this many times more
# boundaries dearer than grids' (a new community 1 % off its share costs 0.06, 24 m of
# road): the ±20 % band leaves room to keep today's grids whole before evening out shares
COMMUNITY_WEIGHTS = Weights(cut=0.0025, linear=6.0)


@dataclass
class Redivision:
    """The plan (or outcome) of re-dividing one community.

    Attributes
    ----------
    old_code
        The community re-divided.
    communities
        The new communities: ``code``, ``name``, ``parent_code``, ``households``,
        ``population``, ``buildings``, ``area_km2`` and geometry.
    building_community
        New community code of each building id.
    """

    old_code: str
    communities: gpd.GeoDataFrame
    building_community: pd.Series


def plan_redivision(
    workspace: WorkspaceLike,
    community: str,
    *,
    parts: int | None = None,
    max_households: int | None = None,
    seed: int = 0,
) -> Redivision:
    """Work out how to re-divide a community, writing nothing.

    Parameters
    ----------
    workspace
        The workspace.
    community
        12-digit code of the community to re-divide.
    parts
        Number of new communities; or
    max_households
        the most households a new community may hold (parts = ceil(total / max)).
    seed
        Seed of the partitioner.

    Returns
    -------
    Redivision
    """
    ws = open_workspace(workspace)
    if (parts is None) == (max_households is None):
        raise InputError(f"give exactly one of {argument('parts')} or {argument('max_households')}")
    comms = ws.read("communities")
    match = comms[comms["code"] == community]
    if match.empty:
        raise InputError(f"no community with code {community} in {ws.location}")
    old = match.iloc[0]
    buildings = ws.read("buildings")
    mine = buildings[buildings["community_code"] == community].reset_index(drop=True)
    households = pd.to_numeric(mine["households"], errors="coerce").fillna(0).astype(int)
    total = int(households.sum())
    # aim a little under the maximum, so lumpy blocks leave the partitioner room to balance
    if parts is not None:
        k = parts
    else:
        assert max_households is not None  # one of the two, checked above
        k = max(1, math.ceil(total / (HEADROOM * max_households)))
    if k < 2:
        raise InputError(
            f"community {community} holds {total:,} households: nothing to "
            f"re-divide into {k} part (lower {argument('max_households')} or raise "
            f"{argument('parts')})"
        )

    major = _major_lines(ws)
    blocks = blocks_of(old.geometry, np.concatenate([major, _geoms(ws, "roads")]))
    block_of, units, cells = _block_units(blocks, mine, households)
    water = _water(ws)
    graph = cell_graph(cells, units, water=water, roads=_geoms(ws, "roads"), major=major)
    _keep_grids_whole(graph, cells, ws, community)
    share = total / k
    high = share * (1 + SHARE_TOLERANCE)
    if max_households is not None:
        high = min(high, max_households)
    band = Band(
        share,
        share * (1 - SHARE_TOLERANCE),
        max(high, share),
        ceiling_is_hard=max_households is not None,
    )
    labels = partition(
        graph,
        k,
        households=band,
        population=Band(1, 0, np.inf),
        seed=seed,
        weights=COMMUNITY_WEIGHTS,
    )
    if labels.max() + 1 < 2:
        raise InputError(
            f"community {community} cannot be re-divided into {k}: its {len(cells)} blocks "
            "(between major roads, water and walls, today's grids kept whole) do not split "
            f"into parts of about {share:,.0f} households; import the new boundaries instead "
            "(`gisgrid import WS communities FILE`)"
        )

    geoms = [dissolve(cells.geometry.values[labels == lab]) for lab in range(labels.max() + 1)]
    hh = np.bincount(labels, weights=graph.households)
    codes = _codes(comms, old, hh)
    names = [
        _name(mine[labels[block_of] == lab], ws, geoms[lab], old["name"])
        for lab in range(len(geoms))
    ]
    new = gpd.GeoDataFrame(
        {
            "code": codes,
            "name": names,
            "parent_code": old["parent_code"],
            "households": hh.astype(int),
            "population": np.bincount(labels, weights=graph.population).astype(int),
            "buildings": np.bincount(labels[block_of], minlength=len(geoms)),
            "area_km2": np.round(shapely.area(geoms) / 1e6, 3),
        },
        geometry=geoms,
        crs=buildings.crs,
    )
    return Redivision(
        community,
        new,
        pd.Series(
            np.asarray(codes)[labels[block_of]], index=mine["building_id"].astype(str).to_numpy()
        ),
    )


def redivide(
    workspace: WorkspaceLike,
    community: str,
    *,
    parts: int | None = None,
    max_households: int | None = None,
    params: Params | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    committed: Callable[[], None] | None = None,
) -> Redivision:
    """Re-divide a community and delineate grids inside the new communities.

    Writes the new ``communities`` (the old row replaced), each building's
    ``community_code``, drops the old community's grids, appends the old
    community to ``community_history``, then runs :func:`gisgrid.delineate.run.delineate`
    on the new communities.

    Parameters
    ----------
    workspace, community, parts, max_households
        As in :func:`plan_redivision`.
    params
        Delineation parameters for the grids inside.
    workers, scheduler
        Local processes, or a Dask scheduler, for the delineation.
    progress
        Called with (communities delineated, new communities).
    committed
        Called once the new communities are written (before their grids are).

    Returns
    -------
    Redivision
    """
    from gisgrid.delineate.run import delineate

    ws = open_workspace(workspace)
    params = params or Params()
    plan = plan_redivision(
        ws, community, parts=parts, max_households=max_households, seed=params.seed
    )
    comms = ws.read("communities")
    old = comms[comms["code"] == community]
    kept = comms[comms["code"] != community]
    fresh = plan.communities[["code", "name", "parent_code", "geometry"]]
    communities = gpd.GeoDataFrame(pd.concat([kept, fresh], ignore_index=True), crs=comms.crs)
    buildings = ws.read("buildings")
    ids = buildings["building_id"].astype(str)
    moved = ids.isin(plan.building_community.index)
    # each building in the new community holding most of its footprint (as on import),
    # so that a building across a new line is whole in the grids of that community
    code, _ = community_of(buildings[moved], fresh)
    buildings.loc[moved, "community_code"] = np.where(
        pd.isna(code), ids[moved].map(plan.building_community), code
    )
    old_codes = buildings["grid_code"].copy() if "grid_code" in buildings else None
    if old_codes is not None:
        buildings.loc[moved, "grid_code"] = None
    history = pd.DataFrame(
        {
            "code": old["code"],
            "name": old["name"],
            "parent_code": old["parent_code"],
            "replaced_by": ",".join(plan.communities["code"]),
            "retired_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "wkt": shapely.to_wkt(old.geometry.values, rounding_precision=3),
        }
    )
    if "community_history" in ws:
        history = pd.concat(
            [pd.DataFrame(ws.read("community_history")), history], ignore_index=True
        )
    layers = {"communities": communities, "buildings": buildings, "community_history": history}
    if "grids" in ws:
        grids = ws.read("grids")
        carried, recoded = _carry_grids(
            grids[grids["community_code"] == community], plan.communities
        )
        others = grids[grids["community_code"] != community]
        layers["grids"] = gpd.GeoDataFrame(
            pd.concat([others, carried], ignore_index=True), crs=grids.crs
        )
        if old_codes is not None:
            buildings["grid_code"] = old_codes.map(recoded).where(moved, buildings["grid_code"])
        if recoded:
            retired = pd.DataFrame(
                {
                    "grid_code": [c for c, n in recoded.items() if c != n],
                    "community_code": community,
                    "run_id": 0,
                }
            )
            if "retired_grids" in ws:
                retired = pd.concat(
                    [pd.DataFrame(ws.read("retired_grids")), retired], ignore_index=True
                )
            layers["retired_grids"] = retired
    ws.write(layers)
    logger.info("re-divided %s into %s", community, ", ".join(plan.communities["code"]))
    if committed is not None:
        committed()
    delineate(
        ws,
        params=params,
        communities=list(plan.communities["code"]),
        workers=workers,
        scheduler=scheduler,
        progress=progress,
    )
    return plan


def _keep_grids_whole(graph, cells: gpd.GeoDataFrame, ws: Workspace, community: str) -> None:
    """Make cutting through an existing grid dear, so new communities keep grids whole."""
    if "grids" not in ws:
        return
    grids = ws.read("grids")
    grids = grids[grids["community_code"] == community]
    if grids.empty:
        return
    rep = shapely.point_on_surface(cells.geometry.values)
    c_idx, g_idx = shapely.STRtree(grids.geometry.values).query(rep, predicate="within")
    grid_of = np.full(len(cells), -1)
    grid_of[c_idx] = g_idx
    i, j = graph.edges[:, 0], graph.edges[:, 1]
    inside = (grid_of[i] >= 0) & (grid_of[i] == grid_of[j])
    graph.length = np.where(inside, graph.length * THROUGH_GRID, graph.length)


def _carry_grids(
    grids: gpd.GeoDataFrame, new: gpd.GeoDataFrame
) -> tuple[gpd.GeoDataFrame, dict[str, str]]:
    """Old grids lying whole in one new community, with their (possibly new) codes.

    A grid in the part that keeps the old community code keeps its code; one in a
    new community is re-coded with that community's code (its old code retires).
    """
    from gisgrid.delineate.codes import grid_codes

    if grids.empty:
        return grids, {}
    area = shapely.area(grids.geometry.values)
    home = np.full(len(grids), None, dtype=object)
    for code, geom in zip(new["code"], new.geometry.values, strict=True):
        share = shapely.area(shapely.intersection(grids.geometry.values, geom)) / area
        home[share >= 0.999] = code
    keep = pd.notna(home)
    carried = grids[keep].copy()
    carried["community_code"] = home[keep]
    recoded: dict[str, str] = {}
    for code, part in carried.groupby("community_code"):
        same = part["grid_code"].str[:12] == code
        recoded.update({c: c for c in part.loc[same, "grid_code"]})
        moved = part[~same]
        if len(moved):
            xy = shapely.get_coordinates(shapely.point_on_surface(moved.geometry.values))
            new_codes = grid_codes(code, xy, row_height=float(np.sqrt(moved.area.median())))
            recoded.update(dict(zip(moved["grid_code"], new_codes, strict=True)))
    carried["grid_code"] = carried["grid_code"].map(recoded)
    return carried, recoded


def _geoms(ws: Workspace, layer: str) -> np.ndarray:
    if layer not in ws:
        return np.empty(0, dtype=object)
    return ws.read(layer).geometry.values


def _major_lines(ws: Workspace) -> np.ndarray:
    """Arterial and secondary roads, and every barrier (rivers, walls)."""
    parts = []
    if "roads" in ws:
        roads = ws.read("roads")
        parts.append(roads.geometry.values[roads["road_class"].isin(MAJOR_ROADS).to_numpy()])
    parts.append(_geoms(ws, "barriers"))
    return np.concatenate(parts) if parts else np.empty(0, dtype=object)


def _block_units(
    blocks: np.ndarray, mine: gpd.GeoDataFrame, households: pd.Series
) -> tuple[np.ndarray, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The block of each building, and the blocks as units and cells (a re-division
    never cuts a block)."""
    rep = shapely.point_on_surface(mine.geometry.values)
    bi, bl = shapely.STRtree(blocks).query(rep, predicate="intersects")
    block_of = np.zeros(len(mine), dtype=np.int64)
    block_of[bi[::-1]] = bl[::-1]
    pop = pd.to_numeric(mine["population"], errors="coerce").fillna(0).astype(int)
    per_block = (
        pd.DataFrame({"block": block_of, "households": households, "population": pop})
        .groupby("block")
        .sum()
    )
    units = gpd.GeoDataFrame(
        {
            "households": per_block["households"].reindex(range(len(blocks)), fill_value=0),
            "population": per_block["population"].reindex(range(len(blocks)), fill_value=0),
            "compound_id": "",
        },
        geometry=list(blocks),
        crs=mine.crs,
    )
    cells = gpd.GeoDataFrame(
        {"unit": np.arange(len(blocks)), "block": np.arange(len(blocks))},
        geometry=list(blocks),
        crs=mine.crs,
    )
    return block_of, units, cells


def _water(ws: Workspace) -> np.ndarray:
    if "barriers" not in ws:
        return np.empty(0, dtype=object)
    barriers = ws.read("barriers")
    return barriers.geometry.values[barriers["kind"].isin(WATER_KINDS).to_numpy()]


def _codes(comms: gpd.GeoDataFrame, old: pd.Series, households: np.ndarray) -> list[str]:
    """The largest part keeps the old code; others continue the street's serials."""
    street = str(old["parent_code"])[:9]
    used = [int(c[9:]) for c in comms["code"].astype(str) if c.startswith(street)]
    next_serial = max(used) + 1
    codes = [""] * len(households)
    for rank, lab in enumerate(np.argsort(-households, kind="stable")):
        if rank == 0:
            codes[lab] = str(old["code"])
        else:
            if next_serial > 999:
                raise InputError(f"street {old['parent_code']} has no free community serial")
            codes[lab] = f"{street}{next_serial:03d}"
            next_serial += 1
    return codes


def _name(buildings: gpd.GeoDataFrame, ws: Workspace, area: shapely.Geometry, fallback: str) -> str:
    """A provisional name: the largest compound's, else the longest road's, else the old
    community's with a number."""
    if "compound_id" in buildings and "name" in buildings:
        compounds = buildings[buildings["compound_id"].fillna("") != ""]
        if len(compounds):
            biggest = compounds.groupby("compound_id")["households"].sum().idxmax()
            label = compounds.loc[compounds["compound_id"] == biggest, "name"].iloc[0]
            label = re.sub(r"\d+(栋|幢|号楼)$", "", str(label)).strip()
            if label:
                return f"{label}社区"
    if "roads" in ws:
        roads = ws.read("roads")
        inside = roads[roads.intersects(area) & (roads["name"].fillna("") != "")]
        if len(inside):
            longest = inside.geometry.intersection(area).length.idxmax()
            return f"{inside.loc[longest, 'name']}社区"
    return f"{fallback}（新）"
