"""A self-contained folium map of a workspace: no CDN, no web basemap.

Roads, water and buildings drawn from the workspace are the base map, so the
page renders with no internet at all: Leaflet's script and style are inlined
from the copy installed at build time (:mod:`gisgrid.publish.assets`).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import branca
import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid.delineate.history import Diff
from gisgrid.publish.assets import leaflet_css, leaflet_js
from gisgrid.publish.palette import Palette

__all__ = ["KIND_COLOURS", "diff_map", "district_map", "write_map"]

logger = logging.getLogger(__name__)

KIND_COLOURS = {
    "residential": "#c9a27e",
    "mixed": "#d9b38c",
    "village": "#b08968",
    "school": "#4c9be8",
    "hospital": "#2bb673",
    "enterprise": "#8d6cab",
    "market": "#f2a541",
    "public": "#9aa5b1",
}
_ROAD_STYLE = {
    "arterial": (4, "#ffffff"),
    "secondary": (3, "#ffffff"),
    "local": (1.5, "#ffffff"),
    "path": (1, "#e8e2d6"),
}
_RESOURCE_STYLE = {  # kind: (colour, radius, label)
    "party_org": ("#c00000", 6, "党组织"),
    "service_site": ("#ff4d4f", 5, "党群服务中心/站"),
    "police": ("#1f4e99", 5, "警务室/派出所"),
}
_BACKGROUND = "#efe9df"
Layers = Mapping[str, gpd.GeoDataFrame]
_ROSTER_FIELDS = {  # public roster columns shown in a grid's popup
    "community": "社区",
    "street": "街道",
    "grid_worker": "网格员",
    "party_branch": "网格党支部",
    "police_post": "警务室",
    "police_post_phone": "警务室电话",
    "service_site": "党群服务站",
    "service_site_phone": "服务电话",
    "service_site_min": "步行分钟",
}
_PRIVATE = {"personal_phone"}


def _lonlat(frame: gpd.GeoDataFrame, columns: list[str]) -> gpd.GeoDataFrame:
    """A layer's chosen columns in lon/lat, rounded to 1e-6° (about 0.1 m)."""
    out = frame[[c for c in columns if c in frame.columns] + [frame.geometry.name]]
    out = out.to_crs(4326)
    # pointwise: rounding for display never fails on a polygon that rounding makes invalid
    return out.set_geometry(shapely.set_precision(out.geometry.values, 1e-6, mode="pointwise"))


def _outline(
    frame: gpd.GeoDataFrame,
    fields: dict[str, str],
    *,
    name: str,
    colour: str,
    weight: float,
    dash: str | None = None,
) -> folium.GeoJson:
    """An unfilled boundary layer with a tooltip of ``fields`` (field → label)."""
    style = {"color": colour, "weight": weight, "fillOpacity": 0}
    if dash:
        style["dashArray"] = dash
    return folium.GeoJson(
        _lonlat(frame, list(fields)),
        name=name,
        style_function=lambda f: style,
        tooltip=folium.GeoJsonTooltip(list(fields), aliases=list(fields.values())),
    )


def district_map(
    layers: Mapping[str, gpd.GeoDataFrame],
    *,
    title: str = "gisgrid",
    palette: Palette | None = None,
) -> folium.Map:
    """A folium map of a workspace's layers.

    Parameters
    ----------
    layers
        Any of ``streets``, ``communities``, ``buildings``, ``roads``,
        ``water``, ``resources``, ``grids``, ``rosters``, ``service_areas``,
        ``uncovered``, ``community_history``, as read from the workspace.
    title
        Shown in the page's title and legend.
    palette
        Grid colours (by default for the default household band).

    Returns
    -------
    folium.Map
        Self-contained: save it with :func:`write_map`.
    """
    outline = layers.get("streets", layers.get("communities"))
    if outline is None or outline.empty:
        raise ValueError("a district map needs a streets or communities layer")
    palette = palette or Palette()
    fmap = _blank_map(outline)
    for name, paint in _PAINTERS:
        if (layer := layers.get(name)) is not None and len(layer):
            paint(fmap, layer, layers, palette)
    _paint_streets(fmap, outline)
    for name, paint in _MARKERS:
        if (layer := layers.get(name)) is not None and len(layer):
            paint(fmap, layer, layers, palette)
    folium.LayerControl(collapsed=False).add_to(fmap)
    _add_offline_assets(fmap, title, layers, palette)
    return fmap


def diff_map(diff: Diff) -> folium.Map:
    """A before/after map of the grids that changed between two runs."""
    changed = set(diff.changes["grid_code"].dropna()) | set(diff.changes["old_grid"].dropna())
    before = diff.grids_a[diff.grids_a["grid_code"].isin(changed)]
    after = diff.grids_b[diff.grids_b["grid_code"].isin(changed)]
    both = pd.concat([diff.grids_a, diff.grids_b])
    fmap = _blank_map(both)
    cols = ["grid_code", "households", "population"]
    for frame, name, colour in (
        (diff.grids_b, f"run {diff.run_b}: all grids", "#bbbbbb"),
        (before, f"run {diff.run_a}: before", "#2c7fb8"),
        (after, f"run {diff.run_b}: after", "#d7191c"),
    ):
        if len(frame):
            folium.GeoJson(
                _lonlat(frame, cols),
                name=name,
                style_function=lambda f, c=colour: {"color": c, "weight": 2, "fillOpacity": 0.1},
                tooltip=folium.GeoJsonTooltip(cols),
            ).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    _add_offline_assets(fmap, f"gisgrid diff {diff.run_a} → {diff.run_b}", {}, None)
    return fmap


def _blank_map(extent: gpd.GeoDataFrame) -> folium.Map:
    """A map with no tiles, fitted to a layer's extent."""
    minx, miny, maxx, maxy = extent.to_crs(4326).total_bounds if len(extent) else (0, 0, 1, 1)
    fmap = folium.Map(
        location=[(miny + maxy) / 2, (minx + maxx) / 2],
        tiles=None,
        prefer_canvas=True,
        control_scale=True,
        zoom_start=13,
    )
    fmap.default_js, fmap.default_css = [], []
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])
    return fmap


def _paint_water(fmap: folium.Map, water: gpd.GeoDataFrame, _: Layers, __: Palette) -> None:
    folium.GeoJson(
        _lonlat(water, ["name"]),
        name="水系 water",
        style_function=lambda f: {
            "fillColor": "#9ecae1",
            "color": "#6baed6",
            "weight": 1,
            "fillOpacity": 1,
        },
        tooltip=folium.GeoJsonTooltip(["name"], labels=False),
    ).add_to(fmap)


def _paint_roads(fmap: folium.Map, roads: gpd.GeoDataFrame, _: Layers, __: Palette) -> None:
    group = folium.FeatureGroup(name="道路 roads")
    for cls, (weight, colour) in _ROAD_STYLE.items():
        part = roads[roads["road_class"] == cls]
        if len(part):
            folium.GeoJson(
                _lonlat(part, ["name", "road_class"]),
                style_function=lambda f, w=weight, c=colour: {
                    "color": c,
                    "weight": w,
                    "opacity": 1,
                },
                tooltip=folium.GeoJsonTooltip(["name"], labels=False),
            ).add_to(group)
    group.add_to(fmap)


def _paint_buildings(fmap: folium.Map, buildings: gpd.GeoDataFrame, _: Layers, __: Palette) -> None:
    cols = ["building_id", "name", "address", "kind", "floors", "households", "population"]
    folium.GeoJson(
        _lonlat(buildings, cols),
        name="楼栋 buildings",
        style_function=lambda f: {
            "fillColor": KIND_COLOURS.get(f["properties"]["kind"], "#9aa5b1"),
            "color": "#7f6a55",
            "weight": 0.5,
            "fillOpacity": 0.9,
        },
        tooltip=folium.GeoJsonTooltip(
            [c for c in cols if c in buildings.columns],
            aliases=["id", "名称", "地址", "类型", "层数", "户数", "人口"][: len(cols)],
        ),
    ).add_to(fmap)


def _paint_communities(
    fmap: folium.Map, communities: gpd.GeoDataFrame, layers: Layers, _: Palette
) -> None:
    comm = communities.copy()
    buildings = layers.get("buildings")
    if buildings is not None and "households" in buildings.columns:
        hh = buildings.groupby("community_code")[["households", "population"]].sum()
        comm = comm.join(hh, on="code")
    fields = {"name": "社区", "code": "代码", "households": "户数", "population": "人口"}
    _outline(
        comm,
        {k: v for k, v in fields.items() if k in comm},
        name="社区 communities",
        colour="#b22222",
        weight=1.5,
        dash="6 4",
    ).add_to(fmap)


def _paint_service_areas(fmap: folium.Map, areas: gpd.GeoDataFrame, _: Layers, __: Palette) -> None:
    folium.GeoJson(
        _lonlat(areas[~areas.geometry.is_empty], ["name", "minutes", "households"]),
        name="15分钟服务圈 service areas",
        style_function=lambda f: {
            "fillColor": "#ff4d4f",
            "color": "#ff4d4f",
            "weight": 0.6,
            "fillOpacity": 0.08,
        },
        tooltip=folium.GeoJsonTooltip(
            ["name", "minutes", "households"], aliases=["服务站点", "步行分钟", "覆盖户数"]
        ),
        show=False,
    ).add_to(fmap)


def _paint_grids(
    fmap: folium.Map, grids: gpd.GeoDataFrame, layers: Layers, palette: Palette
) -> None:
    cols = ["grid_code", "name", "grid_type", "households", "population", "flags"]
    popup = None
    if (rost := layers.get("rosters")) is not None and len(rost):
        extra = [c for c in _ROSTER_FIELDS if c in rost.columns]
        grids = grids.merge(rost[["grid_code", *extra]], on="grid_code", how="left")
        cols = cols + extra
        popup = folium.GeoJsonPopup(
            ["grid_code", "name", "households", *extra],
            aliases=["网格编码", "名称", "户数", *(_ROSTER_FIELDS[c] for c in extra)],
        )

    def style(feature: dict) -> dict:
        props = feature["properties"]
        fill = palette.colour(float(props.get("households") or 0), props.get("grid_type"))
        return {"fillColor": fill, "color": "#d7191c", "weight": 1.2, "fillOpacity": 0.55}

    folium.GeoJson(
        _lonlat(grids, cols),
        popup=popup,
        name="网格 grids",
        style_function=style,
        highlight_function=lambda f: {"weight": 3, "fillOpacity": 0.7},
        tooltip=folium.GeoJsonTooltip(
            cols[:6], aliases=["网格编码", "名称", "类型", "户数", "人口", "标记"]
        ),
    ).add_to(fmap)


def _paint_history(fmap: folium.Map, history: gpd.GeoDataFrame, layers: Layers, _: Palette) -> None:
    outline = layers.get("streets", layers.get("communities"))
    old = gpd.GeoDataFrame(
        history[["code", "name", "replaced_by"]],
        geometry=shapely.from_wkt(history["wkt"].to_numpy()),
        crs=None if outline is None else outline.crs,
    )
    _outline(
        old,
        {"name": "原社区", "code": "代码", "replaced_by": "划分为"},
        name="原社区 before re-division",
        colour="#333333",
        weight=3,
        dash="2 6",
    ).add_to(fmap)


def _paint_streets(fmap: folium.Map, outline: gpd.GeoDataFrame) -> None:
    _outline(
        outline,
        {"name": "街道", "code": "代码"},
        name="街道 streets",
        colour="#8b0000",
        weight=3,
    ).add_to(fmap)


def _paint_uncovered(fmap: folium.Map, gone: gpd.GeoDataFrame, _: Layers, __: Palette) -> None:
    group = folium.FeatureGroup(name="未覆盖 households beyond 15 min")
    ll = _lonlat(gone, ["households", "walk_min"])
    xy = shapely.get_coordinates(ll.geometry.values)
    for (lon, lat), h, minutes in zip(xy, ll["households"], ll["walk_min"], strict=True):
        walk = "no road path" if minutes != minutes else f"{minutes:g} min"
        folium.CircleMarker(
            [lat, lon],
            radius=2.5,
            color="#333333",
            weight=0,
            fill=True,
            fill_opacity=0.8,
            tooltip=f"未覆盖 {h} 户 · {walk}",
        ).add_to(group)
    group.add_to(fmap)


def _paint_resources(fmap: folium.Map, res: gpd.GeoDataFrame, _: Layers, __: Palette) -> None:
    public = res.drop(columns=[c for c in _PRIVATE if c in res.columns])
    for kind, (colour, radius, label) in _RESOURCE_STYLE.items():
        part = _lonlat(public[public["kind"] == kind], ["name", "level", "phone"])
        if part.empty:
            continue
        group = folium.FeatureGroup(name=f"{label} {kind}")
        xy = shapely.get_coordinates(part.geometry.values)
        for (lon, lat), name, phone in zip(xy, part["name"], part["phone"], strict=True):
            folium.CircleMarker(
                [lat, lon],
                radius=radius,
                color="#ffffff",
                weight=1,
                fill=True,
                fill_color=colour,
                fill_opacity=1,
                tooltip=html.escape(f"{name} {phone}".strip()),
            ).add_to(group)
        group.add_to(fmap)


Painter = Callable[[folium.Map, gpd.GeoDataFrame, Layers, Palette], None]
#: what is drawn, bottom to top (the street outlines go over all of them but the markers)
_PAINTERS: list[tuple[str, Painter]] = [
    ("water", _paint_water),
    ("roads", _paint_roads),
    ("buildings", _paint_buildings),
    ("communities", _paint_communities),
    ("service_areas", _paint_service_areas),
    ("grids", _paint_grids),
    ("community_history", _paint_history),
]
_MARKERS: list[tuple[str, Painter]] = [
    ("uncovered", _paint_uncovered),
    ("resources", _paint_resources),
]


def _add_offline_assets(
    fmap: folium.Map, title: str, layers: Layers, palette: Palette | None
) -> None:
    root = fmap.get_root()
    assert isinstance(root, branca.element.Figure)  # a folium map's root is its page
    root.header.add_child(
        branca.element.Element(
            f"<title>{html.escape(title)}</title>"
            f"<style>{leaflet_css()}</style><script>{leaflet_js()}</script>"
            f"<style>.leaflet-container{{background:{_BACKGROUND};font-family:"
            "'WenQuanYi Zen Hei','Noto Sans CJK SC','Microsoft YaHei',sans-serif}"
            ".gg-legend{position:absolute;z-index:1000;top:90px;left:12px;background:#fff;"
            "padding:8px 10px;border:1px solid #b22222;border-radius:4px;font:12px sans-serif}"
            ".gg-legend i{display:inline-block;width:12px;height:12px;margin-right:6px;"
            "vertical-align:middle}</style>"
        ),
        name="gisgrid_assets",
    )
    counts = []
    if (b := layers.get("buildings")) is not None and "households" in b.columns:
        counts.append(f"{int(np.nansum(b['households'].astype(float))):,} 户 households")
        counts.append(f"{int(np.nansum(b['population'].astype(float))):,} 人 people")
    if (c := layers.get("communities")) is not None:
        counts.append(f"{len(c)} 社区 communities")
    if (g := layers.get("grids")) is not None:
        counts.append(f"{len(g)} 网格 grids")
    items = "".join(
        f"<div><i style='background:{colour}'></i>{kind}</div>"
        for kind, colour in KIND_COLOURS.items()
        if kind != "village"
    )
    if layers.get("grids") is not None and palette is not None:
        grid_items = "".join(
            f"<div><i style='background:{colour}'></i>{label}</div>"
            for label, colour in palette.legend()
        )
        items = f"<b>网格 households</b>{grid_items}<hr style='margin:4px 0'>{items}"
    root.html.add_child(
        branca.element.Element(
            f"<div class='gg-legend'><b>{html.escape(title)}</b><br>{'<br>'.join(counts)}"
            f"<hr style='margin:4px 0'>{items}</div>"
        )
    )


def write_map(fmap: folium.Map, path: str | Path) -> Path:
    """Save a map as one self-contained HTML file (written atomically)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fmap.save(str(tmp))
    tmp.replace(path)
    return path
