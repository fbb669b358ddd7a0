"""Who is told about a registration event and what the e-mail says (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from registration.notifications.notifications import (
    DEFAULT_AUDIENCE,
    Audience,
    LeadSummary,
    Member,
    NotificationEvent,
    NotifyEntry,
    Person,
    compose,
    recipients,
)

E = NotificationEvent
PARTNER = Person(1, "pat", "pat@partner.example", "Pat Partner")
OWNER = Person(2, "olga", "olga@partner.example", "Olga Owner")
CAM = Person(3, "cam", "cam@brand.example", "Cam Manager")
REP = Person(4, "rep", "rep@brand.example", "Rep Sales")
DIRECTOR = Person(5, "dir", "dir@brand.example", "Dee Director")
ADMIN = Person(6, "padmin", "padmin@partner.example", "Pia Admin")
NAMED = Person(7, "ops", "ops@brand.example", "Ops Desk")

AUDIENCE = Audience(
    owner=OWNER,
    submitter=PARTNER,
    sales_team=(
        Member(OWNER, "lead_owner"),
        Member(CAM, "channel_account_manager"),
        Member(REP, "sales_rep"),
    ),
    approvers=(Member(CAM, "channel_account_manager"), Member(DIRECTOR, "channel_sales_director")),
    organization=(Member(ADMIN, "partner_admin"), Member(PARTNER, "partner_user")),
    named={"ops": NAMED},
)


def keys(people):
    return [p.key for p in people]


def test_every_event_has_a_default_audience():
    assert set(DEFAULT_AUDIENCE) == set(NotificationEvent)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (E.SUBMITTED, ["cam", "dir", "olga", "rep"]),
        (E.APPROVED, ["pat", "olga", "cam", "rep"]),
        (E.REJECTED, ["pat", "olga", "cam", "rep"]),
        (E.INFO_REQUESTED, ["pat"]),
        (E.EXPIRING, ["olga", "cam", "rep"]),
        (E.EXPIRED, ["olga", "cam", "rep"]),
    ],
)
def test_without_policy_entries_the_default_audience_is_told(event, expected):
    assert keys(recipients(event, AUDIENCE, ())) == expected


def test_the_actor_is_not_told_about_their_own_action():
    assert "cam" not in keys(recipients(E.APPROVED, AUDIENCE, (), actor_user_id=CAM.user_id))
    assert keys(recipients(E.INFO_REQUESTED, AUDIENCE, (), actor_user_id=CAM.user_id)) == ["pat"]


def test_policy_roles_resolve_on_the_sales_team_and_the_approvers():
    policy = [NotifyEntry("submitted", roles=("channel_sales_director", "sales_rep"))]
    assert keys(recipients(E.SUBMITTED, AUDIENCE, policy)) == ["dir", "rep"]  # in the policy's order


def test_policy_party_roles_resolve_on_the_lead():
    policy = [NotifyEntry("approved", roles=("partner_owner", "submitter", "partner_admin"))]
    assert keys(recipients(E.APPROVED, AUDIENCE, policy)) == ["olga", "pat", "padmin"]


def test_policy_users_are_named_by_key_and_unknown_ones_ignored():
    policy = [NotifyEntry("rejected", users=("ops", "nobody"))]
    assert keys(recipients(E.REJECTED, AUDIENCE, policy)) == ["ops"]


def test_entries_of_other_events_do_not_apply():
    policy = [NotifyEntry("approved", users=("ops",))]
    assert keys(recipients(E.INFO_REQUESTED, AUDIENCE, policy)) == ["pat"]


def test_a_policy_that_resolves_to_nobody_falls_back_to_the_default():
    policy = [NotifyEntry("submitted", roles=("channel_sales_manager",))]
    assert keys(recipients(E.SUBMITTED, AUDIENCE, policy)) == ["cam", "dir", "olga", "rep"]


def test_an_empty_policy_entry_means_nobody():
    assert recipients(E.SUBMITTED, AUDIENCE, [NotifyEntry("submitted")]) == []


def test_each_person_is_told_once():
    policy = [
        NotifyEntry("approved", roles=("channel_account_manager",), users=("cam",)),
        NotifyEntry("approved", roles=("channel_account_manager", "lead_owner")),
    ]
    audience = Audience(owner=OWNER, sales_team=AUDIENCE.sales_team, named={"cam": CAM})
    assert keys(recipients(E.APPROVED, audience, policy)) == ["cam", "olga"]


def test_a_lead_with_nobody_around_tells_nobody():
    assert recipients(E.APPROVED, Audience(), ()) == []


NOW = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
LEAD = LeadSummary(12, "Firewall refresh", "approved", "REG-000042", NOW + timedelta(days=6, hours=2))


def test_a_rejection_mail_carries_the_comment_and_the_registration():
    mail = compose(E.REJECTED, LEAD, PARTNER, actor_name="Cam Manager", now=NOW, context={"comment": "dup"})
    assert mail.to == "pat@partner.example" and mail.to_name == "Pat Partner"
    assert mail.subject == "Registration REG-000042 rejected: Firewall refresh"
    assert "Cam Manager rejected the registration" in mail.body
    assert "Comment: dup" in mail.body
    assert "Registration number: REG-000042" in mail.body


def test_an_expiry_reminder_says_when_and_how_soon():
    mail = compose(E.EXPIRING, LEAD, OWNER, actor_name=None, now=NOW)
    assert mail.subject == "Registration REG-000042 expires on 2027-01-16: Firewall refresh"
    assert "(6 day(s) from now)" in mail.body


def test_a_request_for_information_carries_the_question():
    mail = compose(
        E.INFO_REQUESTED, LEAD, PARTNER, actor_name="Cam", now=NOW, context={"question": "Budget?"}
    )
    assert "Question: Budget?" in mail.body


def test_a_line_break_in_a_lead_name_cannot_reach_the_subject_header():
    lead = LeadSummary(1, "Evil\r\nBcc: all@example.com", "pending_approval")
    mail = compose(E.SUBMITTED, lead, CAM, actor_name="Pat", now=NOW)
    assert "\n" not in mail.subject and "\r" not in mail.subject
    assert mail.subject == "Registration #1 submitted for approval: Evil Bcc: all@example.com"


@pytest.mark.parametrize("event", list(NotificationEvent))
def test_every_event_composes_a_mail(event):
    mail = compose(event, LEAD, CAM, actor_name="X", now=NOW)
    assert mail.subject and mail.body.startswith("Hello Cam Manager,")
