"""The layers of a workspace and the fields each one carries (DESIGN §3).

Field names are English snake_case; Chinese names go in ``name``. Each schema
says which field identifies a row, which fields are counts (non-negative
integers), and which geometry types the layer accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["LAYERS", "WATER_KINDS", "LayerSchema", "is_missing", "json_value", "schema_for"]


@dataclass(frozen=True)
class LayerSchema:
    """What one workspace layer holds.

    Attributes
    ----------
    name
        Layer name in the GeoPackage.
    geometry
        Accepted geometry types (single and multi part); empty for tables.
    id_field
        The field that identifies a row; unique within the layer.
    text
        Text fields, with the default used when the input lacks the field.
    counts
        Integer fields that must be non-negative, with their default.
    numbers
        Other numeric fields, with their default.
    """

    name: str
    geometry: tuple[str, ...]
    id_field: str
    text: dict[str, str | None] = field(default_factory=dict)
    counts: dict[str, int | None] = field(default_factory=dict)
    numbers: dict[str, float | None] = field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        """Every field the layer stores, id first."""
        rest = [*self.text, *self.counts, *self.numbers]
        return [self.id_field, *(f for f in rest if f != self.id_field)]


_AREA = ("Polygon", "MultiPolygon")
_LINE = ("LineString", "MultiLineString")
_POINT = ("Point",)

LAYERS: dict[str, LayerSchema] = {
    s.name: s
    for s in (
        LayerSchema("streets", _AREA, "code", text={"name": None, "parent_code": ""}),
        LayerSchema("communities", _AREA, "code", text={"name": None, "parent_code": None}),
        LayerSchema(
            "buildings",
            _AREA,
            "building_id",
            text={
                "community_code": "",
                "compound_id": "",
                "kind": "residential",
                "address": "",
                "dedicated": "",  # yes/no: a dedicated grid (专属网格) by decision, not by rule
            },
            counts={"floors": 1, "entrances": 1, "households": None, "population": None},
        ),
        LayerSchema(
            "census_points",
            _POINT,
            "point_id",
            text={"address": ""},
            counts={"households": None, "population": None},
        ),
        LayerSchema("roads", _LINE, "road_id", text={"road_class": "local", "name": ""}),
        LayerSchema("barriers", _LINE, "barrier_id", text={"kind": "river", "name": ""}),
        LayerSchema("water", _AREA, "water_id", text={"name": ""}),
        LayerSchema(
            "resources",
            _POINT,
            "resource_id",
            text={"kind": None, "name": "", "level": "", "community_code": "", "phone": ""},
            counts={"capacity": 1},
        ),
    )
}

#: Tables without geometry that gisgrid writes itself.
TABLES = ("rejected", "runs", "assignments", "gisgrid_meta")

ROAD_CLASSES = ("arterial", "secondary", "local", "path")

WATER_KINDS = ("river", "canal", "stream", "water")
"""Barrier kinds that are water: grids never reach across them without a bridge."""

#: Building kinds whose compound gets a dedicated grid (专属网格), above a floor area.
DEDICATED_KINDS = ("school", "hospital", "enterprise", "market")
#: The floor area (m², footprint × floors) from which such a compound is dedicated.
DEDICATED_MIN_FLOOR_M2 = 5000.0
#: What the ``dedicated`` field says (any case): a dedicated grid, or never one.
YES = frozenset({"1", "true", "yes", "y", "是"})
NO = frozenset({"0", "false", "no", "n", "否"})


def schema_for(layer: str) -> LayerSchema:
    """The schema of an input layer.

    Parameters
    ----------
    layer
        A layer name such as ``"buildings"``.

    Raises
    ------
    InputError
        For a layer name gisgrid does not import.
    """
    from gisgrid._errors import InputError

    try:
        return LAYERS[layer]
    except KeyError:
        raise InputError(
            f"unknown layer {layer!r}; importable layers are: {', '.join(LAYERS)}"
        ) from None


def is_missing(value: object) -> bool:
    """Whether a table cell holds no value (None, NaN, NaT, pd.NA)."""
    return value is None or (not isinstance(value, str | bytes) and bool(pd.isna(value)))


def json_value(value: object) -> object:
    """A table cell as a JSON-ready scalar: None for missing, numpy scalars unwrapped.

    Examples
    --------
    >>> import numpy as np
    >>> [json_value(v) for v in (np.int64(3), float("nan"), "叫鸡岭", pd.Timestamp(0))]
    [3, None, '叫鸡岭', '1970-01-01 00:00:00']
    """
    if is_missing(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)
