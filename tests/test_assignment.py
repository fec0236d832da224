"""Role assignment: optimal, within capacity, locks kept, bad policies refused."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from gisgrid._errors import InputError
from gisgrid.cli import app
from gisgrid.io.workspace import Workspace
from gisgrid.roster.assignment import assign
from gisgrid.roster.matching import solve
from gisgrid.roster.network import network_of
from gisgrid.roster.policy import PolicyError, load_policy


def brute_force(cost: np.ndarray, slots: np.ndarray, capacity: np.ndarray) -> float:
    """Least total cost filling as many slots as possible, by trying every choice."""
    needs = np.repeat(np.arange(len(slots)), slots)
    best = (-1, np.inf)
    for choice in itertools.product(range(-1, cost.shape[0]), repeat=len(needs)):
        used = np.bincount([c for c in choice if c >= 0], minlength=cost.shape[0])
        if ((capacity > 0) & (used > capacity)).any():
            continue
        total = sum(cost[c, s] for c, s in zip(choice, needs, strict=True) if c >= 0)
        filled = sum(c >= 0 for c in choice)
        if (filled, -total) > (best[0], -best[1]):
            best = (filled, total)
    return best[1]


@pytest.mark.parametrize("seed", range(8))
def test_solve_is_exact_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    cost = rng.uniform(1, 100, (3, 3)).round()
    slots = rng.integers(1, 3, 3)
    capacity = rng.integers(0, 3, 3)
    pairs = solve(cost, slots, capacity)
    used = np.bincount(pairs[:, 0], minlength=3)
    assert ((capacity == 0) | (used <= capacity)).all()
    assert (np.bincount(pairs[:, 1], minlength=3) <= slots).all()
    assert cost[pairs[:, 0], pairs[:, 1]].sum() == pytest.approx(brute_force(cost, slots, capacity))


def test_grid_workers_are_optimal_against_an_independent_solver(small):
    """Distances by networkx's Dijkstra, optimum by networkx's min-cost flow."""
    ws = Workspace(small)
    net = network_of(ws)
    a = ws.read("assignments")
    ours = a[a["role"] == "grid_worker"]
    grids = ws.read("grids")
    b = ws.read("buildings")
    workers = ws.read("resources")
    workers = workers[workers["kind"] == "grid_worker"]
    nodes = net.points["node"]
    access = net.points["access_m"]
    cost = {}
    for w in workers["resource_id"]:
        key = f"resources:{w}"
        dist = nx.single_source_dijkstra_path_length(net.graph, int(nodes[key]), weight="length")
        for g in grids["grid_code"]:
            inside = b[b["grid_code"] == g]
            if inside.empty:  # a grid of bare land: the building nearest to it stands in
                where = grids.set_index("grid_code").geometry[g].point_on_surface()
                inside = b.iloc[[int(b.distance(where).idxmin())]]
            h = inside["households"].to_numpy(float)
            weights = h / h.sum() if h.sum() else np.full(len(h), 1 / len(h))
            walk = [
                dist[int(nodes[f"buildings:{i}"])] + access[f"buildings:{i}"]
                for i in inside["building_id"]
            ]
            cost[w, g] = access[key] + float(np.dot(weights, walk))
    flow = nx.DiGraph()
    flow.add_node("s", demand=-len(grids))
    flow.add_node("t", demand=len(grids))
    for w in workers["resource_id"]:
        flow.add_edge("s", w, capacity=1, weight=0)
    for (w, g), c in cost.items():
        flow.add_edge(w, g, capacity=1, weight=round(c * 100))
    for g in grids["grid_code"]:
        flow.add_edge(g, "t", capacity=1, weight=0)
    optimum = nx.min_cost_flow_cost(flow) / 100
    assert len(ours) == len(grids) and ours["grid_code"].is_unique
    assert ours["distance_m"].sum() == pytest.approx(optimum, rel=0.01)
    # and each row's distance is the one networkx finds
    for row in ours.itertuples():
        assert row.distance_m == pytest.approx(cost[row.resource_id, row.grid_code], abs=0.1)


def test_demo_district_fills_the_model(demo_full):
    ws = Workspace(demo_full.workspace)
    a = ws.read("assignments")
    grids = ws.read("grids")
    comms = ws.read("communities")
    workers = a[a["role"] == "grid_worker"]
    assert sorted(workers["grid_code"]) == sorted(grids["grid_code"])  # one per grid
    assert workers["resource_id"].is_unique  # nobody works two grids
    police = a[a["role"] == "police"]
    assert sorted(police["community_code"]) == sorted(comms["code"])  # 一社区一辅警
    branches = a[a["role"] == "party_branch"]
    assert branches["grid_code"].is_unique and len(branches) == len(grids)
    assert (
        branches["resource_id"].value_counts().max() <= load_policy().roles["party_branch"].capacity
    )
    gaps = ws.read("gaps")
    assert (gaps["reason"].str.len() > 10).all()
    assert set(gaps["gap"]) <= {"unfilled", "beyond_limit", "unreachable", "over_capacity"}


def test_locked_assignments_are_kept_and_released(small_copy):
    ws = small_copy
    a = ws.read("assignments")
    workers = a[a["role"] == "grid_worker"].sort_values("grid_code")
    grid, theirs = workers["grid_code"].iloc[0], workers["resource_id"].iloc[0]
    other = workers["resource_id"].iloc[1]  # someone who serves another grid now
    assign(ws, pins={("grid_worker", grid): other})
    again = assign(ws)  # a later run keeps the pin
    rows = again.assignments[again.assignments["role"] == "grid_worker"]
    pinned = rows[rows["grid_code"] == grid].iloc[0]
    assert pinned["resource_id"] == other and pinned["locked"]
    assert pinned["distance_m"] > 0
    assert (rows["resource_id"] == other).sum() == 1  # not given a second grid
    assert len(rows) == len(workers)
    released = assign(ws, unpin=[("grid_worker", grid)])
    rows = released.assignments[released.assignments["role"] == "grid_worker"]
    assert not rows["locked"].any()
    assert rows.set_index("grid_code").loc[grid, "resource_id"] == theirs  # the optimum again


BAD_POLICIES = {
    "not toml": ("[roles.x\nkind=", "not valid TOML"),
    "no roles": ("[network]\nwalk_kmh = 4.5\n", "defines no roles"),
    "unknown key": (
        '[roles.x]\nscope="grid"\nkind="cadre"\nrule="nearest"\ncolour=1\n',
        "unknown key",
    ),
    "bad scope": ('[roles.x]\nscope="town"\nkind="cadre"\nrule="nearest"\n', "scope is 'town'"),
    "bad rule": ('[roles.x]\nscope="grid"\nkind="cadre"\nrule="random"\n', "rule is 'random'"),
    "no kind": ('[roles.x]\nscope="grid"\nrule="nearest"\n', "kind is missing"),
    "bad capacity": (
        '[roles.x]\nscope="grid"\nkind="cadre"\nrule="nearest"\ncapacity=-1\n',
        "capacity",
    ),
    "bad speed": (
        '[network]\nwalk_kmh = 0\n[roles.x]\nscope="grid"\nkind="cadre"\nrule="nearest"\n',
        "walk_kmh",
    ),
    "bad section": (
        '[roster]\n[roles.x]\nscope="grid"\nkind="cadre"\nrule="nearest"\n',
        "unknown section",
    ),
}


@pytest.mark.parametrize("name", BAD_POLICIES)
def test_bad_policy_files_are_refused_with_the_reason(tmp_path, name):
    text, message = BAD_POLICIES[name]
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=message):
        load_policy(path)


def test_unknown_kinds_roles_and_resources_are_refused(small_copy, tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(
        '[roles.x]\nscope="grid"\nkind="gird_worker"\nrule="nearest"\n', encoding="utf-8"
    )
    with pytest.raises(PolicyError, match="unknown kind 'gird_worker'"):
        assign(small_copy, policy=load_policy(path))
    with pytest.raises(PolicyError, match="unknown role 'wizard'"):
        assign(small_copy, pins={("wizard", "x"): "S00001"})
    grid = small_copy.read("grids")["grid_code"].iloc[0]
    with pytest.raises(InputError, match="no resource 'S99999'"):
        assign(small_copy, pins={("grid_worker", grid): "S99999"})
    police = small_copy.read("resources").query("kind == 'police'")["resource_id"].iloc[0]
    with pytest.raises(InputError, match="is a police, but grid_worker is filled by grid_worker"):
        assign(small_copy, pins={("grid_worker", grid): police})
    result = CliRunner().invoke(app, ["assign", small_copy.location, "--pin", "grid_worker=S1"])
    assert result.exit_code == 2 and "ROLE:SCOPE=RESOURCE" in result.output


def test_resources_far_from_roads_and_missing_kinds_become_gaps(small_copy):
    res = small_copy.read("resources")
    far = res.index[res["kind"] == "grid_worker"][0]
    res.loc[far, "geometry"] = shapely.Point(res.geometry[far].x + 5000, res.geometry[far].y)
    res = res[res["kind"] != "cadre"]  # nobody left to be grid chief
    small_copy.write({"resources": res})
    result = assign(small_copy)
    gaps = result.gaps
    far_gap = gaps[(gaps["role"] == "grid_worker") & (gaps["gap"] == "unreachable")]
    assert far_gap["resource_id"].tolist() == [res.loc[far, "resource_id"]]
    assert "m from the nearest road" in far_gap["reason"].iloc[0]
    chiefs = gaps[gaps["role"] == "grid_chief"]
    assert len(chiefs) == len(small_copy.read("grids"))
    assert chiefs["reason"].str.contains("no resources of kind cadre").all()
    a = result.assignments
    assert res.loc[far, "resource_id"] not in set(a["resource_id"])


def test_cli_assign_prints_the_roles(small_copy):
    result = CliRunner().invoke(app, ["assign", small_copy.location])
    assert result.exit_code == 0, result.output
    assert "网格员 grid_worker" in result.output
    shown = CliRunner().invoke(app, ["assign", small_copy.location, "--show-policy"])
    assert "[roles.grid_worker]" in shown.output
    assert pd.api.types.is_bool_dtype(small_copy.read("assignments")["locked"])


def test_resident_roles_spread_over_the_buildings_of_a_grid(small_copy, tmp_path):
    """Three party members of one building come first in the layer; the grid takes one of
    them, then people from its other buildings, before a second from the same building."""
    ws = small_copy
    b = ws.read("buildings")
    grid = b.groupby("grid_code")["households"].sum().idxmax()
    home = b[b["grid_code"] == grid].iloc[0]
    res = ws.read("resources")
    same = res[res["kind"] == "party_member"].iloc[:3].copy()
    same["resource_id"] = ["P1", "P2", "P3"]
    same["geometry"] = home.geometry.representative_point()
    ws.write({"resources": pd.concat([same, res], ignore_index=True)})
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[roles.party_contact]\nscope = "grid"\nkind = "party_member"\n'
        'rule = "resident"\ncount = 3\n',
        encoding="utf-8",
    )
    a = assign(ws, policy=load_policy(policy)).assignments
    chosen = a[a["grid_code"] == grid]["resource_id"]
    assert len(chosen) == 3
    assert chosen.isin(["P1", "P2", "P3"]).sum() == 1  # not all three from one building
