"""Shared helpers of the leads API tests: the demo data loaded the way tests/api/test_decisions.py
does, ids of the demo records a JP security lead needs, and small request helpers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from common.database import Database
from demo import seed_demo
from directory.models import Customer, Organization, Product, User


@dataclass
class Demo:
    headers: dict[str, dict[str, str]]  # demo user key -> Authorization header
    ids: dict[str, int]  # customer/product/organization/user key -> id

    def __getitem__(self, user: str) -> dict[str, str]:
        return self.headers[user]


def load_demo(db: Database, tmp_path: Path) -> Demo:
    seed_demo(db, tmp_path / "keys.txt")
    keys = dict(line.split(" ", 1) for line in (tmp_path / "keys.txt").read_text().splitlines())
    headers = {user: {"Authorization": f"Bearer {key}"} for user, key in keys.items()}
    ids: dict[str, int] = {}
    with db.transaction() as session:
        for model in (Customer, Product, Organization, User):
            for key, id_ in session.execute(select(model.key, model.id)):
                ids[key] = id_
    return Demo(headers, ids)


def jp_security_lead(demo: Demo, **extra: Any) -> dict[str, Any]:
    """A complete resale lead of Northwind (JP) for a JP customer and a firewall."""
    body: dict[str, Any] = {
        "name": "Firewall refresh",
        "description": "Two sites",
        "customer_id": demo.ids["C-0002"],
        "contact_name": "Aiko Tanaka",
        "contact_email": "aiko@example.jp",
        "registration_type": "resale",
        "program": "resell",
        "deal_size": 50000,
        "currency": "JPY",
        "expected_close_date": "2027-03-31",
        "products": [{"product_id": demo.ids["fw-1"], "primary": True}, {"product_id": demo.ids["id-cloud"]}],
    }
    body.update(extra)
    return body


def created(client: Any, headers: dict[str, str], body: dict[str, Any]) -> Any:
    resp = client.post("/v1/leads", json=body, headers=headers)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp


def submit(client: Any, headers: dict[str, str], lead_id: int, etag: str | None = None) -> Any:
    if etag is None:
        etag = client.get(f"/v1/leads/{lead_id}", headers=headers).headers["ETag"]
    return client.post(f"/v1/leads/{lead_id}/submit", headers={**headers, "If-Match": etag})
