"""Importing files: every format, and every kind of bad input (message + rejected row)."""

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyrosm
import pytest
import shapely
from typer.testing import CliRunner

from gisgrid import CRSError, EmptyLayerError, InputError
from gisgrid.cli import app
from gisgrid.io.ingest import import_layer
from gisgrid.io.workspace import Workspace

from .conftest import LOCAL, X0, Y0, local_frame, square


def rejected(ws, layer=None):
    table = pd.DataFrame(Workspace(ws).read("rejected"))
    return table if layer is None else table[table["layer"] == layer]


def write(frame, path):
    frame.to_file(path)
    return path


# --- formats -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".shp", ".parquet"])
def test_each_vector_format_imports(tmp_path, workspace_with_communities, buildings_frame, suffix):
    path = tmp_path / f"b{suffix}"
    if suffix == ".parquet":
        buildings_frame.to_parquet(path)
    else:
        buildings_frame.to_file(path)
    report = import_layer(workspace_with_communities, "buildings", path)
    assert report.imported == 4
    b = Workspace(workspace_with_communities).read("buildings")
    assert b.crs.to_epsg() == 4547
    assert sorted(b["building_id"]) == ["b1", "b2", "b3", "b4"]
    assert dict(zip(b["building_id"], b["community_code"], strict=True)) == {
        "b1": "430204001002",
        "b2": "430204001002",
        "b3": "430204001003",
        "b4": "430204001003",
    }


def test_csv_points_with_lon_lat_columns(tmp_path, workspace_with_communities):
    pts = local_frame(
        {"name": ["叫鸡岭党群服务中心"], "kind": ["service_site"]},
        [shapely.Point(X0 + 500, Y0 + 500)],
        crs=4326,
    )
    path = tmp_path / "sites.csv"
    pd.DataFrame(
        {"名称": pts["name"], "类型": pts["kind"], "经度": pts.geometry.x, "纬度": pts.geometry.y}
    ).to_csv(path, index=False)
    report = import_layer(
        workspace_with_communities,
        "resources",
        path,
        crs="wgs84",
        field_map={"名称": "name", "类型": "kind"},
    )
    assert report.imported == 1
    r = Workspace(workspace_with_communities).read("resources")
    assert r["name"].iloc[0] == "叫鸡岭党群服务中心"
    assert r.geometry.iloc[0].distance(shapely.Point(X0 + 500, Y0 + 500)) < 0.01


def test_osm_pbf_buildings_roads_and_barriers(tmp_path):
    pbf = pyrosm.get_data("test_pbf")
    ws = tmp_path / "osm.gpkg"
    b = import_layer(ws, "buildings", pbf)
    roads = import_layer(ws, "roads", pbf)
    bar = import_layer(ws, "barriers", pbf)
    stored = Workspace(ws).read("buildings")
    assert b.imported > 2000 and b.imported + sum(b.rejected.values()) == b.read
    assert stored["households_source"].eq("estimate").all()
    assert stored.crs.to_epsg() != 4547  # Helsinki: the zone is chosen from the data
    assert roads.imported > 100
    assert set(Workspace(ws).read("roads")["road_class"]) <= {
        "arterial",
        "secondary",
        "local",
        "path",
    }
    assert bar.imported >= 1


def test_declared_gcj02_input_is_moved_back_to_cgcs2000(
    tmp_path, workspace_with_communities, buildings_frame
):
    from gisgrid.crs.gcj02 import wgs84_to_gcj02

    def shift(xy):
        return np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1]))

    gcj = buildings_frame.set_geometry(shapely.transform(buildings_frame.geometry.values, shift))
    report = import_layer(
        workspace_with_communities, "buildings", write(gcj, tmp_path / "gcj.geojson"), crs="gcj02"
    )
    stored = Workspace(workspace_with_communities).read("buildings")
    truth = buildings_frame.to_crs(LOCAL)
    assert report.imported == 4
    assert any("GCJ02" in note for note in report.notes)
    for got, want in zip(stored.geometry, truth.geometry, strict=True):
        assert got.centroid.distance(want.centroid) < 0.5


def test_id_field_and_field_map(tmp_path, workspace_with_communities, buildings_frame):
    frame = buildings_frame.rename(columns={"building_id": "BLDG", "floors": "层数"})
    report = import_layer(
        workspace_with_communities,
        "buildings",
        write(frame, tmp_path / "b.geojson"),
        id_field="BLDG",
        field_map={"层数": "floors"},
    )
    stored = Workspace(workspace_with_communities).read("buildings")
    assert report.imported == 4
    assert stored.set_index("building_id")["floors"].to_dict() == {
        "b1": 6,
        "b2": 6,
        "b3": 18,
        "b4": 3,
    }
    with pytest.raises(InputError, match="has no field 'nope'"):
        import_layer(
            workspace_with_communities,
            "buildings",
            tmp_path / "b.geojson",
            field_map={"nope": "floors"},
        )


# --- bad input -------------------------------------------------------------------------


def test_missing_crs_asks_for_crs(tmp_path):
    path = tmp_path / "nocrs.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    csv = tmp_path / "points.csv"
    csv.write_text("point_id,lon,lat,households,population\np1,113.1,27.9,3,9\n")
    with pytest.raises(CRSError, match=r"does not say its coordinate system.*declare it with crs "):
        import_layer(tmp_path / "ws.gpkg", "census_points", csv)
    assert not (tmp_path / "ws.gpkg").exists()


def test_empty_layer_is_an_error(tmp_path, buildings_frame):
    path = write(buildings_frame.iloc[:0], tmp_path / "empty.gpkg")
    with pytest.raises(EmptyLayerError, match=r"empty\.gpkg has no rows"):
        import_layer(tmp_path / "ws.gpkg", "buildings", path)


def test_invalid_geometry_repaired_or_rejected(
    tmp_path, workspace_with_communities, buildings_frame
):
    x, y = X0 + 500, Y0 + 500
    bowtie = shapely.Polygon([(x, y), (x + 30, y + 30), (x + 30, y), (x, y + 30)])
    flat = shapely.Polygon([(x, y), (x + 30, y), (x + 60, y)])  # zero area: a line
    extra = local_frame(
        {"building_id": ["bow", "flat"], "kind": ["residential"] * 2, "floors": [3, 3]},
        [bowtie, flat],
    )
    frame = pd.concat([buildings_frame.to_crs(LOCAL), extra], ignore_index=True)
    report = import_layer(
        workspace_with_communities, "buildings", write(frame, tmp_path / "b.gpkg")
    )
    assert report.repaired == 1
    stored = Workspace(workspace_with_communities).read("buildings")
    assert "bow" in set(stored["building_id"]) and stored.geometry.is_valid.all()
    rej = rejected(workspace_with_communities, "buildings")
    row = rej[rej["feature_id"] == "flat"].iloc[0]
    assert row["reason"].startswith("invalid geometry, not repairable")
    assert row["row"] == 5 and row["source"] == "b.gpkg"
    assert json.loads(row["attributes"])["floors"] == 3


def test_empty_and_null_geometries_are_rejected(
    tmp_path, workspace_with_communities, buildings_frame
):
    frame = buildings_frame.copy()
    frame.loc[1, "geometry"] = None
    frame.loc[2, "geometry"] = shapely.Polygon()
    import_layer(workspace_with_communities, "buildings", write(frame, tmp_path / "b.gpkg"))
    rej = rejected(workspace_with_communities, "buildings")
    assert rej.set_index("feature_id")["reason"].to_dict() == {
        "b2": "empty geometry",
        "b3": "empty geometry",
    }


def test_wrong_geometry_type_is_rejected(tmp_path, workspace_with_communities):
    frame = local_frame(
        {"building_id": ["p"], "kind": ["residential"], "floors": [2]},
        [shapely.Point(X0 + 10, Y0 + 10)],
        crs=4326,
    )
    frame = pd.concat(
        [
            frame,
            local_frame(
                {"building_id": ["ok"], "kind": ["residential"], "floors": [2]},
                [square(50, 50, 20)],
                crs=4326,
            ),
        ]
    )
    import_layer(
        workspace_with_communities,
        "buildings",
        write(gpd.GeoDataFrame(frame, crs=4326), tmp_path / "b.geojson"),
    )
    rej = rejected(workspace_with_communities, "buildings")
    assert (
        rej.iloc[0]["reason"] == "wrong geometry type: buildings need Polygon or "
        "MultiPolygon, got Point"
    )


def test_duplicate_and_missing_ids_are_rejected(
    tmp_path, workspace_with_communities, buildings_frame
):
    frame = buildings_frame.copy()
    frame.loc[2, "building_id"] = "b1"
    frame.loc[3, "building_id"] = None
    report = import_layer(
        workspace_with_communities, "buildings", write(frame, tmp_path / "b.gpkg")
    )
    rej = rejected(workspace_with_communities, "buildings").sort_values("row")
    assert rej["reason"].tolist() == [
        "duplicate id: b1 (building_id) first seen at row 0",
        "missing building_id",
    ]
    assert report.imported == 2
    assert report.rejected == {"duplicate id": 1, "missing building_id": 1}


def test_negative_and_non_numeric_counts_are_rejected(
    tmp_path, workspace_with_communities, buildings_frame
):
    frame = buildings_frame.copy()
    frame["households"] = ["12", "-3", "abc", "2.5"]
    import_layer(
        workspace_with_communities, "buildings", write(frame, tmp_path / "b.gpkg"), max_rejected=1
    )
    reasons = rejected(workspace_with_communities, "buildings").set_index("feature_id")["reason"]
    assert reasons.to_dict() == {
        "b2": "households is negative: -3",
        "b3": "households is not a number: 'abc'",
        "b4": "households is not a whole number: 2.5",
    }
    stored = Workspace(workspace_with_communities).read("buildings")
    assert stored.set_index("building_id").loc["b1", "households"] == 12
    assert stored.set_index("building_id").loc["b1", "households_source"] == "input"


def test_buildings_outside_every_community_are_rejected(
    tmp_path, workspace_with_communities, buildings_frame
):
    outside = local_frame(
        {"building_id": ["far"], "kind": ["residential"], "floors": [5]},
        [square(5000, 5000, 20)],
        crs=4326,
    )
    frame = gpd.GeoDataFrame(pd.concat([buildings_frame, outside], ignore_index=True), crs=4326)
    report = import_layer(
        workspace_with_communities, "buildings", write(frame, tmp_path / "b.gpkg")
    )
    rej = rejected(workspace_with_communities, "buildings")
    assert rej["feature_id"].tolist() == ["far"]
    assert rej["reason"].iloc[0] == "outside every community: no community contains it"
    assert rej["wkt"].iloc[0].startswith("POLYGON")
    assert report.imported == 4


def test_communities_with_bad_codes_or_unknown_street(tmp_path, streets_file):
    ws = tmp_path / "ws.gpkg"
    import_layer(ws, "streets", streets_file)
    frame = local_frame(
        {
            "code": ["430204001002", "4302", "430204009001"],
            "name": ["a", "b", "c"],
            "parent_code": ["430204001000", "430204001000", "430204009000"],
        },
        [square(0, 0, 100), square(100, 0, 100), square(200, 0, 100)],
        crs=4326,
    )
    # the one good community leaves most of its street in none: repaired, not refused
    path = write(frame, tmp_path / "c.geojson")
    import_layer(ws, "communities", path, max_rejected=1, repair=True)
    reasons = rejected(ws, "communities").set_index("feature_id")["reason"].to_dict()
    assert reasons == {
        "4302": "bad code: '4302' is not a 12-digit 统计用区划代码",
        "430204009001": "unknown street: parent_code 430204009000 is not in streets",
    }


def test_census_points_join_snap_and_reject(tmp_path, workspace_with_communities, buildings_frame):
    import_layer(
        workspace_with_communities, "buildings", write(buildings_frame, tmp_path / "b.gpkg")
    )
    pts = local_frame(
        {
            "point_id": ["in1", "in2", "snap", "far", "neg"],
            "households": [10, 5, 2, 7, -1],
            "population": [30, 15, 6, 20, 1],
        },
        [
            shapely.Point(X0 + 110, Y0 + 110),
            shapely.Point(X0 + 120, Y0 + 120),
            shapely.Point(X0 + 300 + 20, Y0 + 100 - 20),  # 20 m below b2
            shapely.Point(X0 + 700, Y0 + 700),
            shapely.Point(X0 + 110, Y0 + 111),
        ],
        crs=4326,
    )
    report = import_layer(
        workspace_with_communities, "census_points", write(pts, tmp_path / "p.geojson")
    )
    b = Workspace(workspace_with_communities).read("buildings").set_index("building_id")
    assert b.loc["b1", "households"] == 15 and b.loc["b1", "population"] == 45
    assert b.loc["b2", "households"] == 2
    assert b.loc["b3", "households"] == 0
    assert (b["households_source"] == "census").all()
    rej = rejected(workspace_with_communities, "census_points").set_index("feature_id")
    assert rej.loc["far", "reason"] == "no building: no building within 30 m"
    assert rej.loc["neg", "reason"] == "households is negative: -1"
    assert any("snapped" in n for n in report.notes)


def test_ambiguous_census_point_is_rejected(tmp_path, workspace_with_communities):
    b = local_frame(
        {"building_id": ["l", "r"], "kind": ["residential"] * 2, "floors": [3, 3]},
        [square(100, 100, 10), square(120, 100, 10)],
        crs=4326,
    )
    import_layer(workspace_with_communities, "buildings", write(b, tmp_path / "b.gpkg"))
    p = local_frame(  # one point between the two buildings, one inside the left one
        {"point_id": ["mid", "in"], "households": [3, 2], "population": [9, 6]},
        [shapely.Point(X0 + 115, Y0 + 105), shapely.Point(X0 + 105, Y0 + 105)],
        crs=4326,
    )
    import_layer(workspace_with_communities, "census_points", write(p, tmp_path / "p.gpkg"))
    rej = rejected(workspace_with_communities, "census_points")
    assert rej["reason"].tolist() == [
        "ambiguous building: 2 buildings within 30 m, none contains it"
    ]


def test_reimport_replaces_the_layers_rejected_rows(
    tmp_path, workspace_with_communities, buildings_frame
):
    bad = buildings_frame.copy()
    bad.loc[0, "floors"] = -2
    import_layer(workspace_with_communities, "buildings", write(bad, tmp_path / "bad.gpkg"))
    assert len(rejected(workspace_with_communities, "buildings")) == 1
    import_layer(
        workspace_with_communities, "buildings", write(buildings_frame, tmp_path / "good.gpkg")
    )
    assert len(rejected(workspace_with_communities, "buildings")) == 0


def test_households_estimated_without_census(tmp_path, workspace_with_communities, buildings_frame):
    import_layer(
        workspace_with_communities, "buildings", write(buildings_frame, tmp_path / "b.gpkg")
    )
    b = Workspace(workspace_with_communities).read("buildings").set_index("building_id")
    # 40 m × 40 m × 6 floors ÷ 95.7 m² ≈ 100 households; × 2.62 ≈ 263 people
    assert b.loc["b1", "households"] == 100 and b.loc["b1", "population"] == 262
    assert (b["households_source"] == "estimate").all()


# --- the command line ---------------------------------------------------------------------


def test_cli_import_prints_a_summary(tmp_path, workspace_with_communities, buildings_frame):
    frame = buildings_frame.copy()
    frame.loc[3, "building_id"] = "b1"
    path = write(frame, tmp_path / "b.gpkg")
    result = CliRunner().invoke(
        app, ["import", str(workspace_with_communities), "buildings", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "rows read" in result.output and "rejected: duplicate id" in result.output
    assert "EPSG:4547" in result.output


def test_cli_bad_input_exits_2_with_the_fix(tmp_path):
    csv = tmp_path / "points.csv"
    csv.write_text("point_id,lon,lat,households,population\np1,113.1,27.9,3,9\n")
    result = CliRunner().invoke(
        app, ["import", str(tmp_path / "ws.gpkg"), "census_points", str(csv)]
    )
    assert result.exit_code == 2
    assert "error:" in result.output and "--crs" in result.output
    result = CliRunner().invoke(
        app, ["import", str(tmp_path / "ws.gpkg"), "parcels", str(csv), "--crs", "wgs84"]
    )
    assert result.exit_code == 2 and "unknown layer 'parcels'" in result.output
    result = CliRunner().invoke(
        app, ["import", str(tmp_path / "ws.gpkg"), "buildings", str(tmp_path / "missing.shp")]
    )
    assert result.exit_code == 2 and "does not exist" in result.output
