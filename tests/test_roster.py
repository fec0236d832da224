"""Rosters: what each grid's people and places are, and what the public may see."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from gisgrid._errors import InputError
from gisgrid.cli import app
from gisgrid.io.workspace import Workspace
from gisgrid.roster.roster import roster, rosters


def test_a_grid_roster_names_its_people_and_places(small):
    ws = Workspace(small)
    grid = ws.read("grids").query("grid_type == 'basic'")["grid_code"].iloc[0]
    r = roster(ws, grid, private=True)
    a = ws.read("assignments")
    mine = a[a["grid_code"] == grid]
    assert r["grid_worker"] == mine.loc[mine["role"] == "grid_worker", "name"].iloc[0]
    assert r["community"].endswith("社区居委会") and r["street"].endswith("街道")
    assert r["building_chief_count"] == (mine["role"] == "building_chief").sum() > 0
    assert r["service_site_phone"].startswith("0733-")
    assert 0 < r["service_site_min"] < 60
    police = a[(a["role"] == "police") & (a["community_code"] == r["community_code"])]
    assert r["police"] == police["name"].iloc[0]
    with pytest.raises(InputError, match="no grid '999'"):
        roster(ws, "999")


def test_public_rosters_hold_no_private_roles_or_phones(small):
    ws = Workspace(small)
    public = rosters(ws, private=False)
    staff = rosters(ws, private=True)
    assert {"grid_chief", "police", "building_chief", "party_contact"} <= set(staff.columns)
    assert not {"grid_chief", "police", "building_chief", "party_contact"} & set(public.columns)
    personal = set(ws.read("resources")["personal_phone"].dropna()) - {""}
    text = public.to_csv(index=False)
    assert personal and not any(p in text for p in personal)
    private_names = set(
        ws.read("assignments").query("role in ['building_chief', 'party_contact']")["name"]
    ) - set(public["grid_worker"])
    assert not any(name in text for name in private_names)


def test_cli_roster_prints_one_and_exports_all(small, tmp_path):
    ws = Workspace(small)
    grid = ws.read("grids")["grid_code"].iloc[1]
    one = CliRunner().invoke(app, ["roster", str(small), grid])
    assert one.exit_code == 0, one.output
    assert "网格员 grid_worker" in one.output and "党群服务站" in one.output
    out = tmp_path / "rosters.csv"
    every = CliRunner().invoke(app, ["roster", str(small), "--all", "--csv", str(out)])
    assert every.exit_code == 0, every.output
    table = pd.read_csv(out, encoding="utf-8-sig", dtype=str)
    assert sorted(table["grid_code"]) == sorted(ws.read("grids")["grid_code"])
    assert CliRunner().invoke(app, ["roster", str(small), "430"]).exit_code == 2
    assert CliRunner().invoke(app, ["roster", str(small)]).exit_code == 2


def test_demo_map_shows_service_areas_and_rosters(demo_full):
    page = demo_full.map.read_text(encoding="utf-8")

    def shown(text: str) -> bool:  # folium writes some labels JSON-escaped
        return text in page or json.dumps(text)[1:-1] in page

    assert shown("15分钟服务圈 service areas")
    assert shown("未覆盖 households beyond 15 min")
    assert shown("网格员") and shown("党群服务站") and shown("步行分钟")
    personal = set(Workspace(demo_full.workspace).read("resources")["personal_phone"]) - {""}
    assert not any(p in page for p in list(personal)[:500])
