"""The ``gisgrid`` command: a thin layer over the library.

Errors that gisgrid raises on purpose are printed as one clear line and exit
with status 2; nothing else is caught.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import gisgrid
from gisgrid._errors import GisgridError, InputError
from gisgrid.schema import LAYERS

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


@contextmanager
def _errors() -> Iterator[None]:
    """Turn gisgrid's own errors into one line on stderr and exit status 2."""
    try:
        yield
    except GisgridError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


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


def _parse_field_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InputError(f"--field-map takes OLD=NEW, got {pair!r}")
        mapping[old.strip()] = new.strip()
    return mapping


@app.command("import")
def import_(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage (created if missing).")],
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
) -> None:
    """Import FILE as LAYER of WORKSPACE, validating every row.

    Rows that cannot be used go to the workspace's [bold]rejected[/] table with a reason;
    invalid geometries are repaired where possible. A summary follows.
    """
    from gisgrid.ingest import import_layer

    with _errors():
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
        )
    table = Table(title=f"{report.layer} ← {Path(report.source).name}", show_header=False)
    table.add_row("rows read", f"{report.read:,}")
    table.add_row("imported", f"{report.imported:,}")
    table.add_row("geometries repaired", f"{report.repaired:,}")
    for reason, n in sorted(report.rejected.items()):
        table.add_row(f"rejected: {reason}", f"[red]{n:,}[/]")
    table.add_row("workspace CRS", report.crs)
    console.print(table)
    for note in report.notes:
        console.print(f"  • {note}", highlight=False)
    if report.rejected:
        console.print(f"  rejected rows are in the [bold]rejected[/] table of {workspace}")


@app.command()
def info(workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage.")]) -> None:
    """List the layers of WORKSPACE with their row counts, and rejected rows by reason."""
    import pyogrio

    from gisgrid.workspace import Workspace

    with _errors():
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
        for name, geom in pyogrio.list_layers(ws.path):
            if name == "gisgrid_meta":
                continue
            n = pyogrio.read_info(ws.path, layer=name)["features"]
            table.add_row(str(name), str(geom or "table"), f"{n:,}")
        console.print(table)
        console.print(f"CRS: {ws.crs.to_string() if ws.crs else 'not set'}")
        if "rejected" in ws:
            rej = pd.DataFrame(ws.read("rejected"))
            if len(rej):
                why = rej.groupby(["layer", rej["reason"].str.split(":").str[0]]).size()
                for (lyr, reason), n in why.items():
                    console.print(f"  rejected {lyr}: {reason}: {n:,}", highlight=False)


def _band(text: str, option: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        band = (int(low), int(high))
    except ValueError:
        raise InputError(f"{option} takes LOW-HIGH, such as 300-500; got {text!r}") from None
    if not sep or band[0] < 0 or band[0] > band[1]:
        raise InputError(f"{option} takes LOW-HIGH with 0 <= LOW <= HIGH; got {text!r}")
    return band


@app.command()
def delineate(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage.")],
    target_households: Annotated[int, typer.Option(min=1, help="Households per basic grid.")] = 400,
    band: Annotated[
        str, typer.Option(help="Accepted households per basic grid, LOW-HIGH.")
    ] = "300-500",
    target_population: Annotated[int, typer.Option(min=1, help="People per basic grid.")] = 1200,
    population_band: Annotated[
        str, typer.Option(help="Accepted people per grid, LOW-HIGH.")
    ] = "900-1500",
    community: Annotated[
        list[str] | None,
        typer.Option(help="Delineate only this community (12-digit code); repeat for more."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed, the same grids.")] = 0,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes (communities run in parallel).")
    ] = max(1, os.cpu_count() or 1),
    full: Annotated[
        bool,
        typer.Option("--full", help="Redraw every unlocked grid, not only those that need it."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Delineate grids (网格) of about 400 households in every community of WORKSPACE.

    Where grids exist, only those whose households left the band (and their neighbours)
    are redrawn; the rest keep their polygon and code, and retired codes are never reused.

    Grids tile each community with no gap or overlap, never cut a building, keep a
    compound whole when it fits, follow roads, rivers and walls, and give schools,
    hospitals, enterprises and markets their own dedicated grid (专属网格). Locked grids
    are kept. Writes the [bold]grids[/] layer, each building's grid_code and a row of
    [bold]runs[/]; prints the quality report (DESIGN §5 metrics).
    """
    import json

    from gisgrid.delineation import Params
    from gisgrid.runs import delineate as run_delineation

    with _errors():
        params = Params(
            target_households=target_households,
            band=_band(band, "--band"),
            target_population=target_population,
            population_band=_band(population_band, "--population-band"),
            seed=seed,
        )
        with Progress(
            TextColumn("delineating"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} communities"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task("delineate", total=None)

            def step(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            run = run_delineation(
                workspace,
                params=params,
                communities=community,
                workers=workers,
                full=full,
                progress=step,
            )
    if as_json:
        report = {
            "run_id": run.run_id,
            "seconds": round(run.seconds, 3),
            "metrics": run.metrics,
            "out_of_band": run.out_of_band.to_dict("records"),
        }
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    m = run.metrics
    table = Table(
        title=f"run {run.run_id}: {m['grids']} grids in {len(run.communities)} "
        f"communities ({run.seconds:.1f} s)",
        show_header=False,
    )
    pct = lambda v: f"{100 * v:.2f} %"  # noqa: E731
    table.add_row("basic grids in band (households)", pct(m["in_band_households"]))
    table.add_row("basic grids in band (population)", pct(m["in_band_population"]))
    table.add_row(
        "deviation from target, mean / max",
        f"{pct(m['deviation_mean'])} / {pct(m['deviation_max'])}",
    )
    table.add_row("contiguity", pct(m["contiguity"]))
    table.add_row("coverage (worst community)", f"{m['coverage_min']:.9f}")
    table.add_row("overlap", f"{m['overlap_m2']:.3g} m²")
    table.add_row("nesting", pct(m["nesting"]))
    table.add_row("building integrity", pct(m["building_integrity"]))
    table.add_row(
        "compound splits (avoidable)", f"{m['compound_splits']} ({m['compound_splits_avoidable']})"
    )
    table.add_row(
        "Polsby–Popper mean / p10", f"{m['polsby_popper_mean']:.3f} / {m['polsby_popper_p10']:.3f}"
    )
    table.add_row("boundaries along roads, rivers, walls", pct(m["natural_boundaries"]))
    if m["stability"] is not None:
        table.add_row("households keeping their grid code", pct(m["stability"]))
    console.print(table)
    for row in run.out_of_band.itertuples():
        console.print(
            f"  {row.grid_code}  {row.households:>5} households  {row.reason}", highlight=False
        )


@app.command()
def redivide(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage.")],
    community: Annotated[
        list[str] | None, typer.Option(help="Community to re-divide (12 digits); repeatable.")
    ] = None,
    parts: Annotated[int | None, typer.Option(min=2, help="Number of new communities.")] = None,
    max_households: Annotated[
        int | None, typer.Option(min=1, help="Most households a new community may hold.")
    ] = None,
    all_over: Annotated[
        int | None,
        typer.Option(min=1, help="Re-divide every community above this many households."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; write nothing.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Processes for the delineation.")] = max(
        1, os.cpu_count() or 1
    ),
) -> None:
    """Re-divide oversized communities (along major roads, water and walls), then
    delineate grids inside the new ones.

    The new community with most households keeps the old code; the others take the next
    serials of the street. Names are provisional (largest compound, else main road). The
    old community stays in the [bold]community_history[/] table.
    """
    import pandas as pd

    from gisgrid.redivision import plan_redivision
    from gisgrid.redivision import redivide as run_redivision
    from gisgrid.workspace import Workspace

    with _errors():
        ws = Workspace(workspace)
        codes = list(community or [])
        if all_over is not None:
            b = ws.read("buildings")
            per = pd.to_numeric(b["households"], errors="coerce").groupby(b["community_code"])
            codes += [c for c, h in per.sum().items() if h > all_over and c not in codes]
            max_households = max_households or all_over
        if not codes:
            raise InputError("name a community with --community CODE, or use --all-over H")
        for code in codes:
            if dry_run:
                plan = plan_redivision(ws, code, parts=parts, max_households=max_households)
            else:
                plan = run_redivision(
                    ws, code, parts=parts, max_households=max_households, workers=workers
                )
            table = Table(
                title=f"{code} → {len(plan.communities)} communities"
                + (" (dry run: nothing written)" if dry_run else "")
            )
            for column in ("code", "name", "households", "population", "buildings", "area km²"):
                table.add_column(column, justify="right" if column != "name" else "left")
            for row in plan.communities.itertuples():
                table.add_row(
                    row.code,
                    row.name,
                    f"{row.households:,}",
                    f"{row.population:,}",
                    f"{row.buildings:,}",
                    f"{row.area_km2:.3f}",
                )
            console.print(table)


@app.command("lock")
def lock_(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage.")],
    grid_codes: Annotated[list[str], typer.Argument(help="15-digit grid codes.")],
) -> None:
    """Lock grids: later delineations keep them exactly as they are."""
    from gisgrid.edits import lock

    with _errors():
        n = lock(workspace, grid_codes, locked=True)
    console.print(f"locked {n} grid(s)")


@app.command("unlock")
def unlock_(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage.")],
    grid_codes: Annotated[list[str], typer.Argument(help="15-digit grid codes.")],
) -> None:
    """Unlock grids, so that delineations may change them again."""
    from gisgrid.edits import lock

    with _errors():
        n = lock(workspace, grid_codes, locked=False)
    console.print(f"unlocked {n} grid(s)")


@app.command("move")
def move_(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage.")],
    to: Annotated[str, typer.Option("--to", help="Grid code to move into.")],
    building: Annotated[str | None, typer.Option(help="Building id to move.")] = None,
    compound: Annotated[str | None, typer.Option(help="Move every building of a compound.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Move even when a rule breaks; flags the grids.")
    ] = False,
) -> None:
    """Move a building or a compound to another grid, with the land around it.

    Refused, with the reasons, when the grids would stop being one piece each, when the
    target is in another community, when a grid is locked, or when a grid would leave the
    household band; --force moves anyway and flags both grids manual_edit.
    """
    from gisgrid.edits import move

    with _errors():
        result = move(workspace, to=to, building=building, compound=compound, force=force)
    for code, (before, after) in result.households.items():
        console.print(f"  {code}: {before} → {after} households", highlight=False)
    console.print(
        f"moved {len(result.buildings)} building(s) to {result.target}"
        + (" [yellow](forced: grids flagged manual_edit)[/]" if result.forced else "")
    )


@app.command("diff")
def diff_(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage.")],
    run_a: Annotated[int, typer.Argument(help="The earlier run.")],
    run_b: Annotated[int, typer.Argument(help="The later run.")],
    csv: Annotated[Path | None, typer.Option(help="Write every change to this CSV.")] = None,
    geojson: Annotated[
        Path | None, typer.Option(help="Write the changed grids (after) as GeoJSON.")
    ] = None,
    map_: Annotated[
        Path | None, typer.Option("--map", help="Write a before/after map (HTML, offline).")
    ] = None,
) -> None:
    """What changed between two runs: grids added, retired, reshaped; buildings moved."""
    from gisgrid.history import diff_map, diff_runs
    from gisgrid.webmap import write_map

    with _errors():
        diff = diff_runs(workspace, run_a, run_b)
        table = Table(title=f"run {run_a} → run {run_b}", show_header=False)
        for kind, n in sorted(diff.summary.items()):
            table.add_row(kind, f"{n:,}")
        console.print(table)
        if csv:
            diff.changes.to_csv(csv, index=False, encoding="utf-8")
        if geojson:
            changed = diff.changes["grid_code"].dropna().unique()
            after = diff.grids_b[diff.grids_b["grid_code"].isin(changed)].to_crs(4326)
            after.to_file(geojson, driver="GeoJSON")
        if map_:
            write_map(diff_map(diff), map_)
    for path in (csv, geojson, map_):
        if path:
            console.print(f"wrote {path}")


@app.command()
def rollback(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage.")],
    run: Annotated[int, typer.Argument(help="The run whose grids to restore.")],
) -> None:
    """Restore the grids and building assignments of an earlier run (recorded as a new run)."""
    from gisgrid.history import rollback as run_rollback

    with _errors():
        new_run = run_rollback(workspace, run)
    console.print(f"restored the grids of run {run} as run {new_run}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("demo"),
    scale: Annotated[
        float,
        typer.Option(
            help="1 ≈ 128,000 households (石峰区's 321 grids × 400); 0.01 is one community; "
            "10 a city ten times larger.",
            min=0.001,
            max=100.0,
        ),
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed, the same district.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes for the delineation.")] = max(
        1, os.cpu_count() or 1
    ),
    redivide_over: Annotated[
        int,
        typer.Option(help="Re-divide communities above this many households (0: don't)."),
    ] = 15000,
    redivide_to: Annotated[
        int, typer.Option(help="Most households of a community after re-division.")
    ] = 8000,
) -> None:
    """Build the demo district and run the whole pipeline on it.

    石峰区: real outline and codes, the rest synthetic. Writes OUT/demo.gpkg (the workspace,
    with its grids, rosters and coverage), OUT/hotline.csv and OUT/demo.html (a map
    that needs no internet).
    """
    from gisgrid.demo.pipeline import run_demo

    stages = [
        "generating the district",
        "counting households from census points",
        "writing the workspace",
        "delineating grids",
        "re-dividing oversized communities",
        "assigning rosters and measuring coverage",
        "drawing the map",
    ]
    with (
        _errors(),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("demo", total=len(stages))

        def step(name: str) -> None:
            bar.update(task, description=name, completed=stages.index(name))

        result = run_demo(
            out,
            scale=scale,
            seed=seed,
            workers=workers,
            progress=step,
            redivide_over=redivide_over or None,
            redivide_to=redivide_to,
        )
        bar.update(task, completed=len(stages))
    console.print(
        f"[bold]{result.workspace}[/]: {result.counts['communities']} communities, "
        f"{result.counts['buildings']:,} buildings, {result.households:,} households, "
        f"{result.population:,} people ({result.rejected} census points rejected)",
        highlight=False,
    )
    m = result.metrics
    console.print(
        f"{result.grids} grids: {100 * m['in_band_households']:.1f} % of basic grids in the "
        f"household band, contiguity {100 * m['contiguity']:.0f} %, "
        f"{100 * m['natural_boundaries']:.0f} % of boundaries along roads and water",
        highlight=False,
    )
    if result.redivided:
        console.print(
            f"re-divided {len(result.redivided)} oversized communities "
            f"({', '.join(result.redivided)}); their old boundaries are on the map",
            highlight=False,
        )
    console.print(
        f"rosters assigned ({result.gaps:,} gaps listed in the gaps table); "
        f"{100 * result.coverage:.1f} % of households within 15 minutes' walk of a service site",
        highlight=False,
    )
    console.print(f"[bold]{result.map}[/]: open it in a browser (works offline)")
    console.print(
        f"serve it: gisgrid serve {result.workspace}  (then http://127.0.0.1:8000/map); "
        f"hotline events to look up: {result.workspace.parent / 'hotline.csv'}",
        highlight=False,
    )
    console.print(f"took {sum(result.seconds.values()):.1f} s", style="dim")


def _pairs(values: list[str], option: str, *, with_value: bool) -> dict[tuple[str, str], str]:
    """Parse ``ROLE:SCOPE=RESOURCE`` (or ``ROLE:SCOPE``) options."""
    out: dict[tuple[str, str], str] = {}
    for text in values:
        head, eq, value = text.partition("=")
        role, colon, scope = head.partition(":")
        if not colon or not role or not scope or (with_value and not (eq and value)):
            form = "ROLE:SCOPE=RESOURCE" if with_value else "ROLE:SCOPE"
            raise InputError(
                f"{option} {text!r} is not {form}, e.g. grid_worker:430204001001001"
                + ("=S00123" if with_value else "")
            )
        out[(role.strip(), scope.strip())] = value.strip()
    return out


@app.command()
def assign(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage, delineated.")],
    policy: Annotated[
        Path | None,
        typer.Option(help="Assignment policy (TOML); the packaged default when omitted."),
    ] = None,
    pin: Annotated[
        list[str],
        typer.Option(
            help="Assign by hand and lock: ROLE:SCOPE=RESOURCE, e.g. "
            "grid_worker:430204001001001=S00123. Repeatable.",
        ),
    ] = [],  # noqa: B006 (typer needs a list default)
    unpin: Annotated[
        list[str], typer.Option(help="Release a locked assignment: ROLE:SCOPE. Repeatable.")
    ] = [],  # noqa: B006
    show_policy: Annotated[
        bool, typer.Option("--show-policy", help="Print the default policy file and exit.")
    ] = False,
) -> None:
    """Fill every role of the policy: grid workers, chiefs, branches, police and more.

    Roles: grid workers, grid chiefs, party branches, police, building chiefs, party-member
    contacts, service sites.
    Grid workers and the other nearest/balanced roles are assigned optimally (least total
    walking distance within capacities), not greedily. Writes the assignments and gaps
    tables; locked (pinned) assignments are kept on re-runs.
    """
    from gisgrid.assignment import assign as run_assign
    from gisgrid.policy import default_policy_text, load_policy
    from gisgrid.workspace import Workspace

    if show_policy:
        typer.echo(default_policy_text())
        raise typer.Exit()
    with _errors():
        pol = load_policy(policy)
        pins = _pairs(pin, "--pin", with_value=True)
        unpins = list(_pairs(unpin, "--unpin", with_value=False))
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} roles"),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("building the network", total=len(pol.roles))
            names = list(pol.roles)

            def step(name: str) -> None:
                bar.update(task, description=name, completed=names.index(name))

            result = run_assign(
                Workspace(workspace), policy=pol, pins=pins, unpin=unpins, progress=step
            )
    table = Table(title=f"assignments ({pol.source})")
    for col in ("role", "filled / needed", "mean walk", "total walk"):
        table.add_column(col, justify="left" if col == "role" else "right")
    for name, tot in result.totals.items():
        title = pol.roles[name].title
        walk = tot["mean_m"] > 0
        table.add_row(
            f"{title} {name}",
            f"{tot['filled']:,} / {tot['needed']:,}",
            f"{tot['mean_m']:,.0f} m" if walk else "—",
            f"{tot['total_m'] / 1000:,.1f} km" if walk else "—",
        )
    console.print(table)
    if len(result.gaps):
        counts = result.gaps.groupby(["role", "gap"]).size()
        console.print(
            f"{len(result.gaps):,} gaps (see the gaps table): "
            + ", ".join(f"{r} {g} {n:,}" for (r, g), n in counts.items()),
            highlight=False,
        )
    console.print(f"took {result.seconds:.1f} s", style="dim")


@app.command()
def coverage(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage.")],
    minutes: Annotated[
        float | None, typer.Option(help="Walking minutes (the policy's, 15, when omitted).")
    ] = None,
    suggest: Annotated[
        int, typer.Option(help="Propose this many new service sites (0: none).", min=0)
    ] = 0,
    greedy: Annotated[
        bool,
        typer.Option(
            "--greedy",
            help="Choose new sites greedily (with a bound) instead of the exact MILP solution.",
        ),
    ] = False,
    policy: Annotated[Path | None, typer.Option(help="Assignment policy (TOML).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the suggested sites here (GeoJSON, lon/lat).")
    ] = None,
) -> None:
    """Share of households and grids within a walk of a party–mass service site.

    Writes the service_areas and uncovered layers and the coverage table (per grid and per
    community). With --suggest K, proposes K new sites at road junctions that cover the most
    uncovered households (maximal covering location).
    """
    import time

    from gisgrid.coverage import coverage_of, suggest_sites
    from gisgrid.network import network_of
    from gisgrid.policy import load_policy
    from gisgrid.workspace import Workspace

    with _errors():
        t0 = time.perf_counter()
        pol = load_policy(policy)
        ws = Workspace(workspace)
        cov = coverage_of(ws, policy=pol, minutes=minutes)
        b = cov.buildings
        uncovered = int(b.loc[~b["covered"], "households"].sum())
        console.print(
            f"within {cov.minutes:g} min walk: {100 * cov.households_share:.1f} % of "
            f"households, {100 * cov.grids_share:.1f} % of grids wholly covered; "
            f"{uncovered:,} households uncovered",
            highlight=False,
        )
        worst = cov.communities.sort_values("share").head(5)
        for row in worst.itertuples():
            console.print(
                f"  {row.code}: {100 * row.share:.1f} % of {row.households:,} households",
                highlight=False,
            )
        if suggest:
            net = network_of(ws, walk_kmh=pol.walk_kmh)
            s = suggest_sites(net, cov, suggest, exact=not greedy)
            table = Table(title=f"{len(s.sites)} suggested sites ({s.method})")
            for col in ("rank", "lon", "lat", "households gained", "covered after"):
                table.add_column(col, justify="right")
            ll = s.sites.to_crs(4326)
            for row, pt in zip(s.sites.itertuples(), ll.geometry, strict=True):
                table.add_row(
                    str(row.rank),
                    f"{pt.x:.6f}",
                    f"{pt.y:.6f}",
                    f"{row.gain:,}",
                    f"{100 * row.covered:.2f} %",
                )
            console.print(table)
            console.print(
                f"adds {s.added:,} households; the best {suggest} sites could add at most "
                f"{s.bound:,.0f} ({100 * s.added / max(s.bound, 1):.1f} % of that bound)",
                highlight=False,
            )
            if out:
                ll.to_file(out, driver="GeoJSON")
                console.print(f"wrote {out}")
    console.print(f"took {time.perf_counter() - t0:.1f} s", style="dim")


@app.command()
def roster(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage, assigned.")],
    grid_code: Annotated[str | None, typer.Argument(help="15-digit grid code.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every grid's roster.")] = False,
    csv: Annotated[Path | None, typer.Option(help="Write the rosters to this CSV.")] = None,
    public: Annotated[bool, typer.Option("--public", help="Only what the public may see.")] = False,
    policy: Annotated[Path | None, typer.Option(help="Assignment policy (TOML).")] = None,
) -> None:
    """Print a grid's roster, or export every grid's with --all --csv.

    A roster names the community, street, grid worker, chief, party branch, police, building
    chiefs, and the service site with its walking minutes.
    """
    from gisgrid.policy import load_policy
    from gisgrid.roster import rosters
    from gisgrid.workspace import Workspace

    with _errors():
        if not all_ and grid_code is None:
            raise InputError("give a GRID_CODE, or --all (with --csv FILE) for every grid")
        pol = load_policy(policy)
        table = rosters(Workspace(workspace), policy=pol, private=not public)
        if not all_:
            table = table[table["grid_code"] == grid_code]
            if table.empty:
                raise InputError(f"no grid {grid_code!r} in {workspace}; grid codes have 15 digits")
        if csv:
            table.to_csv(csv, index=False, encoding="utf-8-sig")  # utf-8-sig: Excel reads the BOM
            console.print(f"wrote {len(table):,} rosters to {csv}")
            return
        titles = {name: r.title for name, r in pol.roles.items()}
        for row in table.to_dict("records"):
            out = Table(
                title=f"{row['grid_code']} {row['grid_name']} ({row['households']:,} households)",
                show_header=False,
            )
            out.add_row("社区 community", f"{row['community']} {row['community_code']}")
            out.add_row("街道 street", f"{row['street']} {row['street_code']}")
            for name, title in titles.items():
                if f"{name}_count" in row:
                    who = row.get(name, "")
                    out.add_row(
                        f"{title} {name}", f"{row[f'{name}_count']} " + (f"({who})" if who else "")
                    )
                elif name in row:
                    extra = ""
                    if row.get(f"{name}_phone"):
                        extra = f"  ☎ {row[f'{name}_phone']}  {row[f'{name}_min']:g} min walk"
                    out.add_row(f"{title} {name}", (row[name] or "[red]not filled[/]") + extra)
            console.print(out)


@app.command()
def serve(
    workspace: Annotated[Path | None, typer.Argument(help="Workspace GeoPackage to serve.")] = None,
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
    with _errors():
        given = {"workspace": workspace, "host": host, "port": port}
        if config:
            settings = Settings.from_file(config, **given)
        else:
            settings = Settings.checked(**{k: v for k, v in given.items() if v is not None})
        fastapi_app = create_app(settings)
    console.print(f"serving {settings.workspace} on http://{settings.host}:{settings.port}/map")
    uvicorn.run(fastapi_app, host=settings.host, port=settings.port, log_level="warning")


@app.command("hash-key")
def hash_key_(key: Annotated[str, typer.Argument(help="The API key to give someone.")]) -> None:
    """Print the SHA-256 of an API key, to put under \\[api_keys] in the config file."""
    from gisgrid.server.settings import hash_key

    typer.echo(hash_key(key))


@app.command()
def tiles(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage.")],
    pmtiles: Annotated[Path, typer.Option("--pmtiles", help="PMTiles archive to write.")],
    tileset: Annotated[str, typer.Option(help="Tileset: redmap or one collection.")] = "redmap",
    min_zoom: Annotated[int, typer.Option(min=0, max=22)] = 0,
    max_zoom: Annotated[int, typer.Option(min=0, max=22)] = 16,
) -> None:
    """Export a tileset (public content) as one PMTiles archive, for static hosting."""
    from gisgrid.catalog import Catalog
    from gisgrid.tiles import TileSource, write_pmtiles
    from gisgrid.workspace import Workspace

    with (
        _errors(),
        Progress(
            TextColumn("tiles"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("tiles", total=0)
        source = TileSource(Catalog(Workspace(workspace)), role="public")
        n = write_pmtiles(
            source,
            pmtiles,
            tileset=tileset,
            min_zoom=min_zoom,
            max_zoom=max_zoom,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(f"wrote {n:,} tiles to {pmtiles}")


@app.command()
def lookup(
    workspace: Annotated[Path, typer.Argument(help="Workspace GeoPackage.")],
    lon: Annotated[float | None, typer.Option(help="Longitude.")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude.")] = None,
    crs: Annotated[str, typer.Option(help="wgs84, gcj02, bd09 or cgcs2000.")] = "wgs84",
    address: Annotated[str | None, typer.Option(help="An address as people write it.")] = None,
    csv: Annotated[Path | None, typer.Option(help="A CSV of points or addresses.")] = None,
    lon_col: Annotated[str, typer.Option(help="CSV longitude column.")] = "lon",
    lat_col: Annotated[str, typer.Option(help="CSV latitude column.")] = "lat",
    address_col: Annotated[str | None, typer.Option(help="CSV address column.")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the CSV with grids.")] = None,
    counts: Annotated[Path | None, typer.Option(help="Also write rows per grid here.")] = None,
) -> None:
    """Which street, community and grid covers a point, an address, or every row of a CSV.

    For a CSV (the 12345 hotline use): each row gets its grid_code, names and a reason
    when it falls outside every grid; --counts writes the number of rows per grid.
    """
    import json

    from gisgrid.directory import Directory
    from gisgrid.workspace import Workspace

    with _errors():
        directory = Directory(Workspace(workspace))
        if csv is not None:
            if out is None:
                raise InputError("--csv needs --out OUT.csv for the result")
            try:
                table = pd.read_csv(csv, dtype=str, encoding="utf-8-sig")
            except (FileNotFoundError, ValueError, pd.errors.ParserError) as exc:
                raise InputError(f"cannot read {csv}: {exc}") from None
            result = directory.table(
                table,
                lon_col=lon_col,
                lat_col=lat_col,
                address_col=address_col,
                crs=crs,
                source=f"{csv} (see --lon-col, --lat-col, --address-col)",
            )
            result.to_csv(out, index=False, encoding="utf-8-sig")
            inside = result[result["grid_code"] != ""]
            console.print(
                f"wrote {len(result):,} rows to {out}: {len(inside):,} in a grid, "
                f"{len(result) - len(inside):,} outside (see the reason column)"
            )
            if counts is not None:
                per = inside.groupby(["grid_code", "grid_name", "community"]).size()
                per.rename("rows").reset_index().sort_values("rows", ascending=False).to_csv(
                    counts, index=False, encoding="utf-8-sig"
                )
                console.print(f"wrote rows per grid to {counts}")
            return
        if address is not None:
            answer = directory.address(address, staff=True)
        elif lon is not None and lat is not None:
            answer = directory.point(lon, lat, crs=crs, staff=True)
        else:
            raise InputError("give --lon and --lat, --address, or --csv")
    typer.echo(json.dumps(answer, ensure_ascii=False, indent=2, default=str))


if __name__ == "__main__":
    app()
