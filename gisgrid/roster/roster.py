"""Each grid's roster: who and what serves it, from the ``assignments`` table.

A roster names the grid's community and street, then every role of the policy:
grid roles by grid, community roles by the grid's community, building roles
counted over the grid's buildings. Places and organisations come with their
published phone and the walking minutes to the grid's households.

Public rosters (``private=False``) show only the roles the policy marks
``public`` and never a personal phone; staff rosters show every role, with
names of building chiefs and party-member contacts.
"""

from __future__ import annotations

import pandas as pd

from gisgrid._errors import InputError
from gisgrid.delineate.publication import published_grids
from gisgrid.io.workspace import Workspace
from gisgrid.roster.policy import Policy, load_policy

__all__ = ["grid_table", "roster", "rosters"]

_WALK_M_PER_MIN = 75.0


def grid_table(
    grids: pd.DataFrame, communities: pd.DataFrame, streets: pd.DataFrame
) -> pd.DataFrame:
    """Each grid with its community and street codes and names."""
    out = pd.DataFrame(
        {
            "grid_code": grids["grid_code"].astype(str),
            "grid_name": grids["name"].astype(str),
            "grid_type": grids["grid_type"].astype(str),
            "households": grids["households"].fillna(0).astype(int),
            "community_code": grids["community_code"].astype(str),
        }
    )
    out["street_code"] = out["community_code"].str[:9] + "000"
    names = dict(zip(communities["code"].astype(str), communities["name"], strict=True))
    out["community"] = out["community_code"].map(names).fillna("")
    names = dict(zip(streets["code"].astype(str), streets["name"], strict=True))
    out["street"] = out["street_code"].map(names).fillna("")
    return out


def rosters(
    ws: Workspace,
    *,
    policy: Policy | None = None,
    private: bool = False,
    tables: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Every grid's roster, one row per grid.

    Parameters
    ----------
    ws
        A workspace where ``gisgrid assign`` has run.
    policy
        The policy the roles come from (titles, which are public).
    private
        Staff view: every role, and names behind building-level roles.
    tables
        Layers already read (``grids``, ``communities``, ``streets``,
        ``assignments``, ``resources``), to skip reading them again.

    Returns
    -------
    pandas.DataFrame
        ``grid_code``, ``grid_name``, ``grid_type``, ``households``,
        ``community_code``, ``community``, ``street_code``, ``street``, then for
        each role ``<role>`` (names) and, for places, ``<role>_phone`` and
        ``<role>_min``; building roles give ``<role>_count`` (and names in the
        staff view).
    """
    policy = policy or load_policy()
    t = dict(tables or {})
    for name in ("grids", "communities", "streets", "assignments", "resources"):
        if name not in t:
            if name not in ws:
                fix = "gisgrid assign" if name == "assignments" else "gisgrid delineate"
                raise InputError(f"{ws.location} has no {name}; run `{fix}` first")
            t[name] = published_grids(ws) if name == "grids" else ws.read(name)
    out = grid_table(t["grids"], t["communities"], t["streets"])
    phones = dict(
        zip(t["resources"]["resource_id"], t["resources"]["phone"].fillna(""), strict=True)
    )
    a = t["assignments"].copy()
    a["phone"] = a["resource_id"].map(phones).fillna("")
    for role in policy.roles.values():
        if not (private or role.public):
            continue
        rows = a[a["role"] == role.name]
        if role.scope == "building":
            per_grid = rows.groupby("grid_code")
            out[f"{role.name}_count"] = out["grid_code"].map(per_grid.size()).fillna(0).astype(int)
            if private:
                out[role.name] = out["grid_code"].map(per_grid["name"].agg("、".join)).fillna("")
            continue
        key = "grid_code" if role.scope == "grid" else "community_code"
        by = rows.groupby(key)
        out[role.name] = out[key].map(by["name"].agg("、".join)).fillna("")
        if (rows["phone"] != "").any():
            out[f"{role.name}_phone"] = out[key].map(by["phone"].agg("、".join)).fillna("")
            out[f"{role.name}_min"] = (
                out[key].map(by["distance_m"].mean()) / _WALK_M_PER_MIN
            ).round(1)
    return out


def roster(
    ws: Workspace, grid_code: str, *, policy: Policy | None = None, private: bool = False
) -> dict:
    """One grid's roster as a dict (see :func:`rosters`).

    Raises
    ------
    InputError
        When no grid has that code.
    """
    table = rosters(ws, policy=policy, private=private)
    row = table[table["grid_code"] == str(grid_code)]
    if row.empty:
        raise InputError(f"no grid {grid_code!r} in {ws.location}; grid codes have 15 digits")
    return row.iloc[0].to_dict()
