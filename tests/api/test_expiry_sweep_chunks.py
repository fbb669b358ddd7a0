"""The expiry sweep and the expiry reminders on the chunked batch runner (issue 9), on SQLite and
PostgreSQL: the result is what one pass gives, each chunk commits on its own (a failure in a later
chunk leaves the earlier ones expired, and running the sweep again completes it, each registration
expiring once), and the ids are streamed in keyset pages."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from common.audit import AuditEvent
from common.batch import InlineBackend, database_for, keyset_chunks
from common.database import Database
from common.outbox import OutboxMessage
from registration.expiry import service as expiry_service
from registration.leads.models import Lead
from registration.notifications import service as notifications_service
from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo, load_demo

N = 7


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _approved(client: Any, demo: Demo, n: int) -> list[dict[str, Any]]:
    cam = demo["cam-jp-security"]
    return [ok(act(client, cam, pending(client, demo, name=f"Deal {i}")["id"], "approve")) for i in range(n)]


def _statuses(db: Database, ids: list[int]) -> list[str]:
    with db.transaction() as session:
        by_id = dict(session.execute(select(Lead.id, Lead.status).where(Lead.id.in_(ids))).all())
    return [by_id[i] for i in ids]


def _expired_rows(db: Database, lead_id: int) -> int:
    with db.transaction() as session:
        return len(
            session.scalars(
                select(AuditEvent.id).where(
                    AuditEvent.entity_type == "lead",
                    AuditEvent.entity_id == lead_id,
                    AuditEvent.action == "expired",
                )
            ).all()
        )


def _fail_expiring(db: Database, lead_id: int) -> tuple[list[str], list[str]]:
    """DDL making the database refuse to expire ``lead_id`` (a real failure mid-sweep), and its undo."""
    if db.url.startswith("sqlite"):
        return (
            [
                f"CREATE TRIGGER refuse_expiry BEFORE UPDATE OF status ON leads "
                f"WHEN NEW.id = {lead_id} AND NEW.status = 'expired' "
                f"BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
            ],
            ["DROP TRIGGER IF EXISTS refuse_expiry"],
        )
    return (
        [
            "CREATE FUNCTION refuse_expiry() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.id = {lead_id} AND NEW.status = 'expired' THEN RAISE EXCEPTION 'refused by test trigger'; "
            "END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_expiry BEFORE UPDATE ON leads FOR EACH ROW EXECUTE FUNCTION refuse_expiry()",
        ],
        ["DROP TRIGGER IF EXISTS refuse_expiry ON leads", "DROP FUNCTION IF EXISTS refuse_expiry()"],
    )


def _ddl(db: Database, statements: list[str]) -> None:
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def test_a_sweep_in_small_chunks_gives_the_one_pass_result_and_commits_per_chunk(client, db, demo):
    leads = _approved(client, demo, N)
    ids = [lead["id"] for lead in leads]
    as_of = datetime.now().astimezone() + timedelta(days=91)

    # every chunk is its own transaction: count the commits that changed a lead's status
    engine = database_for(db.url).engine
    commits: list[int] = []
    writes = {"n": 0}

    def before_execute(conn, clauseelement, multiparams, params, execution_options) -> None:
        if "UPDATE leads" in str(clauseelement):
            writes["n"] += 1

    def on_commit(conn) -> None:
        if writes["n"]:
            commits.append(writes["n"])
        writes["n"] = 0

    event.listen(engine, "before_execute", before_execute)
    event.listen(engine, "commit", on_commit)
    try:
        out = expiry_service.expire_registrations(db, None, as_of, chunk_size=2, backend=InlineBackend())
    finally:
        event.remove(engine, "before_execute", before_execute)
        event.remove(engine, "commit", on_commit)
    # the one-pass result: every due registration, listed in id order, the totals
    assert out.expired == N
    assert out.registration_numbers == [lead["registration_number"] for lead in leads]
    assert (out.expired_total, out.approved_remaining) == (N, 0)
    assert commits == [2, 2, 2, 1]  # four chunks of at most two, each committed on its own
    assert [_expired_rows(db, i) for i in ids] == [1] * N
    again = expiry_service.expire_registrations(db, None, as_of, chunk_size=2)
    assert (again.expired, again.registration_numbers, again.expired_total) == (0, [], N)


def test_a_failure_in_a_later_chunk_keeps_the_earlier_chunks_and_a_rerun_completes(app, client, db, demo):
    leads = _approved(client, demo, N)
    ids = [lead["id"] for lead in leads]
    as_of = datetime.now().astimezone() + timedelta(days=91)
    create, drop = _fail_expiring(db, ids[4])  # in the third chunk of two
    _ddl(db, create)
    try:
        runner = app.test_cli_runner()
        failed = runner.invoke(
            args=[
                "registrations",
                "expire",
                "--now",
                as_of.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "--chunk-size",
                "2",
            ]
        )
        assert failed.exit_code != 0
        assert "refused by test trigger" in str(failed.exception)
        # chunks one and two committed; the failed chunk rolled back whole; the rest never ran
        assert _statuses(db, ids) == ["expired"] * 4 + ["approved"] * 3
    finally:
        _ddl(db, drop)

    out = runner.invoke(
        args=["registrations", "expire", "--now", as_of.strftime("%Y-%m-%dT%H:%M:%S%z"), "--chunk-size", "2"]
    )
    assert out.exit_code == 0, out.output
    rest = ", ".join(lead["registration_number"] for lead in leads[4:])
    assert f"expired 3 registration(s): {rest};" in out.output
    assert f"0 approved still protected, {N} expired in total" in out.output
    assert _statuses(db, ids) == ["expired"] * N
    assert [_expired_rows(db, i) for i in ids] == [1] * N  # each registration expired exactly once


def test_the_sweep_streams_ids_in_keyset_pages(db, client, demo):
    leads = _approved(client, demo, 5)
    as_of = datetime.now().astimezone() + timedelta(days=91)
    pages: list[tuple[int, int]] = []

    def next_ids(session, after: int, limit: int) -> list[int]:
        pages.append((after, limit))
        return expiry_service._due_ids(as_of)(session, after, limit)

    chunks = keyset_chunks(db, next_ids, run_id=0, phase="expire", size=2, params={"now": as_of.isoformat()})
    first = next(chunks)
    assert pages == [(0, 2)]  # only the first page read so far
    assert (first.first_id, first.last_id, first.number) == (leads[0]["id"], leads[1]["id"], 1)
    rest = list(chunks)
    assert [(c.first_id, c.last_id) for c in rest] == [
        (leads[2]["id"], leads[3]["id"]),
        (leads[4]["id"], leads[4]["id"]),
    ]
    assert pages == [(0, 2), (leads[1]["id"], 2), (leads[3]["id"], 2)]


def test_reminders_in_small_chunks_queue_each_once(client, db, demo):
    leads = _approved(client, demo, 5)
    as_of = datetime.now().astimezone() + timedelta(days=85)  # within a week of the 90 days
    queued = notifications_service.queue_expiry_reminders(db, within_days=7, now=as_of, chunk_size=2)
    with db.transaction() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "lead.expiring")).all()
        reminded = sorted({r.payload["lead_id"] for r in rows})
        assert queued == len(rows) > 0
    assert reminded == sorted(lead["id"] for lead in leads)
    assert notifications_service.queue_expiry_reminders(db, within_days=7, now=as_of, chunk_size=2) == 0
    out = client.application.test_cli_runner().invoke(args=["notifications", "expiring", "--chunk-size", "1"])
    assert out.exit_code == 0 and out.output.strip() == "queued 0 reminder(s)"  # not within 7 days of now
