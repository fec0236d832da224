"""OGC API – Features over the published collections: Part 1 (Core) and Part 2 (CRS).

GeoJSON in WGS84 (CRS84, lon/lat) unless ``crs`` asks for another of those offered
(:mod:`gisgrid.crs.uris`: EPSG:4326, 4490, 3857, the workspace zone, GCJ-02 and BD-09),
named back in ``Content-Crs``; ``bbox-crs`` says what ``bbox`` is in. ``f=html`` for a
browser. Paging with ``limit`` (clamped to the server's maximum, as the standard
allows) and ``offset``, with ``next``/``prev`` links.
"""

import html
import json
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import geopandas as gpd
import numpy as np
import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from gisgrid._errors import InputError, NotFoundError
from gisgrid.crs.uris import (
    CRS84,
    ServedCRS,
    from_wgs84,
    offered,
    parse_uri,
    spellings,
    to_wgs84_geometry,
)
from gisgrid.io.workspace import Workspace
from gisgrid.publish.catalog import COLLECTIONS_BY_ID
from gisgrid.publish.queries import property_names, queryables, select, sort
from gisgrid.publish.tiles import tilesets_for
from gisgrid.server.deps import AppState, CollectionId, Role, State, base_url, caller_role
from gisgrid.server.settings import Settings

GEOJSON = "application/geo+json"
OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
#: What the service conforms to. Not Part 1's ``oas30``: FastAPI writes OpenAPI 3.1.
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/sorting",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/dataset-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]
CRS_DOC = (
    "CRS of the geometries returned (default CRS84, lon/lat): a URI of the collection's "
    "`crs` list, EPSG:n, or gcj02 (Amap, Tencent) or bd09 (Baidu) for web-map overlays. "
    "Coordinates follow the CRS's axis order: EPSG:4326 and 4490 are lat/lon."
)
BBOX_CRS = "CRS of `bbox` (default CRS84): as `crs`."
FILTER_DOC = (
    "A CQL2 filter (OGC API – Features Part 3) over the collection's queryables, e.g. "
    "`households > 450 AND name LIKE '%社区%'` or `S_INTERSECTS(geometry, POINT(113.1 "
    "27.9))`; CQL2 JSON with `filter-lang=cql2-json`. Any queryable also filters by "
    "equality as a parameter of its own (`?grid_type=dedicated`)."
)
SORTBY_DOC = "Fields to sort by, comma-separated; `-` before a field sorts it descending."
Format = Annotated[
    str,
    Query(pattern="^(json|geojson|html)$", description="Response format: json (default) or html."),
]


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ddd;padding:2px 6px}"
        "table{border-collapse:collapse}h1{color:#c00000}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _links_html(links: list[dict]) -> str:
    return (
        "<ul>"
        + "".join(
            f"<li><a href='{html.escape(link['href'])}'>"
            f"{html.escape(link.get('title', link['rel']))}</a> ({link['rel']})</li>"
            for link in links
        )
        + "</ul>"
    )


def _link(rel: str, href: str, kind: str = "application/json", title: str = "") -> dict:
    return {"rel": rel, "type": kind, **({"title": title} if title else {}), "href": href}


def _landing_links(base: str, role: str) -> list[dict]:
    """The landing page's links: the API, conformance, data, maps and tiles."""
    return [
        _link("self", f"{base}/", title="this document"),
        _link(
            "service-desc",
            f"{base}/openapi.json",
            "application/vnd.oai.openapi+json;version=3.1",
            "OpenAPI",
        ),
        _link("service-doc", f"{base}/docs", "text/html", "API documentation"),
        _link("conformance", f"{base}/conformance", title="conformance"),
        _link("data", f"{base}/collections", title="collections"),
        _link("alternate", f"{base}/map", "text/html", "红地图 dashboard"),
        _link("describedby", f"{base}/styles/redmap.json", title="红地图 MapLibre style"),
        _link(f"{OGC_REL}tilesets-vector", f"{base}/tiles", title="vector tilesets"),
        _link(f"{OGC_REL}tiling-schemes", f"{base}/tileMatrixSets", title="tile matrix sets"),
        *(
            _link("tiles", f"{base}/tiles/{name}.json", title=f"{name} tiles (TileJSON)")
            for name in tilesets_for(role)
        ),
    ]


def _collection_doc(base: str, cid: str, frame: gpd.GeoDataFrame, crs: list[ServedCRS]) -> dict:
    """One collection's description: title, extent in CRS84, links to its items."""
    bbox = (
        [float(v) for v in np.round(frame.total_bounds, 7)]
        if len(frame)
        else [-180.0, -90.0, 180.0, 90.0]
    )
    items = f"{base}/collections/{cid}/items"
    return {
        "id": cid,
        "title": COLLECTIONS_BY_ID[cid].title,
        "itemType": "feature",
        "crs": [c.uri for c in crs],
        "storageCrs": CRS84,
        "extent": {"spatial": {"bbox": [bbox], "crs": CRS84}},
        "links": [
            _link("self", f"{base}/collections/{cid}"),
            _link(
                f"{OGC_REL}queryables",
                f"{base}/collections/{cid}/queryables",
                "application/schema+json",
                "queryables",
            ),
            _link("items", items, GEOJSON, "items"),
            _link(f"{OGC_REL}tilesets-vector", f"{base}/collections/{cid}/tiles", title="tiles"),
            _link("items", f"{items}?f=html", "text/html", "items (HTML)"),
        ],
    }


def _selected(
    frame: gpd.GeoDataFrame,
    cid: str,
    *,
    bbox: str | None,
    bbox_crs: ServedCRS,
    where: dict[str, Any],
    sortby: str | None,
    properties: str | None,
) -> tuple[gpd.GeoDataFrame, bool]:
    """The features inside ``bbox`` (in ``bbox_crs``) that the filters of ``where``
    keep (:func:`gisgrid.publish.queries.select`), in ``sortby`` order, with the asked
    ``properties``; whether the id field rides along only to give each feature its id."""
    if bbox is not None:
        area = to_wgs84_geometry(shapely.box(*_bbox(bbox, bbox_crs)), bbox_crs)
        idx = np.sort(frame.sindex.query(area, predicate="intersects"))
        frame = frame.iloc[idx]
    if where["filter_text"] is not None or where["equals"]:
        frame = frame[select(frame, **where)]
    if sortby is not None:
        frame = sort(frame, sortby)
    if properties is None:
        return frame, False
    wanted = [p.strip() for p in properties.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in frame.columns or p == frame.geometry.name]
    if unknown:
        have = [x for x in frame.columns if x != frame.geometry.name]
        raise InputError(f"unknown properties {', '.join(unknown)}; {cid} has {', '.join(have)}")
    id_field = COLLECTIONS_BY_ID[cid].id_field
    drop_id = id_field not in wanted
    return frame[[*wanted, *([id_field] if drop_id else []), frame.geometry.name]], drop_id


def _paging_links(
    request: Request, cid: str, *, offset: int, limit: int, matched: int
) -> list[dict]:
    """self, next and prev links of a page of items, and the collection's."""
    base = f"{base_url(request)}/collections/{cid}"
    keep = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit", "f")}

    def page(rel: str, off: int) -> dict:
        query = urlencode({**keep, "limit": limit, "offset": off}, safe=",")
        return _link(rel, f"{base}/items?{query}", GEOJSON)

    links = [page("self", offset)]
    if offset + limit < matched:
        links.append(page("next", offset + limit))
    if offset > 0:
        links.append(page("prev", max(0, offset - limit)))
    return [*links, _link("collection", base)]


def _items_page(title: str, page: gpd.GeoDataFrame, links: list[dict]) -> HTMLResponse:
    cols = [x for x in page.columns if x != page.geometry.name]
    head = "".join(f"<th>{html.escape(x)}</th>" for x in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in page[cols].itertuples(index=False)
    )
    nav = " ".join(
        f"<a href='{html.escape(link['href'])}&f=html'>{link['rel']}</a>"
        for link in links
        if link["rel"] in ("next", "prev")
    )
    return _page(title, f"<p>{nav}</p><table><tr>{head}</tr>{body}</table>")


def _known(st: State, cid: str, who: str) -> None:
    if cid not in {c.id for c in st.catalog.collections(who)}:
        raise NotFoundError(f"no collection {cid!r}; see /collections for those there are")


def router(settings: Settings) -> APIRouter:
    """The OGC API – Features routes."""
    api = APIRouter(tags=["OGC API – Features"])
    _add_discovery(api, settings)
    _add_items(api, settings)
    return api


def _add_discovery(api: APIRouter, settings: Settings) -> None:
    """The landing page, conformance, and the collections' descriptions."""

    @api.get("/", summary="Landing page")
    def landing(request: Request, who: Role, f: Format = "json") -> Any:
        links = _landing_links(base_url(request), who)
        if f == "html":
            return _page(settings.title, _links_html(links))
        return {
            "title": settings.title,
            "description": "gisgrid: grids, rosters and the 红地图",
            "links": links,
        }

    @api.get("/conformance", summary="Conformance classes")
    def conformance(f: Format = "json") -> Any:
        if f == "html":
            items = "".join(f"<li>{c}</li>" for c in CONFORMANCE)
            return _page("conformance", f"<ul>{items}</ul>")
        return {"conformsTo": CONFORMANCE}

    @api.get("/collections", summary="Published collections")
    def collections(request: Request, st: AppState, who: Role, f: Format = "json") -> Any:
        base = base_url(request)
        docs = [
            _collection_doc(base, c.id, st.catalog.frame(c.id, who), st.crs)
            for c in st.catalog.collections(who)
        ]
        if f == "html":
            rows = "".join(
                f"<li><a href='{base}/collections/{c['id']}/items?f=html'>"
                f"{html.escape(c['title'])}</a> ({c['id']})</li>"
                for c in docs
            )
            return _page("collections", f"<ul>{rows}</ul>")
        return {"links": [_link("self", f"{base}/collections")], "collections": docs}

    @api.get("/collections/{collection_id}", summary="One collection")
    def collection(
        request: Request, collection_id: CollectionId, st: AppState, who: Role, f: Format = "json"
    ) -> Any:
        _known(st, collection_id, who)
        doc = _collection_doc(
            base_url(request), collection_id, st.catalog.frame(collection_id, who), st.crs
        )
        if f == "html":
            return _page(doc["title"], _links_html(doc["links"]))
        return doc

    @api.get(
        "/collections/{collection_id}/queryables",
        summary="What a filter may name (JSON Schema)",
        responses={200: {"content": {"application/schema+json": {}}}},
    )
    def collection_queryables(
        request: Request, collection_id: CollectionId, st: AppState, who: Role, f: Format = "json"
    ) -> Any:
        _known(st, collection_id, who)
        uri = f"{base_url(request)}/collections/{collection_id}/queryables"
        frame = st.catalog.frame(collection_id, who)
        doc = queryables(frame, uri=uri, title=COLLECTIONS_BY_ID[collection_id].title)
        if f == "html":
            rows = "".join(
                f"<tr><th>{html.escape(k)}</th>"
                f"<td>{html.escape(v.get('type', v.get('format', '')))}</td></tr>"
                for k, v in doc["properties"].items()
            )
            return _page(f"{doc['title']}: queryables", f"<table>{rows}</table>")
        return JSONResponse(doc, media_type="application/schema+json")


def _add_items(api: APIRouter, settings: Settings) -> None:
    """Pages of a collection's features, and one feature."""
    crs_enum: dict[str, Any] = {"enum": spellings(offered(Workspace(settings.workspace).crs))}

    @api.get(
        "/collections/{collection_id}/items",
        summary="Features of a collection",
        responses={200: {"content": {GEOJSON: {"schema": {"type": "object"}}}}},
    )
    def items(
        request: Request,
        collection_id: CollectionId,
        st: AppState,
        who: Role,
        bbox: Annotated[
            str | None,
            Query(
                description="minLon,minLat,maxLon,maxLat in CRS84, or four numbers in "
                "`bbox-crs` in its axis order (EPSG:4326: minLat,minLon,maxLat,maxLon)."
            ),
        ] = None,
        bbox_crs: Annotated[
            str | None, Query(alias="bbox-crs", description=BBOX_CRS, json_schema_extra=crs_enum)
        ] = None,
        crs: Annotated[str | None, Query(description=CRS_DOC, json_schema_extra=crs_enum)] = None,
        limit: Annotated[
            int,
            Query(
                ge=1, description=f"Features per page; at most {settings.max_limit} are returned."
            ),
        ] = settings.default_limit,
        offset: Annotated[int, Query(ge=0, description="Features to skip (paging).")] = 0,
        properties: Annotated[
            str | None, Query(description="Comma-separated fields to return (default all).")
        ] = None,
        filter: Annotated[str | None, Query(description=FILTER_DOC)] = None,
        filter_lang: Annotated[
            str,
            Query(
                alias="filter-lang",
                pattern="^cql2-(text|json)$",
                description="Language of `filter`: cql2-text (default) or cql2-json.",
            ),
        ] = "cql2-text",
        filter_crs: Annotated[
            str | None,
            Query(
                alias="filter-crs",
                description="CRS of the filter's geometries (as `crs`).",
                json_schema_extra=crs_enum,
            ),
        ] = None,
        sortby: Annotated[str | None, Query(description=SORTBY_DOC)] = None,
        f: Format = "json",
    ) -> Any:
        _known(st, collection_id, who)
        c = COLLECTIONS_BY_ID[collection_id]
        target = parse_uri(crs, st.crs)
        full = st.catalog.frame(collection_id, who)
        where = {
            "filter_text": filter,
            "filter_lang": filter_lang,
            "filter_crs": parse_uri(filter_crs, st.crs, name="filter-crs"),
            "equals": {k: v for k, v in request.query_params.items() if k in property_names(full)},
        }
        frame, drop_id = _selected(
            full,
            collection_id,
            bbox=bbox,
            bbox_crs=parse_uri(bbox_crs, st.crs, name="bbox-crs"),
            where=where,
            sortby=sortby,
            properties=properties,
        )
        limit = min(limit, settings.max_limit)
        page = frame.iloc[offset : offset + limit]
        links = _paging_links(
            request, collection_id, offset=offset, limit=limit, matched=len(frame)
        )
        if f == "html":
            return _items_page(f"{c.title}: {len(frame)} features", page, links)
        features = _features(page, c.id_field, drop_id, target)
        doc = {
            "type": "FeatureCollection",
            "numberMatched": len(frame),
            "numberReturned": len(features),
            "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "links": links,
            "features": features,
        }
        return JSONResponse(doc, media_type=GEOJSON, headers=_content_crs(target))

    def queryable_parameters(request: Request) -> set[str]:
        """The collection's queryables, each a parameter of its items (equality)."""
        st: State = request.app.state.gisgrid
        who = caller_role(request)
        cid = request.path_params.get("collection_id", "")
        if who is None or cid not in {c.id for c in st.catalog.collections(who)}:
            return set()
        return set(property_names(st.catalog.frame(cid, who)))

    items.extra_parameters = queryable_parameters  # type: ignore[attr-defined]

    @api.get(
        "/collections/{collection_id}/items/{feature_id}",
        summary="One feature",
        responses={200: {"content": {GEOJSON: {"schema": {"type": "object"}}}}},
    )
    def item(
        request: Request,
        collection_id: CollectionId,
        feature_id: str,
        st: AppState,
        who: Role,
        crs: Annotated[str | None, Query(description=CRS_DOC, json_schema_extra=crs_enum)] = None,
        f: Format = "json",
    ) -> Any:
        _known(st, collection_id, who)
        target = parse_uri(crs, st.crs)
        frame = st.catalog.frame(collection_id, who)
        c = COLLECTIONS_BY_ID[collection_id]
        hit = frame[frame[c.id_field].astype(str) == feature_id]
        if hit.empty:
            raise NotFoundError(f"no feature {feature_id!r} in {collection_id}")
        feature = _features(hit.iloc[:1], c.id_field, False, target)[0]
        base = f"{base_url(request)}/collections/{collection_id}"
        feature["links"] = [
            _link("self", f"{base}/items/{feature_id}", GEOJSON),
            _link("collection", base),
        ]
        if f == "html":
            rows = "".join(
                f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                for k, v in feature["properties"].items()
            )
            return _page(f"{c.title} {feature_id}", f"<table>{rows}</table>")
        return JSONResponse(feature, media_type=GEOJSON, headers=_content_crs(target))


def _content_crs(crs: ServedCRS) -> dict[str, str]:
    return {"Content-Crs": f"<{crs.uri}>"}


def _bbox(text: str, crs: ServedCRS) -> tuple[float, float, float, float]:
    order = "minLat,minLon,maxLat,maxLon" if crs.lat_first else "minLon,minLat,maxLon,maxLat"
    if not crs.crs.is_geographic:
        order = "four numbers in its axis order, min before max"
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"bbox {text!r} must be four numbers: {order}") from None
    if len(values) != 4 or not all(np.isfinite(values)):
        raise InputError(f"bbox {text!r} must be four numbers: {order}")
    x0, y0, x1, y1 = values
    if not (x0 <= x1 and y0 <= y1):
        raise InputError(f"bbox {text!r} must have min ≤ max: {order}")
    lon0, lat0, lon1, lat1 = (y0, x0, y1, x1) if crs.lat_first else (x0, y0, x1, y1)
    if crs.crs.is_geographic and not (-180 <= lon0 <= lon1 <= 180 and -90 <= lat0 <= lat1 <= 90):
        raise InputError(f"bbox {text!r} is not {order} in {crs.uri}")
    return x0, y0, x1, y1


def _features(frame: gpd.GeoDataFrame, id_field: str, drop_id: bool, crs: ServedCRS) -> list[dict]:
    frame = frame.set_geometry(from_wgs84(frame.geometry.values, crs), crs=None)
    geo = json.loads(frame.to_json(na="drop", drop_id=True, to_wgs84=False))
    out = []
    for feature, fid in zip(geo["features"], frame[id_field].astype(str), strict=True):
        props = feature["properties"]
        if drop_id:
            props.pop(id_field, None)
        out.append(
            {"type": "Feature", "id": fid, "geometry": feature["geometry"], "properties": props}
        )
    return out
