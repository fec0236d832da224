"""The demo command: the whole pipeline on the synthetic 石峰区."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gisgrid.cli._common import WORKERS, WorkersOpt, command, console, progress_bar


@command()
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
    workers: WorkersOpt = WORKERS,
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

    stages = [
        "generating the district",
        "counting households from census points",
        "writing the workspace",
        "delineating grids",
        "re-dividing oversized communities",
        "assigning rosters and measuring coverage",
        "drawing the map",
    ]
    from gisgrid.demo.pipeline import run_demo

    with progress_bar("demo") as bar:
        result = run_demo(
            out,
            scale=scale,
            seed=seed,
            workers=workers,
            progress=bar.stages(stages),
            redivide_over=redivide_over or None,
            redivide_to=redivide_to,
        )
        bar.finish()
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
