"""Two (or more) real instances of the service for the transfer tests: each its own SQLite database and
process on loopback, seeded with its own directory, plus the deliverer as the real ``prm`` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from common import migrate
from common.clock import utcnow
from common.database import Database
from common.principal import Role
from directory.enums import OrganizationKind, PartnerType
from directory.models import Customer, Organization, Product, User
from directory.services.users import mint_key_for_user
from registration.leads.models import Lead
from registration.opportunities.models import (
    Opportunity,
    OpportunityActivity,
    OpportunityContact,
    OpportunityNote,
    OpportunityRevenueLine,
)
from transfer.profile import PROFILES_DIR

PRM = Path(sys.executable).parent / "prm"
ROOT = Path(__file__).resolve().parents[2]
SECRET_BRAND_SIGNS = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET_PARTNER_SIGNS = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
DEADLINE = 120.0


@contextmanager
def two_instances(
    tmp_path: Path,
    *,
    partner_url: str | None = None,
    database_urls: tuple[str, str] | None = None,
    instance_type: type[Instance] | None = None,
) -> Iterator[tuple[Instance, Instance]]:
    """The brand owner and the partner, started and connected to each other (``partner_url``: where the
    brand owner reaches the partner instead, e.g. a fault-injecting proxy in front of it;
    ``database_urls``: the two databases, default SQLite files)."""
    make = instance_type or Instance  # how they are served (default: the threaded server of serve_instance)
    brand = make("brand", tmp_path / "brand", own_org_key="brand", other_org_key="northwind")
    partner = make("partner", tmp_path / "partner", own_org_key="northwind", other_org_key="brand")
    if database_urls is not None:
        brand.database_url, partner.database_url = database_urls
    for instance in (brand, partner):
        instance.directory.mkdir()
        instance.seed()
    try:
        brand.start()
        partner.start()
        brand.connect_to(
            partner,
            key_here="northwind",
            key_there="brand",
            signs=SECRET_BRAND_SIGNS,
            verifies=SECRET_PARTNER_SIGNS,
            profile="partner_lead",
            inbound_profile=None,
            base_url=partner_url,
            timeout=2.0,
        )
        partner.connect_to(
            brand,
            key_here="brand",
            key_there="northwind",
            signs=SECRET_PARTNER_SIGNS,
            verifies=SECRET_BRAND_SIGNS,
            profile="brand_owner",
            inbound_profile="partner_lead",
        )
        yield brand, partner
    finally:
        brand.stop()
        partner.stop()


def profile_text(name: str) -> str:
    return (PROFILES_DIR / f"{name}.yaml").read_text()


def wait_for(check: Callable[[], Any], what: str, deadline: float = DEADLINE, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (no timed assertions: a generous deadline)."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(every)


@contextmanager
def postgres_databases(admin_url: str, names: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Fresh PostgreSQL databases on the test server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    unique = [f"prm_transfer_{os.getpid()}_{time.monotonic_ns() % 10**8}_{n}" for n in names]
    try:
        with admin.connect() as conn:
            for name in unique:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield tuple(make_url(admin_url).set(database=n).render_as_string(hide_password=False) for n in unique)
    finally:
        with admin.connect() as conn:
            for name in unique:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Instance:
    """One service instance: database, seeded ids, admin key, and (once started) its process and URL."""

    name: str
    directory: Path
    own_org_key: str
    other_org_key: str
    ids: dict[str, int] = field(default_factory=dict)
    admin_key: str = ""
    process: subprocess.Popen[str] | None = None
    url: str = ""

    database_url: str | None = None  # default: a SQLite file in ``directory``

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.directory / 'prm.sqlite3'}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PRM_", "FLASK_"))}
        env.update(
            PRM_DATABASE_URL=self.db_url,
            PRM_LOG_FORMAT="text",
            PRM_SECRET_KEY=f"secret key of {self.name}",
            PRM_TRANSFER_ALLOW_PRIVATE_URLS="1",
            PYTHONPATH=str(ROOT),
        )
        return env

    def db(self) -> Database:
        return Database(self.db_url)

    def seed(self) -> None:
        migrate.upgrade(self.db_url)
        db = self.db()
        try:
            with db.transaction() as session:
                own = Organization(
                    key=self.own_org_key,
                    name=self.own_org_key.title(),
                    kind=OrganizationKind.BRAND_OWNER,
                    country="US",
                )
                other = Organization(
                    key=self.other_org_key,
                    name=self.other_org_key.title(),
                    kind=OrganizationKind.PARTNER,
                    partner_type=PartnerType.RESELLER,
                    can_register_leads=True,
                    country="JP",
                )
                session.add_all([own, other])
                session.flush()
                admin = User(
                    organization_id=own.id,
                    key="admin",
                    email=f"admin@{self.name}.example",
                    name="Admin",
                    roles=[Role.ADMIN.value],
                )
                session.add(admin)
                for key, name in (("suite", "Suite"), ("addon", "Add-on")):
                    session.add(Product(key=key, name=name, level="group"))
                session.add(Customer(key="acme", name="Acme", country="US"))
                session.flush()
                self.admin_key = mint_key_for_user(session, None, admin, "test").key
                self.ids.update(own_org=own.id, other_org=other.id, admin=admin.id)
        finally:
            db.dispose()

    def add_opportunity(self, name: str, *, contacts: int = 2, rich: bool = True, n: int = 1) -> list[int]:
        """``n`` approved-registration opportunities of the partner organization, with children."""
        db = self.db()
        ids = []
        try:
            with db.transaction() as session:
                products = {p.key: p.id for p in session.query(Product)}
                customer = session.query(Customer).filter_by(key="acme").one()
                now = utcnow()
                for i in range(n):
                    lead = Lead(
                        organization_id=self.ids["other_org"],
                        name=f"{name} {i}",
                        status="approved",
                        lead_status="converted",
                        registration_number=f"REG-{name[:3].upper()}{i:06d}",
                        owner_user_id=self.ids["admin"],
                        created_at=now,
                        updated_at=now,
                    )
                    session.add(lead)
                    session.flush()
                    opp = Opportunity(
                        number=f"OPP-{lead.id}",
                        lead_id=lead.id,
                        registration_number=lead.registration_number,
                        organization_id=self.ids["other_org"],
                        customer_id=customer.id,
                        name=lead.name,
                        description="Firewall refresh",
                        status="open",
                        owner_user_id=self.ids["admin"],
                        amount=Decimal("15000.00"),
                        currency="EUR",
                        expected_close_date=date(2027, 3, 31),
                        created_at=now,
                        updated_at=now,
                    )
                    opp.contacts = [
                        OpportunityContact(
                            name=f"Contact {c}", email=f"c{c}@acme.example", phone="+1 555 0100"
                        )
                        for c in range(contacts)
                    ]
                    if rich:
                        opp.revenue_lines = [
                            OpportunityRevenueLine(
                                product_id=products["suite"],
                                is_primary=True,
                                amount=Decimal("10000.00"),
                                currency="EUR",
                            ),
                            OpportunityRevenueLine(
                                product_id=products["addon"], amount=Decimal("5000.00"), currency="EUR"
                            ),
                        ]
                        opp.notes = [
                            OpportunityNote(
                                text="Customer wants a PoC first",
                                author_user_id=self.ids["admin"],
                                written_at=now,
                            )
                        ]
                        opp.activities = [
                            OpportunityActivity(
                                kind="call",
                                subject="Kick-off call",
                                occurred_at=now,
                                details={"due_date": "2027-01-15", "done": False},
                            )
                        ]
                    session.add(opp)
                    session.flush()
                    ids.append(opp.id)
        finally:
            db.dispose()
        return ids

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.serve_instance"],
            cwd=ROOT,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("PORT "), f"{self.name} did not start: {line!r}"
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        wait_for(lambda: self._alive(), f"{self.name} to answer")

    def _alive(self) -> bool:
        try:
            return httpx.get(self.url + "/livez", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    # --- the API, over real HTTP -------------------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def call(self, method: str, path: str, expect: int | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        resp = httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        if expect is not None:
            assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp

    def get(self, path: str) -> Any:
        return self.call("GET", path, 200).json()

    def connect_to(
        self,
        other: Instance,
        *,
        key_here: str,
        key_there: str,
        signs: str,
        verifies: str,
        profile: str,
        inbound_profile: str | None,
        base_url: str | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        body = {
            "organization_id": self.ids["other_org"],
            "key": key_here,
            "name": f"CRM of {other.name}",
            "base_url": base_url or f"{other.url}/v1/partner-crm/{key_there}",
            "operations": ["create", "update", "query"],
            "signing_secret": signs,
            "inbound_secret": verifies,
            "timeout_seconds": timeout,
            "profile": profile_text(profile),
            "inbound_profile": profile_text(inbound_profile) if inbound_profile else None,
        }
        out: dict[str, Any] = self.call("POST", "/v1/partner-crm-connections", 201, json=body).json()
        return out

    def transfers(self, opportunity_id: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(f"/v1/opportunities/{opportunity_id}/transfers")["items"]
        return items

    # --- the deliverer, as an operator runs it -----------------------------------------------------

    def deliver_args(self, *extra: str) -> list[str]:
        return [
            str(PRM),
            "transfer",
            "deliver",
            "--retry-base",
            "0.05",
            "--retry-cap",
            "0.3",
            "--max-attempts",
            "30",
            *extra,
        ]

    def deliver_once(self) -> str:
        result = subprocess.run(
            self.deliver_args("--once"),
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        return result.stdout

    def deliver_until(self, check: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
        def step() -> Any:
            self.deliver_once()
            return check()

        return wait_for(step, what, deadline, every=0.05)

    # --- signed calls, as a partner's CRM makes them -----------------------------------------------

    def signed(
        self,
        method: str,
        path: str,
        secret: str,
        body: bytes = b"",
        *,
        msg_id: str | None = None,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        from transfer.signing import signature_headers

        msg_id = msg_id or f"msg_{time.monotonic_ns()}"
        timestamp = int(time.time()) if timestamp is None else timestamp
        sent = {
            **signature_headers(secret, msg_id, timestamp, body),
            "Content-Type": "application/json",
            **(headers or {}),
        }
        return httpx.request(method, self.url + path, content=body or None, headers=sent, timeout=30)

    def signed_query_as_brand(self, brand_opportunity_id: int) -> Any:
        resp = self.signed(
            "GET", f"/v1/partner-crm/brand/opportunities/{brand_opportunity_id}", SECRET_BRAND_SIGNS
        )
        assert resp.status_code == 200, resp.text
        return resp.json()
