"""A child record deleted on one side is deleted on the other, and never brought back (issue 11: deleted
children kept their pairs, so the other side's next update re-created them).

Deleting a contact, note or activity through the opportunities API leaves its pair as a tombstone; the next
document in either direction (an update, a query's answer, the answer to an update) carries the
tombstones, the other side deletes its copy and keeps a tombstone too, and a document that still carries
the child (queued before the deletion) does not re-create it. Two real instances in one process; SQLite
and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo
from tests.transfer.pair_support import Partner, change, connect, deliver_to

KINDS = ("contacts", "revenue_lines", "notes", "activities")


def _only(items: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = items
    return found


class Pair:
    """The brand owner's opportunity and the partner's copy of it, through both APIs."""

    def __init__(self, client, db, settings, demo: Demo, partner: Partner) -> None:
        self.client, self.db, self.settings, self.demo, self.partner = client, db, settings, demo, partner
        connect(client, demo, partner)
        lead = pending(client, demo)
        self.ours = ok(act(client, demo["cam-jp-security"], lead["id"], "approve"))["opportunity_id"]
        path = self.path
        change(client, demo["admin"], "POST", f"{path}/contacts", {"name": "Ken Sato", "email": "k@x.jp"})
        change(client, demo["admin"], "POST", f"{path}/notes", {"text": "Two sites"})
        change(client, demo["admin"], "POST", f"{path}/activities", {"kind": "call", "subject": "Kick-off"})
        self.brand_queues("")
        self.brand_delivers()
        self.theirs = int(self.brand_transfer()["remote_id"])

    @property
    def path(self) -> str:
        return f"/v1/opportunities/{self.ours}"

    @property
    def their_path(self) -> str:
        return f"/v1/opportunities/{self.theirs}"

    def brand_queues(self, what: str) -> None:
        body = {"partner_organization_id": self.demo.ids["northwind"]}
        ok(self.client.post(f"{self.path}/transfers{what}", json=body, headers=self.demo["admin"]), 202)

    def partner_queues(self, what: str) -> None:
        body = {"partner_organization_id": self.partner.demo.ids["acme"]}
        resp = self.partner.client.post(
            f"{self.their_path}/transfers{what}", json=body, headers=self.partner.demo["admin"]
        )
        ok(resp, 202)

    def brand_delivers(self) -> None:
        report = deliver_to(self.db, self.settings, self.partner.app)
        assert (report.sent, report.retrying, report.dead) == (1, 0, 0), report

    def partner_delivers(self) -> None:
        settings = self.partner.app.extensions["prm.settings"]
        report = deliver_to(self.partner.db, settings, self.client.application)
        assert (report.sent, report.retrying, report.dead) == (1, 0, 0), report

    def brand_transfer(self) -> dict[str, Any]:
        items = ok(self.client.get(f"{self.path}/transfers", headers=self.demo["admin"]))["items"]
        return _only(items)

    def partner_transfer(self) -> dict[str, Any]:
        resp = self.partner.client.get(f"{self.their_path}/transfers", headers=self.partner.demo["admin"])
        return _only(ok(resp)["items"])

    def mine(self) -> dict[str, Any]:
        out: dict[str, Any] = ok(self.client.get(self.path, headers=self.demo["admin"]))
        return out

    def theirs_now(self) -> dict[str, Any]:
        out: dict[str, Any] = ok(self.partner.client.get(self.their_path, headers=self.partner.demo["admin"]))
        return out

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        mine, theirs = self.mine(), self.theirs_now()
        return {k: len(mine[k]) for k in KINDS}, {k: len(theirs[k]) for k in KINDS}


def _tombstones(transfer: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [k for k in transfer["correlation_keys"] if k["kind"] == kind and k["deleted_at"]]


@pytest.fixture
def pair(client, db, settings, demo, partner) -> Pair:
    return Pair(client, db, settings, demo, partner)


def test_a_child_deleted_here_is_deleted_there_and_a_stale_update_does_not_bring_it_back(pair):
    ken = next(c for c in pair.mine()["contacts"] if c["name"] == "Ken Sato")
    assert [c["name"] for c in pair.theirs_now()["contacts"]].count("Ken Sato") == 1

    # the partner queues an update while it still has Ken; then the brand owner deletes him
    pair.partner_queues("/send-update")
    change(pair.client, pair.demo["admin"], "DELETE", f"{pair.path}/contacts/{ken['id']}")
    [tombstone] = _tombstones(pair.brand_transfer(), "contacts")
    assert tombstone["local_id"] == ken["id"]

    # the partner's update still carries Ken: he is not re-created here, and the answer tells the
    # partner, which deletes its copy
    pair.partner_delivers()
    assert "Ken Sato" not in [c["name"] for c in pair.mine()["contacts"]]
    assert "Ken Sato" not in [c["name"] for c in pair.theirs_now()["contacts"]]
    assert len(_tombstones(pair.partner_transfer(), "contacts")) == 1

    # updates and queries both ways: he stays deleted, nothing else moves, both sides agree
    before = pair.counts()
    assert before[0] == before[1], before
    pair.brand_queues("/send-update")
    pair.brand_delivers()
    pair.brand_queues("/receive-update")
    pair.brand_delivers()
    pair.partner_queues("/send-update")
    pair.partner_delivers()
    assert pair.counts() == before
    assert pair.brand_transfer()["status"] == pair.partner_transfer()["status"] == "successful"


def test_a_child_deleted_there_goes_here_with_the_query_and_the_next_update(pair):
    note = next(n for n in pair.theirs_now()["notes"] if n["text"] == "Two sites")
    call = next(a for a in pair.theirs_now()["activities"] if a["subject"] == "Kick-off")
    their_admin = pair.partner.demo["admin"]
    change(pair.partner.client, their_admin, "DELETE", f"{pair.their_path}/notes/{note['id']}")

    # the brand owner's query: the answer carries the tombstone, our note goes
    pair.brand_queues("/receive-update")
    pair.brand_delivers()
    assert "Two sites" not in [n["text"] for n in pair.mine()["notes"]]
    assert len(_tombstones(pair.brand_transfer(), "notes")) == 1

    # the partner deletes the call and sends its update: our call goes
    change(pair.partner.client, their_admin, "DELETE", f"{pair.their_path}/activities/{call['id']}")
    pair.partner_queues("/send-update")
    pair.partner_delivers()
    assert "Kick-off" not in [a["subject"] for a in pair.mine()["activities"]]

    # our update carries neither back
    pair.brand_queues("/send-update")
    pair.brand_delivers()
    theirs = pair.theirs_now()
    assert "Two sites" not in [n["text"] for n in theirs["notes"]]
    assert "Kick-off" not in [a["subject"] for a in theirs["activities"]]
    mine, theirs_counts = pair.counts()
    assert mine == theirs_counts, (mine, theirs_counts)
