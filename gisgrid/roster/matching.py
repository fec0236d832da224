"""Exact capacitated assignment: fill slots from resources at least total cost."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["UNREACHABLE", "solve"]

#: Cost standing for "cannot": larger than any walk.
UNREACHABLE = 1e12


def solve(cost: np.ndarray, slots: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Fill slots from resources at least total cost, exactly.

    Parameters
    ----------
    cost
        ``(resources, scopes)`` cost; ``inf`` where a resource cannot fill a scope.
    slots
        How many resources each scope needs.
    capacity
        How many slots each resource may fill; 0 for no limit.

    Returns
    -------
    numpy.ndarray
        ``(k, 2)`` pairs of (resource, scope) indices, one per filled slot.

    Examples
    --------
    >>> cost = np.array([[1.0, 5.0], [2.0, 3.0]])
    >>> solve(cost, np.array([1, 1]), np.array([1, 1])).tolist()  # 1 + 3 beats 5 + 2
    [[0, 0], [1, 1]]
    """
    cost = np.where(np.isfinite(cost), cost, np.inf)
    n_res, n_scopes = cost.shape
    if n_res == 0 or slots.sum() == 0:
        return np.empty((0, 2), int)
    free = capacity == 0
    if free.all():  # no capacity: each slot takes the nearest resources
        pairs = []
        for s in np.flatnonzero(slots):
            order = np.argsort(cost[:, s], kind="stable")[: slots[s]]
            pairs += [(r, s) for r in order if np.isfinite(cost[r, s])]
        return np.array(pairs, int).reshape(-1, 2)
    cap = np.where(free, slots.sum(), capacity)
    cols = np.repeat(np.arange(n_res), cap)
    rows = np.repeat(np.arange(n_scopes), slots)
    matrix = cost[np.ix_(cols, rows)].T
    matrix = np.where(np.isfinite(matrix), matrix, UNREACHABLE)
    r, c = linear_sum_assignment(matrix)
    keep = matrix[r, c] < UNREACHABLE
    return np.column_stack([cols[c[keep]], rows[r[keep]]])
