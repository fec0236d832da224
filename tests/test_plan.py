"""Drafts, publishing and the planner's routes (issue 14).

The library tests check the published state with shapely and pandas directly; the
HTTP tests run `gisgrid serve` in its own process on both backends, with two
planners (two keys) working at once.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pandas as pd
import pytest
import shapely

from gisgrid import ConflictError, InputError
from gisgrid.delineate.edits import move
from gisgrid.delineate.history import diff_runs
from gisgrid.delineate.publication import draft_status, publish, published_grids
from gisgrid.delineate.run import delineate
from gisgrid.io.workspace import Workspace
from gisgrid.lookup.directory import Directory
from gisgrid.publish.catalog import Catalog
from gisgrid.roster.assignment import assign

from .conftest import KEYS, serving

SECOND = "second-planner-secret"
A = {"X-API-Key": KEYS["planner"]}
B = {"X-API-Key": SECOND}


def movable(ws: Workspace, *, breaking: bool = False) -> tuple[str, str, str]:
    """A building that moves to a neighbouring grid with every rule kept (or, with
    ``breaking``, one whose move breaks a rule that ``force`` overrides): (building id,
    its grid, the grid it can move to)."""
    buildings = ws.read("buildings")
    grids = ws.read("grids")
    for row in buildings.itertuples():
        near = grids[
            (grids["grid_code"] != row.grid_code) & grids.intersects(row.geometry.buffer(20))
        ]
        for to in near["grid_code"]:
            plan = move(Workspace(ws.location), to=to, building=row.building_id, dry_run=True)
            if bool(plan.reasons) == breaking and not plan.broken:
                return row.building_id, row.grid_code, to
    raise AssertionError("no building of the demo moves within the rules")


# --- drafts and publishing, in the library -------------------------------------------


def test_the_demo_is_published_and_its_draft_is_what_is_published(small):
    ws = Workspace(small)
    status = draft_status(ws)
    assert status.published_run == status.draft_run and not status.unpublished
    published = published_grids(ws).set_index("grid_code")
    draft = ws.read("grids").set_index("grid_code")
    assert sorted(published.index) == sorted(draft.index)
    assert shapely.equals(
        published.geometry.values, draft.loc[published.index].geometry.values
    ).all()


def test_a_move_is_a_draft_until_published(small_gpkg_copy):
    ws = small_gpkg_copy
    building, old, new = movable(ws)
    b = ws.read("buildings").set_index("building_id")
    lon, lat = shapely.get_coordinates(
        b.loc[[building]].geometry.representative_point().to_crs(4326).values
    )[0]

    def public_grid() -> str:
        return Directory(Workspace(ws.location)).point(lon, lat)["grid"]["code"]

    public_before = published_grids(ws)
    move(ws, to=new, building=building)
    # the draft moved; what the public sees did not
    assert ws.read("buildings").set_index("building_id").loc[building, "grid_code"] == new
    after = published_grids(Workspace(ws.location))
    assert shapely.equals(after.geometry.values, public_before.geometry.values).all()
    assert public_grid() == old
    catalog = Catalog(Workspace(ws.location))
    catalog.refresh()
    public = catalog.frame("buildings", "public").set_index("building_id")
    assert public.loc[building, "grid_code"] == old  # the public building still in its old grid
    planner = catalog.frame("buildings", "planner").set_index("building_id")
    assert planner.loc[building, "draft_grid_code"] == new
    status = draft_status(ws)
    assert status.unpublished and status.pending["building_moved"] == 1

    run = publish(ws, note="街道办批准 approved")
    assert draft_status(ws).published_run == run and not draft_status(ws).unpublished
    assert public_grid() == new
    runs = pd.DataFrame(ws.read("runs"))
    assert runs.iloc[-1]["kind"] == "publish" and "街道办批准" in runs.iloc[-1]["params"]

    # a publication is undone by publishing an earlier run again
    first = int(runs[runs["kind"] == "publish"]["run_id"].iloc[0])
    publish(ws, note="撤回 withdrawn", restore=first)
    assert public_grid() == old


def test_publishing_needs_a_note_and_the_reviewed_draft(small_gpkg_copy):
    ws = small_gpkg_copy
    with pytest.raises(InputError, match="note"):
        publish(ws, note="  ")
    building, _, new = movable(ws)
    reviewed = draft_status(ws).draft_run
    move(Workspace(ws.location), to=new, building=building)  # another planner, meanwhile
    before = ws.revision
    with pytest.raises(ConflictError, match="another planner"):
        publish(Workspace(ws.location), note="ok", draft_run=reviewed)
    assert Workspace(ws.location).revision == before  # nothing written


def test_rosters_use_the_published_grids(small_gpkg_copy):
    ws = small_gpkg_copy
    published = set(published_grids(ws)["grid_code"])
    delineate(ws, full=True, params=None)  # a draft re-delineation: new codes in the draft
    draft = set(Workspace(ws.location).read("grids")["grid_code"])
    assert draft != published  # the draft retired and added codes
    assign(Workspace(ws.location))
    assigned = set(Workspace(ws.location).read("assignments")["grid_code"].dropna()) - {""}
    assert assigned and assigned <= published and not assigned & (draft - published)


def test_nothing_published_means_no_public_grids(small, tmp_path):
    path = tmp_path / "w.gpkg"
    shutil.copy(small, path)
    ws = Workspace(path)
    with ws.transaction() as tx:
        tx.drop("published_grids")
        tx.drop("published_buildings")
    catalog = Catalog(Workspace(path))
    assert "grids" not in {c.id for c in catalog.collections("public")}
    assert "draft_grids" in {c.id for c in catalog.collections("planner")}
    with pytest.raises(InputError, match="gisgrid publish"):
        Directory(Workspace(path))


# --- the routes, over HTTP, on both backends -----------------------------------------


@pytest.fixture
def small_gpkg_copy(small, tmp_path) -> Workspace:
    shutil.copy(small, tmp_path / "plan.gpkg")
    return Workspace(tmp_path / "plan.gpkg")


@contextmanager
def _planners(source, folder):
    with (
        serving(source, folder, keys={SECOND: "planner"}) as (base, where),
        httpx.Client(base_url=base, timeout=120) as http,
    ):
        yield http, str(where)


@pytest.fixture
def planners(small, tmp_path):
    """The small demo (a GeoPackage) served with two planners' keys: (client, workspace)."""
    with _planners(small, tmp_path) as served:
        yield served


@pytest.fixture
def planners_on_both(small_copy, tmp_path):
    """The same on each backend: the routes' writes are the workspace's, tested on both in
    test_storage and test_postgis; these run where concurrency is the point."""
    with _planners(small_copy.location, tmp_path) as served:
        yield served


PLAN_ROUTES = [
    ("GET", "/plan/status"),
    ("GET", "/plan/runs"),
    ("POST", "/plan/moves"),
    ("POST", "/plan/locks"),
    ("DELETE", "/plan/locks/430204002007001"),
    ("POST", "/plan/undo"),
    ("POST", "/plan/redo"),
    ("POST", "/plan/jobs"),
    ("GET", "/plan/jobs/1"),
    ("DELETE", "/plan/jobs/1"),
    ("GET", "/plan/diff?from=1&to=2"),
    ("POST", "/plan/publish"),
    ("GET", "/plan/export?format=xlsx"),
]


def test_every_planner_route_wants_a_planners_key(planners):
    http, _ = planners
    documented = {
        (m.upper(), p)
        for p, ops in http.get("/openapi.json").json()["paths"].items()
        for m, op in ops.items()
        if p.startswith("/plan/")
    }
    assert {
        (m, p.split("?")[0].replace("430204002007001", "{grid_code}").replace("/1", "/{job_id}"))
        for m, p in PLAN_ROUTES
    } == documented
    for method, path in PLAN_ROUTES:
        assert http.request(method, path).status_code == 401, path
        r = http.request(method, path, headers={"X-API-Key": KEYS["staff"]})
        assert r.status_code == 403 and "planner" in r.json()["detail"], path
        assert http.request(method, path, headers={"X-API-Key": "nope"}).status_code == 401
    op = http.get("/openapi.json").json()["paths"]["/plan/moves"]["post"]
    assert {"400", "401", "403", "409"} <= set(op["responses"])


def test_a_move_checked_then_made_then_published(planners_on_both):
    http, where = planners_on_both
    building, old, new = movable(Workspace(where))
    body = {"building_id": building, "to_grid": new, "from_grid": old}
    revision = http.get("/plan/status", headers=A).json()["revision"]
    check = http.post("/plan/moves", json={**body, "dry_run": True}, headers=A).json()
    assert check["run_id"] is None and not check["reasons"] and not check["broken"]
    assert http.get("/plan/status", headers=A).json()["revision"] == revision  # nothing written
    draft = {
        f["properties"]["grid_code"]: f["properties"]["households"]
        for f in http.get(
            "/collections/draft_grids/items", params={"limit": 1000}, headers=A
        ).json()["features"]
    }
    moved = http.post("/plan/moves", json=body, headers=A)
    assert moved.status_code == 200, moved.text
    (before_old, after_old), (before_new, after_new) = (
        moved.json()["households"][old],
        moved.json()["households"][new],
    )
    assert (before_old, before_new) == (draft[old], draft[new])
    assert after_old < before_old and after_new > before_new
    assert after_old + after_new == before_old + before_new
    now = {
        f["properties"]["grid_code"]: f["properties"]["households"]
        for f in http.get(
            "/collections/draft_grids/items", params={"limit": 1000}, headers=A
        ).json()["features"]
    }
    assert (now[old], now[new]) == (after_old, after_new)  # the planner sees the counts at once
    public = http.get(f"/collections/buildings/items/{building}").json()["properties"]
    assert public["grid_code"] == old and "draft_grid_code" not in public
    public_grid = http.get(f"/collections/grids/items/{old}").json()["properties"]
    assert public_grid["households"] == before_old  # the public sees the published grid

    status = http.get("/plan/status", headers=A).json()
    assert status["unpublished"] and status["pending"]["building_moved"] == 1
    stale = http.post("/plan/publish", json={"note": "x", "draft_run": 1}, headers=A)
    assert stale.status_code == 409
    ok = http.post(
        "/plan/publish", json={"note": "批准", "draft_run": status["draft_run"]}, headers=A
    )
    assert ok.status_code == 200 and not ok.json()["unpublished"]
    public = http.get(f"/collections/buildings/items/{building}").json()["properties"]
    assert public["grid_code"] == new
    assert http.get(f"/collections/grids/items/{old}").json()["properties"]["households"] == (
        after_old
    )


def test_two_planners_move_the_same_building_one_lands_one_conflicts(planners_on_both):
    http, where = planners_on_both
    building, old, new = movable(Workspace(where))
    body = {"building_id": building, "to_grid": new, "from_grid": old}
    for i in range(3):  # at once, several times: never two 200s, never a silent overwrite
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(lambda key: http.post("/plan/moves", json=body, headers=key), [A, B])
            )
        assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
        lost = next(r for r in answers if r.status_code == 409).json()
        assert "another planner" in lost["detail"] or "changed" in lost["detail"]
        stored = Workspace(where).read("buildings").set_index("building_id")
        assert stored.loc[building, "grid_code"] == new
        runs = http.get("/plan/runs", headers=A).json()
        assert [r["kind"] for r in runs].count("move") == 1 + 2 * i  # one run per landed move
        back = http.post("/plan/moves", json={"building_id": building, "to_grid": old}, headers=A)
        assert back.status_code == 200, back.text


def test_refused_and_forced_moves(planners):
    http, where = planners
    ws = Workspace(where)
    grids = ws.read("grids")
    b = ws.read("buildings")
    row = b.iloc[0]
    home = grids.set_index("grid_code").geometry[row["grid_code"]]
    far = grids[grids.distance(home) > 100]["grid_code"].iloc[0]  # no border with it
    refused = http.post(
        "/plan/moves", json={"building_id": row["building_id"], "to_grid": far}, headers=A
    )
    assert refused.status_code == 400 and not refused.json()["forcible"]  # never, even forced
    assert "one piece" in refused.json()["detail"]
    no_reason = http.post(
        "/plan/moves",
        json={"building_id": row["building_id"], "to_grid": far, "force": True},
        headers=A,
    )
    assert no_reason.status_code == 400 and "reason" in str(no_reason.json())
    unknown = http.post(
        "/plan/moves",
        json={"building_id": row["building_id"], "to_grid": far, "colour": "red"},
        headers=A,
    )
    assert unknown.status_code == 400 and "colour" in str(unknown.json())
    building, _, new = movable(ws, breaking=True)
    refused = http.post("/plan/moves", json={"building_id": building, "to_grid": new}, headers=A)
    assert refused.status_code == 400 and refused.json()["forcible"]
    reasons = refused.json()["reasons"]
    assert reasons and "force" in refused.json()["detail"]
    forced = http.post(
        "/plan/moves",
        json={"building_id": building, "to_grid": new, "force": True, "reason": "居民要求"},
        headers=A,
    )
    assert forced.status_code == 200 and forced.json()["forced"]
    flagged = Workspace(where).read("grids").set_index("grid_code")
    assert "manual_edit" in flagged.loc[new, "flags"] and "居民要求" in flagged.loc[new, "reason"]


def test_undo_redo_and_a_conflict_with_another_planner(planners):
    http, where = planners
    building, old, new = movable(Workspace(where))
    assert http.post("/plan/undo", headers=A).status_code == 409  # nothing to undo yet

    def grid_of() -> str:
        return (
            Workspace(where).read("buildings").set_index("building_id").loc[building, "grid_code"]
        )

    assert (
        http.post(
            "/plan/moves", json={"building_id": building, "to_grid": new}, headers=A
        ).status_code
        == 200
    )
    undone = http.post("/plan/undo", headers=A)
    assert undone.status_code == 200 and grid_of() == old
    assert undone.json()["can_redo"]
    assert http.post("/plan/redo", headers=A).status_code == 200 and grid_of() == new
    # planner B locks a grid: A's undo would discard it, so it is refused, and nothing moves
    code = Workspace(where).read("grids")["grid_code"].iloc[0]
    assert http.post("/plan/locks", json={"grid_codes": [code]}, headers=B).status_code == 200
    revision = http.get("/plan/status", headers=A).json()["revision"]
    refused = http.post("/plan/undo", headers=A)
    assert refused.status_code == 409 and "changed since your last edit" in refused.json()["detail"]
    assert grid_of() == new and http.get("/plan/status", headers=A).json()["revision"] == revision
    # B undoes their own lock
    assert http.post("/plan/undo", headers=B).status_code == 200
    assert not Workspace(where).read("grids").set_index("grid_code").loc[code, "locked"]


def test_locks_of_a_community(planners):
    http, where = planners
    grids = Workspace(where).read("grids")
    community = grids["community_code"].iloc[0]
    mine = set(grids[grids["community_code"] == community]["grid_code"])
    r = http.post("/plan/locks", json={"community_code": community}, headers=A)
    assert r.status_code == 200 and set(r.json()["changed"]) == mine
    stored = Workspace(where).read("grids").set_index("grid_code")["locked"].astype(bool)
    assert stored[list(mine)].all()
    one = sorted(mine)[0]
    assert http.delete(f"/plan/locks/{one}", headers=A).json()["changed"] == [one]
    assert not Workspace(where).read("grids").set_index("grid_code").loc[one, "locked"]
    bad = http.post("/plan/locks", json={"grid_codes": ["430204999999001"]}, headers=A)
    assert bad.status_code == 400 and "430204999999001" in bad.json()["detail"]
    assert http.delete("/plan/locks/123", headers=A).status_code in (400, 404)


def test_a_job_reports_progress_and_its_run_and_a_cancelled_job_writes_nothing(planners):
    http, where = planners
    community = Workspace(where).read("communities")["code"].iloc[0]
    start = http.post(
        "/plan/jobs", json={"kind": "delineate", "community_code": community}, headers=A
    )
    assert start.status_code == 202
    job = start.json()
    seen = []
    for _ in range(600):
        job = http.get(f"/plan/jobs/{job['id']}", headers=A).json()
        seen.append(job["progress"])
        if job["state"] != "running":
            break
        time.sleep(0.1)
    assert job["state"] == "done", job
    assert seen == sorted(seen) and seen[-1] == 1.0
    run = job["result"]["run_id"]
    runs = http.get("/plan/runs", headers=A).json()
    assert runs[-1]["run_id"] == run and runs[-1]["kind"] == "delineate"
    diff = http.get("/plan/diff", params={"from": run - 1, "to": run}, headers=A).json()
    assert diff["summary"] == diff_runs(Workspace(where), run - 1, run).summary
    assert diff["grids_to"]["type"] == "FeatureCollection" and diff["grids_to"]["features"]
    # undone like a move
    assert http.post("/plan/undo", headers=A).status_code == 200

    revision = Workspace(where).revision
    job = http.post(
        "/plan/jobs", json={"kind": "delineate", "community_code": community}, headers=A
    ).json()
    busy = http.post(
        "/plan/jobs", json={"kind": "delineate", "community_code": community}, headers=B
    )
    assert busy.status_code == 409
    cancelled = http.delete(f"/plan/jobs/{job['id']}", headers=A)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    time.sleep(1)
    assert Workspace(where).revision == revision  # nothing of it was written
    assert http.get("/plan/jobs/999", headers=A).status_code == 404
    bad = http.post(
        "/plan/jobs", json={"kind": "delineate", "community_code": "430204999999"}, headers=A
    )
    assert bad.status_code == 400 and "430204999999" in bad.json()["detail"]


def test_exports_over_http(planners, tmp_path):
    http, where = planners
    media = {
        "shp": "application/zip",
        "geojson": "application/geo+json",
        "gpkg": "application/geopackage+sqlite3",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
    community = Workspace(where).read("communities")["code"].iloc[0]
    for fmt, kind in media.items():
        r = http.get("/plan/export", params={"format": fmt, "community_code": community}, headers=A)
        assert r.status_code == 200 and r.headers["content-type"] == kind, r.text
        assert "attachment" in r.headers["content-disposition"]
        assert r.headers["cache-control"] == "private, no-store"
        (tmp_path / f"g.{fmt.replace('shp', 'zip')}").write_bytes(r.content)
    grids = Workspace(where).read("published_grids")
    import pyogrio

    back = pyogrio.read_dataframe(f"/vsizip/{tmp_path / 'g.zip'}/grids.shp")
    assert sorted(back["grid_code"]) == sorted(grids["grid_code"])
    bad = http.get("/plan/export", params={"format": "docx"}, headers=A)
    assert bad.status_code == 400
    assert (
        http.get("/plan/export", params={"format": "xlsx", "colour": 1}, headers=A).status_code
        == 400
    )


def _finished(http, job: dict) -> dict:
    for _ in range(1500):
        job = http.get(f"/plan/jobs/{job['id']}", headers=A).json()
        if job["state"] != "running":
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job} did not finish")


def test_a_redivision_job_that_cannot_split_fails_with_its_reason(planners):
    http, where = planners
    community = Workspace(where).read("communities")["code"].iloc[0]
    revision = Workspace(where).revision
    body = {"kind": "redivide", "community_code": community, "parts": 2}
    job = _finished(http, http.post("/plan/jobs", json=body, headers=A).json())
    assert job["state"] == "failed" and "cannot be re-divided" in job["error"]
    assert Workspace(where).revision == revision  # nothing written


def test_a_redivision_job_writes_new_communities_with_grids_inside(demo_full, tmp_path):
    oversized = "430204005001"  # the demo's 24,000-household community
    with _planners(demo_full.workspace, tmp_path) as (http, where):
        body = {"kind": "redivide", "community_code": oversized, "max_households": 8000}
        job = _finished(http, http.post("/plan/jobs", json=body, headers=A).json())
        assert job["state"] == "done", job
        new = job["result"]["communities"]
        ws = Workspace(where)
        communities = ws.read("communities").set_index("code")
        assert len(new) >= 3 and set(new) <= set(communities.index)
        assert ws.read("community_history")["code"].tolist() == [oversized]
        grids = ws.read("grids")
        for code in new:  # each new community tiled by its grids
            mine = shapely.union_all(grids[grids["community_code"] == code].geometry.values)
            assert abs(mine.area - communities.geometry[code].area) < 1.0
        cancelled = http.delete(f"/plan/jobs/{job['id']}", headers=A)
        assert cancelled.status_code == 409 and "done" in cancelled.json()["detail"]
        # the public still sees the published grids: none in the new communities yet
        fresh = next(c for c in new if c != oversized)  # the largest part keeps the old code
        public = http.get(
            "/collections/grids/items", params={"community_code": fresh, "limit": 10}
        ).json()
        assert public["numberMatched"] == 0
