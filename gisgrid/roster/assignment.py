"""Filling every role of the policy: grid workers, chiefs, branches, police, building chiefs.

Distances are walking distances over the road network (:mod:`gisgrid.roster.network`)
from a resource to a scope's households: the household-weighted mean over the
scope's buildings (buildings weigh the same where a scope has no households).

``nearest`` and ``balanced`` roles are solved exactly, not greedily: the least
total distance with each scope's slots filled once and no resource above its
capacity, as a rectangular assignment problem (each resource repeated as many
times as its capacity) solved by :func:`scipy.optimize.linear_sum_assignment`,
one problem per street or community when the role keeps candidates there.
``resident`` roles take people living in the scope. Locked assignments (pins)
are kept and use up their resource's capacity.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from gisgrid._errors import InputError
from gisgrid.delineate.publication import published_buildings, published_grids
from gisgrid.io.workspace import WorkspaceLike, open_workspace
from gisgrid.roster.matching import solve
from gisgrid.roster.network import Network, network_of
from gisgrid.roster.policy import KNOWN_KINDS, Policy, PolicyError, Role, load_policy
from gisgrid.roster.scopes import Scopes, locate, scopes_of

__all__ = ["ASSIGNMENT_COLUMNS", "GAP_COLUMNS", "AssignmentRun", "assign"]

logger = logging.getLogger(__name__)

ASSIGNMENT_COLUMNS = [
    "role",
    "title",
    "scope",
    "grid_code",
    "community_code",
    "building_id",
    "resource_id",
    "name",
    "distance_m",
    "locked",
]
GAP_COLUMNS = [
    "role",
    "gap",
    "scope",
    "grid_code",
    "community_code",
    "building_id",
    "resource_id",
    "reason",
]


@dataclass
class AssignmentRun:
    """The outcome of :func:`assign`."""

    assignments: pd.DataFrame
    gaps: pd.DataFrame
    totals: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


def assign(
    workspace: WorkspaceLike,
    *,
    policy: Policy | None = None,
    pins: Mapping[tuple[str, str], str] | None = None,
    unpin: Iterable[tuple[str, str]] = (),
    progress: Callable[[str], None] | None = None,
) -> AssignmentRun:
    """Fill every role of the policy and write ``assignments`` and ``gaps``.

    Parameters
    ----------
    ws
        A delineated workspace with a ``resources`` layer.
    policy
        The policy; the default one when None.
    pins
        ``(role, scope id) → resource id`` to assign by hand; pinned rows are
        locked and kept on later runs.
    unpin
        ``(role, scope id)`` whose locked assignment is released.
    progress
        Optional callable taking the name of each role as it starts.

    Raises
    ------
    InputError
        When the workspace has no grids or resources, or a pin names an unknown
        role, scope or resource.
    """
    ws = open_workspace(workspace)
    t0 = time.perf_counter()
    policy = policy or load_policy()
    step = progress or (lambda name: None)
    for needed, fix in (
        ("grids", "gisgrid delineate"),
        ("resources", "gisgrid import WS resources FILE"),
    ):
        if needed not in ws:
            raise InputError(f"{ws.location} has no {needed} layer; run `{fix}` first")
    grids = published_grids(ws)  # rosters serve the grids the public sees
    communities = ws.read("communities")
    buildings = published_buildings(
        ws, columns=["building_id", "community_code", "grid_code", "households"]
    )
    buildings["households"] = buildings["households"].fillna(0)
    buildings["grid_code"] = buildings["grid_code"].fillna("")
    resources = locate(
        ws.read("resources"), communities=communities, grids=grids, buildings=buildings
    )
    _check_kinds(policy, resources)
    net = network_of(ws, walk_kmh=policy.walk_kmh)

    old = (
        ws.read("assignments") if "assignments" in ws else pd.DataFrame(columns=ASSIGNMENT_COLUMNS)
    )
    scopes: dict[str, Scopes] = {
        k: scopes_of(k, buildings, grids, communities)
        for k in {r.scope for r in policy.roles.values()}
    }
    locked, gaps = _locked(old, policy, scopes, resources, pins or {}, set(unpin))
    bkeys = [f"buildings:{b}" for b in buildings["building_id"]]
    bnode, baccess = net.node_of(bkeys), net.access(bkeys)

    rows: list[pd.DataFrame] = [locked]
    totals: dict[str, dict[str, float]] = {}
    for role in policy.roles.values():
        step(role.name)
        sc = scopes[role.scope]
        done = locked[locked["role"] == role.name]
        filled, role_gaps, done = _fill(role, sc, resources, done, net, bnode, baccess, policy)
        rows[0] = pd.concat([rows[0][rows[0]["role"] != role.name], done])
        rows.append(filled)
        gaps.append(role_gaps)
        both = pd.concat([done, filled])
        totals[role.name] = {
            "filled": len(both),
            "needed": int(_slots(role, sc.frame).sum()),
            "total_m": float(both["distance_m"].sum()),
            "mean_m": float(both["distance_m"].mean()) if len(both) else 0.0,
        }
    assignments = (
        pd.concat([r for r in rows if len(r)], ignore_index=True) if rows else pd.DataFrame()
    )
    assignments = assignments.reindex(columns=ASSIGNMENT_COLUMNS)
    assignments["locked"] = assignments["locked"].fillna(False).astype(bool)
    gap_table = (
        pd.concat([g for g in gaps if len(g)], ignore_index=True)
        if any(len(g) for g in gaps)
        else pd.DataFrame(columns=GAP_COLUMNS)
    )
    gap_table = gap_table.reindex(columns=GAP_COLUMNS).fillna("")
    ws.write({"assignments": assignments, "gaps": gap_table})
    seconds = time.perf_counter() - t0
    logger.info("assigned %d roles, %d gaps, in %.1f s", len(assignments), len(gap_table), seconds)
    return AssignmentRun(assignments, gap_table, totals, seconds)


def _check_kinds(policy: Policy, resources: pd.DataFrame) -> None:
    have = set(resources["kind"].astype(str))
    for role in policy.roles.values():
        if role.kind not in have and role.kind not in KNOWN_KINDS:
            raise PolicyError(
                f"{policy.source}, role {role.name!r}: unknown kind {role.kind!r}; "
                f"the resources layer has kinds {', '.join(sorted(have))}"
            )


def _slots(role: Role, frame: pd.DataFrame) -> np.ndarray:
    if role.per_households:
        return np.ceil(frame["households"].to_numpy(float) / role.per_households).astype(int)
    return np.full(len(frame), role.count, int)


def _gap_rows(
    role: Role, gap: str, frame: pd.DataFrame, reason: Iterable[str] | str, resource_id: object = ""
) -> pd.DataFrame:
    out = frame.reindex(columns=["grid_code", "community_code", "building_id"]).copy()
    out.insert(0, "scope", role.scope)
    out.insert(0, "gap", gap)
    out.insert(0, "role", role.name)
    out["resource_id"] = resource_id
    out["reason"] = list(reason) if not isinstance(reason, str) else reason
    return out


def _fill(
    role: Role,
    sc: Scopes,
    resources: gpd.GeoDataFrame,
    done: pd.DataFrame,
    net: Network,
    bnode: np.ndarray,
    baccess: np.ndarray,
    policy: Policy,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Fill one role; returns the new rows, the gaps and the locked rows with their distance."""
    frame = sc.frame
    held = frame["id"].map(done.groupby(role.key_column)["resource_id"].size())
    slots = np.maximum(_slots(role, frame) - held.fillna(0).to_numpy(int), 0)
    cand = resources[resources["kind"] == role.kind]
    if role.level:
        cand = cand[cand["level"].astype(str) == role.level]
    what = f"{role.kind}" + (f" at level {role.level!r}" if role.level else "")
    if cand.empty:
        reason = f"no resources of kind {what} in the workspace"
        return _empty(), _gap_rows(role, "unfilled", frame[slots > 0], reason), done
    gaps: list[pd.DataFrame] = []
    cand, cap = _usable(role, cand, done, net, policy, gaps)
    exhausted = (cap == 0) & (_capacity(role, cand) > 0)
    if role.rule == "resident":
        pairs, dist = _residents(role, sc, cand, slots, exhausted)
    else:
        cost = _cost(sc, cand, net, bnode, baccess)
        done = _with_distances(done, role, cand, frame, cost)
        pairs = _matched(role, frame, cost, slots, cap, cand, exhausted)
        dist = cost[pairs[:, 0], pairs[:, 1]] if len(pairs) else np.empty(0)
    filled = pd.DataFrame(
        {
            "role": role.name,
            "title": role.title,
            "scope": role.scope,
            "grid_code": frame["grid_code"].to_numpy()[pairs[:, 1]],
            "community_code": frame["community_code"].to_numpy()[pairs[:, 1]],
            "building_id": frame["building_id"].to_numpy()[pairs[:, 1]],
            "resource_id": cand["resource_id"].to_numpy()[pairs[:, 0]],
            "name": cand["name"].to_numpy()[pairs[:, 0]],
            "distance_m": np.round(dist, 1),
            "locked": False,
        }
    )
    gaps += _shortfall(role, frame, slots, pairs, what)
    gaps += _beyond_limit(role, filled)
    return (
        filled,
        (pd.concat(gaps, ignore_index=True) if gaps else pd.DataFrame(columns=GAP_COLUMNS)),
        done,
    )


def _usable(
    role: Role,
    cand: pd.DataFrame,
    done: pd.DataFrame,
    net: Network,
    policy: Policy,
    gaps: list[pd.DataFrame],
) -> tuple[pd.DataFrame, np.ndarray]:
    """Candidates a road reaches, and the capacity each has left after the locked rows;
    the others are reported in ``gaps``."""
    access = net.access([f"resources:{r}" for r in cand["resource_id"]])
    far = access > policy.max_access_m
    for r, a in zip(cand["resource_id"][far], access[far], strict=True):
        reason = (
            f"{r} is {a:.0f} m from the nearest road (limit {policy.max_access_m:.0f} m); not used"
        )
        gaps.append(_gap_rows(role, "unreachable", pd.DataFrame(index=[0]), reason, r))
    cand = cand[~far]
    used = done["resource_id"].value_counts()
    cap = _capacity(role, cand) - cand["resource_id"].map(used).fillna(0).to_numpy(int)
    for r in cand["resource_id"][cap < 0]:
        reason = f"{r} holds {int(used[r])} locked {role.name} assignments, more than its capacity"
        gaps.append(_gap_rows(role, "over_capacity", pd.DataFrame(index=[0]), reason, r))
    return cand, np.where(_capacity(role, cand) == 0, 0, np.maximum(cap, 0))


def _cost(
    sc: Scopes, cand: pd.DataFrame, net: Network, bnode: np.ndarray, baccess: np.ndarray
) -> np.ndarray:
    """Walk from each candidate to each scope: the household-weighted mean over the
    scope's buildings the candidate can reach (infinite where it reaches none). A grid
    with a few buildings on a piece of road cut off from the rest (real networks have
    such pieces) is still served from its main piece, at the distance of that piece."""
    d = (
        net.node_distances([f"resources:{r}" for r in cand["resource_id"]])[:, bnode]
        + baccess[None, :]
    )
    reach = np.isfinite(d)
    total = (sc.weights.T @ np.where(reach, d, 0.0).T).T
    share = (sc.weights.T @ reach.T.astype(float)).T  # of the scope's households reached
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = np.where(share > 1e-9, total / share, np.inf)
    return cost


def _with_distances(
    done: pd.DataFrame, role: Role, cand: pd.DataFrame, frame: pd.DataFrame, cost: np.ndarray
) -> pd.DataFrame:
    """The locked rows with today's walking distance."""
    if not len(done):
        return done
    ri = pd.Index(cand["resource_id"]).get_indexer(done["resource_id"])
    si = pd.Index(frame["id"]).get_indexer(done[role.key_column].astype(str))
    ok = (ri >= 0) & (si >= 0)
    done = done.copy()
    done.loc[ok, "distance_m"] = np.round(cost[ri[ok], si[ok]], 1)
    return done


def _matched(
    role: Role,
    frame: pd.DataFrame,
    cost: np.ndarray,
    slots: np.ndarray,
    cap: np.ndarray,
    cand: pd.DataFrame,
    exhausted: np.ndarray,
) -> np.ndarray:
    """(candidate, scope) pairs of least total walk, solved exactly per street or
    community when the role keeps candidates there."""
    group = role.within_columns
    cand_group = cand[group[1]].to_numpy(str) if group else np.zeros(len(cand), str)
    scope_group = frame[group[0]].to_numpy(str) if group else np.zeros(len(frame), str)
    pairs = []
    for g in np.unique(scope_group[slots > 0]):
        ri = np.flatnonzero((cand_group == g) & ~exhausted)
        si = np.flatnonzero((scope_group == g) & (slots > 0))
        cap_g = cap[ri]
        if role.rule == "balanced" and len(ri):
            fair = math.ceil(slots[si].sum() / len(ri))
            cap_g = np.where(cap_g == 0, fair, np.minimum(cap_g, fair))
        got = solve(cost[np.ix_(ri, si)], slots[si], cap_g)
        if len(got):
            pairs.append(np.column_stack([ri[got[:, 0]], si[got[:, 1]]]))
    return np.vstack(pairs) if pairs else np.empty((0, 2), int)


def _shortfall(
    role: Role, frame: pd.DataFrame, slots: np.ndarray, pairs: np.ndarray, what: str
) -> list[pd.DataFrame]:
    """Gaps of the scopes left with fewer people than the role asks."""
    got = (
        np.bincount(pairs[:, 1], minlength=len(frame)) if len(pairs) else np.zeros(len(frame), int)
    )
    short = slots - got
    if not (short > 0).any():
        return []
    where = role.candidates_from
    reasons = [
        f"{n} of {s} {role.title} ({what}) not filled: no free candidate {where}"
        + (" reachable by road" if role.rule != "resident" else "")
        for n, s in zip(short[short > 0], slots[short > 0], strict=True)
    ]
    return [_gap_rows(role, "unfilled", frame[short > 0], reasons)]


def _beyond_limit(role: Role, filled: pd.DataFrame) -> list[pd.DataFrame]:
    """Gaps of the assignments farther than the role's walking limit (still made)."""
    if not role.max_walk_m or not len(filled):
        return []
    beyond = filled[filled["distance_m"] > role.max_walk_m]
    if not len(beyond):
        return []
    reasons = [
        f"{r.resource_id} is {r.distance_m:.0f} m walk away (limit {role.max_walk_m:.0f} m)"
        for r in beyond.itertuples()
    ]
    return [_gap_rows(role, "beyond_limit", beyond, reasons, beyond["resource_id"].to_numpy())]


def _residents(
    role: Role, sc: Scopes, cand: pd.DataFrame, slots: np.ndarray, exhausted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pair each scope with people living in it, spread over its buildings: first one
    person from each building, then a second, and so on (in resource order within)."""
    home = pd.Index(sc.frame["id"]).get_indexer(cand[role.home_column].to_numpy(str))
    ok = np.flatnonzero((home >= 0) & ~exhausted)
    table = pd.DataFrame({"r": ok, "s": home[ok], "b": cand["at_building"].to_numpy(str)[ok]})
    table["round"] = table.groupby(["s", "b"]).cumcount()  # 0 for the first of each building
    table = table.sort_values(["s", "round", "r"], kind="stable")
    table["n"] = table.groupby("s").cumcount()
    table = table[table["n"] < slots[table["s"].to_numpy()]]
    pairs = table[["r", "s"]].to_numpy(int).reshape(-1, 2)
    return pairs, np.zeros(len(pairs))


def _capacity(role: Role, cand: pd.DataFrame) -> np.ndarray:
    if role.capacity is None:
        return cand["capacity"].fillna(1).to_numpy(int)
    return np.full(len(cand), role.capacity, int)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=ASSIGNMENT_COLUMNS)


def _locked(
    old: pd.DataFrame,
    policy: Policy,
    scopes: dict[str, Scopes],
    resources: pd.DataFrame,
    pins: Mapping[tuple[str, str], str],
    unpin: set[tuple[str, str]],
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Locked assignments kept from the last run, plus new pins."""
    gaps: list[pd.DataFrame] = []
    keep = old[old["locked"].astype(bool)] if len(old) else _empty()
    names = dict(zip(resources["resource_id"], resources["name"], strict=True))
    kinds = dict(zip(resources["resource_id"], resources["kind"], strict=True))
    rows = []
    for row in keep.to_dict("records"):
        role = policy.roles.get(row["role"])
        key = (row["role"], str(row[role.key_column]) if role else "")
        if role is None or key in unpin or key in pins:
            continue
        ids = set(scopes[role.scope].frame["id"])
        if key[1] not in ids or row["resource_id"] not in names:
            gone = "its scope" if key[1] not in ids else f"resource {row['resource_id']}"
            gaps.append(
                _gap_rows(
                    role,
                    "locked_dropped",
                    pd.DataFrame([row]),
                    f"locked {role.name} of {key[1]} dropped: {gone} no longer exists",
                    row["resource_id"],
                )
            )
            continue
        rows.append(row)
    for (role_name, scope_id), resource_id in pins.items():
        role = policy.roles.get(role_name)
        if role is None:
            raise PolicyError(
                f"unknown role {role_name!r}; the policy has roles {', '.join(policy.roles)}"
            )
        frame = scopes[role.scope].frame
        match = frame[frame["id"] == scope_id]
        if match.empty:
            raise InputError(
                f"no {role.scope} {scope_id!r} to pin {role_name} to; "
                "check the code with `gisgrid roster`"
            )
        if resource_id not in names:
            raise InputError(f"no resource {resource_id!r} in the resources layer")
        if kinds[resource_id] != role.kind:
            raise InputError(
                f"{resource_id} is a {kinds[resource_id]}, but {role_name} is filled by {role.kind}"
            )
        rows.append(
            {
                "role": role.name,
                "title": role.title,
                "scope": role.scope,
                **match.iloc[0][["grid_code", "community_code", "building_id"]].to_dict(),
                "resource_id": resource_id,
                "name": names[resource_id],
                "distance_m": np.nan,
                "locked": True,
            }
        )
    return pd.DataFrame(rows, columns=ASSIGNMENT_COLUMNS), gaps
