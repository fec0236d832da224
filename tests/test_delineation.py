"""The delineation engine: every rule, on small towns built for the purpose."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gisgrid import InputError
from gisgrid.cli import app
from gisgrid.delineate.codes import serial_order
from gisgrid.delineate.community import Params, _components
from gisgrid.delineate.graph import CellGraph
from gisgrid.delineate.metrics import grid_metrics
from gisgrid.delineate.partition import Band
from gisgrid.delineate.run import delineate
from gisgrid.io.workspace import Workspace

from .conftest import LOCAL, X0, Y0

COMMUNITY = "430204001002"
BUILDING_COLUMNS = [
    "building_id",
    "community_code",
    "compound_id",
    "kind",
    "floors",
    "entrances",
    "households",
    "population",
    "geometry",
]
STREET = "430204001000"


def make_town(
    path, buildings, *, size=(600.0, 600.0), roads_every=200.0, barriers=(), community=COMMUNITY
):
    """A workspace: one square community cut by a road grid, with the given buildings.

    ``buildings`` rows: (x, y, w, h, households[, kind[, compound_id[, entrances]]]),
    in metres from the community's south-west corner.
    """
    w, h = size
    area = shapely.box(X0, Y0, X0 + w, Y0 + h)
    lines = [
        shapely.LineString([(X0 + x, Y0), (X0 + x, Y0 + h)])
        for x in np.arange(roads_every, w, roads_every)
    ]
    lines += [
        shapely.LineString([(X0, Y0 + y), (X0 + w, Y0 + y)])
        for y in np.arange(roads_every, h, roads_every)
    ]
    rows = []
    for i, b in enumerate(buildings):
        defaults = ("residential", "", 1)
        x, y, bw, bh, hh, kind, compound, entrances = (*b, *defaults[len(b) - 5 :])
        rows.append(
            {
                "building_id": f"b{i:04d}",
                "community_code": community,
                "compound_id": compound,
                "kind": kind,
                "floors": 6,
                "entrances": entrances,
                "households": hh,
                "population": 3 * hh,
                "geometry": shapely.box(X0 + x, Y0 + y, X0 + x + bw, Y0 + y + bh),
            }
        )
    layers = {
        "streets": gpd.GeoDataFrame(
            {"code": [STREET], "name": ["田心街道"], "parent_code": ["430204000000"]},
            geometry=[area],
            crs=LOCAL,
        ),
        "communities": gpd.GeoDataFrame(
            {"code": [community], "name": ["叫鸡岭社区"], "parent_code": [STREET]},
            geometry=[area],
            crs=LOCAL,
        ),
        "buildings": gpd.GeoDataFrame(
            pd.DataFrame(rows, columns=BUILDING_COLUMNS), geometry="geometry", crs=LOCAL
        ),
        "roads": gpd.GeoDataFrame(
            {"road_id": [f"r{i}" for i in range(len(lines))], "road_class": "local", "name": "巷"},
            geometry=lines,
            crs=LOCAL,
        ),
    }
    if barriers:
        layers["barriers"] = gpd.GeoDataFrame(
            {"barrier_id": [f"w{i}" for i in range(len(barriers))], "kind": "river", "name": "河"},
            geometry=list(barriers),
            crs=LOCAL,
        )
    ws = Workspace(path)
    ws.write(layers, fresh=True, meta={"crs": LOCAL.to_string()})
    return ws


def nine_blocks(*, hh: int, step=(80, 80)):
    """Four buildings of ``hh`` households in each of the 3 × 3 blocks of a 600 m town."""
    return [
        b
        for bx in range(3)
        for by in range(3)
        for b in lattice(2, 2, hh=hh, x0=bx * 200 + 40, y0=by * 200 + 40, step=step)
    ]


def grid_of(ws):
    b = ws.read("buildings")
    return dict(zip(b["building_id"], b["grid_code"], strict=True))


def lattice(n_x, n_y, *, hh, x0=20.0, y0=20.0, step=(45.0, 45.0), size=(20.0, 15.0), compound=""):
    return [
        (x0 + i * step[0], y0 + j * step[1], *size, hh, "residential", compound, 1)
        for i in range(n_x)
        for j in range(n_y)
    ]


def test_invariants_on_a_plain_town(tmp_path, put):
    # 9 blocks of 200 m, 4 buildings of 100 households each: a grid per block fits exactly
    buildings = nine_blocks(hh=100, step=(80, 80))
    ws = put(make_town(tmp_path / "t.gpkg", buildings).path)
    run = delineate(ws)
    m = run.metrics
    assert m["in_band_households"] == 1.0 and m["basic_grids"] == 9
    assert m["contiguity"] == 1.0 and m["nesting"] == 1.0
    assert m["coverage_min"] > 1 - 1e-6 and m["overlap_m2"] < 1.0
    assert m["building_integrity"] == 1.0
    grids = ws.read("grids")
    assert (grids.geometry.geom_type == "Polygon").all()
    assert grids["households"].sum() == 3600
    assert grids["grid_code"].str.match(rf"^{COMMUNITY}\d{{3}}$").all()
    assert set(grid_of(ws).values()) == set(grids["grid_code"])
    # the cheapest cuts are the roads: every grid is one block
    assert m["natural_boundaries"] > 0.99


def test_codes_run_west_to_east_then_north_to_south(tmp_path):
    buildings = nine_blocks(hh=50, step=(80, 80))
    ws = make_town(tmp_path / "t.gpkg", buildings)
    delineate(ws)
    grids = ws.read("grids").sort_values("grid_code")
    xy = shapely.get_coordinates(shapely.point_on_surface(grids.geometry.values))
    row_height = float(np.sqrt(np.median(grids.area)))
    assert serial_order(xy, row_height=row_height).tolist() == list(range(len(grids)))
    assert grids["grid_code"].str[-3:].tolist() == [f"{i:03d}" for i in range(1, len(grids) + 1)]


def test_compound_that_fits_stays_whole(tmp_path):
    whole = lattice(3, 3, hh=50, x0=20, y0=20, step=(50, 50), compound="C1")  # 450 households
    rest = [
        b
        for bx in range(1, 3)
        for by in range(3)
        for b in lattice(2, 2, hh=50, x0=bx * 200 + 40, y0=by * 200 + 40, step=(80, 80))
    ]
    rest += lattice(2, 2, hh=50, x0=40, y0=240, step=(80, 80))
    rest += lattice(2, 2, hh=50, x0=40, y0=440, step=(80, 80))
    ws = make_town(tmp_path / "t.gpkg", whole + rest)
    run = delineate(ws)
    codes = grid_of(ws)
    assert len({codes[f"b{i:04d}"] for i in range(9)}) == 1
    assert run.metrics["compound_splits"] == 0


def test_compound_too_big_splits_into_the_fewest_grids(tmp_path):
    # one block-filling compound of 16 towers × 100 = 1,600 households: at least 4 grids
    towers = lattice(4, 4, hh=100, x0=20, y0=20, step=(140, 140), size=(30, 15), compound="BIG")
    ws = make_town(tmp_path / "t.gpkg", towers, roads_every=1000.0)
    run = delineate(ws)
    touched = {grid_of(ws)[f"b{i:04d}"] for i in range(16)}
    assert len(touched) == 4  # ceil(1600 / 500)
    assert run.metrics["compound_splits"] == 0
    assert run.metrics["in_band_households"] == 1.0


def test_dedicated_buildings_get_their_own_grid(tmp_path):
    homes = nine_blocks(hh=50, step=(80, 80))
    school = [(270, 262, 40, 15, 0, "school", "S1", 2), (270, 290, 40, 15, 0, "school", "S1", 2)]
    ws = make_town(tmp_path / "t.gpkg", homes + school)
    delineate(ws)
    grids = ws.read("grids")
    codes = grid_of(ws)
    school_grid = codes[f"b{len(homes):04d}"]
    assert codes[f"b{len(homes) + 1:04d}"] == school_grid
    row = grids.set_index("grid_code").loc[school_grid]
    assert row["grid_type"] == "dedicated" and row["households"] == 0 and row["in_band"]
    assert (grids["grid_type"] == "basic").sum() == 5
    dedicated_buildings = [k for k, v in codes.items() if v == school_grid]
    assert len(dedicated_buildings) == 2


def test_building_above_the_ceiling_is_split_by_entrance(tmp_path):
    big = [(100, 100, 80, 16, 900, "residential", "", 6)]
    ws = make_town(tmp_path / "t.gpkg", big, size=(400, 400), roads_every=1000.0)
    delineate(ws)
    grids = ws.read("grids")
    assert len(grids) == 2  # 900 households, 6 entrances: 3 + 3 entrances
    assert grids["flags"].str.contains("split_by_entrance").all()
    assert sorted(grids["households"]) == [450, 450]


def test_building_above_the_ceiling_without_entrances_is_its_own_flagged_grid(tmp_path):
    big = [(100, 100, 40, 40, 700, "residential", "", 1)]
    small = lattice(2, 4, hh=80, x0=250, y0=40, step=(60, 80))  # 640 households
    ws = make_town(tmp_path / "t.gpkg", big + small, size=(400, 400), roads_every=1000.0)
    run = delineate(ws)
    grids = ws.read("grids").set_index("grid_code")
    own = grids.loc[grid_of(ws)["b0000"]]
    assert own["households"] == 700 and "building_over_band" in own["flags"]
    assert "one entrance" in own["reason"]
    assert run.out_of_band["grid_code"].tolist() == [own.name]


def test_community_under_the_floor_is_one_flagged_grid(tmp_path):
    ws = make_town(tmp_path / "t.gpkg", lattice(3, 1, hh=50), size=(300, 300), roads_every=1000.0)
    run = delineate(ws)
    grids = ws.read("grids")
    assert len(grids) == 1 and grids["households"].iloc[0] == 150
    assert "under_band" in grids["flags"].iloc[0]
    assert grids["reason"].iloc[0] == "the community holds only 150 households"
    assert run.metrics["coverage_min"] > 1 - 1e-9


def test_island_cut_off_by_a_river_gets_its_own_grid(tmp_path):
    river = shapely.LineString([(X0 + 500, Y0 - 10), (X0 + 500, Y0 + 610)])
    main = [
        b
        for bx in range(2)
        for by in range(3)
        for b in lattice(2, 2, hh=60, x0=bx * 200 + 40, y0=by * 200 + 40, step=(80, 80))
    ]
    island = lattice(1, 2, hh=60, x0=530, y0=100, step=(40, 200))  # 120 households
    ws = make_town(tmp_path / "t.gpkg", main + island, roads_every=1000.0, barriers=[river])
    run = delineate(ws)
    grids = ws.read("grids").set_index("grid_code")
    island_grid = grids.loc[grid_of(ws)[f"b{len(main):04d}"]]
    assert island_grid["households"] == 120 and "under_band" in island_grid["flags"]
    assert "cut off" in island_grid["reason"]
    assert run.metrics["contiguity"] == 1.0 and run.metrics["coverage_min"] > 1 - 1e-9


def test_locked_grids_are_kept_and_the_rest_delineated_around_them(tmp_path, put):
    buildings = nine_blocks(hh=50, step=(80, 80))
    ws = put(make_town(tmp_path / "t.gpkg", buildings).path)
    delineate(ws)
    grids = ws.read("grids")
    keep = grids["grid_code"].iloc[2]
    grids["locked"] = grids["grid_code"] == keep
    before = grids.set_index("grid_code").geometry[keep]
    b = ws.read("buildings")
    b.loc[b.index[-4:], "households"] = 120  # the data changes
    ws.write({"grids": grids, "buildings": b})
    run = delineate(ws, params=Params(seed=5))
    after = ws.read("grids").set_index("grid_code")
    assert after.loc[keep, "locked"]
    assert after.geometry[keep].equals_exact(before, 1e-6)
    assert run.metrics["overlap_m2"] < 1.0 and run.metrics["coverage_min"] > 1 - 1e-6
    assert list(after.index).count(keep) == 1  # its serial is not given to a new grid


def test_same_seed_same_grids_and_workers_do_not_change_them(tmp_path, demo_full):
    import shutil

    a, b = tmp_path / "a.gpkg", tmp_path / "b.gpkg"
    shutil.copy(demo_full.workspace, a)
    shutil.copy(demo_full.workspace, b)
    codes = ["430204001002", "430204004006", "430204005212"]
    delineate(a, communities=codes, workers=1)
    delineate(b, communities=codes, workers=2)
    ga = Workspace(a).read("grids").sort_values("grid_code").reset_index(drop=True)
    gb = Workspace(b).read("grids").sort_values("grid_code").reset_index(drop=True)
    pd.testing.assert_frame_equal(ga.drop(columns="geometry"), gb.drop(columns="geometry"))
    assert ga.geometry.geom_equals_exact(gb.geometry, 1e-6).all()


def test_full_demo_meets_the_quality_bars(demo_full):
    """The demo's households and population come from census points at 3.0 persons
    per household: the population band is measured from them (900–1,500, not 2.62's
    786–1,310, where 71 % of grids were in band), and grids are balanced on both."""
    import json

    m = demo_full.metrics
    assert m["in_band_households"] >= 0.98
    assert m["contiguity"] == 1.0 and m["nesting"] == 1.0 and m["building_integrity"] == 1.0
    assert m["coverage_min"] > 1 - 1e-6 and m["overlap_m2"] < 1.0
    assert m["compound_splits_avoidable"] == 0 and m["natural_boundaries"] >= 0.82
    # nearer 400 than plain METIS on the same cells (9.86 %, benchmarks/RESULTS.md)
    assert m["deviation_mean"] < 0.0986
    ws = Workspace(demo_full.workspace)
    params = json.loads(ws.read("runs")["params"].iloc[0])
    assert (params["persons_per_household"], params["population_band"]) == (3.0, [900, 1500])
    grids = ws.read("grids")
    basic = grids[grids["grid_type"] == "basic"]
    assert basic["population"].between(900, 1500).mean() >= 0.97  # counted here, not by metrics
    assert m["in_band_population"] >= 0.97
    bad = grids[(grids["grid_type"] == "basic") & ~grids["in_band"]]
    assert (bad["reason"].str.len() > 0).all()  # every out-of-band grid says why


def test_bad_parameters_are_refused(tmp_path):
    ws = make_town(tmp_path / "t.gpkg", lattice(3, 3, hh=50))
    with pytest.raises(InputError, match="does not contain the target"):
        delineate(ws, params=Params(band=(100, 200)))
    with pytest.raises(InputError, match="no community with code 999"):
        delineate(ws, communities=["999"])
    result = CliRunner().invoke(app, ["delineate", str(ws.path), "--band", "500-300"])
    assert result.exit_code == 2 and "LOW-HIGH" in result.output
    result = CliRunner().invoke(app, ["delineate", str(ws.path), "--json", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert '"in_band_households"' in result.output


def test_runs_table_records_parameters_digest_and_metrics(tmp_path, put):
    import json

    ws = put(make_town(tmp_path / "t.gpkg", lattice(3, 3, hh=50)).path)
    delineate(ws)
    delineate(ws, params=Params(target_households=350, band=(250, 450)))
    runs = ws.read("runs")
    assert runs["run_id"].tolist() == [1, 2]
    assert json.loads(runs["params"].iloc[1])["target_households"] == 350
    assert runs["input_digest"].iloc[0] == runs["input_digest"].iloc[1]
    assert json.loads(runs["metrics"].iloc[0])["contiguity"] == 1.0


@st.composite
def towns(draw):
    n_blocks = draw(st.integers(2, 4))
    rows = []
    for bx in range(n_blocks):
        for by in range(n_blocks):
            n = draw(st.integers(0, 5))
            for k in range(n):
                hh = draw(st.integers(0, 160))
                compound = draw(st.sampled_from(["", f"c{bx}{by}"]))
                rows.append(
                    (
                        bx * 200 + 20 + (k % 3) * 55,
                        by * 200 + 20 + (k // 3) * 70,
                        35,
                        20,
                        hh,
                        "residential",
                        compound,
                        1,
                    )
                )
    return n_blocks, rows


# a compound split by a house standing between its two buildings (found by Hypothesis)
INTERLEAVED = (
    4,
    [
        (620, 620, 35, 20, 0, "residential", "c33", 1),
        (675, 620, 35, 20, 100, "residential", "", 1),
        (730, 620, 35, 20, 140, "residential", "c33", 1),
        (620, 690, 35, 20, 160, "residential", "", 1),
        (620, 420, 35, 20, 127, "residential", "", 1),
    ],
)


@settings(
    max_examples=12,
    derandomize=True,  # the same examples on every run: CI stays deterministic
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@example(town=INTERLEAVED)
@given(towns())
def test_invariants_hold_or_are_flagged_on_random_towns(tmp_path_factory, town):
    n_blocks, rows = town
    path = tmp_path_factory.mktemp("town") / "t.gpkg"
    ws = make_town(path, rows, size=(200.0 * n_blocks, 200.0 * n_blocks))
    run = delineate(ws)
    m = run.metrics
    assert m["contiguity"] == 1.0
    assert m["nesting"] == 1.0
    assert m["coverage_min"] > 1 - 1e-6 and m["overlap_m2"] < 1.0
    assert m["building_integrity"] == 1.0
    grids = ws.read("grids")
    assert grids["households"].sum() == sum(r[4] for r in rows)
    basic = grids[grids["grid_type"] == "basic"]
    out = basic[~Band(400, 300, 500).contains(basic["households"])]
    assert (out["reason"].str.len() > 0).all()
    if rows:
        assert set(grid_of(ws).values()) <= set(grids["grid_code"])


def _two_grids() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Grids a (x 0–100) and b (100–200) of 400 households, and their community c."""
    left, right = shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)
    grids = gpd.GeoDataFrame(
        {
            "grid_code": ["a", "b"],
            "community_code": "c",
            "grid_type": "basic",
            "households": [400, 400],
            "population": [1200, 1200],
        },
        geometry=[left, right],
        crs=LOCAL,
    )
    comm = gpd.GeoDataFrame({"code": ["c"]}, geometry=[shapely.box(0, 0, 200, 100)], crs=LOCAL)
    return grids, comm


def test_metrics_count_natural_boundaries_and_splits():
    grids, comm = _two_grids()
    buildings = gpd.GeoDataFrame(
        {"grid_code": ["a", "b"], "compound_id": ["k", "k"], "households": [200, 200]},
        geometry=[shapely.box(10, 10, 20, 20), shapely.box(110, 10, 120, 20)],
        crs=LOCAL,
    )
    band, pop = Band(400, 300, 500), Band(1200, 900, 1500)
    road = np.array([shapely.LineString([(100, -10), (100, 110)])])
    far = np.array([shapely.LineString([(160, -10), (160, 110)])])
    on_road = grid_metrics(grids, comm, buildings, road, households=band, population=pop)
    off_road = grid_metrics(grids, comm, buildings, far, households=band, population=pop)
    assert on_road["natural_boundaries"] == pytest.approx(1.0)
    assert off_road["natural_boundaries"] == pytest.approx(0.0)
    assert on_road["compound_splits"] == 1  # 400 households need one grid, it touches two
    assert on_road["compound_splits_avoidable"] == 0  # joining would make an 800 grid
    assert on_road["polsby_popper_mean"] == pytest.approx(np.pi / 4)


def test_a_split_is_avoidable_when_a_bordering_fragment_can_move():
    """A compound of 30 + 20 households split over a and b: its 20 in b can join a
    (400 + 20 and 400 − 20 stay in the band) when they lie by a, not 60 m off; its 30 in
    a lie 80 m from b."""
    grids, comm = _two_grids()
    band, pop = Band(400, 300, 500), Band(1200, 900, 1500)
    for x, avoidable in ((105, 1), (160, 0)):
        buildings = gpd.GeoDataFrame(
            {"grid_code": ["a", "b"], "compound_id": ["k", "k"], "households": [30, 20]},
            geometry=[shapely.box(10, 10, 20, 20), shapely.box(x, 10, x + 10, 20)],
            crs=LOCAL,
        )
        m = grid_metrics(grids, comm, buildings, np.array([]), households=band, population=pop)
        assert (m["compound_splits"], m["compound_splits_avoidable"]) == (1, avoidable), x


def test_building_integrity_counts_buildings_cut_by_their_grid_or_in_none():
    """A building is whole when under 1 % of it lies outside its grid: one inside, one a
    fifth outside, one just over the edge (0.5 %), one whose grid does not exist."""
    grids, comm = _two_grids()
    buildings = gpd.GeoDataFrame(
        {"grid_code": ["a", "a", "b", "z"], "compound_id": "", "households": 10},
        geometry=[
            shapely.box(10, 10, 20, 20),
            shapely.box(92, 10, 102, 20),  # 2 of its 10 m outside a
            shapely.box(99.95, 30, 109.95, 40),  # 0.5 % in a
            shapely.box(150, 50, 160, 60),
        ],
        crs=LOCAL,
    )
    m = grid_metrics(
        grids,
        comm,
        buildings,
        np.array([]),
        households=Band(400, 300, 500),
        population=Band(1200, 900, 1500),
    )
    assert m["building_integrity"] == pytest.approx(2 / 4)


def test_a_run_adds_grid_codes_and_leaves_the_buildings_data_alone(tmp_path):
    ws = make_town(tmp_path / "t.gpkg", lattice(3, 3, hh=50))
    b = ws.read("buildings")
    b["households"] = b["households"].astype("Int64")
    b.loc[0, "households"] = pd.NA  # not known: counted as 0, never stored as 0
    ws.write({"buildings": b})
    delineate(ws)
    after = ws.read("buildings")
    assert pd.isna(after.loc[0, "households"])
    assert after["households"].iloc[1:].tolist() == b["households"].iloc[1:].tolist()
    assert after["grid_code"].notna().all()


def test_incremental_run_keeps_untouched_grids_and_codes(demo_full, put):
    ws = put(demo_full.workspace)
    before = ws.read("grids").set_index("grid_code")
    b = ws.read("buildings")
    rng = np.random.default_rng(0)
    change = rng.choice(len(b), size=len(b) // 50, replace=False)  # 2 % of buildings
    b.loc[b.index[change], "households"] = (
        (b.loc[b.index[change], "households"] * rng.uniform(0.3, 2.5, len(change)))
        .round()
        .astype(int)
    )
    ws.write({"buildings": b})
    run = delineate(ws)
    after = ws.read("grids").set_index("grid_code")
    m = run.metrics
    assert m["stability"] >= 0.95 and m["in_band_households"] >= 0.98
    assert m["contiguity"] == 1.0 and m["coverage_min"] > 1 - 1e-6 and m["overlap_m2"] < 1.0
    kept = [
        c
        for c in before.index
        if c in after.index and after.geometry[c].equals_exact(before.geometry[c], 1e-6)
    ]
    assert len(kept) >= 0.8 * len(before)
    retired = ws.read("retired_grids")["grid_code"] if "retired_grids" in ws else pd.Series()
    assert not set(retired) & set(after.index)  # a retired code is never given again


def test_full_run_redraws_everything_and_retired_codes_stay_retired(tmp_path, put):
    buildings = nine_blocks(hh=100, step=(80, 80))
    ws = put(make_town(tmp_path / "t.gpkg", buildings).path)
    delineate(ws)
    b = ws.read("buildings")
    b.loc[:3, "households"] = 10  # the south-west block empties: its grid drops out of band
    ws.write({"buildings": b})
    run = delineate(ws)
    retired = set(ws.read("retired_grids")["grid_code"])
    codes = set(ws.read("grids")["grid_code"])
    assert retired and not retired & codes
    assert run.metrics["stability"] < 1.0
    full = delineate(ws, full=True)
    assert not retired & set(ws.read("grids")["grid_code"])
    assert full.metrics["contiguity"] == 1.0


def test_a_community_with_a_hole_is_contiguous_when_every_grid_is_one_piece(tmp_path):
    """The hole is the community's own (a pond, another jurisdiction): a grid around it is
    one piece; the metric said 0.89 for this town."""
    ws = make_town(tmp_path / "t.gpkg", nine_blocks(hh=100, step=(80, 80)))
    comms = ws.read("communities")
    pond = shapely.box(X0 + 290, Y0 + 290, X0 + 310, Y0 + 310)  # in the middle block, no homes
    comms["geometry"] = comms.geometry.difference(pond)
    ws.write({"communities": comms})
    run = delineate(ws)
    grids = ws.read("grids")
    assert (grids.geometry.geom_type == "Polygon").all()  # shapely: every grid one piece
    assert any(len(g.interiors) for g in grids.geometry)  # one of them around the pond
    assert run.metrics["contiguity"] == 1.0


def test_dedicated_grids_keep_their_codes_on_a_full_run(demo_full, put):
    """On the demo, 106 of 107 dedicated grids changed code after --full on unchanged data
    (a grid without households never took over a code)."""
    ws = put(demo_full.workspace)
    before = ws.read("grids").query("grid_type == 'dedicated'").set_index("grid_code")
    delineate(ws, full=True)
    after = ws.read("grids").query("grid_type == 'dedicated'").set_index("grid_code")
    assert len(before) > 50 and set(after.index) == set(before.index)
    same = [c for c in before.index if after.geometry[c].equals_exact(before.geometry[c], 1e-6)]
    assert len(same) >= 0.9 * len(before)


def test_overlap_is_measured_across_communities():
    """Two communities drawn over each other gave grids overlapping by 2.5 km² while the
    run's overlap metric, summed within each community, said about 0."""
    west, east = shapely.box(0, 0, 120, 100), shapely.box(100, 0, 200, 100)  # 20 m × 100 m twice
    grids = gpd.GeoDataFrame(
        {
            "grid_code": ["a", "b"],
            "community_code": ["c1", "c2"],
            "grid_type": "basic",
            "households": [400, 400],
            "population": [1000, 1000],
        },
        geometry=[west, east],
        crs=LOCAL,
    )
    comms = gpd.GeoDataFrame({"code": ["c1", "c2"]}, geometry=[west, east], crs=LOCAL)
    buildings = gpd.GeoDataFrame(
        {"grid_code": ["a", "b"], "compound_id": ["", ""], "households": [400, 400]},
        geometry=[shapely.box(10, 10, 20, 20), shapely.box(150, 10, 160, 20)],
        crs=LOCAL,
    )
    band, pop = Band(400, 300, 500), Band(1048, 786, 1310)
    m = grid_metrics(grids, comms, buildings, np.array([]), households=band, population=pop)
    assert m["overlap_m2"] == pytest.approx(2000.0)


def test_buildings_off_their_community_are_refused_in_one_line(tmp_path, demo_full):
    """Buildings whose community_code names a community kilometres away (an edit by hand)
    crashed the engine inside GEOS (empty cells: 'getX called on empty Point'); now the
    run is refused naming the first, and nothing is written."""
    import shutil

    path = tmp_path / "ws.gpkg"
    shutil.copy(demo_full.workspace, path)
    ws = Workspace(path)
    b = ws.read("buildings")
    comms = ws.read("communities").set_index("code")
    a, far = comms.index[0], comms.index[-1]
    assert comms.geometry[a].distance(comms.geometry[far]) > 1000
    moved = b.index[b["community_code"] == a][:300]
    b.loc[moved, "community_code"] = far
    ws.write({"buildings": b})
    before = ws.read("grids")
    result = CliRunner().invoke(app, ["delineate", str(path), "--full"])
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())
    assert f"{len(moved)} buildings lie outside the community" in line
    assert str(b.loc[moved[0], "building_id"]) in line and far in line
    assert "Traceback" not in result.output
    pd.testing.assert_frame_equal(ws.read("grids").drop(columns="geometry"),
                                  before.drop(columns="geometry"))  # fmt: skip


def _lattice_graph(rows: int, cols: int, households: int) -> CellGraph:
    """A rows × cols lattice of square 100 m cells, all in one block."""
    n = rows * cols
    ids = np.arange(n).reshape(rows, cols)
    edges = np.vstack(
        [
            np.column_stack([ids[:, :-1].ravel(), ids[:, 1:].ravel()]),
            np.column_stack([ids[:-1, :].ravel(), ids[1:, :].ravel()]),
        ]
    )
    return CellGraph(
        households=np.full(n, households),
        population=np.full(n, households * 3),
        xy=np.column_stack([(ids % cols).ravel() * 100.0, (ids // cols).ravel() * 100.0]),
        edges=edges,
        length=np.full(len(edges), 100.0),
        along_line=np.zeros(len(edges), bool),
        inside_compound=np.zeros(len(edges), bool),
        compound=np.full(n, -1),
        compound_households=np.zeros(0),
    )


def test_two_grids_either_side_of_the_target_are_split_afresh():
    """A grid of 480 households beside one of 320 becomes two nearer 400, both one piece:
    the re-split that single-cell moves cannot always reach."""
    from gisgrid.delineate.partition import _even_pairs, _State

    graph = _lattice_graph(4, 5, 40)  # 20 cells, 800 households
    labels = np.where(np.arange(20) % 5 < 3, 0, 1)  # 12 cells (480) | 8 cells (320)
    band = Band(400, 300, 500)
    state = _State(graph, labels, band, Band(1200, 900, 1500))
    assert _even_pairs(state, np.random.default_rng(0))
    hh = np.bincount(state.labels, weights=graph.households)
    assert np.abs(hh - 400).sum() < 160  # was 80 + 80
    for part in (0, 1):
        nodes = np.flatnonzero(state.labels == part)
        assert len(_components(graph, nodes)) == 1


def test_an_avoidable_split_goes_before_sizes_inside_the_band():
    """A compound split that one move undoes with both grids still in band is undone, even
    when that moves both grids from 400 to the band's edges (480 and 320). With the
    balance weights raised and splits still weighed at 8, the split was kept."""
    from gisgrid.delineate.partition import _State

    graph = _lattice_graph(1, 10, 80)  # a row of 10 cells, 800 households
    graph.compound = np.where((np.arange(10) >= 3) & (np.arange(10) <= 5), 0, -1)
    graph.compound_households = np.array([240.0])
    labels = np.where(np.arange(10) < 5, 0, 1)  # 400 | 400, the compound's cell 5 in the second
    state = _State(graph, labels, Band(400, 300, 500), Band(1200, 900, 1500))
    state.refine()
    assert len(set(state.labels[3:6].tolist())) == 1  # the compound in one grid
    hh = np.bincount(state.labels, weights=graph.households)
    assert sorted(hh.tolist()) == [320.0, 480.0]
    assert len(_components(graph, np.flatnonzero(state.labels == state.labels[9]))) == 1
