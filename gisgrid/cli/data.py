"""Commands that bring data in and show what a workspace holds: import, info."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from gisgrid._errors import InputError
from gisgrid.cli._common import WorkspaceArg, command, console
from gisgrid.io.schema import LAYERS


def _parse_field_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InputError(f"--field-map takes OLD=NEW, got {pair!r}")
        mapping[old.strip()] = new.strip()
    return mapping


@command("import")
def import_(
    workspace: WorkspaceArg,
    layer: Annotated[
        str, typer.Argument(help=f"Layer to fill: {', '.join(LAYERS)}.", show_default=False)
    ],
    file: Annotated[
        Path,
        typer.Argument(
            help="GeoPackage, GeoJSON, Shapefile, GeoParquet, CSV (lon/lat) or OSM .pbf."
        ),
    ],
    crs: Annotated[
        str | None,
        typer.Option(
            help="What the coordinates are in when the file does not say (or says wrong): "
            "wgs84, cgcs2000, gcj02 (Amap/Tencent), bd09 (Baidu) or an EPSG code."
        ),
    ] = None,
    id_field: Annotated[
        str | None, typer.Option(help="Input field holding the layer's id (building_id, code, …).")
    ] = None,
    field_map: Annotated[
        list[str] | None, typer.Option(help="Rename an input field, OLD=NEW; repeat as needed.")
    ] = None,
    source_layer: Annotated[
        str | None, typer.Option(help="Layer to read inside a multi-layer input file.")
    ] = None,
    lon_col: Annotated[str | None, typer.Option(help="CSV longitude column.")] = None,
    lat_col: Annotated[str | None, typer.Option(help="CSV latitude column.")] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            help="Text encoding of a Shapefile or CSV (utf-8, gbk, gb18030); by default its "
            ".cpg says, else UTF-8 or GB18030 as its bytes show."
        ),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Communities that overlap or leave gaps in their street: repair them "
            "(overlaps to the community sharing the longer boundary, gaps to the neighbour "
            "sharing the longest) instead of refusing the import.",
        ),
    ] = False,
    mode: Annotated[
        str,
        typer.Option(
            help="replace the layer, append rows (ids already there are rejected), "
            "or update (rows with an id already there replace it)."
        ),
    ] = "replace",
    max_rejected: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Largest share of the file's rows that may be rejected; above it, "
            "nothing is written.",
        ),
    ] = 0.5,
    metric_crs: Annotated[
        str | None,
        typer.Option(
            help="The workspace's metric CRS, an EPSG code, at its first import; by default "
            "the CGCS2000 Gauss–Krüger zone of the data in China, its UTM zone elsewhere."
        ),
    ] = None,
) -> None:
    """Import FILE as LAYER of WORKSPACE, validating every row, in one transaction.

    Rows that cannot be used go to the workspace's [bold]rejected[/] table with a reason;
    invalid geometries are repaired where possible. An import that would write no row,
    empty a layer or reject more than --max-rejected of the file writes nothing and exits
    with status 2. A summary follows: rows read = written + rejected.
    """
    from gisgrid.io.ingest import ImportMode, import_layer

    report = import_layer(
        workspace,
        layer,
        file,
        crs=crs,
        id_field=id_field,
        field_map=_parse_field_map(field_map or []),
        source_layer=source_layer,
        lon_col=lon_col,
        lat_col=lat_col,
        encoding=encoding,
        repair=repair,
        mode=cast(ImportMode, mode),
        max_rejected=max_rejected,
        metric_crs=metric_crs,
    )
    table = Table(title=f"{report.layer} ← {Path(report.source).name}", show_header=False)
    table.add_row("rows read", f"{report.read:,}")
    table.add_row("written", f"{report.written:,}")
    for reason, n in sorted(report.rejected.items()):
        table.add_row(f"rejected: {escape(reason)}", f"[red]{n:,}[/]")
    table.add_row(f"rows now in {report.layer}", f"{report.imported:,}")
    table.add_row("geometries repaired", f"{report.repaired:,}")
    for reason, n in sorted(report.other_rejected.items()):
        table.add_row(f"re-checked, rejected: {escape(reason)}", f"[red]{n:,}[/]")
    table.add_row("workspace CRS", report.crs)
    console.print(table)
    for note in report.notes:
        console.print(f"  • {note}", highlight=False)
    if report.rejected:
        console.print(f"  rejected rows are in the [bold]rejected[/] table of {workspace}")


@command()
def info(workspace: WorkspaceArg) -> None:
    """List the layers of WORKSPACE with their row counts, and rejected rows by reason."""
    from gisgrid.io.workspace import Workspace

    ws = Workspace(workspace)
    if not ws.exists:
        raise InputError(
            f"workspace {workspace} does not exist; create it with "
            "`gisgrid import` or `gisgrid demo`"
        )
    table = Table(title=str(workspace))
    table.add_column("layer")
    table.add_column("geometry")
    table.add_column("rows", justify="right")
    for name, geom, n in ws.describe():
        if name != "gisgrid_meta":
            table.add_row(name, geom or "table", f"{n:,}")
    console.print(table)
    console.print(f"CRS: {ws.crs.to_string() if ws.crs else 'not set'}; revision {ws.revision}")
    if "rejected" in ws:
        rej = pd.DataFrame(ws.read("rejected"))
        if len(rej):
            why = rej.groupby(["layer", rej["reason"].str.split(":").str[0]]).size()
            for (lyr, reason), n in why.items():
                console.print(f"  rejected {lyr}: {reason}: {n:,}", highlight=False)


@command()
def copy(
    source: WorkspaceArg,
    target: Annotated[
        str,
        typer.Argument(
            help="Where to copy it: a GeoPackage file or postgresql://user@host/db?schema=NAME.",
            show_default=False,
            metavar="TARGET",
        ),
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the layers TARGET already holds.")
    ] = False,
) -> None:
    """Copy a workspace, every layer with its history and retired codes, between a
    GeoPackage and PostGIS (either way), in one transaction."""
    from gisgrid.io.workspace import copy_workspace

    n = copy_workspace(source, target, replace=replace)
    console.print(f"copied {n} layers to {target}")
