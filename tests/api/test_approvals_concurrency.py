"""Concurrent decisions on one registration against a real threaded server (PostgreSQL): 20 approve and
reject calls with the same ETag give exactly one success, the rest 409 or 412, one decision in the
history and at most one opportunity (RELIABILITY.md, "Concurrency and integrity")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from common.audit import AuditEvent
from registration.opportunities.models import Opportunity
from tests.api.approvals_support import pending
from tests.api.leads_support import Demo, load_demo
from tests.api.test_leads_concurrency import _call, base_url  # noqa: F401  (the threaded server fixture)

pytestmark = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def test_20_concurrent_approvals_and_rejections_give_one_decision(client, base_url, db, demo):  # noqa: F811
    lead = pending(client, demo)
    headers = {**demo["cam-jp-security"], "If-Match": f'"{lead["id"]}.{lead["version"]}"'}

    def decide(i: int):
        if i % 2:
            return _call("POST", f"{base_url}/v1/leads/{lead['id']}/reject", headers, {"comment": f"no {i}"})
        return _call("POST", f"{base_url}/v1/leads/{lead['id']}/approve", headers, {})

    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(decide, range(20)))
    statuses = sorted(status for status, _, _ in replies)
    assert statuses.count(200) == 1, statuses
    assert set(statuses) - {200} <= {409, 412}, [b for s, _, b in replies if s not in (200, 409, 412)]
    winner = next(body for status, _, body in replies if status == 200)
    with db.transaction() as session:
        decisions = session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.entity_type == "lead",
                AuditEvent.entity_id == lead["id"],
                AuditEvent.action.in_(["approved", "rejected"]),
            )
        ).all()
        opportunities = session.scalar(select(func.count()).select_from(Opportunity))
    assert decisions == [winner["status"]]
    assert opportunities == (1 if winner["status"] == "approved" else 0)
