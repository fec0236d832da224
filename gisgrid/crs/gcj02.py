"""GCJ-02 and BD-09: the offsets of Chinese web maps, and their exact inverses.

Amap (高德), Tencent and most Chinese web maps publish coordinates in GCJ-02, a
deliberately distorted WGS84; Baidu adds a second distortion on top (BD-09).
PROJ does not implement either (PROJ issue 982, closed as *wontfix*), so they
live here: vectorised over numpy arrays, lon/lat order throughout.

The forward formulas are the published ones (the same in every open
implementation). The inverses have no closed form; :func:`gcj02_to_wgs84` and
:func:`bd09_to_gcj02` solve ``forward(x) = y`` by fixed-point iteration, to
1e-10 degrees (about 0.01 mm), far inside the 0.5 m the project promises.

Outside China's bounding box the published algorithm leaves coordinates
unchanged, and so does this module.

Examples
--------
>>> lon, lat = wgs84_to_gcj02(121.5272106, 31.1774276)  # Shanghai
>>> round(float(lon), 6), round(float(lat), 6)
(121.531542, 31.175304)
>>> back = gcj02_to_wgs84(lon, lat)
>>> round(float(back[0]), 7), round(float(back[1]), 7)
(121.5272106, 31.1774276)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by the GCJ-02 formula
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0
_TOLERANCE_DEG = 1e-10
_MAX_ITER = 50

Pair = tuple[NDArray[np.float64], NDArray[np.float64]]


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> Pair:
    lon_a = np.asarray(lon, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    if lon_a.shape != lat_a.shape:
        raise ValueError(f"lon and lat differ in shape: {lon_a.shape} vs {lat_a.shape}")
    return lon_a, lat_a


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """Whether points lie outside the box where GCJ-02 applies.

    Parameters
    ----------
    lon, lat
        Longitudes and latitudes in degrees.

    Returns
    -------
    numpy.ndarray
        True where the published algorithm leaves the point unchanged.
    """
    lon_a, lat_a = _as_arrays(lon, lat)
    return (lon_a < 72.004) | (lon_a > 137.8347) | (lat_a < 0.8293) | (lat_a > 55.8271)


def _offset(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Pair:
    """GCJ-02 minus WGS84 at the given WGS84 points, in degrees."""
    x = lon - 105.0
    y = lat - 35.0
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat += common
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon += common
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0

    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """Shift WGS84 coordinates to GCJ-02.

    Parameters
    ----------
    lon, lat
        WGS84 longitudes and latitudes in degrees (scalars or arrays).

    Returns
    -------
    tuple of numpy.ndarray
        GCJ-02 longitudes and latitudes.
    """
    lon_a, lat_a = _as_arrays(lon, lat)
    dlon, dlat = _offset(lon_a, lat_a)
    return lon_a + dlon, lat_a + dlat


def _invert(forward, lon: ArrayLike, lat: ArrayLike) -> Pair:
    """Solve ``forward(x) == (lon, lat)`` for x by fixed-point iteration."""
    target_lon, target_lat = _as_arrays(lon, lat)
    x_lon, x_lat = target_lon.copy(), target_lat.copy()
    for _ in range(_MAX_ITER):
        f_lon, f_lat = forward(x_lon, x_lat)
        err_lon, err_lat = f_lon - target_lon, f_lat - target_lat
        x_lon = x_lon - err_lon
        x_lat = x_lat - err_lat
        if np.all(np.abs(err_lon) < _TOLERANCE_DEG) and np.all(np.abs(err_lat) < _TOLERANCE_DEG):
            break
    return x_lon, x_lat


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """Recover WGS84 coordinates from GCJ-02 (iterative, exact to 1e-10°).

    Parameters
    ----------
    lon, lat
        GCJ-02 longitudes and latitudes in degrees.

    Returns
    -------
    tuple of numpy.ndarray
        WGS84 longitudes and latitudes.
    """
    return _invert(wgs84_to_gcj02, lon, lat)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """Shift GCJ-02 coordinates to Baidu's BD-09.

    Parameters
    ----------
    lon, lat
        GCJ-02 longitudes and latitudes in degrees.

    Returns
    -------
    tuple of numpy.ndarray
        BD-09 longitudes and latitudes.
    """
    x, y = _as_arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """Recover GCJ-02 coordinates from BD-09 (iterative, exact to 1e-10°).

    Parameters
    ----------
    lon, lat
        BD-09 longitudes and latitudes in degrees.

    Returns
    -------
    tuple of numpy.ndarray
        GCJ-02 longitudes and latitudes.
    """
    return _invert(gcj02_to_bd09, lon, lat)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """Shift WGS84 coordinates to BD-09 (through GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """Recover WGS84 coordinates from BD-09 (through GCJ-02)."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))
