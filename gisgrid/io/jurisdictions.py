"""Jurisdictions checked on import: communities that overlap, or leave land of their street
in no community, are reported with the pairs and areas, and refused unless repaired.

The repair rule (``--repair``): land two communities both claim goes to the one that
shares the longer boundary with it, which keeps both compact (a sliver along a
drawn-twice line goes back to the side it belongs to); land of a street in no
community goes to the community of that street that shares the longest boundary with
it. Pieces under ``TOLERANCE_M2`` are digitising noise and are repaired without a word.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely

from gisgrid._errors import InputError, argument

__all__ = ["JurisdictionError", "Jurisdictions", "check_jurisdictions", "community_of"]

logger = logging.getLogger(__name__)

TOLERANCE_M2 = 1.0


class JurisdictionError(InputError):
    """Communities that overlap or leave gaps, with the pairs and areas."""


@dataclass
class Jurisdictions:
    """The communities after the check, and what was found (and repaired)."""

    communities: gpd.GeoDataFrame
    overlaps: list[tuple[str, str, float]] = field(default_factory=list)
    gaps: list[tuple[str, float]] = field(default_factory=list)  # street code, area

    def notes(self) -> list[str]:
        out = []
        if self.overlaps:
            out.append("repaired overlaps: " + _pairs(self.overlaps))
        if self.gaps:
            out.append("repaired gaps: " + ", ".join(f"{s} {a:,.0f} m²" for s, a in self.gaps))
        return out


def _pairs(overlaps: list[tuple[str, str, float]], most: int = 5) -> str:
    shown = [f"{a}×{b} {area:,.0f} m²" for a, b, area in overlaps[:most]]
    more = f" and {len(overlaps) - most} more" if len(overlaps) > most else ""
    return ", ".join(shown) + more


def _overlaps(geoms: np.ndarray) -> list[tuple[int, int, shapely.Geometry]]:
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    shared = shapely.intersection(geoms[a], geoms[b])
    area = shapely.area(shared)
    return [(int(i), int(j), s) for i, j, s, x in zip(a, b, shared, area, strict=True) if x > 0]


def _longest_border(piece: shapely.Geometry, geoms: np.ndarray, among: np.ndarray) -> int:
    """Which of ``among`` shares the longest boundary with ``piece``."""
    lengths = shapely.length(shapely.intersection(piece.boundary, shapely.boundary(geoms[among])))
    return int(among[int(np.argmax(lengths))])


def check_jurisdictions(
    communities: gpd.GeoDataFrame,
    streets: gpd.GeoDataFrame | None,
    *,
    repair: bool,
    source: str,
) -> Jurisdictions:
    """Check that communities do not overlap and cover their streets; repair on request.

    Parameters
    ----------
    communities, streets
        In the workspace's metric CRS; ``streets`` may be None (no gap check).
    repair
        Apply the module's rule instead of refusing.
    source
        The file's name, for the message.

    Raises
    ------
    JurisdictionError
        When something above ``TOLERANCE_M2`` is found and ``repair`` is off.
    """
    geoms = communities.geometry.values.copy()
    codes = communities["code"].astype(str).to_numpy()
    found = _overlaps(geoms)
    overlaps = [(codes[i], codes[j], s.area) for i, j, s in found if s.area > TOLERANCE_M2]
    gaps: list[tuple[str, float, shapely.Geometry, np.ndarray]] = []
    if streets is not None and len(streets):
        parent = communities["parent_code"].astype(str).to_numpy()
        for code, street in zip(streets["code"].astype(str), streets.geometry.values, strict=True):
            mine = np.flatnonzero(parent == code)
            if len(mine):
                hole = shapely.difference(street, shapely.union_all(geoms[mine]))
                if shapely.area(hole) > TOLERANCE_M2:
                    gaps.append((code, float(shapely.area(hole)), hole, mine))
    if (overlaps or gaps) and not repair:
        said = []
        if overlaps:
            said.append(f"communities overlap: {_pairs(overlaps)}")
        if gaps:
            said.append(
                "land of a street is in no community: "
                + ", ".join(f"street {s} {a:,.0f} m²" for s, a, _, _ in gaps)
            )
        raise JurisdictionError(
            f"{source}: {'; '.join(said)}; fix the boundaries, or give {argument('repair')} "
            "(overlaps go to the community sharing the longer boundary, gaps to the "
            "neighbour sharing the longest)"
        )
    for i, j, shared in found:
        winner = _longest_border(shared, geoms, np.array([i, j]))
        loser = j if winner == i else i
        geoms[loser] = shapely.difference(geoms[loser], shared)
    for street, _, hole, mine in gaps:
        for piece in shapely.get_parts(hole):
            if piece.area <= 0:
                continue
            k = _longest_border(piece, geoms, mine)
            if shapely.length(shapely.intersection(piece.boundary, geoms[k].boundary)) <= 0:
                raise JurisdictionError(
                    f"{source}: {piece.area:,.0f} m² of street {street} touch none of its "
                    "communities, so no rule can give them to one; fix the boundaries"
                )
            geoms[k] = shapely.union(geoms[k], piece)
    out = communities.copy()
    out["geometry"] = [_polygonal(g) for g in shapely.make_valid(geoms)]
    return Jurisdictions(out, overlaps, [(s, a) for s, a, _, _ in gaps])


def _polygonal(g: shapely.Geometry) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if len(parts) != 1 else parts[0]


def community_of(
    buildings: gpd.GeoDataFrame, communities: gpd.GeoDataFrame
) -> tuple[np.ndarray, list[str]]:
    """Each building's community: the one holding most of its footprint (None in none);
    and the ids of the buildings that cross a community line."""
    geoms = buildings.geometry.values
    b_idx, c_idx = shapely.STRtree(communities.geometry.values).query(geoms, predicate="intersects")
    area = shapely.area(shapely.intersection(geoms[b_idx], communities.geometry.values[c_idx]))
    order = np.lexsort((-area, b_idx))  # per building, the largest share first
    b_idx, c_idx, area = b_idx[order], c_idx[order], area[order]
    first = np.r_[True, b_idx[1:] != b_idx[:-1]] & (area > 0)
    code = np.full(len(buildings), None, dtype=object)
    code[b_idx[first]] = communities["code"].to_numpy()[c_idx[first]]
    shared = np.bincount(b_idx[area > 0], minlength=len(buildings)) > 1
    ids = buildings["building_id"].astype(str).to_numpy()[shared].tolist()
    return code, ids
