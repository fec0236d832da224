"""Partition a connected cell graph into grids: balanced, contiguous, along roads.

1. **Start**: recursive spanning-tree bisection (as GerryChain's
   ``recursive_tree_part``): contiguous by construction and exact on the small,
   lumpy graphs of tower compounds, where METIS with ``contig`` leaves parts
   empty. Trees hold compounds together first, then blocks, and join blocks
   across roads, so the cuts they offer run along roads.
2. **Repair**: a grid above the ceiling is bisected again; a grid outside the
   household or the population band is re-split together with a neighbour when
   that puts more grids in band (households first).
3. **Refinement**: local search that moves a boundary cell, or a compound's
   whole fragment, to a neighbouring grid whenever the objective falls and both
   grids stay connected; then two neighbouring grids on either side of the
   target are bisected afresh together where that lowers the objective, and
   the local search runs again.
4. **Two starts** where a community holds ``MANY_GRIDS`` or more: the whole search
   runs again from other random trees and the lower objective is kept. The search
   ends in a local optimum that its first trees decide; on lumpy real data
   (Helsinki's city blocks) one start in three ends 1-2 points further from 400.

The objective, summed over grids:

- ``BAND_STEP`` for a grid outside the household band, plus, with x the
  households outside the band over the target, ``BAND_LINEAR`` × x +
  ``BAND_WEIGHT`` × x², and
  ``POPULATION_STEP`` for a grid outside the population band, plus
  ``POPULATION_WEIGHT`` × its x² (secondary);
- ``DEVIATION_WEIGHT`` × (households − target)² / target² + :attr:`Weights.linear` ×
  abs(households − target) / target, the pull to the target inside the band;
- ``SPLIT_WEIGHT`` per avoidable compound split: a compound touching more grids
  than ``ceil(households / ceiling)``;
- :attr:`Weights.cut` × the boundary's cost (:attr:`gisgrid.delineate.graph.CellGraph.cost`:
  its length, dearer through a block, dearest through a compound).
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import overload

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, depth_first_order, minimum_spanning_tree

from gisgrid.delineate.graph import CellGraph

__all__ = ["GRID_WEIGHTS", "Band", "Weights", "choose_k", "partition"]

BAND_WEIGHT = 100.0
BAND_STEP = 20.0  # any grid out of band: being in band comes before splits and boundaries
BAND_LINEAR = 50.0  # a steady pull back into the band, stronger than boundary costs
POPULATION_WEIGHT = 10.0
DEVIATION_WEIGHT = 30.0  # a grid 10 % off target costs 0.3 (and the linear pull below)
POPULATION_STEP = 3.0  # a grid out of the population band: below a split and BAND_STEP
SPLIT_WEIGHT = 15.0  # per avoidable compound split: below BAND_STEP, above any trade of
# sizes inside the band (two grids from the target to its edge cost 2 × 6.9 at GRID_WEIGHTS)
MAX_PASSES = 40
STARTS = 2  # whole searches from different random trees where a community holds many grids,
MANY_GRIDS = 8  # … this many or more: the lower objective is kept
TREE_ATTEMPTS = 10  # random spanning trees tried per bisection
CUT_CANDIDATES = 32  # the most balanced cuts of each tree whose boundary cost is weighed
BISECT_BALANCE = 16.0  # a bisection's imbalance (over the target) against Weights.cut × cost
REPAIR_ROUNDS = 5
EVEN_ROUNDS = 3  # rounds of re-splitting neighbouring grids either side of the target
EVEN_MIN_GAIN = 0.02  # … whose summed deviation a re-split could cut by this share of it
EVEN_ATTEMPTS = 10  # random spanning trees tried per re-split
INFEASIBLE = 1000.0  # score of a cut that leaves a side unable to hold its grids in band


@dataclass(frozen=True)
class Weights:
    """How the objective trades a part's size against its boundary.

    Attributes
    ----------
    cut
        Objective per metre of weighted boundary.
    linear
        Objective per 100 % of a part's distance from the target: the mean deviation,
        which the quadratic pull leaves alone where every part of a community lies on
        one side of the target.
    """

    cut: float
    linear: float


GRID_WEIGHTS = Weights(cut=0.0018, linear=20.0)
"""Grids: a metre of road boundary costs 0.0018, a grid 1 % off target 0.2 (110 m of road,
18 m through a block), so balance comes before the last metres of boundary."""


@dataclass(frozen=True)
class Band:
    """A target and the accepted range around it.

    ``ceiling_is_hard`` marks a ceiling that matters more than the floor (a new
    community's maximum size): when no count of parts fits, there are more parts
    rather than fewer, and a part above the ceiling counts twice.
    """

    target: float
    low: float
    high: float
    ceiling_is_hard: bool = False

    @overload
    def penalty(self, value: float) -> float: ...
    @overload
    def penalty(self, value: np.ndarray) -> np.ndarray: ...
    def penalty(self, value: np.ndarray | float) -> np.ndarray | float:
        """Squared relative distance outside the band (0 inside)."""
        out = np.maximum(0.0, self.low - value) + np.maximum(0.0, value - self.high)
        return (out / self.target) ** 2

    @overload
    def contains(self, value: float) -> bool: ...
    @overload
    def contains(self, value: np.ndarray) -> np.ndarray: ...
    def contains(self, value: np.ndarray | float) -> np.ndarray | bool:
        """Whether values lie in the band."""
        return (value >= self.low) & (value <= self.high)


def choose_k(total: float, band: Band) -> int:
    """How many grids for ``total`` households: the in-band k nearest the target, else the
    fewest (each of which then lies outside the band).

    Examples
    --------
    >>> b = Band(400, 300, 500)
    >>> choose_k(4000, b), choose_k(520, b), choose_k(560, b), choose_k(100, b)
    (10, 1, 1, 1)
    """
    if total <= 0:
        return 1
    lo, hi = max(1, math.ceil(total / band.high)), max(1, math.floor(total / band.low))
    if lo <= hi:
        return int(min(range(lo, hi + 1), key=lambda k: (abs(total / k - band.target), k)))
    if band.ceiling_is_hard:
        return lo
    return max(1, math.floor(total / band.target))


def partition(
    graph: CellGraph,
    k: int,
    *,
    households: Band,
    population: Band,
    seed: int = 0,
    weights: Weights = GRID_WEIGHTS,
) -> np.ndarray:
    """Partition a connected cell graph into (about) k contiguous grids.

    Parameters
    ----------
    graph
        A connected :class:`~gisgrid.delineate.graph.CellGraph`.
    k
        Number of grids to start from; repair may add or remove some.
    households, population
        Bands for the objective.
    seed
        Seed of the random spanning trees: the same seed, the same grids.
    weights
        The trade between size and boundary (grids by default).

    Returns
    -------
    numpy.ndarray
        Grid of each cell, numbered 0..k'-1.
    """
    if k <= 1 or graph.n <= 1:
        return np.zeros(graph.n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    searches = (
        _search(graph, min(k, graph.n), households, population, rng, weights)
        for _ in range(STARTS if k >= MANY_GRIDS else 1)
    )
    best = min(searches, key=lambda state: state.objective())  # the first of equals
    _, labels = np.unique(best.labels, return_inverse=True)
    return labels


def _search(
    graph: CellGraph,
    k: int,
    households: Band,
    population: Band,
    rng: np.random.Generator,
    weights: Weights,
) -> _State:
    """One start and everything after it: bisection, repair, refinement, re-splits."""
    labels = _tree_bisection(graph, k, households, rng, weights.cut)
    for _ in range(REPAIR_ROUNDS):
        state = _State(graph, labels, households, population, weights)
        state.refine()
        labels, changed = _repair(graph, state.labels, households, population, rng, weights.cut)
        if not changed:
            break
    if changed or not state.settled:  # else refining the same labels again moves nothing
        state = _State(graph, labels, households, population, weights)
        state.refine()
    if _even_pairs(state, rng):
        state.refine()
    return state


# --- the start: recursive spanning-tree bisection -----------------------------------------


def _tree_bisection(
    graph: CellGraph,
    k: int,
    band: Band,
    rng: np.random.Generator,
    cut_weight: float,
    attempts: int = TREE_ATTEMPTS,
) -> np.ndarray:
    """Split a connected graph into k connected parts of balanced households."""
    labels = np.zeros(graph.n, dtype=np.int64)
    counter = [0]

    def split(nodes: np.ndarray, parts: int) -> None:
        if parts <= 1 or len(nodes) <= 1:
            labels[nodes] = counter[0]
            counter[0] += 1
            return
        k_a = parts // 2
        cut = _best_cut(graph, nodes, k_a, parts - k_a, band, rng, attempts, cut_weight)
        if cut is None:
            labels[nodes] = counter[0]
            counter[0] += 1
            return
        split(cut[0], k_a)
        split(cut[1], parts - k_a)

    split(np.arange(graph.n), k)
    return labels


def _best_cut(
    graph: CellGraph,
    nodes: np.ndarray,
    k_a: int,
    k_b: int,
    band: Band,
    rng: np.random.Generator,
    attempts: int,
    cut_weight: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The best cut of one tree edge over random spanning trees of the subgraph."""
    n = len(nodes)
    local = np.full(graph.n, -1)
    local[nodes] = np.arange(n)
    inside = (local[graph.edges[:, 0]] >= 0) & (local[graph.edges[:, 1]] >= 0)
    e = local[graph.edges[inside]]
    if len(e) == 0:
        return None
    w_cut = graph.cost[inside]
    tier = np.where(
        graph.along_line[inside], 2.0, np.where(graph.inside_compound[inside], 0.0, 1.0)
    )
    hh = graph.households[nodes].astype(float)
    total = hh.sum()
    ideal = total * k_a / (k_a + k_b)
    trees = _spanning_trees(e, n, rng.random((attempts, len(e))) + tier + 1e-9, hh)
    if trees is None:
        return None  # not connected
    order, below, tin, tout = trees
    cand = order[:, 1:]  # each node but the root heads a subtree: cutting above it
    below_cand = np.take_along_axis(below, cand, axis=1)
    chosen, scores = [], []
    for flip in (False, True):  # the subtree takes the k_a side, or the k_b side
        side = total - below_cand if flip else below_cand
        ok = (
            (side >= k_a * band.low)
            & (side <= k_a * band.high)
            & (total - side >= k_b * band.low)
            & (total - side <= k_b * band.high)
        )
        score = BISECT_BALANCE * np.abs(side - ideal) / band.target + np.where(ok, 0.0, INFEASIBLE)
        top = np.argsort(score, axis=1, kind="stable")[:, :CUT_CANDIDATES]
        chosen.append(np.take_along_axis(cand, top, axis=1))
        scores.append(np.take_along_axis(score, top, axis=1))
    v = np.concatenate(chosen, axis=1)
    # a subtree and its complement have one boundary: weigh every candidate's at once
    ta, tb = tin[:, e[:, 0]][:, None, :], tin[:, e[:, 1]][:, None, :]
    lo = np.take_along_axis(tin, v, axis=1)[:, :, None]
    hi = np.take_along_axis(tout, v, axis=1)[:, :, None]
    crossing = ((ta >= lo) & (ta < hi)) != ((tb >= lo) & (tb < hi))
    weighed = (crossing.reshape(-1, len(e)) @ w_cut).reshape(v.shape)
    total_score = np.concatenate(scores, axis=1) + cut_weight * weighed
    best = np.argmin(total_score, axis=1)
    t = int(np.argmin(total_score[np.arange(len(v)), best]))  # the first tree of the best
    i = int(best[t])
    member = (tin[t] >= tin[t, v[t, i]]) & (tin[t] < tout[t, v[t, i]])
    if i >= chosen[0].shape[1]:
        member = ~member
    return nodes[member], nodes[~member]


def _spanning_trees(
    edges: np.ndarray, n: int, weights: np.ndarray, households: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Minimum spanning trees of a graph under each row of edge weights, or None when
    the graph is not connected.

    One row per tree: the nodes in breadth-first order from node 0, each node's subtree
    households, and its entry and exit times in a depth-first walk from node 0 (node u
    lies in v's subtree when ``tin[v] <= tin[u] < tout[v]``). All trees are found in
    one pass over a graph of one copy per row, joined to an extra root node by edges
    lighter than any other: scipy's per-call overhead outweighs the work on the small
    graphs of a community, and each copy's tree and walks are those of the copy alone.
    """
    copies, m = weights.shape
    root = copies * n
    shift = np.repeat(np.arange(copies) * n, m)
    rows = np.concatenate([np.tile(edges[:, 0], copies) + shift, np.full(copies, root)])
    cols = np.concatenate([np.tile(edges[:, 1], copies) + shift, np.arange(copies) * n])
    data = np.concatenate([weights.ravel(), np.full(copies, 1e-12)])
    tree = minimum_spanning_tree(csr_matrix((data, (rows, cols)), shape=(root + 1, root + 1)))
    order, parent = depth_first_order(tree, root, directed=False)
    if len(order) < root + 1:
        return None
    wide = breadth_first_order(tree, root, directed=False, return_predecessors=False)[1:]
    wide = wide[np.argsort(wide // n, kind="stable")].reshape(copies, n)
    par = parent.tolist()
    below = [*np.tile(households, copies).tolist(), 0.0]
    size = [1] * (root + 1)
    for v in order[:0:-1].tolist():
        p = par[v]
        below[p] += below[v]
        size[p] += size[v]
    tin = np.empty(root + 1, dtype=np.int64)
    tin[order] = np.arange(root + 1)
    sums = np.asarray(below[:root]).reshape(copies, n)
    tin_all = tin[:root].reshape(copies, n) - 1 - (np.arange(copies) * n)[:, None]
    tout_all = tin_all + np.asarray(size[:root]).reshape(copies, n)
    return wide - (np.arange(copies) * n)[:, None], sums, tin_all, tout_all


# --- repair: split the too-big, re-split out-of-band grids with a neighbour ---------------


def _repair(
    graph: CellGraph,
    labels: np.ndarray,
    band: Band,
    population: Band,
    rng: np.random.Generator,
    cut_weight: float,
) -> tuple[np.ndarray, bool]:
    labels = labels.copy()
    changed = False
    hh = np.bincount(labels, weights=graph.households)
    for p in np.flatnonzero(hh > band.high):
        nodes = np.flatnonzero(labels == p)
        k = choose_k(hh[p], band)
        if k < 2 or len(nodes) < 2:
            continue
        parts = _tree_bisection(graph.subgraph(nodes), min(k, len(nodes)), band, rng, cut_weight)
        if parts.max() > 0:
            labels[nodes] = np.where(parts == 0, p, labels.max() + parts)
            changed = True
    labels, rebalanced = _rebalance_pairs(graph, labels, band, population, rng, cut_weight)
    return labels, changed or rebalanced


def _rebalance_pairs(
    graph: CellGraph,
    labels: np.ndarray,
    band: Band,
    population: Band,
    rng: np.random.Generator,
    cut_weight: float,
) -> tuple[np.ndarray, bool]:
    """Re-split each out-of-band grid together with a neighbour, when that helps.

    The pair is partitioned afresh into ``choose_k`` of its total (1, 2 or 3
    grids) and kept when fewer grids are out of the household band, or as many
    and fewer out of the population band, or as many of both with a lower
    household penalty. This merges grids under the floor (and empty ones), evens
    out a small grid beside a large one, and trades cells between two grids in
    the household band until both are in the population band too.
    """
    labels = labels.copy()
    adj = graph.neighbours()
    hh = np.bincount(labels, weights=graph.households)
    pop = np.bincount(labels, weights=graph.population, minlength=len(hh))
    changed = False

    def score(h: np.ndarray, p: np.ndarray) -> tuple[int, int, float]:
        return _bad(h, band), _bad(p, population), float(band.penalty(h).sum())

    for p in np.argsort(hh, kind="stable"):
        nodes_p = np.flatnonzero(labels == p)
        if len(nodes_p) == 0 or (band.contains(hh[p]) and population.contains(pop[p])):
            continue
        near = sorted({int(labels[v]) for u in nodes_p for v in adj[u]} - {int(p)})
        useful = [
            q
            for q in near
            if band.contains(hh[p])
            or (hh[p] < band.low and hh[q] + hh[p] > 0)
            or (hh[p] > band.high and hh[q] < band.high)
        ]
        best = None
        for q in useful:
            pair = np.flatnonzero((labels == p) | (labels == q))
            k = choose_k(hh[p] + hh[q], band)
            before = score(hh[[p, q]], pop[[p, q]])
            parts = (
                np.zeros(len(pair), dtype=np.int64)
                if k == 1
                else _tree_bisection(
                    graph.subgraph(pair), min(k, len(pair)), band, rng, cut_weight, attempts=4
                )
            )
            after = score(
                np.bincount(parts, weights=graph.households[pair]),
                np.bincount(parts, weights=graph.population[pair]),
            )
            if after < before and (best is None or after < best[0]):
                best = (after, pair, parts, q)
        if best is None:
            continue
        _, pair, parts, q = best
        names = [p, q, *range(labels.max() + 1, labels.max() + int(parts.max()))]
        labels[pair] = np.asarray(names)[parts]
        hh = np.bincount(labels, weights=graph.households, minlength=len(hh))
        pop = np.bincount(labels, weights=graph.population, minlength=len(hh))
        changed = True
    _, labels = np.unique(labels, return_inverse=True)
    return labels, changed


def _even_pairs(state: _State, rng: np.random.Generator) -> bool:
    """Re-split two neighbouring grids on either side of the target afresh, when that
    lowers the objective; whether any pair changed.

    Refinement moves one cell at a time, so a grid of 470 households beside one of
    330 stays so when no single boundary cell is worth moving. A new bisection of the
    pair (a recombination step, as in GerryChain's ReCom) can trade several cells at
    once. Pairs already on one side of the target gain nothing and are not tried, so
    grids already as near 400 as their community's total allows cost nothing here.
    """
    g, band, labels = state.g, state.hband, state.labels  # moves update labels in place
    changed = False
    for _ in range(EVEN_ROUNDS):
        a, b = labels[g.edges[:, 0]], labels[g.edges[:, 1]]
        across = a != b
        pairs = np.unique(np.sort(np.column_stack([a[across], b[across]]), axis=1), axis=0)
        dev_p, dev_q = state.hh[pairs[:, 0]] - band.target, state.hh[pairs[:, 1]] - band.target
        gain = np.abs(dev_p) + np.abs(dev_q) - np.abs(dev_p + dev_q)
        worth = np.flatnonzero(gain > EVEN_MIN_GAIN * band.target)
        done: set[int] = set()
        for t in worth[np.argsort(-gain[worth], kind="stable")]:
            p, q = (int(x) for x in pairs[t])
            if p in done or q in done:
                continue
            nodes = np.flatnonzero((labels == p) | (labels == q))
            cut = _best_cut(g, nodes, 1, 1, band, rng, EVEN_ATTEMPTS, state.weights.cut)
            if cut is not None and _resplit(state, p, q, cut):
                done.update((p, q))
        if not done:
            break
        changed = True
    return changed


def _resplit(state: _State, p: int, q: int, cut: tuple[np.ndarray, np.ndarray]) -> bool:
    """Give grid p the cells ``cut[0]`` and grid q ``cut[1]`` when the objective falls
    (whether it did); otherwise leave both as they were."""
    to_q = [int(u) for u in cut[1] if state.labels[u] == p]
    to_p = [int(u) for u in cut[0] if state.labels[u] == q]
    moves = [(group, src, dst) for group, src, dst in ((to_q, p, q), (to_p, q, p)) if group]
    change = 0.0
    for group, _, dst in moves:
        change += state.delta(group, dst)
        state.move(group, dst)
    if change < -1e-9:
        return True
    for group, src, _ in reversed(moves):
        state.move(group, src)
    return False


def _bad(sums: np.ndarray, band: Band) -> int:
    sums = np.asarray(sums)
    over = int((sums > band.high).sum()) if band.ceiling_is_hard else 0
    return int((~band.contains(sums)).sum()) + over


# --- refinement: local search ----------------------------------------------------------------


class _State:
    """A partition being refined, with the pieces of its objective kept up to date."""

    def __init__(
        self,
        graph: CellGraph,
        labels: np.ndarray,
        households: Band,
        population: Band,
        weights: Weights = GRID_WEIGHTS,
    ) -> None:
        _, labels = np.unique(labels, return_inverse=True)
        self.g = graph
        self.adj = graph.neighbours()
        cost: dict[tuple[int, int], float] = {}
        for (i, j), w in zip(graph.edges.tolist(), graph.cost.tolist(), strict=True):
            cost[(i, j)] = cost[(j, i)] = w
        # each cell's neighbours with the cost of the boundary between them
        self._around = [[(v, cost[(u, v)]) for v in vs] for u, vs in enumerate(self.adj)]
        self.labels = labels.astype(np.int64)
        k = int(labels.max()) + 1
        self.hh = np.bincount(labels, weights=graph.households, minlength=k)
        self.pop = np.bincount(labels, weights=graph.population, minlength=k)
        self.size = np.bincount(labels, minlength=k)
        self.hband, self.pband = households, population
        self.weights = weights
        self.settled = False  # see refine()
        self._cost = [self.part_cost(h, pp) for h, pp in zip(self.hh, self.pop, strict=True)]
        self.comp = graph.compound
        self.needed = np.maximum(1, np.ceil(graph.compound_households / households.high))
        self.count: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for u, c in enumerate(self.comp.tolist()):
            if c >= 0:
                self.count[c][int(labels[u])] += 1
        # plain lists for the single-cell moves that refinement weighs by the thousand
        self._label = self.labels.tolist()
        self._hh, self._pop = graph.households.tolist(), graph.population.tolist()
        self._comp = self.comp.tolist()

    def part_cost(self, h: float, p: float) -> float:
        hb, pb = self.hband, self.pband
        dev = (h - hb.target) / hb.target
        out = max(0.0, hb.low - h, h - hb.high) / hb.target
        pout = max(0.0, pb.low - p, p - pb.high) / pb.target
        step = BAND_STEP if out > 0 else 0.0
        if pout > 0:
            step += POPULATION_STEP
        return (
            step
            + BAND_LINEAR * out
            + BAND_WEIGHT * out * out
            + DEVIATION_WEIGHT * dev * dev
            + self.weights.linear * abs(dev)
            + POPULATION_WEIGHT * pout * pout
        )

    def objective(self) -> float:
        """The objective of the partition as it stands (lower is better)."""
        cross = self.labels[self.g.edges[:, 0]] != self.labels[self.g.edges[:, 1]]
        extra = sum(self._extra(c, self._touched(c)) for c in self.count)
        return (
            sum(self._cost)
            + self.weights.cut * float(self.g.cost[cross].sum())
            + SPLIT_WEIGHT * extra
        )

    def _split_delta(self, c: int, p: int, q: int, moving: int) -> float:
        """Change in avoidable splits of compound c when ``moving`` of its cells go p → q."""
        counts = self.count[c]
        touched = self._touched(c)
        after = touched - (counts[p] == moving) + (counts[q] == 0)
        return SPLIT_WEIGHT * (self._extra(c, after) - self._extra(c, touched))

    def _touched(self, c: int) -> int:
        """How many grids compound c touches."""
        return sum(1 for v in self.count[c].values() if v > 0)

    def _extra(self, c: int, touched: int) -> float:
        """Grids beyond those compound c needs, when it touches ``touched``."""
        return max(0.0, touched - self.needed[c])

    def delta(self, group: list[int], q: int) -> float:
        """Objective change of moving the cells ``group`` (all in one part) to part q."""
        if len(group) == 1:
            return self._delta_one(group[0], q)
        p = int(self.labels[group[0]])
        h = float(self.g.households[group].sum())
        pp = float(self.g.population[group].sum())
        change = self._sizes_delta(p, q, h, pp)
        members = set(group)
        cut = 0.0
        for u in group:
            for v, c in self._around[u]:
                if v in members:
                    continue
                lv = self.labels[v]
                cut += (lv != q) * c - (lv != p) * c
        change += self.weights.cut * cut
        by_compound: dict[int, int] = defaultdict(int)
        for u in group:
            if self.comp[u] >= 0:
                by_compound[int(self.comp[u])] += 1
        for c, moving in by_compound.items():
            change += self._split_delta(c, p, q, moving)
        return change

    def _sizes_delta(self, p: int, q: int, h: float, pp: float) -> float:
        """Change in the parts' size costs when ``h`` households and ``pp`` people go p → q."""
        return (
            self.part_cost(self.hh[p] - h, self.pop[p] - pp)
            + self.part_cost(self.hh[q] + h, self.pop[q] + pp)
            - self._cost[p]
            - self._cost[q]
        )

    def _delta_one(self, u: int, q: int) -> float:
        """:meth:`delta` of one cell, the same sums in the same order on plain lists."""
        p = self._label[u]
        change = self._sizes_delta(p, q, self._hh[u], self._pop[u])
        label, cut = self._label, 0.0
        for v, c in self._around[u]:
            lv = label[v]
            cut += (lv != q) * c - (lv != p) * c
        change += self.weights.cut * cut
        if self._comp[u] >= 0:
            change += self._split_delta(self._comp[u], p, q, 1)
        return change

    def stays_connected(self, group: list[int]) -> bool:
        """Whether the group's part stays connected and non-empty without the group."""
        p = int(self.labels[group[0]])
        members = set(group)
        if self.size[p] <= len(members):
            return False
        rest = [v for u in group for v in self.adj[u] if v not in members and self.labels[v] == p]
        if not rest:
            return False
        targets = set(rest)
        seen = {rest[0]}
        queue = deque([rest[0]])
        while queue and not targets <= seen:
            x = queue.popleft()
            for y in self.adj[x]:
                if y not in seen and y not in members and self.labels[y] == p:
                    seen.add(y)
                    queue.append(y)
        return targets <= seen

    def move(self, group: list[int], q: int) -> None:
        p = int(self.labels[group[0]])
        for u in group:
            h, pp = self.g.households[u], self.g.population[u]
            self.hh[p] -= h
            self.pop[p] -= pp
            self.size[p] -= 1
            self.hh[q] += h
            self.pop[q] += pp
            self.size[q] += 1
            self.labels[u] = self._label[u] = q
            c = int(self.comp[u])
            if c >= 0:
                self.count[c][p] -= 1
                self.count[c][q] += 1
        self._cost[p] = self.part_cost(self.hh[p], self.pop[p])
        self._cost[q] = self.part_cost(self.hh[q], self.pop[q])

    def _fragments(self) -> list[list[int]]:
        """Connected pieces of compounds that touch more grids than they need."""
        out = []
        by_part: dict[tuple[int, int], list[int]] = defaultdict(list)
        for u, c in enumerate(self.comp.tolist()):
            if c >= 0:
                by_part[(c, int(self.labels[u]))].append(u)
        for (c, _), cells in by_part.items():
            if self._extra(c, self._touched(c)) > 0 and len(cells) > 1:
                out.append(cells)
        return out

    def refine(self) -> None:
        """Move cells and fragments while the objective falls; ``settled`` tells whether
        no move was left (rather than the passes running out)."""
        self.settled = False
        for _ in range(MAX_PASSES):
            moves = []
            for u in range(self.g.n):
                p = self.labels[u]
                for q in {int(self.labels[v]) for v in self.adj[u]} - {int(p)}:
                    d = self.delta([u], q)
                    if d < -1e-9:
                        moves.append((d, [u], q))
            for group in self._fragments():
                p = self.labels[group[0]]
                near = {int(self.labels[v]) for u in group for v in self.adj[u]} - {int(p)}
                for q in near:
                    d = self.delta(group, q)
                    if d < -1e-9:
                        moves.append((d, group, q))
            if not moves:
                self.settled = True
                return
            moves.sort(key=lambda m: m[0])
            touched: set[int] = set()
            for _, group, q in moves:
                if touched.intersection(group) or self.labels[group[0]] == q:
                    continue
                if any(self.labels[u] != self.labels[group[0]] for u in group):
                    continue
                if (
                    self.delta(group, q) < -1e-9
                    and self.stays_connected(group)
                    and self._joins(group, q)
                ):
                    self.move(group, q)
                    touched.update(group)
                    touched.update(v for u in group for v in self.adj[u])
            if not touched:
                self.settled = True
                return

    def _joins(self, group: list[int], q: int) -> bool:
        """Whether the group, added to part q, makes one connected piece with it."""
        if len(group) == 1:
            return True
        members = set(group)
        start = next(u for u in group if any(self.labels[v] == q for v in self.adj[u]))
        seen = {start}
        queue = deque([start])
        while queue:
            x = queue.popleft()
            for y in self.adj[x]:
                if y in members and y not in seen:
                    seen.add(y)
                    queue.append(y)
        # every cell of the group reaches q through the group or touches q itself
        return all(u in seen or any(self.labels[v] == q for v in self.adj[u]) for u in group)
