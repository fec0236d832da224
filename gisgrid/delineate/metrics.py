"""Quality metrics of a set of grids: the definitions of DESIGN §5, used everywhere.

Every figure gisgrid reports (the CLI report, ``runs``, the benchmarks) comes
from :func:`grid_metrics`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid.delineate.partition import Band

__all__ = ["METRIC_NAMES", "grid_metrics", "polsby_popper"]

NATURAL_BOUNDARY_M = 15.0
ADJACENT_M = 30.0  # a fragment this close to a grid borders it (about one cell)
METRIC_NAMES = (
    "grids",
    "basic_grids",
    "in_band_households",
    "in_band_population",
    "deviation_mean",
    "deviation_max",
    "contiguity",
    "coverage_min",
    "overlap_m2",
    "nesting",
    "building_integrity",
    "compound_splits",
    "compound_splits_avoidable",
    "polsby_popper_mean",
    "polsby_popper_p10",
    "natural_boundaries",
    "stability",
)


def polsby_popper(geoms: np.ndarray) -> np.ndarray:
    """Compactness 4πA/P² (1 for a circle).

    Examples
    --------
    >>> round(float(polsby_popper(np.array([shapely.box(0, 0, 1, 1)]))[0]), 4)
    0.7854
    """
    perimeter = shapely.length(geoms)
    return np.where(perimeter > 0, 4 * math.pi * shapely.area(geoms) / perimeter**2, 0.0)


def grid_metrics(
    grids: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    lines: np.ndarray,
    *,
    households: Band,
    population: Band,
    stability: float | None = None,
) -> dict[str, float | int | None]:
    """All DESIGN §5 metrics of a set of grids.

    Parameters
    ----------
    grids
        ``grid_code``, ``community_code``, ``grid_type`` (basic/dedicated),
        ``households``, ``population``, geometry.
    communities
        ``code`` and geometry of the communities the grids cover.
    buildings
        ``grid_code`` (the grid each building was put in), ``compound_id``,
        ``households``, geometry.
    lines
        Roads, rivers and walls: what counts as a natural boundary.
    households, population
        The bands.
    stability
        Share of households keeping their grid code after a re-run, when known.

    Returns
    -------
    dict
        Keyed by :data:`METRIC_NAMES`; shares are in [0, 1]. ``compound_splits``
        follows DESIGN §5 (grids touched beyond ``ceil(households / ceiling)``);
        ``compound_splits_avoidable`` counts the compounds among them that a
        single fragment move would make whole with both grids still in band.
    """
    g = grids.reset_index(drop=True)
    # the natural-boundary overlays are the longest part and GEOS releases the GIL:
    # they run on a second core while the rest are measured here
    with ThreadPoolExecutor(max_workers=1) as pool:
        natural = pool.submit(natural_boundary_share, g, communities, lines)
        found = _measured(g, communities, buildings, households=households, population=population)
        return {**found, "natural_boundaries": natural.result(), "stability": stability}


def _measured(
    g: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    *,
    households: Band,
    population: Band,
) -> dict[str, float | int]:
    """The metrics of :func:`grid_metrics` but the natural boundaries and stability."""
    geoms = g.geometry.values
    basic = (g["grid_type"] == "basic").to_numpy()
    hh = g["households"].to_numpy(float)
    pop = g["population"].to_numpy(float)
    dev = np.abs(hh[basic] - households.target) / households.target

    comm = communities.set_index("code").geometry
    own = gpd.GeoSeries(comm.reindex(g["community_code"]).values, crs=g.crs)
    inside = shapely.area(shapely.intersection(geoms, own.values)) / shapely.area(geoms)
    coverage, unions = [], []
    for code, rows in g.groupby("community_code").indices.items():
        unions.append(shapely.union_all(geoms[rows]))
        coverage.append(
            shapely.area(shapely.intersection(unions[-1], comm[code])) / comm[code].area
        )
    # over the whole district, not within each community: grids of two communities that
    # overlap (communities drawn over each other) are overlap too
    overlap = float(shapely.area(geoms).sum() - shapely.area(shapely.union_all(unions)))

    tree = shapely.STRtree(geoms)
    contiguous = np.array(
        [_contiguous(geom, geoms, i, tree, own.values[i]) for i, geom in enumerate(geoms)]
    )

    b = buildings[buildings["grid_code"].notna()]
    grid_geom = g.set_index("grid_code").geometry
    assigned = np.asarray(grid_geom.reindex(b["grid_code"]).values)
    shapes = np.asarray(b.geometry.values)
    outside = np.zeros(len(b))
    cut = ~shapely.covers(assigned, shapes)  # most buildings lie inside their grid: no overlay
    outside[cut] = shapely.area(shapely.difference(shapes[cut], assigned[cut], grid_size=0.001))
    whole = int((outside / shapely.area(shapes) < 0.01).sum())
    # a building in no grid fails; no buildings at all is trivially whole
    integrity = whole / len(buildings) if len(buildings) else 1.0

    compounds = b[b["compound_id"].fillna("") != ""]
    per = compounds.groupby("compound_id").agg(
        touched=("grid_code", "nunique"), households=("households", "sum")
    )
    needed = np.maximum(1, np.ceil(per["households"] / households.high))
    splits = int(np.maximum(0, per["touched"] - needed).sum())
    avoidable = _avoidable_splits(compounds, per.index[per["touched"] > needed], g, households)

    pp = polsby_popper(geoms)
    return {
        "grids": len(g),
        "basic_grids": int(basic.sum()),
        "in_band_households": float(np.mean(households.contains(hh[basic])))
        if basic.any()
        else 1.0,
        "in_band_population": float(np.mean(population.contains(pop[basic])))
        if basic.any()
        else 1.0,
        "deviation_mean": float(dev.mean()) if len(dev) else 0.0,
        "deviation_max": float(dev.max()) if len(dev) else 0.0,
        "contiguity": float(contiguous.mean()) if len(g) else 1.0,
        "coverage_min": float(min(coverage)) if coverage else 1.0,
        "overlap_m2": overlap,
        "nesting": float(np.mean(inside >= 0.9999)) if len(g) else 1.0,
        "building_integrity": integrity,
        "compound_splits": splits,
        "compound_splits_avoidable": avoidable,
        "polsby_popper_mean": float(pp.mean()) if len(pp) else 0.0,
        "polsby_popper_p10": float(np.quantile(pp, 0.1)) if len(pp) else 0.0,
    }


def _avoidable_splits(
    compounds: pd.DataFrame, split: pd.Index, grids: gpd.GeoDataFrame, households: Band
) -> int:
    """Splits that one fragment move would undo with both grids staying in band.

    A compound's fragment (its buildings in one grid) could join another grid that
    holds the same compound, when the fragment lies within ``ADJACENT_M`` of it; the
    split is avoidable when that leaves both grids in the band. Splits that no such
    move removes are forced by the band or by contiguity.
    """
    hh = dict(zip(grids["grid_code"], grids["households"], strict=True))
    geom = dict(zip(grids["grid_code"], grids.geometry.values, strict=True))
    rows = compounds.groupby("compound_id").indices
    grid_of = compounds["grid_code"].to_numpy()
    hh_of = compounds["households"].to_numpy(float)
    shapes = compounds.geometry.values
    count = 0
    for cid in split:
        at = rows[cid]
        codes, frag = np.unique(grid_of[at], return_inverse=True)
        frag_hh = np.bincount(frag, weights=hh_of[at])
        count += any(
            _joins(
                shapes[at[frag == a]],
                geom[g_to],
                hh[g_from] - frag_hh[a],
                hh[g_to] + frag_hh[a],
                households,
            )
            for a, g_from in enumerate(codes)
            for g_to in codes
            if g_to != g_from
        )
    return count


def _joins(
    pieces: np.ndarray, grid: shapely.Geometry, left: float, joined: float, households: Band
) -> bool:
    """Whether a fragment can move to a grid: it borders the grid (or moving it would
    break it apart), and both grids stay in the band (or the one it leaves empties)."""
    if not ((left == 0 or households.contains(left)) and households.contains(joined)):
        return False
    return bool(shapely.distance(pieces, grid).min() <= ADJACENT_M)


def _contiguous(
    geom: shapely.Geometry,
    geoms: np.ndarray,
    i: int,
    tree: shapely.STRtree,
    community: shapely.Geometry | None,
) -> bool:
    """One Polygon whose holes, if any, are filled by other grids or lie outside its
    community (the community's own enclaves: a lake, another jurisdiction)."""
    if geom.geom_type != "Polygon":
        return False
    if not geom.interiors:
        return True
    holes = shapely.union_all([shapely.Polygon(r) for r in geom.interiors])
    near = tree.query(holes, predicate="intersects")
    others = geoms[near[near != i]]
    filled = shapely.area(shapely.intersection(holes, shapely.union_all(others)))
    if community is not None and not shapely.is_missing(community):
        filled += shapely.area(shapely.difference(holes, community))
    return bool(filled >= 0.999 * holes.area)


def natural_boundary_share(
    grids: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, lines: np.ndarray
) -> float:
    """Share of internal grid boundary length within 15 m of a road, river or wall.

    The grids' boundaries, noded, are pieces from junction to junction; a piece that
    lies along a community boundary (within 5 cm at its quarter, half and three-quarter
    points) is not internal. Measured one community at a time: a boundary inside a
    community lies between that community's own grids.
    """
    outer = shapely.boundary(communities.geometry.values)
    outer_tree, line_tree = shapely.STRtree(outer), shapely.STRtree(lines)
    total = near = 0.0
    codes = grids["community_code"].astype(str).to_numpy()
    geoms = grids.geometry.values
    for code in np.unique(codes):
        pieces = shapely.get_parts(
            shapely.union_all(shapely.boundary(geoms[codes == code]), grid_size=0.01)
        )
        edge = shapely.buffer(outer[np.unique(outer_tree.query(pieces)[1])], 0.05, quad_segs=1)
        edge = shapely.union_all(edge)
        shapely.prepare(edge)
        on_edge = np.ones(len(pieces), bool)
        for at in (0.25, 0.5, 0.75):
            point = shapely.line_interpolate_point(pieces, at, normalized=True)
            on_edge &= shapely.intersects(edge, point)
        internal = pieces[~on_edge]
        total += float(shapely.length(internal).sum())
        if not len(internal):
            continue
        # the lines within 15 m of the community's internal boundary, clipped to where
        # their buffer can reach it
        x0, y0, x1, y1 = shapely.total_bounds(internal)
        reach = NATURAL_BOUNDARY_M + 1.0
        rect = (x0 - reach, y0 - reach, x1 + reach, y1 + reach)
        close = shapely.clip_by_rect(lines[line_tree.query(shapely.box(*rect))], *rect)
        zone = shapely.union_all(shapely.buffer(close, NATURAL_BOUNDARY_M, quad_segs=2))
        near += shapely.length(shapely.intersection(shapely.multilinestrings(internal), zone))
    return float(near / total) if total > 0 else 1.0
