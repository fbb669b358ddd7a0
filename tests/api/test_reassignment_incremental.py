"""Incremental realignment (issue 9): when the planned model differs from the active one in a few
territories, the plan evaluates only the leads whose facts fall in the changed coverage, and finds
exactly what a full plan finds. A hypothesis test draws small random model changes (teams, coverage,
a new territory) and random locks, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from directory.models import Customer, Product
from tests.api.approvals_support import ok
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo, submit
from tests.api.reassignment_support import CAM, lead_lock, plan, planning_copy, set_team

COUNTRIES = ["JP", "DE", "US", "GB", "FR", "AU"]
PRODUCTS = ["fw-1", "fw-5", "id-cloud", "id-edge"]
CAMS = ["cam-jp", "cam-de", "cam-gb", "cam-us", "cam-jp-security"]
MUTATIONS = ["team", "geography", "product", "unrestrict", "add_child"]


@pytest.fixture
def demo(db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Demo:
    monkeypatch.setenv("PRM_BATCH_BACKEND", "inline")
    return load_demo(db, tmp_path)


def _leads(client: Any, db: Any, demo: Demo) -> list[int]:
    """Submitted leads of Northwind for customers in six countries and four products."""
    with db.transaction() as session:
        customers = {
            country: session.scalar(
                select(Customer.id).where(Customer.country == country).order_by(Customer.id).limit(1)
            )
            for country in COUNTRIES
        }
        products = {key: session.scalar(select(Product.id).where(Product.key == key)) for key in PRODUCTS}
    out = []
    for i, country in enumerate(COUNTRIES * 2):
        product = PRODUCTS[i % len(PRODUCTS)]
        body = jp_security_lead(
            demo,
            name=f"{country} {product}",
            customer_id=customers[country],
            products=[{"product_id": products[product], "primary": True}],
        )
        lead = created(client, demo["northwind-user"], body).get_json()
        assert submit(client, demo["northwind-user"], lead["id"]).status_code == 200
        out.append(lead["id"])
    return out


def _mutate(
    client: Any, admin: dict[str, str], model_id: int, etag: str, change: tuple[int, str, int], hot: set[str]
) -> str:
    """One small change to the planning model (a change the model refuses is simply not made); half of
    the changes hit a territory on the path of some lead (``hot``), so that leads do move."""
    url = f"/v1/territory-models/{model_id}/territories?limit=500"
    inner = [t for t in ok(client.get(url, headers=admin))["items"] if t["parent_key"] is not None]
    pool = [t for t in inner if t["key"] in hot] if change[0] % 2 == 0 else inner
    pool = pool or inner
    target = pool[change[0] // 2 % len(pool)]
    kind, n = change[1], change[2]
    base = f"/v1/territory-models/{model_id}/territories/{target['key']}"
    headers = {**admin, "If-Match": etag}
    if kind == "team":
        return set_team(client, admin, model_id, etag, target["key"], [(CAMS[n % len(CAMS)], CAM)])
    coverage = dict(target["coverage"])
    if kind == "geography":
        coverage["geography"] = {"include": [COUNTRIES[n % len(COUNTRIES)]], "exclude": []}
    elif kind == "product":
        coverage["product"] = {"include": [PRODUCTS[n % len(PRODUCTS)]], "exclude": []}
    elif kind == "unrestrict":
        coverage.pop(sorted(coverage)[n % len(coverage)], None) if coverage else None
    if kind == "add_child":
        resp = client.post(
            f"/v1/territory-models/{model_id}/territories",
            json={
                "key": f"NEW-{n}",
                "parent_key": target["key"],
                "name": "New",
                "coverage": {"product": {"include": [PRODUCTS[n % len(PRODUCTS)]]}},
                "team": [{"user": CAMS[n % len(CAMS)], "role": CAM}],
            },
            headers=headers,
        )
    else:
        resp = client.put(f"{base}/coverage", json={"coverage": coverage}, headers=headers)
    return str(resp.headers["ETag"]) if resp.status_code in (200, 201) else etag


def _content(client: Any, admin: dict[str, str], run_id: int) -> list[tuple[Any, ...]]:
    out, cursor = [], ""
    while True:
        page = ok(client.get(f"/v1/reassignment-runs/{run_id}/items?limit=500{cursor}", headers=admin))
        out += [
            (i["lead_id"], i["outcome"], i["reason"], i["action"], str(i["after"])) for i in page["items"]
        ]
        if not page["next_cursor"]:
            return sorted(out)
        cursor = f"&cursor={page['next_cursor']}"


changes = st.lists(
    st.tuples(st.integers(0, 1000), st.sampled_from(MUTATIONS), st.integers(0, 100)), min_size=1, max_size=2
)


def test_incremental_plan_equals_the_full_plan_on_small_random_model_changes(client, db, demo):
    admin = demo["admin"]
    leads = _leads(client, db, demo)
    state: dict[str, int] = {"copies": 0, "incremental": 0, "moved": 0}
    territories = ok(client.get("/v1/territory-models/1/territories?limit=500", headers=admin))["items"]
    parents = {t["key"]: t["parent_key"] for t in territories}
    hot: set[str] = set()
    for lead_id in leads:
        for t in ok(client.get(f"/v1/leads/{lead_id}", headers=admin))["territory_team"]:
            key = t["territory"]
            while key is not None:
                hot.add(key)
                key = parents.get(key)

    @settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(changes=changes, locked=st.sets(st.sampled_from(leads), max_size=3))
    def check(changes: list[tuple[int, str, int]], locked: set[int]) -> None:
        state["copies"] += 1
        model_id, etag = planning_copy(client, admin, name=f"copy {state['copies']}")
        for change in changes:
            etag = _mutate(client, admin, model_id, etag, change, hot)
        for lead_id in locked:
            assert lead_lock(client, admin, lead_id, "random lock").status_code == 200
        try:
            incremental = plan(client, admin, territory_model_id=model_id, chunk_size=5)
            full = plan(client, admin, territory_model_id=model_id, chunk_size=5, full=True)
            assert not full["incremental"] and full["evaluated"] == full["total_leads"] == len(leads)
            assert incremental["total_leads"] == len(leads)
            assert incremental["evaluated"] <= full["evaluated"]
            state["incremental"] += incremental["incremental"]
            state["moved"] += full["moved"]
            assert _content(client, admin, incremental["id"]) == _content(client, admin, full["id"])
            assert (incremental["moved"], incremental["kept"]) == (full["moved"], full["kept"])
        finally:
            for lead_id in locked:
                etag_lead = client.get(f"/v1/leads/{lead_id}", headers=admin).headers["ETag"]
                resp = client.delete(
                    f"/v1/leads/{lead_id}/assignment-lock", headers={**admin, "If-Match": etag_lead}
                )
                assert resp.status_code == 200

    check()
    # the examples did exercise the incremental path, and leads did move
    assert state["incremental"] > 0 and state["moved"] > 0


def test_a_change_to_one_territory_evaluates_only_the_leads_in_its_coverage(client, db, demo):
    admin = demo["admin"]
    leads = _leads(client, db, demo)
    model_id, etag = planning_copy(client, admin)
    set_team(client, admin, model_id, etag, "DE", [("cam-gb", CAM)])
    run = plan(client, admin, territory_model_id=model_id)
    assert run["incremental"] and run["total_leads"] == len(leads)
    assert run["evaluated"] == 2  # the two German leads, of twelve
    assert run["moved"] == 2 and run["by_cam"] == {
        "cam-de": {"before": 2, "after": 0},
        "cam-gb": {"before": 0, "after": 2},
    }


def test_leads_last_decided_with_another_model_are_evaluated_too(client, db, demo):
    """Besides the changed coverage, a lead whose current decision used another model than the active
    one is a candidate (its assignment may differ whatever territory changed)."""
    from sqlalchemy import update

    from registration.leads.models import Lead
    from rules.models import StoredDecision

    admin = demo["admin"]
    leads = _leads(client, db, demo)
    model_id, etag = planning_copy(client, admin)
    japanese = leads[COUNTRIES.index("JP")]
    with db.transaction() as session:
        decision_id = session.scalar(select(Lead.decision_id).where(Lead.id == japanese))
        session.execute(
            update(StoredDecision).where(StoredDecision.id == decision_id).values(territory_model_id=model_id)
        )
    set_team(client, admin, model_id, etag, "DE", [("cam-gb", CAM)])
    run = plan(client, admin, territory_model_id=model_id)
    assert run["incremental"] and run["evaluated"] == 3  # the two German leads, and the Japanese one
    assert run["moved"] == 2


def test_chunks_that_do_not_name_their_leads_select_them_from_their_range(client, db, demo):
    """A chunk of an incremental plan names its leads; one cut before chunks did (a run planning when the
    service was upgraded, then resumed) selects them from its id range again, and plans the same."""
    from sqlalchemy import delete, update

    from registration.reassignment import service
    from registration.reassignment.models import ReassignmentChunk, ReassignmentItem, ReassignmentRun

    admin = demo["admin"]
    _leads(client, db, demo)
    model_id, etag = planning_copy(client, admin)
    set_team(client, admin, model_id, etag, "DE", [("cam-gb", CAM)])
    run = plan(client, admin, territory_model_id=model_id, chunk_size=1)
    assert run["incremental"] and run["evaluated"] == 2
    planned = _content(client, admin, run["id"])
    with db.transaction() as session:
        named = session.scalars(
            select(ReassignmentChunk.lead_ids).where(ReassignmentChunk.run_id == run["id"])
        )
        assert sorted(len(ids or []) for ids in named) == [1, 1]
        # as the run was before its chunks ran, with chunks of the kind cut before they named their leads
        session.execute(delete(ReassignmentItem).where(ReassignmentItem.run_id == run["id"]))
        session.execute(
            update(ReassignmentChunk)
            .where(ReassignmentChunk.run_id == run["id"])
            .values(lead_ids=None, done_at=None)
        )
        session.execute(
            update(ReassignmentRun)
            .where(ReassignmentRun.id == run["id"])
            .values(status="planning", moved=0, kept=0, content_hash=None, planned_at=None)
        )
    resumed = service.resume_run(db, None, run["id"])
    assert (resumed.status, resumed.evaluated, resumed.moved) == ("planned", 2, 2)
    assert resumed.content_hash == run["content_hash"]
    assert _content(client, admin, run["id"]) == planned


def test_leads_moved_by_an_applied_run_of_another_model_are_evaluated_too(client, db, demo):
    """A run's plan stores the decisions it makes, in force once applied: the leads an applied run of a
    planning model moved are decided with another model than the active one, and an incremental plan
    of another change evaluates them (found by the run's items, not by the decisions' index, which
    leaves a run's decisions out: before the apply they are not in force)."""
    admin = demo["admin"]
    _leads(client, db, demo)
    first, etag = planning_copy(client, admin, "FY27 a")
    set_team(client, admin, first, etag, "DE", [("cam-gb", CAM)])
    moved = plan(client, admin, territory_model_id=first)
    assert moved["moved"] == 2

    second, etag = planning_copy(client, admin, "FY27 b")
    set_team(client, admin, second, etag, "US", [("cam-gb", CAM)])
    before_apply = plan(client, admin, territory_model_id=second)
    assert before_apply["incremental"] and before_apply["evaluated"] == 2  # the American leads

    ok(client.post(f"/v1/reassignment-runs/{moved['id']}/apply", headers=admin))
    after_apply = plan(client, admin, territory_model_id=second)
    full = plan(client, admin, territory_model_id=second, full=True)
    # the American leads, and the German ones the applied run gave model "a" (moving back to cam-de)
    assert after_apply["incremental"] and after_apply["evaluated"] == 4
    assert (after_apply["moved"], after_apply["by_cam"]) == (full["moved"], full["by_cam"]) and full[
        "moved"
    ] == 4


def test_an_incremental_plans_few_leads_are_spread_over_even_chunks(client, db, demo, monkeypatch):
    """However large the chunk size, an incremental plan's leads are cut into `SPREAD_CHUNKS` even chunks
    (so that workers finish together), each naming its leads; what may keep them (a lock) is read by
    those ids, and the plan is the full plan's."""
    from registration.reassignment import plan_service
    from registration.reassignment.models import ReassignmentChunk

    monkeypatch.setattr(plan_service, "SPREAD_CHUNKS", 2)
    monkeypatch.setattr(plan_service, "SPREAD_MIN_SIZE", 1)
    admin = demo["admin"]
    leads = _leads(client, db, demo)
    german = [leads[COUNTRIES.index("DE")], leads[len(COUNTRIES) + COUNTRIES.index("DE")]]
    assert lead_lock(client, admin, german[1], "customer asked").status_code == 200
    model_id, etag = planning_copy(client, admin)
    set_team(client, admin, model_id, etag, "DE", [("cam-gb", CAM)])
    run = plan(client, admin, territory_model_id=model_id, chunk_size=2000)
    full = plan(client, admin, territory_model_id=model_id, chunk_size=2000, full=True)
    assert run["incremental"] and (run["evaluated"], run["moved"], run["kept"]) == (2, 1, 1)
    with db.transaction() as session:
        named = session.scalars(
            select(ReassignmentChunk.lead_ids)
            .where(ReassignmentChunk.run_id == run["id"])
            .order_by(ReassignmentChunk.number)
        )
        assert list(named) == [[german[0]], [german[1]]]
    content = _content(client, admin, run["id"])
    assert content == _content(client, admin, full["id"])
    assert [(lead, outcome) for lead, outcome, *_ in content] == [(german[0], "move"), (german[1], "keep")]


def test_the_database_finds_the_territories_whose_definitions_differ(client, db, demo):
    """`differing_keys` (what an incremental plan compares the models by) finds exactly the territories
    whose loaded definitions differ, or that exist in one model only: attributes, coverage (a member
    added, an include turned exclude), a team in another order, a removed and an added territory."""
    from sqlalchemy import delete, update

    from territory.models import Territory, TerritoryCoverage, TerritoryMember
    from territory.repository import differing_keys, load_defs

    admin = demo["admin"]
    model_id, _ = planning_copy(client, admin)
    with db.transaction() as session:
        rows = session.execute(
            select(Territory.key, Territory.id, Territory.parent_key).where(Territory.model_id == model_id)
        ).all()
        ids = {key: tid for key, tid, _ in rows}
        parents = {parent for _, _, parent in rows}
        teams = {
            key: session.scalars(select(TerritoryMember).where(TerritoryMember.territory_id == tid)).all()
            for key, tid in ids.items()
        }
        reordered = next(key for key, team in teams.items() if len(team) > 1)
        covered = session.scalars(select(TerritoryCoverage).where(TerritoryCoverage.mode == "include")).all()
        flipped = next(c for c in covered if c.territory_id in ids.values())
        widened = next(c for c in covered if c.territory_id in ids.values() and c.id != flipped.id)
        leaf = next(key for key in ids if key not in parents and key != reordered)
        # a team in reverse order (members added again); an include made an exclude; a member added
        members = [(m.user_key, m.role) for m in teams[reordered]]
        session.execute(delete(TerritoryMember).where(TerritoryMember.territory_id == ids[reordered]))
        session.add_all(
            TerritoryMember(territory_id=ids[reordered], user_key=u, role=r) for u, r in reversed(members)
        )
        flipped.mode = "exclude"
        session.add(
            TerritoryCoverage(
                territory_id=widened.territory_id, dimension=widened.dimension, member="ZZ", mode="include"
            )
        )
        renamed = next(key for key in ids if key not in {reordered, leaf})
        session.execute(update(Territory).where(Territory.id == ids[renamed]).values(name="Renamed"))
        removed = next(key for key in ids if key not in {reordered, leaf, renamed} and key not in parents)
        session.execute(delete(Territory).where(Territory.id == ids[removed]))
        session.add(Territory(model_id=model_id, key="NEW-1", parent_key=leaf, name="New", type="segment"))
    with db.transaction() as session:
        before = {d.key: d for d in load_defs(session, 1)}
        after = {d.key: d for d in load_defs(session, model_id)}
        expected = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        found = differing_keys(session, 1, model_id)
        assert found == differing_keys(session, model_id, 1) == expected
    assert {reordered, renamed, removed, "NEW-1"} <= expected and len(expected) >= 5
