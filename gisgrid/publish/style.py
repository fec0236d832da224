"""The 红地图 MapLibre style and the dashboard page that uses it.

Our own layers are the base map (no web basemap): land colour, water, roads,
buildings; over them the red theme: grids outlined in red with their code and
household count, communities and streets in darker reds, party organisations as
red markers sized by level, party–mass service sites with their 15-minute
service areas. Fonts: none are fetched; labels use the browser's local CJK font
(``localIdeographFontFamily``) with glyph ranges served empty by the app.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from gisgrid.publish.palette import Palette

__all__ = ["LEGEND", "map_page", "plan_page", "redmap_style"]

RED = "#c00000"
#: legend entries: label, swatch, colour, and the style layers its switch shows and hides
LEGEND = [
    ("网格 grid", "line", RED, ["grids-fill", "grids-line", "grids-label"]),
    ("社区 community", "line", "#8b0000", ["communities-line"]),
    ("街道 street", "line", "#4d0000", ["streets-line"]),
    ("党组织 party organisation", "circle", RED, ["party-orgs"]),
    ("党群服务中心/站 service site", "circle", "#ff4d4f", ["service-sites", "service-sites-label"]),
    ("15分钟服务圈 service area", "fill", "#ffccc7", ["service-areas"]),
    ("楼栋 building", "fill", "#c9a27e", ["buildings"]),
    ("水系 water", "fill", "#9ecae1", ["water"]),
]


def redmap_style(
    base_url: str,
    *,
    center: tuple[float, float] = (113.13, 27.93),
    zoom: float = 12,
    palette: Palette | None = None,
) -> dict:
    """The MapLibre style (spec v8) over the ``redmap`` tileset of a server at ``base_url``."""
    base = base_url.rstrip("/")
    palette = palette or Palette()
    src = "redmap"
    return {
        "version": 8,
        "name": "红地图 redmap",
        "metadata": {"gisgrid:legend": LEGEND},
        "center": list(center),
        "zoom": zoom,
        "glyphs": f"{base}/fonts/{{fontstack}}/{{range}}.pbf",
        "sources": {src: {"type": "vector", "url": f"{base}/tiles/redmap.json"}},
        "layers": [
            *_land(src, palette),
            *_boundaries(src),
            *_markers(src),
            *_labels(src),
        ],
    }


def map_page(title: str, labels: dict[str, str] | None = None) -> str:
    """The dashboard: the style, a legend with layer switches, a roster popup, an address search.

    Parameters
    ----------
    title
        The page title.
    labels
        Roster field → label shown in the popup (the policy's role titles).
    """
    legend = "".join(
        f"<label><input type='checkbox' checked data-layers='{json.dumps(layers)}'>"
        f"<i class='{kind}' style='background:{colour}'></i>{html.escape(name)}</label>"
        for name, kind, colour, layers in LEGEND
    )
    page = (Path(__file__).parent / "web" / "redmap.html").read_text(encoding="utf-8")
    safe = json.dumps(labels or {}, ensure_ascii=False).replace("<", "\\u003c")  # inside <script>
    page = page.replace("{{labels}}", safe)
    return page.replace("{{title}}", html.escape(title)).replace("{{legend}}", legend)


def plan_page(title: str) -> str:
    """The planner's workbench (``/plan``): draft grids of a community with live counts,
    moves with their checks, locks, undo and redo, background re-runs, run comparison
    and publishing. It calls the ``/plan`` routes with the planner's key."""
    page = (Path(__file__).parent / "web" / "plan.html").read_text(encoding="utf-8")
    return page.replace("{{title}}", html.escape(title))


def _land(src: str, palette: Palette) -> list[dict]:
    """Background, water, service areas, grid fills, roads and buildings."""
    return [
        {"id": "background", "type": "background", "paint": {"background-color": "#f4efe6"}},
        {
            "id": "water",
            "type": "fill",
            "source": src,
            "source-layer": "water",
            "paint": {"fill-color": "#9ecae1"},
        },
        {
            "id": "service-areas",
            "type": "fill",
            "source": src,
            "source-layer": "service_areas",
            "paint": {
                "fill-color": "#ff4d4f",
                "fill-opacity": 0.08,
                "fill-outline-color": "#ff7875",
            },
        },
        {
            "id": "grids-fill",
            "type": "fill",
            "source": src,
            "source-layer": "grids",
            "paint": {
                "fill-color": palette.expression(),
                "fill-opacity": 0.45,
            },
        },
        {
            "id": "roads",
            "type": "line",
            "source": src,
            "source-layer": "roads",
            "paint": {
                "line-color": "#ffffff",
                "line-width": [
                    "match",
                    ["get", "road_class"],
                    "arterial",
                    4,
                    "secondary",
                    3,
                    "local",
                    1.5,
                    1,
                ],
            },
        },
        {
            "id": "buildings",
            "type": "fill",
            "source": src,
            "source-layer": "buildings",
            "minzoom": 14,
            "paint": {"fill-color": "#c9a27e", "fill-outline-color": "#7f6a55"},
        },
    ]


def _boundaries(src: str) -> list[dict]:
    """Grid, community and street boundaries."""
    return [
        {
            "id": "grids-line",
            "type": "line",
            "source": src,
            "source-layer": "grids",
            "paint": {"line-color": RED, "line-width": 1.4},
        },
        {
            "id": "communities-line",
            "type": "line",
            "source": src,
            "source-layer": "communities",
            "paint": {"line-color": "#8b0000", "line-width": 2, "line-dasharray": [3, 2]},
        },
        {
            "id": "streets-line",
            "type": "line",
            "source": src,
            "source-layer": "streets",
            "paint": {"line-color": "#4d0000", "line-width": 3},
        },
    ]


def _markers(src: str) -> list[dict]:
    """Service sites and party organisations."""
    return [
        {
            "id": "service-sites",
            "type": "circle",
            "source": src,
            "source-layer": "service_sites",
            "paint": {
                "circle-color": "#ff4d4f",
                "circle-radius": 6,
                "circle-stroke-color": "#fff",
                "circle-stroke-width": 1.5,
            },
        },
        {
            "id": "party-orgs",
            "type": "circle",
            "source": src,
            "source-layer": "party_orgs",
            "filter": ["any", ["!=", ["get", "level"], "branch"], [">=", ["zoom"], 14]],
            "paint": {
                "circle-color": RED,
                "circle-radius": ["match", ["get", "level"], "street", 9, "community", 7, 4],
                "circle-stroke-color": "#ffd700",
                "circle-stroke-width": 1.5,
            },
        },
    ]


def _labels(src: str) -> list[dict]:
    """Grid codes with households, and service site names."""
    return [
        {
            "id": "grids-label",
            "type": "symbol",
            "source": src,
            "source-layer": "grids",
            "minzoom": 14,
            "layout": {
                "text-field": [
                    "concat",
                    ["get", "grid_code"],
                    "\n",
                    ["to-string", ["get", "households"]],
                    " 户",
                ],
                "text-size": 11,
                "text-font": ["Noto Sans Regular"],
            },
            "paint": {
                "text-color": "#7a0000",
                "text-halo-color": "#fff",
                "text-halo-width": 1.2,
            },
        },
        {
            "id": "service-sites-label",
            "type": "symbol",
            "source": src,
            "source-layer": "service_sites",
            "minzoom": 14,
            "layout": {
                "text-field": ["get", "name"],
                "text-size": 11,
                "text-offset": [0, 1.2],
                "text-font": ["Noto Sans Regular"],
            },
            "paint": {
                "text-color": "#a8071a",
                "text-halo-color": "#fff",
                "text-halo-width": 1.2,
            },
        },
    ]
