"""Ruleset versions through the API: upload, validate, list, read, activate, roll back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rules import service
from tests.api import rulesets_files as files

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"


def upload(client, world, source, name="rules.yaml", actor="admin", **extra):
    body = {"name": name, "source": source, **extra}
    return client.post("/v1/rulesets", json=body, headers=world[actor].headers)


def activate(client, world, ruleset_id, etag=None, actor="admin"):
    headers = dict(world[actor].headers)
    if etag is None:
        etag = client.get(f"/v1/rulesets/{ruleset_id}", headers=world["admin"].headers).headers["ETag"]
    headers["If-Match"] = etag
    return client.post(f"/v1/rulesets/{ruleset_id}/activate", headers=headers)


def statuses(client, world, kind):
    resp = client.get(f"/v1/rulesets?kind={kind}", headers=world["admin"].headers)
    assert resp.status_code == 200
    return {item["id"]: item["status"] for item in resp.get_json()["items"]}


def audit_actions(db, ruleset_id):
    from common.audit import history

    with db.transaction() as session:
        return [event.action for event in history(session, "ruleset", ruleset_id)]


# --- upload -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "kind", "rules"),
    [(files.POLICY, "policy", 2), (files.APPROVAL, "approval", 2), (files.ASSIGNMENT, "assignment", 2)],
)
def test_admin_uploads_a_rules_file_as_a_draft_version(client, world, source, kind, rules):
    resp = upload(client, world, source, name=f"{kind}.yaml")
    assert resp.status_code == 201, resp.get_json()
    out = resp.get_json()
    assert (out["kind"], out["status"], out["rule_count"]) == (kind, "draft", rules)
    assert out["source"] == source
    assert out["ast"]["version"] == out["version_hash"]
    assert out["created_by"] == world["admin"].user_id
    assert resp.headers["ETag"] == f'"{out["id"]}.{out["version"]}"'
    assert resp.headers["Location"] == f"/v1/rulesets/{out['id']}"


REFERENCE = re.compile(r"unknown (user|partner|program|customer|product) '([^']+)'")


def add_references(db, world, errors) -> None:
    """Create the users, partners, programs, customers and products an example file names."""
    from directory.enums import OrganizationKind, PartnerType, ProductLevel
    from directory.models import Customer, Organization, PartnerProgram, Product, User

    with db.transaction() as session:
        for error in errors:
            match = REFERENCE.search(error["detail"])
            assert match, error  # anything but a missing reference is a real problem of the file
            what, key = match.groups()
            if what == "user":
                session.add(
                    User(
                        organization_id=world.brand_id,
                        key=key,
                        email=f"{key}@brand.example",
                        name=key,
                        roles=[],
                    )
                )
            elif what == "partner":
                session.add(
                    Organization(
                        key=key,
                        name=key,
                        kind=OrganizationKind.PARTNER,
                        partner_type=PartnerType.RESELLER,
                        country="US",
                    )
                )
            elif what == "program":
                session.add(PartnerProgram(key=key, name=key))
            elif what == "customer":
                session.add(Customer(key=key, name=key, country="US"))
            else:
                session.add(Product(key=key, name=key, level=ProductLevel.GROUP))


@pytest.mark.parametrize("kind", ["assignment", "approval", "policy"])
def test_the_example_files_upload_and_pass_their_tests(client, world, db, kind):
    path = EXAMPLES / f"{kind}.yaml"
    assert path.exists(), f"rules/examples has no {path.name}"
    resp = upload(client, world, path.read_text(encoding="utf-8"), name=path.name, kind=kind)
    if resp.status_code == 422:  # names the test world lacks: reported with positions, then created
        errors = resp.get_json()["errors"]
        assert all(e["pointer"].startswith(f"{path.name}:") for e in errors), errors
        add_references(db, world, errors)
        resp = upload(client, world, path.read_text(encoding="utf-8"), name=path.name, kind=kind)
    assert resp.status_code == 201, resp.get_json()
    tests = path.with_name(f"{kind}.tests.yaml")
    if tests.exists():
        report = client.post(
            f"/v1/rulesets/{resp.get_json()['id']}/test",
            json={"name": tests.name, "source": tests.read_text(encoding="utf-8")},
            headers=world["admin"].headers,
        ).get_json()
        assert report["failed"] == 0, report


def test_same_content_uploaded_again_returns_the_stored_version(client, world):
    first = upload(client, world, files.POLICY, name="policy.yaml")
    again = upload(client, world, files.POLICY_REFORMATTED, name="policy-as-json.yaml")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["name"] == "policy.yaml"
    assert list(statuses(client, world, "policy")) == [first.get_json()["id"]]


def test_invalid_file_is_answered_422_with_every_error_and_its_position(client, world):
    resp = upload(client, world, files.BAD_ASSIGNMENT, name="assignment.yaml")
    assert resp.status_code == 422
    assert resp.headers["Content-Type"] == "application/problem+json"
    body = resp.get_json()
    assert body["type"].endswith("/ruleset-invalid")
    lines = [f"{e['pointer']}: {e['detail']}" for e in body["errors"]]
    assert lines == [
        "assignment.yaml:5:18: rules[0].when.fact: unknown fact 'regoin' (did you mean 'region'?)",
        "assignment.yaml:7:30: rules[0].then.add_resources[0].user: unknown user 'nobody'",
        "assignment.yaml:11:7: rules[1].then.add_resourcez: unknown field 'add_resourcez' "
        "(did you mean 'add_resources'?); allowed: add_resources, add_territories",
    ]
    assert statuses(client, world, "assignment") == {}


def test_yaml_syntax_error_is_reported_with_its_position(client, world):
    resp = upload(client, world, files.BAD_POLICY_SYNTAX, name="policy.yaml")
    assert resp.status_code == 422
    [error] = resp.get_json()["errors"]
    assert error["pointer"] == "policy.yaml:6:1"
    assert "YAML syntax error" in error["detail"]


def test_references_are_checked_against_the_database(client, world):
    unknown_partner = files.ASSIGNMENT.replace("partner-a", "partner-q")
    resp = upload(client, world, unknown_partner, name="assignment.yaml")
    assert resp.status_code == 422
    [error] = resp.get_json()["errors"]
    assert error["pointer"] == "assignment.yaml:9:42"
    assert error["detail"].startswith("rules[0].when.all[1].value: unknown partner 'partner-q'")


def test_a_file_of_another_kind_than_announced_is_refused(client, world):
    resp = upload(client, world, files.POLICY, kind="approval")
    assert resp.status_code == 422
    assert "kind: expected 'approval'" in resp.get_json()["errors"][0]["detail"]


def test_validate_checks_without_storing(client, world):
    headers = world["admin"].headers
    resp = client.post(
        "/v1/rulesets/validate", json={"name": "p.yaml", "source": files.POLICY}, headers=headers
    )
    assert resp.status_code == 200, resp.get_json()
    report = resp.get_json()
    assert (report["valid"], report["kind"], report["rule_count"], report["existing_id"]) == (
        True,
        "policy",
        2,
        None,
    )
    assert report["verification"]["ok"] is True
    bad = {"name": "a.yaml", "source": files.BAD_ASSIGNMENT}
    assert client.post("/v1/rulesets/validate", json=bad, headers=headers).status_code == 422
    assert statuses(client, world, "policy") == {}


def test_a_version_whose_smoke_evaluation_times_out_is_not_stored(client, world, app):
    v1 = upload(client, world, files.POLICY).get_json()["id"]
    activate(client, world, v1)
    app.config["PRM_RULES_VERIFY_TIMEOUT"] = 0.01  # the child cannot even start Python in time
    resp = upload(client, world, files.POLICY_V2, name="policy-v2.yaml")
    assert resp.status_code == 422
    [error] = resp.get_json()["errors"]
    assert error["pointer"] == "policy-v2.yaml:1:1"
    assert "did not load and evaluate within 0.01 s" in error["detail"]
    assert statuses(client, world, "policy") == {v1: "active"}


# --- reading ------------------------------------------------------------------------------------------


def test_internal_roles_read_versions_and_partners_are_refused(client, world):
    ruleset_id = upload(client, world, files.POLICY).get_json()["id"]
    for actor in ("cam_1", "integration", "admin"):
        resp = client.get(f"/v1/rulesets/{ruleset_id}", headers=world[actor].headers)
        assert resp.status_code == 200
        assert resp.get_json()["source"] == files.POLICY
        assert resp.get_json()["ast"]["rules"][0]["id"] == "big-deals"
    for actor in ("partner_user_a", "partner_admin_a"):
        assert client.get(f"/v1/rulesets/{ruleset_id}", headers=world[actor].headers).status_code == 403
        assert client.get("/v1/rulesets", headers=world[actor].headers).status_code == 403
    assert client.get("/v1/rulesets/999", headers=world["admin"].headers).status_code == 404


def test_only_admins_upload_and_activate(client, world):
    assert upload(client, world, files.POLICY, actor="cam_1").status_code == 403
    assert upload(client, world, files.POLICY, actor="partner_admin_a").status_code == 403
    ruleset_id = upload(client, world, files.POLICY).get_json()["id"]
    assert activate(client, world, ruleset_id, actor="cam_1").status_code == 403


def test_list_filters_by_kind_and_pages(client, world):
    ids = [
        upload(client, world, src).get_json()["id"] for src in (files.POLICY, files.APPROVAL, files.POLICY_V2)
    ]
    assert list(statuses(client, world, "policy")) == [ids[0], ids[2]]
    headers = world["cam_1"].headers
    first = client.get("/v1/rulesets?limit=2", headers=headers).get_json()
    assert [i["id"] for i in first["items"]] == ids[:2]
    rest = client.get(f"/v1/rulesets?limit=2&cursor={first['next_cursor']}", headers=headers).get_json()
    assert ([i["id"] for i in rest["items"]], rest["next_cursor"]) == ([ids[2]], None)
    assert "source" not in first["items"][0]


# --- activation and rollback --------------------------------------------------------------------------


def test_activation_archives_the_previous_version_of_the_same_kind_only(client, world, db):
    v1 = upload(client, world, files.POLICY).get_json()["id"]
    v2 = upload(client, world, files.POLICY_V2).get_json()["id"]
    approval = upload(client, world, files.APPROVAL).get_json()["id"]
    assert activate(client, world, approval).status_code == 200
    resp = activate(client, world, v1)
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "active"
    assert resp.get_json()["activated_at"] is not None
    resp = activate(client, world, v2)
    assert resp.status_code == 200
    assert statuses(client, world, "policy") == {v1: "archived", v2: "active"}
    assert statuses(client, world, "approval") == {approval: "active"}
    old = client.get(f"/v1/rulesets/{v1}", headers=world["admin"].headers).get_json()
    assert old["source"] == files.POLICY  # the archived version is kept intact
    assert audit_actions(db, v1) == ["uploaded", "activated", "archived"]
    assert audit_actions(db, v2) == ["uploaded", "activated"]


def test_activate_needs_the_current_etag(client, world):
    v1 = upload(client, world, files.POLICY).get_json()["id"]
    v2 = upload(client, world, files.POLICY_V2).get_json()["id"]
    assert activate(client, world, v1).status_code == 200
    stale = client.get(f"/v1/rulesets/{v2}", headers=world["admin"].headers).headers["ETag"]
    assert activate(client, world, v2).status_code == 200  # v2 changes: its ETag moves on
    assert activate(client, world, v1, etag=stale).status_code == 412
    bumped = activate(client, world, v1, etag=f'"{v1}.1"')  # v1 was activated and archived since
    assert bumped.status_code == 412
    assert bumped.get_json()["current_etag"] != f'"{v1}.1"'
    assert statuses(client, world, "policy") == {v1: "archived", v2: "active"}
    no_header = client.post(f"/v1/rulesets/{v1}/activate", headers=world["admin"].headers)
    assert no_header.status_code == 428
    assert statuses(client, world, "policy") == {v1: "archived", v2: "active"}


def test_activating_the_active_version_changes_nothing(client, world, db):
    v1 = upload(client, world, files.POLICY).get_json()["id"]
    first = activate(client, world, v1)
    again = activate(client, world, v1)
    assert again.status_code == 200
    assert again.headers["ETag"] == first.headers["ETag"]
    assert audit_actions(db, v1) == ["uploaded", "activated"]


def test_a_failed_upload_leaves_the_active_version_active(client, world):
    v1 = upload(client, world, files.POLICY).get_json()["id"]
    activate(client, world, v1)
    bad = files.POLICY.replace("expiry_days: 90", "expiry_dayz: 90")
    assert upload(client, world, bad).status_code == 422
    assert statuses(client, world, "policy") == {v1: "active"}
    assert service.active_rulesets(client.application.extensions["prm.db"])["policy"].rules[1].id == "default"


def test_rollback_reactivates_the_version_active_before(client, world, db):
    ids = [
        upload(client, world, src).get_json()["id"]
        for src in (files.POLICY, files.POLICY_V2, files.POLICY_V3)
    ]
    for ruleset_id in ids:
        assert activate(client, world, ruleset_id).status_code == 200
    headers = world["admin"].headers
    resp = client.post("/v1/rulesets/rollback", json={"kind": "policy"}, headers=headers)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["id"] == ids[1]
    assert statuses(client, world, "policy") == {ids[0]: "archived", ids[1]: "active", ids[2]: "archived"}
    assert audit_actions(db, ids[1])[-1] == "rolled_back"
    named = client.post(
        "/v1/rulesets/rollback", json={"kind": "policy", "target_id": ids[0]}, headers=headers
    )
    assert named.status_code == 200
    assert statuses(client, world, "policy") == {ids[0]: "active", ids[1]: "archived", ids[2]: "archived"}


def test_rollback_refuses_what_it_cannot_do(client, world):
    headers = world["admin"].headers
    assert client.post("/v1/rulesets/rollback", json={"kind": "policy"}, headers=headers).status_code == 409
    draft = upload(client, world, files.POLICY).get_json()["id"]
    approval = upload(client, world, files.APPROVAL).get_json()["id"]
    for target in (draft, approval):
        resp = client.post(
            "/v1/rulesets/rollback", json={"kind": "policy", "target_id": target}, headers=headers
        )
        assert resp.status_code == 409
    missing = client.post("/v1/rulesets/rollback", json={"kind": "policy", "target_id": 999}, headers=headers)
    assert missing.status_code == 404
    assert statuses(client, world, "policy") == {draft: "draft"}
    assert (
        client.post(
            "/v1/rulesets/rollback", json={"kind": "policy"}, headers=world["cam_1"].headers
        ).status_code
        == 403
    )


def test_active_rulesets_follow_activation(client, world, db):
    service.clear_cache()
    assert service.active_rulesets(db) == {}
    v1 = upload(client, world, files.POLICY).get_json()
    approval = upload(client, world, files.APPROVAL).get_json()
    activate(client, world, v1["id"])
    activate(client, world, approval["id"])
    active = service.active_rulesets(db)
    assert {kind: rs.version for kind, rs in active.items()} == {
        "policy": v1["version_hash"],
        "approval": approval["version_hash"],
    }
    v2 = upload(client, world, files.POLICY_V2).get_json()
    activate(client, world, v2["id"])
    assert service.active_rulesets(db)["policy"].version == v2["version_hash"]
    assert service.active_rulesets(db)["approval"] is active["approval"]  # cached, not rebuilt


def test_warnings_come_back_with_the_stored_version(client, world):
    no_catch_all = files.APPROVAL.replace(
        "    when: always\n", "    when: {fact: deal_size, op: gt, value: 0}\n"
    )
    resp = upload(client, world, no_catch_all, name="approval.yaml")
    assert resp.status_code == 201, resp.get_json()
    [warning] = resp.get_json()["warnings"]
    assert warning["severity"] == "warning"
    assert warning["text"].startswith("approval.yaml:4:1: rules: warning: no catch-all rule")


def test_the_next_evaluation_after_an_activation_uses_the_new_version(client, world, db):
    from rules.evaluator import get_evaluator

    evaluator = get_evaluator("durable")
    v1 = upload(client, world, files.POLICY).get_json()
    activate(client, world, v1["id"])
    outcome = evaluator.evaluate(service.active_rulesets(db)["policy"], {"deal_size": 150000})
    assert (outcome.fired, outcome.actions.expiry_days) == (("big-deals",), 30)
    v2 = upload(client, world, files.POLICY_V2).get_json()
    activate(client, world, v2["id"])
    outcome = evaluator.evaluate(service.active_rulesets(db)["policy"], {"deal_size": 150000})
    assert (outcome.ruleset_version, outcome.fired, outcome.actions.expiry_days) == (
        v2["version_hash"],
        ("default",),
        60,
    )
