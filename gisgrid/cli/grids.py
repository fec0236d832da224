"""Commands on grids: delineate, redivide, lock, unlock, move, diff, rollback, publish."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from gisgrid._errors import InputError
from gisgrid.cli._common import (
    WORKERS,
    SchedulerOpt,
    WorkersOpt,
    WorkspaceArg,
    command,
    console,
    progress_bar,
)


def _band(text: str, option: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        band = (int(low), int(high))
    except ValueError:
        raise InputError(f"{option} takes LOW-HIGH, such as 300-500; got {text!r}") from None
    if not sep or band[0] < 0 or band[0] > band[1]:
        raise InputError(f"{option} takes LOW-HIGH with 0 <= LOW <= HIGH; got {text!r}")
    return band


@command()
def delineate(
    workspace: WorkspaceArg,
    target_households: Annotated[int, typer.Option(min=1, help="Households per basic grid.")] = 400,
    band: Annotated[
        str, typer.Option(help="Accepted households per basic grid, LOW-HIGH.")
    ] = "300-500",
    persons_per_household: Annotated[
        float | None,
        typer.Option(
            min=0.5,
            max=10.0,
            help="Turns the household band into the population band [default: the "
            "buildings' population ÷ households; 2.62 where they carry no population].",
        ),
    ] = None,
    target_population: Annotated[
        int | None,
        typer.Option(
            min=1, help="People per basic grid [default: target × persons per household]."
        ),
    ] = None,
    population_band: Annotated[
        str | None,
        typer.Option(
            help="Accepted people per grid, LOW-HIGH [default: the household band × persons "
            "per household]."
        ),
    ] = None,
    dedicated_min_floor: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Floor area (m², footprint × floors) from which a school, hospital, "
            "enterprise or market compound gets its own grid.",
        ),
    ] = 5000.0,
    community: Annotated[
        list[str] | None,
        typer.Option(help="Delineate only this community (12-digit code); repeat for more."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed, the same grids.")] = 0,
    workers: WorkersOpt = WORKERS,
    scheduler: SchedulerOpt = None,
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
    compound whole when it fits, follow roads, rivers and walls, and give school, hospital,
    enterprise and market compounds of at least --dedicated-min-floor m² their own
    dedicated grid (专属网格), as does a yes in the buildings' dedicated field. Locked grids
    are kept. Writes the [bold]grids[/] layer, each building's grid_code and a row of
    [bold]runs[/]; prints the quality report (DESIGN §5 metrics).
    """

    from gisgrid.delineate.community import Params
    from gisgrid.delineate.run import delineate as run_delineation

    params = Params(
        target_households=target_households,
        band=_band(band, "--band"),
        persons_per_household=persons_per_household,
        target_population=target_population or 0,
        population_band=_band(population_band, "--population-band") if population_band else (0, 0),
        dedicated_min_floor_m2=dedicated_min_floor,
        seed=seed,
    )
    with progress_bar("delineating", unit="communities", disable=as_json) as bar:
        run = run_delineation(
            workspace,
            params=params,
            communities=community,
            workers=workers,
            scheduler=scheduler,
            full=full,
            progress=bar.count,
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
    low, high = run.params.band
    plow, phigh = run.params.population_band
    table.add_row(f"basic grids in band (households {low}–{high})", pct(m["in_band_households"]))
    table.add_row(
        f"basic grids in band (population {plow:,}–{phigh:,})", pct(m["in_band_population"])
    )
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
    _draft_hint(workspace)


def _draft_hint(workspace: str) -> None:
    console.print(
        f"[dim]a draft: the public sees it once published (`gisgrid publish {workspace} "
        "--note TEXT`)[/]",
        highlight=False,
    )


@command()
def redivide(
    workspace: WorkspaceArg,
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
    workers: WorkersOpt = WORKERS,
    scheduler: SchedulerOpt = None,
) -> None:
    """Re-divide oversized communities (along major roads, water and walls), then
    delineate grids inside the new ones.

    The new community with most households keeps the old code; the others take the next
    serials of the street. Names are provisional (largest compound, else main road). The
    old community stays in the [bold]community_history[/] table.
    """

    from gisgrid.delineate.redivision import plan_redivision
    from gisgrid.delineate.redivision import redivide as run_redivision
    from gisgrid.io.workspace import Workspace

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
                ws,
                code,
                parts=parts,
                max_households=max_households,
                workers=workers,
                scheduler=scheduler,
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


@command("lock")
def lock_(
    workspace: WorkspaceArg,
    grid_codes: Annotated[list[str], typer.Argument(help="15-digit grid codes.")],
) -> None:
    """Lock grids: later delineations keep them exactly as they are."""
    from gisgrid.delineate.edits import lock

    n = lock(workspace, grid_codes, locked=True)
    console.print(f"locked {n} grid(s)")


@command("unlock")
def unlock_(
    workspace: WorkspaceArg,
    grid_codes: Annotated[list[str], typer.Argument(help="15-digit grid codes.")],
) -> None:
    """Unlock grids, so that delineations may change them again."""
    from gisgrid.delineate.edits import lock

    n = lock(workspace, grid_codes, locked=False)
    console.print(f"unlocked {n} grid(s)")


@command("move")
def move_(
    workspace: WorkspaceArg,
    to: Annotated[str, typer.Option("--to", help="Grid code to move into.")],
    building: Annotated[str | None, typer.Option(help="Building id to move.")] = None,
    compound: Annotated[str | None, typer.Option(help="Move every building of a compound.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Move even when a rule breaks; flags the grids.")
    ] = False,
    reason: Annotated[
        str, typer.Option(help="Why a forced move is made; kept with the grids and the run.")
    ] = "",
) -> None:
    """Move a building or a compound to another grid, with the land around it.

    Refused, with the reasons, when the grids would stop being one piece each, when the
    target is in another community, when a grid is locked, or when a grid would leave the
    household band; --force moves anyway and flags both grids manual_edit.
    """
    from gisgrid.delineate.edits import move

    result = move(
        workspace, to=to, building=building, compound=compound, force=force, reason=reason
    )
    for code, (before, after) in result.households.items():
        console.print(f"  {code}: {before} → {after} households", highlight=False)
    console.print(
        f"moved {len(result.buildings)} building(s) to {result.target}"
        + (" [yellow](forced: grids flagged manual_edit)[/]" if result.forced else "")
    )
    _draft_hint(workspace)


@command("diff")
def diff_(
    workspace: WorkspaceArg,
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
    from gisgrid.delineate.history import diff_runs
    from gisgrid.publish.webmap import diff_map, write_map

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


@command()
def rollback(
    workspace: WorkspaceArg,
    run: Annotated[int, typer.Argument(help="The run whose grids to restore.")],
) -> None:
    """Restore the grids and building assignments of an earlier run (recorded as a new run)."""
    from gisgrid.delineate.history import rollback as run_rollback

    new_run = run_rollback(workspace, run)
    console.print(f"restored the grids of run {run} as run {new_run}")
    _draft_hint(workspace)


@command()
def publish(
    workspace: WorkspaceArg,
    note: Annotated[
        str | None,
        typer.Option(help="What is published, on whose approval. Without it: show the draft."),
    ] = None,
    restore: Annotated[
        int | None,
        typer.Option(help="Publish the grids of this earlier run instead (undoes a publication)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Publish the draft grids: the public map, tiles, features, lookups and rosters show
    them from now on. Without --note, show what publishing would change."""
    from dataclasses import asdict

    from gisgrid.delineate.publication import draft_status
    from gisgrid.delineate.publication import publish as run_publish

    if note is not None:
        run = run_publish(workspace, note=note, restore=restore)
        if not as_json:
            console.print(f"published the draft as run {run}")
    elif restore is not None:
        raise InputError("--restore publishes: give --note too")
    status = draft_status(workspace)
    if as_json:
        typer.echo(json.dumps(asdict(status), ensure_ascii=False, indent=2))
        return
    if note is None:
        published = (
            f"run {status.published_run} ({status.published_at}: {status.note})"
            if status.published_run is not None
            else "nothing yet"
        )
        console.print(f"published: {published}\ndraft: run {status.draft_run}", highlight=False)
        for kind, n in sorted((status.pending or {}).items()):
            console.print(f"  {kind}: {n:,} not yet published", highlight=False)
