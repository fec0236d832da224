"""The workspace file: round trips, UTF-8, tables, and atomic writes."""

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gisgrid import LayerNotFoundError
from gisgrid.io import gpkg
from gisgrid.io.workspace import Workspace


def _points(names):
    return gpd.GeoDataFrame(
        {"name": names}, geometry=[shapely.Point(i, i) for i in range(len(names))], crs=4547
    )


def test_round_trip_keeps_chinese_names_crs_and_tables(tmp_path):
    ws = Workspace(tmp_path / "w.gpkg")
    ws.write(
        {
            "resources": _points(["叫鸡岭社区党委", "田心街道党工委"]),
            "runs": pd.DataFrame({"run": [1], "params": [{"target": 400}]}),
        },
        meta={"crs": "EPSG:4547"},
    )
    back = ws.read("resources")
    assert back["name"].tolist() == ["叫鸡岭社区党委", "田心街道党工委"]
    assert back.crs.to_epsg() == 4547
    assert ws.crs.to_epsg() == 4547
    assert ws.read("runs")["params"].iloc[0] == '{"target": 400}'
    assert set(ws.layers()) == {"resources", "runs", "gisgrid_meta"}


def test_write_replaces_only_the_named_layers(tmp_path):
    ws = Workspace(tmp_path / "w.gpkg")
    ws.write({"a": _points(["x", "y"]), "b": _points(["z"])})
    ws.write({"a": _points(["only"])})
    assert ws.read("a")["name"].tolist() == ["only"]
    assert ws.read("b")["name"].tolist() == ["z"]
    ws.write({"c": _points(["c"])}, fresh=True)
    assert ws.layers() == ["c"]


def test_crash_mid_write_leaves_the_previous_workspace_intact(tmp_path, monkeypatch):
    ws = Workspace(tmp_path / "w.gpkg")
    ws.write({"a": _points(["before"]), "b": _points(["before"])})
    before = ws.path.read_bytes()
    real = gpkg.write_layer
    calls = []

    def crash_on_second(con, name, frame):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt("power cut")
        real(con, name, frame)

    monkeypatch.setattr(gpkg, "write_layer", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        ws.write({"a": _points(["after"]), "b": _points(["after"])})
    assert ws.path.read_bytes() == before
    assert ws.read("a")["name"].tolist() == ["before"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.gpkg"]  # no temp file left


def test_missing_layer_names_the_layers_there_and_the_fix(tmp_path):
    ws = Workspace(tmp_path / "w.gpkg")
    ws.write({"streets": _points(["s"])})
    message = r"'buildings' is not in .*streets.*gisgrid import"
    with pytest.raises(LayerNotFoundError, match=message):
        ws.read("buildings")
    with pytest.raises(KeyError):  # also a builtin KeyError
        ws.read("buildings")


def test_layer_without_crs_is_refused(tmp_path):
    ws = Workspace(tmp_path / "w.gpkg")
    with pytest.raises(OSError, match="no CRS"):
        ws.write({"a": gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)])})
    assert not ws.exists


def test_new_workspace_gets_the_usual_file_mode_and_keeps_it(tmp_path):
    import os

    ws = Workspace(tmp_path / "w.gpkg")
    ws.write({"a": _points(["x"])})
    mask = os.umask(0)
    os.umask(mask)
    assert ws.path.stat().st_mode & 0o777 == 0o666 & ~mask
    ws.path.chmod(0o640)
    ws.write({"a": _points(["y"])})
    assert ws.path.stat().st_mode & 0o777 == 0o640
