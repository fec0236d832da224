"""Drafts and publishing (DESIGN §9): what the public sees is what a planner published.

Planners' edits and runs change the **draft**: the ``grids`` layer and each
building's ``grid_code``. Publishing copies the draft, with a note, into
``published_grids`` and ``published_buildings`` (building → grid) in one
transaction, and records a ``publish`` run in the history. The public map,
tiles, features, lookups and the rosters read the published layers only, so a
draft is never seen outside the planners until it is published; until the
first publication the public sees no grids at all.

Rolling a publication back is a rollback of the draft to an earlier run
followed by a publication (both recorded as runs).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import geopandas as gpd
import pandas as pd

from gisgrid._errors import ConflictError, InputError, argument
from gisgrid.delineate.history import diff_runs, latest_run, record_run, rollback
from gisgrid.io.workspace import Workspace, WorkspaceLike, open_workspace

__all__ = [
    "PUBLISHED_BUILDINGS",
    "PUBLISHED_GRIDS",
    "Publication",
    "draft_status",
    "publish",
    "published_buildings",
    "published_codes",
    "published_grids",
]

logger = logging.getLogger(__name__)

PUBLISHED_GRIDS = "published_grids"
PUBLISHED_BUILDINGS = "published_buildings"


@dataclass(frozen=True)
class Publication:
    """Where the draft stands against what is published.

    Attributes
    ----------
    published_run
        The run that published the public grids (None before the first publication).
    draft_run
        The latest run in the history (None before the first delineation).
    note, published_at
        The last publication's note and time.
    pending
        Counts of changes, by kind, from the published grids to the draft (empty when
        the draft is what is published).
    """

    published_run: int | None
    draft_run: int | None
    note: str = ""
    published_at: str = ""
    pending: dict[str, int] | None = None

    @property
    def unpublished(self) -> bool:
        """Whether the draft holds changes the public does not see yet."""
        return self.published_run is None or bool(self.pending)


def _runs(ws: Workspace) -> pd.DataFrame:
    if "runs" not in ws:
        return pd.DataFrame({"run_id": [], "kind": [], "params": [], "started_at": []})
    runs = pd.DataFrame(ws.read("runs"))
    runs["run_id"] = pd.to_numeric(runs["run_id"]).astype(int)
    return runs.sort_values("run_id")


def draft_status(workspace: WorkspaceLike) -> Publication:
    """The last publication and the draft's changes since."""
    ws = open_workspace(workspace)
    runs = _runs(ws)
    if runs.empty:
        return Publication(None, None)
    draft = int(runs["run_id"].iloc[-1])
    published = runs[runs["kind"] == "publish"]
    if published.empty:
        return Publication(None, draft)
    last = published.iloc[-1]
    run = int(last["run_id"])
    pending = {} if run == draft else _pending(ws, run, draft)
    params = json.loads(str(last["params"] or "{}"))
    return Publication(run, draft, str(params.get("note", "")), str(last["started_at"]), pending)


def _pending(ws: Workspace, published: int, draft: int) -> dict[str, int]:
    summary = diff_runs(ws, published, draft).summary
    return {k: v for k, v in summary.items() if v}


def publish(
    workspace: WorkspaceLike,
    *,
    note: str,
    draft_run: int | None = None,
    restore: int | None = None,
) -> int:
    """Publish the draft: the public sees its grids from now on.

    Parameters
    ----------
    workspace
        The workspace (with grids).
    note
        Why, or by whose approval (kept with the run; required).
    draft_run
        The draft run the planner reviewed: when the draft has moved on since, nothing is
        published (a conflict).
    restore
        Publish the grids of this earlier run instead (a rollback of the draft to it,
        then a publication: how a publication is undone).

    Returns
    -------
    int
        The id of the publication's run.

    Raises
    ------
    ConflictError
        When ``draft_run`` is not the latest run, or another writer changed the draft
        while publishing.
    """
    ws = open_workspace(workspace)
    if not note.strip():
        raise InputError(f"give {argument('note')}: say what is published and on whose approval")
    if "grids" not in ws:
        raise InputError(f"{ws.location} has no grids yet; delineate the workspace first")
    latest = latest_run(ws)  # what was reviewed, not the diff against the publication
    if draft_run is not None and draft_run != latest:
        raise ConflictError(
            f"the draft is at run {latest}, not run {draft_run}: another planner "
            "changed it since you reviewed it; review the draft again, then publish",
            layers=["grids"],
            revision=ws.revision,
        )
    if restore is not None:
        rollback(ws, restore)
    grids, buildings = ws.read("grids"), ws.read("buildings")
    layers = record_run(ws, kind="publish", params={"note": note}, grids=grids, buildings=buildings)
    run = int(layers["runs"]["run_id"].iloc[-1])
    members = pd.DataFrame(
        {
            "building_id": buildings["building_id"].astype(str),
            "grid_code": buildings["grid_code"].astype(object),
        }
    )
    ws.write(
        {
            **layers,
            PUBLISHED_GRIDS: gpd.GeoDataFrame(grids.assign(published_run=run), crs=grids.crs),
            PUBLISHED_BUILDINGS: members,
        }
    )
    logger.info("published the draft of %s as run %d: %s", ws.location, run, note)
    return run


def published_grids(ws: Workspace, *, columns: list[str] | None = None) -> gpd.GeoDataFrame:
    """The grids the public sees.

    Raises
    ------
    InputError
        When nothing has been published yet.
    """
    if PUBLISHED_GRIDS not in ws:
        raise InputError(
            f"{ws.location} has no published grids yet; publish the draft with "
            f"`gisgrid publish {ws.location} --note TEXT`"
        )
    return ws.read(PUBLISHED_GRIDS, columns=columns)


def published_buildings(
    ws: Workspace, *, columns: list[str] | None = None, geometry: bool = True
) -> gpd.GeoDataFrame:
    """Buildings (as :meth:`Workspace.read` reads them) with ``grid_code`` as published:
    the grid the public sees each building in (None before the first publication, and
    for a building added since)."""
    wanted = None if columns is None else list(dict.fromkeys(["building_id", *columns]))
    buildings = ws.read("buildings", columns=wanted, geometry=geometry)
    buildings["grid_code"] = published_codes(ws, buildings["building_id"])
    if columns is not None and "building_id" not in columns:
        buildings = buildings.drop(columns="building_id")
    return buildings


def published_codes(ws: Workspace, building_ids: pd.Series) -> pd.Series:
    """The published grid of each building id (None where there is none)."""
    codes = (
        pd.DataFrame(ws.read(PUBLISHED_BUILDINGS)).set_index("building_id")["grid_code"]
        if PUBLISHED_BUILDINGS in ws
        else pd.Series(dtype=object)
    )
    return building_ids.astype(str).map(codes).astype(object)
