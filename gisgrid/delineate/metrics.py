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
    coverage = []
    for code, part in g.groupby("community_code"):
        union = shapely.union_all(part.geometry.values)
        coverage.append(shapely.area(shapely.intersection(union, comm[code])) / comm[code].area)
    # over the whole district, not within each community: grids of two communities that
    # overlap (communities drawn over each other) are overlap too
    overlap = float(shapely.area(geoms).sum() - shapely.area(shapely.union_all(geoms)))

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
    hh = grids.set_index("grid_code")["households"]
    geom = grids.set_index("grid_code").geometry
    count = 0
    for cid in split:
        mine = compounds[compounds["compound_id"] == cid]
        frag = mine.groupby("grid_code")["households"].sum()
        found = False
        for g_from, h in frag.items():
            pieces = shapely.union_all(mine[mine["grid_code"] == g_from].geometry.values)
            for g_to in frag.index:
                # the fragment must border the other grid, or moving it would break it apart
                if g_to == g_from or pieces.distance(geom[g_to]) > ADJACENT_M:
                    continue
                left, joined = hh[g_from] - h, hh[g_to] + h
                if (left == 0 or households.contains(left)) and households.contains(joined):
                    found = True
                    break
            if found:
                break
        count += found
    return count


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
    """Share of internal grid boundary length within 15 m of a road, river or wall."""
    boundary = shapely.union_all(shapely.boundary(grids.geometry.values), grid_size=0.01)
    outer = shapely.union_all(shapely.boundary(communities.geometry.values), grid_size=0.01)
    internal = shapely.difference(boundary, shapely.buffer(outer, 0.05))
    total = shapely.length(internal)
    if total <= 0:
        return 1.0
    near = shapely.union_all(shapely.buffer(lines, NATURAL_BOUNDARY_M, quad_segs=2))
    return float(shapely.length(shapely.intersection(internal, near)) / total)
