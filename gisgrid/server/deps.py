"""Dependencies of the routes: the served state and the caller's role."""

import contextlib
import gc
from collections import defaultdict
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.dependencies.models import Dependant

from gisgrid._errors import InputError
from gisgrid.crs.uris import offered
from gisgrid.delineate.undo import EditLog
from gisgrid.io.workspace import Workspace
from gisgrid.lookup.directory import Directory
from gisgrid.publish.catalog import COLLECTIONS, ROLES, Catalog
from gisgrid.publish.tiles import TILESETS, TileSource
from gisgrid.server.batches import BatchPool
from gisgrid.server.jobs import Jobs
from gisgrid.server.settings import Settings

__all__ = [
    "AppState",
    "CollectionId",
    "Role",
    "State",
    "TileMatrixSet",
    "TilesetName",
    "base_url",
    "caller_role",
    "known_parameters",
]


class State:
    """What the app serves, loaded once and refreshed when the workspace file changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ws = Workspace(settings.workspace)
        self.ws.prepare()  # WAL before the first reader: writers then never block them
        self.catalog = Catalog(self.ws)
        self.catalog.refresh()
        #: the CRSs features are served in (OGC API – Features Part 2)
        self.crs = offered(self.ws.crs)
        #: (role, GCJ-02 or not) → its tiles
        self.tiles = {
            (role, shift): TileSource(
                self.catalog, role=role, cache_size=settings.tile_cache, shift=shift
            )
            for role in ROLES
            for shift in (None, "gcj02")
        }
        self._batches: BatchPool | None = None
        self._jobs: Jobs | None = None
        #: each planner's edits, to undo and redo (keyed by the digest of their key)
        self.edits: defaultdict[str, EditLog] = defaultdict(EditLog)
        self._directory: Directory | None = None
        self.catalog.on_change(self._reset)
        with contextlib.suppress(InputError):  # a workspace without grids serves no lookups
            self._directory = Directory(self.ws)  # built now, not on the first request
        gc.freeze()

    def _reset(self) -> None:
        """Build the new directory before swapping it in: lookups never wait for it."""
        try:
            self._directory = Directory(self.ws)
        except InputError:  # no grids any more
            self._directory = None
        # what is served lives long: out of the cyclic collector's way. Its full passes
        # over the hundreds of thousands of objects held here paused every request for
        # 70-80 ms, several times per reload (refcounting still frees the old state)
        gc.freeze()

    @property
    def batches(self) -> BatchPool:
        """The batch lookups' worker processes, started by the first batch."""
        if self._batches is None:
            self._batches = BatchPool(self.settings.workspace, workers=self.settings.batch_workers)
        return self._batches

    @property
    def jobs(self) -> Jobs:
        """Planners' background jobs."""
        if self._jobs is None:
            self._jobs = Jobs(self.settings.workspace)
        return self._jobs

    def writer(self) -> Workspace:
        """A workspace object of a write's own: its conflict check compares the write
        against what this request read, not what another one did."""
        return Workspace(self.settings.workspace)

    def close(self) -> None:
        if self._batches is not None:
            self._batches.close()
        if self._jobs is not None:
            self._jobs.close()

    @property
    def directory(self) -> Directory:
        self.catalog.refresh()
        if self._directory is None:
            self._directory = Directory(self.ws)
        return self._directory


def base_url(request: Request) -> str:
    """The server's own URL as the client reached it, without a trailing slash."""
    return str(request.base_url).rstrip("/")


async def state(request: Request) -> State:
    return request.app.state.gisgrid


def caller_role(request: Request) -> str | None:
    """The role of the request's API key (``X-API-Key``, else ``api_key=``); public
    without one, None for a key that is not known."""
    key = request.headers.get("x-api-key") or request.query_params.get("api_key")
    return request.app.state.gisgrid.settings.role_of(key)


async def role(
    request: Request,
    api_key: Annotated[
        str | None, Query(description="API key (or the X-API-Key header); none for public.")
    ] = None,
) -> str:
    """The caller's role from its API key; 401 for a key that is not known."""
    found = caller_role(request)
    if found is None:
        raise HTTPException(
            401, "unknown API key; ask for a key, or call without one for public data"
        )
    return found


Role = Annotated[str, Depends(role)]
#: Path parameters naming what exists, with the names documented (an unknown one is 404)
CollectionId = Annotated[
    str,
    Path(description="A collection id.", json_schema_extra={"enum": [c.id for c in COLLECTIONS]}),
]
TilesetName = Annotated[
    str,
    Path(
        description="A tileset: redmap, or a collection's id.",
        json_schema_extra={"enum": list(TILESETS)},
    ),
]
TileMatrixSet = Annotated[
    str, Path(description="The tile matrix set.", json_schema_extra={"enum": ["WebMercatorQuad"]})
]
AppState = Annotated[State, Depends(state)]


def _query_names(dependant: Dependant) -> set[str]:
    """Every query parameter a route (and its dependencies) declares, by its name in URLs."""
    names = {p.alias or p.name for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_parameters(request: Request) -> None:
    """Refuse a query parameter the route does not know (400 naming it): a parameter that
    is silently ignored gives a script wrong data and no error."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    # a route whose parameters depend on the data (items: one per queryable) says so
    extra = getattr(getattr(route, "endpoint", None), "extra_parameters", None)
    if extra is not None:
        known |= extra(request)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise InputError(
            f"unknown parameter {', '.join(unknown)} for {request.url.path} (it takes: {allowed})"
        )
