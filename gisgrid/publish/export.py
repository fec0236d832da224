"""What planners hand on: the grids as Shapefile, GeoJSON, GeoPackage, Excel or PDF.

Every format carries one table: each grid with its codes, names, counts and the
public roster (grid worker, service phone, party branch, police post), with
Chinese field names where the format has room for them. The published grids by
default; a planner's draft on request (for its approval).

- **Shapefile**: zipped with its ``.cpg``, in UTF-8 or GBK (what most office
  software in China expects), field names cut to the format's ten characters;
- **GeoJSON**: RFC 7946, lon/lat;
- **GeoPackage**: grids and communities in the workspace's CRS, with QGIS layer
  styles (``layer_styles``, applied when QGIS opens a layer) and Chinese field
  aliases (in the styles and in ``gpkg_data_columns``);
- **xlsx**: a sheet of grids and one of communities, Chinese headers, codes stored
  as text (Excel would show 430204002007001 as 4.30204E+14);
- **PDF**: see :mod:`gisgrid.publish.prints`.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import geopandas as gpd
import pandas as pd
import pyogrio

from gisgrid._errors import InputError, argument
from gisgrid.delineate.publication import draft_status, published_grids
from gisgrid.io.workspace import Workspace, WorkspaceLike, open_workspace

__all__ = ["FIELDS", "FORMATS", "export_grids", "grid_sheet", "partial_path"]

logger = logging.getLogger(__name__)

Format = Literal["shp", "geojson", "gpkg", "xlsx", "pdf"]
FORMATS: tuple[str, ...] = ("shp", "geojson", "gpkg", "xlsx", "pdf")

#: column → (Chinese name, Shapefile name of at most ten characters)
FIELDS: dict[str, tuple[str, str]] = {
    "grid_code": ("网格编码", "grid_code"),
    "name": ("网格名称", "name"),
    "grid_type": ("网格类型", "grid_type"),
    "street_code": ("街道编码", "street_cd"),
    "street": ("街道", "street"),
    "community_code": ("社区编码", "comm_code"),
    "community": ("社区", "community"),
    "households": ("户数", "households"),
    "population": ("人口", "population"),
    "buildings": ("楼栋数", "buildings"),
    "area_m2": ("面积（平方米）", "area_m2"),
    "grid_worker": ("网格员", "worker"),
    "service_phone": ("服务电话", "svc_phone"),
    "party_branch": ("网格党支部", "party_br"),
    "police_post": ("警务室", "police"),
    "police_post_phone": ("警务室电话", "police_tel"),
}
GRID_TYPES = {"basic": "基础网格", "dedicated": "专属网格"}
CODES = ("grid_code", "street_code", "community_code")


def grid_sheet(workspace: WorkspaceLike, *, draft: bool = False) -> gpd.GeoDataFrame:
    """Each grid with its codes, names, counts and public roster (the columns of
    :data:`FIELDS`), in the workspace's CRS, ordered by code.

    Parameters
    ----------
    workspace
        The workspace.
    draft
        The planners' draft instead of the published grids.
    """
    from gisgrid.roster.roster import grid_table, rosters  # pydantic: not for every command

    ws = open_workspace(workspace)
    grids = ws.read("grids") if draft else published_grids(ws)
    streets = ws.read("streets") if "streets" in ws else pd.DataFrame(columns=["code", "name"])
    table = grid_table(grids, ws.read("communities"), streets).set_index("grid_code")
    out = grids.set_index("grid_code", drop=False)
    for column in ("street_code", "street", "community"):
        out[column] = table[column]
    out["area_m2"] = out.geometry.area.round(1)
    if "assignments" in ws:
        roster = rosters(ws, private=False).set_index("grid_code").reindex(out.index)
        out["grid_worker"] = roster["grid_worker"]
        out["party_branch"] = roster.get("party_branch")
        out["police_post"] = roster.get("police_post")
        out["police_post_phone"] = roster.get("police_post_phone")
        out["service_phone"] = roster.get("grid_worker_phone", roster.get("service_site_phone"))
    columns = [c for c in FIELDS if c in out]
    sheet = out[[*columns, out.geometry.name]].reset_index(drop=True).sort_values("grid_code")
    sheet = sheet.reset_index(drop=True)
    for column in columns:
        if sheet[column].dtype == object or column in CODES:
            sheet[column] = sheet[column].fillna("").astype(str)
    return gpd.GeoDataFrame(sheet, crs=grids.crs)


def export_grids(
    workspace: WorkspaceLike,
    out: str | Path,
    *,
    format: Format,
    encoding: str = "utf-8",
    draft: bool = False,
    paper: str = "A3",
    communities: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the grids in one of :data:`FORMATS`; the file written.

    Parameters
    ----------
    workspace
        The workspace.
    out
        The file to write (a Shapefile is written as a ``.zip``).
    format
        ``shp``, ``geojson``, ``gpkg``, ``xlsx`` or ``pdf``.
    encoding
        The Shapefile's text encoding: ``utf-8`` or ``gbk``.
    draft
        The planners' draft instead of the published grids.
    paper
        PDF paper size: ``A4``, ``A3`` or ``A0``.
    communities
        Only these communities (all when None).
    progress
        Called with (pages done, pages) while a PDF is drawn.

    Raises
    ------
    InputError
        For an unknown format or encoding, an unknown community, or a name that the
        chosen encoding cannot hold.
    """
    ws = open_workspace(workspace)
    if format not in FORMATS:
        raise InputError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    sheet = grid_sheet(ws, draft=draft)
    if communities:
        unknown = sorted(set(communities) - set(sheet["community_code"]))
        if unknown:
            raise InputError(
                f"no grids in community {', '.join(unknown)}; check {argument('community')}"
            )
        sheet = sheet[sheet["community_code"].isin(communities)].reset_index(drop=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "pdf":
        from gisgrid.publish.prints import write_pdf

        return write_pdf(ws, sheet, out, paper=paper, draft=draft, progress=progress)
    if format == "shp":
        return _shapefile(sheet, out, encoding=encoding)
    if encoding.lower().replace("-", "") != "utf8":
        raise InputError(f"{argument('encoding')} is for Shapefiles; {format} is UTF-8")
    if format == "geojson":
        return _geojson(sheet, out)
    if format == "xlsx":
        return _excel(sheet, out, ws=ws, draft=draft)
    return _geopackage(sheet, out, ws=ws)


def partial_path(out: Path) -> Path:
    """Where a file is written before it is moved over ``out`` whole (same folder and
    extension, so that drivers keyed on the extension are content)."""
    return out.with_name(f".{out.stem}.part{out.suffix}")


def _shapefile(sheet: gpd.GeoDataFrame, out: Path, *, encoding: str) -> Path:
    """A zipped Shapefile with its ``.cpg``, field names cut to ten characters."""
    codec = {"utf-8": "UTF-8", "utf8": "UTF-8", "gbk": "GBK", "cp936": "GBK"}.get(encoding.lower())
    if codec is None:
        raise InputError(f"unknown Shapefile encoding {encoding!r}; use utf-8 or gbk")
    for column in sheet.columns.drop(sheet.geometry.name):
        for value in sheet[column].astype(str):
            try:
                value.encode(codec)
            except UnicodeEncodeError:
                raise InputError(
                    f"{column} {value!r} cannot be written in {codec}; export in UTF-8"
                ) from None
    frame = sheet.rename(columns={c: FIELDS[c][1] for c in sheet.columns if c in FIELDS})
    out = out.with_suffix(".zip")
    with tempfile.TemporaryDirectory() as folder:
        shp = Path(folder) / "grids.shp"
        pyogrio.write_dataframe(frame, shp, driver="ESRI Shapefile", encoding=codec)
        partial = partial_path(out)
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for part in sorted(Path(folder).iterdir()):
                archive.write(part, part.name)
        partial.replace(out)
    return out


def _geojson(sheet: gpd.GeoDataFrame, out: Path) -> Path:
    partial = partial_path(out)
    pyogrio.write_dataframe(
        sheet.to_crs(4326), partial, driver="GeoJSON", layer_options={"RFC7946": "YES"}
    )
    partial.replace(out)
    return out


def _excel(sheet: gpd.GeoDataFrame, out: Path, *, ws: Workspace, draft: bool) -> Path:
    """Grids and communities, Chinese headers, codes as text."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    table = pd.DataFrame(sheet.drop(columns=sheet.geometry.name))
    table["grid_type"] = table["grid_type"].map(GRID_TYPES).fillna(table["grid_type"])
    per = table.groupby(["community_code", "community"], as_index=False).agg(
        grids=("grid_code", "size"),
        households=("households", "sum"),
        population=("population", "sum"),
    )
    book = Workbook()
    sheets = [
        ("网格", table, [FIELDS[c][0] for c in table.columns]),
        ("社区汇总", per, ["社区编码", "社区", "网格数", "户数", "人口"]),
    ]
    book.remove(book.active)
    for title, frame, headers in sheets:
        page = book.create_sheet(title)
        page.append(headers)
        for cell in page[1]:
            cell.font = Font(bold=True)
        for row in frame.itertuples(index=False):
            page.append(list(row))
        for i, column in enumerate(frame.columns, start=1):
            if column in CODES:  # text, so that Excel keeps all 15 digits
                for (cell,) in page.iter_rows(min_row=2, min_col=i, max_col=i):
                    cell.value, cell.number_format = str(cell.value), "@"
            width = max([len(str(headers[i - 1])) * 2, *(len(str(v)) for v in frame[column])])
            page.column_dimensions[get_column_letter(i)].width = min(40, width + 2)
        page.freeze_panes = "A2"
        page.auto_filter.ref = page.dimensions
    about = book.create_sheet("说明")
    status = draft_status(ws)
    state = "草案 draft" if draft else f"已发布 published (run {status.published_run})"
    for row in (
        ("数据", state),
        ("工作区", ws.location),
        ("导出时间", datetime.now(UTC).isoformat(timespec="seconds")),
    ):
        about.append(row)
    partial = partial_path(out)
    book.save(partial)
    partial.replace(out)
    return out


def _geopackage(sheet: gpd.GeoDataFrame, out: Path, *, ws: Workspace) -> Path:
    """Grids and their communities with QGIS default styles and Chinese aliases."""
    partial = partial_path(out)
    partial.unlink(missing_ok=True)
    communities = ws.read("communities")
    communities = communities[communities["code"].isin(sheet["community_code"])]
    layers = {"grids": sheet, "communities": communities}
    for name, frame in layers.items():
        pyogrio.write_dataframe(frame, partial, layer=name, driver="GPKG")
    aliases = {
        "grids": {c: FIELDS[c][0] for c in sheet.columns if c in FIELDS},
        "communities": {"code": "社区编码", "name": "社区名称", "parent_code": "街道编码"},
    }
    with sqlite3.connect(partial) as db:
        _styles(db, aliases)
    partial.replace(out)
    return out


def _styles(db: sqlite3.Connection, aliases: dict[str, dict[str, str]]) -> None:
    """QGIS's ``layer_styles`` (a default style per layer, with the aliases) and the
    GeoPackage schema extension's ``gpkg_data_columns`` (the aliases as names)."""
    from gisgrid.publish.qml import layer_qml

    db.execute(
        "CREATE TABLE layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT,"
        " f_table_schema TEXT, f_table_name TEXT, f_geometry_column TEXT, styleName TEXT,"
        " styleQML TEXT, styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT,"
        " ui TEXT, update_time DATETIME DEFAULT CURRENT_TIMESTAMP)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS gpkg_data_columns (table_name TEXT NOT NULL, column_name"
        " TEXT NOT NULL, name TEXT, title TEXT, description TEXT, mime_type TEXT,"
        " constraint_name TEXT, CONSTRAINT pk_gdc PRIMARY KEY (table_name, column_name),"
        " CONSTRAINT gdc_tn UNIQUE (table_name, name))"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT, column_name TEXT,"
        " extension_name TEXT NOT NULL, definition TEXT NOT NULL, scope TEXT NOT NULL,"
        " CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))"
    )
    for table, names in aliases.items():
        geometry = db.execute(
            "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (table,)
        ).fetchone()[0]
        db.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name,"
            " f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description,"
            " owner, ui) VALUES ('', '', ?, ?, ?, ?, '', 1, ?, 'gisgrid', '')",
            (table, geometry, f"{table} 红地图", layer_qml(table, names), "gisgrid 红地图"),
        )
        db.executemany(
            "INSERT INTO gpkg_data_columns (table_name, column_name, name, title)"
            " VALUES (?, ?, ?, ?)",
            [(table, column, alias, alias) for column, alias in names.items()],
        )
    db.execute(
        "INSERT OR IGNORE INTO gpkg_extensions VALUES ('gpkg_data_columns', NULL, 'gpkg_schema',"
        " 'http://www.geopackage.org/spec/#extension_schema', 'read-write')"
    )
