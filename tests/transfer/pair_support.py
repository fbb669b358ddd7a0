"""Two instances of the service in one process, for transfer tests that need a real partner but not real
processes: the brand owner is the test's ``app``, the partner a second app on its own database (a SQLite
file, or a second PostgreSQL database when the test runs on PostgreSQL), both loaded with the demo data.
The brand owner's deliverer reaches the partner's real inbound endpoints over HTTP through httpx's WSGI
transport; everything else (signatures, mapping, the partner's database) is the real thing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from flask import Flask

from common import migrate
from common.database import Database
from common.delivery import DeliveryReport
from common.retry import RetryPolicy
from common.settings import Settings
from tests.api.approvals_support import act, ok
from tests.api.leads_support import Demo, load_demo, submit
from transfer import delivery_service
from transfer.client import PartnerCrmClient
from transfer.models import PartnerCrmConnection
from transfer.profile import PROFILES_DIR

BRAND_SIGNS = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PARTNER_SIGNS = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
PARTNER_HOST = "93.184.215.14"  # a public address literal: the URL policy passes it without DNS


def profile(name: str) -> str:
    return (PROFILES_DIR / f"{name}.yaml").read_text()


@dataclass
class Partner:
    """The partner's instance: its app, database and demo users."""

    app: Flask
    db: Database
    demo: Demo

    @property
    def client(self) -> Any:
        return self.app.test_client()


@contextmanager
def partner_instance(brand_settings: Settings, tmp_path: Path, request: Any) -> Iterator[Partner]:
    """A second instance on the brand owner's kind of database, with the demo data."""
    from server import create_app

    url = brand_settings.database_url
    if url.startswith("sqlite"):
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "partner.sqlite3"
        shutil.copyfile(template, target)
        with _app(create_app, f"sqlite:///{target}", tmp_path) as partner:
            yield partner
        return
    from tests.conftest import PG_ADMIN_URL
    from tests.integration.transfer_support import postgres_databases

    with postgres_databases(PG_ADMIN_URL, ("partner",)) as (partner_url,):
        migrate.upgrade(partner_url)
        with _app(create_app, partner_url, tmp_path) as partner:
            yield partner


@contextmanager
def _app(create_app: Any, url: str, tmp_path: Path) -> Iterator[Partner]:
    app = create_app(Settings(database_url=url, log_json=False), TESTING=True)
    db: Database = app.extensions["prm.db"]
    keys = tmp_path / "partner-keys"
    keys.mkdir()
    try:
        yield Partner(app, db, load_demo(db, keys))
    finally:
        db.dispose()


def connect(
    brand_client: Any,
    brand: Demo,
    partner: Partner,
    *,
    inbound_creates: str = "opportunity",
    **brand_extra: Any,
) -> int:
    """Each side the other's CRM connection (the brand owner's to Northwind, Northwind's instance's to the
    brand owner, Acme); returns the brand owner's connection id."""
    mine = {
        "organization_id": brand.ids["northwind"],
        "key": "northwind",
        "name": "Northwind CRM",
        "base_url": f"https://{PARTNER_HOST}/v1/partner-crm/acme",
        "operations": ["create", "update", "query"],
        "signing_secret": BRAND_SIGNS,
        "inbound_secret": PARTNER_SIGNS,
        "profile": profile("partner_lead"),
        **brand_extra,
    }
    resp = brand_client.post("/v1/partner-crm-connections", json=mine, headers=brand["admin"])
    assert resp.status_code == 201, resp.get_data(as_text=True)
    theirs = {
        "organization_id": partner.demo.ids["acme"],
        "key": "acme",
        "name": "Acme PRM",
        "base_url": f"https://{PARTNER_HOST}/v1/partner-crm/northwind",
        "operations": ["create", "update", "query"],
        "signing_secret": PARTNER_SIGNS,
        "inbound_secret": BRAND_SIGNS,
        "profile": profile("brand_owner"),
        "inbound_profile": profile("partner_lead"),
        "inbound_creates": inbound_creates,
    }
    resp = partner.client.post("/v1/partner-crm-connections", json=theirs, headers=partner.demo["admin"])
    assert resp.status_code == 201, resp.get_data(as_text=True)
    connection_id: int = brand_client.get("/v1/partner-crm-connections", headers=brand["admin"]).get_json()[
        "items"
    ][0]["id"]
    return connection_id


def deliver_to(
    brand_db: Database,
    settings: Settings,
    partner_app: Flask | None,
    *,
    base_url: str | None = None,
    policy: RetryPolicy | None = None,
    limit: int = 100,
) -> DeliveryReport:
    """One pass of the brand owner's deliverer: calls reach `partner_app` through WSGI (or, with
    `base_url`, go over the network there, loopback allowed)."""

    def factory(c: PartnerCrmConnection, secret: str) -> PartnerCrmClient:
        if partner_app is None:
            return PartnerCrmClient(base_url or c.base_url, secret, c.timeout_seconds, allow_private=True)
        return PartnerCrmClient(
            base_url or c.base_url,
            secret,
            c.timeout_seconds,
            resolve=lambda host, port: [PARTNER_HOST],
            transport=httpx.WSGITransport(app=partner_app),
        )

    return delivery_service.deliver(
        brand_db, settings, limit=limit, policy=policy or RetryPolicy(), client_factory=factory
    )


def change(
    client: Any, headers: dict[str, str], method: str, path: str, body: Any = None, *, record: str = ""
) -> Any:
    """A change through the API with the record's current ETag (``record``: the record's path, by
    default the first four segments of ``path``: ``/v1/opportunities/7``); its JSON answer."""
    record = record or "/".join(path.split("/")[:4])
    etag = client.get(record, headers=headers).headers["ETag"]
    resp = client.open(path, method=method, json=body, headers={**headers, "If-Match": etag})
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    return resp.get_json()


def approve_kept_lead(partner: Partner, lead_id: int) -> int:
    """The partner makes a lead it kept from a transfer a registration of its own (its partner, a
    customer, resale), Northwind's user submits it and the CAM approves it; the opportunity's id."""
    change(
        partner.client,
        partner.demo["admin"],
        "PATCH",
        f"/v1/leads/{lead_id}",
        {
            "primary_partner_id": partner.demo.ids["northwind"],
            "customer_id": partner.demo.ids["C-0002"],
            "registration_type": "resale",
            "program": "resell",
            "partner_type": "reseller",
        },
    )
    submitted = submit(partner.client, partner.demo["northwind-user"], lead_id)
    assert submitted.status_code == 200, submitted.get_data(as_text=True)
    opportunity_id: int = ok(act(partner.client, partner.demo["cam-jp-security"], lead_id, "approve"))[
        "opportunity_id"
    ]
    return opportunity_id
