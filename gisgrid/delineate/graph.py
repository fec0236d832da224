"""The cell graph: cells are nodes; cutting between two costs their shared edge.

Two cells in different blocks meet along a road, river or wall: cutting there
is cheap. Two cells in one block meet between buildings: cutting there cuts
through a block, and through a compound dearer still. Cells that meet only
across water with no bridge are not neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

__all__ = ["CellGraph", "cell_graph"]

MIN_SHARED_M = 0.5  # cells sharing less boundary than this are not neighbours
ALONG_MINOR = 3.0  # where major lines are told apart: a metre along a local street costs this
THROUGH_BLOCK = 6.0  # a metre of boundary through a block costs this many metres along a road
THROUGH_COMPOUND = 25.0  # … and through a compound, this many


@dataclass
class CellGraph:
    """Cells as a weighted graph.

    Attributes
    ----------
    households, population
        Per cell (0 for empty cells).
    xy
        Cell centroids.
    edges
        ``(i, j)`` pairs with ``i < j``.
    length
        Shared boundary length of each edge (m).
    along_line
        Whether each edge runs along a road, river or wall (cells in
        different blocks) rather than through a block.
    inside_compound
        Whether each edge runs between two units of one compound.
    compound
        Per cell, an integer id of the compound it belongs to (-1: none).
    compound_households
        Households of each compound id.
    """

    households: np.ndarray
    population: np.ndarray
    xy: np.ndarray
    edges: np.ndarray
    length: np.ndarray
    along_line: np.ndarray
    inside_compound: np.ndarray
    compound: np.ndarray
    compound_households: np.ndarray
    minor_line: np.ndarray | None = None

    @property
    def cost(self) -> np.ndarray:
        """Cost of cutting each edge: its length, dearer along minor lines (when the graph
        tells them apart), through blocks and through compounds."""
        factor = np.where(
            self.along_line, 1.0, np.where(self.inside_compound, THROUGH_COMPOUND, THROUGH_BLOCK)
        )
        if self.minor_line is not None:
            factor = np.where(self.minor_line, ALONG_MINOR, factor)
        return self.length * factor

    def subgraph(self, nodes: np.ndarray) -> CellGraph:
        """The subgraph on ``nodes``, renumbered 0..len(nodes)-1."""
        local = np.full(self.n, -1)
        local[nodes] = np.arange(len(nodes))
        keep = (local[self.edges[:, 0]] >= 0) & (local[self.edges[:, 1]] >= 0)
        return CellGraph(
            self.households[nodes],
            self.population[nodes],
            self.xy[nodes],
            local[self.edges[keep]],
            self.length[keep],
            self.along_line[keep],
            self.inside_compound[keep],
            self.compound[nodes],
            self.compound_households,
            None if self.minor_line is None else self.minor_line[keep],
        )

    @property
    def n(self) -> int:
        """Number of cells."""
        return len(self.households)

    def neighbours(self) -> list[list[int]]:
        """Adjacency lists."""
        adj: list[list[int]] = [[] for _ in range(self.n)]
        for i, j in self.edges:
            adj[i].append(int(j))
            adj[j].append(int(i))
        return adj


def _per_cell(values: np.ndarray, unit: np.ndarray, empty: object) -> np.ndarray:
    """A unit attribute for each cell, ``empty`` for cells without a unit."""
    out = np.full(len(unit), empty, dtype=values.dtype)
    has = unit >= 0
    out[has] = values[unit[has]]
    return out


def _shared_segments(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each boundary segment two polygons share: the pair ``(i, j)``, ``i < j``, and its
    end points ``(x0, y0, x1, y1)``.

    Cells of a clean coverage (:func:`~gisgrid.delineate.cells.tessellate`) share their
    edges vertex for vertex, so two cells meet exactly where a segment of one is a
    segment of the other: sorting all segments finds every one at once, where
    intersecting the boundaries of each touching pair costs a GEOS overlay per pair.
    """
    parts, part_cell = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, vertex_ring = shapely.get_coordinates(rings, return_index=True)
    same = vertex_ring[1:] == vertex_ring[:-1]
    a, b = xy[:-1][same], xy[1:][same]
    cell = part_cell[ring_part[vertex_ring[:-1][same]]]
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    ends = np.where(swap[:, None], np.column_stack([b, a]), np.column_stack([a, b]))
    order = np.lexsort(ends.T[::-1])
    ends, cell = ends[order], cell[order]
    twin = np.flatnonzero((ends[1:] == ends[:-1]).all(axis=1) & (cell[1:] != cell[:-1]))
    pair = np.sort(np.column_stack([cell[twin], cell[twin + 1]]), axis=1)
    return pair, ends[twin]


def _in_tree_order(geoms: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Positions in ``pairs`` (sorted rows) in the order a spatial index of the cells
    meets them.

    The partition draws a random weight per edge in edge order, so that order is part of
    what makes a seed's grids: it stays the one the index has always given.
    """
    n = len(geoms)
    key = pairs[:, 0] * n + pairs[:, 1]
    a, b = shapely.STRtree(geoms).query(geoms)
    at = np.searchsorted(key, a * n + b).clip(max=max(len(key) - 1, 0))
    found = (a < b) & (key[at] == a * n + b) if len(key) else np.zeros(len(a), bool)
    return at[found]


def _edge_lines(pair: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The boundary each of ``edges`` shares, a MultiLineString of its shared segments."""
    n = int(max(pair.max(initial=0), edges.max(initial=0))) + 1
    key, want = pair[:, 0] * n + pair[:, 1], edges[:, 0] * n + edges[:, 1]
    hit = np.isin(key, want)
    by = np.argsort(key[hit], kind="stable")
    lines = shapely.linestrings(ends[hit][by].reshape(-1, 2, 2))
    slot = np.searchsorted(np.unique(want), key[hit][by])
    return np.asarray(shapely.multilinestrings(lines, indices=slot))[
        np.searchsorted(np.unique(want), want)
    ]


def _along(
    edge: np.ndarray, shared: np.ndarray, which: np.ndarray, lines: np.ndarray
) -> np.ndarray:
    """Which edges (of those ``which``) run along ``lines`` for over half their length."""
    out = np.zeros(len(edge), bool)
    if len(lines) and which.any():
        near = shapely.buffer(shapely.union_all(lines), 1.0)
        out[which] = shapely.length(shapely.intersection(edge[which], near)) > 0.5 * shared[which]
    return out


def cell_graph(
    cells: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    *,
    water: np.ndarray | None = None,
    roads: np.ndarray | None = None,
    major: np.ndarray | None = None,
) -> CellGraph:
    """The adjacency graph of cells, with shared lengths and where they run.

    Parameters
    ----------
    cells
        From :func:`tessellate`.
    units
        The units, for households and population.
    water
        River and canal lines: cells that meet only along water, where no road
        crosses (no bridge), are not neighbours, so no grid spans the water.
    roads
        Road lines, to find the bridges.
    major
        When given, the lines that count fully as natural boundaries (for
        communities: arterial and secondary roads, water, walls); boundaries
        along other lines cost ``ALONG_MINOR`` times their length.

    Returns
    -------
    CellGraph
    """
    geoms = cells.geometry.values
    unit = cells["unit"].to_numpy()
    hh = _per_cell(units["households"].to_numpy(np.int64), unit, 0)
    pop = _per_cell(units["population"].to_numpy(np.int64), unit, 0)
    pair, ends = _shared_segments(geoms)
    pairs, which = np.unique(pair, axis=0, return_inverse=True)
    shared = np.bincount(which.ravel(), weights=np.hypot(*(ends[:, 2:] - ends[:, :2]).T))
    at = _in_tree_order(geoms, pairs)
    at = at[shared[at] >= MIN_SHARED_M]
    i, j, shared = pairs[at, 0], pairs[at, 1], shared[at]
    block = cells["block"].to_numpy()
    lines = block[i] != block[j]  # only edges between blocks run along water or roads
    edge = np.full(len(i), None, dtype=object)
    if (water is not None and len(water)) or major is not None:
        edge[lines] = _edge_lines(pair, ends, np.column_stack([i, j])[lines])
    if water is not None and len(water):
        across = _along(edge, shared, lines, water)
        if across.any() and roads is not None and len(roads):
            bridge = shapely.STRtree(roads).query(edge[across], predicate="intersects")[0]
            across[np.flatnonzero(across)[np.unique(bridge)]] = False
        i, j, shared, edge, lines = (x[~across] for x in (i, j, shared, edge, lines))
    minor = None if major is None else lines & ~_along(edge, shared, lines, major)
    compound = _per_cell(units["compound_id"].astype(str).to_numpy(), unit, "").astype(str)
    same = (compound[i] == compound[j]) & (compound[i] != "")
    names, compound_id = np.unique(compound, return_inverse=True)
    compound_hh = np.bincount(compound_id, weights=hh)
    if (names == "").any():  # cells without a compound get -1
        blank = int(np.flatnonzero(names == "")[0])
        compound_id = np.where(compound_id == blank, -1, compound_id)
    return CellGraph(
        households=hh.astype(np.int64),
        population=pop.astype(np.int64),
        xy=np.column_stack(
            [shapely.get_x(inner := shapely.point_on_surface(geoms)), shapely.get_y(inner)]
        ),
        edges=np.column_stack([i, j]).astype(np.int64),
        length=shared,
        along_line=block[i] != block[j],
        inside_compound=same & (block[i] == block[j]),
        compound=compound_id.astype(np.int64),
        compound_households=compound_hh,
        minor_line=minor,
    )
