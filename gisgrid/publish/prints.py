"""Print-ready PDF maps: a 网格划分图 per community and a 网格公示牌 per grid.

The 网格划分图 (grid division map) shows a community's grids with their codes, the
roads, the community boundary, a legend, a scale bar and a north arrow, beside a
table of the grids. The 网格公示牌 (grid notice board, posted in each grid) shows the
grid on its map with its code, grid worker, service phone, party branch and police
post. Maps are drawn in the workspace's metric CRS, so the scale bar is exact and
grid north is up (within a degree of true north inside a 3-degree zone).

Text is set in Noto Sans SC (from npm, see :func:`gisgrid.publish.assets.cjk_font`),
embedded as TrueType so that the PDF's text can be searched and extracted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import shapely

from gisgrid._errors import InputError
from gisgrid.delineate.publication import draft_status
from gisgrid.io.workspace import Workspace
from gisgrid.publish.assets import cjk_font
from gisgrid.publish.export import partial_path

__all__ = ["PAPERS", "write_pdf"]

logger = logging.getLogger(__name__)

#: paper → (short side, long side) in mm
PAPERS = {"A4": (210, 297), "A3": (297, 420), "A0": (841, 1189)}
RED = "#c00000"
FILLS = ("#fde2e2", "#fff1c1", "#dff3e3", "#dde8fb", "#f3e1f7", "#e3f5f5")


@contextmanager
def _pdf_fonts() -> Iterator[None]:
    import matplotlib
    from matplotlib import font_manager

    path = cjk_font()
    font_manager.fontManager.addfont(str(path))
    family = font_manager.FontProperties(fname=str(path)).get_name()
    with matplotlib.rc_context(
        {"font.family": [family, "DejaVu Sans"], "pdf.fonttype": 42, "axes.unicode_minus": False}
    ):
        yield


def write_pdf(
    ws: Workspace,
    sheet: gpd.GeoDataFrame,
    out: Path,
    *,
    paper: str = "A3",
    draft: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """One 网格划分图 per community, each followed by the 网格公示牌 of its grids.

    Parameters
    ----------
    ws
        The workspace (roads and communities are drawn from it).
    sheet
        The grids, as :func:`gisgrid.publish.export.grid_sheet` gives them.
    out
        The PDF to write.
    paper
        ``A4``, ``A3`` or ``A0``: the division maps landscape, the notice boards portrait.
    draft
        Whether ``sheet`` is the draft (said on every page).
    progress
        Called with (pages done, pages).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages

    if paper.upper() not in PAPERS:
        raise InputError(f"unknown paper {paper!r}; use one of {', '.join(PAPERS)}")
    size = PAPERS[paper.upper()]
    context = (
        ws.read("buildings", columns=["building_id"]) if "buildings" in ws else None,
        ws.read("roads", columns=["road_class"]) if "roads" in ws else None,
    )
    communities = ws.read("communities").set_index("code")
    status = draft_status(ws)
    stamp = (
        "草案（未发布）draft, not published"
        if draft
        else f"已发布 published · run {status.published_run}"
    )
    footer = f"gisgrid · {stamp} · {datetime.now(UTC):%Y-%m-%d} · {ws.crs.name if ws.crs else ''}"
    pages, done = len(sheet) + sheet["community_code"].nunique(), 0
    partial = partial_path(out)
    with _pdf_fonts(), PdfPages(partial, metadata={"Title": "网格划分图 · 网格公示牌"}) as pdf:
        for code, grids in sheet.groupby("community_code", sort=True):
            boundary = communities.geometry.get(code)
            for page in (
                _division_map(grids, boundary, context, size, footer),
                *(_notice_board(row, grids, context, size, footer) for row in grids.itertuples()),
            ):
                pdf.savefig(page)
                _close(page)
                done += 1
                if progress:
                    progress(done, pages)
    partial.replace(out)
    logger.info("wrote %d pages to %s", pages, out)
    return out


def _close(figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def _figure(width_mm: float, height_mm: float):
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width_mm / 25.4, height_mm / 25.4))


def _scale(size: tuple[int, int]) -> float:
    """Text scale for a paper: 1 on A3."""
    return size[0] / PAPERS["A3"][0]


#: road class → line width (points); other classes are drawn as the thinnest
ROAD_WIDTHS = {
    "motorway": 3.0,
    "trunk": 2.6,
    "arterial": 2.2,
    "primary": 2.2,
    "secondary": 1.5,
    "tertiary": 1.1,
}


def _draw_land(ax, grids, context, box, *, highlight: str | None = None) -> None:
    """Grids (the ``highlight`` one stands out), then the buildings and roads in ``box``."""
    colours = [FILLS[i % len(FILLS)] for i in range(len(grids))]
    if highlight is not None:
        colours = ["#ffccc7" if c == highlight else "#f5f5f5" for c in grids["grid_code"]]
    grids.plot(ax=ax, color=colours, edgecolor=RED, linewidth=1.0, zorder=2)
    dedicated = grids[grids["grid_type"] == "dedicated"]
    if len(dedicated):
        dedicated.plot(
            ax=ax, facecolor="none", edgecolor="#1d39c4", linewidth=1.0, hatch="//", zorder=3
        )
    area = shapely.box(*box)
    buildings, roads = context
    if buildings is not None:
        near = buildings[buildings.intersects(area)]
        if len(near):
            near.plot(ax=ax, color="#8c8c8c", edgecolor="#595959", linewidth=0.3, zorder=3)
    if roads is not None:
        near = roads[roads.intersects(area)]
        if len(near):
            widths = near["road_class"].map(ROAD_WIDTHS).fillna(0.7).to_numpy()
            near.plot(ax=ax, color="white", linewidth=widths + 1.2, zorder=3, alpha=0.9)
            near.plot(ax=ax, color="#a0a0a0", linewidth=widths, zorder=3)


def _label_grids(ax, grids, scale: float) -> None:
    for row in grids.itertuples():
        p = row.geometry.representative_point()
        ax.annotate(
            f"{row.grid_code[-3:]}\n{row.households}户",
            (p.x, p.y),
            ha="center",
            va="center",
            fontsize=7 * scale,
            color=RED,
            zorder=5,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7},
        )


def _frame(ax, box: tuple[float, float, float, float], margin: float = 0.06) -> None:
    minx, miny, maxx, maxy = box
    dx, dy = (maxx - minx) * margin, (maxy - miny) * margin
    ax.set_xlim(minx - dx, maxx + dx)
    ax.set_ylim(miny - dy, maxy + dy)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")  # geopandas names the CRS's axes; a printed map does not
    ax.set_ylabel("")


def _scale_bar(ax, scale: float) -> None:
    """A bar of a round length, about a fifth of the map's width, at the lower left."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    target = (x1 - x0) / 5
    step = 10 ** math.floor(math.log10(target))
    length = max(m * step for m in (1, 2, 5) if m * step <= target)
    x, y = x0 + (x1 - x0) * 0.04, y0 + (y1 - y0) * 0.04
    for i, colour in enumerate(("black", "white")):
        ax.add_patch(_rect(x + i * length / 2, y, length / 2, (y1 - y0) * 0.008, colour))
    label = f"{length:g} m" if length < 1000 else f"{length / 1000:g} km"
    ax.text(x, y + (y1 - y0) * 0.015, f"0    {label}", fontsize=8 * scale, zorder=6)


def _rect(x: float, y: float, w: float, h: float, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=colour, edgecolor="black", linewidth=0.8, zorder=6)


def _north_arrow(ax, scale: float) -> None:
    ax.annotate(
        "北\nN",
        xy=(0.95, 0.95),
        xytext=(0.95, 0.84),
        xycoords="axes fraction",
        ha="center",
        va="center",
        fontsize=10 * scale,
        arrowprops={"facecolor": "black", "width": 3 * scale, "headwidth": 10 * scale},
        zorder=7,
    )


def _legend(ax, scale: float) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=FILLS[0], edgecolor=RED, label="基础网格 basic grid"),
        Patch(facecolor="white", edgecolor="#1d39c4", hatch="//", label="专属网格 dedicated grid"),
        Line2D([], [], color="#800000", linewidth=2.4, label="社区边界 community boundary"),
        Line2D([], [], color="#a0a0a0", linewidth=1.6, label="道路 road"),
        Patch(facecolor="#8c8c8c", edgecolor="#595959", label="楼栋 building"),
    ]
    ax.legend(
        handles=handles,
        loc="lower right",
        fontsize=8 * scale,
        title="图例 legend",
        title_fontsize=9 * scale,
        framealpha=0.9,
    )


def _division_map(grids, boundary, context, size, footer: str):
    """The 网格划分图 of one community (landscape)."""
    scale = _scale(size)
    fig = _figure(size[1], size[0])
    first = grids.iloc[0]
    fig.suptitle(
        f"{first['street']}{first['community']} 网格划分图",
        fontsize=22 * scale,
        color=RED,
        y=0.97,
    )
    households, people = int(grids["households"].sum()), int(grids["population"].sum())
    fig.text(
        0.5,
        0.925,
        f"社区编码 {first['community_code']} · 共 {len(grids)} 个网格 · "
        f"{households:,} 户 · {people:,} 人",
        ha="center",
        fontsize=11 * scale,
    )
    ax = fig.add_axes((0.03, 0.06, 0.64, 0.84))
    outline = boundary if boundary is not None else shapely.union_all(grids.geometry.values)
    box = tuple(outline.bounds)
    _draw_land(ax, grids, context, box)
    gpd.GeoSeries([outline], crs=grids.crs).boundary.plot(
        ax=ax, color="#800000", linewidth=2.4, zorder=4
    )
    _label_grids(ax, grids, scale)
    _frame(ax, box)
    _scale_bar(ax, scale)
    _north_arrow(ax, scale)
    _legend(ax, scale)
    table = fig.add_axes((0.69, 0.06, 0.29, 0.84))
    table.axis("off")
    rows = [
        [r.grid_code, r.name, f"{r.households}", f"{r.population}", getattr(r, "grid_worker", "")]
        for r in grids.itertuples()
    ]
    shown = table.table(
        cellText=rows,
        colLabels=["网格编码", "网格名称", "户数", "人口", "网格员"],
        loc="upper center",
        cellLoc="left",
        colWidths=[0.3, 0.34, 0.1, 0.12, 0.14],
    )
    shown.auto_set_font_size(False)
    shown.set_fontsize(min(8.0, 240 / max(len(rows), 1)) * scale)
    shown.scale(1, 1.25)
    fig.text(0.03, 0.02, footer, fontsize=7 * scale, color="#666")
    return fig


def _notice_board(row, grids, context, size, footer: str):
    """The 网格公示牌 of one grid (portrait)."""
    scale = _scale(size)
    fig = _figure(size[0], size[1])
    fig.patch.set_facecolor("white")
    fig.text(0.5, 0.95, "网格公示牌", ha="center", fontsize=30 * scale, color=RED)
    fig.text(0.5, 0.915, f"{row.name}", ha="center", fontsize=18 * scale)
    fig.text(0.5, 0.89, f"网格编码 {row.grid_code}", ha="center", fontsize=13 * scale)
    ax = fig.add_axes((0.08, 0.42, 0.84, 0.45))
    grid = row.geometry
    minx, miny, maxx, maxy = grid.bounds
    pad = max(maxx - minx, maxy - miny) * 0.25
    box = (minx - pad, miny - pad, maxx + pad, maxy + pad)
    _draw_land(ax, grids, context, box, highlight=row.grid_code)
    gpd.GeoSeries([grid], crs=grids.crs).boundary.plot(ax=ax, color=RED, linewidth=3, zorder=4)
    _frame(ax, box, margin=0)
    _scale_bar(ax, scale)
    _north_arrow(ax, scale)
    facts = [
        ("所属街道", row.street),
        ("所属社区", row.community),
        ("网格类型", "专属网格" if row.grid_type == "dedicated" else "基础网格"),
        ("户数 / 人口", f"{row.households} 户 / {row.population} 人"),
        ("网格员", getattr(row, "grid_worker", "") or "—"),
        ("服务电话", getattr(row, "service_phone", "") or "—"),
        ("网格党支部", getattr(row, "party_branch", "") or "—"),
        (
            "警务室",
            " ".join(
                v
                for v in (getattr(row, "police_post", ""), getattr(row, "police_post_phone", ""))
                if v
            )
            or "—",
        ),
    ]
    for i, (key, value) in enumerate(facts):
        y = 0.37 - i * 0.037
        fig.text(0.12, y, key, fontsize=13 * scale, color=RED)
        fig.text(0.36, y, str(value), fontsize=13 * scale)
    fig.text(0.08, 0.03, footer, fontsize=7 * scale, color="#666")
    return fig
