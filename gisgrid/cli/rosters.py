"""Commands on rosters: assign, coverage, roster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gisgrid._errors import InputError
from gisgrid.cli._common import WorkspaceArg, command, console, progress_bar


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


@command()
def assign(
    workspace: WorkspaceArg,
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
    from gisgrid.io.workspace import Workspace
    from gisgrid.roster.assignment import assign as run_assign
    from gisgrid.roster.policy import default_policy_text, load_policy

    if show_policy:
        typer.echo(default_policy_text())
        raise typer.Exit()
    pol = load_policy(policy)
    pins = _pairs(pin, "--pin", with_value=True)
    unpins = list(_pairs(unpin, "--unpin", with_value=False))
    with progress_bar("building the network", unit="roles") as bar:
        result = run_assign(
            Workspace(workspace),
            policy=pol,
            pins=pins,
            unpin=unpins,
            progress=bar.stages(list(pol.roles)),
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


@command()
def coverage(
    workspace: WorkspaceArg,
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

    from gisgrid.io.workspace import Workspace
    from gisgrid.roster.coverage import coverage_of, suggest_sites
    from gisgrid.roster.network import network_of
    from gisgrid.roster.policy import load_policy

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


@command()
def roster(
    workspace: WorkspaceArg,
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
    from gisgrid.io.workspace import Workspace
    from gisgrid.roster.policy import load_policy
    from gisgrid.roster.roster import rosters

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
