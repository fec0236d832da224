"""The FastAPI application: ``create_app(settings)``.

A thin layer over the library: the catalog (:mod:`gisgrid.publish.catalog`) decides
what each role sees, the tile source renders tiles, the directory answers
lookups. Resources live on ``app.state`` (set up in the lifespan), nothing is
global. Errors map to statuses in one table; a 500 never carries the
exception's text.
"""

import logging
import sys
import time
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.routing import Match

import gisgrid
from gisgrid._errors import (
    ConflictError,
    GisgridError,
    InputError,
    LayerNotFoundError,
    NotFoundError,
)
from gisgrid.io.workspace import Workspace
from gisgrid.server.deps import AppState, State, known_parameters
from gisgrid.server.routes import features, lookups, maps, plan
from gisgrid.server.settings import Settings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005


class RequestLog:
    """Structured request log (method, path, status, milliseconds), as plain ASGI
    middleware: no per-request task or body copy."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 0

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, sending)
        logger.info(
            "request",
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "ms": round(1000 * (time.perf_counter() - t0), 2),
            },
        )


def _flat(routes):
    """Every route, those of included routers too (FastAPI keeps those wrapped)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from _flat(inner.routes) if inner is not None else (route,)


class Methods:
    """HEAD and OPTIONS for every route, as plain ASGI middleware: HEAD is the GET without
    its body; OPTIONS (that is not a CORS preflight) answers 204 with the methods the path
    takes in ``Allow``, or 404 when no route has the path."""

    def __init__(self, app, *, routes) -> None:
        self.app = app
        self.routes = routes

    def allowed(self, scope) -> set[str]:
        methods: set[str] = set()
        for route in _flat(self.routes()):
            match, _ = route.matches({**scope, "method": "GET"})
            if match is not Match.NONE and getattr(route, "methods", None):
                methods |= set(route.methods)
        return methods

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if scope["method"] == "OPTIONS":
            if b"access-control-request-method" in headers:  # a CORS preflight
                await self.app(scope, receive, send)
                return
            methods = self.allowed(scope)
            status = 204 if methods else 404
            allow = ", ".join(
                sorted(methods | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set()))
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"allow", allow.encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def bodiless(message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, bodiless)


_PROBLEM = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "what is wrong, and the fix"},
        "problems": {"type": "array", "items": {"type": "object"}},
        "suggestions": {"type": "array", "items": {}},
    },
}
_STATUS = {
    "400": "a parameter or body that is missing, malformed, out of range, or unknown",
    "401": "an API key that is not known (call without one for public data)",
    "403": "a key whose role may not do this",
    "409": "another writer changed what this was based on; nothing was written",
    "404": "no such resource, or none the caller's key may see",
    "500": "a fault of the server; its log has the details",
}


def _problem(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _complete(doc: dict) -> dict:
    """Every status the app answers, documented on every operation: errors are 400, not
    FastAPI's 422 (the handler below turns validation errors into 400), with a JSON
    ``Problem`` body; 401 where a key is taken, 404 where the path names a resource; HTML
    beside JSON where ``f=html`` is offered."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = _PROBLEM
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 bodies
        schemas.pop(name, None)
    for path, operations in doc["paths"].items():
        for op in operations.values():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            names = {p["name"] for p in op.get("parameters", [])}
            wanted = ["400", "500"]
            if "api_key" in names:
                wanted.append("401")
            if "{" in path:
                wanted.append("404")
            for status in wanted:  # a route's own description stands; the body is a Problem
                problem = _problem(_STATUS[status])
                responses[status] = {
                    **problem,
                    **responses.get(status, {}),
                    "content": problem["content"],
                }
            ok = responses.get("200")
            if ok is not None and "f" in names:
                ok.setdefault("content", {}).setdefault("text/html", {"schema": {"type": "string"}})
    return doc


def _add_error_handlers(app: FastAPI) -> None:
    """Errors to statuses, in one table: every body is JSON with a ``detail``."""

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError):
        return JSONResponse({"detail": str(exc), "suggestions": exc.suggestions}, status_code=404)

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, exc: ConflictError) -> JSONResponse:
        body = {"detail": str(exc), "revision": exc.revision, "layers": exc.layers}
        return JSONResponse(body, status_code=409)

    @app.exception_handler(LayerNotFoundError)
    async def missing_layer(request: Request, exc: LayerNotFoundError):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(GisgridError)
    async def bad_input(request: Request, exc: GisgridError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = [
            {
                "parameter": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
                "problem": e["msg"],
            }
            for e in exc.errors()
        ]
        return JSONResponse(
            {"detail": "bad request parameters", "problems": problems}, status_code=400
        )

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception):
        logger.exception("unhandled error on %s", request.url.path)
        return JSONResponse(
            {"detail": "internal error; the server log has the details"}, status_code=500
        )


def create_app(settings: Settings) -> FastAPI:
    """Build the service for one workspace.

    Parameters
    ----------
    settings
        See :class:`~gisgrid.server.settings.Settings`.

    Raises
    ------
    InputError
        When the workspace does not exist (at once, not when the server starts).
    """
    if not Workspace(settings.workspace).exists:
        raise InputError(f"workspace {settings.workspace} does not exist; run `gisgrid demo` first")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.gisgrid = State(settings)
        # a reload thread busy in Python would hold the GIL for 5 ms at a time, and every
        # request would wait that long at each step: hand it back sooner
        previous = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        logger.info("serving %s", settings.workspace)
        yield
        app.state.gisgrid.close()
        sys.setswitchinterval(previous)

    app = FastAPI(
        title=settings.title,
        version=gisgrid.__version__,
        description="OGC API – Features, vector tiles, the 红地图 style and dashboard, "
        "and grid lookup for grid-based governance (网格化管理).",
        lifespan=lifespan,
        dependencies=[Depends(known_parameters)],
        docs_url=None,  # served below from the app's own files: FastAPI's load from a CDN
        redoc_url=None,
    )

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{settings.title} – API",
            swagger_js_url="/static/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui.css",
            swagger_favicon_url="/static/favicon-32x32.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{settings.title} – API",
            redoc_js_url="/static/redoc.standalone.js",
            redoc_favicon_url="/static/favicon-32x32.png",
            with_google_fonts=False,
        )

    app.add_middleware(maps.CachedTiles)  # inside Methods (HEAD) and CORS
    app.add_middleware(Methods, routes=lambda: app.router.routes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
            allow_headers=["X-API-Key", "Content-Type", "If-None-Match"],
            expose_headers=["ETag"],
        )
    app.add_middleware(RequestLog)

    _add_error_handlers(app)

    @app.get("/healthz", tags=["service"], summary="Liveness and what is served")
    def healthz(st: AppState) -> dict:
        st.catalog.refresh()
        return {
            "status": "ok",
            "workspace": st.ws.path.name,  # the file's name, or the schema's
            "revision": st.catalog.revision,
            "collections": len(st.catalog.frames),
        }

    app.include_router(features.router(settings))
    app.include_router(maps.router())
    app.include_router(lookups.router(settings))
    app.include_router(plan.router())
    plain = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = _complete(plain())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
