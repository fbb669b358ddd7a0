"""Registration e-mail notifications through the outbox to a real SMTP server (aiosmtpd), on SQLite and
PostgreSQL: queued with the submit, sent by the deliverer, delayed (never refused) while the mail server is
down, dead-lettered when refused and retried by an admin; expiry reminders once per expiry date."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from common import outbox
from common.clock import utcnow
from common.mail import CHANNEL, SmtpSender
from common.outbox import OutboxMessage
from common.principal import Principal, Role
from common.settings import Settings
from directory.models import User
from registration.leads.models import Lead
from registration.notifications import service as notifications_service
from rules.models import StoredDecision
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo, submit
from tests.smtp_support import SmtpServer, free_port


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def settings(db_url: str, smtp_port: int) -> Settings:
    return Settings(database_url=db_url, log_json=False, smtp_port=smtp_port, mail_from="prm@brand.example")


@pytest.fixture
def smtp(smtp_port: int) -> Iterator[SmtpServer]:
    """The mail server, not started: a test starts it when it wants mail to get through."""
    server = SmtpServer(smtp_port)
    yield server
    server.stop()


@pytest.fixture
def sender(settings: Settings) -> SmtpSender:
    return SmtpSender.from_settings(settings)


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _email(db, key: str):
    with db.transaction() as session:
        return session.scalars(select(User.email).where(User.key == key)).one()


def _submitted_lead(client, demo):
    h = demo["northwind-user"]
    lead = created(client, h, jp_security_lead(demo)).get_json()
    resp = submit(client, h, lead["id"])
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _mail(db) -> list[OutboxMessage]:
    return outbox.list_messages(db, channel=CHANNEL, limit=500)


def test_submit_mails_the_approving_cam_but_not_the_submitter(client, db, demo, smtp, sender):
    lead = _submitted_lead(client, demo)
    smtp.start()
    report = notifications_service.deliver_mail(db, sender)
    assert report.sent == report.claimed >= 1
    cam_mail = smtp.inbox.to(_email(db, "cam-jp-security"))
    assert len(cam_mail) == 1
    message = cam_mail[0]
    assert message["Subject"] == "Registration REG-000001 submitted for approval: Firewall refresh"
    assert message["From"] == "prm@brand.example"
    assert message["Message-ID"].endswith("@brand.example>")
    assert f"(id {lead['id']})" in message.get_content()
    assert smtp.inbox.to(_email(db, "northwind-user")) == []
    assert len(smtp.inbox.messages) == report.sent


def test_with_the_mail_server_down_submit_succeeds_and_mail_follows_when_it_is_back(
    client, db, demo, smtp, sender
):
    _submitted_lead(client, demo)  # nothing listens on the SMTP port
    queued = _mail(db)
    assert queued and all(m.status == "pending" for m in queued)

    down = notifications_service.deliver_mail(db, sender)
    assert down.sent == 0 and down.retrying == len(queued)
    assert all(m.status == "pending" and m.attempts == 1 and m.last_error for m in _mail(db))
    assert smtp.inbox.messages == []

    smtp.start()
    later = utcnow() + timedelta(hours=2)  # past any backoff of a first failure
    back = notifications_service.deliver_mail(db, sender, clock=lambda: later)
    assert back.sent == len(queued)
    assert all(m.status == "sent" and m.attempts == 2 for m in _mail(db))
    assert len(smtp.inbox.to(_email(db, "cam-jp-security"))) == 1


def test_decisions_and_questions_reach_the_submitter_with_the_approvers_words(client, db, demo, smtp, sender):
    cam = demo["cam-jp-security"]

    def act(lead_id: int, action: str, body: dict[str, str]) -> None:
        etag = client.get(f"/v1/leads/{lead_id}", headers=cam).headers["ETag"]
        resp = client.post(f"/v1/leads/{lead_id}/{action}", json=body, headers={**cam, "If-Match": etag})
        assert resp.status_code == 200, resp.get_data(as_text=True)

    asked = _submitted_lead(client, demo)
    act(asked["id"], "request-info", {"question": "Which two sites?"})
    rejected = _submitted_lead(client, demo)
    act(rejected["id"], "reject", {"comment": "Duplicate of REG-000001"})
    approved = _submitted_lead(client, demo)
    act(approved["id"], "approve", {"comment": "fine"})
    smtp.start()
    notifications_service.deliver_mail(db, sender)

    to_partner = {m["Subject"]: m.get_content() for m in smtp.inbox.to(_email(db, "northwind-user"))}
    subjects = sorted(to_partner)
    assert len(subjects) == 3, subjects
    question = next(body for subject, body in to_partner.items() if asked["registration_number"] in subject)
    assert "Which two sites?" in question
    rejection = next(
        body for subject, body in to_partner.items() if rejected["registration_number"] in subject
    )
    assert "Duplicate of REG-000001" in rejection
    assert any(approved["registration_number"] in subject for subject in subjects)
    # the approving CAM caused these three: it is told of the submits only
    cam_subjects = [m["Subject"] for m in smtp.inbox.to(_email(db, "cam-jp-security"))]
    assert len(cam_subjects) == 3 and all("submitted" in subject for subject in cam_subjects)


def test_a_failed_submit_queues_no_mail(client, db, demo):
    h = demo["northwind-user"]
    lead = created(client, h, {"name": "Bare"}).get_json()
    assert submit(client, h, lead["id"]).status_code == 422
    assert _mail(db) == []


def test_a_refused_mailbox_is_dead_at_once_and_an_admin_retry_delivers_it(client, db, demo, smtp, sender):
    cam = _email(db, "cam-jp-security")
    lead = _submitted_lead(client, demo)
    smtp.inbox.refuse.add(cam)
    smtp.start()
    report = notifications_service.deliver_mail(db, sender)
    assert report.dead == 1
    [dead] = outbox.list_messages(db, channel=CHANNEL, status="dead")
    assert dead.payload["to"] == cam and "550" in (dead.last_error or "")

    smtp.inbox.refuse.clear()  # the mailbox was fixed
    runner = client.application.test_cli_runner()
    listed = runner.invoke(args=["outbox", "list", "--status", "dead"])
    assert listed.exit_code == 0 and f"{dead.id}\temail\tlead.submitted\tdead\t1\t" in listed.output
    [line] = [row for row in listed.output.splitlines() if row.startswith(f"{dead.id}\t")]
    assert line.split("\t")[6:8] == [str(lead["id"]), cam]  # the lead and the recipient
    retried = runner.invoke(args=["outbox", "retry", str(dead.id)])
    assert retried.exit_code == 0, retried.output
    assert f"retried 1 message(s): {dead.id}" in retried.output
    delivered = runner.invoke(args=["notifications", "deliver", "--once"])
    assert delivered.exit_code == 0 and "sent 1" in delivered.output
    assert len(smtp.inbox.to(cam)) == 1


def test_outbox_retry_needs_ids_or_all_dead(client):
    result = client.application.test_cli_runner().invoke(args=["outbox", "retry"])
    assert result.exit_code != 0 and "--all-dead" in result.output


def _approve_directly(db, lead_id: int, expires_in: timedelta) -> None:
    # Approval belongs to another module; the reminder only needs an approved lead with an expiry date.
    with db.transaction() as session:
        session.execute(
            update(Lead)
            .where(Lead.id == lead_id)
            .values(status="approved", expires_at=utcnow() + expires_in, version=Lead.version + 1)
        )


def test_expiry_reminders_reach_owner_and_sales_team_once_per_expiry_date(client, db, demo, smtp, sender):
    soon = _submitted_lead(client, demo)
    later = _submitted_lead(client, demo)
    _approve_directly(db, soon["id"], timedelta(days=3))
    _approve_directly(db, later["id"], timedelta(days=30))
    before = len(_mail(db))

    runner = client.application.test_cli_runner()
    first = runner.invoke(args=["notifications", "expiring"])
    assert first.exit_code == 0, first.output
    reminders = [m for m in _mail(db) if m.topic == "lead.expiring"]
    assert {m.payload["lead_id"] for m in reminders} == {soon["id"]}
    assert f"queued {len(reminders)} reminder(s)" in first.output
    recipients = {m.payload["to"] for m in reminders}
    assert _email(db, "northwind-user") in recipients  # the owner
    assert _email(db, "cam-jp-security") in recipients  # the sales team
    assert runner.invoke(args=["notifications", "expiring"]).output.strip() == "queued 0 reminder(s)"
    assert len(_mail(db)) == before + len(reminders)

    smtp.start()
    notifications_service.deliver_mail(db, sender)
    [reminder] = smtp.inbox.to(_email(db, "northwind-user"))
    assert reminder["Subject"].startswith("Registration REG-000001 expires on ")


def test_notify_for_one_transition_twice_queues_once(client, db, demo):
    lead = _submitted_lead(client, demo)
    before = len(_mail(db))
    with db.transaction() as session:
        row = session.get_one(Lead, lead["id"])
        submitter = Principal(row.submitted_by, row.organization_id, frozenset({Role.PARTNER_USER}), False)
        again = notifications_service.notify(session, row, "submitted", submitter)
    assert again == [] and len(_mail(db)) == before


def test_the_policy_of_the_decision_names_who_is_told(client, db, demo):
    lead = _submitted_lead(client, demo)
    with db.transaction() as session:
        row = session.get_one(Lead, lead["id"])
        decision = session.get_one(StoredDecision, row.decision_id)
        result = dict(decision.result)
        result["policy"] = {
            **result["policy"],
            "notify": [{"event": "rejected", "roles": [], "users": ["admin"]}],
        }
        decision.result = result
    with db.transaction() as session:
        row = session.get_one(Lead, lead["id"])
        ids = notifications_service.notify(session, row, "rejected", None, occurrence="t", comment="overlap")
    with db.transaction() as session:
        [message] = [session.get_one(OutboxMessage, i) for i in ids]
    assert message.payload["to"] == _email(db, "admin")
    assert "Comment: overlap" in message.payload["body"]


def test_settings_read_the_mail_server_from_the_environment():
    env = {"PRM_SMTP_HOST": "mail.internal", "PRM_SMTP_PORT": "2525", "PRM_MAIL_FROM": "prm@x.example"}
    settings = Settings.from_env(env)
    assert (settings.smtp_host, settings.smtp_port, settings.mail_from) == (
        "mail.internal",
        2525,
        "prm@x.example",
    )
    assert dataclasses.replace(settings, smtp_timeout_seconds=3).smtp_timeout_seconds == 3
