"""Every change names the version it was made against (RFC 9110 conditional requests): without If-Match
428, with a stale one 412 and nothing changed, with the current one 2xx and a new ETag. The operations are
taken from the OpenAPI document (PUT, PATCH, DELETE), so a new one the test cannot exercise fails
the suite."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.support import World

MUTATING_METHODS = {"put", "patch", "delete"}


@dataclass
class Target:
    """One record an operation can change, as the admin sees it."""

    path: str  # where to send the PATCH/DELETE
    read: Callable[[], tuple[str | None, dict[str, Any]]]  # -> (ETag from GET or None, stored representation)
    created_etag: str  # the ETag the record was created (or first read) with
    body: dict[str, Any] | str | None  # a valid change (a string is sent as YAML)
    stale_body: dict[str, Any] | str | None  # another valid change, sent with the stale ETag


def _get(client: Any, headers: dict[str, str], path: str) -> Callable[[], tuple[str | None, dict[str, Any]]]:
    def read() -> tuple[str | None, dict[str, Any]]:
        resp = client.get(path, headers=headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return resp.headers.get("ETag"), resp.get_json()

    return read


def _created(client: Any, headers: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    resp = client.post(path, json=body, headers=headers)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.headers.get("ETag"), "a created record carries its ETag"
    return resp


def organization(client: Any, world: World, h: dict[str, str]) -> Target:
    path = f"/v1/organizations/{world.partner_a_id}"
    etag, _ = _get(client, h, path)()
    assert etag
    return Target(path, _get(client, h, path), etag, {"name": "Partner A renamed"}, {"name": "Stale name"})


def program(client: Any, world: World, h: dict[str, str]) -> Target:
    resp = _created(client, h, "/v1/programs", {"key": "mssp", "name": "MSSP Program"})
    path = f"/v1/programs/{resp.get_json()['id']}"
    return Target(path, _get(client, h, path), resp.headers["ETag"], {"active": False}, {"name": "Stale"})


def user(client: Any, world: World, h: dict[str, str]) -> Target:
    path = f"/v1/users/{world['partner_user_a'].user_id}"
    etag, _ = _get(client, h, path)()
    assert etag
    return Target(path, _get(client, h, path), etag, {"name": "Renamed user"}, {"active": False})


def customer(client: Any, world: World, h: dict[str, str]) -> Target:
    body = {"key": "CUST-1", "name": "Customer One", "country": "DE"}
    resp = _created(client, h, "/v1/customers", body)
    path = f"/v1/customers/{resp.get_json()['id']}"
    return Target(
        path, _get(client, h, path), resp.headers["ETag"], {"industry": "retail"}, {"country": "FR"}
    )


def product(client: Any, world: World, h: dict[str, str]) -> Target:
    resp = _created(client, h, "/v1/products", {"key": "net", "name": "Networking", "level": "group"})
    path = f"/v1/products/{resp.get_json()['id']}"
    return Target(path, _get(client, h, path), resp.headers["ETag"], {"name": "Network"}, {"active": False})


def api_key(client: Any, world: World, h: dict[str, str]) -> Target:
    user_id = world["partner_user_a"].user_id
    resp = _created(client, h, f"/v1/users/{user_id}/api-keys", {"name": "laptop"})
    key_id = resp.get_json()["id"]

    def read() -> tuple[str | None, dict[str, Any]]:
        # Keys have no GET of their own; the list shows the stored state.
        listed = client.get(f"/v1/users/{user_id}/api-keys", headers=h)
        assert listed.status_code == 200
        return None, next(k for k in listed.get_json()["items"] if k["id"] == key_id)

    return Target(f"/v1/api-keys/{key_id}", read, resp.headers["ETag"], None, None)


def lead(client: Any, world: World, h: dict[str, str]) -> Target:
    resp = _created(client, h, "/v1/leads", {"name": "Lead", "primary_partner_id": world.partner_a_id})
    path = f"/v1/leads/{resp.get_json()['id']}"
    return Target(
        path, _get(client, h, path), resp.headers["ETag"], {"name": "Renamed lead"}, {"description": "Stale"}
    )


def lead_expiry(client: Any, world: World, h: dict[str, str]) -> Target:
    """An approved registration of partner A (submitted and approved by the admin, who may act on any
    step), whose expiry the admin moves."""
    customer = _created(client, h, "/v1/customers", {"key": "CUST-X", "name": "Customer X", "country": "JP"})
    product = _created(client, h, "/v1/products", {"key": "fw", "name": "Firewall", "level": "group"})
    body = {
        "name": "Lead",
        "primary_partner_id": world.partner_a_id,
        "customer_id": customer.get_json()["id"],
        "registration_type": "resale",
        "program": "resell",
        "products": [{"product_id": product.get_json()["id"], "primary": True}],
    }
    lead_id = _created(client, h, "/v1/leads", body).get_json()["id"]
    path = f"/v1/leads/{lead_id}"
    for action in ("submit", "approve"):
        etag = client.get(path, headers=h).headers["ETag"]
        resp = client.post(
            f"{path}/{action}", json={} if action == "approve" else None, headers={**h, "If-Match": etag}
        )
        assert resp.status_code == 200, resp.get_data(as_text=True)
    return Target(
        f"{path}/expiry",
        _get(client, h, path),
        resp.headers["ETag"],
        {"expires_at": "2099-01-01T00:00:00+00:00"},
        {"expires_at": "2098-01-01T00:00:00+00:00"},
    )


def opportunity_revenue_line(client: Any, world: World, h: dict[str, str]) -> Target:
    """A revenue line of the opportunity an approved registration converted into; the opportunity's
    ETag covers its lines."""
    customer = _created(client, h, "/v1/customers", {"key": "CUST-O", "name": "Customer O", "country": "JP"})
    product = _created(client, h, "/v1/products", {"key": "ids", "name": "IDS", "level": "group"})
    body = {
        "name": "Deal",
        "primary_partner_id": world.partner_a_id,
        "customer_id": customer.get_json()["id"],
        "registration_type": "resale",
        "program": "resell",
        "deal_size": 1000,
        "currency": "EUR",
        "products": [{"product_id": product.get_json()["id"], "primary": True}],
    }
    lead_id = _created(client, h, "/v1/leads", body).get_json()["id"]
    path = f"/v1/leads/{lead_id}"
    for action in ("submit", "approve"):
        etag = client.get(path, headers=h).headers["ETag"]
        resp = client.post(
            f"{path}/{action}", json={} if action == "approve" else None, headers={**h, "If-Match": etag}
        )
        assert resp.status_code == 200, resp.get_data(as_text=True)
    opportunity = f"/v1/opportunities/{resp.get_json()['opportunity_id']}"
    etag, stored = _get(client, h, opportunity)()
    assert etag
    return Target(
        f"{opportunity}/revenue-lines/{stored['revenue_lines'][0]['id']}",
        _get(client, h, opportunity),
        etag,
        {"amount": 1250.5},
        {"currency": "USD"},
    )


def _territory_model(client: Any, h: dict[str, str]) -> tuple[int, str]:
    """A planning model WW > EU > DE; returns (model id, the model's ETag after the last change)."""
    resp = _created(client, h, "/v1/territory-models", {"name": "plan"})
    model_id, etag = resp.get_json()["id"], resp.headers["ETag"]
    for body in (
        {"key": "WW", "name": "Worldwide", "type": "global"},
        {"key": "EU", "parent_key": "WW", "name": "Europe", "coverage": {"geography": {"include": ["EMEA"]}}},
        {"key": "DE", "parent_key": "EU", "name": "Germany", "coverage": {"geography": {"include": ["DE"]}}},
    ):
        url = f"/v1/territory-models/{model_id}/territories"
        etag = _created(client, {**h, "If-Match": etag}, url, body).headers["ETag"]
    return model_id, etag


def _territory(change: str) -> Callable[[Any, World, dict[str, str]], Target]:
    bodies: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
        "": ({"name": "Germany (DACH)"}, {"name": "Stale"}),
        "delete": (None, None),
        "/coverage": (
            {"coverage": {"geography": {"include": ["DE", "FR"]}}},
            {"coverage": {"geography": {"include": ["GB"]}}},
        ),
        "/team": (
            {"team": [{"user": "cam-1", "role": "channel_account_manager"}]},
            {"team": [{"user": "cam-2", "role": "channel_account_manager"}]},
        ),
    }

    def build(client: Any, world: World, h: dict[str, str]) -> Target:
        model_id, etag = _territory_model(client, h)
        base = f"/v1/territory-models/{model_id}"

        def read() -> tuple[str | None, dict[str, Any]]:
            # A territory's ETag is its model's; the model and its territory list show what is stored.
            model = client.get(base, headers=h)
            listed = client.get(f"{base}/territories?limit=500", headers=h)
            assert model.status_code == listed.status_code == 200, listed.get_data(as_text=True)
            return model.headers.get("ETag"), {"model": model.get_json(), "territories": listed.get_json()}

        body, stale_body = bodies[change]
        path = f"{base}/territories/DE" + ("" if change == "delete" else change)
        return Target(path, read, etag, body, stale_body)

    return build


def partner_crm_connection(client: Any, world: World, h: dict[str, str]) -> Target:
    from pathlib import Path

    profile = (Path(__file__).parents[2] / "transfer/profiles/partner_lead.yaml").read_text()
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = {
        "organization_id": world.partner_a_id,
        "key": "crm-a",
        "name": "CRM A",
        "base_url": "https://93.184.215.14/crm",
        "operations": ["create"],
        "signing_secret": secret,
        "inbound_secret": secret,
        "profile": profile,
    }
    resp = _created(client, h, "/v1/partner-crm-connections", body)
    path = f"/v1/partner-crm-connections/{resp.get_json()['id']}"
    return Target(
        path, _get(client, h, path), resp.headers["ETag"], {"timeout_seconds": 7}, {"name": "Stale"}
    )


def _approved_opportunity(client: Any, world: World, h: dict[str, str]) -> str:
    """The path of the opportunity an approved registration of partner A converted into."""
    customer = _created(client, h, "/v1/customers", {"key": "CUST-L", "name": "Customer L", "country": "JP"})
    product = _created(client, h, "/v1/products", {"key": "lk", "name": "Lock", "level": "group"})
    body = {
        "name": "Locked deal",
        "primary_partner_id": world.partner_a_id,
        "customer_id": customer.get_json()["id"],
        "registration_type": "resale",
        "program": "resell",
        "products": [{"product_id": product.get_json()["id"], "primary": True}],
    }
    path = f"/v1/leads/{_created(client, h, '/v1/leads', body).get_json()['id']}"
    for action in ("submit", "approve"):
        etag = client.get(path, headers=h).headers["ETag"]
        resp = client.post(
            f"{path}/{action}", json={} if action == "approve" else None, headers={**h, "If-Match": etag}
        )
        assert resp.status_code == 200, resp.get_data(as_text=True)
    return f"/v1/opportunities/{resp.get_json()['opportunity_id']}"


def _assignment_lock(kind: str, lift: bool) -> Callable[[Any, World, dict[str, str]], Target]:
    """A lead's or opportunity's assignment lock, placed (PUT) or lifted (DELETE, from a placed one);
    its ETag is the record's."""

    def build(client: Any, world: World, h: dict[str, str]) -> Target:
        if kind == "lead":
            record = f"/v1/leads/{_created(client, h, '/v1/leads', {'name': 'Locked lead'}).get_json()['id']}"
        else:
            record = _approved_opportunity(client, world, h)
        path = f"{record}/assignment-lock"
        etag = client.get(record, headers=h).headers["ETag"]
        if lift:
            resp = client.put(path, json={"reason": "key account"}, headers={**h, "If-Match": etag})
            assert resp.status_code == 200, resp.get_data(as_text=True)
            etag = resp.headers["ETag"]
            return Target(path, _get(client, h, path), etag, None, None)
        return Target(path, _get(client, h, path), etag, {"reason": "key account"}, {"reason": "stale"})

    return build


def _opportunity(client: Any, world: World, h: dict[str, str]) -> Target:
    path = _approved_opportunity(client, world, h)
    etag, _ = _get(client, h, path)()
    assert etag
    return Target(path, _get(client, h, path), etag, {"stage": "proposal"}, {"name": "Stale"})


def _opportunity_child(kind: str, delete: bool) -> Callable[[Any, World, dict[str, str]], Target]:
    """One contact, note or activity added to an approved opportunity, then changed or deleted; the
    opportunity's ETag covers its children."""
    added, change, stale = {
        "contacts": ({"name": "Ken Sato"}, {"role": "buyer"}, {"role": "stale"}),
        "notes": ({"text": "PoC agreed"}, {"text": "PoC in May"}, {"text": "stale"}),
        "activities": ({"subject": "Call back"}, {"done": True}, {"subject": "stale"}),
    }[kind]

    def build(client: Any, world: World, h: dict[str, str]) -> Target:
        opportunity = _approved_opportunity(client, world, h)
        etag = client.get(opportunity, headers=h).headers["ETag"]
        resp = client.post(f"{opportunity}/{kind}", json=added, headers={**h, "If-Match": etag})
        assert resp.status_code == 201, resp.get_data(as_text=True)
        child = resp.get_json()[kind][-1]["id"]
        path = f"{opportunity}/{kind}/{child}"
        read = _get(client, h, opportunity)
        if delete:
            return Target(path, read, resp.headers["ETag"], None, None)
        return Target(path, read, resp.headers["ETag"], change, stale)

    return build


def _connection_profile(which: str) -> Callable[[Any, World, dict[str, str]], Target]:
    """A connection's outbound or inbound mapping profile, replaced by a YAML body."""

    def build(client: Any, world: World, h: dict[str, str]) -> Target:
        from pathlib import Path

        connection = partner_crm_connection(client, world, h)
        profiles = Path(__file__).parents[2] / "transfer/profiles"
        brand_owner = (profiles / "brand_owner.yaml").read_text()
        partner_lead = (profiles / "partner_lead.yaml").read_text()
        return Target(
            f"{connection.path}/{which}", connection.read, connection.created_etag, brand_owner, partner_lead
        )

    return build


def _freeze(thaw: bool) -> Callable[[Any, World, dict[str, str]], Target]:
    """A territory frozen in a planning model (PUT), or thawed from a frozen one (DELETE); the model's ETag
    covers its freezes."""

    def build(client: Any, world: World, h: dict[str, str]) -> Target:
        model_id, etag = _territory_model(client, h)
        path = f"/v1/territory-models/{model_id}/territories/DE/freeze"
        read = _get(client, h, path)
        if thaw:
            resp = client.put(path, json={"reason": "audit"}, headers={**h, "If-Match": etag})
            assert resp.status_code == 200, resp.get_data(as_text=True)
            return Target(path, read, resp.headers["ETag"], None, None)
        return Target(path, read, etag, {"reason": "audit"}, {"reason": "stale"})

    return build


# operationId -> how to build a record it can change and a valid change
CASES: dict[str, Callable[[Any, World, dict[str, str]], Target]] = {
    "update_organization": organization,
    "update_program": program,
    "update_user": user,
    "update_customer": customer,
    "update_product": product,
    "revoke_api_key": api_key,
    "update_territory": _territory(""),
    "delete_territory": _territory("delete"),
    "set_territory_coverage": _territory("/coverage"),
    "set_territory_team": _territory("/team"),
    "update_lead": lead,
    "change_lead_expiry": lead_expiry,
    "update_opportunity_revenue_line": opportunity_revenue_line,
    "update_partner_crm_connection": partner_crm_connection,
    "lock_lead_assignment": _assignment_lock("lead", lift=False),
    "unlock_lead_assignment": _assignment_lock("lead", lift=True),
    "lock_opportunity_assignment": _assignment_lock("opportunity", lift=False),
    "unlock_opportunity_assignment": _assignment_lock("opportunity", lift=True),
    "update_opportunity": _opportunity,
    "update_opportunity_contact": _opportunity_child("contacts", delete=False),
    "delete_opportunity_contact": _opportunity_child("contacts", delete=True),
    "update_opportunity_note": _opportunity_child("notes", delete=False),
    "delete_opportunity_note": _opportunity_child("notes", delete=True),
    "update_opportunity_activity": _opportunity_child("activities", delete=False),
    "delete_opportunity_activity": _opportunity_child("activities", delete=True),
    "put_partner_crm_connection_profile": _connection_profile("profile"),
    "put_partner_crm_connection_inbound_profile": _connection_profile("inbound-profile"),
    "freeze_territory": _freeze(thaw=False),
    "thaw_territory": _freeze(thaw=True),
}


def mutating_operations(client: Any) -> dict[str, str]:
    """operationId -> HTTP method of every PUT/PATCH/DELETE in the app's OpenAPI document."""
    spec = client.get("/docs/openapi.json").get_json()
    return {
        op["operationId"]: method
        for item in spec["paths"].values()
        for method, op in item.items()
        if method in MUTATING_METHODS
    }


def test_every_put_patch_and_delete_in_the_openapi_document_is_covered(client):
    operations = mutating_operations(client)
    assert operations, "the OpenAPI document lists no PATCH/DELETE operations"
    assert set(operations) == set(CASES), "teach this test to exercise the new or renamed operations"


def send(
    client: Any, method: str, target: Target, headers: dict[str, str], body: dict[str, Any] | str | None
) -> Any:
    if isinstance(body, str):
        yaml = {**headers, "Content-Type": "application/yaml"}
        return client.open(target.path, method=method.upper(), data=body, headers=yaml)
    return client.open(target.path, method=method.upper(), json=body, headers=headers)


def assert_problem(resp: Any, status: int) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["status"] == status


@pytest.mark.parametrize("operation_id", sorted(CASES))
def test_a_change_needs_the_current_etag(client, world, operation_id):
    method = mutating_operations(client)[operation_id]
    admin = world["admin"].headers
    target = CASES[operation_id](client, world, admin)
    etag_before, stored_before = target.read()
    if etag_before is not None:
        assert etag_before == target.created_etag, "GET returns the record's ETag"

    # No If-Match: 428, nothing changed.
    assert_problem(send(client, method, target, admin, target.body), 428)
    assert target.read()[1] == stored_before

    # The current ETag: 2xx with a new ETag, which a GET then returns.
    resp = send(client, method, target, {**admin, "If-Match": target.created_etag}, target.body)
    assert 200 <= resp.status_code < 300, resp.get_data(as_text=True)
    new_etag = resp.headers.get("ETag")
    assert new_etag and new_etag != target.created_etag
    etag_after, stored_after = target.read()
    assert stored_after != stored_before
    if etag_after is not None:
        assert etag_after == new_etag

    # The ETag read before that change is now stale: 412 and the stored record is unchanged.
    stale = {**admin, "If-Match": target.created_etag}
    resp = send(client, method, target, stale, target.stale_body)
    assert_problem(resp, 412)
    assert target.read() == (etag_after, stored_after)


@pytest.mark.parametrize("operation_id", sorted(CASES))
def test_an_etag_of_another_record_or_a_wildcard_does_not_allow_a_change(client, world, operation_id):
    method = mutating_operations(client)[operation_id]
    admin = world["admin"].headers
    target = CASES[operation_id](client, world, admin)
    _, stored_before = target.read()
    for wrong in ('"999999.1"', "*", "garbage", target.created_etag.strip('"')):
        assert_problem(send(client, method, target, {**admin, "If-Match": wrong}, target.body), 412)
    assert target.read()[1] == stored_before


# --- the OpenAPI document declares the If-Match header of every operation that needs it ----------------


def if_match_operations(client: Any) -> dict[str, tuple[str, str]]:
    """operationId -> (method, path) of every operation whose document declares a required If-Match."""
    spec = client.get("/docs/openapi.json").get_json()
    found = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            params = {(p["in"], p["name"]): p for p in op.get("parameters", [])}
            header = params.get(("header", "If-Match"))
            if header is not None:
                assert header["required"] is True, op["operationId"]
                assert {"412", "428"} <= set(op["responses"]), op["operationId"]
                found[op["operationId"]] = (method, path)
            else:
                assert not {"412", "428"} & set(op["responses"]), f"{op['operationId']} documents 412/428"
    return found


def test_every_put_patch_and_delete_declares_if_match(client):
    assert set(mutating_operations(client)) <= set(if_match_operations(client))


@dataclass
class Files:
    """A multipart form of CSV files (part name -> content), for the upload actions."""

    parts: dict[str, bytes]

    def send(self, client: Any, path: str, headers: dict[str, str]) -> Any:
        files = {
            name: FileStorage(io.BytesIO(raw), filename=f"{name}.csv") for name, raw in self.parts.items()
        }
        boundary, body = encode_multipart(files)
        content_type = f"multipart/form-data; boundary={boundary}"
        return client.post(path, data=body, headers={**headers, "Content-Type": content_type})


#: POST actions that change a record: a valid body (checked before If-Match) and the record they act on
ACTIONS: dict[str, tuple[str, Any]] = {
    "submit_lead": ("lead", None),
    "approve_lead": ("lead", {}),
    "reject_lead": ("lead", {"comment": "no"}),
    "request_lead_info": ("lead", {"question": "which site?"}),
    "submit_lead_info": ("lead", {"text": "the Osaka site"}),
    "withdraw_lead": ("lead", {}),
    "accept_lead": ("lead", None),
    "offer_lead": ("lead", {"organization_ids": []}),
    "close_opportunity": ("opportunity", {"status": "won"}),
    "grant_lead_extension": ("approved_lead", {}),
    "reject_lead_extension": ("approved_lead", {"comment": "no"}),
    "activate_ruleset": ("ruleset", None),
    "activate_territory_model": ("territory_model", None),
    "import_territory_model": (
        "territory_model",
        {"territories": "key,parent_key,name,type\nWW,,World,global\n"},
    ),
    "create_territory": ("territory_model", {"key": "WW", "name": "Worldwide", "type": "global"}),
    "declare_territory_dimension": ("territory_model", {"name": "industry", "source": "customer_industry"}),
    "import_dimension_members": (
        "territory_model",
        {"members": "key,parent,name\nFR-ARA-69,FR-ARA,Rhône\n", "filename": "members.csv"},
    ),
    "add_opportunity_contact": ("opportunity", {"name": "Ken Sato"}),
    "add_opportunity_note": ("opportunity", {"text": "PoC agreed"}),
    "add_opportunity_activity": ("opportunity", {"subject": "Call back"}),
    "upload_territory_model": (
        "territory_model",
        Files({"territories": b"key,parent_key,name,type\nWW,,World,global\n"}),
    ),
    "upload_dimension_members": ("territory_model", Files({"members": b"key,parent,name\nX-1,FR-ARA,X\n"})),
}


def _records(client: Any, world: World, h: dict[str, str]) -> dict[str, int]:
    lead_path = lead_expiry(client, world, h).path.removesuffix("/expiry")
    lead = client.get(lead_path, headers=h).get_json()
    ruleset = client.post(
        "/v1/rulesets",
        json={
            "name": "p.yaml",
            "source": "kind: policy\nhit_policy: first\nrules: [{id: a, when: always}]\n",
        },
        headers=h,
    )
    assert ruleset.status_code == 201, ruleset.get_data(as_text=True)
    draft = _created(client, h, "/v1/leads", {"name": "Draft", "primary_partner_id": world.partner_a_id})
    asked = client.post(
        f"{lead_path}/extension-requests",
        json={"expires_at": "2099-06-01T00:00:00+00:00", "reason": "the customer's budget moved"},
        headers=world["partner_user_a"].headers,
    )
    assert asked.status_code == 201, asked.get_data(as_text=True)
    return {
        "approved_lead": lead["id"],
        "request_id": asked.get_json()["id"],
        "lead": draft.get_json()["id"],
        "opportunity": lead["opportunity_id"],
        "ruleset": ruleset.get_json()["id"],
        "territory_model": _created(client, h, "/v1/territory-models", {"name": "plan"}).get_json()["id"],
    }


def test_every_action_that_needs_if_match_declares_it_and_answers_428_without_it(client, world):
    declared = if_match_operations(client)
    posts = {op for op, (method, _) in declared.items() if method == "post"}
    assert posts == set(ACTIONS), "teach this test the new or renamed actions"
    admin = world["admin"].headers
    records = _records(client, world, admin)
    for operation_id, (record, body) in sorted(ACTIONS.items()):
        path = declared[operation_id][1].replace("{id}", str(records[record]))
        path = path.replace("{request_id}", str(records["request_id"])).replace("{key}", "geography")
        if isinstance(body, Files):
            resp = body.send(client, path, admin)
        else:
            resp = client.post(path, json=body, headers=admin)
        assert resp.status_code == 428, (operation_id, resp.get_data(as_text=True))
        assert resp.mimetype == "application/problem+json"
