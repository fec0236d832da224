"""Check a layer against its schema; repair what can be repaired, reject the rest.

Nothing is dropped silently: every row that cannot be used becomes a row of
the ``rejected`` table, with the layer, the source file, the row number in
that file, the feature id, the reason, and the row's own attributes and
geometry (as JSON and WKT), so it can be fixed and imported again.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid._errors import EmptyLayerError, InputError, argument
from gisgrid.io.schema import LayerSchema, is_missing, json_value

__all__ = ["REJECTED_COLUMNS", "Validated", "rejected_rows", "rejected_table", "validate_layer"]

logger = logging.getLogger(__name__)

REJECTED_COLUMNS = ["layer", "source", "row", "feature_id", "reason", "attributes", "wkt"]
_CODE = re.compile(r"^\d{12}$")
MIN_AREA_M2 = 0.01  # a polygon smaller than this is a digitising slip, not a building
SOURCE_ROW = "_source_row"  # column carrying each row's position in the source file


@dataclass
class Validated:
    """A layer after validation.

    Attributes
    ----------
    frame
        The usable rows, in the schema's fields.
    rejected
        One row per rejected input row (columns :data:`REJECTED_COLUMNS`).
    repaired
        How many invalid geometries ``make_valid`` repaired.
    notes
        Things the user should know (generated ids, defaults used).
    """

    frame: gpd.GeoDataFrame
    rejected: pd.DataFrame
    repaired: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> Counter[str]:
        """How many rows were rejected for each kind of reason."""
        return Counter(r.split(":")[0] for r in self.rejected["reason"])


def rejected_rows(
    frame: pd.DataFrame, reasons: pd.Series, *, layer: str, source: str, id_field: str
) -> pd.DataFrame:
    """Turn rows of a layer into rows of the ``rejected`` table.

    Parameters
    ----------
    frame
        The rows to reject (with the :data:`SOURCE_ROW` column when known).
    reasons
        The reason for each row, aligned on ``frame``'s index.
    layer, source
        The layer name and the file the rows came from.
    id_field
        The field holding each row's id.

    Returns
    -------
    pandas.DataFrame
        In :data:`REJECTED_COLUMNS`.
    """
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in REJECTED_COLUMNS})
    geom_name = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    attrs = frame.drop(columns=[c for c in (geom_name, SOURCE_ROW) if c in frame.columns])
    attributes = [
        json.dumps({k: json_value(v) for k, v in row.items()}, ensure_ascii=False)
        for row in attrs.to_dict("records")
    ]
    wkt = np.full(len(frame), None, dtype=object)
    if geom_name:
        geoms = frame.geometry.values
        wkt = np.asarray(shapely.to_wkt(geoms, rounding_precision=3), dtype=object)
        wkt[shapely.is_missing(geoms)] = None
    ids = frame[id_field] if id_field in frame.columns else pd.Series(None, index=frame.index)
    rows = frame[SOURCE_ROW] if SOURCE_ROW in frame.columns else frame.index.to_series()
    return pd.DataFrame(
        {
            "layer": layer,
            "source": source,
            "row": rows.astype("int64").to_numpy(),
            "feature_id": [None if is_missing(v) else str(v) for v in ids],
            "reason": reasons.loc[frame.index].astype(str).to_numpy(),
            "attributes": attributes,
            "wkt": list(wkt),
        }
    )


def rejected_table(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate ``rejected`` rows, with the table's columns and types."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in REJECTED_COLUMNS}).astype(
            {"row": "Int64"}
        )
    table = pd.concat(parts, ignore_index=True)[REJECTED_COLUMNS]
    return table.astype({"row": "Int64"})


def validate_layer(
    frame: gpd.GeoDataFrame,
    schema: LayerSchema,
    *,
    source: str,
    off_the_map: pd.Series | None = None,
) -> Validated:
    """Validate one layer that is already in the workspace CRS.

    Parameters
    ----------
    frame
        The layer as read, field names already mapped to the schema's.
    schema
        What the layer must hold.
    source
        Where the rows came from (a file name), for messages and ``rejected``.
    off_the_map
        Per row, why its coordinates lie outside the input CRS's area of use (NA for
        the rows inside): they are rejected first, for that reason.

    Returns
    -------
    Validated

    Raises
    ------
    EmptyLayerError
        When the input holds no rows at all.
    InputError
        When a required field is missing from the whole input.
    """
    if len(frame) == 0:
        raise EmptyLayerError(f"{source} has no rows; nothing to import into {schema.name!r}")
    frame = frame.copy()
    if SOURCE_ROW not in frame.columns:
        frame[SOURCE_ROW] = np.arange(len(frame))
    notes: list[str] = []
    reject = _Rejections(frame.index)
    if off_the_map is not None:
        reject(off_the_map.notna().to_numpy(), off_the_map.reindex(frame.index))
    _check_ids(frame, schema, source, reject, notes)
    frame, repaired = _check_geometry(frame, schema, reject)
    _check_text(frame, schema, source, reject)
    _check_numbers(frame, schema, reject)
    if schema.name == "buildings" and frame.crs is not None and frame.crs.is_projected:
        _check_crowding(frame, reject)

    bad = reject.reasons.notna()
    rejected = rejected_rows(
        frame[bad], reject.reasons, layer=schema.name, source=source, id_field=schema.id_field
    )
    keep = [
        c
        for c in frame.columns
        if (c != SOURCE_ROW and c in set(schema.fields)) or c == frame.geometry.name
    ]
    extra = [c for c in frame.columns if c not in keep and c != SOURCE_ROW]
    if extra:
        notes.append(f"kept extra fields: {', '.join(map(str, extra))}")
    good = frame.loc[~bad, [*keep, *extra, SOURCE_ROW]]
    if repaired:
        logger.info("%s: repaired %d invalid geometries", source, repaired)
    return Validated(good, rejected, repaired, notes)


class _Rejections:
    """The first reason each row is rejected for (NA while it is fine)."""

    def __init__(self, index: pd.Index) -> None:
        self.reasons = pd.Series(pd.NA, index=index, dtype="object")

    def __call__(self, mask: pd.Series | np.ndarray, reason: str | pd.Series) -> None:
        mask = pd.Series(mask, index=self.reasons.index).fillna(False).astype(bool)
        mask &= self.reasons.isna()
        self.reasons.loc[mask] = reason[mask] if isinstance(reason, pd.Series) else reason


def _check_ids(
    frame: gpd.GeoDataFrame,
    schema: LayerSchema,
    source: str,
    reject: _Rejections,
    notes: list[str],
) -> None:
    """Ids present, unique and (for codes) 12 digits; generated when absent, except codes."""
    if schema.id_field not in frame.columns:
        if schema.id_field == "code":
            raise InputError(
                f"{source} has no {schema.id_field!r} field; name the field that holds the "
                f"12-digit 统计用区划代码 with {argument('id_field')}"
            )
        frame[schema.id_field] = [f"{schema.name[:1]}{i:07d}" for i in range(1, len(frame) + 1)]
        notes.append(
            f"no {schema.id_field!r} field: ids generated; name your id field to keep yours"
        )
    ids = frame[schema.id_field].map(lambda v: None if is_missing(v) else str(v).strip())
    frame[schema.id_field] = ids
    reject(ids.isna() | (ids == ""), f"missing {schema.id_field}")
    if schema.id_field == "code":
        reject(
            ~ids.fillna("").str.match(_CODE),
            ids.map(lambda c: f"bad code: {c!r} is not a 12-digit 统计用区划代码"),
        )
    dup = ids.duplicated(keep="first") & ids.notna()
    first_row = frame[SOURCE_ROW].groupby(ids).transform("first").astype("Int64")
    reject(
        dup,
        "duplicate id: "
        + ids.astype(str)
        + f" ({schema.id_field}) first seen at row "
        + first_row.astype(str),
    )


def _check_geometry(
    frame: gpd.GeoDataFrame, schema: LayerSchema, reject: _Rejections
) -> tuple[gpd.GeoDataFrame, int]:
    """Geometry present, valid (repaired when possible) and of the right type; the frame
    with repaired geometries, and how many were repaired."""
    geoms = frame.geometry.values
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    reject(empty, "empty geometry")
    invalid = ~empty & ~shapely.is_valid(geoms)
    repaired = 0
    if invalid.any():
        fixed = _repair(geoms[invalid], schema.geometry)
        ok = ~shapely.is_missing(fixed)
        why = shapely.is_valid_reason(geoms[invalid])
        bad_idx = frame.index[invalid][~ok]
        reject(
            frame.index.isin(bad_idx),
            pd.Series(why[~ok], index=bad_idx)
            .reindex(frame.index)
            .map(lambda w: f"invalid geometry, not repairable: {w}"),
        )
        geoms = geoms.copy()
        geoms[np.flatnonzero(invalid)[ok]] = fixed[ok]
        repaired = int(ok.sum())
        frame = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index, crs=frame.crs))
    if "Polygon" in schema.geometry and frame.crs is not None and frame.crs.is_projected:
        polygonal = np.isin(shapely.get_type_id(geoms), [3, 6])
        reject(
            polygonal & (shapely.area(geoms) < MIN_AREA_M2),
            f"degenerate geometry: area under {MIN_AREA_M2} m²",
        )
    types = pd.Series(shapely.get_type_id(geoms), index=frame.index).map(_TYPE_NAMES)
    reject(
        ~empty & ~types.isin(schema.geometry),
        f"wrong geometry type: {schema.name} need "
        f"{' or '.join(schema.geometry)}, got " + types.astype(str),
    )
    return frame, repaired


def _check_text(
    frame: gpd.GeoDataFrame, schema: LayerSchema, source: str, reject: _Rejections
) -> None:
    """Required text fields present in every row; parent codes of 12 digits."""
    for name, default in schema.text.items():
        if name == schema.id_field:
            continue
        if name not in frame.columns:
            if default is None:
                raise InputError(
                    f"{source} has no {name!r} field, which {schema.name} need; "
                    f"rename yours with {argument('field_map')} YOURS={name}"
                )
            frame[name] = default
        values = frame[name].map(lambda v: None if is_missing(v) else str(v).strip())
        if default is None:
            reject(values.isna() | (values == ""), f"missing {name}")
        frame[name] = values.fillna(default or "")
    if "parent_code" in schema.text and schema.text["parent_code"] is None:
        parents = frame["parent_code"]
        reject(
            ~parents.str.match(_CODE),
            "bad parent_code: " + parents.map(repr) + " is not a 12-digit code",
        )


def _check_numbers(frame: gpd.GeoDataFrame, schema: LayerSchema, reject: _Rejections) -> None:
    """Counts whole and non-negative (defaults where absent); other numbers numeric."""
    for name, count in schema.counts.items():
        if name not in frame.columns:
            frame[name] = pd.Series(count, index=frame.index, dtype="Int64")
            continue
        raw = frame[name]
        numbers = pd.to_numeric(raw, errors="coerce")
        reject(
            numbers.isna() & raw.notna() & (raw.astype(str).str.strip() != ""),
            f"{name} is not a number: " + raw.map(repr),
        )
        reject(numbers.notna() & ~np.isfinite(numbers), f"{name} is not finite: " + raw.astype(str))
        reject(numbers < 0, f"{name} is negative: " + raw.astype(str))
        most = MAX_COUNTS.get(name)
        if most is not None:
            reject(
                numbers > most,
                f"{name} implausible: "
                + raw.astype(str)
                + f" (no {schema.name} has over {most:,})",
            )
        reject(
            numbers.notna() & (numbers != np.round(numbers)),
            f"{name} is not a whole number: " + raw.astype(str),
        )
        # values no integer holds (inf, 1e20): gone from the row (its reason keeps them)
        numbers = numbers.where(np.isfinite(numbers) & (numbers.abs() < 2**53))
        if count is not None:
            numbers = numbers.fillna(count)
        frame[name] = numbers.round().astype("Int64")
    for name, number in schema.numbers.items():
        frame[name] = pd.to_numeric(frame.get(name, number), errors="coerce")


def _check_crowding(frame: gpd.GeoDataFrame, reject: _Rejections) -> None:
    """Households a building cannot hold: under ``MIN_M2_PER_HOUSEHOLD`` of floor area
    (footprint × floors) each, which no dormitory reaches."""
    households = pd.to_numeric(frame["households"], errors="coerce").astype(float)
    floors = pd.to_numeric(frame["floors"], errors="coerce").fillna(1).clip(lower=1)
    floor_m2 = shapely.area(frame.geometry.values) * floors.to_numpy(float)
    crowded = (households > 0) & (floor_m2 < MIN_M2_PER_HOUSEHOLD * households)
    reject(
        crowded,
        "households implausible: "
        + households.map(lambda v: f"{v:,.0f}")
        + " households in "
        + pd.Series(floor_m2, index=frame.index).map(lambda v: f"{v:,.0f}")
        + f" m² of floor area (under {MIN_M2_PER_HOUSEHOLD:g} m² each); check households "
        "and floors",
    )


MAX_COUNTS = {
    "floors": 200,  # the tallest buildings on Earth have about 160
    "entrances": 200,
    "households": 20_000,
    "population": 60_000,
    "capacity": 100_000,
}
"""The largest value of a count that a real row can hold."""
MIN_M2_PER_HOUSEHOLD = 10.0


_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}
_FAMILY = {"Polygon": (3, 6), "LineString": (1, 5), "Point": (0, 4)}


def _repair(geoms: np.ndarray, accepted: tuple[str, ...]) -> np.ndarray:
    """``make_valid``, keeping only the parts of the accepted dimension.

    Returns missing (None) where nothing of that dimension survives.
    """
    fixed = shapely.make_valid(geoms)
    family = _FAMILY[accepted[0]]
    out = np.empty(len(fixed), dtype=object)
    for i, g in enumerate(fixed):
        parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in family]
        if not parts:
            out[i] = None
        elif len(parts) == 1:
            out[i] = parts[0]
        else:
            out[i] = shapely.union_all(parts)
        if out[i] is not None and (
            out[i].is_empty or _TYPE_NAMES[shapely.get_type_id(out[i])] not in accepted
        ):
            out[i] = None
    return out
