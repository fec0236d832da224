"""Choosing the Gauss–Krüger zone, parsing --crs, and reprojecting inputs."""

import geopandas as gpd
import pytest
import shapely
from pyproj import Geod

from gisgrid import CRSError
from gisgrid.crs import gk_zone_crs, local_crs, parse_crs, to_crs
from gisgrid.crs.gcj02 import wgs84_to_gcj02


@pytest.mark.parametrize(
    ("lon", "epsg", "central_meridian"),
    [
        (75.2, 4534, 75),
        (113.1, 4547, 114),
        (112.4, 4546, 111),
        (116.4, 4548, 117),
        (121.5, 4550, 123),
        (121.4, 4549, 120),
        (135.0, 4554, 135),
        (70.0, 4534, 75),
        (140.0, 4554, 135),
    ],
)
def test_gk_zone_is_the_nearest_3_degree_central_meridian(lon, epsg, central_meridian):
    crs = gk_zone_crs(lon)
    assert crs.to_epsg() == epsg
    assert f"{central_meridian}E" in crs.name
    assert "3-degree Gauss-Kruger" in crs.name


def test_local_crs_uses_the_extent_centre():
    frame = gpd.GeoDataFrame(geometry=[shapely.Point(113.1, 27.9)], crs=4326)
    assert local_crs(frame).to_epsg() == 4547


@pytest.mark.parametrize(
    ("text", "epsg", "shift"),
    [
        ("wgs84", 4326, None),
        ("WGS-84", 4326, None),
        ("cgcs2000", 4490, None),
        ("gcj02", 4326, "gcj02"),
        ("GCJ-02", 4326, "gcj02"),
        ("bd09", 4326, "bd09"),
        ("EPSG:4547", 4547, None),
        ("4490", 4490, None),
    ],
)
def test_parse_crs(text, epsg, shift):
    parsed = parse_crs(text)
    assert parsed.crs.to_epsg() == epsg
    assert parsed.shift == shift


def test_parse_crs_rejects_nonsense_with_the_choices():
    with pytest.raises(CRSError, match="gcj02, bd09"):
        parse_crs("mars")


def test_to_crs_removes_the_gcj02_offset():
    true = shapely.Point(113.13, 27.88)
    shifted = shapely.Point(*(float(v) for v in wgs84_to_gcj02(true.x, true.y)))
    frame = gpd.GeoDataFrame({"a": [1]}, geometry=[shifted], crs=4326)  # claims WGS84, is GCJ
    out = to_crs(frame, gk_zone_crs(113.1), source=parse_crs("gcj02"))
    back = out.to_crs(4326).geometry.iloc[0]
    assert Geod(ellps="WGS84").inv(back.x, back.y, true.x, true.y)[2] < 0.5
    assert out.geometry.name == "geometry" and list(out.columns) == ["a", "geometry"]


def test_to_crs_without_any_crs_asks_for_one():
    frame = gpd.GeoDataFrame(geometry=[shapely.Point(113.1, 27.9)])
    with pytest.raises(CRSError, match="declare it with crs"):
        to_crs(frame, gk_zone_crs(113.1))
