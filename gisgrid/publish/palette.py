"""The one palette of grids by households, derived from the band, for every map.

Both maps (the folium page of ``gisgrid demo`` and the MapLibre 红地图) colour a
grid from this table, so a grid's colour always agrees with
:meth:`gisgrid.delineate.partition.Band.contains`: a grid of exactly the
ceiling is in band on both.

Examples
--------
>>> from gisgrid.delineate.partition import Band
>>> p = Palette(Band(400, 300, 500))
>>> p.colour(500) == p.colour(499) != p.colour(501)
True
>>> [label for label, _ in p.legend()]
['< 300', '300–349', '350–449', '450–500', '> 500', '专属 dedicated']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gisgrid.delineate.community import Params
from gisgrid.delineate.partition import Band

__all__ = ["DEDICATED_COLOUR", "Palette"]

UNDER = "#9ecae1"  # under the floor: blue, so it stands out from the reds
LOW, MIDDLE, HIGH = "#fdd0a2", "#fc8d59", "#e34a33"  # in band: light to dark
OVER = "#67000d"  # over the ceiling
DEDICATED_COLOUR = "#bcbddc"


@dataclass(frozen=True)
class Palette:
    """Fill colours of grids by households, for one band.

    Inside the band, three shades: the lower half of the floor-to-target range,
    the middle around the target, and the upper half of the target-to-ceiling
    range.
    """

    band: Band = field(default_factory=lambda: Params().households)

    @property
    def _stops(self) -> tuple[int, int]:
        """Where the middle shade starts and where the upper one starts (households)."""
        b = self.band
        return (
            math.ceil(b.low + (b.target - b.low) / 2),
            math.ceil(b.target + (b.high - b.target) / 2),
        )

    def colour(self, households: float, grid_type: str = "basic") -> str:
        """The fill colour of one grid."""
        if grid_type == "dedicated":
            return DEDICATED_COLOUR
        if households < self.band.low:
            return UNDER
        if households > self.band.high:
            return OVER
        middle, upper = self._stops
        return LOW if households < middle else MIDDLE if households < upper else HIGH

    def expression(self) -> list[Any]:
        """The same rule as a MapLibre expression over ``households`` and ``grid_type``."""
        hh = ["coalesce", ["get", "households"], 0]
        middle, upper = self._stops
        return [
            "case",
            ["==", ["get", "grid_type"], "dedicated"],
            DEDICATED_COLOUR,
            ["<", hh, self.band.low],
            UNDER,
            [">", hh, self.band.high],
            OVER,
            ["step", hh, LOW, middle, MIDDLE, upper, HIGH],
        ]

    def legend(self) -> list[tuple[str, str]]:
        """Legend rows, label and colour, from under the floor to dedicated."""
        low, high = _whole(self.band.low), _whole(self.band.high)
        middle, upper = self._stops
        return [
            (f"< {low}", UNDER),
            (f"{low}–{middle - 1}", LOW),
            (f"{middle}–{upper - 1}", MIDDLE),
            (f"{upper}–{high}", HIGH),
            (f"> {high}", OVER),
            ("专属 dedicated", DEDICATED_COLOUR),
        ]


def _whole(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
