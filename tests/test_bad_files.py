"""Files as offices and the web send them: a corpus of bad ones is refused with exit 2 and
one line naming the input and the fix; awkward good ones (GBK without .cpg, Z and M,
curves, decimal commas) are read as they are."""

from __future__ import annotations

import re
import shutil
import struct

import numpy as np
import pandas as pd
import pyogrio
import pyogrio.raw
import pytest
import shapely
from typer.testing import CliRunner

from gisgrid.cli import app
from gisgrid.io.workspace import Workspace

from .badfiles import corpus


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    import geopandas as gpd

    from .conftest import local_frame, square

    good = local_frame(
        {"building_id": ["b1", "b2", "b3", "b4"], "kind": ["residential"] * 4, "floors": [6] * 4},
        [square(100, 100, 40), square(300, 100, 40), square(1100, 100, 30), square(1300, 300, 40)],
        crs=4326,
    )
    assert isinstance(good, gpd.GeoDataFrame)
    return corpus(good, tmp_path_factory.mktemp("bad"))


def test_the_corpus_is_big_enough(cases):
    assert len(cases) >= 40


def _import(ws, *args):
    return CliRunner().invoke(app, ["import", str(ws), *map(str, args)])


def _refusal(case, ws) -> str:
    """What is wrong with how ``case`` was handled ('' when it was refused as it must be)."""
    before = ws.read_bytes()
    result = _import(ws, case.layer, case.path, *case.args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"raised {result.exception!r}"
    if result.exit_code != 2:
        return f"exit {result.exit_code}: {result.output[-300:]}"
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    line = " ".join(result.output.split())  # a long line wraps on a narrow terminal
    option = [a for a in case.args if a.startswith("--")] or ["--"]
    named = case.path.name in line or option[0] in line or case.layer in line
    wrong = [
        "not one error line" if len(errors) != 1 else "",
        "names neither the file nor the option" if not named else "",
        f"does not say {case.says!r}" if case.says not in line else "",
        "shows a traceback" if "Traceback" in result.output else "",
        "changed the workspace" if ws.read_bytes() != before else "",
    ]
    found = re.search(r"all ([\d,]+) rows of the file|([\d,]+) of ([\d,]+) rows", line)
    if found and case.path.exists():  # rows read = written + rejected, nothing written
        read = int((found.group(1) or found.group(3)).replace(",", ""))
        if read != len(pyogrio.read_dataframe(case.path, read_geometry=False)):
            wrong.append(f"counts {read} rows read")
    wrong = [w for w in wrong if w]
    return f"{'; '.join(wrong)}: {line}" if wrong else ""


def test_every_bad_file_is_refused_in_one_line_naming_it_and_the_fix(
    cases, workspace_with_communities
):
    failures = {c.name: why for c in cases if (why := _refusal(c, workspace_with_communities))}
    assert not failures, failures


def test_rows_read_are_written_plus_rejected(tmp_path, workspace_with_communities):
    from .conftest import local_frame, square

    frame = local_frame(
        {"building_id": ["a", "b", "c", "d"], "households": [30, np.inf, 40, 500]},
        [square(100, 100, 40), square(300, 100, 40), square(500, 100, 40), square(700, 100, 4)],
        crs=4326,
    )
    frame.to_file(tmp_path / "b.gpkg")
    result = _import(workspace_with_communities, "buildings", tmp_path / "b.gpkg")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert re.search(r"rows read │ 4 │ │ written │ 2 │", text), text
    rejected = Workspace(workspace_with_communities).read("rejected")
    reasons = sorted(r.split(":")[0] for r in rejected["reason"])
    assert reasons == ["households implausible", "households is not finite"]


def test_a_gbk_shapefile_without_cpg_keeps_its_chinese(tmp_path, workspace_with_communities):
    from .conftest import local_frame, square

    frame = local_frame(
        {"building_id": ["b1", "b2"], "name": ["建设村3组", "田心街道办事处"], "floors": [3, 4]},
        [square(100, 100, 40), square(300, 100, 40)],
        crs=4326,
    )
    path = tmp_path / "楼栋.shp"
    frame.to_file(path, encoding="gbk")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    result = _import(workspace_with_communities, "buildings", path)
    assert result.exit_code == 0, result.output
    assert "GB18030" in result.output
    names = Workspace(workspace_with_communities).read("buildings")["name"].tolist()
    assert names == ["建设村3组", "田心街道办事处"]
    # a .cpg is honoured, and --encoding forces one
    path.with_suffix(".cpg").write_text("GBK")
    assert _import(workspace_with_communities, "buildings", path).exit_code == 0
    path.with_suffix(".cpg").unlink()
    forced = _import(workspace_with_communities, "buildings", path, "--encoding", "gbk")
    assert forced.exit_code == 0 and "GB18030" not in forced.output
    assert Workspace(workspace_with_communities).read("buildings")["name"].tolist() == names
    wrong = _import(workspace_with_communities, "buildings", path, "--encoding", "utf-8")
    assert wrong.exit_code == 2 and "--encoding" in wrong.output and "Traceback" not in wrong.output


def test_a_gbk_csv_with_semicolons_and_decimal_commas(tmp_path, workspace_with_communities):
    from .conftest import local_frame, square

    point = local_frame({"a": [1]}, [square(100, 100, 40)]).geometry.centroid.to_crs(4326).iloc[0]
    lon, lat = (f"{v:.6f}".replace(".", ",") for v in (point.x, point.y))
    text = f"编号;经度;纬度;户数;地址\np1;{lon};{lat};3;建设路1号\n"
    (tmp_path / "人口.csv").write_bytes(text.encode("gbk"))
    result = _import(
        workspace_with_communities,
        "census_points",
        tmp_path / "人口.csv",
        "--crs",
        "wgs84",
        "--id-field",
        "编号",
        "--field-map",
        "户数=households",
        "--field-map",
        "地址=address",
    )
    assert result.exit_code == 0, result.output
    assert "GB18030" in result.output and "decimal commas" in result.output
    stored = Workspace(workspace_with_communities).read("census_points").to_crs(4326)
    assert stored["address"].tolist() == ["建设路1号"]
    assert abs(stored.geometry.x.iloc[0] - point.x) < 1e-5


def _wkb_points(coords):
    return struct.pack("<I", len(coords)) + b"".join(
        struct.pack("<" + "d" * len(c), *c) for c in coords
    )


def _polygon_wkb(ring, kind=3):
    return struct.pack("<BII", 1, kind, 1) + _wkb_points(ring)


def _curve_wkb(ring):  # a CurvePolygon of one CircularString
    return struct.pack("<BII", 1, 10, 1) + struct.pack("<BI", 1, 8) + _wkb_points(ring)


@pytest.mark.parametrize("kind", ["Polygon ZM", "CurvePolygon", "MultiSurface"])
def test_z_m_and_curves_are_read_in_2d_and_linear(kind, tmp_path, workspace_with_communities):
    from .conftest import local_frame, square

    box = local_frame({"a": [1]}, [square(100, 100, 40)], crs=4326).geometry.iloc[0]
    (x0, y0, x1, y1) = box.bounds
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    arc = [(x0, y0), ((x0 + x1) / 2, y1), (x1, y0), ((x0 + x1) / 2, y0 - (y1 - y0)), (x0, y0)]
    wkb = {
        "Polygon ZM": _polygon_wkb([(*p, 12.0, 3.0) for p in ring], kind=3003),
        "CurvePolygon": _curve_wkb(arc),
        "MultiSurface": struct.pack("<BII", 1, 12, 2) + _polygon_wkb(ring) + _curve_wkb(arc),
    }[kind]
    path = tmp_path / "odd.gpkg"
    pyogrio.raw.write(
        path,
        geometry=np.array([wkb], dtype=object),
        field_data=[np.array(["b1"], dtype=object)],
        fields=["building_id"],
        geometry_type="Unknown",
        crs="EPSG:4326",
        driver="GPKG",
    )
    result = _import(workspace_with_communities, "buildings", path)
    assert result.exit_code == 0, result.output
    assert ("Z and M dropped" if "ZM" in kind else "curves linearised") in result.output
    stored = Workspace(workspace_with_communities).read("buildings")
    geom = stored.geometry.iloc[0]
    assert not shapely.has_z(geom) and geom.geom_type in ("Polygon", "MultiPolygon")
    assert geom.is_valid and geom.area > 100


def test_a_workspace_that_cannot_be_written_is_one_line(tmp_path, streets_file):
    (tmp_path / "afile").write_text("x")
    for where in (tmp_path / "afile" / "ws.gpkg", "/proc/ws.gpkg"):
        result = _import(where, "streets", streets_file)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "folder that exists" in " ".join(result.output.split()), result.output
    shutil.rmtree(tmp_path / "afile", ignore_errors=True)


def test_population_band_follows_the_household_band(tmp_path):
    from gisgrid.delineate.community import Params
    from gisgrid.delineate.partition import Band

    assert Params().population == Band(1048, 786, 1310)  # 300–500 households × 2.62
    assert Params(band=(200, 400), persons_per_household=3.0).population_band == (600, 1200)
    assert Params(population_band=(900, 1500)).population.low == 900
    # persons per household measured from the buildings when not set; given, it stays
    measured = Params().with_people(households=1000, population=3150)
    assert (measured.persons_per_household, measured.population_band) == (3.15, (945, 1575))
    assert Params().with_people(households=1000, population=0).population_band == (786, 1310)
    given = Params(persons_per_household=2.0).with_people(households=1000, population=3150)
    assert given.population_band == (600, 1000)
    assert pd.Series(Params().population.contains(pd.Series([786, 1310, 785, 1311]))).tolist() == [
        True,
        True,
        False,
        False,
    ]
