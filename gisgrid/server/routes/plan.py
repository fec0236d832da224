"""The planner's workbench over HTTP: moves, locks, undo and redo, jobs, diffs, publishing.

Every route needs a planner's key: 401 without a key (or with an unknown one), 403
for a key of another role. Writes state what they saw (``from_grid``,
``draft_run``) and answer 409 when another planner changed it meanwhile; nothing
is then written. Every write runs off the event loop, on a workspace object of
its own (its reads are what its conflict check compares against).
"""

import json
import pathlib
import tempfile
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gisgrid._errors import InputError
from gisgrid.delineate.edits import MoveRefusedError, lock, move
from gisgrid.delineate.history import diff_runs, latest_run
from gisgrid.delineate.publication import draft_status, publish
from gisgrid.delineate.undo import Step
from gisgrid.io.workspace import Workspace
from gisgrid.publish.export import Format, export_grids
from gisgrid.publish.style import plan_page
from gisgrid.server.deps import AppState, State, caller_role
from gisgrid.server.settings import hash_key

GRID_CODE = r"^[0-9]{15}$"
COMMUNITY_CODE = r"^[0-9]{12}$"
EXPORT_MEDIA = {
    "shp": "application/zip",
    "geojson": "application/geo+json",
    "gpkg": "application/geopackage+sqlite3",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
_PLANNER_ERRORS: dict[int | str, dict] = {
    403: {"description": "a key that is not a planner's"},
    409: {"description": "another planner changed what this was based on; nothing written"},
}


async def planner(
    request: Request,
    api_key: Annotated[
        str | None, Query(description="A planner's API key (or the X-API-Key header).")
    ] = None,
) -> str:
    """Who the planner is (their key's digest): 401 without a known key, 403 for a key
    of another role."""
    role = caller_role(request)
    if role in (None, "public"):
        raise HTTPException(401, "planner routes need a planner's API key (X-API-Key header)")
    if role != "planner":
        raise HTTPException(403, f"this is a {role} key; planner routes need a planner's key")
    return hash_key(str(request.headers.get("x-api-key") or api_key))


Planner = Annotated[str, Depends(planner)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is a 400, not ignored


class MoveBody(_Body):
    """A building, or every building of a compound, to move into a grid."""

    building_id: str | None = Field(None, min_length=1, max_length=64)
    compound_id: str | None = Field(None, min_length=1, max_length=64)
    to_grid: str = Field(pattern=GRID_CODE, description="The grid to move into.")
    from_grid: str | None = Field(
        None,
        pattern=GRID_CODE,
        description="The grid the page shows the building in: 409 when it has moved since.",
    )
    force: bool = Field(False, description="Move even when a rule breaks (needs a reason).")
    reason: str = Field("", max_length=500, description="Why a forced move is made.")
    dry_run: bool = Field(False, description="Only check the move; write nothing.")

    @model_validator(mode="after")
    def _one_thing(self) -> "MoveBody":
        if (self.building_id is None) == (self.compound_id is None):
            raise ValueError("give exactly one of building_id or compound_id")
        if self.force and not self.reason.strip():
            raise ValueError("a forced move needs a reason")
        return self


class LockBody(_Body):
    """Grids to lock (or unlock): by code, or every grid of a community."""

    grid_codes: list[Annotated[str, Field(pattern=GRID_CODE)]] = Field(
        default_factory=list, max_length=10_000
    )
    community_code: str | None = Field(None, pattern=COMMUNITY_CODE)
    locked: bool = True

    @model_validator(mode="after")
    def _some(self) -> "LockBody":
        if not self.grid_codes and self.community_code is None:
            raise ValueError("give grid_codes or community_code")
        return self


class JobBody(_Body):
    """A background job on one community."""

    kind: Literal["delineate", "redivide"]
    community_code: str = Field(pattern=COMMUNITY_CODE)
    parts: int | None = Field(None, ge=2, le=50, description="redivide: new communities.")
    max_households: int | None = Field(
        None, ge=1, description="redivide: most households per new community."
    )


class PublishBody(_Body):
    """A publication of the draft."""

    note: str = Field(min_length=1, max_length=2000, description="What, on whose approval.")
    draft_run: int | None = Field(
        None, ge=0, description="The draft run reviewed: 409 when the draft has moved on."
    )
    restore: int | None = Field(
        None, ge=1, description="Publish the grids of this earlier run instead."
    )


def _status(ws: Workspace) -> dict:
    s = draft_status(ws)
    return {
        "published_run": s.published_run,
        "draft_run": s.draft_run,
        "note": s.note,
        "published_at": s.published_at,
        "pending": s.pending or {},
        "unpublished": s.unpublished,
        "revision": ws.revision,
    }


async def _written(st: State, who: str, step: Step | None, ws: Workspace) -> None:
    """After a planner's write: note it for undo, and serve it before answering."""
    if step is not None:
        st.edits[who].record(step, ws.last_revision)
    else:
        st.edits[who].wrote(ws.last_revision)
    await run_in_threadpool(st.catalog.refresh, wait=True)


def _add_edits(api: APIRouter) -> None:
    @api.post("/moves", summary="Move a building or compound to a grid", responses=_PLANNER_ERRORS)
    async def moves(body: MoveBody, st: AppState, who: Planner) -> JSONResponse:
        ws = st.writer()
        try:
            result = await run_in_threadpool(
                partial(
                    move,
                    ws,
                    to=body.to_grid,
                    building=body.building_id,
                    compound=body.compound_id,
                    force=body.force,
                    reason=body.reason,
                    from_grid=body.from_grid,
                    dry_run=body.dry_run,
                )
            )
        except MoveRefusedError as exc:
            return JSONResponse(
                {"detail": str(exc), "reasons": exc.reasons, "forcible": exc.forcible},
                status_code=400,
            )
        if result.run_id is not None:
            what = body.building_id or f"compound {body.compound_id}"
            step = Step("run", f"the move of {what}", before=result.run_id - 1, after=result.run_id)
            await _written(st, who, step, ws)
        return JSONResponse(
            {
                "buildings": result.buildings,
                "from_grids": result.source,
                "to_grid": result.target,
                "households": {k: list(v) for k, v in result.households.items()},
                "reasons": result.reasons,
                "broken": result.broken,
                "forced": result.forced,
                "run_id": result.run_id,
                "revision": ws.last_revision or ws.revision,
            }
        )

    async def set_locks(st: State, who: str, codes: list[str], locked: bool) -> dict:
        ws = st.writer()
        grids = await run_in_threadpool(
            ws.read, "grids", columns=["grid_code", "locked"], geometry=False
        )
        now = dict(zip(grids["grid_code"].astype(str), grids["locked"].astype(bool), strict=True))
        unknown = sorted(set(codes) - set(now))
        if unknown:
            raise InputError(f"no grid with code {', '.join(unknown[:5])} in the draft")
        flip = sorted(c for c in set(codes) if now[c] != locked)
        if flip:
            await run_in_threadpool(partial(lock, ws, flip, locked=locked))
            verb = "locking" if locked else "unlocking"
            await _written(
                st,
                who,
                Step("lock", f"{verb} {len(flip)} grid(s)", codes=tuple(flip), locked=locked),
                ws,
            )
        return {"changed": flip, "locked": locked, "revision": ws.revision}

    @api.post(
        "/locks", summary="Lock or unlock grids, or all of a community", responses=_PLANNER_ERRORS
    )
    async def locks(body: LockBody, st: AppState, who: Planner) -> dict:
        codes = list(body.grid_codes)
        if body.community_code is not None:
            ws = st.writer()
            grids = await run_in_threadpool(
                ws.read, "grids", columns=["grid_code", "community_code"], geometry=False
            )
            mine = grids[grids["community_code"].astype(str) == body.community_code]
            if mine.empty:
                raise InputError(f"community {body.community_code} has no grids in the draft")
            codes += mine["grid_code"].astype(str).tolist()
        return await set_locks(st, who, codes, body.locked)

    @api.delete("/locks/{grid_code}", summary="Unlock a grid", responses=_PLANNER_ERRORS)
    async def unlock(
        grid_code: Annotated[str, Path(pattern=GRID_CODE)], st: AppState, who: Planner
    ) -> dict:
        return await set_locks(st, who, [grid_code], False)

    async def again(st: State, who: str, *, back: bool) -> dict:
        ws = st.writer()
        log = st.edits[who]
        step = await run_in_threadpool(log.undo if back else log.redo, ws)
        await _written(st, who, None, ws)
        done = "undone" if back else "redone"
        return {done: step.label, "revision": ws.last_revision, **_steps(st, who)}

    @api.post("/undo", summary="Undo your last edit", responses=_PLANNER_ERRORS)
    async def undo(st: AppState, who: Planner) -> dict:
        return await again(st, who, back=True)

    @api.post("/redo", summary="Redo your last undone edit", responses=_PLANNER_ERRORS)
    async def redo(st: AppState, who: Planner) -> dict:
        return await again(st, who, back=False)


def _steps(st: State, who: str) -> dict:
    log = st.edits[who]
    return {"can_undo": bool(log.done), "can_redo": bool(log.undone)}


def _job_view(st: State, job_id: int) -> JSONResponse:
    job = st.jobs.get(job_id)
    if job.state == "done" and not job.recorded:
        job.recorded = True
        if job.kind == "delineate":  # undone like a move: back to the run before it
            result = job.result or {}
            label = f"the re-delineation of {job.community_code}"
            step = Step("run", label, job.before_run, int(result.get("run_id", 0)))
            st.edits[job.owner].record(step, int(result.get("revision", 0)))
        st.catalog.refresh(wait=True)
    return JSONResponse(job.view(), status_code=200)


def _add_jobs(api: APIRouter) -> None:
    @api.post(
        "/jobs",
        status_code=202,
        summary="Re-delineate or re-divide a community in the background",
        responses=_PLANNER_ERRORS,
    )
    async def start_job(body: JobBody, st: AppState, who: Planner) -> JSONResponse:
        ws = st.writer()
        codes = await run_in_threadpool(ws.values, "communities", "code")
        if body.community_code not in {str(c) for c in codes}:
            raise InputError(f"no community {body.community_code} in the workspace")
        options = body.model_dump(exclude={"kind"}, exclude_none=True)
        before = await run_in_threadpool(latest_run, ws)
        job = st.jobs.start(body.kind, options, owner=who, before_run=before)
        return JSONResponse(job.view(), status_code=202)

    @api.get(
        "/jobs/{job_id}",
        summary="A job's state, progress and result",
        responses={**_PLANNER_ERRORS, 404: {"description": "no such job"}},
    )
    async def get_job(job_id: Annotated[int, Path(ge=1)], st: AppState, who: Planner):
        return await run_in_threadpool(_job_view, st, job_id)

    @api.delete(
        "/jobs/{job_id}",
        summary="Cancel a job (nothing it would write is written)",
        responses={**_PLANNER_ERRORS, 404: {"description": "no such job"}},
    )
    async def cancel_job(job_id: Annotated[int, Path(ge=1)], st: AppState, who: Planner) -> dict:
        job = await run_in_threadpool(st.jobs.cancel, job_id)
        return job.view()


def _diff(ws: Workspace, run_a: int, run_b: int, community: str | None) -> dict:
    diff = diff_runs(ws, run_a, run_b)

    def features(grids) -> dict:
        if community is not None:
            grids = grids[grids["community_code"].astype(str) == community]
        keep = ["grid_code", "name", "community_code", "households", "population", "geometry"]
        return json.loads(grids[[c for c in keep if c in grids]].to_crs(4326).to_json())

    changes = diff.changes
    if community is not None:
        codes = changes["grid_code"].fillna(changes["old_grid"]).fillna(changes["new_grid"])
        changes = changes[codes.astype(str).str.startswith(community)]
    return {
        "from": run_a,
        "to": run_b,
        "summary": diff.summary,
        "changes": json.loads(changes.to_json(orient="records", force_ascii=False)),
        "grids_from": features(diff.grids_a),
        "grids_to": features(diff.grids_b),
    }


def router() -> APIRouter:
    api = APIRouter(prefix="/plan", tags=["planner"])

    @api.get("", summary="The planner's workbench page", response_class=HTMLResponse)
    def page(st: AppState) -> HTMLResponse:
        return HTMLResponse(plan_page(st.settings.title))

    @api.get("/status", summary="The draft against what is published", responses=_PLANNER_ERRORS)
    async def status(st: AppState, who: Planner) -> dict:
        ws = st.writer()
        return {**await run_in_threadpool(_status, ws), **_steps(st, who)}

    @api.get("/runs", summary="The run history", responses=_PLANNER_ERRORS)
    async def runs(st: AppState, who: Planner) -> list[dict]:
        ws = st.writer()
        if "runs" not in ws:
            return []
        table = await run_in_threadpool(ws.read, "runs")
        keep = ["run_id", "kind", "started_at", "params", "grids", "seconds"]
        return json.loads(table[keep].to_json(orient="records", force_ascii=False))

    _add_edits(api)
    _add_jobs(api)

    @api.get("/diff", summary="What changed between two runs", responses=_PLANNER_ERRORS)
    async def diff(
        st: AppState,
        who: Planner,
        run_a: Annotated[int, Query(alias="from", ge=1, description="The earlier run.")],
        run_b: Annotated[int, Query(alias="to", ge=1, description="The later run.")],
        community_code: Annotated[
            str | None, Query(pattern=COMMUNITY_CODE, description="Only this community.")
        ] = None,
    ) -> dict:
        return await run_in_threadpool(_diff, st.writer(), run_a, run_b, community_code)

    @api.get(
        "/export",
        summary="The grids as Shapefile, GeoJSON, GeoPackage, Excel or PDF",
        responses={
            **_PLANNER_ERRORS,
            200: {"content": {media: {} for media in EXPORT_MEDIA.values()}},
        },
        response_class=Response,
    )
    async def export(
        st: AppState,
        who: Planner,
        format: Annotated[Format, Query(description="shp (zipped), geojson, gpkg, xlsx, pdf.")],
        encoding: Annotated[
            Literal["utf-8", "gbk"], Query(description="Shapefile text encoding.")
        ] = "utf-8",
        paper: Annotated[Literal["A4", "A3", "A0"], Query(description="PDF paper.")] = "A3",
        draft: Annotated[bool, Query(description="The draft, not the published grids.")] = False,
        community_code: Annotated[
            str | None, Query(pattern=COMMUNITY_CODE, description="Only this community.")
        ] = None,
    ) -> Response:
        with tempfile.TemporaryDirectory() as folder:
            name = (
                "grids"
                + (f"-{community_code}" if community_code else "")
                + ("-draft" if draft else "")
            )
            written = await run_in_threadpool(
                partial(
                    export_grids,
                    st.writer(),
                    pathlib.Path(folder) / f"{name}.{format}",
                    format=format,
                    encoding=encoding if format == "shp" else "utf-8",
                    paper=paper,
                    draft=draft,
                    communities=[community_code] if community_code else None,
                )
            )
            data = written.read_bytes()
        return Response(
            data,
            media_type=EXPORT_MEDIA[format],
            headers={
                "Content-Disposition": f'attachment; filename="{written.name}"',
                "Cache-Control": "private, no-store",
            },
        )

    @api.post("/publish", summary="Publish the draft", responses=_PLANNER_ERRORS)
    async def publish_draft(body: PublishBody, st: AppState, who: Planner) -> dict:
        ws = st.writer()
        run = await run_in_threadpool(
            partial(publish, ws, note=body.note, draft_run=body.draft_run, restore=body.restore)
        )
        await _written(st, who, None, ws)
        return {"run_id": run, **await run_in_threadpool(_status, ws)}

    return api
