"""The road network: distances checked against networkx on a graph built independently."""

from __future__ import annotations

import logging

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely

from gisgrid._errors import EmptyLayerError
from gisgrid.io.workspace import Workspace
from gisgrid.roster.network import network_from_roads, network_of

CRS = 4547


def lattice_roads(n: int = 5, step: float = 100.0) -> gpd.GeoDataFrame:
    """n horizontal and n vertical roads, ``step`` apart, crossing without shared vertices."""
    span = (n - 1) * step
    lines = [shapely.LineString([(0, i * step), (span, i * step)]) for i in range(n)]
    lines += [shapely.LineString([(i * step, 0), (i * step, span)]) for i in range(n)]
    return gpd.GeoDataFrame(
        {"road_id": [f"r{i}" for i in range(len(lines))], "road_class": "local"},
        geometry=lines,
        crs=CRS,
    )


def lattice_distance(a: tuple[float, float], b: tuple[float, float], step: float = 100.0) -> float:
    """Walking distance on the lattice between two points lying on roads, by hand:
    build the lattice graph with both points inserted and ask networkx."""
    g = nx.Graph()
    n = 5
    for i in range(n):
        for j in range(n):
            if i + 1 < n:
                g.add_edge((i * step, j * step), ((i + 1) * step, j * step), w=step)
            if j + 1 < n:
                g.add_edge((i * step, j * step), (i * step, (j + 1) * step), w=step)
    for p in (a, b):
        if p in g:
            continue
        for u, v in list(g.edges):  # split the edge the point lies on
            inside = min(u[0], v[0]) <= p[0] <= max(u[0], v[0])
            inside &= min(u[1], v[1]) <= p[1] <= max(u[1], v[1])
            if inside and (u[0] == v[0] == p[0] or u[1] == v[1] == p[1]):
                g.remove_edge(u, v)
                g.add_edge(u, p, w=float(np.hypot(p[0] - u[0], p[1] - u[1])))
                g.add_edge(p, v, w=float(np.hypot(p[0] - v[0], p[1] - v[1])))
                break
    return nx.shortest_path_length(g, a, b, weight="w")


def test_distances_match_an_independent_graph():
    rng = np.random.default_rng(1)
    feet, points = [], []
    for _ in range(25):  # a point beside a random road, at a known offset
        if rng.random() < 0.5:
            x, y = 100 * rng.integers(0, 4) + rng.integers(10, 91), 100.0 * rng.integers(0, 5)
            feet.append((float(x), y))
            points.append((float(x), y + 7.0))
        else:
            x, y = 100.0 * rng.integers(0, 5), 100 * rng.integers(0, 4) + rng.integers(10, 91)
            feet.append((x, float(y)))
            points.append((x + 7.0, float(y)))
    homes = gpd.GeoSeries(shapely.points(points), index=[f"h{i}" for i in range(25)])
    net = network_from_roads(lattice_roads(), {"buildings": homes})
    keys = [f"buildings:{i}" for i in homes.index]
    d = net.point_distances(keys, keys)
    for i in range(25):
        for j in range(25):
            if i == j:
                continue
            expected = lattice_distance(feet[i], feet[j]) + 14.0
            assert d[i, j] == pytest.approx(expected, abs=1e-6), (feet[i], feet[j])


def test_roads_are_noded_where_they_cross():
    net = network_from_roads(lattice_roads(), {})
    assert net.graph.number_of_nodes() == 25  # every crossing is a junction
    assert net.graph.number_of_edges() == 40
    assert sum(d["length"] for *_, d in net.graph.edges(data=True)) == pytest.approx(4000)


def test_disconnected_networks_give_no_path_and_a_warning(caplog):
    roads = gpd.GeoDataFrame(
        {"road_id": ["a", "b"], "road_class": ["local", "path"]},
        geometry=shapely.linestrings([[(0, 0), (100, 0)], [(500, 0), (600, 0)]]),
        crs=CRS,
    )
    homes = gpd.GeoSeries(shapely.points([(50, 10), (550, 10)]), index=["x", "y"])
    with caplog.at_level(logging.WARNING):
        net = network_from_roads(roads, {"buildings": homes})
    assert "2 disconnected parts" in caplog.text
    assert np.isinf(net.point_distances(["buildings:x"], ["buildings:y"])[0, 0])
    assert net.graph.edges[*next(iter(net.graph.edges))]["drive_s"] > 0


def test_an_empty_road_layer_is_a_clear_error():
    empty = gpd.GeoDataFrame({"road_id": [], "road_class": []}, geometry=[], crs=CRS)
    with pytest.raises(EmptyLayerError, match=r"roads layer is empty.*import a roads layer"):
        network_from_roads(empty, {})


def test_the_network_is_kept_in_the_workspace_and_rebuilt_when_roads_change(tmp_path):
    ws = Workspace(tmp_path / "ws.gpkg")
    homes = gpd.GeoDataFrame(
        {"building_id": ["x", "y"]},
        geometry=[shapely.box(40, 10, 60, 30), shapely.box(330, 210, 350, 230)],
        crs=CRS,
    )
    ws.write({"roads": lattice_roads(), "buildings": homes}, meta={"crs": "EPSG:4547"})
    first = network_of(ws)
    assert {"network_edges", "network_nodes"} <= set(ws.layers())
    stamp = ws.path.stat().st_mtime_ns
    again = network_of(ws)
    assert ws.path.stat().st_mtime_ns == stamp  # read back, not rebuilt
    keys = ["buildings:x", "buildings:y"]
    np.testing.assert_allclose(first.point_distances(keys, keys), again.point_distances(keys, keys))
    assert again.point_distances(keys[:1], keys[1:])[0, 0] == pytest.approx(20 + 490 + 20)
    shorter = lattice_roads()
    shorter.loc[len(shorter)] = ["diag", "local", shapely.LineString([(50, 0), (340, 200)])]
    ws.write({"roads": shorter})
    rebuilt = network_of(ws)
    assert rebuilt.point_distances(keys[:1], keys[1:])[0, 0] < 400  # the diagonal cuts it short
