"""Jurisdictions are checked on import: overlapping communities and land of a street in no
community are reported with the pairs and areas, and refused unless --repair."""

from __future__ import annotations

import shapely
from typer.testing import CliRunner

from gisgrid.cli import app
from gisgrid.io.workspace import Workspace

from .conftest import X0, Y0, local_frame, square


def _communities(path, geoms):
    local_frame(
        {
            "code": ["430204001002", "430204001003"],
            "name": ["叫鸡岭社区", "东门社区"],
            "parent_code": ["430204001000", "430204001000"],
        },
        geoms,
        crs=4326,
    ).to_file(path)
    return path


def _import(ws, *args):
    return CliRunner().invoke(app, ["import", str(ws), *map(str, args)])


def test_overlapping_communities_are_refused_then_repaired(tmp_path, streets_file):
    ws = tmp_path / "ws.gpkg"
    assert _import(ws, "streets", streets_file).exit_code == 0
    # drawn twice along their shared line: 100 m × 1000 m claimed by both
    both = _communities(
        tmp_path / "c.geojson",
        [
            square(0, 0, 1000).union(shapely.box(X0 + 1000, Y0, X0 + 1100, Y0 + 1000)),
            square(1000, 0, 1000),
        ],
    )
    refused = _import(ws, "communities", both)
    text = " ".join(refused.output.split())
    assert refused.exit_code == 2, refused.output
    assert "430204001002×430204001003 100,000 m²" in text and "--repair" in text
    assert "communities" not in Workspace(ws)
    repaired = _import(ws, "communities", both, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "repaired overlaps" in " ".join(repaired.output.split())
    a, b = Workspace(ws).read("communities").geometry.values
    assert shapely.intersection(a, b).area < 1.0  # independent check: no land claimed twice
    assert abs(a.area + b.area - 2_000_000) < 10  # and none lost


def test_land_of_a_street_in_no_community_is_a_gap(tmp_path, streets_file):
    ws = tmp_path / "ws.gpkg"
    assert _import(ws, "streets", streets_file).exit_code == 0
    short = _communities(
        tmp_path / "c.geojson",
        [square(0, 0, 1000), shapely.box(X0 + 1000, Y0, X0 + 1900, Y0 + 1000)],
    )  # the east 100 m of the street in none
    refused = _import(ws, "communities", short)
    text = " ".join(refused.output.split())
    assert refused.exit_code == 2 and "street 430204001000 100,000 m²" in text, text
    assert _import(ws, "communities", short, "--repair").exit_code == 0
    comms = Workspace(ws).read("communities").set_index("code")
    assert abs(comms.geometry["430204001003"].area - 1_000_000) < 10  # the neighbour took it
