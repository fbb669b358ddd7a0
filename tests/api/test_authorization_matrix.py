"""The authorization matrix (RELIABILITY.md, "Authorization"): one test per cell of
``authz_matrix.yaml`` (operation x principal x object), on SQLite and PostgreSQL.

The world (two partner organizations, the brand owner, one actor per principal, plus the records the
cells address) is built once per module and backend; every cell leaves it usable for the next one
(creates use fresh keys, changes send the current ETag, revocations revoke a freshly minted key).
"""

from __future__ import annotations

import io
import itertools
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from ruamel.yaml import YAML

from common.concurrency import etag_for
from common.database import Database
from common.errors import PROBLEM_MEDIA_TYPE
from common.settings import Settings
from directory.models import User
from directory.services.users import mint_key_for_user
from server import create_app
from tests.api.rulesets_files import POLICY, POLICY_TESTS, POLICY_V2
from tests.support import World, build_world

MATRIX_FILE = Path(__file__).with_name("authz_matrix.yaml")
PRINCIPALS = [
    "anonymous",
    "partner_user_a",
    "partner_admin_a",
    "partner_user_b",
    "cam_1",
    "cam_2",
    "admin",
    "integration",
]
PARTNER_PRINCIPALS = {"partner_user_a": "a", "partner_admin_a": "a", "partner_user_b": "b"}
MISSING_ID = 2_000_000_000
MISSING_KEY = "no-such-territory"
# first path segment after /v1 -> whether its records belong to an organization ("other" applies)
ORG_SCOPED = {"organizations", "users", "api-keys", "leads", "opportunities"}
KEY_OPERATIONS = {"create_api_key", "list_api_keys", "revoke_api_key"}

MATRIX: dict[str, Any] = YAML(typ="safe").load(MATRIX_FILE.read_text())
_unique = itertools.count(1)


def _cells() -> Iterator[Any]:
    for op, by_principal in MATRIX["operations"].items():
        for principal, expected in by_principal.items():
            if isinstance(expected, dict):
                for obj, status in expected.items():
                    yield pytest.param(op, principal, obj, status, id=f"{op}-{principal}-{obj}")
            else:
                yield pytest.param(op, principal, None, expected, id=f"{op}-{principal}")


# --- the world, once per module and backend -----------------------------------------------------------


@dataclass
class Env:
    client: FlaskClient
    db: Database
    world: World
    spec: dict[str, Any]
    operations: dict[str, tuple[str, str]]  # operationId -> (METHOD, /v1/path/{id})
    ids: dict[str, int] = field(default_factory=dict)

    def headers(self, principal: str) -> dict[str, str]:
        return dict(self.world[principal].headers)


def _operations(spec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        op["operationId"]: (method.upper(), path)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }


def _post_ok(client: FlaskClient, path: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
    resp = client.post(path, json=body, headers=headers)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path_factory.mktemp("authz") / "prm.sqlite3"
        shutil.copyfile(template, target)
        url = f"sqlite:///{target}"
    else:
        pg = request.getfixturevalue("postgres_template")
        pg.reset()
        url = pg.url
    patch = pytest.MonkeyPatch()
    patch.setenv("PRM_BATCH_BACKEND", "inline")  # reassignment runs in this process
    request.addfinalizer(patch.undo)
    app = create_app(Settings(database_url=url, log_json=False), TESTING=True)
    db: Database = app.extensions["prm.db"]
    client = app.test_client()
    world = build_world(db)
    spec = client.get("/docs/openapi.json").get_json()
    e = Env(client, db, world, spec, _operations(spec))
    admin = e.headers("admin")
    for side, org_id in (("a", world.partner_a_id), ("b", world.partner_b_id)):
        member = _post_ok(
            client,
            "/v1/users",
            admin,
            {
                "organization_id": org_id,
                "key": f"member-{side}",
                "email": f"member-{side}@partner-{side}.example",
                "name": f"Member {side.upper()}",
                "roles": ["partner_user"],
            },
        )
        e.ids[f"user_{side}"] = member["id"]
    programs = client.get("/v1/programs", headers=admin).get_json()["items"]
    e.ids["program"] = programs[0]["id"]
    e.ids["customer"] = _post_ok(
        client, "/v1/customers", admin, {"key": "acme", "name": "Acme", "country": "US"}
    )["id"]
    e.ids["product"] = _post_ok(
        client, "/v1/products", admin, {"key": "suite", "name": "Suite", "level": "group"}
    )["id"]
    e.ids["ruleset"] = _post_ok(client, "/v1/rulesets", admin, {"name": "policy.yaml", "source": POLICY})[
        "id"
    ]
    e.ids["territory-model"] = _new_model(e)
    _add_territory(e, e.ids["territory-model"], "EU", "Europe")
    e.ids["decision"] = _post_ok(client, "/v1/decisions", admin, {"facts": {"geography": "JP"}})["id"]
    e.ids["reassignment-run"] = _reassignment_run(e)
    for side in ("a", "b"):  # drafts that stay drafts (submit cells submit fresh leads)
        e.ids[f"lead_{side}"] = _new_lead(e, side)
    _activate_source(e, "approval.yaml", CAM_1_APPROVES)  # cam_1 approves, cam_2 does not
    e.ids["partner-crm-connection"] = _post_ok(
        client, "/v1/partner-crm-connections", admin, _connection_body(world.partner_a_id, "crm-a")
    )["id"]
    yield e
    db.dispose()


def _new_lead(env: Env, side: str) -> int:
    """A complete draft lead of partner ``side``, created by its partner user (submittable)."""
    body = {
        "name": f"Lead {next(_unique)}",
        "description": "a lead the matrix addresses",
        "customer_id": env.ids["customer"],
        "contact_name": "Pat Contact",
        "registration_type": "resale",
        "program": "resell",
        "deal_size": 1000,
        "currency": "EUR",
        "expected_close_date": "2027-06-30",
        "products": [{"product_id": env.ids["product"], "primary": True}],
    }
    lead_id: int = _post_ok(env.client, "/v1/leads", env.headers(f"partner_user_{side}"), body)["id"]
    return lead_id


CAM_1_APPROVES = """\
kind: approval
hit_policy: collect
rules:
  - id: cam-1-approves
    when: always
    then:
      steps:
        - name: cam 1
          users: [cam-1]
"""
# Approval operations -> the state their lead must be in (a fresh lead per cell; see _approval_target).
APPROVAL_STATES = {
    "approve_lead": "pending",
    "reject_lead": "pending",
    "request_lead_info": "pending",
    "withdraw_lead": "pending",
    "submit_lead_info": "info_requested",
    "change_lead_expiry": "approved",
    "request_lead_extension": "approved",
}
# Operations on a pending extension request (a fresh approved lead and request per cell).
EXTENSION_OPERATIONS = {"grant_lead_extension", "reject_lead_extension"}


def _activate_source(env: Env, name: str, source: str) -> None:
    admin = env.headers("admin")
    ruleset_id = _post_ok(env.client, "/v1/rulesets", admin, {"name": name, "source": source})["id"]
    etag = env.client.get(f"/v1/rulesets/{ruleset_id}", headers=admin).headers["ETag"]
    resp = env.client.post(f"/v1/rulesets/{ruleset_id}/activate", headers={**admin, "If-Match": etag})
    assert resp.status_code == 200, resp.get_data(as_text=True)


def _lead_action(env: Env, lead_id: int, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """An admin moves the lead (admins may act as approver and as submitter)."""
    admin = env.headers("admin")
    etag = env.client.get(f"/v1/leads/{lead_id}", headers=admin).headers["ETag"]
    resp = env.client.post(
        f"/v1/leads/{lead_id}/{action}", json=body or {}, headers={**admin, "If-Match": etag}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    out: dict[str, Any] = resp.get_json()
    return out


def _lead_in_state(env: Env, side: str, state: str) -> int:
    """A fresh lead of partner ``side``, submitted by its partner user (cam_1 approves it) and moved on."""
    lead_id = _new_lead(env, side)
    partner = env.headers(f"partner_user_{side}")
    etag = env.client.get(f"/v1/leads/{lead_id}", headers=partner).headers["ETag"]
    resp = env.client.post(f"/v1/leads/{lead_id}/submit", headers={**partner, "If-Match": etag})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    if state == "info_requested":
        _lead_action(env, lead_id, "request-info", {"question": "which sites?"})
    elif state == "approved":
        _lead_action(env, lead_id, "approve")
    return lead_id


PARTNER_LEAD_PROFILE = (Path(__file__).parents[2] / "transfer/profiles/partner_lead.yaml").read_text()
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# Operations on an opportunity transferred before (a fresh one per cell, with the partner's id known).
TRANSFERRED_OPERATIONS = {"send_opportunity_update", "receive_opportunity_update"}
# Operations on a lead kept from a partner's transfer (a fresh one per cell).
TRANSFERRED_LEAD_OPERATIONS = {"list_lead_transfers", "send_lead_update", "receive_lead_update"}


def _connection_body(organization_id: int, key: str) -> dict[str, Any]:
    """A partner CRM connection (a public literal address: the URL policy resolves no name here)."""
    return {
        "organization_id": organization_id,
        "key": key,
        "name": f"CRM {key}",
        "base_url": f"https://93.184.215.14/{key}",
        "operations": ["create", "update", "query"],
        "signing_secret": SECRET,
        "inbound_secret": SECRET,
        "profile": PARTNER_LEAD_PROFILE,
    }


def _transferred_opportunity(env: Env, side: str) -> int:
    from transfer.models import OpportunityTransfer

    opportunity_id = _new_opportunity(env, side)
    with env.db.transaction() as session:
        session.add(
            OpportunityTransfer(
                connection_id=env.ids["partner-crm-connection"],
                opportunity_id=opportunity_id,
                remote_id=f"R-{opportunity_id}",
                origin="outbound",
                status="successful",
                attempts=1,
            )
        )
    return opportunity_id


def _transferred_lead(env: Env, side: str) -> int:
    """A fresh lead of partner ``side`` kept from the partner CRM connection's transfer."""
    from transfer.models import OpportunityTransfer

    lead_id = _new_lead(env, side)
    with env.db.transaction() as session:
        session.add(
            OpportunityTransfer(
                connection_id=env.ids["partner-crm-connection"],
                lead_id=lead_id,
                remote_id=f"R-{lead_id}",
                remote_type="Lead",
                origin="inbound",
                status="successful",
                attempts=1,
            )
        )
    return lead_id


def _extension_request(env: Env, side: str) -> tuple[int, int]:
    """A fresh approved lead of partner ``side`` and its partner's pending extension request."""
    lead_id = _lead_in_state(env, side, "approved")
    body = {"expires_at": "2099-01-01T00:00:00+00:00", "reason": "the customer signs later"}
    request = _post_ok(
        env.client, f"/v1/leads/{lead_id}/extension-requests", env.headers(f"partner_user_{side}"), body
    )
    return lead_id, int(request["id"])


def _new_opportunity(env: Env, side: str) -> int:
    lead_id = _lead_in_state(env, side, "pending")
    opportunity_id: int = _lead_action(env, lead_id, "approve")["opportunity_id"]
    return opportunity_id


# A child record's path key -> its collection and a valid body to add one (as admin) for the cell to name.
CHILD_KEYS = {
    "{contact_id}": ("contacts", {"name": "Ken Sato"}),
    "{note_id}": ("notes", {"text": "a note"}),
    "{activity_id}": ("activities", {"subject": "Kick-off"}),
}
# Every key naming a record under the path's record (its line, its extension request, its children).
SUB_KEYS = ("{line_id}", "{request_id}", *CHILD_KEYS)


def _new_child(env: Env, opportunity_id: int, key: str) -> int:
    kind, body = CHILD_KEYS[key]
    record = f"/v1/opportunities/{opportunity_id}"
    etag = env.client.get(record, headers=env.headers("admin")).headers["ETag"]
    resp = env.client.post(f"{record}/{kind}", json=body, headers={**env.headers("admin"), "If-Match": etag})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    child_id: int = resp.get_json()[kind][-1]["id"]
    return child_id


def _first_revenue_line(env: Env, opportunity_id: int) -> int:
    resp = env.client.get(f"/v1/opportunities/{opportunity_id}", headers=env.headers("admin"))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    line_id: int = resp.get_json()["revenue_lines"][0]["id"]
    return line_id


# Operations on an unaccepted lead (a fresh one per cell: accepting it is once only).
OFFERED_LEAD_OPERATIONS = {"accept_lead", "offer_lead"}


def _offered_lead(env: Env, side: str) -> int:
    """A fresh unaccepted lead the admin created for partner ``side`` (visible to that partner)."""
    partner_id = env.world.partner_a_id if side == "a" else env.world.partner_b_id
    body = {"name": f"Offered {next(_unique)}", "primary_partner_id": partner_id}
    lead_id: int = _post_ok(env.client, "/v1/leads", env.headers("admin"), body)["id"]
    return lead_id


def _new_model(env: Env) -> int:
    """A planning territory model with a root territory ``WW``."""
    admin = env.headers("admin")
    model_id: int = _post_ok(env.client, "/v1/territory-models", admin, {"name": f"plan {next(_unique)}"})[
        "id"
    ]
    _add_territory(env, model_id, "WW", "Worldwide", parent=None)
    return model_id


def _model_etag(env: Env, model_id: int) -> str:
    resp = env.client.get(f"/v1/territory-models/{model_id}", headers=env.headers("admin"))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.headers["ETag"])


def _add_territory(env: Env, model_id: int, key: str, name: str, parent: str | None = "WW") -> None:
    headers = {**env.headers("admin"), "If-Match": _model_etag(env, model_id)}
    body = {"key": key, "name": name, "parent_key": parent, "type": "global" if parent is None else "channel"}
    _post_ok(env.client, f"/v1/territory-models/{model_id}/territories", headers, body)


def _new_policy(env: Env, activate: bool = False) -> int:
    """Upload a policy version with content of its own (a draft), and activate it if asked."""
    n = next(_unique)
    admin = env.headers("admin")
    source = POLICY_V2.replace("value: 250000", f"value: {250000 + n}")
    ruleset_id: int = _post_ok(env.client, "/v1/rulesets", admin, {"name": f"p{n}.yaml", "source": source})[
        "id"
    ]
    if activate:
        etag = env.client.get(f"/v1/rulesets/{ruleset_id}", headers=admin).headers["ETag"]
        resp = env.client.post(f"/v1/rulesets/{ruleset_id}/activate", headers={**admin, "If-Match": etag})
        assert resp.status_code == 200, resp.get_data(as_text=True)
    return ruleset_id


# Operations on a reassignment run -> the state of the fresh run each cell gets.
REASSIGNMENT_RUN_STATES = {
    "apply_reassignment_run": "planned",
    "cancel_reassignment_run": "planned",
    "revert_reassignment_run": "applied",
}


def _reassignment_run(env: Env, state: str = "planned") -> int:
    """A fresh run over the matrix's leads (drafts: nothing to move), planned or applied."""
    from common.batch import InlineBackend
    from registration.reassignment import schemas as rs
    from registration.reassignment import service as reassignment

    run = reassignment.create_run(env.db, None, rs.RunCreate(), backend=InlineBackend())
    if state == "applied":
        reassignment.apply_run(env.db, None, run.id, backend=InlineBackend())
    return run.id


# --- one valid request per cell -----------------------------------------------------------------------


def _fresh_key(env: Env, user_id: int) -> tuple[int, str]:
    """Mint a key for ``user_id`` (not the one the caller authenticates with); return (id, ETag)."""
    with env.db.transaction() as session:
        user = session.get(User, user_id)
        assert user is not None
        created = mint_key_for_user(session, None, user, "to revoke")
    return created.id, etag_for(created.id, created.version)


def _target(env: Env, op: str, principal: str, obj: str, segment: str) -> tuple[int, str, str | None]:
    """The id (and territory key or revenue line id) the cell's path names, and the record's ETag when
    already known."""
    _, template = env.operations[op]
    if obj == "missing":
        if "{key}" in template:
            return env.ids["territory-model"], MISSING_KEY, None
        if any(k in template for k in SUB_KEYS):
            return MISSING_ID, str(MISSING_ID), etag_for(MISSING_ID, 1)
        return MISSING_ID, MISSING_KEY, etag_for(MISSING_ID, 1)
    if segment == "opportunities" and op in TRANSFERRED_OPERATIONS:
        return _transferred_opportunity(env, "a" if obj == "own" else "b"), "", None
    child = next((k for k in CHILD_KEYS if k in template), None)
    if segment == "opportunities" and child is not None:  # a contact, note or activity of a fresh one
        opportunity_id = _new_opportunity(env, "a" if obj == "own" else "b")
        return opportunity_id, str(_new_child(env, opportunity_id, child)), None
    if segment == "opportunities" and "{line_id}" in template:  # the line is the path's key
        opportunity_id = _new_opportunity(env, "a" if obj == "own" else "b")
        return opportunity_id, str(_first_revenue_line(env, opportunity_id)), None
    if segment == "opportunities":  # an open one per cell (a close cell closes it)
        return _new_opportunity(env, "a" if obj == "own" else "b"), "", None
    if segment == "leads" and op in TRANSFERRED_LEAD_OPERATIONS:
        return _transferred_lead(env, "a" if obj == "own" else "b"), "", None
    if segment == "leads" and op in EXTENSION_OPERATIONS:
        lead_id, request_id = _extension_request(env, "a" if obj == "own" else "b")
        return lead_id, str(request_id), None
    if segment == "leads" and op in APPROVAL_STATES:
        return _lead_in_state(env, "a" if obj == "own" else "b", APPROVAL_STATES[op]), "", None
    if segment == "leads" and op in OFFERED_LEAD_OPERATIONS:
        return _offered_lead(env, "a" if obj == "own" else "b"), "", None
    if segment == "leads":
        side = "a" if obj == "own" else "b"
        if op == "submit_lead":  # a submitted lead cannot be submitted again: a fresh one per cell
            return _new_lead(env, side), "", None
        return env.ids[f"lead_{side}"], "", None
    if segment in ORG_SCOPED:
        if obj == "self":
            user_id = env.world[principal].user_id or env.ids["user_a"]
        elif segment == "organizations":
            return (env.world.partner_a_id if obj == "own" else env.world.partner_b_id), "", None
        else:
            user_id = env.ids["user_a"] if obj == "own" else env.ids["user_b"]
        if segment == "api-keys":
            key_id, etag = _fresh_key(env, user_id)
            return key_id, "", etag
        return user_id, "", None
    assert obj == "own", f"{op}: object {obj!r} makes no sense for {segment}"
    if op == "activate_ruleset":
        return _new_policy(env), "", None
    if op in ("activate_territory_model", "import_territory_model", "upload_territory_model"):
        return _new_model(env), "", None
    if op == "delete_territory":
        leaf = f"leaf-{next(_unique)}"
        _add_territory(env, env.ids["territory-model"], leaf, "Leaf")
        return env.ids["territory-model"], leaf, None
    if op in ("list_dimension_members", "import_dimension_members", "upload_dimension_members"):
        return env.ids["territory-model"], "geography", None
    if segment == "territory-models":
        return env.ids["territory-model"], "EU", None
    if segment == "reassignment-runs" and op in REASSIGNMENT_RUN_STATES:
        run_id = _reassignment_run(env, REASSIGNMENT_RUN_STATES[op])
        return run_id, "", etag_for(run_id, 1)  # runs take no If-Match (a plan is applied as planned)
    return env.ids[segment.rstrip("s")], "", None


def _body(env: Env, op: str) -> dict[str, Any]:
    """Keyword arguments for the test client: a valid body for the operation."""
    n = next(_unique)
    bodies: dict[str, dict[str, Any]] = {
        "create_organization": {"json": {"key": f"org-{n}", "name": f"Org {n}", "partner_type": "reseller"}},
        "update_organization": {"json": {"can_register_leads": True}},
        "create_program": {"json": {"key": f"program-{n}", "name": f"Program {n}"}},
        "update_program": {"json": {"description": f"edited {n}"}},
        "create_user": {
            "json": {
                "organization_id": env.world.partner_a_id,
                "key": f"user-{n}",
                "email": f"user-{n}@partner-a.example",
                "name": f"User {n}",
                "roles": ["partner_user"],
            }
        },
        "update_user": {"json": {"name": f"Member {n}"}},
        "create_api_key": {"json": {"name": f"key {n}"}},
        "create_customer": {"json": {"key": f"customer-{n}", "name": f"Customer {n}", "country": "DE"}},
        "update_customer": {"json": {"region": f"Region {n}"}},
        "propose_customer": {"json": {"name": f"Proposed {n}", "country": "JP"}},
        "import_customers": {
            "data": f"key,name,country\nimported-customer-{n},Imported {n},FR\n",
            "content_type": "text/csv",
        },
        "create_product": {"json": {"key": f"product-{n}", "name": f"Product {n}", "level": "group"}},
        "update_product": {"json": {"name": f"Product {n}"}},
        "import_products": {
            "data": f"key,name,level\nimported-product-{n},Imported {n},group\n",
            "content_type": "text/csv",
        },
        "upload_ruleset": {
            "json": {"name": f"p{n}.yaml", "source": POLICY_V2.replace("250000", str(250000 + n))}
        },
        "validate_ruleset": {"json": {"name": "policy.yaml", "source": POLICY}},
        "rollback_ruleset": {"json": {"kind": "policy"}},
        "test_ruleset": {"json": {"source": POLICY_TESTS}},
        "create_territory_model": {"json": {"name": f"plan {n}"}},
        "import_territory_model": {
            "json": {"territories": "key,parent_key,name,type\nWW,,Worldwide,global\n"}
        },
        "upload_territory_model": {
            "data": {
                "territories": (io.BytesIO(b"key,parent_key,name,type\nWW,,Worldwide,global\n"), "t.csv")
            },
            "content_type": "multipart/form-data",
        },
        "upload_dimension_members": {
            "data": {
                "members": (
                    io.BytesIO(f"key,parent,name\nFR-{85000 + n},FR-75C,Paris {n}\n".encode()),
                    "m.csv",
                )
            },
            "content_type": "multipart/form-data",
        },
        "declare_territory_dimension": {"json": {"name": f"dim_{n}", "source": "customer_industry"}},
        "import_dimension_members": {
            "json": {"members": f"key,parent,name\nFR-{75000 + n},FR-75C,Paris {n}\n"}
        },
        "create_territory": {"json": {"key": f"T-{n}", "parent_key": "WW", "name": f"Territory {n}"}},
        "update_territory": {"json": {"name": f"Europe {n}"}},
        "set_territory_coverage": {"json": {"coverage": {"geography": {"include": ["JP"]}}}},
        "set_territory_team": {"json": {"team": [{"user": "cam-1", "role": "channel_account_manager"}]}},
        "what_if": {"json": {"facts": {"geography": "JP", "deal_size": n}}},
        "create_decision": {"json": {"facts": {"geography": "JP"}}},
        "preview_territory_model": {"json": {}},
        "create_lead": {"json": {"name": f"Lead {n}"}},
        "update_lead": {"json": {"description": f"edited {n}"}},
        "add_lead_note": {"json": {"text": f"note {n}"}},
        "offer_lead": {"json": {"organization_ids": [env.world.partner_a_id]}},
        "approve_lead": {"json": {"comment": f"approved {n}"}},
        "reject_lead": {"json": {"comment": f"rejected {n}"}},
        "request_lead_info": {"json": {"question": f"question {n}?"}},
        "submit_lead_info": {"json": {"text": f"answer {n}"}},
        "withdraw_lead": {"json": {"comment": f"withdrawn {n}"}},
        "change_lead_expiry": {"json": {"expires_at": f"2099-01-{1 + n % 28:02d}T00:00:00+00:00"}},
        "request_lead_extension": {
            "json": {"expires_at": f"2099-02-{1 + n % 28:02d}T00:00:00+00:00", "reason": f"later {n}"}
        },
        "grant_lead_extension": {"json": {"comment": f"granted {n}"}},
        "reject_lead_extension": {"json": {"comment": f"refused {n}"}},
        # the body is optional (as of now); an explicit time is the same right (admin, integration)
        "expire_registrations": {"json": {"as_of": "2026-01-01T00:00:00+00:00"}},
        "close_opportunity": {"json": {"status": "won"}},
        "create_reassignment_run": {"json": {"full": True}},
        "lock_lead_assignment": {"json": {"reason": f"key account {n}"}},
        "lock_opportunity_assignment": {"json": {"reason": f"key account {n}"}},
        "freeze_territory": {"json": {"reason": f"key accounts {n}"}},
        "update_opportunity_revenue_line": {"json": {"amount": 1000 + n, "currency": "EUR"}},
        "update_opportunity": {"json": {"stage": f"stage {n}"}},
        "add_opportunity_contact": {"json": {"name": f"Contact {n}"}},
        "update_opportunity_contact": {"json": {"role": f"role {n}"}},
        "delete_opportunity_contact": {},
        "add_opportunity_note": {"json": {"text": f"note {n}"}},
        "update_opportunity_note": {"json": {"text": f"note {n} changed"}},
        "delete_opportunity_note": {},
        "add_opportunity_activity": {"json": {"subject": f"call {n}", "kind": "call"}},
        "update_opportunity_activity": {"json": {"done": True}},
        "delete_opportunity_activity": {},
        "create_partner_crm_connection": {"json": _connection_body(env.world.partner_b_id, f"crm-{n}")},
        "update_partner_crm_connection": {"json": {"timeout_seconds": 5 + n % 10}},
        "put_partner_crm_connection_profile": {
            "data": PARTNER_LEAD_PROFILE,
            "content_type": "application/yaml",
        },
        "put_partner_crm_connection_inbound_profile": {
            "data": PARTNER_LEAD_PROFILE,
            "content_type": "application/yaml",
        },
        "upload_partner_crm_connection": {
            "data": {
                "connection": json.dumps(
                    {
                        k: v
                        for k, v in _connection_body(env.world.brand_id, f"crm-up-{n}").items()
                        if k != "profile"
                    }
                ),
                "profile": (io.BytesIO(PARTNER_LEAD_PROFILE.encode()), "partner_lead.yaml"),
            },
            "content_type": "multipart/form-data",
        },
        # the partner protocol: any JSON document (unsigned, so every caller gets 401 first)
        "receive_partner_transfer": {"json": {"id": f"remote-{n}", "name": f"Deal {n}"}},
        "receive_partner_update": {"json": {"id": f"remote-{n}", "name": f"Deal {n}"}},
        "receive_partner_lead_update": {"json": {"id": f"remote-{n}", "name": f"Deal {n}"}},
        "receive_partner_batch": {
            "json": {"items": [{"operation": "query", "remote_id": f"r-{n}", "headers": {}}]}
        },
        "transfer_opportunity": {"json": {"partner_organization_id": env.world.partner_a_id}},
        "send_opportunity_update": {"json": {"partner_organization_id": env.world.partner_a_id}},
        "receive_opportunity_update": {"json": {"partner_organization_id": env.world.partner_a_id}},
        "send_lead_update": {"json": {"partner_organization_id": env.world.partner_a_id}},
        "receive_lead_update": {"json": {"partner_organization_id": env.world.partner_a_id}},
    }
    return bodies.get(op, {})


# Query strings an operation needs to be a valid request.
QUERIES = {"why_not": "?territory=EU&user=cam-1", "search_duplicates": "?contact=pat"}


def _send(env: Env, op: str, principal: str, obj: str | None) -> tuple[Any, list[int]]:
    """Send the cell's request; returns the response and the record ids its path names."""
    assert op in env.operations, f"{op} is not in the OpenAPI document"
    method, template = env.operations[op]
    segment = template.split("/")[2]
    headers = env.headers(principal)
    ids: list[int] = []
    path = template
    if op == "rollback_ruleset" and principal == "admin":  # something to roll back to (the one caller
        # admitted needs it; the others are refused before the versions are looked at)
        _new_policy(env, activate=True)
        _new_policy(env, activate=True)
    if obj is not None:
        target, key, etag = _target(env, op, principal, obj, segment)
        path = template.replace("{id}", str(target)).replace("{key}", key)
        for sub in SUB_KEYS:
            path = path.replace(sub, key)
        path += QUERIES.get(op, "")
        ids = [target] + [int(key) for k in SUB_KEYS if k in template]
        if method != "GET":  # changes name the version they were made against (ignored where not needed)
            if etag is None:
                record = "/".join(path.split("/")[:4])  # /v1/<collection>/<id>
                current = env.client.get(record, headers=env.headers("admin"))
                etag = current.headers["ETag"] if current.status_code == 200 else etag_for(target, 1)
            headers["If-Match"] = etag
    elif op in QUERIES:
        path += QUERIES[op]
    body = _body(env, op)
    has_body = "requestBody" in env.spec["paths"][template][method.lower()]
    assert bool(body) == has_body, (
        f"{op}: _body() must give a valid request body exactly when one is documented"
    )
    return env.client.open(path, method=method, headers=headers, **body), ids


def _without_id(text: str, record_id: int | None) -> str:
    """The response text with the record's id (in the detail, the instance...) replaced by ``{id}``."""
    return re.sub(rf"\b{record_id}\b", "{id}", text) if record_id is not None else text


def _without_ids(text: str, record_ids: list[int]) -> str:
    """The response text with each id its path named (a record, a line of it...) replaced by ``{id}``."""
    for record_id in record_ids:
        text = _without_id(text, record_id)
    return text


def _foreign(principal: str) -> str | None:
    """The object that is another organization's record to a partner principal (None for the others)."""
    side = PARTNER_PRINCIPALS.get(principal)
    return None if side is None else ("other" if side == "a" else "own")


@pytest.mark.parametrize(("op", "principal", "obj", "expected"), list(_cells()))
def test_cell(env: Env, op: str, principal: str, obj: str | None, expected: int) -> None:
    resp, targets = _send(env, op, principal, obj)
    text = resp.get_data(as_text=True)
    assert resp.status_code == expected, f"{op} as {principal} on {obj}: {resp.status_code} {text}"
    if expected >= 400:
        assert resp.mimetype == PROBLEM_MEDIA_TYPE, text
        problem = resp.get_json()
        assert problem["status"] == expected and problem["type"] and problem["title"], problem
    segment = env.operations[op][1].split("/")[2]
    if segment in ORG_SCOPED and obj is not None and obj == _foreign(principal):
        # to a partner, another organization's record answers exactly like a missing one: the same
        # status and, apart from the id, the same bytes (whatever the status: 404, 403, 422...)
        missing, missing_ids = _send(env, op, principal, "missing")
        assert missing.status_code == resp.status_code, missing.get_data(as_text=True)
        assert missing.mimetype == resp.mimetype
        assert _without_ids(text, targets) == _without_ids(missing.get_data(as_text=True), missing_ids)
    side = PARTNER_PRINCIPALS.get(principal)
    if side and resp.status_code == 200 and op in ("list_organizations", "list_users"):
        own_org = env.world.partner_a_id if side == "a" else env.world.partner_b_id
        items = resp.get_json()["items"]
        assert items
        assert {i.get("organization_id", i["id"]) for i in items} == {own_org}


# --- the matrix covers the OpenAPI document -----------------------------------------------------------


def _spec_without_database(tmp_path: Path) -> dict[str, Any]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.sqlite3'}", log_json=False))
    try:
        spec: dict[str, Any] = app.test_client().get("/docs/openapi.json").get_json()
    finally:
        app.extensions["prm.db"].dispose()
    return spec


def test_matrix_covers_every_operation_and_principal(tmp_path: Path) -> None:
    spec = _spec_without_database(tmp_path)
    operations = _operations(spec)
    listed = MATRIX["operations"]
    assert MATRIX["principals"] == PRINCIPALS
    problems = [f"operation {op} has no entry in {MATRIX_FILE.name}" for op in operations if op not in listed]
    problems += [
        f"{MATRIX_FILE.name} names {op}, which is not in the OpenAPI document"
        for op in listed
        if op not in operations
    ]
    for op, by_principal in listed.items():
        if op not in operations:
            continue
        method, path = operations[op]
        documented = {int(s) for s in spec["paths"][path][method.lower()]["responses"]}
        problems += [f"{op}: no entry for principal {p}" for p in PRINCIPALS if p not in by_principal]
        problems += [f"{op}: unknown principal {p}" for p in by_principal if p not in PRINCIPALS]
        segment = path.split("/")[2]
        objects = {"own", "missing"}
        if "{id}" in path:
            if segment in ORG_SCOPED:
                objects.add("other")
            if op in KEY_OPERATIONS:
                objects.add("self")
        for principal, expected in by_principal.items():
            if "{id}" not in path:
                if not isinstance(expected, int):
                    problems.append(f"{op}/{principal}: expected one status (no record id in the path)")
                    continue
                statuses = [expected]
            else:
                if not isinstance(expected, dict) or set(expected) != objects:
                    problems.append(f"{op}/{principal}: expected a status for each of {sorted(objects)}")
                    continue
                statuses = list(expected.values())
            problems += [
                f"{op}/{principal}: {s} is not a documented response" for s in statuses if s not in documented
            ]
    assert not problems, "\n".join(problems)


# --- ids named in a request body ----------------------------------------------------------------------
#
# The cells above name records in the path. A body names them too (a lead's primary partner, a user's
# organization or manager, the organizations a lead is offered to): to a caller who may not see another
# organization, that organization's records must answer exactly like missing ones there as well, or the
# messages tell which ids exist ("must be your own organization" for an existing one, "no partner
# organization N" for a missing one).

BODY_REFERENCES = [
    "create_lead/primary_partner_id",
    "update_lead/primary_partner_id",
    "create_user/organization_id",
    "create_user/manager_id",
    "update_user/manager_id",
    "offer_lead/organization_ids",
]


def _reference_request(
    env: Env, reference: str, principal: str, ref_id: int
) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    """(method, path, headers, body) of a request of ``principal`` whose body names ``ref_id``."""
    op, field_name = reference.split("/")
    side = PARTNER_PRINCIPALS.get(principal, "a")
    headers = env.headers(principal)
    n = next(_unique)
    if op == "create_lead":
        return "POST", "/v1/leads", headers, {"name": f"Lead {n}", field_name: ref_id}
    if op == "create_user":
        body: dict[str, Any] = {
            "key": f"ref-user-{n}",
            "email": f"ref-user-{n}@partner-{side}.example",
            "name": f"User {n}",
            "roles": ["partner_user"],
            field_name: ref_id,
        }
        if field_name == "manager_id":
            body["organization_id"] = env.world.partner_a_id if side == "a" else env.world.partner_b_id
        return "POST", "/v1/users", headers, body
    if op == "update_lead":
        path = f"/v1/leads/{_new_lead(env, side)}"
        body = {field_name: ref_id}
    elif op == "update_user":
        path = f"/v1/users/{env.ids[f'user_{side}']}"
        body = {field_name: ref_id}
    else:  # offer_lead
        path = f"/v1/leads/{_offered_lead(env, side)}/offers"
        body = {field_name: [ref_id]}
    record = path.removesuffix("/offers")
    headers["If-Match"] = env.client.get(record, headers=env.headers("admin")).headers["ETag"]
    return "POST" if op == "offer_lead" else "PATCH", path, headers, body


def _other_organizations_record(env: Env, reference: str, principal: str) -> int:
    """An existing record of an organization other than the principal's (partner B's for internal users)."""
    other = "a" if PARTNER_PRINCIPALS.get(principal) == "b" else "b"
    if reference.endswith("manager_id"):
        return env.ids[f"user_{other}"]
    return env.world.partner_a_id if other == "a" else env.world.partner_b_id


@pytest.mark.parametrize("reference", BODY_REFERENCES)
@pytest.mark.parametrize("principal", PRINCIPALS)
def test_another_organizations_id_in_a_body_answers_like_a_missing_one(
    env: Env, principal: str, reference: str
) -> None:
    foreign_id = _other_organizations_record(env, reference, principal)
    answers = []
    for ref_id in (foreign_id, MISSING_ID):
        method, path, headers, body = _reference_request(env, reference, principal, ref_id)
        resp = env.client.open(path, method=method, headers=headers, json=body)
        text = resp.get_data(as_text=True)
        assert resp.status_code < 500, text
        if resp.status_code >= 400:
            assert resp.mimetype == PROBLEM_MEDIA_TYPE, text
        answers.append((resp.status_code, _without_id(_without_id(text, ref_id), _record_in(path))))
    (foreign_status, foreign_text), (missing_status, missing_text) = answers
    if principal in PARTNER_PRINCIPALS or principal == "anonymous":
        assert (foreign_status, foreign_text) == (missing_status, missing_text)
    else:  # internal users see every organization: a missing id is a clear 422, where they may act
        assert missing_status in (403, 422), missing_text
        if missing_status == 422:
            assert f'"pointer": "/{reference.split("/")[1]}' in missing_text, missing_text


def _record_in(path: str) -> int | None:
    """The record id a path names (the lead or user changed), which the answer may carry too."""
    match = re.search(r"/v1/[a-z-]+/(\d+)", path)
    return int(match.group(1)) if match else None


def test_a_partner_without_lead_rights_is_refused_before_the_ids_it_names_are_looked_at(
    client: FlaskClient, world: World, db: Database
) -> None:
    from directory.models import Organization

    with db.transaction() as session:
        org = session.get(Organization, world.partner_b_id)
        assert org is not None
        org.can_register_leads = False
    caller = world["partner_user_b"].headers
    answers = []
    for ref_id in (world.partner_a_id, MISSING_ID):
        resp = client.post("/v1/leads", json={"name": "Lead", "primary_partner_id": ref_id}, headers=caller)
        answers.append((resp.status_code, _without_id(resp.get_data(as_text=True), ref_id)))
    assert answers[0] == answers[1]
    assert answers[0][0] == 403
