"""The ``gisgrid`` command: a thin layer over the library.

One module per group of commands; :mod:`gisgrid.cli._common` holds what they
share (the app, the workspace argument, the error wrapper, progress bars).
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.logging import RichHandler

import gisgrid
from gisgrid.cli import data, demo, exports, grids, rosters, service
from gisgrid.cli._common import app, console, err

__all__ = ["app"]
_COMMANDS = (data, grids, exports, demo, rosters, service)  # imported to register their commands


def _version(value: bool) -> None:
    if value:
        console.print(f"gisgrid {gisgrid.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what each step does.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Grid-based governance (网格化管理) for planners, dashboards and analysts."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
    )
