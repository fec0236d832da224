"""Which grid covers a point or an address: one, or a batch (JSON or CSV)."""

import asyncio
from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from gisgrid._errors import InputError
from gisgrid.crs.names import CRS_NAMES
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


BATCH_BODY = {
    "application/json": {
        "schema": {
            "type": "array",
            "items": {
                "type": "object",
                "description": "lon and lat (numbers), or address (a string); a row that "
                "cannot be used comes back with its reason",
                "properties": {"lon": {}, "lat": {}, "address": {}},
            },
        }
    },
    "text/csv": {"schema": {"type": "string", "description": "a header row, then rows"}},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}},
        }
    },
}


def router(settings: Settings) -> APIRouter:
    api = APIRouter(tags=["lookup"])
    batches = anyio.CapacityLimiter(settings.batch_workers)  # batches at once; more queue

    @api.get(
        "/lookup",
        summary="Street, community, grid and roster at a point or an address",
        responses={404: {"description": "no grid there, or no address like it (suggestions)"}},
    )
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
        openapi_extra={"requestBody": {"required": True, "content": BATCH_BODY}},
        responses={
            200: {"content": {"text/csv": {}}, "description": "each row with its grid"},
            400: {"description": "a body that is not a flat JSON array or a readable CSV"},
            411: {"description": "an upload without Content-Length"},
            413: {"description": "more rows than max_batch, or a body over max_body_mb"},
        },
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
        body, kind = await _batch_body(request, limit=int(settings.max_body_mb * 1e6))
        async with batches:  # CPU work: in a worker process, never on the event loop
            status, media, data = await asyncio.wrap_future(
                st.batches.submit(
                    body,
                    kind,
                    lon_col=lon_col,
                    lat_col=lat_col,
                    address_col=address_col,
                    crs=crs,
                    max_batch=settings.max_batch,
                )
            )
        return Response(data, status_code=status, media_type=media)

    return api


async def _batch_body(request: Request, *, limit: int) -> tuple[bytes, str]:
    """The body of a batch (a CSV upload, a CSV body or a JSON array) and its kind, read
    as it streams in and refused with 413 once it passes ``limit`` bytes."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    too_big = HTTPException(
        413, f"the body is more than {limit / 1e6:g} MB; split the batch (max_body_mb)"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    if kind == "multipart/form-data":  # a CSV file uploaded from a form
        if not declared.isdigit():
            raise HTTPException(411, "an upload needs a Content-Length")
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError("upload the CSV as the form field 'file'")
        return await upload.read(), "text/csv"
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks), kind
