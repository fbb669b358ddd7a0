"""Helpers of the approval tests: a pending registration of the demo data and the approval actions."""

from __future__ import annotations

from typing import Any

from tests.api.leads_support import Demo, created, jp_security_lead, submit


def etag_of(client: Any, headers: dict[str, str], lead_id: int) -> str:
    resp = client.get(f"/v1/leads/{lead_id}", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.headers["ETag"])


def pending(client: Any, demo: Demo, user: str = "northwind-user", **extra: Any) -> dict[str, Any]:
    """A JP security lead of Northwind, submitted: pending approval by cam-jp-security."""
    h = demo[user]
    lead = created(client, h, jp_security_lead(demo, **extra)).get_json()
    resp = submit(client, h, lead["id"])
    assert resp.status_code == 200, resp.get_json()
    body: dict[str, Any] = resp.get_json()
    assert body["status"] == "pending_approval"
    return body


def act(
    client: Any,
    headers: dict[str, str],
    lead_id: int,
    action: str,
    body: dict[str, Any] | None = None,
    etag: str | None = None,
) -> Any:
    """POST /v1/leads/{id}/{action} with the lead's current ETag (read as admin) unless one is given."""
    if etag is None:
        etag = etag_of(client, headers, lead_id) if "Authorization" in headers else None
    hdrs = {**headers, "If-Match": etag} if etag else dict(headers)
    return client.post(f"/v1/leads/{lead_id}/{action}", json=body or {}, headers=hdrs)


def ok(resp: Any, status: int = 200) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    return body


def actions(client: Any, headers: dict[str, str], lead_id: int) -> list[str]:
    items = ok(client.get(f"/v1/leads/{lead_id}/history", headers=headers))["items"]
    return [i["action"] for i in items]
