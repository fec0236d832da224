"""Import a file into a workspace layer: read, reproject, validate, derive, write.

After buildings, communities or census points change, the derived fields of
``buildings`` are brought up to date: ``community_code`` from the community
holding each building, and ``households``/``population`` from census points
(when the workspace has them), from the input (when it gave them) or estimated
from floor area (:mod:`gisgrid.io.households`), with ``households_source`` saying
which.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

import gisgrid
from gisgrid._errors import CRSError, EmptyLayerError, InputError, argument
from gisgrid.crs import InputCRS, local_crs, off_the_map, parse_crs, to_crs
from gisgrid.crs import metric_crs as parse_metric_crs
from gisgrid.io.households import (
    PERSONS_PER_HOUSEHOLD,
    estimate_households,
    households_from_census,
)
from gisgrid.io.jurisdictions import check_jurisdictions, community_of
from gisgrid.io.schema import LayerSchema, schema_for
from gisgrid.io.source import read_source
from gisgrid.io.validation import (
    SOURCE_ROW,
    Validated,
    rejected_rows,
    rejected_table,
    validate_layer,
)
from gisgrid.io.workspace import Workspace, WorkspaceLike, open_workspace

__all__ = ["ImportReport", "derive_buildings", "import_layer"]

logger = logging.getLogger(__name__)

_JOIN_REASONS = ("no building", "ambiguous building")
#: the layers an import of each layer reads to make its joins
_JOINS: dict[str, tuple[str, ...]] = {
    "communities": ("streets", "buildings", "census_points"),
    "buildings": ("communities", "census_points"),
    "census_points": ("communities", "buildings"),
}
ImportMode = Literal["replace", "append", "update"]
IMPORT_MODES: tuple[str, ...] = ("replace", "append", "update")


class ImportRefusedError(InputError):
    """An import that would destroy data it cannot replace; nothing was written."""


@dataclass
class ImportReport:
    """What an import did, for the summary printed after it.

    Attributes
    ----------
    layer, source
        The workspace layer and the input file.
    read, written, imported
        Rows read from the file, rows of it written, and rows now in the layer
        (``read == written + sum(rejected.values())``).
    repaired
        Invalid geometries repaired by ``make_valid``.
    rejected
        The file's rejected rows, by reason.
    other_rejected
        Rows of other layers this import re-checked and rejected (census points
        that no longer meet a building), by layer and reason.
    notes
        Other things worth knowing.
    crs
        The workspace CRS.
    """

    layer: str
    source: str
    read: int
    imported: int
    repaired: int
    rejected: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    crs: str = ""
    written: int = 0
    other_rejected: Counter[str] = field(default_factory=Counter)


def _metric_target(ws: Workspace, located: gpd.GeoDataFrame, metric_crs: str | None) -> pyproj.CRS:
    """The workspace's metric CRS: its own, the one asked for, or the data's zone."""
    if metric_crs is None:
        return ws.crs or local_crs(located)
    wanted = parse_metric_crs(metric_crs)
    if ws.crs is not None and not ws.crs.equals(wanted):
        raise InputError(
            f"{ws.location} is already in EPSG:{ws.crs.to_epsg()}; drop "
            f"{argument('metric_crs')}, or import into a new workspace"
        )
    return wanted


def import_layer(
    workspace: WorkspaceLike | Path,
    layer: str,
    path: str | Path,
    *,
    crs: str | None = None,
    id_field: str | None = None,
    field_map: Mapping[str, str] | None = None,
    source_layer: str | None = None,
    lon_col: str | None = None,
    lat_col: str | None = None,
    encoding: str | None = None,
    repair: bool = False,
    mode: ImportMode = "replace",
    max_rejected: float = 0.5,
    metric_crs: str | None = None,
) -> ImportReport:
    """Import one file into a workspace layer, in one transaction.

    Parameters
    ----------
    workspace
        The workspace (created when the file does not exist).
    layer
        ``streets``, ``communities``, ``buildings``, ``census_points``,
        ``roads``, ``barriers``, ``water`` or ``resources``.
    path
        GeoPackage, GeoJSON, Shapefile, GeoParquet, CSV or OSM PBF file.
    crs
        What the coordinates are in, when the file does not say or says wrong:
        ``wgs84``, ``cgcs2000``, ``gcj02``, ``bd09`` or an EPSG code.
    id_field
        The input field holding the layer's id (``building_id``, ``code``, …).
    field_map
        Input field names to rename, old → new.
    source_layer
        The layer to read inside a multi-layer input file.
    lon_col, lat_col
        Coordinate columns of a CSV.
    encoding
        Text encoding of a Shapefile's DBF or a CSV, when detection is not enough.
    repair
        Communities that overlap or leave gaps in their street are repaired by the
        rule of :mod:`gisgrid.io.jurisdictions` instead of refused.
    mode
        ``replace`` the layer, ``append`` the rows (ids already there are rejected),
        or ``update`` (rows whose id is there replace it, the others are added).
    max_rejected
        The largest share of the file's rows that may be rejected; above it the
        import writes nothing.
    metric_crs
        The workspace's metric CRS (an EPSG code), for the first import; by default
        the Gauss–Krüger zone of the data inside China, its UTM zone elsewhere.

    Returns
    -------
    ImportReport

    Raises
    ------
    CRSError
        When the input has no CRS and none is declared.
    ImportRefusedError
        When the import would write no row, would empty a layer, or rejects more
        than ``max_rejected`` of the file's rows: nothing is written.
    InputError
        For unreadable input or missing fields.
    """
    if mode not in IMPORT_MODES:
        raise InputError(f"{argument('mode')} must be one of {', '.join(IMPORT_MODES)}")
    if not 0 <= max_rejected <= 1:
        raise InputError(f"{argument('max_rejected')} is a share from 0 to 1, not {max_rejected}")
    ws = open_workspace(workspace)
    schema = schema_for(layer)
    path = Path(path)
    frame, declared, truncated = _read(
        path,
        schema,
        crs=crs,
        id_field=id_field,
        field_map=field_map,
        source_layer=source_layer,
        lon_col=lon_col,
        lat_col=lat_col,
        encoding=encoding,
    )
    geoms = frame.geometry.values
    located = frame[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)]
    if located.empty:
        raise EmptyLayerError(f"{path.name} has no row with a geometry; nothing to import")
    if declared is not None:  # the zone only needs the rough place: a web offset won't move it
        located = located.set_crs(declared.crs, allow_override=True)
    off = off_the_map(frame, declared.crs if declared is not None else frame.crs)
    if off.notna().all():
        raise InputError(f"{path.name}: nothing written: every row is {off.iloc[0]}")
    inside = located[off.reindex(located.index).isna()]
    target = _metric_target(ws, inside, metric_crs)
    validated = validate_layer(
        to_crs(frame, target, source=declared), schema, source=path.name, off_the_map=off
    )
    report = ImportReport(
        layer, str(path), len(frame), 0, validated.repaired, crs=target.to_string()
    )
    report.notes += frame.attrs.get("notes", []) + validated.notes
    if truncated:
        report.notes.append("Shapefile field names restored: " + ", ".join(truncated))
    if declared and declared.shift:
        report.notes.append(f"coordinates converted from {declared.shift.upper()} to CGCS2000")
    new, own = _combined(ws, layer, validated, mode=mode, source=path.name)
    layers, others = _joined(ws, layer, new, source=path.name, notes=report.notes, repair=repair)
    own = rejected_table([own, others[others["layer"] == layer]])
    others = others[others["layer"] != layer]
    report.rejected = Counter(r.split(":")[0] for r in own["reason"])
    report.other_rejected = Counter(
        f"{lyr}: {why.split(':')[0]}"
        for lyr, why in zip(others["layer"], others["reason"], strict=True)
    )
    report.written = report.read - len(own)
    report.imported = len(layers[layer])
    _refuse_destructive(ws, report, layers, max_rejected=max_rejected)
    with ws.transaction() as tx:
        for name in dict.fromkeys((layer, "buildings")):
            if name in layers:
                tx.replace(name, layers[name])
        if mode == "replace":
            tx.delete("rejected", {"layer": layer})
        if "buildings" in layers:  # the census join was made again
            for reason in _JOIN_REASONS:
                tx.delete("rejected", {"layer": "census_points"}, prefix={"reason": reason})
        tx.append("rejected", rejected_table([own, others]))
        tx.set_meta({"crs": target.to_string(), "gisgrid_version": gisgrid.__version__})
    logger.info("imported %d of %d rows into %s", report.imported, report.read, layer)
    return report


def _refuse_destructive(
    ws: Workspace, report: ImportReport, layers: dict, *, max_rejected: float
) -> None:
    """Refuse an import that writes no row, empties a layer, or rejects too much."""
    reasons = ", ".join(f"{why} {n:,}" for why, n in report.rejected.most_common())
    n_rejected = sum(report.rejected.values())
    if report.written == 0:
        problem = f"all {report.read:,} rows of the file were rejected ({reasons})"
    elif report.read and n_rejected / report.read > max_rejected:
        problem = (
            f"{n_rejected:,} of {report.read:,} rows were rejected ({reasons}), more than "
            f"{max_rejected:.0%} ({argument('max_rejected')})"
        )
    else:
        lost = [
            f"{name} from {before:,} to {len(layers[name]):,} rows"
            for name in layers
            if name != report.layer
            and name in ws
            and (before := ws.count(name))
            and (before - len(layers[name])) / before > max_rejected
        ]
        if not lost:
            return
        why = ", ".join(f"{k} {n:,}" for k, n in report.other_rejected.most_common())
        problem = f"it would cut {'; '.join(lost)} ({why})"
    raise ImportRefusedError(
        f"{Path(report.source).name}: nothing written: {problem}; check the file, its "
        f"{argument('crs')} and its fields"
    )


def _combined(
    ws: Workspace, layer: str, validated: Validated, *, mode: ImportMode, source: str
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """The layer as the import leaves it (before joins), and the file's rows rejected as
    duplicates of rows already there (``append``)."""
    new = validated.frame.drop(columns=[SOURCE_ROW])
    if mode == "replace" or layer not in ws:
        return new, validated.rejected
    old = ws.read(layer)
    schema = schema_for(layer)
    ids = new[schema.id_field].astype(str)
    there = ids.isin(old[schema.id_field].astype(str))
    if mode == "append":
        dup = validated.frame[there.to_numpy()]
        reasons = "duplicate id: " + ids[there] + " is already in the layer (use update mode)"
        rejected = rejected_rows(dup, reasons, layer=layer, source=source, id_field=schema.id_field)
        new = new[~there.to_numpy()]
        kept = old
    else:
        kept = old[~old[schema.id_field].astype(str).isin(ids)]
        rejected = rejected_table([])
    both = pd.concat([kept, new], ignore_index=True)
    return gpd.GeoDataFrame(both, geometry=old.geometry.name, crs=old.crs), rejected_table(
        [validated.rejected, rejected]
    )


def _read(
    path: Path,
    schema: LayerSchema,
    *,
    crs: str | None,
    id_field: str | None,
    field_map: Mapping[str, str] | None,
    source_layer: str | None,
    lon_col: str | None,
    lat_col: str | None,
    encoding: str | None,
) -> tuple[gpd.GeoDataFrame, InputCRS | None, list[str]]:
    """The input's rows with the schema's field names and a ``SOURCE_ROW`` number, the
    declared CRS, and the Shapefile field names restored."""
    frame = read_source(
        path,
        layer=schema.name,
        source_layer=source_layer,
        lon_col=lon_col,
        lat_col=lat_col,
        encoding=encoding,
    )
    renames = dict(field_map or {})
    if id_field:
        renames[id_field] = schema.id_field
    missing = [old for old in renames if old not in frame.columns]
    if missing:
        raise InputError(
            f"{path.name} has no field {', '.join(map(repr, missing))} "
            f"(fields are: {', '.join(map(str, frame.columns))})"
        )
    frame, truncated = _untruncate(frame.rename(columns=renames), schema.fields)
    declared = parse_crs(crs) if crs else None
    if frame.crs is None and declared is None:
        raise CRSError(
            f"{path.name} does not say its coordinate system; declare it with "
            f"{argument('crs')} (wgs84, cgcs2000, gcj02, bd09 or an EPSG code such as EPSG:4490)"
        )
    if len(frame) == 0:
        raise EmptyLayerError(f"{path.name} has no rows; nothing to import into {schema.name!r}")
    frame[SOURCE_ROW] = np.arange(len(frame))
    return frame, declared, truncated


def _joined(
    ws: Workspace,
    layer: str,
    new: gpd.GeoDataFrame,
    *,
    source: str,
    notes: list[str],
    repair: bool = False,
) -> tuple[dict[str, gpd.GeoDataFrame], pd.DataFrame]:
    """The imported layer with the layers it joins (buildings with communities and census
    points, recounted), and the rows rejected on the way. Only the layers the join needs
    are read, so imports of unrelated layers never conflict."""
    needs = _JOINS.get(layer, ())
    layers = {name: ws.read(name) for name in needs if name in ws}
    layers[layer] = new
    added: list[pd.DataFrame] = []
    if layer == "communities" and "streets" in layers:
        orphan = ~new["parent_code"].isin(layers["streets"]["code"])
        reasons = "unknown street: parent_code " + new["parent_code"] + " is not in streets"
        added.append(
            rejected_rows(new[orphan], reasons, layer=layer, source=source, id_field="code")
        )
        layers[layer] = new = new[~orphan]
    if layer == "communities":
        checked = check_jurisdictions(new, layers.get("streets"), repair=repair, source=source)
        layers[layer] = new = checked.communities
        notes += checked.notes()
    if "buildings" in layers and layer in ("buildings", "communities", "census_points"):
        if layer == "buildings" and "households" in new.columns:
            given = new["households"].notna()
            new["households_source"] = np.where(given, "input", "estimate")
        derived = derive_buildings(
            layers["buildings"],
            communities=layers.get("communities"),
            census=layers.get("census_points"),
            source=source,
        )
        layers["buildings"] = derived.buildings
        added += [derived.rejected_buildings, derived.rejected_points]
        notes += derived.notes
    elif layer == "census_points":
        notes.append(
            "no buildings yet: import buildings to count households from these census points"
        )
    return layers, rejected_table(added)


def _untruncate(frame: gpd.GeoDataFrame, fields: list[str]) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Restore field names a Shapefile cut to 10 characters (``building_i`` → ``building_id``)."""
    renames = {
        f[:10]: f
        for f in fields
        if len(f) > 10 and f not in frame.columns and f[:10] in frame.columns
    }
    return frame.rename(columns=renames), [f"{k} → {v}" for k, v in renames.items()]


@dataclass
class DerivedBuildings:
    """Buildings with derived fields, and the rows that could not be placed."""

    buildings: gpd.GeoDataFrame
    rejected_buildings: pd.DataFrame
    rejected_points: pd.DataFrame
    notes: list[str]


def derive_buildings(
    buildings: gpd.GeoDataFrame,
    *,
    communities: gpd.GeoDataFrame | None,
    census: gpd.GeoDataFrame | None,
    source: str,
) -> DerivedBuildings:
    """Set ``community_code``, ``households`` and ``population`` of buildings.

    Parameters
    ----------
    buildings
        The buildings layer.
    communities
        When given, each building takes the code of the community holding its
        representative point; a building in none is rejected.
    census
        When given, households and population are the sums of the census points
        in each building (:func:`gisgrid.io.households.households_from_census`).
        Otherwise values given in the input are kept and missing ones are
        estimated from floor area.
    source
        Name recorded in ``rejected`` rows.

    Returns
    -------
    DerivedBuildings
    """
    b = buildings.copy()
    for column in ("households", "population"):
        if column not in b.columns:
            b[column] = pd.Series(pd.NA, index=b.index, dtype="Int64")
    notes: list[str] = []
    rejected_b = rejected_table([])
    if communities is not None and len(communities):
        code, crossing = community_of(b, communities)
        if crossing:
            shown = ", ".join(crossing[:5]) + (" …" if len(crossing) > 5 else "")
            notes.append(
                f"{len(crossing)} buildings cross a community line; each belongs to the "
                f"community holding most of its area and stays whole: {shown}"
            )
        outside = pd.isna(code)
        given = b["community_code"].fillna("").astype(str)
        moved = int(((given != "") & (given.to_numpy() != code) & ~outside).sum())
        if moved:
            notes.append(f"{moved} buildings' community_code corrected from their location")
        reasons = pd.Series("outside every community: no community contains it", index=b.index)
        rejected_b = rejected_rows(
            b[outside], reasons, layer="buildings", source=source, id_field="building_id"
        )
        b["community_code"] = code
        b = b[~outside].copy()
    elif communities is None:
        notes.append(
            "no communities yet: community_code kept as given; import communities "
            "to check that every building lies in one"
        )

    rejected_p = rejected_table([])
    if "households_source" not in b.columns:
        b["households_source"] = np.where(b["households"].notna(), "input", "estimate")
    if census is not None and len(census):
        join = households_from_census(b, census, source="census_points")
        b["households"] = join.counts["households"].astype("Int64")
        b["population"] = join.counts["population"].astype("Int64")
        b["households_source"] = "census"
        rejected_p = join.rejected
        if join.snapped:
            notes.append(f"{join.snapped} census points snapped to the only building within 30 m")
    else:
        todo = (b["households_source"] != "input") | b["households"].isna()
        if todo.any():
            est = estimate_households(b[todo])
            b.loc[todo, "households"] = est["households"].astype("Int64")
            b.loc[todo, "population"] = est["population"].astype("Int64")
            b.loc[todo, "households_source"] = "estimate"
            notes.append(f"households estimated from floor area for {int(todo.sum())} buildings")
        for column in ("households", "population"):
            b[column] = pd.to_numeric(b[column]).astype("Int64")
        missing_pop = b["population"].isna()
        if missing_pop.any():
            b.loc[missing_pop, "population"] = np.round(
                b.loc[missing_pop, "households"].astype(float) * PERSONS_PER_HOUSEHOLD
            ).astype("Int64")
    return DerivedBuildings(b, rejected_b, rejected_p, notes)
