"""Which grid covers a point: one, or millions at once.

:class:`GridLocator` answers in lon/lat. A regular index of cells over the
grids (about 40 m) knows, for each cell lying wholly inside one grid, that grid;
points falling in such cells are answered by two array lookups. Cells that a grid
boundary crosses are cut again into 4 × 4 sub-cells (about 10 m), classified the
same way; only points in sub-cells that a boundary crosses are tested exactly
against the few grids there (GEOS point-in-polygon through an STR tree). Points
outside every grid get an empty code and a reason, never an error.

Input may be in any CRS :func:`gisgrid.crs.parse_crs` reads: WGS84, GCJ-02
(Amap, Tencent), BD-09 (Baidu), CGCS2000 or an EPSG code.

Examples
--------
>>> import geopandas as gpd, shapely
>>> grids = gpd.GeoDataFrame(
...     {"grid_code": ["430204001001001", "430204001001002"]},
...     geometry=shapely.box([113.10, 113.11], 27.9, [113.11, 113.12], 27.91),
...     crs=4326,
... )
>>> loc = GridLocator(grids)
>>> loc.codes([113.105, 113.115, 113.2], [27.905, 27.905, 27.905]).tolist()
['430204001001001', '430204001001002', '']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import shapely

from gisgrid._errors import InputError
from gisgrid.crs.names import InputCRS, to_wgs84

__all__ = ["GridLocator"]

_INSIDE_NONE = -1
_MIXED = -2
_SLICE = 4096  # index cells per GEOS call
_SUB = 4  # a boundary cell is cut into _SUB × _SUB sub-cells


class GridLocator:
    """Point-in-grid lookup over a grids layer.

    Parameters
    ----------
    grids
        Grid polygons with ``grid_code`` (any CRS; used in lon/lat).
    cell_m
        Index cell size, metres.
    """

    def __init__(self, grids: gpd.GeoDataFrame, *, cell_m: float = 40.0) -> None:
        if grids.empty:
            raise InputError("there are no grids to look up; run `gisgrid delineate` first")
        g = grids.to_crs(4326) if grids.crs is not None and grids.crs.to_epsg() != 4326 else grids
        self.grid_codes = g["grid_code"].astype(str).to_numpy()
        self.geoms = np.asarray(g.geometry.values)
        shapely.prepare(self.geoms)
        self.tree = shapely.STRtree(self.geoms)
        x0, y0, x1, y1 = shapely.total_bounds(self.geoms)
        lat = math.radians((y0 + y1) / 2)
        self.dy = cell_m / 111_320.0
        self.dx = cell_m / (111_320.0 * math.cos(lat))
        self.x0, self.y0 = x0, y0
        self.nx = max(1, math.ceil((x1 - x0) / self.dx))
        self.ny = max(1, math.ceil((y1 - y0) / self.dy))
        self.cells = self._index()

    def _index(self) -> np.ndarray:
        """Each cell's grid (by position) when it lies wholly in one, else -1 or -2; and
        the same for the sub-cells of every -2 cell (``self.sub``, rows by ``self.slot``)."""
        ix, iy = np.meshgrid(np.arange(self.nx), np.arange(self.ny))
        cells = self._classify(
            self.x0 + ix.ravel() * self.dx, self.y0 + iy.ravel() * self.dy, self.dx, self.dy
        )
        mixed = np.flatnonzero(cells == _MIXED)
        self.slot = np.full(len(cells), -1, dtype=np.int32)
        self.slot[mixed] = np.arange(len(mixed))
        si, sj = np.meshgrid(np.arange(_SUB), np.arange(_SUB))  # row-major within a cell
        sdx, sdy = self.dx / _SUB, self.dy / _SUB
        x = (self.x0 + (mixed % self.nx) * self.dx)[:, None] + si.ravel()[None, :] * sdx
        y = (self.y0 + (mixed // self.nx) * self.dy)[:, None] + sj.ravel()[None, :] * sdy
        self.sub = self._classify(x.ravel(), y.ravel(), sdx, sdy)
        return cells

    def _classify(self, x: np.ndarray, y: np.ndarray, dx: float, dy: float) -> np.ndarray:
        """For boxes of dx × dy from (x, y): the grid holding each whole, else -1 or -2."""
        out = np.full(len(x), _INSIDE_NONE, dtype=np.int32)
        # in slices: each GEOS call holds the GIL, and a server building a new index beside
        # its requests must give it back often (the demo: 233 ms → ~10 ms)
        for k in range(0, len(x), _SLICE):
            boxes = shapely.box(x[k : k + _SLICE], y[k : k + _SLICE],
                                x[k : k + _SLICE] + dx, y[k : k + _SLICE] + dy)  # fmt: skip
            cells = out[k : k + _SLICE]
            # the tree gives envelope candidates; the predicates run on the prepared grids
            # (5.7× faster on the demo than predicate queries of the tree, same cells)
            b, g = self.tree.query(boxes)
            hit = shapely.intersects(self.geoms[g], boxes[b])
            b, g = b[hit], g[hit]
            cells[np.unique(b)] = _MIXED
            one = np.bincount(b, minlength=len(boxes))[b] == 1
            whole = shapely.contains(self.geoms[g[one]], boxes[b[one]])
            cells[b[one][whole]] = g[one][whole]
        return out

    def locate(
        self, lon: Sequence[float], lat: Sequence[float], *, crs: InputCRS | str = "wgs84"
    ) -> np.ndarray:
        """Position (row of ``grids``) of the grid covering each point; -1 outside every grid.

        A point on a boundary between two grids goes to the first of them.
        """
        x, y = to_wgs84(np.asarray(lon, float), np.asarray(lat, float), crs)
        out = np.full(len(x), -1, dtype=np.int64)
        finite = np.isfinite(x) & np.isfinite(y)  # rows without numbers are simply outside
        fi = np.clip(np.where(finite, (x - self.x0) / self.dx, -1), -1, 2**31)
        fj = np.clip(np.where(finite, (y - self.y0) / self.dy, -1), -1, 2**31)
        i, j = np.floor(fi).astype(np.int64), np.floor(fj).astype(np.int64)
        inside = (i >= 0) & (i < self.nx) & (j >= 0) & (j < self.ny) & finite
        flat = j * self.nx + i  # the cell, where inside
        cell = np.full(len(x), _INSIDE_NONE, dtype=np.int32)
        cell[inside] = self.cells[flat[inside]]
        edge = np.flatnonzero(cell == _MIXED)  # in a cell a boundary crosses: its sub-cell
        if len(edge):
            si = np.minimum(((fi[edge] - i[edge]) * _SUB).astype(np.int64), _SUB - 1)
            sj = np.minimum(((fj[edge] - j[edge]) * _SUB).astype(np.int64), _SUB - 1)
            row = self.slot[flat[edge]].astype(np.int64)
            cell[edge] = self.sub[row * _SUB * _SUB + sj * _SUB + si]
        out[cell >= 0] = cell[cell >= 0]
        mixed = np.flatnonzero(cell == _MIXED)
        if len(mixed):
            pts = shapely.points(x[mixed], y[mixed])
            hit = self.tree.query(pts, predicate="intersects")
            first = np.unique(hit[0], return_index=True)[1]
            out[mixed[hit[0][first]]] = hit[1][first]
        return out

    def codes(
        self, lon: Sequence[float], lat: Sequence[float], *, crs: InputCRS | str = "wgs84"
    ) -> np.ndarray:
        """Grid code covering each point; empty text outside every grid."""
        pos = self.locate(lon, lat, crs=crs)
        return np.where(pos >= 0, self.grid_codes[np.maximum(pos, 0)], "")
