"""Service coverage against shortest paths computed directly, and suggested sites."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.ops import nearest_points
from typer.testing import CliRunner

from gisgrid.cli import app
from gisgrid.io.workspace import Workspace
from gisgrid.roster.coverage import service_coverage, suggest_sites
from gisgrid.roster.network import network_from_roads
from tests.test_network import CRS, lattice_distance, lattice_roads


@pytest.fixture(scope="module")
def town():
    """A 400 m lattice of roads, 120 houses beside them, two service sites."""
    rng = np.random.default_rng(7)
    roads = lattice_roads()
    houses = []
    for _ in range(120):
        x, y = rng.uniform(0, 400, 2)
        houses.append(shapely.box(x - 4, y - 4, x + 4, y + 4))
    buildings = gpd.GeoDataFrame(
        {
            "building_id": [f"b{i}" for i in range(120)],
            "households": rng.integers(1, 60, 120),
            "grid_code": [f"g{i % 4}" for i in range(120)],
            "community_code": "c1",
        },
        geometry=houses,
        crs=CRS,
    )
    sites = gpd.GeoDataFrame(
        {"resource_id": ["s1", "s2"], "name": ["站一", "站二"]},
        geometry=shapely.points([(52, 48), (330, 310)]),
        crs=CRS,
    )
    net = network_from_roads(
        roads,
        {
            "buildings": buildings.set_index("building_id").geometry,
            "resources": sites.set_index("resource_id").geometry,
        },
    )
    return roads, buildings, sites, net


def direct_walk(roads, a: shapely.Point, b: shapely.Point) -> float:
    """Access + lattice path + access: feet by shapely, the path on a hand-built graph."""
    lines = shapely.union_all(roads.geometry.values)
    fa, fb = nearest_points(lines, a)[0], nearest_points(lines, b)[0]

    def snap(v):
        return round(v, 6)

    path = lattice_distance((snap(fa.x), snap(fa.y)), (snap(fb.x), snap(fb.y)))
    return a.distance(fa) + path + b.distance(fb)


def test_coverage_matches_shortest_paths_computed_directly(town):
    roads, buildings, sites, net = town
    minutes = 3.0  # 225 m at 4.5 km/h
    cov = service_coverage(net, buildings, sites, minutes=minutes, access_m=50)
    centres = shapely.point_on_surface(buildings.geometry.values)
    direct = np.array([min(direct_walk(roads, s, c) for s in sites.geometry) for c in centres])
    expected = direct <= 225.0
    walk = cov.buildings["walk_m"].to_numpy()
    known = np.isfinite(walk)  # beyond the limit the search may stop
    assert known[expected].all()
    np.testing.assert_allclose(walk[known], direct[known], atol=1e-6)
    assert 0.2 < expected.mean() < 0.8  # the test means something
    np.testing.assert_array_equal(cov.buildings["covered"].to_numpy(), expected)
    h = buildings["households"].to_numpy()
    assert cov.households_share == pytest.approx(h[expected].sum() / h.sum())
    per_grid = pd.Series(h * expected).groupby(buildings["grid_code"].to_numpy()).sum()
    got = cov.grids.set_index("code")["covered_households"]
    assert got.to_dict() == per_grid.to_dict()
    # the drawn areas agree with the rule: households inside a polygon vs. covered by path
    inside = shapely.contains(shapely.union_all(cov.areas.geometry.values), centres)
    assert inside[expected].all()  # the drawn areas never miss a covered household
    agree = (inside == expected).mean()  # they may take in a few near the limit (92.5 % here)
    assert agree >= 0.9, f"areas and paths agree on {100 * agree:.1f} % of buildings"
    assert (cov.areas["households"] > 0).all()


def test_suggested_sites_really_add_what_they_claim(town):
    roads, buildings, sites, net = town
    cov = service_coverage(net, buildings, sites, minutes=3.0, access_m=20, areas=False)
    greedy = suggest_sites(net, cov, 2, exact=False)
    exact = suggest_sites(net, cov, 2, exact=True)
    assert exact.added >= greedy.added > 0
    assert greedy.bound >= exact.added  # the stated bound holds
    # place real sites at the exact suggestion and measure again
    new = gpd.GeoDataFrame(
        {"resource_id": ["n1", "n2"], "name": ["新一", "新二"]},
        geometry=exact.sites.geometry.values,
        crs=CRS,
    )
    all_sites = pd.concat([sites, new], ignore_index=True)
    net2 = network_from_roads(
        roads,
        {
            "buildings": buildings.set_index("building_id").geometry,
            "resources": all_sites.set_index("resource_id").geometry,
        },
    )
    after = service_coverage(net2, buildings, all_sites, minutes=3.0, areas=False)
    total = buildings["households"].sum()
    assert after.households_share == pytest.approx(exact.sites["covered"].iloc[-1])
    assert after.households_share * total == pytest.approx(
        cov.households_share * total + exact.added
    )


def test_coverage_and_suggestions_on_the_demo(demo_full):
    ws = Workspace(demo_full.workspace)
    assert {"service_areas", "uncovered", "coverage"} <= set(ws.layers())
    table = ws.read("coverage")
    grids = table[table["scope"] == "grid"]
    assert set(grids["code"]) == set(ws.read("buildings")["grid_code"].dropna()) - {""}
    assert grids["share"].between(0, 1).all()
    uncovered = ws.read("uncovered")
    comm = table[table["scope"] == "community"]
    assert uncovered["households"].sum() == (comm["households"] - comm["covered_households"]).sum()
    result = CliRunner().invoke(app, ["coverage", str(ws.path), "--suggest", "3"])
    assert result.exit_code == 0, result.output
    assert "3 suggested sites (exact)" in result.output
    assert "% of households" in result.output


def test_bad_minutes_and_suggest_are_refused(town):
    _roads, buildings, sites, net = town
    with pytest.raises(ValueError, match="minutes must be positive"):
        service_coverage(net, buildings, sites, minutes=0)
    cov = service_coverage(net, buildings, sites, minutes=3.0, areas=False)
    with pytest.raises(ValueError, match=r"^suggest must be at least 1"):
        suggest_sites(net, cov, 0)
