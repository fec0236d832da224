"""Cells: a tessellation of a community into one piece of land per unit.

The community is first cut into **blocks** by roads, rivers and walls (the
faces of their arrangement with the community boundary). A block holding one
unit is that unit's cell; a block holding several is shared out by a Voronoi
diagram of points sampled along the units' building outlines (a
building-based tessellation, as in momepy), so cell edges run between
buildings. Blocks without buildings become empty cells. Cells tile the
community exactly, and every building lies inside its unit's cell.

The graph of the cells, with the cost of cutting between them, is
:mod:`gisgrid.delineate.graph`.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

__all__ = ["blocks_of", "dissolve", "tessellate"]

SAMPLE_M = 3.0  # spacing of outline samples for the Voronoi diagram
SIMPLIFY_M = 0.5  # Voronoi edges between those samples are straightened to this (m)
JITTER_M = 0.005  # deterministic jitter of the samples (see tessellate)
GRID_SIZE = 0.001  # precision (m) of cell coordinates, so neighbours share vertices exactly
GAP_M = 0.05  # gaps narrower than this between cells are slivers of clipping, closed
HELD_M2 = 0.01  # a cell's piece holds its buildings when it covers more of them than this
SNAP_M = 0.5  # lines this close to a community boundary are snapped onto it
MIN_BLOCK_M2 = 1.0  # faces smaller than this are slivers of noding, not blocks
DEDICATED_MARGIN_M = 25.0  # land kept around a dedicated compound in its grid


def blocks_of(area: shapely.Geometry, lines: np.ndarray) -> np.ndarray:
    """Cut an area into blocks along lines (roads, rivers, walls).

    Parameters
    ----------
    area
        A community (Polygon or MultiPolygon, holes allowed).
    lines
        LineStrings in the same CRS; only their parts inside ``area`` count.

    Returns
    -------
    numpy.ndarray
        Polygons that tile ``area``.

    Examples
    --------
    >>> square = shapely.box(0, 0, 100, 100)
    >>> road = shapely.LineString([(50, -10), (50, 110)])
    >>> sorted(b.area for b in blocks_of(square, np.array([road])))
    [5000.0, 5000.0]
    """
    edge = shapely.boundary(area)
    if len(lines):  # a road drawn along the boundary should meet it, not run beside it
        inside = shapely.intersection(shapely.snap(lines, edge, SNAP_M), area)
        inside = inside[~shapely.is_empty(inside)]
    else:
        inside = np.empty(0, dtype=object)
    noded = shapely.union_all([*inside, edge])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    if len(faces) == 0:
        return np.array([area])
    faces = faces[shapely.intersects(area, shapely.point_on_surface(faces))]
    grown, keep = _merge_slivers(faces)
    return grown[keep]


def _merge_slivers(
    faces: np.ndarray, movable: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Join faces under ``MIN_BLOCK_M2`` (those ``movable``, by default all) to the
    neighbour they share most boundary with: the faces, grown, and which remain."""
    faces, keep = faces.copy(), np.ones(len(faces), bool)
    small = shapely.area(faces) < MIN_BLOCK_M2
    if movable is not None:
        small &= movable
    if not small.any() or small.all():
        return faces, keep
    big = np.flatnonzero(~small)
    tree = shapely.STRtree(faces[big])
    for s in np.flatnonzero(small):
        near = big[tree.query(faces[s], predicate="intersects")]
        shared = shapely.length(
            shapely.intersection(shapely.boundary(faces[near]), shapely.boundary(faces[s]))
        )
        if not len(near) or shared.max() <= 0:
            continue  # nothing to join along an edge: keep it rather than leave a hole
        target = near[int(np.argmax(shared))]
        faces[target] = shapely.union(faces[target], faces[s])
        keep[s] = False
    return faces, keep


def dissolve(polygons: np.ndarray) -> shapely.Geometry:
    """Union of polygons that tile: a fast coverage union, or a snapped union when the
    coverage union fails or returns something invalid."""
    try:
        geom = shapely.coverage_union_all(polygons)
        if geom.is_valid and geom.geom_type == "Polygon":
            return geom
    except shapely.errors.GEOSException:
        pass
    try:
        return shapely.union_all(polygons, grid_size=GRID_SIZE)
    except shapely.errors.GEOSException:  # rare robustness failure of snap-rounding
        return shapely.make_valid(shapely.union_all(shapely.make_valid(polygons)))


def _dissolve_groups(polygons: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """:func:`dissolve` of each group's polygons (``group``: 0..groups-1 per polygon).

    Voronoi cells share exact edges, so a coverage union is fast and exact; all groups
    go to GEOS in one call, as rows of a table padded with missing values, and only a
    group whose union comes out wrong is dissolved again on its own.
    """
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=groups)
    column = np.arange(len(group)) - np.repeat(np.cumsum(counts) - counts, counts)
    table = np.full((groups, max(int(counts.max(initial=0)), 1)), None, dtype=object)
    table[group[order], column] = polygons[order]
    try:
        merged = shapely.coverage_union_all(table, axis=1)
        bad = ~shapely.is_valid(merged) | (shapely.get_type_id(merged) != 3)
    except shapely.errors.GEOSException:
        merged, bad = np.empty(groups, dtype=object), np.ones(groups, bool)
    for g in np.flatnonzero(bad):
        merged[g] = dissolve(polygons[group == g])
    return merged


@dataclass
class _Cells:
    """Cells being made: geometry, unit (-1: none) and block of each."""

    geoms: np.ndarray
    unit: np.ndarray
    block: np.ndarray

    def take(self, rows: np.ndarray) -> _Cells:
        return _Cells(self.geoms[rows], self.unit[rows], self.block[rows])

    def plus(self, extra: list[tuple[int, int, shapely.Geometry]]) -> _Cells:
        """These cells and more, as (unit, block, geometry)."""
        unit = np.array([e[0] for e in extra], dtype=np.int64)
        block = np.array([e[1] for e in extra], dtype=np.int64)
        geoms = np.empty(len(extra), dtype=object)
        geoms[:] = [e[2] for e in extra]
        return _Cells(
            np.concatenate([self.geoms, geoms]),
            np.concatenate([self.unit, unit]),
            np.concatenate([self.block, block]),
        )


def tessellate(blocks: np.ndarray, units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Share each block out among the units in it.

    Parameters
    ----------
    blocks
        Polygons tiling the community.
    units
        Units with ``block`` (position in ``blocks``) and ``geometry`` (their
        buildings).

    Returns
    -------
    geopandas.GeoDataFrame
        One cell per unit (``unit`` = its position) and one per empty block
        (``unit`` = -1), with ``block``. Cells tile the blocks.
    """
    cells = _voronoi_cells(blocks, units)
    shapes = units.geometry.values
    if "dedicated" in units.columns:
        cells = _trim_dedicated(cells, units["dedicated"].to_numpy(bool), shapes)
    cells.geoms = _own_buildings(cells, shapes)
    # make shared edges identical and close the hairline gaps left by clipping, so cells
    # union into clean polygons (GEOS CoverageCleaner)
    cells.geoms = shapely.coverage_clean(_polygonal(cells.geoms), gap_width=GAP_M)
    cells = _split_detached(cells, shapes)
    # a detached sliver of clipping is no land of its own: it joins the cell beside it
    cells.geoms, keep = _merge_slivers(cells.geoms, movable=cells.unit < 0)
    cells = cells.take(np.flatnonzero(keep))
    # slivers the cleaner absorbed leave empty cells; only those without a unit may go
    cells = cells.take(np.flatnonzero(~(shapely.is_empty(cells.geoms) & (cells.unit < 0))))
    return gpd.GeoDataFrame(
        {"unit": cells.unit, "block": cells.block}, geometry=cells.geoms, crs=units.crs
    )


def _voronoi_cells(blocks: np.ndarray, units: gpd.GeoDataFrame) -> _Cells:
    """A block with one unit or none is one cell; a block with several is shared out by
    the Voronoi diagram of points along their outlines."""
    unit_block = units["block"].to_numpy()
    shapes = units.geometry.values
    cells: list[shapely.Geometry] = []
    cell_unit: list[int] = []
    cell_block: list[int] = []
    by_block = pd.Series(np.arange(len(units))).groupby(unit_block).apply(list).to_dict()
    row = np.empty(len(units), dtype=np.int64)
    for b, block in enumerate(blocks):
        members = by_block.get(b, [])
        if len(members) <= 1:
            cells.append(block)
            cell_unit.append(members[0] if members else -1)
            cell_block.append(b)
            continue
        outline = shapely.segmentize(shapely.boundary(shapes[members]), SAMPLE_M)
        counts = shapely.get_num_coordinates(outline)
        xy = shapely.get_coordinates(outline)
        label = np.repeat(np.asarray(members), counts)
        xy, first = np.unique(np.round(xy, 3), axis=0, return_index=True)
        label = label[first]
        # samples along straight walls are collinear, which makes GEOS's Voronoi cells
        # invalid; a fixed jitter of a few millimetres avoids the degeneracy
        xy = xy + np.random.default_rng(b).uniform(-JITTER_M, JITTER_M, xy.shape)
        vor = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=block, ordered=True)
        )
        row[members] = np.arange(len(members))
        merged = _dissolve_groups(vor, row[label], len(members))
        # edges between samples zigzag at the sample spacing: straighten them (shared edges
        # stay shared) rather than carry their vertices through every later overlay
        merged = shapely.coverage_simplify(merged, SIMPLIFY_M, simplify_boundary=False)
        cells.extend(shapely.intersection(merged, block))
        cell_unit.extend(members)
        cell_block.extend([b] * len(members))
    return _Cells(
        np.array(cells, dtype=object),
        np.asarray(cell_unit, dtype=np.int64),
        np.asarray(cell_block, dtype=np.int64),
    )


def _trim_dedicated(cells: _Cells, dedicated: np.ndarray, shapes: np.ndarray) -> _Cells:
    """A dedicated unit keeps its compound and a margin; the rest of its cell is empty land.

    A school alone in a large rural block should not turn the whole block into a
    school grid: the land around it joins the basic grid next to it.
    """
    mine = np.zeros(len(cells.unit), bool)
    has = cells.unit >= 0
    mine[has] = dedicated[cells.unit[has]]
    if not mine.any():
        return cells
    extra: list[tuple[int, int, shapely.Geometry]] = []
    for c in np.flatnonzero(mine):
        cell, u, b = cells.geoms[c], int(cells.unit[c]), int(cells.block[c])
        core = shapely.buffer(shapely.convex_hull(shapes[u]), DEDICATED_MARGIN_M, quad_segs=4)
        rest = shapely.difference(cell, core)
        if shapely.area(rest) < 0.05 * shapely.area(cell):
            extra.append((u, b, cell))
            continue
        extra.append((u, b, shapely.intersection(cell, core)))
        extra.extend(
            (-1, b, part)
            for part in shapely.get_parts(rest)
            if part.geom_type == "Polygon" and part.area > MIN_BLOCK_M2
        )
    return cells.take(np.flatnonzero(~mine)).plus(extra)


def _split_detached(cells: _Cells, shapes: np.ndarray) -> _Cells:
    """A cell keeps the pieces that hold its buildings; other pieces become empty cells.

    Carving a unit's buildings out of its neighbours' Voronoi cells can leave a cell in
    pieces (a courtyard inside another unit's perimeter block). A detached piece
    then joins the grid around it rather than make its own grid non-contiguous.
    """
    multi = np.flatnonzero(shapely.get_num_geometries(cells.geoms) > 1)
    if len(multi) == 0:
        return cells
    geoms = cells.geoms.copy()
    extra: list[tuple[int, int, shapely.Geometry]] = []
    for c in multi:
        parts = shapely.get_parts(geoms[c])
        if cells.unit[c] >= 0:
            # more than a hairline: a piece beside its building, touching it along an
            # edge, overlaps it by 1e-7 m² of rounding and holds nothing
            held = shapely.area(shapely.intersection(parts, shapes[cells.unit[c]])) > HELD_M2
            if not held.any():
                held = shapely.area(parts) == shapely.area(parts).max()
        else:
            held = np.arange(len(parts)) == 0
        geoms[c] = parts[held][0] if held.sum() == 1 else shapely.MultiPolygon(list(parts[held]))
        extra.extend((-1, int(cells.block[c]), p) for p in parts[~held])
    return _Cells(geoms, cells.unit, cells.block).plus(extra)


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygon parts of clipped geometries (clipping can add stray lines)."""
    geoms = geoms.copy()
    odd = ~np.isin(shapely.get_type_id(geoms), [3, 6])
    for i in np.flatnonzero(odd):
        parts = [p for p in shapely.get_parts(geoms[i]) if p.geom_type == "Polygon"]
        geoms[i] = shapely.MultiPolygon(parts) if len(parts) != 1 else parts[0]
    return geoms


def _own_buildings(cells: _Cells, shapes: np.ndarray) -> np.ndarray:
    """The cells' geometries with any part of a unit's buildings that fell in another cell
    moved into its own cell."""
    geoms = cells.geoms.copy()
    unit_cell = np.full(len(shapes), -1)
    has = cells.unit >= 0
    unit_cell[cells.unit[has]] = np.flatnonzero(has)
    c_idx, u_idx = shapely.STRtree(shapes).query(geoms, predicate="intersects")
    foreign = cells.unit[c_idx] != u_idx
    c_idx, u_idx = c_idx[foreign], u_idx[foreign]
    if len(c_idx) == 0:
        return geoms
    overlap = shapely.area(shapely.intersection(geoms[c_idx], shapes[u_idx]))
    real = overlap > 1e-6
    c_idx, u_idx = c_idx[real], u_idx[real]
    for c in np.unique(c_idx):
        geoms[c] = shapely.difference(
            geoms[c], shapely.union_all(shapes[u_idx[c_idx == c]]), grid_size=GRID_SIZE
        )
    # snap-rounding can leave a cell as polygons and stray lines: overlays refuse those
    geoms = _polygonal(geoms)
    for u in np.unique(u_idx):
        c = unit_cell[u]
        geoms[c] = shapely.union(geoms[c], shapes[u], grid_size=GRID_SIZE)
    return geoms
