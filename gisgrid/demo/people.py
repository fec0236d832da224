"""Addresses, census points and resources of the demo district."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisgrid.demo import names
from gisgrid.io.schema import DEDICATED_KINDS

CITY = "株洲市石峰区"


def addresses(
    buildings: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, street_names: dict[str, str]
) -> pd.Series:
    """GB/T 35639 addresses: 行政区划 + 街路巷 + 门牌号 + 小区 + 楼栋.

    A compound takes the house number of its gate on the nearest named road and
    numbers its buildings (栋) west→east, north→south; an urban-village house
    takes a house number of its own.

    Parameters
    ----------
    buildings
        With ``community_code``, ``cluster`` (the compound or village a building was
        laid out in), ``compound_name``, ``block_type``.
    roads
        Roads with ``name``.
    street_names
        Street (街道) name by the first 9 digits of a community code.

    Returns
    -------
    pandas.Series
        Aligned on ``buildings``.
    """
    named = roads[roads["name"] != ""]
    tree = shapely.STRtree(named.geometry.values)
    centre = shapely.centroid(buildings.geometry.values)
    xy = shapely.get_coordinates(centre)
    gate = buildings.assign(x=xy[:, 0], y=xy[:, 1]).groupby("cluster")[["x", "y"]].mean()
    village = (buildings["block_type"] == "village").to_numpy()
    # the point that takes a house number: the compound gate, or the village house itself
    anchor = np.where(village, centre, shapely.points(gate.loc[buildings["cluster"]].to_numpy()))
    a_idx, r_idx = tree.query_nearest(anchor, all_matches=False)
    road_of = np.empty(len(buildings), dtype=np.int64)
    road_of[a_idx] = r_idx
    lines = named.geometry.values[road_of]
    along = shapely.line_locate_point(lines, anchor)
    here = shapely.get_coordinates(shapely.line_interpolate_point(lines, along))
    ahead = shapely.get_coordinates(shapely.line_interpolate_point(lines, along + 1.0))
    a = shapely.get_coordinates(anchor)
    side = np.sign(
        (ahead[:, 0] - here[:, 0]) * (a[:, 1] - here[:, 1])
        - (ahead[:, 1] - here[:, 1]) * (a[:, 0] - here[:, 0])
    )
    number = 2 * (along // 12).astype(int) + np.where(side > 0, 1, 2)
    road_name = named["name"].to_numpy()[road_of]

    row_band = np.round(-xy[:, 1] / 30.0)
    order = pd.DataFrame(
        {"c": buildings["cluster"].to_numpy(), "band": row_band, "x": xy[:, 0]}
    ).sort_values(["c", "band", "x"])
    seq = pd.Series(order.groupby("c").cumcount().to_numpy() + 1, index=order.index).sort_index()
    prefix = CITY + buildings["community_code"].str[:9].map(street_names).fillna("")
    base = prefix + road_name + pd.Series(number, index=buildings.index).astype(str) + "号"
    compound = buildings["compound_name"] + seq.astype(str) + "栋"
    return base.where(village, base + compound)


def census_points(buildings: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """One census point per entrance (单元) of every home, with a little real-world noise.

    About 0.4 % of points fall a few metres outside their building (they snap
    back), and 0.05 % land far away (they are rejected on import, as real
    strays would be).

    Parameters
    ----------
    buildings
        With ``entrances``, ``planned_households`` and ``address``.
    rng
        Random generator.

    Returns
    -------
    geopandas.GeoDataFrame
        ``point_id``, ``households``, ``population``, ``address``.
    """
    homes = buildings[buildings["planned_households"] > 0]
    ring = shapely.get_coordinates(shapely.get_exterior_ring(homes.geometry.values))
    corners = ring.reshape(len(homes), 5, 2)[:, :4]
    e1 = corners[:, 1] - corners[:, 0]
    e2 = corners[:, 2] - corners[:, 1]
    long_first = np.hypot(*e1.T) >= np.hypot(*e2.T)
    start = np.where(
        long_first[:, None],
        (corners[:, 0] + corners[:, 3]) / 2,
        (corners[:, 0] + corners[:, 1]) / 2,
    )
    axis = np.where(long_first[:, None], e1, e2)
    n_units = homes["entrances"].to_numpy()
    which = np.repeat(np.arange(len(homes)), n_units)
    j = np.concatenate([np.arange(n) for n in n_units])
    frac = 0.1 + 0.8 * (j + 0.5) / n_units[which]
    xy = start[which] + frac[:, None] * axis[which]
    hh_b = homes["planned_households"].to_numpy()[which]
    per = hh_b // n_units[which] + (j < hh_b % n_units[which])
    factor = np.clip(rng.normal(3.0, 0.25, len(per)), 2.0, 4.5)
    population = np.round(per * factor).astype(int)

    stray = rng.random(len(xy))
    near = stray < 0.004
    far = stray > 1 - 0.0005
    normal = np.column_stack([-axis[which][:, 1], axis[which][:, 0]])
    normal /= np.hypot(*normal.T)[:, None]
    xy[near] += normal[near] * rng.uniform(12.0, 25.0, near.sum())[:, None]
    xy[far] += rng.uniform(-1, 1, (far.sum(), 2)) * 400.0 + 300.0
    address = homes["address"].to_numpy()[which] + np.char.add((j + 1).astype(str), "单元").astype(
        object
    )
    return gpd.GeoDataFrame(
        {
            "point_id": [f"P{i:07d}" for i in range(1, len(xy) + 1)],
            "households": per.astype(int),
            "population": population,
            "address": address,
        },
        geometry=shapely.points(xy),
        crs=buildings.crs,
    )


def _mobile(rng: np.random.Generator) -> str:
    """A made-up mainland mobile number (private: never published)."""
    return f"1{rng.choice([3, 5, 7, 8, 9])}{rng.integers(0, 10**9):09d}"


def _resource(
    kind: str,
    level: str,
    name: str,
    community_code: str,
    geometry: shapely.Point,
    *,
    capacity: int = 1,
    phone: str = "",
    personal_phone: str = "",
) -> dict[str, object]:
    """One row of the resources layer."""
    return dict(
        kind=kind,
        level=level,
        name=name,
        community_code=community_code,
        capacity=capacity,
        phone=phone,
        geometry=geometry,
        personal_phone=personal_phone,
    )


def resources(
    buildings: gpd.GeoDataFrame,
    streets: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    seeds: dict[str, np.ndarray],
    street_centres: dict[str, np.ndarray],
    *,
    rng: np.random.Generator,
) -> gpd.GeoDataFrame:
    """Grid-worker candidates, party organisations, police and service sites.

    - ``grid_worker``: 1.2 candidates per 330 households (a grid's usual size),
      living in homes drawn by household count; a personal phone (private) and no published phone;
    - ``party_org``: a 党工委 per street, a 党委 per community;
    - ``police``: a 派出所 per street, a 警务室 per community;
    - ``service_site``: a 党群服务中心 per community and a 党群服务站 for every
      further 3,000 households, with published service phones.

    Returns
    -------
    geopandas.GeoDataFrame
        ``resource_id``, ``kind``, ``level``, ``name``, ``community_code``,
        ``capacity``, ``phone``, ``personal_phone``.
    """
    homes = buildings[buildings["planned_households"] > 0]
    rows = _street_offices(streets, street_centres, rng)
    rows += _community_sites(buildings, communities, seeds, rng)
    n_workers = int(np.ceil(homes["planned_households"].sum() / 330 * 1.2))
    weights = homes["planned_households"].to_numpy(float)
    picks = rng.choice(len(homes), size=n_workers, replace=True, p=weights / weights.sum())
    home_pts = shapely.point_on_surface(homes.geometry.values[picks])
    for b, p in zip(picks, home_pts, strict=True):
        name = names.person(rng)
        code = homes["community_code"].iloc[b]
        rows.append(_resource("grid_worker", "", name, code, p, personal_phone=_mobile(rng)))
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=buildings.crs)
    out.insert(0, "resource_id", [f"S{i:05d}" for i in range(1, len(out) + 1)])
    return out


def people(
    buildings: gpd.GeoDataFrame,
    streets: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    stations: gpd.GeoDataFrame,
    *,
    rng: np.random.Generator,
) -> gpd.GeoDataFrame:
    """The people and branches the roles of the default policy draw on.

    - ``cadre``: community cadres (社区两委), 5 to 7 per community or one per
      1,000 households, living in it;
    - ``grid_worker`` at level ``unit``: a part-time grid worker at each school,
      hospital, enterprise and market (for its dedicated grid);
    - ``party_org`` at level ``branch``: a grid party branch (网格党支部) per
      two expected grids of a community;
    - ``police`` at level ``auxiliary``: auxiliary officers (辅警) at each street's
      police station, one per community and one more per 6,000 households
      (enough for communities a re-division adds);
    - ``volunteer``: a would-be building chief in 95 % of residential buildings;
    - ``party_member``: one party member's household per 25 households, in homes.

    Names are made up; people's phones are private (``personal_phone``).
    """
    rows: list[dict[str, object]] = []
    homes = buildings[buildings["planned_households"] > 0]
    spots = shapely.point_on_surface(homes.geometry.values)
    weights = homes["planned_households"].to_numpy(float)
    comm = homes["community_code"].to_numpy(str)

    def person(kind: str, level: str, name: str, code: str, point: shapely.Point) -> None:
        rows.append(_resource(kind, level, name, code, point, personal_phone=_mobile(rng)))

    for c in communities.itertuples():
        short = c.name.replace("社区居委会", "社区")
        idx = np.flatnonzero(comm == c.code)
        if not len(idx):
            continue
        w = weights[idx] / weights[idx].sum()
        n_cadres = max(int(rng.integers(5, 8)), round(weights[idx].sum() / 1000))
        for b in rng.choice(idx, size=n_cadres, p=w):
            person("cadre", "", names.person(rng), c.code, spots[b])
        n_branches = max(1, int(np.ceil(weights[idx].sum() / 330 / 2)))
        for k, b in enumerate(rng.choice(idx, size=n_branches, p=w), 1):
            p = spots[b]
            branch = shapely.Point(p.x - 15, p.y + 10)
            rows.append(
                _resource(
                    "party_org", "branch", f"{short}第{k}网格党支部", c.code, branch, capacity=3
                )
            )
    units = buildings[buildings["kind"].isin(DEDICATED_KINDS)].drop_duplicates("compound_id")
    for u in units.itertuples():
        person(
            "grid_worker",
            "unit",
            names.person(rng),
            u.community_code,
            u.geometry.point_on_surface(),
        )
    per_street = homes.groupby(homes["community_code"].str[:9])["planned_households"].sum()
    n_comm = communities.groupby(communities["code"].str[:9]).size()
    for s in streets.itertuples():
        code = s.code[:9]
        station = stations[stations["name"].str.startswith(s.name[:-2])]
        if station.empty:
            continue
        where = station.geometry.iloc[0]
        if not s.geometry.contains(where):  # officers are counted in their own street
            where = s.geometry.representative_point()
        officers = int(n_comm.get(code, 0)) + int(np.ceil(per_street.get(code, 0) / 6000)) + 1
        for _ in range(officers):
            person("police", "auxiliary", names.person(rng), "", where)
    for b in np.flatnonzero(rng.random(len(homes)) < 0.95):
        person("volunteer", "", names.person(rng), comm[b], spots[b])
    n_members = int(weights.sum() / 25)
    for b in rng.choice(len(homes), size=n_members, p=weights / weights.sum()):
        person("party_member", "", names.person(rng), comm[b], spots[b])
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=buildings.crs)


def _service_phone(rng: np.random.Generator) -> str:
    return f"0733-2{rng.integers(0, 10**6):06d}"


def _street_offices(
    streets: gpd.GeoDataFrame, street_centres: dict[str, np.ndarray], rng: np.random.Generator
) -> list[dict[str, object]]:
    """A 党工委 and a 派出所 per street, at its centre."""
    rows: list[dict[str, object]] = []
    for s in streets.itertuples():
        xy = street_centres.get(s.code, np.array(s.geometry.representative_point().coords[0]))
        pt = (
            shapely.Point(xy)
            if s.geometry.contains(shapely.Point(xy))
            else s.geometry.representative_point()
        )
        rows.append(
            _resource(
                "party_org",
                "street",
                f"{s.name}党工委",
                "",
                pt,
                capacity=0,
                phone=_service_phone(rng),
            )
        )
        station = shapely.Point(pt.x + 60, pt.y - 40)
        rows.append(
            _resource(
                "police", "street", f"{s.name[:-2]}派出所", "", station, capacity=0, phone="110"
            )
        )
    return rows


def _community_sites(
    buildings: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    seeds: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> list[dict[str, object]]:
    """A 党委, a 警务室 and a 党群服务中心 per community, and a 党群服务站 for every
    further 3,000 households."""
    rows: list[dict[str, object]] = []
    homes = buildings[buildings["planned_households"] > 0]
    reps = shapely.point_on_surface(buildings.geometry.values)
    by_comm = {
        c: np.flatnonzero((buildings["community_code"] == c).to_numpy())
        for c in communities["code"]
    }

    def near(code: str, xy: np.ndarray, offset: float) -> shapely.Point:
        idx = by_comm.get(code)
        if idx is None or len(idx) == 0:
            return shapely.Point(xy)
        d = shapely.distance(reps[idx], shapely.Point(xy))
        p = reps[idx[np.argmin(d)]]
        return shapely.Point(p.x + offset, p.y + offset / 2)

    households = homes.groupby("community_code")["planned_households"].sum()
    for c in communities.itertuples():
        short = c.name.replace("社区居委会", "社区")
        seed = seeds[c.code]
        home_count = int(households.get(c.code, 0))
        for kind, level, suffix, capacity, offset in (
            ("party_org", "community", "党委", 0, 25.0),
            ("police", "community", "警务室", 1, -25.0),
            ("service_site", "centre", "党群服务中心", home_count, 35.0),
        ):
            where = near(c.code, seed, offset)  # no randomness: the phone's draw order is kept
            rows.append(
                _resource(
                    kind,
                    level,
                    short + suffix,
                    c.code,
                    where,
                    capacity=capacity,
                    phone=_service_phone(rng),
                )
            )
        idx = by_comm.get(c.code, np.empty(0, int))
        n_stations = int(households.get(c.code, 0) // 3000)
        home_idx = idx[(buildings["planned_households"].to_numpy()[idx] > 0)]
        if n_stations and len(home_idx):
            picks = rng.choice(home_idx, size=min(n_stations, len(home_idx)), replace=False)
            for k, b in enumerate(picks, 1):
                p = reps[b]
                rows.append(
                    _resource(
                        "service_site",
                        "station",
                        f"{short}第{k}党群服务站",
                        c.code,
                        shapely.Point(p.x + 20, p.y + 20),
                        capacity=3000,
                        phone=_service_phone(rng),
                    )
                )
    return rows
