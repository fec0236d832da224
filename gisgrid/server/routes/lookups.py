"""Which grid covers a point or an address: one, or a batch (JSON or CSV)."""

import io
import json
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from gisgrid._errors import InputError
from gisgrid.crs.names import CRS_NAMES
from gisgrid.delineate.edits import lock
from gisgrid.io.workspace import Workspace
from gisgrid.server.deps import AppState, Role
from gisgrid.server.settings import Settings

CrsName = Annotated[
    str,
    Query(
        max_length=64,
        description=f"Coordinate system of lon/lat: {', '.join(CRS_NAMES)} (case and hyphens "
        "ignored, so GCJ-02 and gcj02 are one) or an EPSG code such as EPSG:4490.",
    ),
]


def router(settings: Settings) -> APIRouter:
    api = APIRouter(tags=["lookup"])

    @api.get("/lookup", summary="Street, community, grid and roster at a point or an address")
    async def lookup(
        st: AppState,
        who: Role,
        lon: Annotated[float | None, Query(description="Longitude (x in a projected crs).")] = None,
        lat: Annotated[float | None, Query(description="Latitude (y in a projected crs).")] = None,
        crs: CrsName = "wgs84",
        address: Annotated[
            str | None, Query(max_length=200, description="An address as people write it.")
        ] = None,
    ) -> JSONResponse:
        staff = who != "public"  # answered on the event loop: a lookup takes microseconds
        if address is not None:
            return JSONResponse(st.directory.address(address, staff=staff))
        if lon is None or lat is None:
            raise InputError("give lon and lat (with crs), or address")
        return JSONResponse(st.directory.point(lon, lat, crs=crs, staff=staff))

    @api.post(
        "/lookup",
        summary="Batch lookup: a JSON array of {lon, lat} or {address}, a CSV body, "
        "or a CSV file uploaded as the form field 'file'",
        openapi_extra={"requestBody": {"content": {"application/json": {}, "text/csv": {}}}},
    )
    async def batch(
        request: Request,
        st: AppState,
        who: Role,
        crs: CrsName = "wgs84",
        lon_col: Annotated[str, Query(description="CSV: longitude column.")] = "lon",
        lat_col: Annotated[str, Query(description="CSV: latitude column.")] = "lat",
        address_col: Annotated[
            str | None, Query(description="CSV: address column (instead of lon/lat).")
        ] = None,
    ) -> Response:
        table, kind = await _batch_table(request)
        if kind == "application/json":  # records name their columns lon, lat or address
            lon_col, lat_col = "lon", "lat"
            address_col = "address" if "address" in table.columns else None
        if len(table) > settings.max_batch:
            raise HTTPException(
                413,
                f"{len(table):,} rows is more than the {settings.max_batch:,} "
                "a batch may hold; split it",
            )
        out = st.directory.table(
            table,
            lon_col=lon_col,
            lat_col=lat_col,
            address_col=address_col,
            crs=crs,
            source="the CSV" if kind == "text/csv" else "the JSON body",
        )
        if kind == "text/csv":
            return Response(out.to_csv(index=False), media_type="text/csv; charset=utf-8")
        return Response(
            out.to_json(orient="records", force_ascii=False), media_type="application/json"
        )

    @api.post(
        "/grids/{grid_code}/lock",
        tags=["planner"],
        summary="Lock a grid (planner)",
        responses={
            401: {"description": "unknown API key"},
            403: {"description": "not a planner's key"},
            404: {"description": "no such grid"},
            409: {"description": "another writer changed the grids; the body has the revision"},
        },
    )
    async def lock_grid(grid_code: str, st: AppState, who: Role, locked: bool = True) -> dict:
        if who != "planner":
            raise HTTPException(403, "locking grids needs a planner key")
        ws = Workspace(st.ws.location)  # a handle of this request's own: its reads are its own
        n = await run_in_threadpool(lock, ws, [grid_code], locked=locked)
        await run_in_threadpool(st.catalog.refresh, wait=True)  # the planner sees the lock
        return {
            "grid_code": grid_code,
            "locked": locked,
            "changed": n,
            "revision": ws.last_revision,
        }

    return api


async def _batch_table(request: Request) -> tuple[pd.DataFrame, str]:
    """The rows of a batch body (a CSV upload, a CSV body or a JSON array) and its kind."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind == "multipart/form-data":  # a CSV file uploaded from a form
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError("upload the CSV as the form field 'file'")
        body, kind = await upload.read(), "text/csv"
    else:
        body = await request.body()
    if kind == "text/csv":
        try:
            return pd.read_csv(io.BytesIO(body), dtype=str, encoding="utf-8-sig"), kind
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise InputError(f"the CSV body cannot be read: {exc}") from None
    try:
        rows = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(
            "the body must be a JSON array of {lon, lat} or {address} objects, or text/csv"
        ) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError("the body must be a JSON array of {lon, lat} or {address} objects")
    table = pd.DataFrame(rows)
    if "address" not in table.columns:  # rows without coordinates get a reason, not an error
        missing = [c for c in ("lon", "lat") if c not in table.columns]
        table = table.reindex(columns=[*table.columns, *missing])
    return table, "application/json"
