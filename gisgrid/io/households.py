"""Households and population per building: counted from census points, or estimated.

Defaults and their sources
--------------------------
``PERSONS_PER_HOUSEHOLD = 2.62``
    Average size of a family household in China's 7th national census (2020),
    National Bureau of Statistics communiqué No. 7.
``DWELLING_M2 = 95.7``
    Gross floor area of one dwelling: 36.52 m² of housing floor area per urban
    resident (2020 census, 城市家庭户人均住房建筑面积) × 2.62 persons.
``RESIDENTIAL_SHARE``
    Share of a building's floor area that is homes, by ``kind``: 1 for
    residential, 0.6 for mixed (shops below, flats above), 0 for schools,
    hospitals, enterprises, markets and public buildings. A planning rule of
    thumb, to be overridden with local figures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid.io.validation import rejected_rows

__all__ = [
    "DWELLING_M2",
    "PERSONS_PER_HOUSEHOLD",
    "RESIDENTIAL_SHARE",
    "CensusJoin",
    "estimate_households",
    "households_from_census",
]

logger = logging.getLogger(__name__)

PERSONS_PER_HOUSEHOLD = 2.62
DWELLING_M2 = 95.7
RESIDENTIAL_SHARE: dict[str, float] = {
    "residential": 1.0,
    "village": 1.0,
    "mixed": 0.6,
}
SNAP_DISTANCE_M = 30.0


def estimate_households(
    buildings: gpd.GeoDataFrame,
    *,
    dwelling_m2: float = DWELLING_M2,
    persons_per_household: float = PERSONS_PER_HOUSEHOLD,
    residential_share: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Estimate households and population from floor area.

    households = round(footprint area × floors × residential share ÷ dwelling size);
    population = round(households × persons per household).

    Parameters
    ----------
    buildings
        Buildings in a metric CRS, with ``kind`` and ``floors``.
    dwelling_m2
        Gross floor area of one dwelling, m².
    persons_per_household
        Mean household size.
    residential_share
        Share of floor area that is homes, by kind; kinds not listed count 0.

    Returns
    -------
    pandas.DataFrame
        ``households`` and ``population``, aligned on ``buildings``' index.

    Examples
    --------
    >>> import shapely, geopandas as gpd
    >>> b = gpd.GeoDataFrame({"kind": ["residential", "school"], "floors": [6, 4]},
    ...     geometry=[shapely.box(0, 0, 60, 12), shapely.box(0, 0, 60, 12)], crs=4547)
    >>> estimate_households(b).to_dict("list")
    {'households': [45, 0], 'population': [118, 0]}
    """
    if buildings.crs is None or not buildings.crs.is_projected:
        raise ValueError("estimate_households needs buildings in a metric (projected) CRS")
    share = buildings["kind"].map(residential_share or RESIDENTIAL_SHARE).fillna(0.0)
    floors = pd.to_numeric(buildings["floors"], errors="coerce").fillna(1).clip(lower=1)
    floor_area = buildings.geometry.area * floors * share
    households = np.round(floor_area / dwelling_m2).astype("int64")
    population = np.round(households * persons_per_household).astype("int64")
    return pd.DataFrame({"households": households, "population": population}, index=buildings.index)


@dataclass
class CensusJoin:
    """Census points joined to buildings.

    Attributes
    ----------
    counts
        ``households`` and ``population`` summed per building, aligned on the
        buildings' index (0 where no point fell).
    building_of_point
        For each usable point (by index), the positional index of its building.
    snapped
        How many points lay outside every building but within 30 m of one.
    rejected
        Points that hit no building, or lay near several (``rejected`` table rows).
    """

    counts: pd.DataFrame
    building_of_point: pd.Series
    snapped: int
    rejected: pd.DataFrame


def households_from_census(
    buildings: gpd.GeoDataFrame,
    points: gpd.GeoDataFrame,
    *,
    snap_distance: float = SNAP_DISTANCE_M,
    source: str = "census_points",
) -> CensusJoin:
    """Sum census points into the buildings that hold them.

    A point inside a building counts there. A point outside every building
    but within ``snap_distance`` of exactly one snaps to it. Any other point is
    rejected with its reason.

    Parameters
    ----------
    buildings
        Buildings (metric CRS).
    points
        Census points with ``households`` and ``population`` (same CRS).
    snap_distance
        Metres within which a stray point snaps to the only nearby building.
    source
        Name recorded in the ``rejected`` rows.

    Returns
    -------
    CensusJoin
    """
    tree = shapely.STRtree(buildings.geometry.values)
    pts = points.geometry.values
    p_idx, b_idx = tree.query(pts, predicate="within")
    owner = np.full(len(points), -1, dtype=np.int64)
    owner[p_idx[::-1]] = b_idx[::-1]  # a point in two overlapping buildings: the first
    outside = np.flatnonzero(owner < 0)
    reasons = pd.Series(pd.NA, index=points.index, dtype="object")
    snapped = 0
    if len(outside):
        near_p, near_b = tree.query(pts[outside], predicate="dwithin", distance=snap_distance)
        n_near = np.bincount(near_p, minlength=len(outside))
        one = n_near == 1
        first = np.full(len(outside), -1)
        first[near_p[::-1]] = near_b[::-1]
        owner[outside[one]] = first[one]
        snapped = int(one.sum())
        none_near, many_near = outside[n_near == 0], outside[n_near > 1]
        reasons.iloc[none_near] = f"no building: no building within {snap_distance:g} m"
        reasons.iloc[many_near] = [
            f"ambiguous building: {k} buildings within {snap_distance:g} m, none contains it"
            for k in n_near[n_near > 1]
        ]
    usable = owner >= 0
    bad = points[~usable]
    rejected = rejected_rows(
        bad, reasons, layer="census_points", source=source, id_field="point_id"
    )
    joined = pd.DataFrame(
        {
            "b": owner[usable],
            "households": pd.to_numeric(points["households"], errors="coerce")
            .fillna(0)
            .to_numpy()[usable],
            "population": pd.to_numeric(points["population"], errors="coerce")
            .fillna(0)
            .to_numpy()[usable],
        }
    )
    sums = joined.groupby("b")[["households", "population"]].sum()
    counts = sums.reindex(np.arange(len(buildings)), fill_value=0).astype("int64")
    counts.index = buildings.index
    if len(rejected):
        logger.info("%d census points hit no building", len(rejected))
    return CensusJoin(
        counts, pd.Series(owner[usable], index=points.index[usable]), snapped, rejected
    )
