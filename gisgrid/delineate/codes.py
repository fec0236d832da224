"""Grid codes: 15 digits, the community's 12-digit code and a 3-digit serial.

Serials run west→east along rows taken north→south (自西向东、自北向南) inside
each community. Serials already in use (locked grids) or retired are never
given again.
"""

from __future__ import annotations

import re

import numpy as np

from gisgrid._errors import InputError

__all__ = ["GRID_CODE", "grid_codes", "serial_order"]

GRID_CODE = re.compile(r"^\d{15}$")
MAX_SERIAL = 999


def serial_order(xy: np.ndarray, *, row_height: float) -> np.ndarray:
    """Order of points west→east within rows taken north→south.

    Parameters
    ----------
    xy
        Points (x east, y north), e.g. grid centroids in a metric CRS.
    row_height
        Height of a row, about one grid across.

    Returns
    -------
    numpy.ndarray
        Indices of ``xy`` in serial order.

    Examples
    --------
    >>> xy = np.array([[0, 0], [10, 0], [0, 10], [10, 10]])
    >>> serial_order(xy, row_height=5).tolist()  # north row first, west to east
    [2, 3, 0, 1]
    """
    if len(xy) == 0:
        return np.empty(0, dtype=np.int64)
    row = np.floor((xy[:, 1].max() - xy[:, 1]) / max(row_height, 1e-9))
    return np.lexsort((xy[:, 0], row))


def grid_codes(
    community_code: str,
    xy: np.ndarray,
    *,
    row_height: float,
    taken: set[int] | frozenset[int] = frozenset(),
) -> list[str]:
    """15-digit codes for new grids of a community.

    Parameters
    ----------
    community_code
        The 12-digit 统计用区划代码 of the community.
    xy
        Centroids of the new grids.
    row_height
        See :func:`serial_order`.
    taken
        Serials in use or retired, never given again.

    Returns
    -------
    list of str
        Codes aligned with ``xy``.

    Examples
    --------
    >>> grid_codes("430204001002", np.array([[0, 0], [0, 100]]), row_height=50, taken={1})
    ['430204001002003', '430204001002002']
    """
    free = (s for s in range(1, MAX_SERIAL + 1) if s not in taken)
    codes = [""] * len(xy)
    for i in serial_order(xy, row_height=row_height):
        serial = next(free, None)
        if serial is None:
            raise InputError(
                f"community {community_code} would need more than {MAX_SERIAL} "
                "grids; split it first (gisgrid redivide) or raise the target"
            )
        codes[i] = f"{community_code}{serial:03d}"
    return codes
