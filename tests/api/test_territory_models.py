"""Territory models over the API: lifecycle, editing planning models only, validation, If-Match, roles."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from common.audit import AuditEvent
from territory import repository
from territory.models import ModelStatus, TerritoryModel
from tests.api.territory_support import add_reference_data, add_territory, create_model, small_tree


@pytest.fixture
def admin(world, db):
    add_reference_data(db)
    return world["admin"].headers


def _etag(client, headers, model_id):
    return client.get(f"/v1/territory-models/{model_id}", headers=headers).headers["ETag"]


def _activate(client, headers, model_id, etag=None):
    return client.post(
        f"/v1/territory-models/{model_id}/activate",
        headers={**headers, "If-Match": etag or _etag(client, headers, model_id)},
    )


def test_new_model_is_an_empty_planning_model(client, admin):
    model_id, etag = create_model(client, admin)
    body = client.get(f"/v1/territory-models/{model_id}", headers=admin).get_json()
    assert body["status"] == "planning"
    assert body["territory_count"] == 0
    assert etag == f'"{model_id}.{body["version"]}"'


def test_built_tree_reads_back_with_inherited_cam(client, admin):
    model_id, _ = small_tree(client, admin)
    page = client.get(f"/v1/territory-models/{model_id}/territories", headers=admin).get_json()
    assert sorted(t["key"] for t in page["items"]) == ["APAC", "JP", "JP-NET", "WW"]
    jp = client.get(f"/v1/territory-models/{model_id}/territories/JP", headers=admin).get_json()
    assert jp["team"] == [{"user": "cam-1", "role": "channel_account_manager"}]
    tree = client.get(f"/v1/territory-models/{model_id}/tree", headers=admin).get_json()
    jp_net = tree["root"]["children"][0]["children"][0]["children"][0]
    assert jp_net["key"] == "JP-NET"
    assert jp_net["cam"] == {"user": "cam-1", "territory": "JP", "inherited": True}


def test_activation_swaps_the_active_model_and_archives_the_old_one(client, admin, db):
    first, _ = small_tree(client, admin, "first")
    assert _activate(client, admin, first).status_code == 200
    assert repository.model_id_of(repository.active_snapshot(db)) == first

    resp = client.post("/v1/territory-models", json={"name": "second", "clone_active": True}, headers=admin)
    assert resp.status_code == 201
    second = resp.get_json()
    assert second["territory_count"] == 4 and second["cloned_from_id"] == first

    old_snapshot = repository.active_snapshot(db)
    resp = _activate(client, admin, second["id"])
    assert resp.status_code == 200 and resp.get_json()["status"] == "active"
    assert client.get(f"/v1/territory-models/{first}", headers=admin).get_json()["status"] == "archived"
    assert repository.model_id_of(repository.active_snapshot(db)) == second["id"]
    assert old_snapshot.lowest_matches({"geography": "JP"}) == ("JP",)  # a held snapshot keeps working
    with db.transaction() as session:
        statuses = session.scalars(select(TerritoryModel.status)).all()
    assert sorted(statuses) == ["active", "archived"]
    listed = client.get("/v1/territory-models?status=active", headers=admin).get_json()["items"]
    assert [m["id"] for m in listed] == [second["id"]]


def test_active_and_archived_models_are_read_only(client, admin):
    model_id, _ = small_tree(client, admin)
    assert _activate(client, admin, model_id).status_code == 200
    etag = _etag(client, admin, model_id)
    resp = client.patch(
        f"/v1/territory-models/{model_id}/territories/JP",
        json={"name": "Nippon"},
        headers={**admin, "If-Match": etag},
    )
    assert resp.status_code == 409
    assert resp.get_json()["type"].endswith("invalid-transition")
    assert _activate(client, admin, model_id).status_code == 409
    assert (
        client.get(f"/v1/territory-models/{model_id}/territories/JP", headers=admin).get_json()["name"]
        == "Japan"
    )


def test_an_empty_model_cannot_be_activated(client, admin):
    model_id, etag = create_model(client, admin)
    resp = _activate(client, admin, model_id, etag)
    assert resp.status_code == 409
    assert resp.get_json()["errors"][0]["detail"] == "the model has no territories"


def test_invalid_change_lists_every_problem_with_suggestions(client, admin, db):
    model_id, etag = small_tree(client, admin)
    resp = client.post(
        f"/v1/territory-models/{model_id}/territories",
        json={
            "key": "JP-SEC",
            "parent_key": "JPP",
            "name": "Japan security",
            "partner": "partner-c",
            "coverage": {
                "product": {"include": ["securty"]},
                "geography": {"include": ["JP"], "exclude": ["JP"]},
            },
            "team": [
                {"user": "cam-3", "role": "channel_account_manager"},
                {"user": "integration", "role": "sales_rep"},
            ],
        },
        headers={**admin, "If-Match": etag},
    )
    assert resp.status_code == 422
    details = [e["detail"] for e in resp.get_json()["errors"]]
    assert any("unknown parent 'JPP'; did you mean 'JP'" in d for d in details)
    assert any("unknown product member 'securty'; did you mean 'security'" in d for d in details)
    assert any("unknown internal user 'cam-3'; did you mean" in d for d in details)
    assert any("'integration' does not hold the role 'sales_rep'" in d for d in details)
    assert any("unknown partner 'partner-c'; did you mean" in d for d in details)
    assert any("both includes and excludes geography 'JP'" in d for d in details)
    assert len(details) == 6
    assert _etag(client, admin, model_id) == etag  # nothing written


def test_second_root_and_deleting_a_parent_are_refused(client, admin):
    model_id, etag = small_tree(client, admin)
    resp = client.post(
        f"/v1/territory-models/{model_id}/territories",
        json={"key": "OTHER", "name": "Another root"},
        headers={**admin, "If-Match": etag},
    )
    assert resp.status_code == 422
    assert "more than one root" in resp.get_json()["errors"][0]["detail"]
    resp = client.delete(
        f"/v1/territory-models/{model_id}/territories/JP", headers={**admin, "If-Match": etag}
    )
    assert resp.status_code == 422
    assert "unknown parent 'JP'" in resp.get_json()["errors"][0]["detail"]
    resp = client.patch(
        f"/v1/territory-models/{model_id}/territories/APAC",
        json={"parent_key": "JP-NET"},
        headers={**admin, "If-Match": etag},
    )
    assert resp.status_code == 422
    assert any("cycle" in e["detail"] for e in resp.get_json()["errors"])


def test_edits_return_warnings_and_bump_the_model_version(client, admin):
    model_id, etag = small_tree(client, admin)
    resp = client.put(
        f"/v1/territory-models/{model_id}/territories/JP-NET/coverage",
        json={"coverage": {"product": {"include": ["networking"]}}},
        headers={**admin, "If-Match": etag},
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["warnings"][0]["territory"] == "JP-NET"
    assert body["warnings"][0]["dimension"] == "geography"
    assert resp.headers["ETag"] != etag and resp.headers["ETag"] == _etag(client, admin, model_id)

    resp = client.put(
        f"/v1/territory-models/{model_id}/territories/JP-NET/team",
        json={"team": [{"user": "cam-2", "role": "channel_account_manager"}]},
        headers={**admin, "If-Match": resp.headers["ETag"]},
    )
    assert resp.status_code == 200
    assert resp.get_json()["territory"]["team"] == [{"user": "cam-2", "role": "channel_account_manager"}]
    resp = client.delete(
        f"/v1/territory-models/{model_id}/territories/JP-NET",
        headers={**admin, "If-Match": resp.headers["ETag"]},
    )
    assert resp.status_code == 200 and resp.get_json()["territory"] is None
    assert client.get(f"/v1/territory-models/{model_id}/territories/JP-NET", headers=admin).status_code == 404


def test_stale_if_match_gives_412_and_changes_nothing(client, admin, db):
    model_id, etag = small_tree(client, admin)
    add_territory(client, admin, model_id, etag, {"key": "KR", "parent_key": "APAC", "name": "Korea"})
    with db.transaction() as session:
        events = session.scalar(select(func.count(AuditEvent.id)))
    for method, url, body in (
        ("patch", "territories/JP", {"name": "Nippon"}),
        ("put", "territories/JP/coverage", {"coverage": {}}),
        ("put", "territories/JP/team", {"team": []}),
        ("delete", "territories/JP-NET", None),
        ("post", "territories", {"key": "CN", "parent_key": "APAC", "name": "China"}),
        ("post", "activate", None),
        ("post", "import", {"territories": "key,parent_key,name\nWW,,World\n"}),
    ):
        resp = getattr(client, method)(
            f"/v1/territory-models/{model_id}/{url}", json=body, headers={**admin, "If-Match": etag}
        )
        assert resp.status_code == 412, (method, url, resp.get_json())
    resp = client.patch(
        f"/v1/territory-models/{model_id}/territories/JP", json={"name": "Nippon"}, headers=admin
    )
    assert resp.status_code == 428
    jp = client.get(f"/v1/territory-models/{model_id}/territories/JP", headers=admin).get_json()
    assert jp["name"] == "Japan" and jp["team"]
    assert client.get(f"/v1/territory-models/{model_id}", headers=admin).get_json()["status"] == "planning"
    with db.transaction() as session:
        assert session.scalar(select(func.count(AuditEvent.id))) == events


def test_every_change_writes_one_audit_row(client, admin, db):
    small_tree(client, admin)
    with db.transaction() as session:
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.entity_type == "territory_model")
            .order_by(AuditEvent.id)
        ).all()
    assert actions == ["created", *["territory_created"] * 4]


@pytest.mark.parametrize("actor", ["cam_1", "integration"])
def test_internal_roles_read_but_do_not_change(client, admin, world, actor):
    model_id, etag = small_tree(client, admin)
    headers = world[actor].headers
    assert client.get("/v1/territory-models", headers=headers).status_code == 200
    assert client.get(f"/v1/territory-models/{model_id}/tree?format=dot", headers=headers).status_code == 200
    assert client.post("/v1/territory-models", json={"name": "x"}, headers=headers).status_code == 403
    resp = client.post(f"/v1/territory-models/{model_id}/activate", headers={**headers, "If-Match": etag})
    assert resp.status_code == 403


@pytest.mark.parametrize("actor", ["partner_admin_a", "partner_user_a"])
def test_partners_get_403_on_territory_models(client, admin, world, actor):
    model_id, _ = small_tree(client, admin)
    headers = world[actor].headers
    for url in (
        "/v1/territory-models",
        f"/v1/territory-models/{model_id}",
        f"/v1/territory-models/{model_id}/tree",
    ):
        assert client.get(url, headers=headers).status_code == 403
    assert client.get(f"/territory-models/{model_id}/tree.html", headers=headers).status_code == 403
    assert client.get("/v1/territory-models").status_code == 401


def test_unknown_model_and_territory_answer_404(client, admin):
    assert client.get("/v1/territory-models/999", headers=admin).status_code == 404
    model_id, _ = small_tree(client, admin)
    resp = client.get(f"/v1/territory-models/{model_id}/territories/JP-NTE", headers=admin)
    assert resp.status_code == 404
    assert "did you mean 'JP-NET'" in resp.get_json()["detail"]


def test_snapshot_for_a_planning_model_matches_leads(client, admin, db):
    model_id, _ = small_tree(client, admin)
    snap = repository.snapshot_for(db, model_id)
    assert snap.lowest_matches({"geography": "JP", "product": "switches"}) == ("JP-NET",)
    assert snap.cam_for("JP-NET").user == "cam-1"
    assert repository.snapshot_for(db, model_id) is snap  # cached per model version
    assert repository.active_snapshot(db) is None
    with db.transaction() as session:
        assert session.get(TerritoryModel, model_id).status == ModelStatus.PLANNING
