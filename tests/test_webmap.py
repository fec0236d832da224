"""demo.html: self-contained, and a real browser draws the district."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_page_loads_nothing_from_the_network(demo_full):
    page = demo_full.map.read_text(encoding="utf-8")
    external = re.findall(r"<(?:script|link|img)[^>]+(?:src|href)=[\"'](https?:)?//", page)
    assert external == []
    name = "叫鸡岭社区居委会"  # folium writes GeoJSON with \\u escapes; either form counts
    assert "L.map(" in page and (name in page or json.dumps(name)[1:-1] in page)
    assert "personal_phone" not in page  # private contact data stays out of the map


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_headless_chromium_screenshot_shows_the_district(demo_full, tmp_path):
    shot = tmp_path / "demo.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,900",
            "--virtual-time-budget=10000",
            f"--screenshot={shot}",
            demo_full.map.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    background = np.array([0xEF, 0xE9, 0xDF])
    painted = np.abs(pixels - background).sum(axis=2) > 30
    dark_red = (
        (pixels[..., 0] > 110)
        & (pixels[..., 0] < 200)
        & (pixels[..., 1] < 60)
        & (pixels[..., 2] < 60)
    )  # the street and community outlines
    assert painted.mean() > 0.05, "the district was not drawn"
    assert dark_red.sum() > 2000, "no red boundaries were drawn"
    rows, cols = np.nonzero(dark_red)
    assert np.ptp(rows) > 300 and np.ptp(cols) > 300  # boundaries span the view, not a corner


def test_map_shows_the_grids_coloured_by_households(demo_full):
    from gisgrid.io.workspace import Workspace
    from gisgrid.publish.palette import DEDICATED_COLOUR, Palette

    page = demo_full.map.read_text(encoding="utf-8")
    grids = Workspace(demo_full.workspace).read("grids")
    first = grids["grid_code"].iloc[0]
    assert f'"grid_code": "{first}"' in page
    for field in ("households", "population", "grid_type"):
        assert f'"{field}"' in page  # the tooltip's fields travel with each grid
    palette = Palette()
    assert palette.colour(250) != palette.colour(400)
    assert palette.colour(0, "dedicated") == DEDICATED_COLOUR
