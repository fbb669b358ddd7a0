"""Applying a registration transition inside the caller's transaction: the one table decides
(``lifecycle.next_status``), one audit row records who, when, from -> to and why, and
``after_transition`` is the single place where side effects of a transition hang (notifications).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from common import audit
from common.principal import Principal
from registration.leads.lifecycle import Event, RegistrationStatus, next_status
from registration.leads.models import Lead
from registration.notifications import service as notifications_service
from registration.notifications.notifications import NotificationEvent

#: Event -> the audit action recorded for it (what the lead's history shows).
ACTIONS: Mapping[Event, str] = {
    Event.SUBMIT: "submitted",
    Event.ROUTE: "routed",
    Event.APPROVE: "approved",
    Event.REJECT: "rejected",
    Event.REQUEST_INFO: "info_requested",
    Event.SUBMIT_INFO: "info_submitted",
    Event.WITHDRAW: "withdrawn",
    Event.EXPIRE: "expired",
    Event.EXTEND: "reinstated",
}

#: Transitions that tell people (the policy's ``notify`` entries say whom; notifications.py the defaults).
NOTIFIED: Mapping[Event, NotificationEvent] = {
    Event.APPROVE: NotificationEvent("approved"),
    Event.REJECT: NotificationEvent("rejected"),
    Event.REQUEST_INFO: NotificationEvent("info_requested"),
    Event.EXPIRE: NotificationEvent("expired"),
    Event.SUBMIT_INFO: NotificationEvent("info_submitted"),
    Event.WITHDRAW: NotificationEvent("withdrawn"),
}
#: The transition's reason, as the mail's context names it.
CONTEXT: Mapping[Event, str] = {
    Event.REJECT: "comment",
    Event.REQUEST_INFO: "question",
    Event.SUBMIT_INFO: "answer",
    Event.WITHDRAW: "comment",
}


def apply_transition(
    session: Session,
    actor: Principal | None,
    lead: Lead,
    event: Event,
    *,
    now: datetime,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> RegistrationStatus:
    """Move the lead by ``event`` (409 ``InvalidTransition`` if the table has no such move), record it,
    and run the transition's hook. Returns the new status."""
    previous = lead.status
    target = next_status(previous, event)
    lead.status = target.value
    lead.updated_at = now
    session.flush()
    audit.record(
        session,
        actor,
        "lead",
        lead.id,
        ACTIONS[event],
        before={"status": previous},
        after={"status": target.value},
        reason=reason,
        details=details,
        now=now,
    )
    after_transition(
        session, lead, event, actor, previous=RegistrationStatus(previous), now=now, reason=reason
    )
    return target


def after_transition(
    session: Session,
    lead: Lead,
    event: Event,
    actor: Principal | None,
    *,
    previous: RegistrationStatus,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Hook for side effects of a registration transition, called once per transition in the same
    transaction, after the status changed and the audit row was added.

    Every transition calls it: ``ROUTE`` when a submission starts an approval round (the decision,
    round and steps are stored by then), ``APPROVE`` after the opportunity exists, ``REJECT``,
    ``REQUEST_INFO`` (the task exists), ``SUBMIT_INFO``, ``WITHDRAW`` and ``EXPIRE`` (sweep). Enqueue
    notifications (outbox rows) here; anything written joins the caller's transaction, so a failed
    transition sends nothing. The submit mail is queued by the submission itself (with the routing
    result), so ``ROUTE`` adds none.
    """
    notification = NOTIFIED.get(event)
    if notification is None:
        return
    context: dict[str, Any] = {CONTEXT[event]: reason} if event in CONTEXT and reason else {}
    notifications_service.notify(session, lead, notification, actor, now=now, **context)
