"""Builders shared by the territory API tests: reference data and a small valid tree."""

from __future__ import annotations

from typing import Any

from common.database import Database
from directory.enums import ProductLevel
from directory.models import Customer, Product


def add_reference_data(db: Database) -> None:
    """Products (networking > switches, security) and customers (C-1 > C-1-1, C-2) next to the world."""
    with db.transaction() as session:
        net = Product(key="networking", name="Networking", level=ProductLevel.GROUP)
        sec = Product(key="security", name="Security", level=ProductLevel.GROUP)
        session.add_all([net, sec])
        session.flush()
        session.add(Product(key="switches", name="Switches", level=ProductLevel.SUBGROUP, parent_id=net.id))
        parent = Customer(key="C-1", name="One", country="JP")
        session.add_all([parent, Customer(key="C-2", name="Two", country="DE")])
        session.flush()
        session.add(Customer(key="C-1-1", name="One Sub", country="JP", parent_id=parent.id))


def create_model(client: Any, headers: dict[str, str], name: str = "plan", **extra: Any) -> tuple[int, str]:
    resp = client.post("/v1/territory-models", json={"name": name, **extra}, headers=headers)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"], resp.headers["ETag"]


def add_territory(
    client: Any, headers: dict[str, str], model_id: int, etag: str, body: dict[str, Any]
) -> str:
    resp = client.post(
        f"/v1/territory-models/{model_id}/territories", json=body, headers={**headers, "If-Match": etag}
    )
    assert resp.status_code == 201, resp.get_json()
    return str(resp.headers["ETag"])


def small_tree(client: Any, headers: dict[str, str], name: str = "plan") -> tuple[int, str]:
    """WW > APAC > JP (cam-1) > JP-NET (networking, no CAM); returns (model id, ETag)."""
    model_id, etag = create_model(client, headers, name)
    for body in (
        {"key": "WW", "name": "Worldwide", "type": "global"},
        {
            "key": "APAC",
            "parent_key": "WW",
            "name": "Asia Pacific",
            "coverage": {"geography": {"include": ["APAC"]}},
        },
        {
            "key": "JP",
            "parent_key": "APAC",
            "name": "Japan",
            "coverage": {"geography": {"include": ["JP"]}},
            "team": [{"user": "cam-1", "role": "channel_account_manager"}],
        },
        {
            "key": "JP-NET",
            "parent_key": "JP",
            "name": "Japan networking",
            "coverage": {"geography": {"include": ["JP"]}, "product": {"include": ["networking"]}},
        },
    ):
        etag = add_territory(client, headers, model_id, etag, body)
    return model_id, etag
