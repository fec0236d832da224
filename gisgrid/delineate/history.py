"""Run history: snapshots of grids per run, what changed, diffs and rollbacks.

Every run that writes grids also stores a snapshot: the grids in
``grid_history`` and each building's grid in ``building_history``, both keyed by
``run_id``. The changes against the previous snapshot go to ``grid_changes``:
``grid_added``, ``grid_retired``, ``grid_reshaped`` (same code, another shape or
count) and ``building_moved`` (old grid → new grid).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import geopandas as gpd
import pandas as pd
import shapely

import gisgrid
from gisgrid._errors import InputError
from gisgrid.io.digest import input_digest
from gisgrid.io.workspace import Workspace, WorkspaceLike, open_workspace

__all__ = [
    "Diff",
    "diff_runs",
    "latest_run",
    "next_run_id",
    "record_run",
    "rollback",
    "snapshot_layers",
]

logger = logging.getLogger(__name__)

RESHAPED_M2 = 1.0  # a grid whose shape moved by more than this area was reshaped
CHANGE_COLUMNS = [
    "run_id",
    "kind",
    "grid_code",
    "old_grid",
    "new_grid",
    "building_id",
    "households",
]


@dataclass
class Diff:
    """What changed between two snapshots."""

    run_a: int
    run_b: int
    changes: pd.DataFrame
    grids_a: gpd.GeoDataFrame
    grids_b: gpd.GeoDataFrame

    @property
    def summary(self) -> dict[str, int]:
        """Counts by kind of change, and households whose grid changed."""
        counts = self.changes["kind"].value_counts().to_dict()
        moved = self.changes[self.changes["kind"] == "building_moved"]
        counts["households_moved"] = int(pd.to_numeric(moved["households"]).sum())
        return {k: int(v) for k, v in counts.items()}


def _changes(
    grids_a: gpd.GeoDataFrame,
    grids_b: gpd.GeoDataFrame,
    members_a: pd.DataFrame,
    members_b: pd.DataFrame,
    run_id: int,
) -> pd.DataFrame:
    a = grids_a.set_index("grid_code")
    b = grids_b.set_index("grid_code")
    rows = []
    for code in sorted(set(b.index) - set(a.index)):
        rows.append(("grid_added", code, None, code, None, int(b.loc[code, "households"])))
    for code in sorted(set(a.index) - set(b.index)):
        rows.append(("grid_retired", code, code, None, None, int(a.loc[code, "households"])))
    both = sorted(set(a.index) & set(b.index))
    if both:
        ga, gb = a.geometry.reindex(both).values, b.geometry.reindex(both).values
        moved_area = shapely.area(shapely.symmetric_difference(ga, gb))
        for code, area in zip(both, moved_area, strict=True):
            if area > RESHAPED_M2 or a.loc[code, "households"] != b.loc[code, "households"]:
                rows.append(
                    ("grid_reshaped", code, code, code, None, int(b.loc[code, "households"]))
                )
    joined = members_a.merge(members_b, on="building_id", how="inner", suffixes=("_a", "_b"))
    moved = joined[joined["grid_code_a"].astype(str) != joined["grid_code_b"].astype(str)]
    for r in moved.itertuples():
        rows.append(
            (
                "building_moved",
                r.grid_code_b,
                r.grid_code_a,
                r.grid_code_b,
                r.building_id,
                int(r.households_b),
            )
        )
    table = pd.DataFrame(rows, columns=CHANGE_COLUMNS[1:])
    table.insert(0, "run_id", run_id)
    return _typed(table)


def _typed(changes: pd.DataFrame) -> pd.DataFrame:
    """The change table with its column types (numbers as numbers, ids as text)."""
    out = changes.copy()
    out["run_id"] = pd.to_numeric(out["run_id"]).astype("int64")
    out["households"] = pd.to_numeric(out["households"]).astype("Int64")
    for column in ("kind", "grid_code", "old_grid", "new_grid", "building_id"):
        out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def _members(buildings: gpd.GeoDataFrame) -> pd.DataFrame:
    hh = pd.to_numeric(buildings["households"], errors="coerce").fillna(0).astype(int)
    return pd.DataFrame(
        {
            "building_id": buildings["building_id"].astype(str),
            "grid_code": buildings["grid_code"].astype(object),
            "households": hh,
        }
    )


def snapshot_layers(
    ws: Workspace, run_id: int, grids: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame
) -> tuple[dict[str, pd.DataFrame], dict]:
    """The history layers to write with a run, and a summary of its changes.

    Parameters
    ----------
    ws
        The workspace, for the previous snapshot.
    run_id
        The run being written.
    grids, buildings
        The grids and buildings (with ``grid_code``) the run writes.

    Returns
    -------
    tuple
        Layers (``grid_history``, ``building_history``, ``grid_changes``) and the
        counts of changes by kind.
    """
    snap = grids.assign(run_id=run_id)
    members = _members(buildings).assign(run_id=run_id)
    history = ws.read("grid_history") if "grid_history" in ws else None
    b_history = pd.DataFrame(ws.read("building_history")) if "building_history" in ws else None
    if history is not None and len(history) and b_history is not None:
        last = int(pd.to_numeric(history["run_id"]).max())
        before = history[history["run_id"] == last]
        before_members = b_history[b_history["run_id"] == last]
        changes = _changes(before, snap, before_members, members, run_id)
    else:
        changes = pd.DataFrame(
            {
                "run_id": run_id,
                "kind": "grid_added",
                "grid_code": grids["grid_code"],
                "old_grid": None,
                "new_grid": grids["grid_code"],
                "building_id": None,
                "households": grids["households"].astype(int),
            }
        )[CHANGE_COLUMNS]
    changes = _typed(changes)
    layers = {
        "grid_history": snap
        if history is None
        else gpd.GeoDataFrame(pd.concat([history, snap], ignore_index=True), crs=grids.crs),
        "building_history": members
        if b_history is None
        else pd.concat([b_history, members], ignore_index=True),
        "grid_changes": changes
        if "grid_changes" not in ws
        else _typed(pd.concat([pd.DataFrame(ws.read("grid_changes")), changes], ignore_index=True)),
    }
    summary = changes["kind"].value_counts().to_dict()
    return layers, {k: int(v) for k, v in summary.items()}


def _snapshot(ws: Workspace, run: int) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    if "grid_history" not in ws:
        raise InputError(f"{ws.location} has no run history yet; run `gisgrid delineate` first")
    history = ws.read("grid_history")
    runs = sorted(int(r) for r in pd.to_numeric(history["run_id"]).unique())
    if run not in runs:
        raise InputError(
            f"no run {run} in the history of {ws.location} (runs: {', '.join(map(str, runs))})"
        )
    grids = history[pd.to_numeric(history["run_id"]) == run].drop(columns="run_id")
    members = pd.DataFrame(ws.read("building_history"))
    members = members[pd.to_numeric(members["run_id"]) == run]
    return gpd.GeoDataFrame(grids.reset_index(drop=True), crs=history.crs), members


def diff_runs(workspace: WorkspaceLike, run_a: int, run_b: int) -> Diff:
    """What changed from run A to run B: grids added, retired, reshaped; buildings moved."""
    ws = open_workspace(workspace)
    grids_a, members_a = _snapshot(ws, run_a)
    grids_b, members_b = _snapshot(ws, run_b)
    return Diff(
        run_a, run_b, _changes(grids_a, grids_b, members_a, members_b, run_b), grids_a, grids_b
    )


def next_run_id(ws: Workspace) -> int:
    """The id the next run of ``ws`` takes (1 for the first)."""
    if "runs" not in ws:
        return 1
    runs = ws.read("runs")
    return int(pd.to_numeric(runs["run_id"]).max()) + 1 if len(runs) else 1


def latest_run(ws: Workspace) -> int:
    """The id of the workspace's latest run (0 before the first)."""
    return next_run_id(ws) - 1


def record_run(
    ws: Workspace,
    *,
    kind: str,
    params: dict,
    grids: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    run_id: int | None = None,
    communities: list[str] | None = None,
    metrics: dict | None = None,
    seconds: float = 0.0,
) -> dict[str, pd.DataFrame]:
    """The ``runs`` row and history layers of a run, to write together with its grids.

    Every run writes its row here: delineations, re-divisions, moves, rollbacks.

    Parameters
    ----------
    ws
        The workspace.
    kind
        ``delineate``, ``move``, ``rollback``, …
    params
        What was asked, stored as JSON.
    grids, buildings
        The grids and buildings (with ``grid_code``) after the run.
    run_id
        The run's id, when the caller took it with :func:`next_run_id` to stamp
        grids; the next one otherwise.
    communities
        The communities the run worked on (all that have grids when None); the row
        counts the grids in them.
    metrics
        The run's DESIGN §5 metrics (empty when it measured none).
    seconds
        How long the run took.

    Returns
    -------
    dict
        ``runs`` and the history layers (``grid_history``, ``building_history``,
        ``grid_changes``).
    """
    run_id = next_run_id(ws) if run_id is None else run_id
    history, changes = snapshot_layers(ws, run_id, grids, buildings)
    if communities is None:
        communities = sorted(grids["community_code"].astype(str).unique().tolist())
    comms = ws.read("communities") if "communities" in ws else pd.DataFrame()
    row = {
        "run_id": run_id,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "kind": kind,
        "params": json.dumps(params, ensure_ascii=False),
        "communities": json.dumps(communities),
        "input_digest": input_digest(comms, buildings),
        "grids": int(grids["community_code"].astype(str).isin(communities).sum()),
        "metrics": json.dumps(metrics or {}),
        "gisgrid_version": gisgrid.__version__,
        "changes": json.dumps(changes),
    }
    runs = pd.DataFrame(ws.read("runs")) if "runs" in ws else pd.DataFrame()
    return {"runs": pd.concat([runs, pd.DataFrame([row])], ignore_index=True), **history}


def _retired_after_rollback(
    ws: Workspace, live: pd.Series, restored: pd.Series, run_id: int
) -> pd.DataFrame:
    """The retired codes once a rollback has restored ``restored``: the codes it brings
    back are live again, and the live ones it drops are retired (never given again)."""
    table = (
        pd.DataFrame(ws.read("retired_grids"))
        if "retired_grids" in ws
        else pd.DataFrame({"grid_code": [], "community_code": [], "run_id": []})
    )
    dropped = sorted(set(live) - set(restored) - set(table["grid_code"].astype(str)))
    table = pd.concat(
        [
            table,
            pd.DataFrame(
                {
                    "grid_code": dropped,
                    "community_code": [c[:12] for c in dropped],
                    "run_id": run_id,
                }
            ),
        ],
        ignore_index=True,
    )
    back = table["grid_code"].astype(str).isin(set(restored))
    return table[~back].reset_index(drop=True)


def rollback(workspace: WorkspaceLike, run: int) -> int:
    """Restore the grids and building assignments of an earlier run, as a new run.

    Returns
    -------
    int
        The id of the rollback run.
    """
    ws = open_workspace(workspace)
    grids, members = _snapshot(ws, run)
    buildings = ws.read("buildings")
    codes = members.set_index("building_id")["grid_code"]
    buildings["grid_code"] = buildings["building_id"].astype(str).map(codes).astype(object)
    layers = record_run(
        ws, kind="rollback", params={"to_run": run}, grids=grids, buildings=buildings
    )
    new_run = int(layers["runs"]["run_id"].iloc[-1])
    now = ws.read("grids")["grid_code"].astype(str) if "grids" in ws else pd.Series(dtype=str)
    retired = _retired_after_rollback(ws, now, grids["grid_code"].astype(str), new_run)
    ws.write({"grids": grids, "buildings": buildings, **layers, "retired_grids": retired})
    logger.info("rolled back to run %d as run %d", run, new_run)
    return new_run
