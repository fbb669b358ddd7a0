"""Helpers of the reassignment tests: demo leads in each state, a planning copy of the demo model with
one territory's CAM changed, and small request helpers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from common.audit import AuditEvent
from common.database import Database
from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo

CAM = "channel_account_manager"


def pending_leads(client: Any, demo: Demo, n: int) -> list[int]:
    """``n`` JP security leads of Northwind, pending approval by cam-jp-security (JP-SEC-RESELL)."""
    return [pending(client, demo, name=f"Lead {i}")["id"] for i in range(n)]


def approved_lead(client: Any, demo: Demo) -> dict[str, Any]:
    lead = pending(client, demo, name="Approved one")
    return ok(act(client, demo["cam-jp-security"], lead["id"], "approve", {"comment": "fine"}))


def draft_lead(client: Any, demo: Demo) -> int:
    """A lead that was submitted and withdrawn (assigned once, no longer in flight)."""
    lead = pending(client, demo, name="Withdrawn one")
    ok(act(client, demo["northwind-user"], lead["id"], "withdraw", {"comment": "later"}))
    return int(lead["id"])


def planning_copy(client: Any, admin: dict[str, str], name: str = "FY27") -> tuple[int, str]:
    resp = client.post("/v1/territory-models", json={"name": name, "clone_active": True}, headers=admin)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()["id"], resp.headers["ETag"]


def set_team(
    client: Any, admin: dict[str, str], model_id: int, etag: str, key: str, team: list[tuple[str, str]]
) -> str:
    resp = client.put(
        f"/v1/territory-models/{model_id}/territories/{key}/team",
        json={"team": [{"user": u, "role": r} for u, r in team]},
        headers={**admin, "If-Match": etag},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.headers["ETag"])


def jp_security_to_cam_jp(client: Any, admin: dict[str, str]) -> int:
    """A planning copy of the demo model where JP-SEC (and so JP-SEC-RESELL) belongs to cam-jp."""
    model_id, etag = planning_copy(client, admin)
    set_team(client, admin, model_id, etag, "JP-SEC", [("cam-jp", CAM)])
    return model_id


def plan(client: Any, admin: dict[str, str], **body: Any) -> dict[str, Any]:
    return ok(client.post("/v1/reassignment-runs", json=body, headers=admin), 201)


def items(client: Any, admin: dict[str, str], run_id: int, query: str = "") -> list[dict[str, Any]]:
    """Every item of the run, read page by page."""
    out: list[dict[str, Any]] = []
    cursor = ""
    while True:
        sep = "&" if query else ""
        page = ok(
            client.get(f"/v1/reassignment-runs/{run_id}/items?limit=2{sep}{query}{cursor}", headers=admin)
        )
        out.extend(page["items"])
        if not page["next_cursor"]:
            return out
        cursor = f"&cursor={page['next_cursor']}"


def lead_lock(client: Any, headers: dict[str, str], lead_id: int, reason: str) -> Any:
    etag = client.get(f"/v1/leads/{lead_id}", headers=headers).headers["ETag"]
    return client.put(
        f"/v1/leads/{lead_id}/assignment-lock", json={"reason": reason}, headers={**headers, "If-Match": etag}
    )


def reassigned_rows(db: Database, lead_id: int) -> list[AuditEvent]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.entity_type == "lead",
                    AuditEvent.entity_id == lead_id,
                    AuditEvent.action == "reassigned",
                )
                .order_by(AuditEvent.id)
            )
        )


def sales_team(client: Any, headers: dict[str, str], lead_id: int) -> list[tuple[int, str]]:
    lead = ok(client.get(f"/v1/leads/{lead_id}", headers=headers))
    return sorted((m["user_id"], m["role"]) for m in lead["sales_team"])
