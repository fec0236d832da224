"""Manual edits: lock/unlock, and moves refused with reasons unless forced."""

import pytest
import shapely
from typer.testing import CliRunner

from gisgrid import InputError
from gisgrid.cli import app
from gisgrid.delineate.edits import MoveRefusedError, lock, move
from gisgrid.delineate.run import delineate

from .conftest import snapshot
from .test_delineation import make_town, nine_blocks


@pytest.fixture
def town(tmp_path, put):
    """9 blocks, 4 buildings of 100 households each: one grid per block; the east column
    of each block stands 5 m from the road. Delineated, then on each backend."""
    buildings = nine_blocks(hh=100, step=(135, 80))
    ws = make_town(tmp_path / "t.gpkg", buildings)
    delineate(ws)
    return put(ws.path)


def _neighbour_pair(ws):
    """A building beside a road and the grid across that road, plus a far grid."""
    grids = ws.read("grids").set_index("grid_code")
    b = ws.read("buildings").set_index("building_id")
    bid = "b0002"  # south-west block, east column: 5 m from the road to the next block
    own = b.loc[bid, "grid_code"]
    near = [c for c, g in grids.geometry.items() if c != own and g.distance(b.geometry[bid]) < 15]
    far = [c for c, g in grids.geometry.items() if g.distance(b.geometry[bid]) > 300]
    return bid, own, near, far[0]


def test_lock_and_unlock(town):
    code = town.read("grids")["grid_code"].iloc[0]
    assert lock(town, [code]) == 1
    assert town.read("grids").set_index("grid_code").loc[code, "locked"]
    assert lock(town, [code]) == 0  # already locked
    assert lock(town, [code], locked=False) == 1
    with pytest.raises(InputError, match="no grid with code 1"):
        lock(town, ["1"])


def test_move_that_breaks_contiguity_is_refused_with_the_reason(town):
    bid, _, _, far = _neighbour_pair(town)
    before = snapshot(town)
    with pytest.raises(MoveRefusedError, match="would not be one piece") as info:
        move(town, building=bid, to=far)
    assert any("does not border it" in r for r in info.value.reasons)
    assert snapshot(town) == before


def test_move_that_leaves_the_band_is_refused_then_forced_and_flagged(town):
    bid, _, near, _ = _neighbour_pair(town)
    # every grid holds exactly 400: moving a 100-household building makes 300 and 500,
    # still in band; move a second one to break it
    move(town, building=bid, to=near[0])
    second = "b0003"  # the other building of the east column, also beside the road
    with pytest.raises(MoveRefusedError, match="outside 300–500"):
        move(town, building=second, to=near[0])
    result = move(town, building=second, to=near[0], force=True)
    assert result.forced
    grids = town.read("grids").set_index("grid_code")
    assert "manual_edit" in grids.loc[near[0], "flags"]
    assert grids.loc[near[0], "households"] == 600 and not grids.loc[near[0], "in_band"]
    comm = town.read("communities").geometry.iloc[0]
    union = shapely.union_all(grids.geometry.values)
    assert abs(union.area - comm.area) < 1.0  # the grids still tile the community
    assert town.read("buildings").set_index("building_id").loc[second, "grid_code"] == near[0]


def test_locked_grids_do_not_take_or_give(town):
    bid, _, near, _ = _neighbour_pair(town)
    lock(town, [near[0]])
    with pytest.raises(MoveRefusedError, match="is locked"):
        move(town, building=bid, to=near[0])


def test_cli_move_refusal_exits_2(town):
    bid, _, _, far = _neighbour_pair(town)
    result = CliRunner().invoke(app, ["move", town.location, "--building", bid, "--to", far])
    assert result.exit_code == 2 and "move refused" in result.output
    result = CliRunner().invoke(app, ["lock", town.location, far])
    assert result.exit_code == 0 and "locked 1" in result.output


def test_a_move_is_recorded_as_a_run_with_its_changes(town):
    import json

    bid, _, near, _ = _neighbour_pair(town)
    move(town, building=bid, to=near[0])
    runs = town.read("runs")
    assert runs["kind"].tolist() == ["delineate", "move"]
    changes = json.loads(runs["changes"].iloc[-1])
    assert changes["building_moved"] == 1 and changes["grid_reshaped"] == 2


def test_a_forced_move_never_splits_a_grid_or_cuts_a_building(town):
    """--force overrides the rules (band, locks), never the invariants: a building that
    does not border the grid is refused even forced, and the layer stays Polygon."""
    bid, _, near, far = _neighbour_pair(town)
    before = snapshot(town)
    with pytest.raises(MoveRefusedError, match="even with --force"):
        move(town, building=bid, to=far, force=True)
    assert snapshot(town) == before
    move(town, building=bid, to=near[0], force=True)
    grids = town.read("grids").set_index("grid_code")
    assert (grids.geometry.geom_type == "Polygon").all()
    b = town.read("buildings")
    for g, code in zip(b.geometry, b["grid_code"], strict=True):  # shapely: none is cut
        assert g.difference(grids.geometry[code]).area < 0.01 * g.area


def test_a_compound_across_two_grids_moved_into_one_is_counted_once(small, tmp_path):
    """A compound already partly in the target grid: only the buildings that arrive add to
    its counts (they were added twice: 476 + all 580 households = 1,056 where 580 hold)."""
    import shutil

    import pandas as pd

    from gisgrid.io.workspace import Workspace

    shutil.copy(small, tmp_path / "c.gpkg")
    ws = Workspace(tmp_path / "c.gpkg")
    b = ws.read("buildings")
    split = b.groupby("compound_id")["grid_code"].nunique()
    compound = split[split > 1].index[0]
    mine = b[b["compound_id"] == compound]
    to = mine.groupby("grid_code")["households"].sum().idxmax()  # where most of it is
    result = move(ws, to=to, compound=compound, force=True)
    grids = Workspace(ws.location).read("grids").set_index("grid_code")
    after = Workspace(ws.location).read("buildings")
    counted = after.groupby("grid_code")[["households", "population"]].sum()
    for code in [*result.source, to]:
        assert grids.loc[code, "households"] == counted.loc[code, "households"]
        assert grids.loc[code, "population"] == counted.loc[code, "population"]
        assert result.households[code][1] == counted.loc[code, "households"]
    assert pd.Series(after[after["compound_id"] == compound]["grid_code"]).eq(to).all()


def test_a_building_moved_there_and_back_again_and_again_always_lands(small, tmp_path):
    """Each move cuts its piece out of one grid and joins it to the next; joined back, the
    edges meet only within rounding. The second return was refused ("does not border it")
    until the join fell back to the cells' millimetre grid."""
    import shutil

    from gisgrid.io.workspace import Workspace

    from .test_plan import movable

    shutil.copy(small, tmp_path / "m.gpkg")
    ws = Workspace(tmp_path / "m.gpkg")
    building, home, away = movable(ws)
    for _ in range(3):
        for to in (away, home):
            result = move(Workspace(ws.location), to=to, building=building)
            assert result.target == to and not result.reasons
            grids = Workspace(ws.location).read("grids").set_index("grid_code")
            for code in (home, away):  # each grid stays one piece: shapely, not the module
                assert grids.loc[code, "geometry"].geom_type == "Polygon", code
