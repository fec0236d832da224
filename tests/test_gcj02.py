"""GCJ-02 / BD-09: published reference pairs and round-trip properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from gisgrid.crs import gcj02

GEOD = Geod(ellps="WGS84")

# (wgs lon, wgs lat, gcj lon, gcj lat): the test vectors published with
# googollee/eviltransform (Shanghai, Shenzhen, Beijing near Tiananmen).
WGS_GCJ = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),
]
# wandergis/coordtransform's published example at Tiananmen (116.404, 39.915).
TIANANMEN = (116.404, 39.915)
TIANANMEN_GCJ_FROM_WGS = (116.41024449916938, 39.91640428150164)
TIANANMEN_BD_FROM_GCJ = (116.41036949371029, 39.92133699351021)
TIANANMEN_GCJ_FROM_BD = (116.39762729119315, 39.90865673957631)


def metres(lon1, lat1, lon2, lat2):
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


@pytest.mark.parametrize(("wlon", "wlat", "glon", "glat"), WGS_GCJ)
def test_wgs84_to_gcj02_matches_published_pairs(wlon, wlat, glon, glat):
    lon, lat = gcj02.wgs84_to_gcj02(wlon, wlat)
    assert metres(lon, lat, glon, glat) < 0.01


@pytest.mark.parametrize(("wlon", "wlat", "glon", "glat"), WGS_GCJ)
def test_gcj02_to_wgs84_recovers_published_pairs_within_half_a_metre(wlon, wlat, glon, glat):
    lon, lat = gcj02.gcj02_to_wgs84(glon, glat)
    assert metres(lon, lat, wlon, wlat) < 0.5


def test_tiananmen_reference_values():
    assert metres(*gcj02.wgs84_to_gcj02(*TIANANMEN), *TIANANMEN_GCJ_FROM_WGS) < 0.01
    assert metres(*gcj02.gcj02_to_bd09(*TIANANMEN), *TIANANMEN_BD_FROM_GCJ) < 0.01
    # the published bd→gcj value comes from the one-step approximation; ours is exact,
    # so it agrees to within that approximation's few metres
    assert metres(*gcj02.bd09_to_gcj02(*TIANANMEN), *TIANANMEN_GCJ_FROM_BD) < 5.0


def test_offset_is_hundreds_of_metres_inside_china():
    lon, lat = gcj02.wgs84_to_gcj02(113.13, 27.88)  # Zhuzhou
    assert 100 < metres(113.13, 27.88, lon, lat) < 1000


def test_outside_china_is_identity():
    lon = np.array([2.35, -74.0, 151.2, 139.69])
    lat = np.array([48.85, 40.7, -33.87, 56.5])
    assert gcj02.out_of_china(lon, lat).all()
    out_lon, out_lat = gcj02.wgs84_to_gcj02(lon, lat)
    np.testing.assert_array_equal(out_lon, lon)
    np.testing.assert_array_equal(out_lat, lat)
    back = gcj02.gcj02_to_wgs84(lon, lat)
    np.testing.assert_array_equal(back[0], lon)


def test_vectorised_over_arrays_keeps_shape():
    lon = np.full((3, 4), 113.1)
    lat = np.full((3, 4), 27.9)
    out = gcj02.gcj02_to_wgs84(lon, lat)
    assert out[0].shape == (3, 4)
    with pytest.raises(ValueError, match="differ in shape"):
        gcj02.wgs84_to_gcj02([1.0, 2.0], [1.0])


china_lon = st.floats(73.7, 135.0, allow_nan=False)
china_lat = st.floats(3.9, 53.5, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_round_trip_wgs_gcj_wgs_under_half_a_metre(lon, lat):
    back = gcj02.gcj02_to_wgs84(*gcj02.wgs84_to_gcj02(lon, lat))
    assert metres(lon, lat, *back) < 0.5


@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_round_trip_gcj_wgs_gcj_under_half_a_metre(lon, lat):
    back = gcj02.wgs84_to_gcj02(*gcj02.gcj02_to_wgs84(lon, lat))
    assert metres(lon, lat, *back) < 0.5


@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_round_trip_wgs_bd_wgs_under_half_a_metre(lon, lat):
    back = gcj02.bd09_to_wgs84(*gcj02.wgs84_to_bd09(lon, lat))
    assert metres(lon, lat, *back) < 0.5
