"""Which features a query selects: queryables, CQL2 filters, property filters and sorting
(OGC API – Features Part 3), over what a role may see of a collection.

Filters are parsed by pygeofilter (CQL2 text and CQL2 JSON) and evaluated on the
collection's frame with its GeoPandas backend. Only the role's fields are queryable, so
a filter cannot probe a field the role may not read (a staff field in a public filter
is an unknown field, as it is in ``properties``). Geometry literals are in CRS84
lon/lat unless ``filter-crs`` names another offered CRS.

Examples
--------
>>> import geopandas as gpd, shapely
>>> f = gpd.GeoDataFrame({"households": [380, 490]}, geometry=[shapely.Point(0, 0)] * 2)
>>> select(f, filter_text="households > 400").tolist()
[False, True]
>>> sort(f, "-households")["households"].tolist()
[490, 380]
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

import geopandas as gpd
import pandas as pd
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import handle
from pygeofilter.backends.geopandas.evaluate import GeoPandasEvaluator
from pygeofilter.parsers.cql2_json import parse as parse_json
from pygeofilter.parsers.cql2_text import parse as parse_text
from shapely import geometry as shapes

from gisgrid._errors import InputError
from gisgrid.crs.uris import ServedCRS, to_wgs84_geometry

__all__ = ["FILTER_LANGS", "property_names", "queryables", "select", "sort"]

FILTER_LANGS = ("cql2-text", "cql2-json")
MAX_FILTER_CHARS = 20_000  # a filter is a query, not a dataset


def _type(column: pd.Series) -> dict:
    if pd.api.types.is_bool_dtype(column):
        return {"type": "boolean"}
    if pd.api.types.is_integer_dtype(column):
        return {"type": "integer"}
    if pd.api.types.is_numeric_dtype(column):
        return {"type": "number"}
    return {"type": "string"}


def _geometry_format(frame: gpd.GeoDataFrame) -> str:
    """Part 3's geometry format: ``geometry-polygon``, ``geometry-polygon-or-multipolygon``…"""
    kinds = set(frame.geometry.geom_type.dropna().str.lower())
    single = {k.removeprefix("multi") for k in kinds}
    if len(single) != 1:
        return "geometry-any"
    (one,) = single
    if kinds == {one}:
        return f"geometry-{one}"
    return f"geometry-multi{one}" if kinds == {f"multi{one}"} else f"geometry-{one}-or-multi{one}"


def property_names(frame: gpd.GeoDataFrame) -> list[str]:
    """The fields of ``frame`` a query may name (its geometry aside)."""
    return [c for c in frame.columns if c != frame.geometry.name]


def queryables(frame: gpd.GeoDataFrame, *, uri: str, title: str) -> dict:
    """The JSON Schema of what may be queried in ``frame`` (Part 3 ``/queryables``)."""
    props: dict[str, dict] = {
        "geometry": {
            "title": "geometry",
            "format": _geometry_format(frame),
            "x-ogc-role": "primary-geometry",
        }
    }
    for name in property_names(frame):
        props[name] = {"title": name, **_type(frame[name])}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": uri,
        "type": "object",
        "title": title,
        "properties": props,
        "additionalProperties": False,
    }


class _Evaluator(GeoPandasEvaluator):
    """pygeofilter's GeoPandas evaluator, with geometry literals brought from
    ``filter-crs`` to the frame's CRS84."""

    def __init__(self, frame: gpd.GeoDataFrame, crs: ServedCRS | None) -> None:
        super().__init__(frame)
        self.crs = crs

    def _wgs84(self, geom):
        return to_wgs84_geometry(geom, self.crs) if self.crs is not None else geom

    @handle(values.Geometry)
    def geometry(self, node):
        return self._wgs84(shapes.shape(node))

    @handle(values.Envelope)
    def envelope(self, node):
        return self._wgs84(shapes.box(node.x1, node.y1, node.x2, node.y2))

    @handle(ast.BBox)
    def bbox(self, node, lhs):
        return lhs.intersects(self._wgs84(shapes.box(node.minx, node.miny, node.maxx, node.maxy)))


def _nodes(node) -> Iterator:
    yield node
    subs = node.get_sub_nodes() if hasattr(node, "get_sub_nodes") else None
    for sub in subs if isinstance(subs, list) else ([subs] if subs is not None else []):
        yield from _nodes(sub)


def _parsed(text: str, lang: str):
    if lang not in FILTER_LANGS:
        raise InputError(f"filter-lang {lang!r} is not one of {', '.join(FILTER_LANGS)}")
    if len(text) > MAX_FILTER_CHARS:
        raise InputError(f"filter is {len(text):,} characters; at most {MAX_FILTER_CHARS:,}")
    try:
        return parse_text(text) if lang == "cql2-text" else parse_json(json.loads(text))
    except Exception as exc:  # lark's and json's errors, whose text is long
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"filter is not {lang}: {first}") from None


def _check(tree, frame: gpd.GeoDataFrame) -> None:
    """Refuse a filter naming a field the frame has not, a function, or a time predicate."""
    known = {*property_names(frame), "geometry"}
    for node in _nodes(tree):
        if isinstance(node, ast.Attribute) and node.name not in known:
            raise InputError(
                f"filter names {node.name!r}, which is not queryable here; "
                f"queryables: {', '.join(sorted(known))}"
            )
        if isinstance(node, ast.Function):
            raise InputError(f"filter calls {node.name}(): no functions are offered")
        if isinstance(node, ast.TemporalPredicate):
            raise InputError("filter has a time predicate; no collection has a time field")


def select(
    frame: gpd.GeoDataFrame,
    *,
    filter_text: str | None = None,
    filter_lang: str = "cql2-text",
    filter_crs: ServedCRS | None = None,
    equals: Mapping[str, str] | None = None,
) -> pd.Series:
    """Which rows of ``frame`` a CQL2 filter and property filters (``field=value``) keep.

    Raises
    ------
    InputError
        For a filter that does not parse, names a field that is not queryable, or
        compares a field with a value of another type; for a property filter whose
        value is not of its field's type.
    """
    keep = pd.Series(True, index=frame.index)
    for name, text in (equals or {}).items():
        keep &= frame[name] == _typed(frame[name], name, text)
    if filter_text is None:
        return keep
    tree = _parsed(filter_text, filter_lang)
    _check(tree, frame)
    if frame.geometry.name != "geometry":
        frame = frame.rename_geometry("geometry")
    try:
        got = _Evaluator(frame, filter_crs).evaluate(tree)
    except (TypeError, ValueError) as exc:
        raise InputError(f"filter compares values of different types: {exc}") from None
    if not isinstance(got, pd.Series):
        raise InputError("filter is not a condition on the features (e.g. households > 400)")
    return keep & got.fillna(False).astype(bool)


def _typed(column: pd.Series, name: str, text: str):
    kind = _type(column)["type"]
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        raise InputError(f"{name}={text!r}: {name} is a number") from None
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise InputError(f"{name}={text!r}: {name} is true or false")
        return text.lower() == "true"
    return text


def sort(frame: gpd.GeoDataFrame, sortby: str) -> gpd.GeoDataFrame:
    """``frame`` sorted by ``sortby`` (``-households,+name``: ``-`` descending), stably.

    Raises
    ------
    InputError
        Naming a field that is not one of the frame's.
    """
    keys, ascending = [], []
    for part in (p.strip() for p in sortby.split(",")):
        if not part:
            continue
        name = part.lstrip("+-").strip()
        if name not in property_names(frame):
            raise InputError(
                f"sortby names {name!r}; it sorts by {', '.join(property_names(frame))}"
            )
        keys.append(name)
        ascending.append(not part.startswith("-"))
    if not keys:
        raise InputError("sortby is empty; give fields such as -households,name")
    # stable on several keys, and missing values last either way
    return frame.sort_values(keys, ascending=ascending, kind="stable", na_position="last")
