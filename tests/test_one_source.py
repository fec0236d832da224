"""One source of truth per concept: results that two copies of the same logic got wrong.

Each test here failed while the concept had two homes: the folium and MapLibre
palettes, the CRS-name parsers of imports and lookups, and the two writers of a
``runs`` row.
"""

from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from typer.testing import CliRunner

from gisgrid.cli import app
from gisgrid.crs.gcj02 import wgs84_to_bd09, wgs84_to_gcj02
from gisgrid.delineate.community import Params
from gisgrid.delineate.edits import move
from gisgrid.delineate.history import rollback
from gisgrid.delineate.run import delineate
from gisgrid.io.workspace import Workspace
from gisgrid.publish.style import redmap_style
from gisgrid.publish.webmap import district_map

from .test_delineation import make_town, nine_blocks

EDGES = [299, 300, 349, 350, 449, 450, 499, 500, 501]


def _evaluate(expr, props):
    """A small evaluator of the MapLibre expressions the style uses (independent code)."""
    if not isinstance(expr, list):
        return expr
    op, *args = expr
    if op == "get":
        return props.get(args[0])
    if op == "coalesce":
        return next((v for a in args if (v := _evaluate(a, props)) is not None), None)
    if op in ("==", "<", ">", "<=", ">="):
        a, b = (_evaluate(x, props) for x in args)
        return {"==": a == b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
    if op == "case":
        for cond, out in zip(args[:-1:2], args[1:-1:2], strict=True):
            if _evaluate(cond, props):
                return _evaluate(out, props)
        return _evaluate(args[-1], props)
    if op == "step":
        value, out = _evaluate(args[0], props), args[1]
        for stop, colour in zip(args[2::2], args[3::2], strict=True):
            if value >= stop:
                out = colour
        return out
    raise AssertionError(f"unexpected operator {op}")


def _folium_fills(households: list[int]) -> list[str]:
    """The fill colour the folium page gives each grid, read from the page itself."""
    n = len(households)
    grids = gpd.GeoDataFrame(
        {
            "grid_code": [f"g{i}" for i in range(n)],
            "name": "x",
            "grid_type": "basic",
            "households": households,
            "population": 0,
            "flags": "",
        },
        geometry=[shapely.box(i * 100, 0, i * 100 + 100, 100) for i in range(n)],
        crs=3857,
    )
    comms = gpd.GeoDataFrame(
        {"code": ["1"], "name": ["c"]}, geometry=[shapely.box(0, 0, n * 100, 100)], crs=3857
    )
    page = district_map({"communities": comms, "grids": grids}).get_root().render()
    styler = next(
        m.group(1)
        for m in re.finditer(r"switch\(feature\.id\) \{(.*?)\n\s*\}\n", page, re.S)
        if "fillColor" in m.group(1)
    )
    by_id, default = {}, None
    # folium groups features of one style: `case "1": case "3": return {...};`
    for labels, fill in re.findall(
        r'((?:(?:case "\d+"|default):\s*)+)return \{[^}]*"fillColor": "([^"]+)"', styler
    ):
        for label in re.findall(r'case "(\d+)"|(default)', labels):
            if label[1]:
                default = fill
            else:
                by_id[int(label[0])] = fill
    return [by_id.get(i, default) for i in range(n)]


def test_both_maps_paint_a_grid_by_the_band_the_engine_uses():
    band = Params().households
    style = redmap_style("http://x")
    fill = next(layer for layer in style["layers"] if layer["id"] == "grids-fill")
    maplibre = [
        _evaluate(fill["paint"]["fill-color"], {"households": h, "grid_type": "basic"})
        for h in EDGES
    ]
    folium = _folium_fills(EDGES)
    assert folium == maplibre  # one palette: the same colour on demo.html and on /map
    out_colour = {maplibre[0], maplibre[-1]}  # under the floor, over the ceiling
    for h, colour in zip(EDGES, maplibre, strict=True):
        assert (colour not in out_colour) == bool(band.contains(h)), h
    dedicated = {"households": 500, "grid_type": "dedicated"}
    assert _evaluate(fill["paint"]["fill-color"], dedicated) not in out_colour


def test_crs_names_read_alike_by_import_and_lookup(small):
    ws = Workspace(small)
    grids = ws.read("grids").to_crs(4326)
    point = grids.geometry.iloc[0].representative_point()
    code = grids["grid_code"].iloc[0]
    glon, glat = (float(v) for v in wgs84_to_gcj02(point.x, point.y))
    blon, blat = (float(v) for v in wgs84_to_bd09(point.x, point.y))
    runner = CliRunner()
    for crs, x, y in (("GCJ-02", glon, glat), ("gcj_02", glon, glat), ("BD-09", blon, blat)):
        result = runner.invoke(
            app, ["lookup", str(small), "--lon", str(x), "--lat", str(y), "--crs", crs]
        )
        assert result.exit_code == 0, (crs, result.output)
        assert json.loads(result.output)["grid"]["code"] == code, crs
    bad = runner.invoke(app, ["lookup", str(small), "--lon", "1", "--lat", "1", "--crs", "mars"])
    assert bad.exit_code == 2 and "unknown CRS 'mars'" in bad.output


def test_every_run_row_is_written_alike(tmp_path):
    ws = make_town(tmp_path / "t.gpkg", nine_blocks(hh=100, step=(135, 80)))
    delineate(ws)
    grids = ws.read("grids")
    buildings = ws.read("buildings").set_index("building_id")
    bid = "b0002"
    own = buildings.loc[bid, "grid_code"]
    near = next(
        c
        for c, g in zip(grids["grid_code"], grids.geometry, strict=True)
        if c != own and g.distance(buildings.geometry[bid]) < 15
    )
    move(ws, building=bid, to=near, force=True)
    rollback(ws, 1)
    runs = pd.DataFrame(ws.read("runs"))
    assert runs["kind"].tolist() == ["delineate", "move", "rollback"]
    assert runs["run_id"].tolist() == [1, 2, 3]
    digests = runs["input_digest"].tolist()
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in digests), digests
    assert digests[2] == digests[0]  # the rollback restored the buildings' grid codes
    assert digests[1] != digests[0]  # the move changed one
    for row in runs.itertuples():
        assert json.loads(row.changes) is not None and json.loads(row.params) is not None
        assert np.isfinite(row.seconds)
