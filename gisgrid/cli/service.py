"""Commands that serve and hand out the grids: serve, hash-key, tiles, lookup."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from gisgrid._errors import InputError
from gisgrid.cli._common import WorkspaceArg, command, console, progress_bar


@command()
def serve(
    workspace: Annotated[
        str | None,
        typer.Argument(
            help="The workspace to serve: a GeoPackage file, or "
            "postgresql://user@host/db?schema=NAME.",
            metavar="WORKSPACE",
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000].")] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML config file (settings, hashed API keys).")
    ] = None,
    log_requests: Annotated[
        bool, typer.Option("--log-requests", help="Log every request as a JSON line on stderr.")
    ] = False,
) -> None:
    """Serve the 红地图: OGC API – Features, vector tiles, style, dashboard (/map), lookup.

    Settings come from --config, then GISGRID_* environment variables; options given here
    win. Open http://HOST:PORT/map for the dashboard, /docs for the API.
    """
    import uvicorn

    from gisgrid.server import Settings, create_app
    from gisgrid.server.logs import json_logging

    json_logging(logging.INFO if log_requests else logging.WARNING)
    given = {"workspace": workspace, "host": host, "port": port}
    if config:
        settings = Settings.from_file(config, **given)
    else:
        settings = Settings.checked(**{k: v for k, v in given.items() if v is not None})
    fastapi_app = create_app(settings)
    console.print(f"serving {settings.workspace} on http://{settings.host}:{settings.port}/map")
    uvicorn.run(fastapi_app, host=settings.host, port=settings.port, log_level="warning")


@command("hash-key")
def hash_key_(key: Annotated[str, typer.Argument(help="The API key to give someone.")]) -> None:
    """Print the SHA-256 of an API key, to put under \\[api_keys] in the config file."""
    from gisgrid.server.settings import hash_key

    typer.echo(hash_key(key))


@command()
def tiles(
    workspace: WorkspaceArg,
    pmtiles: Annotated[Path, typer.Option("--pmtiles", help="PMTiles archive to write.")],
    tileset: Annotated[str, typer.Option(help="Tileset: redmap or one collection.")] = "redmap",
    min_zoom: Annotated[int, typer.Option(min=0, max=22)] = 0,
    max_zoom: Annotated[int, typer.Option(min=0, max=22)] = 16,
    workers: Annotated[int, typer.Option(min=1, help="Processes rendering tiles.")] = 2,
) -> None:
    """Export a tileset (public content) as one PMTiles archive, for static hosting."""
    from gisgrid.io.workspace import Workspace
    from gisgrid.publish.catalog import Catalog
    from gisgrid.publish.tiles import TILESETS, TileSource, write_pmtiles

    with progress_bar("tiles") as bar:
        layers = frozenset(spec.collection for spec in TILESETS.get(tileset, ()))
        source = TileSource(Catalog(Workspace(workspace), layers), role="public")
        n = write_pmtiles(
            source,
            pmtiles,
            tileset=tileset,
            min_zoom=min_zoom,
            max_zoom=max_zoom,
            workers=workers,
            progress=bar.count,
        )
    console.print(f"wrote {n:,} tiles to {pmtiles}")


@command()
def lookup(
    workspace: WorkspaceArg,
    lon: Annotated[float | None, typer.Option(help="Longitude.")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude.")] = None,
    crs: Annotated[
        str, typer.Option(help="wgs84, gcj02, bd09, cgcs2000 or an EPSG code.")
    ] = "wgs84",
    address: Annotated[str | None, typer.Option(help="An address as people write it.")] = None,
    csv: Annotated[Path | None, typer.Option(help="A CSV of points or addresses.")] = None,
    lon_col: Annotated[str, typer.Option(help="CSV longitude column.")] = "lon",
    lat_col: Annotated[str, typer.Option(help="CSV latitude column.")] = "lat",
    address_col: Annotated[str | None, typer.Option(help="CSV address column.")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the CSV with grids.")] = None,
    counts: Annotated[Path | None, typer.Option(help="Also write rows per grid here.")] = None,
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="CSV rows looked up at a time (memory stays bounded).")
    ] = 250_000,
) -> None:
    """Which street, community and grid covers a point, an address, or every row of a CSV.

    For a CSV (the 12345 hotline use): each row gets its grid_code, names and a reason
    when it falls outside every grid; --counts writes the number of rows per grid.
    """

    from gisgrid.io.workspace import Workspace
    from gisgrid.lookup.directory import Directory, lookup_csv

    directory = Directory(Workspace(workspace))
    if csv is not None:
        if out is None:
            raise InputError("--csv needs --out OUT.csv for the result")
        with progress_bar(f"{csv.name}", unit="B") as bar:  # bytes read of the file
            done = lookup_csv(
                directory,
                csv,
                out,
                lon_col=lon_col,
                lat_col=lat_col,
                address_col=address_col,
                crs=crs,
                chunk_rows=chunk_rows,
                progress=bar.count,
            )
        console.print(
            f"wrote {done.rows:,} rows to {out}: {done.inside:,} in a grid, "
            f"{done.rows - done.inside:,} outside (see the reason column)"
        )
        if counts is not None:
            done.per_grid.to_csv(counts, index=False, encoding="utf-8-sig")
            console.print(f"wrote rows per grid to {counts}")
        return
    if address is not None:
        answer = directory.address(address, staff=True)
    elif lon is not None and lat is not None:
        answer = directory.point(lon, lat, crs=crs, staff=True)
    else:
        raise InputError("give --lon and --lat, --address, or --csv")
    typer.echo(json.dumps(answer, ensure_ascii=False, indent=2, default=str))
