"""The walking and driving network built from the ``roads`` layer.

Roads are noded at every crossing (at-grade: the demo and most OSM extracts of
Chinese cities have no reliable bridge levels), so nodes are junctions and
road ends. Buildings and resources are attached to their nearest road: each
gets a node at its foot on that road, splitting the road there, and keeps the
straight-line *access* distance from its point to the foot. Every distance in
gisgrid is then ``access + network path + access``, in metres; walking minutes
divide it by the walking speed.

The network is built once per workspace and kept in it as two layers,
``network_edges`` and ``network_nodes`` (they open in QGIS like any other),
with a digest of the roads, buildings and resources they were built from;
:func:`network_of` rebuilds them only when that input changed.

Examples
--------
>>> import geopandas as gpd, shapely
>>> roads = gpd.GeoDataFrame(
...     {"road_id": ["a", "b"], "road_class": ["local", "local"]},
...     geometry=shapely.linestrings([[(0, 0), (200, 0)], [(100, -100), (100, 100)]]),
...     crs=4547,
... )
>>> homes = gpd.GeoSeries(shapely.points([(10, 30), (100, 90)]), index=["x", "y"])
>>> net = network_from_roads(roads, {"buildings": homes})
>>> float(net.point_distances(["buildings:x"], ["buildings:y"])[0, 0])  # 30 + 90 + 90 + 0
210.0
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse
import shapely
import shapely.ops
from scipy.sparse import csgraph

from gisgrid._errors import EmptyLayerError, InputError
from gisgrid.io.digest import input_digest
from gisgrid.io.workspace import Workspace

__all__ = ["DRIVE_KMH", "WALK_KMH", "Network", "network_from_roads", "network_of"]

logger = logging.getLogger(__name__)

#: Walking speed, km/h (the 15-minute circle's usual 4.5 km/h, 75 m a minute).
WALK_KMH = 4.5
#: Driving speed by road class, km/h; 0 where cars cannot go.
DRIVE_KMH = {"arterial": 40.0, "secondary": 30.0, "local": 20.0, "path": 0.0}

EDGES_LAYER = "network_edges"
NODES_LAYER = "network_nodes"
DIGEST_KEY = "network_digest"


@dataclass(frozen=True)
class Network:
    """A road graph with attached points.

    Attributes
    ----------
    graph
        Undirected :class:`networkx.Graph`; nodes are integers ``0..n-1`` with
        ``x``, ``y``; edges carry ``length`` (m), ``road_class``, ``walk_s``
        and ``drive_s`` (seconds; ``inf`` where cars cannot go).
    points
        One row per attached point, indexed by key ``"<layer>:<id>"``:
        ``node`` (its foot on the road) and ``access_m``.
    walk_kmh
        Walking speed used for minutes.
    """

    graph: nx.Graph
    points: pd.DataFrame
    walk_kmh: float = WALK_KMH
    crs: object = field(default=None, compare=False)

    @cached_property
    def matrix(self) -> scipy.sparse.csr_array:
        """Edge lengths as a sparse matrix, for :mod:`scipy.sparse.csgraph`."""
        n = self.graph.number_of_nodes()
        return nx.to_scipy_sparse_array(
            self.graph, nodelist=range(n), weight="length", format="csr"
        ).astype(float)

    @cached_property
    def component(self) -> np.ndarray:
        """Connected-component label of every node."""
        return csgraph.connected_components(self.matrix, directed=False)[1]

    @property
    def metres_per_minute(self) -> float:
        return self.walk_kmh * 1000.0 / 60.0

    def node_of(self, keys: Sequence[str]) -> np.ndarray:
        """Nodes of attached points, by key."""
        missing = pd.Index(keys).difference(self.points.index)
        if len(missing):
            raise InputError(f"points not attached to the network: {', '.join(missing[:5])}")
        return self.points.loc[list(keys), "node"].to_numpy(int)

    def access(self, keys: Sequence[str]) -> np.ndarray:
        """Straight-line access distance of attached points to their road, m."""
        return self.points.loc[list(keys), "access_m"].to_numpy(float)

    def node_distances(self, sources: Sequence[str], *, limit: float = np.inf) -> np.ndarray:
        """Distance from each source point (access included) to every node.

        Returns
        -------
        numpy.ndarray
            ``(len(sources), nodes)``; ``inf`` beyond ``limit`` or in another component.
        """
        nodes = self.node_of(sources)
        access = self.access(sources)
        if not len(nodes):
            return np.empty((0, self.graph.number_of_nodes()))
        d = csgraph.dijkstra(self.matrix, directed=False, indices=nodes, limit=limit)
        d += access[:, None]
        d[d > limit] = np.inf
        return d

    def point_distances(
        self, sources: Sequence[str], targets: Sequence[str], *, limit: float = np.inf
    ) -> np.ndarray:
        """Walking distance between attached points, access at both ends included.

        Returns
        -------
        numpy.ndarray
            ``(len(sources), len(targets))`` in metres; ``inf`` when unreachable.
        """
        d = self.node_distances(sources, limit=limit)[:, self.node_of(targets)]
        d = d + self.access(targets)[None, :]
        d[d > limit] = np.inf
        return d

    @cached_property
    def edges(self) -> pd.DataFrame:
        """Edges as a table: ``u`` (the end at ``t0``), ``v``, ``length``, and the
        road ``piece`` they lie on from ``t0`` to ``t1`` metres."""
        rows = [
            (d["start"], v if d["start"] == u else u, d["length"], d["piece"], d["t0"], d["t1"])
            for u, v, d in self.graph.edges(data=True)
        ]
        return pd.DataFrame(rows, columns=["u", "v", "length", "piece", "t0", "t1"])

    def reached_lines(self, dist: np.ndarray, limit: float) -> np.ndarray:
        """The road lines within ``limit`` of a source, given its distance to every node.

        Returns
        -------
        numpy.ndarray
            LineStrings, one per stretch of road reached (partly reached edges included).
        """
        e = self.edges
        t0, t1, length = e["t0"].to_numpy(), e["t1"].to_numpy(), e["length"].to_numpy()
        left_u = np.clip(limit - dist[e["u"].to_numpy()], 0, None)
        left_v = np.clip(limit - dist[e["v"].to_numpy()], 0, None)
        from_u, from_v = left_u > 0, left_v > 0
        spans = pd.DataFrame(
            {
                "piece": np.concatenate(
                    [e["piece"].to_numpy()[from_u], e["piece"].to_numpy()[from_v]]
                ),
                "a": np.concatenate([t0[from_u], t1[from_v] - np.minimum(left_v, length)[from_v]]),
                "b": np.concatenate([t0[from_u] + np.minimum(left_u, length)[from_u], t1[from_v]]),
            }
        ).sort_values(["piece", "a"], kind="stable")
        if spans.empty:
            return np.empty(0, dtype=object)
        reach = spans.groupby("piece")["b"].cummax().shift()
        new = (spans["piece"] != spans["piece"].shift()) | (spans["a"] > reach + 1e-6)
        merged = spans.groupby(new.cumsum().to_numpy()).agg(
            piece=("piece", "first"), a=("a", "min"), b=("b", "max")
        )
        pieces = self.graph.graph["pieces"]
        return np.array(
            [shapely.ops.substring(pieces[p], a, b) for p, a, b in merged.itertuples(index=False)],
            dtype=object,
        )


def _add_edges(
    graph: nx.Graph,
    edges: pd.DataFrame,
    *,
    walk_kmh: float,
    drive_kmh: Mapping[str, float] = DRIVE_KMH,
) -> None:
    """Add edges (``u``, ``v``, ``length``, ``road_class``, ``piece``, ``start``, ``t0``,
    ``t1``) with their walking and driving times; where two join the same nodes, the last
    given wins."""
    length = edges["length"].to_numpy(float)
    drive = edges["road_class"].map(drive_kmh).fillna(0.0).to_numpy(float) / 3.6
    drive_s = np.where(drive > 0, length / np.where(drive > 0, drive, 1.0), np.inf)
    walk_s = length / (walk_kmh / 3.6)
    for row, walk, car in zip(edges.itertuples(index=False), walk_s, drive_s, strict=True):
        graph.add_edge(
            int(row.u),
            int(row.v),
            length=float(row.length),
            road_class=str(row.road_class),
            piece=int(row.piece),
            start=int(row.start),
            t0=float(row.t0),
            t1=float(row.t1),
            walk_s=float(walk),
            drive_s=float(car),
        )


def _pieces(roads: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Road lines noded at every crossing, and each piece's road class."""
    lines, index = shapely.get_parts(roads.geometry.values, return_index=True)
    lines = lines[~shapely.is_empty(lines)]
    classes = roads["road_class"].fillna("local").to_numpy(str)[index]
    pieces = shapely.get_parts(shapely.union_all(lines))
    pieces = pieces[shapely.length(pieces) > 0]
    mids = shapely.line_interpolate_point(pieces, 0.5, normalized=True)
    nearest = shapely.STRtree(lines).query_nearest(mids, all_matches=False)[1]
    return pieces, classes[nearest]


def network_from_roads(
    roads: gpd.GeoDataFrame,
    points: Mapping[str, gpd.GeoSeries] | None = None,
    *,
    walk_kmh: float = WALK_KMH,
    drive_kmh: Mapping[str, float] | None = None,
) -> Network:
    """Build the network from road lines and attach points to it.

    Parameters
    ----------
    roads
        Lines with ``road_class`` (arterial, secondary, local, path).
    points
        Layer name to points (or areas: their point on surface), indexed by id.
        Each is attached to its nearest road.
    walk_kmh, drive_kmh
        Speeds; see :data:`WALK_KMH` and :data:`DRIVE_KMH`.

    Raises
    ------
    EmptyLayerError
        When there are no road lines.
    """
    if roads is None or roads.empty or shapely.length(roads.geometry.values).sum() == 0:
        raise EmptyLayerError(
            "the roads layer is empty: the network needs roads; import a roads layer first"
        )
    speeds = {**DRIVE_KMH, **(drive_kmh or {})}
    pieces, classes = _pieces(roads)
    ends = np.vstack(
        [shapely.get_coordinates(shapely.get_point(pieces, i))[:, :2] for i in (0, -1)]
    )
    keys, junction = np.unique(np.round(ends, 2), axis=0, return_inverse=True)
    junction = junction.ravel()
    n_junctions = len(keys)
    start, end = junction[: len(pieces)], junction[len(pieces) :]

    attached = _attached(points)
    pts = attached["geometry"].to_numpy()
    if len(pts):
        (_, edge), access = shapely.STRtree(pieces).query_nearest(
            pts, return_distance=True, all_matches=False
        )
        t = shapely.line_locate_point(pieces[edge], pts)
    else:
        edge, access, t = np.empty(0, int), np.empty(0), np.empty(0)
    foot_node = n_junctions + np.arange(len(pts))
    segs = _segments(pieces, start, end, edge, t, foot_node)

    graph = nx.Graph()
    foot_xy = (
        shapely.get_coordinates(shapely.line_interpolate_point(pieces[edge], t))
        if len(pts)
        else np.empty((0, 2))
    )
    xy = np.vstack([keys, foot_xy]) if len(foot_xy) else keys
    graph.add_nodes_from((i, {"x": float(x), "y": float(y)}) for i, (x, y) in enumerate(xy))
    segs["road_class"] = classes[segs["piece"].to_numpy()]
    segs["start"] = segs["u"]
    _add_edges(graph, segs, walk_kmh=walk_kmh, drive_kmh=speeds)
    graph.graph["pieces"] = pieces
    table = pd.DataFrame(
        {"node": foot_node, "access_m": access}, index=pd.Index(attached["key"], name="key")
    )
    net = Network(graph=graph, points=table, walk_kmh=walk_kmh, crs=roads.crs)
    n_comp = int(net.component.max()) + 1 if graph.number_of_nodes() else 0
    if n_comp > 1:
        sizes = np.bincount(net.component)
        logger.warning(
            "the road network has %d disconnected parts; %d of its %d nodes lie outside the "
            "largest and reach only their own part",
            n_comp,
            sizes.sum() - sizes.max(),
            sizes.sum(),
        )
    return net


def _attached(points: Mapping[str, gpd.GeoSeries] | None) -> pd.DataFrame:
    """The points to attach (areas by their point on surface), keyed ``layer:id``."""
    frames = []
    for layer, geoms in (points or {}).items():
        if len(geoms):
            pts = shapely.point_on_surface(np.asarray(geoms.values))
            frames.append(
                pd.DataFrame({"key": [f"{layer}:{i}" for i in geoms.index], "geometry": pts})
            )
    attached = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["key", "geometry"])
    )
    if attached["key"].duplicated().any():
        dup = attached.loc[attached["key"].duplicated(), "key"].iloc[0]
        raise InputError(f"point {dup!r} is given twice; ids must be unique within a layer")
    return attached


def _segments(
    pieces: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    edge: np.ndarray,
    t: np.ndarray,
    foot_node: np.ndarray,
) -> pd.DataFrame:
    """The road pieces cut at the feet of the attached points: one row per segment
    (``u``, ``v``, ``piece``, ``t0``, ``t1``, ``length``), longest first."""
    length = shapely.length(pieces)
    n = len(pieces)
    stops = pd.DataFrame(  # stops along each piece: its start, the feet on it, its end
        {
            "piece": np.concatenate([np.arange(n), edge, np.arange(n)]),
            "t": np.concatenate([np.zeros(n), t, length]),
            "order": np.concatenate([np.zeros(n), np.ones(len(edge)), np.full(n, 2)]),
            "node": np.concatenate([start, foot_node, end]),
        }
    ).sort_values(["piece", "t", "order"], kind="stable")
    nxt = stops.shift(-1)
    same = (nxt["piece"] == stops["piece"]).to_numpy()
    segs = pd.DataFrame(
        {
            "u": stops["node"].to_numpy()[same].astype(int),
            "v": nxt["node"].to_numpy()[same].astype(int),
            "piece": stops["piece"].to_numpy()[same].astype(int),
            "t0": stops["t"].to_numpy()[same],
            "t1": nxt["t"].to_numpy()[same],
        }
    )
    segs["length"] = segs["t1"] - segs["t0"]
    segs = segs[segs["u"] != segs["v"]]
    # parallel pieces between the same two nodes: keep the shortest
    return segs.sort_values("length", ascending=False, kind="stable")


def _digest(ws_layers: Mapping[str, gpd.GeoDataFrame], walk_kmh: float) -> str:
    parts = [ws_layers[name] for name in ("roads", "buildings", "resources") if name in ws_layers]
    return f"{input_digest(*parts)}:{walk_kmh}"


def network_of(ws: Workspace, *, walk_kmh: float = WALK_KMH) -> Network:
    """The workspace's network with its buildings and resources attached, built on first use.

    The graph is kept in the workspace (``network_edges``, ``network_nodes``) and
    reused while the roads, buildings and resources are unchanged.
    """
    layers = {
        "roads": ws.read("roads", columns=["road_id", "road_class"]),
        "buildings": ws.read("buildings", columns=["building_id"]),
    }
    if "resources" in ws:
        layers["resources"] = ws.read("resources", columns=["resource_id"])
    digest = _digest(layers, walk_kmh)
    if ws.meta().get(DIGEST_KEY) == digest and EDGES_LAYER in ws and NODES_LAYER in ws:
        try:
            return _load(ws, layers["roads"], walk_kmh)
        except (KeyError, ValueError) as exc:  # an older or edited cache: rebuild it
            logger.info("rebuilding the network: %s", exc)
    points = {"buildings": layers["buildings"].set_index("building_id").geometry}
    if "resources" in layers:
        points["resources"] = layers["resources"].set_index("resource_id").geometry
    net = network_from_roads(layers["roads"], points, walk_kmh=walk_kmh)
    ws.write(_layers(net), meta={DIGEST_KEY: digest})
    return net


def _layers(net: Network) -> dict[str, gpd.GeoDataFrame]:
    """The network as two GeoPackage layers."""
    edges = pd.DataFrame(
        [
            (u, v, d["length"], d["road_class"], d["piece"], d["start"], d["t0"], d["t1"])
            for u, v, d in net.graph.edges(data=True)
        ],
        columns=["u", "v", "length_m", "road_class", "piece", "start", "t0", "t1"],
    )
    pieces = net.graph.graph["pieces"]
    geometry = [
        shapely.ops.substring(pieces[p], a, b)
        for p, a, b in edges[["piece", "t0", "t1"]].itertuples(index=False)
    ]
    edges_layer = gpd.GeoDataFrame(edges, geometry=geometry, crs=net.crs)
    xy = np.array([(d["x"], d["y"]) for _, d in net.graph.nodes(data=True)]).reshape(-1, 2)
    ref = pd.Series("", index=range(len(xy)), dtype=object)
    access = np.zeros(len(xy))
    ref.iloc[net.points["node"].to_numpy(int)] = net.points.index.to_numpy()
    access[net.points["node"].to_numpy(int)] = net.points["access_m"].to_numpy()
    nodes = gpd.GeoDataFrame(
        {"node": np.arange(len(xy)), "point": ref.to_numpy(), "access_m": access},
        geometry=shapely.points(xy),
        crs=net.crs,
    )
    pieces_layer = gpd.GeoDataFrame({"piece": np.arange(len(pieces))}, geometry=pieces, crs=net.crs)
    return {EDGES_LAYER: edges_layer, NODES_LAYER: nodes, "network_pieces": pieces_layer}


def _load(ws: Workspace, roads: gpd.GeoDataFrame, walk_kmh: float) -> Network:
    edges = ws.read(EDGES_LAYER)
    nodes = ws.read(NODES_LAYER)
    pieces = ws.read("network_pieces").sort_values("piece").geometry.to_numpy()
    graph = nx.Graph(pieces=pieces)
    xy = shapely.get_coordinates(nodes.geometry.values)
    graph.add_nodes_from(
        (int(i), {"x": x, "y": y}) for i, (x, y) in zip(nodes["node"], xy, strict=True)
    )
    _add_edges(graph, edges.rename(columns={"length_m": "length"}), walk_kmh=walk_kmh)
    attached = nodes[nodes["point"].astype(str) != ""]
    table = pd.DataFrame(
        {"node": attached["node"].to_numpy(int), "access_m": attached["access_m"].to_numpy(float)},
        index=pd.Index(attached["point"].astype(str), name="key"),
    )
    return Network(graph=graph, points=table, walk_kmh=walk_kmh, crs=roads.crs)
