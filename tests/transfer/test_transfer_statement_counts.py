"""What one transfer costs in SQL statements, counted, not timed (issue 11, point 7: throughput): a
create's delivery costs the deliverer and the partner a few statements each, the same however many
children the opportunity carries (no statement per child or per correlation key). Two real instances in
one process; SQLite and PostgreSQL."""

from __future__ import annotations

from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo
from tests.api.test_statement_counts import counted
from tests.transfer.pair_support import Partner, connect, deliver_to

#: Statement budgets of one create's delivery (claim, the call, the answer applied and the message settled
#: in one commit, the mails the demo's policy sends about it), PostgreSQL; the deliverer's holds on SQLite.
DELIVERER_BUDGET = 25
PARTNER_BUDGET = 14
#: A create's statements in a batch call, per call: the deliverer reads the batch's transfers, their
#: pairs, leads and connections once for all; the partner verifies the batch's connection once; neither
#: opens a savepoint per call while none fails.
BATCHED_DELIVERER_BUDGET = 6
BATCHED_PARTNER_BUDGET = 9


def _opportunity(client, demo: Demo, extra_children: int) -> int:
    lead = pending(client, demo)
    opp_id: int = ok(act(client, demo["cam-jp-security"], lead["id"], "approve"))["opportunity_id"]
    path = f"/v1/opportunities/{opp_id}"
    for i in range(extra_children):
        for kind, body in (
            ("contacts", {"name": f"Contact {i}", "email": f"c{i}@example.jp"}),
            ("notes", {"text": f"Note {i}"}),
            ("activities", {"kind": "call", "subject": f"Call {i}"}),
        ):
            etag = client.get(path, headers=demo["admin"]).headers["ETag"]
            resp = client.post(f"{path}/{kind}", json=body, headers={**demo["admin"], "If-Match": etag})
            assert resp.status_code == 201, resp.get_data(as_text=True)
    return opp_id


def _delivered(client, db, settings, demo: Demo, partner: Partner, opp_id: int) -> tuple[int, int, int]:
    """(children sent, the deliverer's statements, the partner's) of the create of `opp_id`."""
    body = {"partner_organization_id": demo.ids["northwind"]}
    resp = client.post(f"/v1/opportunities/{opp_id}/transfers", json=body, headers=demo["admin"])
    assert resp.status_code == 202, resp.get_data(as_text=True)
    with counted(db) as ours, counted(partner.db) as theirs:
        assert deliver_to(db, settings, partner.app).sent == 1
    [t] = ok(client.get(f"/v1/opportunities/{opp_id}/transfers", headers=demo["admin"]))["items"]
    assert t["status"] == "successful", t
    opp = ok(client.get(f"/v1/opportunities/{opp_id}", headers=demo["admin"]))
    children = sum(len(opp[k]) for k in ("contacts", "revenue_lines", "notes", "activities"))
    return children, len(ours.statements), len(theirs.statements)


def test_a_create_costs_a_few_statements_on_each_side_whatever_its_children(
    client, db, settings, demo, partner
):
    connect(client, demo, partner)
    few = _delivered(client, db, settings, demo, partner, _opportunity(client, demo, 1))
    many = _delivered(client, db, settings, demo, partner, _opportunity(client, demo, 6))
    assert many[0] >= few[0] + 15
    assert many[1] == few[1], f"a child costs the deliverer statements: {few} -> {many}"
    if settings.database_url.startswith("postgresql"):
        # SQLite's driver inserts rows whose new ids are read back one statement each (its children)
        assert many[2] == few[2], f"a child costs the partner statements: {few} -> {many}"
        assert few[2] <= PARTNER_BUDGET, few
    assert few[1] <= DELIVERER_BUDGET, few
