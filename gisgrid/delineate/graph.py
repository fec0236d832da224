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
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    edge = shapely.intersection(shapely.boundary(geoms[i]), shapely.boundary(geoms[j]))
    shared = shapely.length(edge)
    real = shared >= MIN_SHARED_M
    i, j, shared, edge = i[real], j[real], shared[real], edge[real]
    block = cells["block"].to_numpy()
    if water is not None and len(water):
        wet = shapely.buffer(shapely.union_all(water), 1.0)
        across = (block[i] != block[j]) & (
            shapely.length(shapely.intersection(edge, wet)) > 0.5 * shared
        )
        if across.any() and roads is not None and len(roads):
            bridge = shapely.STRtree(roads).query(edge[across], predicate="intersects")[0]
            across[np.flatnonzero(across)[np.unique(bridge)]] = False
        i, j, shared, edge = i[~across], j[~across], shared[~across], edge[~across]
    minor = None
    if major is not None:
        near = shapely.buffer(shapely.union_all(major), 1.0) if len(major) else None
        on_major = (
            np.zeros(len(edge), bool)
            if near is None
            else shapely.length(shapely.intersection(edge, near)) > 0.5 * shared
        )
        minor = (block[i] != block[j]) & ~on_major
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
