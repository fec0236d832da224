"""Partition a connected cell graph into k grids: balanced, contiguous, along roads.

A balanced start by recursive spanning-tree bisection (as GerryChain's
``recursive_tree_part``: contiguous by construction, exact on the small lumpy
graphs of tower compounds, where METIS with ``contig`` leaves parts empty),
whose trees make cuts along roads, rivers and walls cheap and cuts through
blocks and compounds dear; then a repair of grids outside the band (split
above the ceiling, merge under the floor) and local refinement: boundary cells move between neighbouring grids
whenever that lowers an explicit objective and leaves both grids connected.

The objective of a partition is, summed over its grids,

- a heavy penalty for households outside the band (squared, relative to the target),
- a light one for the deviation from the target,
- a penalty for population outside its band (population is secondary),
- the cost of the boundary (:attr:`gisgrid.cells.CellGraph.cost`: its length,
  dearer through a block and dearest through a compound), times ``CUT_WEIGHT``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

from gisgrid.cells import CellGraph

__all__ = ["Band", "choose_k", "partition"]

CUT_WEIGHT = 0.002  # objective per metre of (weighted) boundary
BAND_WEIGHT = 100.0
POPULATION_WEIGHT = 10.0
MAX_PASSES = 60
TREE_ATTEMPTS = 12  # random spanning trees tried per bisection
REPAIR_ROUNDS = 6  # rounds of split/merge repair between refinements


@dataclass(frozen=True)
class Band:
    """A target and the accepted range around it."""

    target: float
    low: float
    high: float

    def penalty(self, value: np.ndarray | float) -> np.ndarray | float:
        """Squared relative distance outside the band (0 inside)."""
        out = np.maximum(0.0, self.low - value) + np.maximum(0.0, value - self.high)
        return (out / self.target) ** 2

    def contains(self, value: np.ndarray | float) -> np.ndarray | bool:
        """Whether values lie in the band."""
        return (value >= self.low) & (value <= self.high)


def choose_k(total: float, band: Band) -> int:
    """How many grids for ``total`` households: in band if any k allows it, else closest.

    Examples
    --------
    >>> b = Band(400, 300, 500)
    >>> choose_k(4000, b), choose_k(520, b), choose_k(100, b)
    (10, 1, 1)
    """
    if total <= 0:
        return 1
    lo, hi = max(1, math.ceil(total / band.high)), max(1, math.floor(total / band.low))
    ideal = total / band.target
    if lo <= hi:
        return int(min(range(lo, hi + 1), key=lambda k: (abs(total / k - band.target), k)))
    candidates = {max(1, math.floor(ideal)), max(1, math.ceil(ideal))}
    return min(candidates, key=lambda k: (float(band.penalty(total / k)), k))


class _State:
    """Mutable partition of one connected graph, with the objective's pieces."""

    def __init__(self, graph: CellGraph, labels: np.ndarray, k: int, households: Band,
                 population: Band) -> None:
        self.g = graph
        self.adj = graph.neighbours()
        self.cost: dict[tuple[int, int], float] = {}
        for (i, j), w in zip(graph.edges, graph.cost, strict=True):
            self.cost[(int(i), int(j))] = self.cost[(int(j), int(i))] = float(w)
        self.labels = labels.astype(np.int64).copy()
        self.hh = np.bincount(self.labels, weights=graph.households, minlength=k)
        self.pop = np.bincount(self.labels, weights=graph.population, minlength=k)
        self.size = np.bincount(self.labels, minlength=k)
        self.hband, self.pband = households, population

    def part_cost(self, h: float, p: float) -> float:
        dev = ((h - self.hband.target) / self.hband.target) ** 2
        return float(BAND_WEIGHT * self.hband.penalty(h) + dev
                     + POPULATION_WEIGHT * self.pband.penalty(p))

    def delta(self, u: int, q: int) -> float:
        """Objective change of moving cell u to part q."""
        p = self.labels[u]
        h, pp = self.g.households[u], self.g.population[u]
        before = self.part_cost(self.hh[p], self.pop[p]) + self.part_cost(self.hh[q], self.pop[q])
        after = (self.part_cost(self.hh[p] - h, self.pop[p] - pp)
                 + self.part_cost(self.hh[q] + h, self.pop[q] + pp))
        cut = 0.0
        for v in self.adj[u]:
            c = self.cost[(u, v)]
            lv = self.labels[v]
            if lv == p:
                cut += c  # becomes a boundary
            elif lv == q:
                cut -= c  # stops being one
        return after - before + CUT_WEIGHT * cut

    def stays_connected(self, u: int) -> bool:
        """Whether u's part stays connected (and non-empty) without u."""
        p = self.labels[u]
        if self.size[p] <= 1:
            return False
        same = [v for v in self.adj[u] if self.labels[v] == p]
        if len(same) <= 1:
            return True
        seen = {same[0]}
        queue = deque([same[0]])
        targets = set(same)
        while queue and not targets <= seen:
            x = queue.popleft()
            for y in self.adj[x]:
                if y != u and y not in seen and self.labels[y] == p:
                    seen.add(y)
                    queue.append(y)
        return targets <= seen

    def move(self, u: int, q: int) -> None:
        p = self.labels[u]
        self.hh[p] -= self.g.households[u]
        self.pop[p] -= self.g.population[u]
        self.size[p] -= 1
        self.hh[q] += self.g.households[u]
        self.pop[q] += self.g.population[u]
        self.size[q] += 1
        self.labels[u] = q

    def refine(self) -> None:
        for _ in range(MAX_PASSES):
            moves = []
            for u in range(self.g.n):
                p = self.labels[u]
                for q in {self.labels[v] for v in self.adj[u]} - {p}:
                    d = self.delta(u, q)
                    if d < -1e-9:
                        moves.append((d, u, q))
            if not moves:
                return
            moves.sort()
            moved = set()
            for _, u, q in moves:
                if u in moved or self.labels[u] == q:
                    continue
                if self.delta(u, q) < -1e-9 and self.stays_connected(u):
                    self.move(u, q)
                    moved.add(u)
                    moved.update(self.adj[u])
            if not moved:
                return


def _tree_bisection(graph: CellGraph, k: int, band: Band, rng: np.random.Generator,
                    attempts: int = TREE_ATTEMPTS) -> np.ndarray:
    """Recursive spanning-tree bisection (as GerryChain's ``recursive_tree_part``).

    Each step draws random spanning trees whose edges inside blocks weigh less
    than edges along roads, so trees hold blocks together and join them across
    roads; cutting one tree edge splits the graph into two connected sides. Of
    the cuts that leave both sides able to hold their share of grids in the
    band, the one nearest the ideal ratio and shortest in weighted boundary wins.
    """
    labels = np.zeros(graph.n, dtype=np.int64)
    cost = graph.cost
    next_label = [1]

    def split(nodes: np.ndarray, parts: int, label: int) -> None:
        if parts <= 1 or len(nodes) <= 1:
            labels[nodes] = label
            return
        k_a = parts // 2
        best = _best_cut(graph, cost, nodes, k_a, parts - k_a, band, rng, attempts)
        if best is None:  # no cut at all (a single node): one grid
            labels[nodes] = label
            return
        side_a, side_b = best
        split(side_a, k_a, label)
        other = next_label[0]
        next_label[0] += 1
        split(side_b, parts - k_a, other)

    split(np.arange(graph.n), k, 0)
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def _best_cut(graph: CellGraph, cost: np.ndarray, nodes: np.ndarray, k_a: int, k_b: int,
              band: Band, rng: np.random.Generator, attempts: int):
    local = np.full(graph.n, -1)
    local[nodes] = np.arange(len(nodes))
    inside = (local[graph.edges[:, 0]] >= 0) & (local[graph.edges[:, 1]] >= 0)
    e = local[graph.edges[inside]]
    w_cut = cost[inside]
    # trees hold compounds together first, then blocks, and join blocks across roads
    tier = np.where(graph.along_line[inside], 2.0, np.where(graph.inside_compound[inside],
                                                             0.0, 1.0))
    hh = graph.households[nodes].astype(float)
    total = hh.sum()
    ideal = total * k_a / (k_a + k_b)
    n = len(nodes)
    best, best_score = None, np.inf
    for _ in range(attempts):
        weight = rng.random(len(e)) + tier
        tree = minimum_spanning_tree(coo_matrix((weight + 1e-9, (e[:, 0], e[:, 1])),
                                                shape=(n, n)))
        order, parent = breadth_first_order(tree, 0, directed=False)
        if len(order) < n:
            continue  # not connected: should not happen for a component
        sub = hh.copy()
        for v in order[:0:-1]:
            sub[parent[v]] += sub[v]
        cand = order[1:]
        a = sub[cand]
        for side_a, k1, k2 in ((a, k_a, k_b), (total - a, k_a, k_b)):
            ok = ((side_a >= k1 * band.low) & (side_a <= k1 * band.high)
                  & (total - side_a >= k2 * band.low) & (total - side_a <= k2 * band.high))
            imbalance = np.abs(side_a - ideal) / band.target
            score = np.where(ok, imbalance, 10.0 + imbalance)
            top = np.argsort(score, kind="stable")[:6]
            tin, tout = _euler(order, parent, n)
            for t in top:
                v = cand[t]
                in_sub = (tin >= tin[v]) & (tin < tout[v])
                member = in_sub if side_a is a else ~in_sub
                cut = w_cut[member[e[:, 0]] != member[e[:, 1]]].sum()
                total_score = score[t] + CUT_WEIGHT * cut
                if total_score < best_score:
                    best_score = total_score
                    best = (nodes[member], nodes[~member])
    return best


def _euler(order: np.ndarray, parent: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit times of a DFS over the tree given by BFS ``order``/``parent``."""
    children: list[list[int]] = [[] for _ in range(n)]
    for v in order[1:]:
        children[parent[v]].append(int(v))
    tin = np.zeros(n, dtype=np.int64)
    tout = np.zeros(n, dtype=np.int64)
    clock = 0
    stack = [(int(order[0]), False)]
    while stack:
        v, done = stack.pop()
        if done:
            tout[v] = clock
            continue
        tin[v] = clock
        clock += 1
        stack.append((v, True))
        stack.extend((c, False) for c in children[v])
    return tin, tout


def partition(graph: CellGraph, k: int, *, households: Band, population: Band,
              seed: int = 0) -> np.ndarray:
    """Partition a connected cell graph into (up to) k contiguous grids.

    Parameters
    ----------
    graph
        A connected :class:`~gisgrid.cells.CellGraph`.
    k
        Number of grids wanted.
    households, population
        Bands for the objective.
    seed
        METIS seed; the result is deterministic for a seed.

    Returns
    -------
    numpy.ndarray
        Part of each cell, 0..k'-1 (k' ≤ k when METIS could not use k parts).
    """
    if k <= 1 or graph.n <= 1:
        return np.zeros(graph.n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    labels = _tree_bisection(graph, min(k, graph.n), households, rng)
    for _ in range(REPAIR_ROUNDS):
        state = _State(graph, labels, int(labels.max()) + 1, households, population)
        state.refine()
        labels, changed = _repair(graph, state.labels, households, rng)
        if not changed:
            break
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def _repair(graph: CellGraph, labels: np.ndarray, band: Band,
            rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Split grids above the ceiling; merge grids under the floor into a neighbour.

    Returns the new labels and whether anything changed.
    """
    labels = labels.copy()
    hh = np.bincount(labels, weights=graph.households)
    changed = False
    for p in np.flatnonzero(hh > band.high):
        nodes = np.flatnonzero(labels == p)
        k = choose_k(hh[p], band)
        if k < 2 or len(nodes) < 2:
            continue
        sub = graph.subgraph(nodes)
        parts = _tree_bisection(sub, min(k, len(nodes)), band, rng)
        if parts.max() == 0:
            continue
        top = labels.max() + 1
        labels[nodes] = np.where(parts == 0, p, top + parts - 1)
        changed = True
    hh = np.bincount(labels, weights=graph.households)
    adj = graph.neighbours()
    for p in np.argsort(hh, kind="stable"):
        if hh[p] >= band.low or not (labels == p).any():
            continue
        nodes = np.flatnonzero(labels == p)
        near = {labels[v] for u in nodes for v in adj[u]} - {p}
        fits = [q for q in near if hh[q] + hh[p] <= band.high]
        if not fits:
            continue
        q = min(fits, key=lambda q: (abs(hh[q] + hh[p] - band.target), q))
        labels[nodes] = q
        hh[q] += hh[p]
        hh[p] = 0
        changed = True
    _, labels = np.unique(labels, return_inverse=True)
    return labels, changed
