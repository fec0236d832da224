"""Run history: every run's grids are kept; changes recorded; diff; rollback."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from gisgrid import InputError
from gisgrid.cli import app
from gisgrid.delineate.history import diff_runs, rollback
from gisgrid.delineate.run import delineate

from .test_delineation import make_town, nine_blocks


@pytest.fixture
def town(tmp_path):
    buildings = nine_blocks(hh=100, step=(80, 80))
    ws = make_town(tmp_path / "t.gpkg", buildings)
    delineate(ws)  # run 1
    b = ws.read("buildings")
    b.loc[:3, "households"] = 10  # the south-west block empties
    ws.write({"buildings": b})
    delineate(ws)  # run 2: that grid and its neighbours are redrawn
    return ws


def test_every_run_is_kept_with_its_changes(town):
    history = town.read("grid_history")
    assert sorted(pd.to_numeric(history["run_id"]).unique()) == [1, 2]
    changes = pd.DataFrame(town.read("grid_changes"))
    first = changes[changes["run_id"] == 1]
    assert (first["kind"] == "grid_added").all() and len(first) == 9
    second = changes[changes["run_id"] == 2]
    assert {"grid_retired", "building_moved"} <= set(second["kind"])
    runs = town.read("runs")
    assert json.loads(runs["changes"].iloc[1])["grid_retired"] >= 1


def test_diff_between_runs_counts_what_moved(town):
    diff = diff_runs(town, 1, 2)
    summary = diff.summary
    moved = diff.changes[diff.changes["kind"] == "building_moved"]
    assert summary["households_moved"] == pd.to_numeric(moved["households"]).sum() > 0
    assert set(moved["old_grid"]) <= set(diff.grids_a["grid_code"])
    assert set(moved["new_grid"]) <= set(diff.grids_b["grid_code"])
    assert diff_runs(town, 2, 2).changes.empty
    with pytest.raises(InputError, match="no run 7"):
        diff_runs(town, 1, 7)


def test_rollback_restores_an_earlier_run(town):
    before = town.read("grid_history")
    run1 = before[pd.to_numeric(before["run_id"]) == 1].set_index("grid_code")
    new_run = rollback(town, 1)
    assert new_run == 3
    grids = town.read("grids").set_index("grid_code")
    assert sorted(grids.index) == sorted(run1.index)
    for code in grids.index:
        assert grids.geometry[code].equals_exact(run1.geometry[code], 1e-6)
    assert town.read("runs")["kind"].tolist()[-1] == "rollback"
    assert diff_runs(town, 1, 3).changes["kind"].isin(["grid_reshaped"]).all()


def test_cli_diff_exports_csv_geojson_and_map(town, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "diff",
            str(town.path),
            "1",
            "2",
            "--csv",
            str(tmp_path / "c.csv"),
            "--geojson",
            str(tmp_path / "g.geojson"),
            "--map",
            str(tmp_path / "m.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "building_moved" in result.output
    assert len(pd.read_csv(tmp_path / "c.csv")) > 0
    assert (tmp_path / "g.geojson").stat().st_size > 0
    page = (tmp_path / "m.html").read_text(encoding="utf-8")
    assert "run 1: before" in page and "https://cdn" not in page
    result = CliRunner().invoke(app, ["rollback", str(town.path), "9"])
    assert result.exit_code == 2 and "no run 9" in result.output
