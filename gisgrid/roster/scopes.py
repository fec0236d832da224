"""What a role is filled for: grids, communities or buildings, and where people are.

A scope's location is its households: each building weighs its share of the
scope's households (buildings weigh the same where a scope has none, and a
scope without buildings is represented by the building nearest to it).
:func:`locate` places resources by their points, not by stored codes, which
may predate a re-division.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse
import shapely

__all__ = ["Scopes", "locate", "scopes_of"]


@dataclass
class Scopes:
    """The grids, communities or buildings a role is filled for.

    Attributes
    ----------
    frame
        One row per scope: ``id``, ``grid_code``, ``community_code``,
        ``street_code``, ``building_id``, ``households``.
    weights
        Sparse ``(buildings, scopes)`` matrix of each building's share of its
        scope's households; a scope without buildings is represented by the
        building nearest to it.
    """

    kind: str
    frame: pd.DataFrame
    weights: scipy.sparse.csr_array


def scopes_of(
    kind: str, buildings: pd.DataFrame, grids: pd.DataFrame, communities: pd.DataFrame
) -> Scopes:
    """The scopes of one kind (``grid``, ``community`` or ``building``) and their weights."""
    if kind == "grid":
        frame = pd.DataFrame(
            {
                "id": grids["grid_code"].to_numpy(str),
                "grid_code": grids["grid_code"].to_numpy(str),
                "community_code": grids["community_code"].to_numpy(str),
                "building_id": "",
            }
        )
        key = buildings["grid_code"].to_numpy(str)
    elif kind == "community":
        frame = pd.DataFrame(
            {
                "id": communities["code"].to_numpy(str),
                "grid_code": "",
                "community_code": communities["code"].to_numpy(str),
                "building_id": "",
            }
        )
        key = buildings["community_code"].to_numpy(str)
    else:
        homes = buildings[buildings["households"] > 0]
        frame = pd.DataFrame(
            {
                "id": homes["building_id"].to_numpy(str),
                "grid_code": homes["grid_code"].to_numpy(str),
                "community_code": homes["community_code"].to_numpy(str),
                "building_id": homes["building_id"].to_numpy(str),
            }
        )
        key = buildings["building_id"].to_numpy(str)
    frame["street_code"] = frame["community_code"].str[:9]
    col = pd.Index(frame["id"]).get_indexer(key)
    rows = np.flatnonzero(col >= 0)
    h = buildings["households"].to_numpy(float)[rows]
    per = np.bincount(col[rows], weights=h, minlength=len(frame))
    n = np.bincount(col[rows], minlength=len(frame))
    w = np.where(
        per[col[rows]] > 0, h / np.maximum(per[col[rows]], 1e-9), 1.0 / np.maximum(n[col[rows]], 1)
    )
    cols = col[rows]
    empty = np.flatnonzero(n == 0)
    if len(empty) and kind != "building":  # land without buildings: its nearest building stands in
        areas = grids if kind == "grid" else communities
        where = areas.geometry.to_numpy()[empty]
        nearest = buildings.sindex.nearest(shapely.point_on_surface(where), return_all=False)[1]
        rows, cols, w = (
            np.concatenate([rows, nearest]),
            np.concatenate([cols, empty]),
            np.concatenate([w, np.ones(len(empty))]),
        )
    weights = scipy.sparse.csr_array((w, (rows, cols)), shape=(len(buildings), len(frame)))
    frame["households"] = per.round().astype(int)
    return Scopes(kind, frame, weights)


def locate(
    resources: gpd.GeoDataFrame,
    *,
    communities: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
) -> gpd.GeoDataFrame:
    """Each resource's community, street, grid and building, by where it lies.

    The stored ``community_code`` of a resource may predate a re-division; its
    point decides.
    """
    out = resources.copy()
    pts = out.geometry.values
    for layer, column, target in (
        (communities, "code", "at_community"),
        (grids, "grid_code", "at_grid"),
        (buildings, "building_id", "at_building"),
    ):
        idx = layer.sindex.query(pts, predicate="within")
        value = np.full(len(out), "", dtype=object)
        value[idx[0]] = layer[column].to_numpy(str)[idx[1]]
        out[target] = value
    out["at_street"] = out["at_community"].str[:9]
    return out
