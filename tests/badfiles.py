"""A corpus of bad input files, as offices and the web send them, for `gisgrid import`.

Each case is a file (or a missing one, or a bad option) that must be refused with
exit 2 and one line naming the input and the fix; none may give a traceback.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely


@dataclass
class Case:
    name: str
    layer: str
    path: Path
    args: list[str] = field(default_factory=list)
    says: str = ""  # a phrase the error line must hold (besides the file's name)
    workspace: Path | None = None  # a workspace of its own (the default: the shared one)


def _write(frame: gpd.GeoDataFrame, path: Path, **kwargs) -> Path:
    frame.to_file(path, **kwargs)
    return path


def _text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _cases(good: gpd.GeoDataFrame, folder: Path) -> list[Case]:
    """``good``: four valid buildings in WGS84 near Zhuzhou."""
    f = folder
    pt = good.geometry.representative_point()
    lon, lat = pt.x.to_numpy(), pt.y.to_numpy()
    b = lambda **kw: good.assign(**kw)  # noqa: E731
    geo = lambda g: good.set_geometry(list(g), crs=4326)  # noqa: E731
    out: list[Case] = []
    add = lambda name, layer, path, *args, says="": out.append(  # noqa: E731
        Case(name, layer, path, list(args), says)
    )

    # numbers no building has
    for name, value in (("inf", np.inf), ("1e20", 1e20), ("-1", -1), ("nan text", "很多")):
        add(f"households {name}", "buildings", _write(b(households=value), f / f"h{len(out)}.gpkg"))
    add("floors 500", "buildings", _write(b(floors=500), f / "floors500.gpkg"), says="floors")
    add("floors 0.5", "buildings", _write(b(floors=0.5), f / "floors05.gpkg"))
    add("floors text", "buildings", _write(b(floors="六"), f / "floorstext.gpkg"))
    add(
        "3,762 households in a shed",
        "buildings",
        _write(b(households=3762, floors=1), f / "crowded.gpkg"),
        says="households",
    )
    # geometry no building has
    add("lines", "buildings", _write(geo(good.geometry.boundary), f / "lines.gpkg"))
    add("points", "buildings", _write(geo(pt), f / "points.gpkg"))
    add("empty", "buildings", _write(geo([shapely.Polygon()] * 4), f / "empty.gpkg"))
    add("another city", "buildings", _write(geo(good.geometry.translate(3, 3)), f / "far.gpkg"))
    swapped = shapely.transform(good.geometry.values, lambda xy: xy[:, ::-1])
    add("swapped axes", "buildings", _write(geo(swapped), f / "swapped.gpkg"), says="swap")
    bowtie = shapely.Polygon([(0, 0), (0, 0), (0, 0), (0, 0)])
    add("collapsed", "buildings", _write(geo([bowtie] * 4), f / "collapsed.gpkg"))
    add(
        "census points as swapped polygons",
        "census_points",
        _write(geo(swapped).assign(households=3), f / "census_swapped.gpkg"),
    )
    # ids
    add("one id for all", "buildings", _write(b(building_id="B1"), f / "dupid.gpkg"))
    add("no ids", "buildings", _write(b(building_id=None), f / "noid.gpkg"))
    # files that are not what they say
    add("empty file", "buildings", _text(f / "zero.geojson", ""))
    add("not JSON", "buildings", _text(f / "broken.geojson", '{"type": "FeatureCollection", "fea'))
    add("JSON, not GeoJSON", "buildings", _text(f / "plain.geojson", json.dumps({"a": 1})))
    add("text as a Shapefile", "buildings", _text(f / "fake.shp", "hello"))
    add("a spreadsheet", "buildings", _text(f / "table.xlsx", "PK\x03\x04"), says="format")
    add("no such file", "buildings", f / "missing.gpkg", says="does not exist")
    (f / "adir.gpkg").mkdir()
    add("a folder", "buildings", f / "adir.gpkg")
    shp = _write(good, f / "nodbf.shp")
    shp.with_suffix(".dbf").unlink()
    add("Shapefile without .dbf", "buildings", shp, says=".dbf")
    shx = _write(good, f / "noshx.shp")
    shx.with_suffix(".shx").unlink()
    add("Shapefile without .shx", "buildings", shx, says=".shx")
    prj = _write(good, f / "noprj.shp")
    prj.with_suffix(".prj").unlink()
    add("Shapefile without .prj", "buildings", prj, says="--crs")
    multi = f / "multi.gpkg"
    good.to_file(multi, layer="楼栋")
    good.to_file(multi, layer="道路", mode="a")
    add("GeoPackage of two layers", "buildings", multi, says="--source-layer")
    table = f / "table.gpkg"
    pyogrio.write_dataframe(pd.DataFrame({"a": [1]}), table)
    add("GeoPackage without geometry", "buildings", table)
    # CSV as people write them
    csv = lambda name, text, enc="utf-8": _text(f / name, text, enc)  # noqa: E731
    add(
        "CSV with lon and lat swapped",
        "census_points",
        csv(
            "swapped.csv",
            "point_id,lon,lat,households\n"
            + "".join(f"p{i},{y},{x},3\n" for i, (x, y) in enumerate(zip(lon, lat, strict=True))),
        ),
        "--crs",
        "wgs84",
        says="swap",
    )
    add(
        "ragged CSV",
        "census_points",
        csv("ragged.csv", f"point_id,lon,lat\np1,{lon[0]},{lat[0]}\np2,{lon[1]}\np3,1,2,3,4\n"),
        "--crs",
        "wgs84",
        says="line",
    )
    add(
        "CSV without coordinates",
        "census_points",
        csv("nocoords.csv", "a,b\n1,2\n"),
        says="--lon-col",
    )
    add(
        "CSV header only",
        "census_points",
        csv("header.csv", "point_id,lon,lat\n"),
        "--crs",
        "wgs84",
    )
    add(
        "CSV without --crs",
        "census_points",
        csv("nocrs.csv", f"point_id,lon,lat\np1,{lon[0]},{lat[0]}\n"),
        says="--crs",
    )
    add(
        "CSV in Big5 bytes",
        "census_points",
        _text(f / "binary.csv", "point_id,lon,lat\n\xff\xfe\x00\x01,1,2\n", "latin-1"),
        "--crs",
        "wgs84",
    )
    # options that do not fit
    ok = _write(good, f / "ok.gpkg")
    add("unknown --crs", "buildings", ok, "--crs", "mars2000", says="--crs")
    add("unknown --source-layer", "buildings", ok, "--source-layer", "nope", says="nope")
    add("unknown --id-field", "buildings", ok, "--id-field", "nope", says="nope")
    add("bad --field-map", "buildings", ok, "--field-map", "nope", says="--field-map")
    add("unknown layer", "houses", ok, says="houses")
    add(
        "unknown --encoding",
        "buildings",
        shutil.copy(ok, f / "enc.gpkg"),
        "--encoding",
        "klingon",
        says="--encoding",
    )
    add(
        "bad --metric-crs",
        "buildings",
        shutil.copy(ok, f / "m.gpkg"),
        "--metric-crs",
        "4326",
        says="metres",
    )
    add(
        "wrong --crs for the file",
        "buildings",
        _write(good.to_crs(3857).set_crs(None, allow_override=True), f / "nocrs3857.gpkg"),
        "--crs",
        "wgs84",
    )
    return out


def corpus(good: gpd.GeoDataFrame, folder: Path) -> list[Case]:
    """Every case, its files written under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return _cases(good, folder)
