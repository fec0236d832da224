"""Re-dividing oversized communities: tiling, size, compounds, codes, history, dry runs."""

import shutil

import pytest
import shapely
from typer.testing import CliRunner

from gisgrid import InputError
from gisgrid.cli import app
from gisgrid.delineate.redivision import plan_redivision, redivide
from gisgrid.io.workspace import Workspace

OVERSIZED = "430204005001"  # the demo's 24,000-household community


@pytest.fixture
def demo_copy(tmp_path, demo_full):
    path = tmp_path / "demo.gpkg"
    shutil.copy(demo_full.workspace, path)
    return Workspace(path)


def test_plan_tiles_the_old_community_within_the_maximum(demo_copy):
    old = demo_copy.read("communities").set_index("code").geometry[OVERSIZED]
    plan = plan_redivision(demo_copy, OVERSIZED, max_households=6000)
    new = plan.communities
    assert len(new) >= 4 and (new["households"] <= 6000).all()
    assert (new.geometry.geom_type == "Polygon").all()  # each one piece
    union = shapely.union_all(new.geometry.values)
    assert abs(union.area - old.area) / old.area < 1e-9
    assert new.geometry.area.sum() - union.area < 1.0  # no overlap
    buildings = demo_copy.read("buildings")
    mine = buildings[buildings["community_code"] == OVERSIZED]
    assert new["households"].sum() == mine["households"].sum()
    # a compound never ends up in two communities
    by_compound = mine.assign(new=mine["building_id"].map(plan.building_community))
    compounds = by_compound[by_compound["compound_id"] != ""]
    assert (compounds.groupby("compound_id")["new"].nunique() == 1).all()


def test_codes_keep_the_old_one_and_continue_the_street(demo_copy):
    comms = demo_copy.read("communities")
    plan = plan_redivision(demo_copy, OVERSIZED, parts=3)
    new = plan.communities.sort_values("households", ascending=False)
    assert new["code"].iloc[0] == OVERSIZED
    street = OVERSIZED[:9]
    top = max(int(c[9:]) for c in comms["code"] if c.startswith(street))
    assert sorted(new["code"].iloc[1:]) == [f"{street}{top + 1:03d}", f"{street}{top + 2:03d}"]
    assert new["name"].str.endswith("社区").all()


def test_dry_run_writes_nothing(demo_copy):
    before = demo_copy.path.read_bytes()
    result = CliRunner().invoke(
        app,
        ["redivide", str(demo_copy.path), "--community", OVERSIZED, "--parts", "3", "--dry-run"],
    )
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output
    assert demo_copy.path.read_bytes() == before


def test_redivide_writes_communities_history_and_grids_inside(demo_copy):
    plan = redivide(demo_copy, OVERSIZED, max_households=8000)
    comms = demo_copy.read("communities")
    new_codes = set(plan.communities["code"])
    assert new_codes <= set(comms["code"]) and len(comms) == 45 - 1 + len(new_codes)
    history = demo_copy.read("community_history")
    assert history["code"].tolist() == [OVERSIZED]
    assert set(history["replaced_by"].iloc[0].split(",")) == new_codes
    buildings = demo_copy.read("buildings")
    assert buildings["community_code"].isin(comms["code"]).all()
    grids = demo_copy.read("grids")
    for code in new_codes:
        area = comms.set_index("code").geometry[code]
        mine = grids[grids["community_code"] == code]
        assert len(mine) and abs(shapely.union_all(mine.geometry.values).area - area.area) < 1.0
    inside = buildings[buildings["community_code"].isin(new_codes)]
    assert inside["grid_code"].str[:12].eq(inside["community_code"]).all()
    runs = demo_copy.read("runs")
    # the demo's run and its publication, then the one inside the new communities
    assert runs["kind"].tolist() == ["delineate", "publish", "delineate"]


def test_bad_requests_are_refused(demo_copy):
    with pytest.raises(InputError, match="exactly one of"):
        plan_redivision(demo_copy, OVERSIZED)
    with pytest.raises(InputError, match="exactly one of"):
        plan_redivision(demo_copy, OVERSIZED, parts=2, max_households=5000)
    with pytest.raises(InputError, match="no community with code 1"):
        plan_redivision(demo_copy, "1", parts=2)
    with pytest.raises(InputError, match="nothing to re-divide"):
        plan_redivision(demo_copy, OVERSIZED, max_households=10**6)
    result = CliRunner().invoke(app, ["redivide", str(demo_copy.path)])
    assert result.exit_code == 2 and "--all-over" in result.output


def test_redivision_keeps_existing_grids_whole_where_it_can(demo_copy):
    import json

    before = demo_copy.read("grids")
    old = before[before["community_code"] == OVERSIZED]
    plan = redivide(demo_copy, OVERSIZED, max_households=8000)
    after = demo_copy.read("grids")
    inside = after[after["community_code"].isin(plan.communities["code"])]
    same_shape = sum(
        any(g.equals_exact(o, 1e-6) for o in old.geometry.values) for g in inside.geometry.values
    )
    assert same_shape >= 0.5 * len(old)  # most old grids survive whole
    stability = json.loads(demo_copy.read("runs")["metrics"].iloc[-1])["stability"]
    assert stability >= 0.9
    retired = set(demo_copy.read("retired_grids")["grid_code"])
    assert not retired & set(after["grid_code"])
