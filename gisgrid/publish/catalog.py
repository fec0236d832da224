"""What gisgrid publishes: collections, the fields each role may see, and their data.

One table decides privacy for the features API, the tiles and the lookup: a
collection is a workspace layer (optionally a subset of its rows) and a list of
fields per role. Household-level data, census points, people other than the
published grid worker, and personal phones are in no public collection.

Roles are ordered: ``public`` < ``staff`` < ``planner``; a role sees its own
fields and those of the roles below it.

Examples
--------
>>> [c.id for c in COLLECTIONS if c.visible_to("public")][:4]
['streets', 'communities', 'grids', 'buildings']
>>> "households" in COLLECTIONS_BY_ID["buildings"].fields_for("public")
False
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import geopandas as gpd
import pandas as pd

from gisgrid._errors import LayerNotFoundError
from gisgrid.delineate.publication import PUBLISHED_BUILDINGS, PUBLISHED_GRIDS, published_codes
from gisgrid.io.workspace import Workspace

__all__ = ["COLLECTIONS", "COLLECTIONS_BY_ID", "ROLES", "Catalog", "Collection"]

logger = logging.getLogger(__name__)

ROLES = ("public", "staff", "planner")
#: Fields that never leave the server, whatever the role.
NEVER = frozenset({"personal_phone"})


@dataclass(frozen=True)
class Collection:
    """One published collection.

    Attributes
    ----------
    id, title
        Collection id (URL) and title.
    layer
        The workspace layer it comes from.
    fields
        Role → fields added at that role (lower roles' fields included above).
    rows
        Optional filter on the layer's rows.
    min_role
        The lowest role that sees the collection at all.
    id_field
        The field that identifies a feature (its id in the features API).
    coverage
        Whether its polygons tile the land edge to edge (tiles simplify them as one
        coverage, so neighbours never gap or overlap).
    read
        How its rows are read from the workspace, when not as the layer itself.
    uses
        The layers ``read`` reads besides ``layer`` (a reload reads it again when one
        of them changed).
    """

    id: str
    title: str
    layer: str
    fields: dict[str, tuple[str, ...]]
    rows: Callable[[pd.DataFrame], pd.Series] | None = None
    min_role: str = "public"
    id_field: str = ""
    coverage: bool = False
    read: Callable[[Workspace], gpd.GeoDataFrame] | None = None
    uses: tuple[str, ...] = ()

    def visible_to(self, role: str) -> bool:
        return ROLES.index(role) >= ROLES.index(self.min_role)

    def fields_for(self, role: str) -> list[str]:
        """Fields a role may see, in order."""
        out: list[str] = []
        for r in ROLES[: ROLES.index(role) + 1]:
            out += [f for f in self.fields.get(r, ()) if f not in NEVER]
        return out


def _kind(kind: str, *, levels: tuple[str, ...] = ()) -> Callable[[pd.DataFrame], pd.Series]:
    def pick(frame: pd.DataFrame) -> pd.Series:
        ok = frame["kind"] == kind
        if levels:
            ok &= frame["level"].isin(levels)
        return ok

    return pick


def _places(cid: str, title: str, kind: str, *, levels: tuple[str, ...] = ()) -> Collection:
    """Published places and organisations of the resources layer: name, level, public phone."""
    return Collection(
        cid,
        title,
        "resources",
        {"public": ("resource_id", "name", "level", "phone")},
        rows=_kind(kind, levels=levels),
        id_field="resource_id",
    )


def _communities(ws: Workspace) -> gpd.GeoDataFrame:
    """Communities with their households and population, summed over their buildings."""
    frame = ws.read("communities")
    if "buildings" not in ws:
        return frame
    counts = ws.read(
        "buildings", columns=["community_code", "households", "population"], geometry=False
    )
    return frame.join(
        counts.groupby("community_code")[["households", "population"]].sum(), on="code"
    )


def _buildings(ws: Workspace) -> gpd.GeoDataFrame:
    """Buildings in their published grids; planners also see the draft's
    ``draft_grid_code``."""
    frame = ws.read("buildings")  # read once: the draft's codes, then the published ones
    frame["draft_grid_code"] = frame["grid_code"]
    frame["grid_code"] = published_codes(ws, frame["building_id"])
    return frame


_GRID_FIELDS = {
    "public": (
        "grid_code",
        "name",
        "grid_type",
        "community_code",
        "street_code",
        "households",
        "population",
    ),
    "staff": ("buildings", "in_band", "flags", "reason", "locked"),
    "planner": ("polsby_popper", "area_m2", "run_id"),
}

COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        "streets",
        "街道 streets",
        "streets",
        {"public": ("code", "name")},
        id_field="code",
        coverage=True,
    ),
    Collection(
        "communities",
        "社区 communities",
        "communities",
        {"public": ("code", "name", "parent_code", "households", "population")},
        id_field="code",
        coverage=True,
        read=_communities,
        uses=("buildings",),
    ),
    Collection(
        "grids",
        "网格 grids (published)",
        PUBLISHED_GRIDS,
        {**_GRID_FIELDS, "planner": (*_GRID_FIELDS["planner"], "published_run")},
        id_field="grid_code",
        coverage=True,
    ),
    Collection(
        "draft_grids",
        "网格草案 draft grids (not yet published)",
        "grids",
        {"planner": tuple(f for fields in _GRID_FIELDS.values() for f in fields)},
        min_role="planner",
        id_field="grid_code",
    ),
    Collection(
        "buildings",
        "楼栋 buildings",
        "buildings",
        {
            "public": ("building_id", "kind", "floors", "name", "address", "grid_code"),
            "staff": ("households", "population", "entrances", "compound_id", "community_code"),
            "planner": ("draft_grid_code",),
        },
        id_field="building_id",
        read=_buildings,
        uses=(PUBLISHED_BUILDINGS,),
    ),
    Collection(
        "roads",
        "道路 roads",
        "roads",
        {"public": ("road_id", "road_class", "name")},
        id_field="road_id",
    ),
    Collection(
        "water", "水系 water", "water", {"public": ("water_id", "name")}, id_field="water_id"
    ),
    _places("party_orgs", "党组织 party organisations", "party_org"),
    _places("service_sites", "党群服务中心/站 party–mass service sites", "service_site"),
    _places("police_posts", "警务室/派出所 police posts", "police", levels=("street", "community")),
    Collection(
        "service_areas",
        "15分钟服务圈 service areas",
        "service_areas",
        {"public": ("resource_id", "name", "minutes", "households")},
        id_field="resource_id",
    ),
    Collection(
        "uncovered",
        "未覆盖 households beyond the walk",
        "uncovered",
        {"staff": ("building_id", "grid_code", "community_code", "households", "walk_min")},
        min_role="staff",
        id_field="building_id",
    ),
)
COLLECTIONS_BY_ID = {c.id: c for c in COLLECTIONS}


@dataclass
class Catalog:
    """The published layers of one workspace, in WGS84, reloaded when the file changes.

    Parameters
    ----------
    ws
        The workspace served.
    only
        The collections to load (all when None): an export of one tileset needs its own.
    """

    ws: Workspace
    only: frozenset[str] | None = None
    frames: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)
    revision: int = -1  # the workspace revision loaded (−1: nothing yet)
    _stamp: tuple[int, ...] = ()
    _loading: int = -1  # the revision being loaded in the background (−1: none)
    _kept: dict[str, tuple[tuple[int, ...], gpd.GeoDataFrame]] = field(
        default_factory=dict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _listeners: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every reload (caches clear themselves this way)."""
        self._listeners.append(listener)

    def refresh(self, *, wait: bool = False) -> bool:
        """Notice a new revision of the workspace; True when a reload started or ran.

        The first load, and any with ``wait``, happen at once; later ones run in the
        background while readers keep the previous state, so no reader waits for a
        reload (a writer that wants to read its own write passes ``wait``).
        """
        stamp = self.ws.store.stamp()  # file times, or a tick for a database
        if stamp == self._stamp and not wait:
            return False
        with self._lock:
            revision = self.ws.revision
            self._stamp = stamp
            if revision == self.revision or (revision == self._loading and not wait):
                return False
            now = wait or self.revision < 0
            self._loading = revision
        if now:
            self._reload(revision)
        else:
            threading.Thread(target=self._reload, args=(revision,), daemon=True).start()
        return True

    def _reload(self, revision: int) -> None:
        try:
            frames = self._load()
            with self._lock:
                if revision >= self.revision:
                    self.frames, self.revision = frames, revision
            for listener in self._listeners:
                listener()
        finally:
            with self._lock:
                if self._loading == revision:
                    self._loading = -1

    def _load(self) -> dict[str, gpd.GeoDataFrame]:
        """Every published collection and table; a layer whose revision did not change
        is kept from the last load, not read again."""
        have = set(self.ws.layers())
        revisions = self.ws.layer_revisions()
        frames: dict[str, gpd.GeoDataFrame] = {}
        read = functools.cache(self.ws.read)  # three collections come from one layer
        for c in COLLECTIONS:
            if c.layer not in have or (self.only is not None and c.id not in self.only):
                continue
            key = tuple(revisions.get(name, 0) for name in (c.layer, *c.uses))
            cached = self._kept.get(c.id)
            frames[c.id] = cached[1] if cached and cached[0] == key else self._collection(c, read)
            self._kept[c.id] = (key, frames[c.id])
        logger.info("loaded %d collections from %s", len(frames), self.ws.location)
        return frames

    def _collection(
        self, c: Collection, read: Callable[[str], gpd.GeoDataFrame]
    ) -> gpd.GeoDataFrame:
        frame = c.read(self.ws) if c.read is not None else read(c.layer)
        if c.rows is not None:
            frame = frame[c.rows(frame)]
        frame = frame.drop(columns=[f for f in NEVER if f in frame.columns])
        return frame.to_crs(4326).reset_index(drop=True)

    def bounds(
        self, collections: Iterable[str] | None = None
    ) -> tuple[float, float, float, float] | None:
        """Lon/lat box of the named collections the workspace has (all when None); None
        when it has none of them."""
        self.refresh()
        names = self.frames if collections is None else collections
        parts = [self.frames[c].geometry for c in names if len(self.frames.get(c, ()))]
        if not parts:
            return None
        minx, miny, maxx, maxy = (float(v) for v in pd.concat(parts).total_bounds)
        return minx, miny, maxx, maxy

    def collections(self, role: str) -> list[Collection]:
        """The collections a role sees that the workspace has."""
        self.refresh()
        return [c for c in COLLECTIONS if c.visible_to(role) and c.id in self.frames]

    def frame(self, collection: str, role: str) -> gpd.GeoDataFrame:
        """A collection's rows with the fields a role may see (and geometry).

        Raises
        ------
        LayerNotFoundError
            When the role may not see the collection at all (as if it were not there).
        """
        self.refresh()
        c = COLLECTIONS_BY_ID[collection]
        if not c.visible_to(role):
            raise LayerNotFoundError(f"no collection {collection!r}")
        frame = self.frames[collection]
        cols = [f for f in c.fields_for(role) if f in frame.columns]
        return frame[[*cols, frame.geometry.name]]
