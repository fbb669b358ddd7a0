"""Territory freezes (issue 9) on SQLite and PostgreSQL: a territory frozen in a model keeps its leads
where they are in every plan (those in it or below it now, and those a plan would move into it), listed
as kept with the freeze's reason; a freeze placed after the plan holds its leads at apply; CAMs and
admins freeze and thaw with the model's ETag, partners cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.audit import AuditEvent
from registration.reassignment import lock_service
from tests.api.approvals_support import ok
from tests.api.leads_support import Demo, load_demo
from tests.api.reassignment_support import (
    items,
    jp_security_to_cam_jp,
    pending_leads,
    plan,
    reassigned_rows,
)


@pytest.fixture
def demo(db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Demo:
    monkeypatch.setenv("PRM_BATCH_BACKEND", "inline")
    return load_demo(db, tmp_path)


def _path(model_id: int, key: str) -> str:
    return f"/v1/territory-models/{model_id}/territories/{key}/freeze"


def _model_etag(client: Any, headers: dict[str, str], model_id: int) -> str:
    return str(client.get(f"/v1/territory-models/{model_id}", headers=headers).headers["ETag"])


def _active(client: Any, headers: dict[str, str]) -> int:
    models = ok(client.get("/v1/territory-models?status=active", headers=headers))["items"]
    return int(models[0]["id"])


def freeze(client: Any, headers: dict[str, str], model_id: int, key: str, reason: str) -> dict[str, Any]:
    etag = _model_etag(client, headers, model_id)
    return ok(
        client.put(_path(model_id, key), json={"reason": reason}, headers={**headers, "If-Match": etag})
    )


def thaw(client: Any, headers: dict[str, str], model_id: int, key: str) -> dict[str, Any]:
    etag = _model_etag(client, headers, model_id)
    return ok(client.delete(_path(model_id, key), headers={**headers, "If-Match": etag}))


def test_a_cam_freezes_and_thaws_a_territory_with_the_models_etag(client, db, demo):
    cam, admin = demo["cam-jp"], demo["admin"]
    model_id = _active(client, admin)
    path = _path(model_id, "JP-SEC")
    assert ok(client.get(path, headers=cam)) == {
        "territory_model_id": model_id,
        "territory_key": "JP-SEC",
        "frozen": False,
        "reason": None,
        "frozen_by": None,
        "frozen_at": None,
    }
    etag = _model_etag(client, cam, model_id)
    # a change names the model's ETag: 428 without, 412 when stale
    assert client.put(path, json={"reason": "audit"}, headers=cam).status_code == 428
    stale = client.put(path, json={"reason": "audit"}, headers={**cam, "If-Match": '"1.999"'})
    assert stale.status_code == 412 and stale.content_type == "application/problem+json"
    # partners may not, blank reasons are refused, unknown territories are 404 problem+json
    assert (
        client.put(
            path, json={"reason": "x"}, headers={**demo["northwind-user"], "If-Match": etag}
        ).status_code
        == 403
    )
    blank = client.put(path, json={"reason": "  "}, headers={**cam, "If-Match": etag})
    assert blank.status_code == 422
    missing = client.put(_path(model_id, "JP-SECC"), json={"reason": "x"}, headers={**cam, "If-Match": etag})
    assert missing.status_code == 404 and "JP-SEC" in missing.get_json()["detail"]

    resp = client.put(path, json={"reason": "fiscal audit"}, headers={**cam, "If-Match": etag})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    out = resp.get_json()
    assert (out["frozen"], out["reason"], out["frozen_by"]) == (True, "fiscal audit", demo.ids["cam-jp"])
    assert resp.headers["ETag"] != etag and resp.headers["ETag"] == _model_etag(client, admin, model_id)
    assert ok(client.get(path, headers=admin))["reason"] == "fiscal audit"
    # the old ETag is stale now
    assert client.delete(path, headers={**cam, "If-Match": etag}).status_code == 412
    with db.transaction() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.entity_type == "territory_model", AuditEvent.entity_id == model_id
            )
        ).all()
    assert "territory_frozen" in actions

    assert thaw(client, cam, model_id, "JP-SEC")["frozen"] is False
    assert ok(client.get(path, headers=admin))["frozen"] is False


@pytest.mark.parametrize("frozen_key", ["JP-SEC-RESELL", "JP-SEC"])
def test_plans_keep_the_leads_of_a_frozen_territory_with_the_freezes_reason(client, db, demo, frozen_key):
    """Frozen in the active model: the territory itself, or one above the leads' lowest territory."""
    admin = demo["admin"]
    leads = pending_leads(client, demo, 2)
    model_id = jp_security_to_cam_jp(client, admin)
    freeze(client, demo["cam-jp-security"], _active(client, admin), frozen_key, "key accounts this year")

    run = plan(client, admin, territory_model_id=model_id)
    assert (run["moved"], run["kept"], run["kept_by_reason"]) == (0, 2, {"frozen": 2})
    for item in items(client, admin, run["id"]):
        assert item["lead_id"] in leads and item["outcome"] == "keep"
        assert item["reason"].startswith(f"frozen: territory {frozen_key}: key accounts this year; ")
    # the full plan agrees with the incremental one
    assert plan(client, admin, territory_model_id=model_id, full=True)["kept_by_reason"] == {"frozen": 2}

    thaw(client, admin, _active(client, admin), frozen_key)
    assert plan(client, admin, territory_model_id=model_id)["moved"] == 2


def test_a_lead_would_not_move_into_a_territory_frozen_in_the_new_model(client, db, demo):
    admin = demo["admin"]
    pending_leads(client, demo, 1)
    model_id = jp_security_to_cam_jp(client, admin)
    freeze(client, admin, model_id, "JP-SEC", "new team starts in April")
    run = plan(client, admin, territory_model_id=model_id)
    assert (run["moved"], run["kept"]) == (0, 1)
    (item,) = items(client, admin, run["id"])
    assert item["reason"].startswith("frozen: territory JP-SEC: new team starts in April")


def test_a_territory_frozen_after_the_plan_holds_its_leads_at_apply(client, db, demo):
    admin = demo["admin"]
    leads = pending_leads(client, demo, 2)
    model_id = jp_security_to_cam_jp(client, admin)
    run = plan(client, admin, territory_model_id=model_id)
    assert run["moved"] == 2
    freeze(client, admin, _active(client, admin), "JP", "country audit")

    applied = ok(client.post(f"/v1/reassignment-runs/{run['id']}/apply", headers=admin))
    assert (applied["applied"], applied["skipped"]) == (0, 2)
    for item in items(client, admin, run["id"]):
        assert (item["result"], item["result_reason"]) == (
            "skipped",
            "frozen since plan: territory JP: country audit",
        )
    assert [reassigned_rows(db, lead_id) for lead_id in leads] == [[], []]


def test_frozen_territories_reach_every_territory_below_the_frozen_one(db, client, demo):
    admin = demo["admin"]
    model_id = _active(client, admin)
    freeze(client, admin, model_id, "JP-SEC", "audit")
    frozen = lock_service.frozen_territories(db, [model_id, None])
    assert frozen["JP-SEC"] == ("JP-SEC", "audit") and frozen["JP-SEC-RESELL"] == ("JP-SEC", "audit")
    assert "JP" not in frozen and "DE" not in frozen
    assert lock_service.frozen_territories(db, [None]) == {}
