"""Exports read back by other software: GDAL (Shapefile, GeoJSON, GeoPackage), openpyxl
(xlsx), and PDFium's text extraction (PDF)."""

from __future__ import annotations

import shutil
import sqlite3
import xml.etree.ElementTree as ET
import zipfile

import pandas as pd
import pyogrio
import pytest
import shapely
from typer.testing import CliRunner

from gisgrid import InputError
from gisgrid.cli import app
from gisgrid.delineate.publication import published_grids
from gisgrid.io.workspace import Workspace
from gisgrid.publish.export import FIELDS, export_grids
from gisgrid.roster.roster import rosters


@pytest.fixture
def ws(small, tmp_path) -> Workspace:
    shutil.copy(small, tmp_path / "w.gpkg")
    return Workspace(tmp_path / "w.gpkg")


def _published(ws: Workspace) -> pd.DataFrame:
    return published_grids(ws).sort_values("grid_code").reset_index(drop=True)


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_shapefile_zip_with_its_cpg_in_utf8_or_gbk(ws, tmp_path, encoding):
    out = export_grids(ws, tmp_path / "grids.shp", format="shp", encoding=encoding)
    assert out.suffix == ".zip"
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert {"grids.shp", "grids.shx", "grids.dbf", "grids.prj", "grids.cpg"} <= names
        assert z.read("grids.cpg").decode() == {"utf-8": "UTF-8", "gbk": "GBK"}[encoding]
        dbf = z.read("grids.dbf")
    grids = _published(ws)
    name = grids["name"].iloc[0]
    assert name.encode(encoding) in dbf  # the bytes themselves are in that encoding
    back = pyogrio.read_dataframe(f"/vsizip/{out}/grids.shp")
    assert back["grid_code"].tolist() == grids["grid_code"].tolist()
    assert back["name"].tolist() == grids["name"].tolist()  # Chinese intact through GDAL
    assert back["comm_code"].tolist() == grids["community_code"].tolist()
    assert pyogrio.read_info(f"/vsizip/{out}/grids.shp")["crs"] == f"EPSG:{ws.crs.to_epsg()}"
    areas = shapely.area(back.geometry.values)
    assert (abs(areas - shapely.area(grids.geometry.values)) < 0.01).all()


def test_a_name_gbk_cannot_hold_is_refused_and_nothing_written(ws, tmp_path):
    grids = ws.read("published_grids")
    grids.loc[0, "name"] = "响石岭社区😀网格"
    ws.write({"published_grids": grids})
    with pytest.raises(InputError, match=r"GBK.*UTF-8"):
        export_grids(Workspace(ws.location), tmp_path / "g.zip", format="shp", encoding="gbk")
    assert not list(tmp_path.glob("*g.*zip"))
    with pytest.raises(InputError, match="utf-8 or gbk"):
        export_grids(ws, tmp_path / "g.zip", format="shp", encoding="latin-1")


def test_geojson_is_lon_lat(ws, tmp_path):
    out = export_grids(ws, tmp_path / "grids.geojson", format="geojson")
    back = pyogrio.read_dataframe(out)
    assert back.crs.to_epsg() == 4326
    minx, miny, maxx, maxy = back.total_bounds
    assert 113 < minx < maxx < 114 and 27 < miny < maxy < 28.5  # Zhuzhou, lon first
    assert back["grid_code"].map(type).eq(str).all()
    expected = _published(ws).to_crs(4326)
    # RFC 7946: rings counter-clockwise, 7 decimals (1 cm): the same outlines within that
    assert (shapely.hausdorff_distance(back.geometry.values, expected.geometry.values) < 2e-7).all()
    assert shapely.is_ccw(shapely.get_exterior_ring(back.geometry.values)).all()


def test_geopackage_opens_with_qgis_styles_and_chinese_aliases(ws, tmp_path):
    out = export_grids(ws, tmp_path / "grids.gpkg", format="gpkg")
    layers = {name for name, _ in pyogrio.list_layers(out)}
    assert {"grids", "communities", "layer_styles"} <= layers
    back = pyogrio.read_dataframe(out, layer="grids")
    assert shapely.equals(back.geometry.values, _published(ws).geometry.values).all()
    with sqlite3.connect(out) as db:
        styles = db.execute(
            "SELECT f_table_name, f_geometry_column, styleQML, useAsDefault FROM layer_styles"
        ).fetchall()
        columns = dict(
            db.execute(
                "SELECT column_name, name FROM gpkg_data_columns WHERE table_name = 'grids'"
            ).fetchall()
        )
        extension = db.execute(
            "SELECT extension_name FROM gpkg_extensions WHERE table_name = 'gpkg_data_columns'"
        ).fetchall()
    assert {s[0] for s in styles} == {"grids", "communities"} and all(s[3] for s in styles)
    qml = ET.fromstring(next(s[2] for s in styles if s[0] == "grids").split("\n", 1)[1])
    aliases = {a.get("field"): a.get("name") for a in qml.iter("alias")}
    assert aliases["grid_code"] == "网格编码" and aliases["households"] == "户数"
    assert set(aliases) <= set(back.columns)
    assert qml.find(".//text-style").get("fieldName") == "name"
    assert columns["grid_worker"] == "网格员" and extension == [("gpkg_schema",)]


def test_xlsx_has_chinese_headers_and_codes_as_text(ws, tmp_path):
    from openpyxl import load_workbook

    out = export_grids(ws, tmp_path / "grids.xlsx", format="xlsx")
    book = load_workbook(out)
    assert book.sheetnames == ["网格", "社区汇总", "说明"]
    sheet = book["网格"]
    headers = [c.value for c in sheet[1]]
    assert headers[:3] == ["网格编码", "网格名称", "网格类型"] and "网格员" in headers
    rows = list(sheet.iter_rows(min_row=2))
    grids = _published(ws)
    assert len(rows) == len(grids)
    code = headers.index("网格编码")
    for row, expected in zip(rows, grids.itertuples(), strict=True):
        cell = row[code]
        assert cell.data_type == "s" and cell.value == expected.grid_code  # text, 15 digits
        assert cell.number_format == "@"
        assert row[headers.index("网格名称")].value == expected.name
        assert row[headers.index("户数")].value == expected.households
    roster = rosters(ws, private=False).set_index("grid_code")
    first = rows[1]
    assert first[headers.index("网格员")].value == roster.loc[first[code].value, "grid_worker"]
    summary = book["社区汇总"]
    assert summary["A2"].data_type == "s" and len(summary["A2"].value) == 12
    assert summary["D2"].value == grids["households"].sum()


def test_pdf_maps_and_notice_boards_read_back_as_text(ws, tmp_path):
    import pypdfium2 as pdfium

    out = export_grids(ws, tmp_path / "grids.pdf", format="pdf", paper="A3")
    pdf = pdfium.PdfDocument(out)
    grids = _published(ws)
    assert len(pdf) == 1 + len(grids)  # one community: its map, then a board per grid
    width, height = pdf[0].get_size()  # points: the map is A3 landscape
    assert abs(width - 420 / 25.4 * 72) < 1 and abs(height - 297 / 25.4 * 72) < 1
    first = pdf[0].get_textpage().get_text_range()
    assert "网格划分图" in first and "图例" in first and "北" in first and " m" in first
    for code in grids["grid_code"]:
        assert code in first
    roster = rosters(ws, private=False).set_index("grid_code")
    for i, row in enumerate(grids.itertuples(), start=1):
        text = pdf[i].get_textpage().get_text_range()
        assert "网格公示牌" in text and row.grid_code in text and row.name in text
        assert roster.loc[row.grid_code, "grid_worker"] in text
        assert roster.loc[row.grid_code, "police_post"] in text
        assert "服务电话" in text and "网格党支部" in text
    big = export_grids(ws, tmp_path / "a0.pdf", format="pdf", paper="A0")
    w, h = pdfium.PdfDocument(big)[1].get_size()  # a notice board: portrait
    assert abs(w - 841 / 25.4 * 72) < 1 and abs(h - 1189 / 25.4 * 72) < 1


def test_cli_export_draft_and_bad_requests(ws, tmp_path):
    from gisgrid.delineate.edits import move

    from .test_plan import movable

    building, old, new = movable(ws)
    move(Workspace(ws.location), to=new, building=building)
    runner = CliRunner()
    published = runner.invoke(app, ["export", ws.location, str(tmp_path / "p.xlsx")])
    draft = runner.invoke(app, ["export", ws.location, str(tmp_path / "d.geojson"), "--draft"])
    assert published.exit_code == 0 and draft.exit_code == 0, published.output + draft.output
    from openpyxl import load_workbook

    sheet = load_workbook(tmp_path / "p.xlsx")["网格"]
    counts = {r[0].value: r[7].value for r in sheet.iter_rows(min_row=2)}
    drafted = pyogrio.read_dataframe(tmp_path / "d.geojson").set_index("grid_code")
    assert counts[old] == _published(ws).set_index("grid_code").loc[old, "households"]
    assert drafted.loc[old, "households"] < counts[old]  # the draft holds the move
    for args, words in (
        ([str(tmp_path / "x.docx")], "unknown export format"),
        ([str(tmp_path / "x.xlsx"), "--encoding", "gbk"], "Shapefiles"),
        ([str(tmp_path / "x.pdf"), "--paper", "B5"], "unknown paper"),
        ([str(tmp_path / "x.gpkg"), "--community", "430204999999"], "no grids in community"),
    ):
        result = runner.invoke(app, ["export", ws.location, *args])
        assert result.exit_code == 2 and words in result.output, result.output
        assert "Traceback" not in result.output
    assert list(FIELDS)[:2] == ["grid_code", "name"]
