"""The workbench in a real browser (Debian's Chromium, headless, driven by playwright),
used as a planner would: log in, move a compound, see the counts change, undo, redo,
lock, re-delineate with a progress bar, publish; the public /map shows the move after
publishing and not before."""

from __future__ import annotations

import shutil

import httpx
import pytest

from gisgrid.io.workspace import Workspace

from .conftest import KEYS, serving

SECOND = "another-planner"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def _split_compound(ws: Workspace) -> tuple[str, str, str, str, tuple[float, float]]:
    """A compound across two grids: (compound, the grid holding less of it, the grid holding
    more, a building of the smaller part, that building's lon/lat)."""
    b = ws.read("buildings")
    split = b.groupby("compound_id")["grid_code"].nunique()
    compound = split[split > 1].index[0]
    mine = b[b["compound_id"] == compound]
    per = mine.groupby("grid_code")["households"].sum().sort_values()
    small, big = per.index[0], per.index[-1]
    one = mine[mine["grid_code"] == small].iloc[[0]]
    point = one.geometry.representative_point().to_crs(4326).iloc[0]
    return compound, small, big, one["building_id"].iloc[0], (point.x, point.y)


def _households(page, code: str) -> int:
    return int(page.get_attribute(f"#grids tr[data-code='{code}']", "data-households"))


def _public_grid_at(page, base: str, lon: float, lat: float) -> str:
    page.goto(f"{base}/map")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    page.evaluate("document.body.dataset.popup = ''")
    xy = page.evaluate(
        "([lon, lat]) => { const m = window.gisgridMap; m.jumpTo({center: [lon, lat], zoom: 17});"
        " const p = m.project([lon, lat]); return [p.x, p.y]; }",
        [lon, lat],
    )
    page.mouse.click(*xy)
    page.wait_for_function("document.body.dataset.popup", timeout=20_000)
    return page.evaluate("document.body.dataset.popup")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_a_planner_works_the_page_and_the_public_sees_only_what_is_published(small, tmp_path):
    from playwright.sync_api import sync_playwright

    shutil.copy(small, tmp_path / "w.gpkg")
    compound, leaving, staying, building, (lon, lat) = _split_compound(
        Workspace(tmp_path / "w.gpkg")
    )
    b = Workspace(tmp_path / "w.gpkg").read("buildings")
    g = Workspace(tmp_path / "w.gpkg").read("grids").set_index("grid_code")["households"]
    arriving = int(
        b[(b["compound_id"] == compound) & (b["grid_code"] == leaving)]["households"].sum()
    )
    want = {leaving: int(g[leaving]) - arriving, staying: int(g[staying]) + arriving}

    with (
        serving(tmp_path / "w.gpkg", tmp_path, keys={SECOND: "planner"}) as (base, where),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        requests: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        public = browser.new_page(viewport={"width": 900, "height": 700})
        assert _public_grid_at(public, base, lon, lat) == leaving

        # log in: a wrong key is refused on the page, the planner's key opens the work
        page.goto(f"{base}/plan")
        page.fill("#key", KEYS["staff"])
        page.click("#login button")
        page.wait_for_function("document.body.dataset.msg?.startsWith('error:')")
        assert "planner" in page.inner_text("#msg")
        page.fill("#key", KEYS["planner"])
        page.click("#login button")
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        assert _households(page, leaving) == int(g[leaving])

        # pick a building of the compound on the map, then the whole compound
        xy = page.evaluate(
            "async ([lon, lat]) => { const m = window.gisgridPlan.map;"
            " m.jumpTo({center: [lon, lat], zoom: 18});"
            " await new Promise(r => m.once('idle', r));"
            " const p = m.project([lon, lat]); const box = m.getCanvas().getBoundingClientRect();"
            " return [box.left + p.x, box.top + p.y]; }",
            [lon, lat],
        )
        page.mouse.click(*xy)
        page.wait_for_function(
            f"document.getElementById('selection').innerText.includes('{building}')"
        )
        page.click("#compound")
        assert compound in page.inner_text("#selection")
        page.select_option("#target", staying)
        page.click("#checkmove")
        page.wait_for_selector("#check[data-reasons]")
        check = page.inner_text("#check")
        assert f"{g[staying]} → {want[staying]}" in check and "⚠" in check  # over the band
        page.click("#domove")  # not without the override
        page.wait_for_function("document.body.dataset.msg?.includes('强制')")
        page.check("#force")
        page.fill("#reason", "院落合并 one compound, one grid")
        page.click("#domove")
        page.wait_for_function("document.body.dataset.msg?.includes('已移动')", timeout=60_000)
        page.wait_for_function(
            f"document.querySelector(\"#grids tr[data-code='{staying}']\")"
            f"?.dataset.households == '{want[staying]}'"
        )
        assert _households(page, leaving) == want[leaving]

        # undo, redo
        page.click("#undo")
        page.wait_for_function("document.body.dataset.msg?.includes('已撤销')", timeout=60_000)
        page.wait_for_function(
            f"document.querySelector(\"#grids tr[data-code='{staying}']\")"
            f"?.dataset.households == '{g[staying]}'"
        )
        page.click("#redo")
        page.wait_for_function("document.body.dataset.msg?.includes('已重做')", timeout=60_000)
        page.wait_for_function(
            f"document.querySelector(\"#grids tr[data-code='{staying}']\")"
            f"?.dataset.households == '{want[staying]}'"
        )

        # another planner locks a third grid: undoing now would discard that, so the page
        # says so, and nothing is undone
        third = next(c for c in g.index if c not in (leaving, staying))
        other = httpx.post(
            f"{base}/plan/locks",
            json={"grid_codes": [third]},
            headers={"X-API-Key": SECOND},
            timeout=60,
        )
        assert other.status_code == 200
        page.click("#undo")
        page.wait_for_function("document.body.dataset.msg?.startsWith('error:冲突')")
        assert "changed since your last edit" in page.inner_text("#msg")
        page.wait_for_selector(f"input.lock[data-code='{third}']:checked")  # reloaded
        assert _households(page, staying) == want[staying]

        # lock both grids, re-delineate the community and watch the progress bar
        for code in (leaving, staying):
            page.check(f"input.lock[data-code='{code}']")
            page.wait_for_selector(f"input.lock[data-code='{code}']:checked")
        page.click("#delineate")
        page.wait_for_function("document.body.dataset.job === 'running'")
        assert page.is_visible("#jobbar")
        page.wait_for_function("document.body.dataset.job === 'done'", timeout=120_000)
        assert page.evaluate("document.getElementById('jobbar').value") == 1
        assert _households(page, staying) == want[staying]  # locked grids kept as they are

        # compare the first run with the draft on the map
        runs = page.eval_on_selector_all("#runa option", "os => os.map(o => o.value)")
        page.select_option("#runa", runs[0])
        page.select_option("#runb", runs[-1])
        page.click("#compare")
        page.wait_for_function("document.getElementById('diff').innerText.includes('→')")
        assert "building_moved" in page.inner_text("#diff")
        assert page.evaluate("document.body.dataset.compared") == f"{len(g)}→{len(g)}"

        # not public before publishing
        assert _public_grid_at(public, base, lon, lat) == leaving
        page.fill("#note", "街道办 2026-12-01 批准")
        page.click("#publish")
        page.wait_for_function("document.body.dataset.msg?.includes('已发布')", timeout=60_000)
        assert page.evaluate("document.body.dataset.publishedRun") == page.evaluate(
            "document.body.dataset.draftRun"
        )
        assert _public_grid_at(public, base, lon, lat) == staying

        # hand it on: the published grids as Excel, from the page
        page.select_option("#xformat", "xlsx")
        with page.expect_download() as download:
            page.click("#export")
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        page.screenshot(path=str(tmp_path / "plan.png"))
        browser.close()
    assert not errors, errors
    assert all(u.startswith(base) or u.startswith(("data:", "blob:")) for u in requests)
    from openpyxl import load_workbook

    rows = {r[0].value: r for r in load_workbook(saved)["网格"].iter_rows(min_row=2)}
    assert rows[staying][7].value == want[staying] and rows[staying][0].data_type == "s"
    stored = Workspace(where).read("buildings")
    assert set(stored[stored["compound_id"] == compound]["grid_code"]) == {staying}
