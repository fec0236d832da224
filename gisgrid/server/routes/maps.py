"""Vector tiles, TileJSON, the 红地图 style and the dashboard page with its assets."""

import functools
import gzip
import re
from typing import Annotated, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from gisgrid._errors import GisgridError, InputError, NotFoundError
from gisgrid.crs.names import crs_key
from gisgrid.publish.assets import asset_path
from gisgrid.publish.glyphs import glyph_range
from gisgrid.publish.style import map_page, redmap_style
from gisgrid.publish.tiles import (
    MAX_ZOOM,
    MVT,
    TILESETS,
    WMQ_URI,
    Tile,
    ogc_tileset,
    tilejson,
    tileset_summary,
    tilesets_for,
    web_mercator_quad,
)
from gisgrid.roster.policy import load_policy
from gisgrid.server.deps import (
    AppState,
    CollectionId,
    Role,
    State,
    TileMatrixSet,
    TilesetName,
    base_url,
)

Zoom = Annotated[int, Path(ge=0, le=MAX_ZOOM, description="Zoom (tile matrix).")]
Index = Annotated[int, Path(ge=0, description="Column (x) or row (y) of the tile.")]
TileCrs = Annotated[
    str | None,
    Query(
        description="`gcj02`: geometry in GCJ-02 on the same Web Mercator grid, to lay over "
        "Amap or Tencent basemaps (WGS84 lands hundreds of metres off there). Default: WGS84.",
        json_schema_extra={"enum": ["wgs84", "gcj02"]},
    ),
]


def _shift(crs: str | None) -> Literal["gcj02"] | None:
    """The offset a tile's ``crs`` asks for (None: WGS84)."""
    key = "wgs84" if crs is None else crs_key(crs)
    if key in ("wgs84", "crs84", "epsg:4326", "4326"):
        return None
    if key == "gcj02":
        return "gcj02"
    raise InputError(
        f"tiles crs {crs!r} is not offered: use gcj02 (Amap, Tencent) or leave it out for "
        "WGS84 (Baidu's maps use their own tile grid, not Web Mercator)"
    )


def _cache(role: str) -> str:
    """Shared caches may keep public answers only; staff answers are the caller's."""
    return "public, max-age=300" if role == "public" else "private, max-age=300"


#: The files ``/static/{name}`` serves: name → (npm package, folder, media type).
STATIC = {
    "maplibre-gl.js": ("maplibre-gl", "dist", "text/javascript"),
    "maplibre-gl.css": ("maplibre-gl", "dist", "text/css"),
    "swagger-ui-bundle.js": ("swagger-ui-dist", ".", "text/javascript"),
    "swagger-ui.css": ("swagger-ui-dist", ".", "text/css"),
    "favicon-32x32.png": ("swagger-ui-dist", ".", "image/png"),
    "redoc.standalone.js": ("redoc", "bundles", "text/javascript"),
}


#: Addresses outside the app that a bundled file would fetch, and what stands in for them.
OFFLINE = {
    "redoc.standalone.js": {  # the "powered by" logo: an empty image instead
        b"https://cdn.redoc.ly/redoc/logo-mini.svg": b"data:image/svg+xml,%3Csvg/%3E",
    }
}


@functools.cache
def _static_file(name: str) -> bytes:
    """A file of ``STATIC``, with what it would fetch from elsewhere made local."""
    package, folder, _ = STATIC[name]
    data = asset_path(package, folder, name).read_bytes()
    for far, near in OFFLINE.get(name, {}).items():  # nothing the page asks for leaves
        data = data.replace(far, near)
    return data


def _reply(
    got: Tile, who: str, *, if_none_match: str | None, gzip_ok: bool
) -> tuple[int, dict[str, str], bytes]:
    """A tile's status, headers and body: 204 when empty, 304 for a matching ETag, gzip
    when accepted (the route and the cached fast path answer alike)."""
    if got.empty:
        return 204, {"Cache-Control": _cache(who)}, b""
    headers = {
        "ETag": f'"{got.etag}"',
        "Cache-Control": _cache(who),
        "Vary": "Accept-Encoding, X-API-Key",
    }
    if if_none_match == headers["ETag"]:
        return 304, headers, b""
    headers["Content-Type"] = MVT
    if gzip_ok:
        return 200, {**headers, "Content-Encoding": "gzip"}, got.body
    return 200, headers, gzip.decompress(got.body)


async def _tile(
    request: Request, st: State, who: str, tileset: str, zxy: tuple[int, int, int], crs: str | None
) -> Response:
    """A tile's response, rendered in a worker thread when it is not cached."""
    source = st.tiles[who, _shift(crs)]
    got = source.cached(tileset, *zxy)
    if got is None:
        got = await run_in_threadpool(source.tile, tileset, *zxy)
    status, headers, body = _reply(
        got,
        who,
        if_none_match=request.headers.get("if-none-match"),
        gzip_ok="gzip" in request.headers.get("accept-encoding", ""),
    )
    return Response(body, status_code=status, headers=headers)


_XYZ = re.compile(r"^/tiles/([A-Za-z_]+)/([0-9]{1,2})/([0-9]{1,8})/([0-9]{1,8})\.mvt$")


class CachedTiles:
    """Cached XYZ tiles answered before routing, as plain ASGI middleware: a map pans
    through hundreds of cached tiles a second, and FastAPI's routing and dependencies
    cost more than the answer. Anything else (an uncached tile, an unknown parameter or
    key, a bad tile) goes on to the route, which answers it as always."""

    def __init__(self, app) -> None:
        self.app = app

    def _cached(self, scope) -> tuple[Tile, str] | None:
        # read from the scope as it is: building a Request here (as deps.caller_role takes)
        # halved the cached rate, 12,300 → 6,600 tiles/s
        match = _XYZ.match(scope["path"])
        st = getattr(scope["app"].state, "gisgrid", None)
        if match is None or st is None:
            return None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        headers = dict(scope["headers"])
        if set(query) - {"api_key", "crs"}:
            return None
        key = headers.get(b"x-api-key", b"").decode("latin-1") or query.get("api_key")
        who = st.settings.role_of(key)
        if who is None:
            return None
        name, z, x, y = match.groups()
        try:
            got = st.tiles[who, _shift(query.get("crs"))].cached(name, int(z), int(x), int(y))
        except GisgridError:  # a bad tile or crs: the route words the error
            return None
        return (got, who) if got is not None else None

    async def __call__(self, scope, receive, send) -> None:
        hit = self._cached(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if hit is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        status, out, body = _reply(
            hit[0],
            hit[1],
            if_none_match=headers.get(b"if-none-match", b"").decode("latin-1") or None,
            gzip_ok=b"gzip" in headers.get(b"accept-encoding", b""),
        )
        raw = [(k.lower().encode(), v.encode()) for k, v in out.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


TILE_RESPONSES: dict[int | str, dict] = {
    200: {"content": {MVT: {}}, "description": "the tile (gzip when accepted)"},
    204: {"description": "empty tile"},
    304: {"description": "not modified (If-None-Match)"},
}


def _add_tiles(api: APIRouter) -> None:
    """Tiles by name on the XYZ grid, with TileJSON."""

    @api.get("/tiles", tags=["tiles"], summary="Tilesets (those the caller may see)")
    def tilesets(request: Request, st: AppState, who: Role) -> dict:
        base = base_url(request)
        return {
            "links": [_json_link("self", f"{base}/tiles")],
            "tilesets": [
                {**tileset_summary(name, base), "tilejson": f"{base}/tiles/{name}.json"}
                for name in tilesets_for(who)
            ],
        }

    @api.get(
        "/tiles/{tileset}.json",
        tags=["tiles"],
        summary="TileJSON 3.0 of a tileset",
        responses={404: {"description": "no such tileset, or not one for this key"}},
    )
    def tileset_json(
        request: Request, tileset: TilesetName, st: AppState, who: Role, crs: TileCrs = None
    ) -> JSONResponse:
        st.catalog.refresh()
        doc = tilejson(tileset, base_url(request), st.catalog, role=who, shift=_shift(crs))
        return JSONResponse(doc, headers={"Cache-Control": _cache(who)})

    @api.get(
        "/tiles/{tileset}/{z}/{x}/{y}.mvt",
        tags=["tiles"],
        summary="A vector tile (MVT 2.1, Web Mercator, XYZ); 204 when empty",
        responses=TILE_RESPONSES,
    )
    async def tile(
        request: Request,
        tileset: TilesetName,
        z: Zoom,
        x: Index,
        y: Index,
        st: AppState,
        who: Role,
        crs: TileCrs = None,
    ) -> Response:
        return await _tile(request, st, who, tileset, (z, x, y), crs)


def _json_link(rel: str, href: str) -> dict:
    return {"rel": rel, "type": "application/json", "href": href}


def _add_ogc_tiles(api: APIRouter) -> None:
    """OGC API – Tiles: the WebMercatorQuad tile matrix set, the dataset's tileset
    (``redmap``) and each collection's."""

    @api.get("/tileMatrixSets", tags=["tiles"], summary="Tile matrix sets (OGC API – Tiles)")
    def matrix_sets(request: Request) -> dict:
        base = base_url(request)
        return {
            "tileMatrixSets": [
                {
                    "id": "WebMercatorQuad",
                    "title": "Google Maps Compatible for the World",
                    "uri": WMQ_URI,
                    "links": [_json_link("self", f"{base}/tileMatrixSets/WebMercatorQuad")],
                }
            ]
        }

    @api.get(
        "/tileMatrixSets/{tile_matrix_set}",
        tags=["tiles"],
        summary="A tile matrix set's definition (OGC TMS 2.0)",
        responses={404: {"description": "no such tile matrix set"}},
    )
    def matrix_set(request: Request, tile_matrix_set: TileMatrixSet) -> dict:
        _wmq(tile_matrix_set)
        return web_mercator_quad(base_url(request))

    @api.get("/tiles/{tile_matrix_set}", tags=["tiles"], summary="The 红地图 tileset (OGC)")
    def dataset_tileset(
        request: Request, tile_matrix_set: TileMatrixSet, st: AppState, who: Role
    ) -> dict:
        _wmq(tile_matrix_set)
        return ogc_tileset("redmap", base_url(request), st.catalog, role=who)

    @api.get(
        "/tiles/{tile_matrix_set}/{tile_matrix}/{tile_row}/{tile_col}",
        tags=["tiles"],
        summary="A tile of the 红地图 tileset (OGC: matrix, row, column)",
        responses=TILE_RESPONSES,
    )
    async def dataset_tile(
        request: Request, at: Annotated[OgcTile, Depends()], st: AppState, who: Role
    ) -> Response:
        return await _tile(request, st, who, "redmap", at.zxy, at.crs)

    @api.get(
        "/collections/{collection_id}/tiles", tags=["tiles"], summary="A collection's tilesets"
    )
    def collection_tilesets(
        request: Request, collection_id: CollectionId, st: AppState, who: Role
    ) -> dict:
        name = _collection(collection_id)
        if name not in tilesets_for(who):
            raise NotFoundError(f"no collection {collection_id!r}; see /collections")
        return {"tilesets": [tileset_summary(name, base_url(request))]}

    @api.get(
        "/collections/{collection_id}/tiles/{tile_matrix_set}",
        tags=["tiles"],
        summary="A collection's tileset (OGC)",
    )
    def collection_tileset(
        request: Request,
        collection_id: CollectionId,
        tile_matrix_set: TileMatrixSet,
        st: AppState,
        who: Role,
    ) -> dict:
        _wmq(tile_matrix_set)
        return ogc_tileset(_collection(collection_id), base_url(request), st.catalog, role=who)

    @api.get(
        "/collections/{collection_id}/tiles/{tile_matrix_set}/{tile_matrix}/{tile_row}/{tile_col}",
        tags=["tiles"],
        summary="A tile of a collection (OGC: matrix, row, column)",
        responses=TILE_RESPONSES,
    )
    async def collection_tile(
        request: Request,
        collection_id: CollectionId,
        at: Annotated[OgcTile, Depends()],
        st: AppState,
        who: Role,
    ) -> Response:
        return await _tile(request, st, who, _collection(collection_id), at.zxy, at.crs)


class OgcTile:
    """A tile as OGC API – Tiles addresses it: matrix set, matrix (zoom), row, column."""

    def __init__(
        self,
        tile_matrix_set: TileMatrixSet,
        tile_matrix: Zoom,
        tile_row: Index,
        tile_col: Index,
        crs: TileCrs = None,
    ) -> None:
        _wmq(tile_matrix_set)
        self.zxy = (tile_matrix, tile_col, tile_row)  # XYZ's x is the column, y the row
        self.crs = crs


def _collection(collection_id: str) -> str:
    """A collection's tileset name (404 for a name that is none)."""
    if collection_id not in TILESETS or collection_id == "redmap":
        raise NotFoundError(f"no collection {collection_id!r}; see /collections")
    return collection_id


def _wmq(tile_matrix_set: str) -> None:
    if tile_matrix_set != "WebMercatorQuad":
        raise NotFoundError(f"no tile matrix set {tile_matrix_set!r}; tiles are on WebMercatorQuad")


def router() -> APIRouter:
    api = APIRouter()

    _add_tiles(api)
    _add_ogc_tiles(api)

    @api.get("/styles/redmap.json", tags=["maps"], summary="The 红地图 MapLibre style")
    def style(request: Request, st: AppState) -> JSONResponse:
        box = st.catalog.bounds(["streets"]) or st.catalog.bounds(["grids"])
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2) if box else (113.13, 27.93)
        return JSONResponse(redmap_style(base_url(request), center=centre))

    @api.get("/map", tags=["maps"], summary="The 红地图 dashboard", response_class=HTMLResponse)
    def dashboard(st: AppState) -> HTMLResponse:
        titles = {name: role.title for name, role in load_policy().roles.items()}
        return HTMLResponse(map_page(st.settings.title, titles))

    @api.get(
        "/static/{name}",
        tags=["maps"],
        summary="MapLibre GL JS, Swagger UI and ReDoc files (from npm, never a CDN)",
        responses={404: {"description": "no such file"}},
    )
    def static(name: str) -> Response:
        if name not in STATIC:
            return JSONResponse({"detail": f"no static file {name!r}"}, status_code=404)
        return Response(
            _static_file(name),
            media_type=STATIC[name][2],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @api.get(
        "/fonts/{fontstack}/{glyphs}.pbf",
        tags=["maps"],
        summary="Label glyphs (SDF)",
        responses={200: {"content": {"application/x-protobuf": {}}}},
    )
    async def fonts(
        fontstack: str,
        glyphs: Annotated[
            str,
            Path(
                pattern=r"^[0-9]{1,5}-[0-9]{1,5}$",
                description="A block of 256 code points, START-END: 0-255, 256-511, …",
            ),
        ],
    ) -> Response:
        start, end = (int(v) for v in glyphs.split("-"))
        if start % 256 or end != start + 255 or end > 0xFFFF:
            detail = f"no glyph range {glyphs!r}: ranges are blocks of 256, 0-255, 256-511, …"
            return JSONResponse({"detail": detail}, status_code=404)
        data = await run_in_threadpool(glyph_range, int(start), fontstack.split(",")[0])
        return Response(
            data,
            media_type="application/x-protobuf",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return api
