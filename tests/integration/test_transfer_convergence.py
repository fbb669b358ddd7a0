"""Child records converge between two real instances, whatever the operations and the order of delivery.

A hypothesis state machine drives two running instances of the service (real processes on loopback, real
HTTP between them, the real deliverer code): opportunities are created on either side and transferred,
child records (contacts, revenue lines, notes, activities) are added on either side, opportunities are
closed, updates are sent and received from either side; deliveries happen one message at a time in any
order, a claimed message may be left to a "dead" deliverer (its lease runs out, it is due again), and a
message already delivered may be delivered again (a deliverer that died after the partner answered).

Contacts, notes and activities are also deleted on either side through the API: a deleted child must
be deleted on the other side too and never come back (its pair stays as a tombstone on both sides).

After every step, no pair of ids one side keeps contradicts the other side's. At the end everything
queued is delivered, each side receives and sends an update, and then every child record exists exactly
once on each side, every one paired by correlation keys, the two sides' pairs mirror images, and no
deleted child exists on either side.

The instances are started once for all examples; each example works on opportunities of its own.
Deterministic for CI: ``derandomize=True`` (the examples are a fixed function of the test), no example
database, no shrinking (a failing program is printed as generated).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from common import outbox
from common.clock import utcnow
from common.database import Database
from common.delivery import DeliveryFailed, DeliveryReport, LeaseLost, deliver
from common.outbox import OutboxMessage
from common.retry import RetryPolicy
from common.settings import Settings
from directory.models import Product
from registration.leads.models import Lead
from registration.opportunities.models import (
    Opportunity,
    OpportunityActivity,
    OpportunityContact,
    OpportunityNote,
    OpportunityRevenueLine,
)
from tests.conftest import PG_ADMIN_URL
from tests.integration.transfer_support import Instance, postgres_databases, two_instances
from transfer.delivery_service import PartnerCrmSender
from transfer.models import CorrelationKey, OpportunityTransfer
from transfer.repository import CHILD_KINDS
from transfer.service import CHANNEL

POLICY = RetryPolicy(base_seconds=0.01, cap_seconds=0.05, max_attempts=1000)
SIDES = ("brand", "partner")
PRODUCTS = 5000
LINE_NUMBERS = itertools.count()
DELETABLE = ("contacts", "notes", "activities")  # through the API (revenue lines are changed, not deleted)


class Side:
    """One instance as the state machine uses it: its API, its database and its deliverer's sender."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.db = Database(instance.db_url)
        env = instance.env()
        self.settings = Settings(
            database_url=instance.db_url,
            secret_key=env["PRM_SECRET_KEY"],
            transfer_allow_private_urls=True,
        )
        self.sender = PartnerCrmSender(self.db, self.settings, POLICY)
        self.http = httpx.Client(base_url=instance.url, headers=instance.headers, timeout=30)
        # an opportunity has one revenue line per product: enough products (the same keys on both sides)
        # that every line added gets its own
        with self.db.transaction() as session:
            session.add_all(Product(key=f"p{i}", name=f"Product {i}", level="group") for i in range(PRODUCTS))
        with self.db.transaction() as session:
            self.products = {
                key: id_
                for key, id_ in session.execute(select(Product.key, Product.id))
                if key.startswith("p")
            }

    @property
    def partner_org(self) -> int:
        return self.instance.ids["other_org"]

    def get_etag(self, path: str) -> str:
        resp = self.http.get(path)
        assert resp.status_code == 200, resp.text
        return resp.headers["ETag"]

    def post(self, path: str, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> int:
        resp = self.http.post(path, json=body, headers=headers or {})
        if resp.status_code >= 400:
            assert resp.headers["Content-Type"] == "application/problem+json", resp.text
            assert resp.status_code in (404, 409, 412, 422), resp.text
        else:
            assert resp.status_code in (200, 202), resp.text
        return resp.status_code

    # --- delivery -----------------------------------------------------------------------------------

    def claim_all(self) -> list[outbox.OutboxItem]:
        """Lease every due message with a lease that runs out at once: what we do not settle is due again,
        as if the deliverer holding it had died."""
        return outbox.claim(self.db, CHANNEL, limit=1000, lease_seconds=0.0, policy=POLICY)

    def send(self, item: outbox.OutboxItem, *, settle: bool = True) -> None:
        """Send `item`; ``settle=False``: the deliverer dies after the partner answered, before its commit
        (the sender's commit records the answer and the delivery together: here it cannot, as if the
        lease had been taken over, so nothing is recorded on this side)."""
        try:
            settled = self.sender(item if settle else replace(item, lease_token="died before commit"))
        except LeaseLost:
            return
        except DeliveryFailed as exc:
            if settle:
                outbox.mark_failed(self.db, item, str(exc), retryable=exc.retryable, policy=POLICY, rand=0.0)
            return
        if settle and not settled:
            outbox.mark_sent(self.db, item)

    def sent_items(self) -> list[outbox.OutboxItem]:
        with self.db.transaction() as session:
            rows = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.channel == CHANNEL, OutboxMessage.status == "sent")
                .order_by(OutboxMessage.id)
            ).all()
            return [
                outbox.OutboxItem(
                    id=r.id,
                    channel=r.channel,
                    topic=r.topic,
                    dedupe_key=r.dedupe_key,
                    payload=r.payload,
                    attempts=r.attempts + 1,
                    lease_token="redelivery",
                    lease_until=utcnow(),
                )
                for r in rows
            ]

    def drain(self) -> DeliveryReport:
        """Deliver everything due, in order, as ``prm transfer deliver --once`` does."""
        return deliver(
            self.db, CHANNEL, self.sender, limit=1000, lease_seconds=300, policy=POLICY, rand=lambda: 0.0
        )

    # --- records --------------------------------------------------------------------------------------

    def new_opportunity(self, name: str, children: int) -> int:
        now = utcnow()
        with self.db.transaction() as session:
            lead = Lead(
                organization_id=self.partner_org,
                name=name,
                status="approved",
                lead_status="converted",
                created_at=now,
                updated_at=now,
            )
            session.add(lead)
            session.flush()
            opp = Opportunity(
                number=f"OPP-S{lead.id}",
                lead_id=lead.id,
                organization_id=self.partner_org,
                name=name,
                status="open",
                amount=Decimal("1000.00"),
                currency="EUR",
                expected_close_date=date(2027, 6, 30),
                created_at=now,
                updated_at=now,
            )
            session.add(opp)
            session.flush()
            for i in range(children):
                self._add_child(session, opp.id, CHILD_KINDS[i % len(CHILD_KINDS)], f"{name} child {i}")
            return opp.id

    def add_child(self, opportunity_id: int, kind: str, label: str) -> None:
        with self.db.transaction() as session:
            self._add_child(session, opportunity_id, kind, label)

    def _add_child(self, session: Any, opportunity_id: int, kind: str, label: str) -> None:
        now = utcnow()
        if kind == "contacts":
            row: Any = OpportunityContact(opportunity_id=opportunity_id, name=label, email="x@example.com")
        elif kind == "revenue_lines":
            row = OpportunityRevenueLine(
                opportunity_id=opportunity_id,
                product_id=self.products[f"p{next(LINE_NUMBERS) % PRODUCTS}"],
                amount=Decimal("100.00"),
                currency="EUR",
            )
        elif kind == "notes":
            row = OpportunityNote(opportunity_id=opportunity_id, text=label, written_at=now)
        else:
            row = OpportunityActivity(
                opportunity_id=opportunity_id, kind="task", subject=label, occurred_at=now, details=None
            )
        session.add(row)

    def transfer_of(self, opportunity_id: int) -> OpportunityTransfer | None:
        with self.db.transaction() as session:
            t = session.scalar(
                select(OpportunityTransfer).where(OpportunityTransfer.opportunity_id == opportunity_id)
            )
            if t is not None:
                session.expunge(t)
            return t

    def opportunity_for_remote(self, remote_id: int) -> int | None:
        """Our opportunity that the transfer of the other side's opportunity ``remote_id`` made or holds."""
        with self.db.transaction() as session:
            return session.scalar(
                select(OpportunityTransfer.opportunity_id).where(
                    OpportunityTransfer.remote_type != "lead",
                    OpportunityTransfer.remote_id == str(remote_id),
                )
            )

    def children(self, opportunity_id: int) -> dict[str, set[int]]:
        with self.db.transaction() as session:
            opp = session.get(Opportunity, opportunity_id)
            assert opp is not None
            return {kind: {r.id for r in getattr(opp, kind)} for kind in CHILD_KINDS}

    def labels(self, opportunity_id: int) -> dict[str, dict[int, str]]:
        """{kind: {id: label}} of the children that can be deleted (contacts, notes, activities)."""
        with self.db.transaction() as session:
            opp = session.get(Opportunity, opportunity_id)
            assert opp is not None
            return {
                "contacts": {c.id: c.name or "" for c in opp.contacts},
                "notes": {n.id: n.text for n in opp.notes},
                "activities": {a.id: a.subject for a in opp.activities},
            }

    def delete_child(self, opportunity_id: int, kind: str, child_id: int) -> None:
        """Delete through the API, as a user does (the record's ETag; the pair becomes a tombstone)."""
        path = f"/v1/opportunities/{opportunity_id}"
        resp = self.http.delete(f"{path}/{kind}/{child_id}", headers={"If-Match": self.get_etag(path)})
        assert resp.status_code == 200, resp.text

    def pairs(self, opportunity_id: int) -> dict[str, dict[int, int]]:
        """{kind: {our id: their id}} of the opportunity's transfer (tombstones left out)."""
        out: dict[str, dict[int, int]] = {kind: {} for kind in CHILD_KINDS}
        with self.db.transaction() as session:
            t = session.scalar(
                select(OpportunityTransfer).where(OpportunityTransfer.opportunity_id == opportunity_id)
            )
            if t is None:
                return out
            for k in session.scalars(
                select(CorrelationKey).where(
                    CorrelationKey.transfer_id == t.id, CorrelationKey.deleted_at.is_(None)
                )
            ):
                if k.kind in CHILD_KINDS:
                    out[k.kind][k.local_id] = int(k.remote_id)
        return out


@dataclass
class Record:
    """One transferred opportunity: the side it was created on, and its id there."""

    origin: str
    opportunity_id: int


def other(side: str) -> str:
    return SIDES[1 - SIDES.index(side)]


def machine_for(brand: Side, partner: Side) -> type[RuleBasedStateMachine]:
    counter = itertools.count()

    class Convergence(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.sides = {"brand": brand, "partner": partner}
            self.records: list[Record] = []
            self.deleted: set[tuple[str, str]] = set()  # (kind, label) of every child deleted
            self.example = next(counter)
            # what an earlier example left queued is delivered first, so each example starts settled
            for side in self.sides.values():
                side.drain()

        def opp_on(self, record: Record, side: str) -> int | None:
            if side == record.origin:
                return record.opportunity_id
            return self.sides[side].opportunity_for_remote(record.opportunity_id)

        # --- operations ------------------------------------------------------------------------------

        @rule(side=st.sampled_from(SIDES), children=st.integers(0, 4))
        def create_and_transfer(self, side: str, children: int) -> None:
            s = self.sides[side]
            opp = s.new_opportunity(f"E{self.example} R{len(self.records)}", children)
            status = s.post(f"/v1/opportunities/{opp}/transfers", {"partner_organization_id": s.partner_org})
            assert status == 202
            self.records.append(Record(side, opp))

        @precondition(lambda self: self.records)
        @rule(data=st.data(), side=st.sampled_from(SIDES), kind=st.sampled_from(CHILD_KINDS))
        def add_child(self, data: st.DataObject, side: str, kind: str) -> None:
            record = data.draw(st.sampled_from(self.records))
            opp = self.opp_on(record, side)
            if opp is not None:
                self.sides[side].add_child(opp, kind, f"added on {side} #{next(counter)}")

        @precondition(lambda self: self.records)
        @rule(
            data=st.data(),
            side=st.sampled_from(SIDES),
            kind=st.sampled_from(DELETABLE),
            pick=st.integers(0, 50),
        )
        def delete_child(self, data: st.DataObject, side: str, kind: str, pick: int) -> None:
            """Delete a contact, note or activity through the API, on either side: it must go on the
            other side too, and never come back."""
            record = data.draw(st.sampled_from(self.records))
            opp = self.opp_on(record, side)
            if opp is None:
                return
            s = self.sides[side]
            children = s.labels(opp)[kind]
            if children:
                child_id = sorted(children)[pick % len(children)]
                s.delete_child(opp, kind, child_id)
                self.deleted.add((kind, children[child_id]))

        @precondition(lambda self: self.records)
        @rule(data=st.data(), side=st.sampled_from(SIDES), operation=st.sampled_from(["send", "receive"]))
        def update(self, data: st.DataObject, side: str, operation: str) -> None:
            record = data.draw(st.sampled_from(self.records))
            opp = self.opp_on(record, side)
            if opp is not None:
                s = self.sides[side]
                s.post(
                    f"/v1/opportunities/{opp}/transfers/{operation}-update",
                    {"partner_organization_id": s.partner_org},
                )

        @precondition(lambda self: self.records)
        @rule(data=st.data(), side=st.sampled_from(SIDES), status=st.sampled_from(["won", "lost"]))
        def close(self, data: st.DataObject, side: str, status: str) -> None:
            record = data.draw(st.sampled_from(self.records))
            opp = self.opp_on(record, side)
            if opp is not None:
                s = self.sides[side]
                etag = s.get_etag(f"/v1/opportunities/{opp}")
                s.post(f"/v1/opportunities/{opp}/close", {"status": status}, headers={"If-Match": etag})

        @rule(side=st.sampled_from(SIDES), pick=st.integers(0, 50), die=st.booleans())
        def deliver_one(self, side: str, pick: int, die: bool) -> None:
            """Deliver one of the due messages, any of them; ``die``: the deliverer dies after the
            partner answered, before it records the answer and the delivery (the message is due again)."""
            s = self.sides[side]
            items = s.claim_all()
            if items:
                s.send(items[pick % len(items)], settle=not die)

        @rule(side=st.sampled_from(SIDES), pick=st.integers(0, 50))
        def deliver_again(self, side: str, pick: int) -> None:
            """A message delivered before is delivered once more (the partner takes it again; here its
            answer is not recorded twice: the message is settled, so the sender's commit rolls back)."""
            s = self.sides[side]
            items = s.sent_items()
            if items:
                s.send(items[pick % len(items)], settle=False)

        # --- checks ----------------------------------------------------------------------------------

        @invariant()
        def pairs_never_contradict(self) -> None:
            for record in self.records:
                a, b = self.opp_on(record, "brand"), self.opp_on(record, "partner")
                if a is None or b is None:
                    continue
                at_a, at_b = brand.pairs(a), partner.pairs(b)
                for kind in CHILD_KINDS:
                    for ours, theirs in at_a[kind].items():
                        assert at_b[kind].get(theirs, ours) == ours, (kind, at_a[kind], at_b[kind])
                    for theirs, ours in at_b[kind].items():
                        assert at_a[kind].get(ours, theirs) == theirs, (kind, at_a[kind], at_b[kind])

        def teardown(self) -> None:
            if not self.records:
                return
            self.settle()
            for record in self.records:
                a, b = self.opp_on(record, "brand"), self.opp_on(record, "partner")
                assert a is not None and b is not None, f"{record} exists on one side only"
                assert brand.transfer_of(a).remote_id == str(b)
                assert partner.transfer_of(b).remote_id == str(a)
                for side, opp in (("brand", a), ("partner", b)):
                    back = {
                        (kind, label)
                        for kind, labels in self.sides[side].labels(opp).items()
                        for label in labels.values()
                    } & self.deleted
                    assert not back, f"{record}: deleted children are back on the {side}: {back}"
                kids_a, kids_b = brand.children(a), partner.children(b)
                pairs_a, pairs_b = brand.pairs(a), partner.pairs(b)
                for kind in CHILD_KINDS:
                    where = f"{record}, {kind}: brand {kids_a[kind]} {pairs_a[kind]}, partner {kids_b[kind]} {pairs_b[kind]}"
                    assert len(kids_a[kind]) == len(kids_b[kind]), "a child is missing or doubled: " + where
                    assert set(pairs_a[kind]) == kids_a[kind], "a brand child is not paired: " + where
                    assert set(pairs_b[kind]) == kids_b[kind], "a partner child is not paired: " + where
                    assert {v: k for k, v in pairs_a[kind].items()} == pairs_b[kind], "pairs differ: " + where

        def settle(self) -> None:
            """Deliver everything queued; then each side receives an update, and each sends one (every
            phase delivered before the next)."""
            self.drain()
            for operation, on_origin in (
                ("receive", True),
                ("receive", False),
                ("send", True),
                ("send", False),
            ):
                for record in self.records:
                    side = record.origin if on_origin else other(record.origin)
                    opp = self.opp_on(record, side)
                    assert opp is not None, f"{record} never reached the {side}"
                    s = self.sides[side]
                    status = s.post(
                        f"/v1/opportunities/{opp}/transfers/{operation}-update",
                        {"partner_organization_id": s.partner_org},
                    )
                    assert status == 202, (record, side, operation)
                self.drain()

        def drain(self) -> None:
            """Deliver until nothing is due; a message still failing after a few rounds is an error."""
            for _ in range(20):
                reports = brand.drain(), partner.drain()
                if not any(r.claimed for r in reports):
                    return
            raise AssertionError(f"deliveries keep failing: {[r.errors for r in reports]}")

    return Convergence


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sides(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Side, Side]]:
    tmp_path: Path = tmp_path_factory.mktemp(f"convergence-{request.param}")
    with ExitStack() as stack:
        urls = None
        if request.param == "postgres":
            request.getfixturevalue("postgres_template")  # skips (or fails if required) without a server
            urls = stack.enter_context(postgres_databases(PG_ADMIN_URL, ("brand", "partner")))
        brand, partner = stack.enter_context(
            two_instances(tmp_path, database_urls=(urls[0], urls[1]) if urls else None)
        )
        pair = Side(brand), Side(partner)
        try:
            yield pair
        finally:
            for side in pair:
                side.http.close()
                side.db.dispose()


def test_child_records_converge_whatever_the_operations_and_the_order_of_delivery(sides):
    brand, partner = sides
    run_state_machine_as_test(
        machine_for(brand, partner),
        settings=settings(
            max_examples=10,
            stateful_step_count=20,
            derandomize=True,
            database=None,
            deadline=None,
            phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck),
        ),
    )
