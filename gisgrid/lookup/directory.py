"""The directory: which street, community and grid covers a place, and who serves it.

It answers the analyst's and the citizen's question for a point (in any of the
coordinate systems people have), for an address, or for a whole table of
them, from the workspace's grids, rosters and building addresses. Points outside
every grid get an empty grid and a reason; addresses that match nothing get
suggestions. The public view carries the public roster only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gisgrid._errors import InputError, NotFoundError
from gisgrid.crs.names import InputCRS, parse_crs, to_wgs84
from gisgrid.delineate.publication import published_buildings, published_grids
from gisgrid.io.schema import json_value
from gisgrid.io.workspace import Workspace
from gisgrid.lookup.gazetteer import Gazetteer
from gisgrid.lookup.locator import GridLocator
from gisgrid.roster.roster import grid_table, rosters

__all__ = ["CHUNK_ROWS", "CsvLookup", "Directory", "lookup_csv"]

#: rows read, looked up and written at a time by :func:`lookup_csv`
CHUNK_ROWS = 250_000

logger = logging.getLogger(__name__)

OUTSIDE = "outside every grid"


@dataclass
class Directory:
    """Lookups over one workspace (load once, ask many times).

    Parameters
    ----------
    ws
        A delineated workspace.
    """

    ws: Workspace
    grids: pd.DataFrame = field(init=False)
    locator: GridLocator = field(init=False)
    gazetteer: Gazetteer = field(init=False)
    rosters: dict[bool, dict[str, dict]] = field(init=False)

    def __post_init__(self) -> None:
        if not self.ws.exists:
            raise InputError(f"there is no workspace at {self.ws.location}; check the path")
        grids = published_grids(self.ws)  # lookups answer what the public sees
        self.locator = GridLocator(grids)
        streets = (
            self.ws.read("streets")
            if "streets" in self.ws
            else pd.DataFrame(columns=["code", "name"])
        )
        comms = self.ws.read("communities")
        self.grids = grid_table(grids, comms, streets)
        buildings = published_buildings(self.ws, columns=["building_id", "address", "grid_code"])
        self.building_grid = dict(
            zip(buildings["building_id"], buildings["grid_code"].fillna(""), strict=True)
        )
        drop = [*streets["name"].astype(str), *comms["name"].astype(str)]
        self.gazetteer = Gazetteer(buildings, drop=drop)
        self.rosters = {}
        if "assignments" in self.ws:
            skip = {"grid_name", "grid_type", "households", "community_code", "street_code"}
            skip |= {"community", "street"}
            tables = {
                "grids": grids,
                "communities": comms,
                "streets": streets,
                "assignments": self.ws.read("assignments"),
                "resources": self.ws.read("resources"),
            }  # read once for both views
            for private in (False, True):
                table = rosters(self.ws, private=private, tables=tables).set_index("grid_code")
                self.rosters[private] = {
                    code: {
                        k: json_value(v)
                        for k, v in row.items()
                        if k not in skip and json_value(v) not in ("", None)
                    }
                    for code, row in table.to_dict("index").items()
                }
        self._records = self.grids.to_dict("records")

    def _grid(self, pos: int, *, staff: bool) -> dict:
        row = self._records[pos]
        return {
            "street": {"code": row["street_code"], "name": row["street"]},
            "community": {"code": row["community_code"], "name": row["community"]},
            "grid": {
                "code": row["grid_code"],
                "name": row["grid_name"],
                "type": row["grid_type"],
                "households": int(row["households"]),
            },
            "roster": self.roster(row["grid_code"], staff=staff),
        }

    def roster(self, grid_code: str, *, staff: bool) -> dict:
        """A grid's roster (public or staff view); empty before ``gisgrid assign``."""
        return dict(self.rosters.get(staff, {}).get(grid_code, {}))

    def point(
        self, lon: float, lat: float, *, crs: InputCRS | str = "wgs84", staff: bool = False
    ) -> dict:
        """Street, community, grid and roster at a point.

        Raises
        ------
        InputError
            For coordinates that are not numbers or lie outside lon/lat ranges.
        NotFoundError
            When no grid covers the point.
        """
        source = crs if isinstance(crs, InputCRS) else parse_crs(crs)
        _check_point(lon, lat, geographic=source.crs.is_geographic)
        pos = int(self.locator.locate([lon], [lat], crs=source)[0])
        if pos < 0:
            wlon, wlat = to_wgs84([lon], [lat], source)
            raise NotFoundError(
                f"no grid covers ({lon}, {lat}) in {source} (WGS84 {wlon[0]:.6f}, {wlat[0]:.6f}): "
                f"the point is {OUTSIDE} of this district; check the coordinate system"
            )
        return {"lon": lon, "lat": lat, "crs": str(source), **self._grid(pos, staff=staff)}

    def address(self, text: str, *, staff: bool = False, limit: int = 5) -> dict:
        """Buildings matching an address, best first, with the best one's grid and roster.

        Raises
        ------
        NotFoundError
            With suggestions, when nothing scores well enough.
        """
        if not text or not str(text).strip():
            raise InputError("address is empty; give an address such as 人民北路1616号中央府5栋")
        found = self.gazetteer.search(text, limit=limit)
        if not found:
            near = [
                {"address": m.address, "score": m.score}
                for m in self.gazetteer.suggest(text, limit=3)
            ]
            raise NotFoundError(f"no building matches the address {text!r}", near)
        candidates = []
        for m in found:
            code = self.building_grid.get(m.building_id, "")
            candidates.append(
                {
                    "building_id": m.building_id,
                    "address": m.address,
                    "score": m.score,
                    "grid_code": code,
                }
            )
        best = candidates[0]["grid_code"]
        out: dict = {"query": text, "candidates": candidates}
        pos = np.flatnonzero(self.grids["grid_code"].to_numpy() == best)
        if len(pos):
            out.update(self._grid(int(pos[0]), staff=staff))
        return out

    def points(
        self, lon: Sequence[float], lat: Sequence[float], *, crs: InputCRS | str = "wgs84"
    ) -> pd.DataFrame:
        """Grid, community and street of many points; outside ones get a reason."""
        lon = pd.to_numeric(pd.Series(lon), errors="coerce").to_numpy(float)
        lat = pd.to_numeric(pd.Series(lat), errors="coerce").to_numpy(float)
        pos = self.locator.locate(lon, lat, crs=crs)
        bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lon) > 180) | (np.abs(lat) > 90)
        return self._rows(pos, np.where(bad, "coordinates missing or not numbers", OUTSIDE))

    def addresses(self, texts: Sequence[str]) -> pd.DataFrame:
        """Grid, community and street of many addresses (best match), with its score."""
        pos, score, reason = [], [], []
        index = pd.Index(self.grids["grid_code"])
        for text in texts:
            found = (
                self.gazetteer.search(str(text)) if isinstance(text, str) and text.strip() else []
            )
            code = self.building_grid.get(found[0].building_id, "") if found else ""
            pos.append(index.get_loc(code) if code in index else -1)
            score.append(found[0].score if found else 0.0)
            reason.append("" if found else "no building matches the address")
        out = self._rows(np.asarray(pos, int), np.asarray(reason, object))
        out["match_score"] = score
        return out

    def table(
        self,
        rows: pd.DataFrame,
        *,
        lon_col: str = "lon",
        lat_col: str = "lat",
        address_col: str | None = None,
        crs: InputCRS | str = "wgs84",
        source: str = "the table",
    ) -> pd.DataFrame:
        """A table of points (or of addresses, with ``address_col``) with each row's grid,
        community, street and reason appended.

        Raises
        ------
        InputError
            Naming ``source`` when it lacks the columns.
        """
        need = [address_col] if address_col is not None else [lon_col, lat_col]
        missing = [c for c in need if c not in rows.columns]
        if missing:
            raise InputError(
                f"{source} has no column {', '.join(missing)} (it has "
                f"{', '.join(map(str, rows.columns))}); name its longitude and latitude "
                "columns, or its address column"
            )
        if address_col is not None:
            found = self.addresses(rows[address_col].tolist())
        else:
            found = self.points(rows[lon_col].tolist(), rows[lat_col].tolist(), crs=crs)
        return pd.concat([rows.reset_index(drop=True), found], axis=1)

    def _rows(self, pos: np.ndarray, reason: np.ndarray) -> pd.DataFrame:
        cols = ["grid_code", "grid_name", "community_code", "community", "street_code", "street"]
        table = self.grids[cols].to_numpy(object)
        out = pd.DataFrame(np.where(pos[:, None] >= 0, table[np.maximum(pos, 0)], ""), columns=cols)
        out["reason"] = np.where(pos >= 0, "", reason)
        return out


def _check_point(lon: float, lat: float, *, geographic: bool) -> None:
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (lon, lat)):
        raise InputError("lon and lat must be numbers")
    if geographic and not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError(
            f"({lon}, {lat}) is not a longitude/latitude: lon in −180…180, lat in −90…90"
        )


@dataclass
class CsvLookup:
    """What :func:`lookup_csv` did: rows read, rows in a grid, and rows per grid."""

    rows: int
    inside: int
    per_grid: pd.DataFrame


def lookup_csv(
    directory: Directory,
    source: Path,
    out: Path,
    *,
    lon_col: str = "lon",
    lat_col: str = "lat",
    address_col: str | None = None,
    crs: InputCRS | str = "wgs84",
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> CsvLookup:
    """Look up every row of a CSV of any length, ``chunk_rows`` at a time: memory stays
    bounded by the chunk, whatever the file's size. Each row gets its grid, names and
    reason (as :meth:`Directory.table`); ``out`` is written as a whole or not at all
    (UTF-8 with a byte-order mark, so Excel reads the Chinese).

    Parameters
    ----------
    progress
        Called with (bytes read, file size) after each chunk.

    Raises
    ------
    InputError
        When the file cannot be read or lacks the columns (nothing is written).
    """
    size = source.stat().st_size if source.exists() else 0
    tmp = out.with_name(f".{out.name}.tmp")
    rows = inside = 0
    counts: list[pd.Series] = []
    try:
        with open(source, "rb") as handle, open(tmp, "w", encoding="utf-8-sig", newline="") as sink:
            chunks = pd.read_csv(handle, dtype=str, encoding="utf-8-sig", chunksize=chunk_rows)
            for i, chunk in enumerate(chunks):
                result = directory.table(
                    chunk,
                    lon_col=lon_col,
                    lat_col=lat_col,
                    address_col=address_col,
                    crs=crs,
                    source=f"{source} (see --lon-col, --lat-col, --address-col)",
                )
                result.to_csv(sink, index=False, header=i == 0)
                hit = result[result["grid_code"] != ""]
                counts.append(hit.groupby(["grid_code", "grid_name", "community"]).size())
                rows, inside = rows + len(result), inside + len(hit)
                if progress:
                    progress(handle.tell(), size)
    except InputError:  # the file's columns: said as the table says them
        tmp.unlink(missing_ok=True)
        raise
    except (FileNotFoundError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot read {source}: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    per = pd.concat(counts).groupby(level=[0, 1, 2]).sum() if counts else pd.Series(dtype=int)
    per_grid = (
        per.rename("rows")
        .reset_index()
        .sort_values(["rows", "grid_code"], ascending=[False, True], ignore_index=True)
        if len(per)
        else pd.DataFrame(columns=["grid_code", "grid_name", "community", "rows"])
    )
    return CsvLookup(rows, inside, per_grid)
