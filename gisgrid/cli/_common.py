"""What every command shares: the app, consoles, the workspace argument, errors, progress.

Errors that gisgrid raises on purpose are printed as one clear line and exit
with status 2 (by :func:`command`, for every command); nothing else is caught.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from gisgrid._errors import GisgridError

__all__ = [
    "WORKERS",
    "SchedulerOpt",
    "WorkersOpt",
    "WorkspaceArg",
    "app",
    "command",
    "console",
    "err",
    "progress_bar",
]

app = typer.Typer(
    name="gisgrid",
    help="Delineate governance grids (网格) of about 400 households and serve the 红地图.\n\n"
    "A workspace is one GeoPackage file holding every layer; it opens in QGIS as it is.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

WorkspaceArg = Annotated[
    str,
    typer.Argument(
        help="The workspace: a GeoPackage file, or postgresql://user@host/db?schema=NAME.",
        show_default=False,
        metavar="WORKSPACE",
    ),
]

WorkersOpt = Annotated[
    int, typer.Option(min=1, help="Processes to run communities in (they are independent).")
]
WORKERS = max(1, os.cpu_count() or 1)
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        envvar="GISGRID_DASK_SCHEDULER",
        metavar="tcp://HOST:PORT",
        help="Run each community as a task on this Dask scheduler's cluster instead of "
        "local processes (the workers need this gisgrid installed).",
        show_default=False,
    ),
]

P = ParamSpec("P")
R = TypeVar("R")


def command(
    name: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register a command whose gisgrid errors become one line on stderr and exit 2."""

    def register(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except GisgridError as exc:
                message = escape(exc.worded(flag))  # "[roles.NAME]" is text, not markup
                err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None
            except Exception as exc:  # a bug: one line, the traceback on request
                if os.environ.get("GISGRID_DEBUG") or _typers(exc):
                    raise
                what = escape(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                err.print(
                    f"[bold red]error:[/] internal error in gisgrid {fn.__name__}: {what}; "
                    "this is a bug, please report it (GISGRID_DEBUG=1 shows the traceback)",
                    highlight=False,
                    soft_wrap=True,
                )
                raise typer.Exit(1) from None

        app.command(name, help=_reflowed(fn.__doc__))(guarded)
        return guarded

    return register


def _reflowed(doc: str | None) -> str | None:
    """A docstring's paragraphs each on one line: the terminal wraps them to its width
    (rich keeps the source's line breaks, which cut every line of ``--help`` in two)."""
    if doc is None:
        return None
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _typers(exc: Exception) -> bool:
    """typer's own exceptions (exits, usage errors), which typer itself reports."""
    return type(exc).__module__.split(".")[0] in ("typer", "click")


def flag(argument: str) -> str:
    """The command-line option of a library argument: ``id_field`` → ``--id-field``."""
    return "--" + argument.replace("_", "-")


@dataclass
class ProgressBar:
    """A bar on stderr, moved by counts or by named stages."""

    progress: Progress
    task: TaskID

    def count(self, done: int, total: int) -> None:
        """Set how much of how many is done."""
        self.progress.update(self.task, completed=done, total=total)

    def stages(self, names: list[str]) -> Callable[[str], None]:
        """A callback that shows stage ``name`` as the current one of ``names``."""
        self.progress.update(self.task, total=len(names))

        def stage(name: str) -> None:
            self.progress.update(self.task, description=name, completed=names.index(name))

        return stage

    def finish(self) -> None:
        """Show the bar full."""
        total = self.progress.tasks[0].total or 0
        self.progress.update(self.task, completed=total)


@contextmanager
def progress_bar(label: str, *, unit: str = "", disable: bool = False) -> Iterator[ProgressBar]:
    """A transient progress bar on stderr (nothing is drawn when ``disable``)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=disable,
    ) as progress:
        yield ProgressBar(progress, progress.add_task(label, total=None))
