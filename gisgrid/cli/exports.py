"""``gisgrid export``: what planners hand on (Shapefile, GeoJSON, GeoPackage, Excel, PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gisgrid.cli._common import WorkspaceArg, command, console, progress_bar
from gisgrid.publish.export import FORMATS, Format


@command()
def export(
    workspace: WorkspaceArg,
    out: Annotated[
        Path,
        typer.Argument(metavar="OUT", help="The file to write (a Shapefile goes in a .zip)."),
    ],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help=f"{', '.join(FORMATS)} [default: from the extension of OUT]",
        ),
    ] = None,
    encoding: Annotated[
        str, typer.Option(help="Shapefile text encoding: utf-8, or gbk for older office software.")
    ] = "utf-8",
    paper: Annotated[str, typer.Option(help="PDF paper: A4, A3 or A0.")] = "A3",
    community: Annotated[
        list[str] | None, typer.Option(help="Only this community (12 digits); repeatable.")
    ] = None,
    draft: Annotated[
        bool, typer.Option("--draft", help="The planners' draft, not the published grids.")
    ] = False,
) -> None:
    """Export the grids with their codes, names, counts and public roster.

    shp: a zipped Shapefile with its .cpg; geojson: RFC 7946, lon/lat; gpkg: with QGIS
    layer styles and Chinese field aliases; xlsx: Chinese headers, codes as text; pdf: a
    网格划分图 per community and a 网格公示牌 per grid, print-ready.
    """
    from gisgrid.publish.export import export_grids

    chosen = format or out.suffix.lstrip(".").lower().replace("zip", "shp")
    with progress_bar("drawing pages", disable=chosen != "pdf") as bar:
        written = export_grids(
            workspace,
            out,
            format=chosen,  # type: ignore[arg-type]  # checked by export_grids
            encoding=encoding,
            paper=paper,
            communities=community,
            draft=draft,
            progress=bar.count,
        )
    console.print(f"wrote {written}")


__all__ = ["Format", "export"]
