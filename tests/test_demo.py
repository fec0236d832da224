"""The demo district: real codes, realistic sizes, exact tiling, determinism."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from gisgrid.cli import app
from gisgrid.demo import make_district
from gisgrid.io.datasets import shifeng_codes
from gisgrid.io.workspace import Workspace


@pytest.fixture(scope="module")
def small():
    return make_district(scale=0.02, seed=7)


def test_same_seed_same_district_other_seed_other_district(small):
    again = make_district(scale=0.02, seed=7)
    for name, layer in small.items():
        pd.testing.assert_frame_equal(
            pd.DataFrame(layer.drop(columns="geometry")),
            pd.DataFrame(again[name].drop(columns="geometry")),
        )
        assert layer.geometry.geom_equals_exact(again[name].geometry, 1e-9).all(), name
    other = make_district(scale=0.02, seed=8)
    assert (
        not other["buildings"]
        .geometry.geom_equals_exact(
            small["buildings"].geometry.reindex(other["buildings"].index), 1e-3
        )
        .all()
    )


def test_small_scale_is_a_single_community(small):
    assert len(small["communities"]) == 1 and len(small["streets"]) == 1
    assert 1500 < small["census_points"]["households"].sum() < 3200


def test_full_demo_matches_the_published_district(demo_full):
    ws = Workspace(demo_full.workspace)
    communities = ws.read("communities")
    streets = ws.read("streets")
    buildings = ws.read("buildings")
    codes = shifeng_codes()
    real = codes[codes["level"] == "village"].set_index("code")["name"]
    # the real 12-digit codes and names of the 2016 code table
    assert sorted(communities["code"]) == sorted(real.index)
    assert communities.set_index("code")["name"].to_dict() == real.to_dict()
    assert sorted(streets["code"]) == sorted(codes.loc[codes["level"] == "town", "code"])
    assert communities["parent_code"].isin(streets["code"]).all()
    # 321 grids × 400 households and 385,000 people, within 5 %
    assert abs(buildings["households"].sum() - 128_000) <= 0.05 * 128_000
    assert abs(buildings["population"].sum() - 385_000) <= 0.05 * 385_000
    assert demo_full.households == buildings["households"].sum()
    # several oversized communities for re-division to work on
    per = buildings.groupby("community_code")["households"].sum()
    assert ((per >= 15_000) & (per <= 25_000)).sum() >= 3
    assert (buildings["households_source"] == "census").all()
    assert buildings["community_code"].isin(communities["code"]).all()


def test_communities_tile_the_district_and_nest_in_streets(demo_full):
    ws = Workspace(demo_full.workspace)
    communities = ws.read("communities")
    streets = ws.read("streets")
    union = shapely.union_all(communities.geometry.values)
    overlap = communities.geometry.area.sum() - union.area
    assert overlap < 1.0  # m²
    assert abs(union.area - shapely.union_all(streets.geometry.values).area) < 1.0
    for street in streets.itertuples():
        mine = communities[communities["parent_code"] == street.code]
        assert abs(shapely.union_all(mine.geometry.values).area - street.geometry.area) < 1.0


def test_buildings_sit_inside_their_community_and_never_overlap(demo_full):
    ws = Workspace(demo_full.workspace)
    buildings = ws.read("buildings")
    communities = ws.read("communities").set_index("code")
    owner = gpd.GeoSeries(
        communities.geometry.reindex(buildings["community_code"]).values, crs=buildings.crs
    )
    inside = buildings.geometry.intersection(owner, align=False).area / buildings.area
    assert (inside > 0.999).all()
    tree = shapely.STRtree(buildings.geometry.values)
    a, b = tree.query(buildings.geometry.values, predicate="intersects")
    assert (a == b).all()


def test_layers_look_like_a_chinese_district(demo_full):
    ws = Workspace(demo_full.workspace)
    b = ws.read("buildings")
    assert {"residential", "school", "hospital", "enterprise", "market"} <= set(b["kind"])
    towers = b[b["floors"] >= 18]
    assert towers["floors"].max() <= 33 and len(towers) > 100
    assert (b["floors"] == 6).sum() > 100  # walk-ups
    assert b["address"].str.match(r"^株洲市石峰区.+街道.+\d+号").all()
    compound = b["address"].str.contains(r"\d+号.+\d+栋$")  # 路 + 号 + 小区 + 栋
    village = b["address"].str.contains(r"\d+号$")  # urban-village houses: 路 + 号
    assert (compound | village).all() and compound.sum() > 1000
    points = ws.read("census_points")
    assert points["address"].str.endswith("单元").all()
    roads = ws.read("roads")
    assert set(roads["road_class"]) == {"arterial", "secondary", "local"}
    assert (roads.geom_type == "LineString").all()  # clipping leaves no stray points
    assert roads["road_id"].is_unique
    assert len(ws.read("water")) and set(ws.read("barriers")["kind"]) == {"river", "wall"}
    r = ws.read("resources")
    assert {"grid_worker", "party_org", "police", "service_site"} <= set(r["kind"])
    workers = r[r["kind"] == "grid_worker"]
    assert len(workers) >= 321 and workers["personal_phone"].str.match(r"^1\d{10}$").all()
    rejected = pd.DataFrame(ws.read("rejected"))
    assert len(rejected) == demo_full.rejected and (rejected["layer"] == "census_points").all()


def test_demo_layers_validate_cleanly_on_reimport(tmp_path, demo_full):
    """Every demo layer round-trips through `gisgrid import` with nothing rejected."""
    from gisgrid.io.ingest import import_layer

    src = Workspace(demo_full.workspace)
    ws = tmp_path / "re.gpkg"
    for layer in ("streets", "communities", "roads", "resources"):
        path = tmp_path / f"{layer}.geojson"
        src.read(layer).to_file(path)
        report = import_layer(ws, layer, path)
        assert report.rejected == {} and report.imported == len(src.read(layer)), layer


def test_cli_demo_small(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--scale", "0.01"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo.gpkg").is_file() and (tmp_path / "demo.html").is_file()
    assert "1 communities" in result.output
    assert np.isclose(
        gpd.read_file(tmp_path / "demo.gpkg", layer="communities").area.sum(),
        gpd.read_file(tmp_path / "demo.gpkg", layer="streets").area.sum(),
    )


def test_demo_redivides_oversized_communities_and_maps_before_after(tmp_path):
    from gisgrid.demo.pipeline import run_demo

    result = run_demo(tmp_path, scale=0.1, seed=0, redivide_over=3000, redivide_to=2500)
    assert result.redivided
    ws = Workspace(result.workspace)
    comms = ws.read("communities")
    history = ws.read("community_history")
    assert sorted(history["code"]) == sorted(result.redivided)
    assert set(result.redivided) <= set(comms["code"])  # the largest part keeps the code
    b = ws.read("buildings")
    per = b.groupby("community_code")["households"].sum()
    successors = {c for row in history["replaced_by"] for c in row.split(",")}
    assert (per[sorted(successors)] <= 2500).all()
    assert (per <= 3000).all()  # nothing is left above the threshold
    assert b["grid_code"].str[:12].eq(b["community_code"]).all()
    page = result.map.read_text(encoding="utf-8")
    assert "before re-division" in page


def test_demo_at_a_fifth_of_the_district_builds_its_map(tmp_path):
    """At --scale 0.2 the water layer rounded for the map made GEOS fail (TopologyException
    in the map step)."""
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--scale", "0.2"])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "demo.html").read_text("utf-8")
    assert "水系" in html or "water" in html


def test_community_codes_stay_unique_at_every_scale_the_cli_allows():
    """At scale 50 synthetic serials ran into the real villages' (长石村委会 430204004205
    and a synthetic 先锋529社区 shared a code; the grids of one were drawn from the
    buildings of both, and delineation crashed)."""
    from gisgrid.demo.district import _BASE_COMMUNITIES, _codes

    for scale in (10, 50, 100):
        codes = _codes(round(_BASE_COMMUNITIES * scale), np.random.default_rng(0))
        villages = codes[codes["level"] == "village"]
        assert not codes["code"].duplicated().any(), scale
        assert villages["code"].str.fullmatch(r"\d{12}").all()
        assert (villages["code"].str[:9] == villages["parent_code"].str[:9]).all()
