"""Editing an opportunity: its own fields (name, stage, expected close date, description) and its
contacts, notes and activities, each added, changed or deleted.

Every change follows the rules of the revenue lines (``service.update_revenue_line``): it names the
opportunity's ETag (If-Match; the opportunity's version moves with every change, a child's included),
the partner's team may make it only while the registration protects the deal and its registration type
lets it sell (``opportunity.check_partner_may_close``: refused after expiry, and under a referral), the
brand owner's users always; it writes one audit row (entity ``opportunity``) with before and after; and
it calls ``on_changed`` in its transaction, which is how a transferred opportunity's update is queued
where the connection or the policy sends updates automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import FieldProblem, NotFound, ValidationFailed
from common.principal import Principal
from registration.leads.models import Lead
from registration.opportunities import schemas as o
from registration.opportunities.models import (
    Opportunity,
    OpportunityActivity,
    OpportunityContact,
    OpportunityNote,
)
from registration.opportunities.opportunity import check_partner_may_close
from registration.opportunities.service import (
    OpportunityChanged,
    no_hook,
    opportunity_out,
    visible_opportunity,
)


@dataclass
class _Change:
    """What one change did, for its audit row."""

    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Editing:
    session: Session
    principal: Principal
    opp: Opportunity
    now: datetime

    def allow(self, what: str) -> None:
        """Refuse the partner's team as closing does (expired registration, referral)."""
        if self.principal.internal:
            return
        lead = self.session.get(Lead, self.opp.lead_id)
        assert lead is not None
        check_partner_may_close(
            self.opp.registration_type,
            self.opp.registration_number,
            lead.status,
            self.opp.registration_expires_at,
            self.now,
            lead_id=lead.id,
            action=what,
        )


def _edit(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    if_match: str | None,
    on_changed: OpportunityChanged,
    apply: Callable[[_Editing], _Change],
) -> o.OpportunityOut:
    now = utcnow()
    with db.transaction() as session:
        opp = visible_opportunity(session, principal, opportunity_id, for_update=True)
        check_if_match(if_match, opp.id, opp.version)
        change = apply(_Editing(session, principal, opp, now))
        opp.updated_at = now  # the opportunity row changes with each of its children: its version moves
        session.flush()
        audit.record(
            session,
            principal,
            "opportunity",
            opp.id,
            change.action,
            before=change.before,
            after=change.after,
            details={**change.details, "version": opp.version},
            now=now,
        )
        on_changed(session, principal, opp, now=now, change=change.action)
        session.refresh(opp)
        return opportunity_out(session, opp)


def _text(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


# --- the opportunity's own fields ---------------------------------------------------------------------

_FIELDS = ("name", "stage", "expected_close_date", "description")


def update_opportunity(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    if_match: str | None,
    data: o.OpportunityPatch,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    """Change name, stage, expected close date and/or description (a closed opportunity's too: a
    correction, as for revenue lines)."""

    def apply(e: _Editing) -> _Change:
        e.allow("change the opportunity")
        changes = data.model_dump(include=data.model_fields_set & set(_FIELDS))
        before = {k: _text(getattr(e.opp, k)) for k in changes}
        for name, value in changes.items():
            setattr(e.opp, name, value)
        return _Change("updated", before, {k: _text(v) for k, v in changes.items()})

    return _edit(db, principal, opportunity_id, if_match, on_changed, apply)


# --- contacts -----------------------------------------------------------------------------------------


def _contact_state(c: OpportunityContact) -> dict[str, Any]:
    return {"name": c.name, "email": c.email, "phone": c.phone, "role": c.role, "primary": c.is_primary}


def _contact(opp: Opportunity, contact_id: int) -> OpportunityContact:
    found = next((c for c in opp.contacts if c.id == contact_id), None)
    if found is None:
        raise NotFound(f"contact {contact_id} not found on opportunity {opp.id}")
    return found


def _make_primary(opp: Opportunity, contact: OpportunityContact) -> None:
    for other in opp.contacts:
        other.is_primary = other is contact


def add_contact(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    if_match: str | None,
    data: o.ContactIn,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    def apply(e: _Editing) -> _Change:
        e.allow("change the opportunity's contacts")
        contact = OpportunityContact(
            name=data.name, email=data.email, phone=data.phone, role=data.role, is_primary=False
        )
        e.opp.contacts.append(contact)
        if data.primary:
            _make_primary(e.opp, contact)
        e.session.flush()
        return _Change("contact_added", None, _contact_state(contact), {"contact_id": contact.id})

    return _edit(db, principal, opportunity_id, if_match, on_changed, apply)


def update_contact(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    contact_id: int,
    if_match: str | None,
    data: o.ContactPatch,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    def apply(e: _Editing) -> _Change:
        contact = _contact(e.opp, contact_id)
        e.allow("change the opportunity's contacts")
        before = _contact_state(contact)
        changes = data.model_dump(include=data.model_fields_set)
        primary = changes.pop("primary", None)
        for name, value in changes.items():
            setattr(contact, name, value)
        if primary is True:
            _make_primary(e.opp, contact)
        elif primary is False:
            contact.is_primary = False
        if not (contact.name or contact.email):
            raise ValidationFailed(
                "a contact needs a name or an e-mail address",
                [FieldProblem("/name", "would leave the contact without a name and an e-mail address")],
            )
        return _Change("contact_updated", before, _contact_state(contact), {"contact_id": contact.id})

    return _edit(db, principal, opportunity_id, if_match, on_changed, apply)


def delete_contact(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    contact_id: int,
    if_match: str | None,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    def apply(e: _Editing) -> _Change:
        contact = _contact(e.opp, contact_id)
        e.allow("change the opportunity's contacts")
        before = _contact_state(contact)
        e.opp.contacts.remove(contact)
        return _Change("contact_deleted", before, None, {"contact_id": contact_id})

    return _edit(db, principal, opportunity_id, if_match, on_changed, apply)


# --- notes --------------------------------------------------------------------------------------------


def _note(opp: Opportunity, note_id: int) -> OpportunityNote:
    found = next((n for n in opp.notes if n.id == note_id), None)
    if found is None:
        raise NotFound(f"note {note_id} not found on opportunity {opp.id}")
    return found


def add_note(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    if_match: str | None,
    data: o.NoteIn,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    def apply(e: _Editing) -> _Change:
        e.allow("add notes to the opportunity")
        note = OpportunityNote(author_user_id=e.principal.user_id, text=data.text, written_at=e.now)
        e.opp.notes.append(note)
        e.session.flush()
        return _Change("note_added", None, {"text": note.text}, {"note_id": note.id})

    return _edit(db, principal, opportunity_id, if_match, on_changed, apply)


def update_note(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    note_id: int,
    if_match: str | None,
    data: o.NotePatch,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    def apply(e: _Editing) -> _Change:
        note = _note(e.opp, note_id)
        e.allow("change the opportunity's notes")
        before = {"text": note.text}
        note.text = data.text
        return _Change("note_updated", before, {"text": note.text}, {"note_id": note.id})

    return _edit(db, principal, opportunity_id, if_match, on_changed, apply)


def delete_note(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    note_id: int,
    if_match: str | None,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    def apply(e: _Editing) -> _Change:
        note = _note(e.opp, note_id)
        e.allow("change the opportunity's notes")
        before = {"text": note.text}
        e.opp.notes.remove(note)
        return _Change("note_deleted", before, None, {"note_id": note_id})

    return _edit(db, principal, opportunity_id, if_match, on_changed, apply)


# --- activities ---------------------------------------------------------------------------------------


def _activity(opp: Opportunity, activity_id: int) -> OpportunityActivity:
    found = next((a for a in opp.activities if a.id == activity_id), None)
    if found is None:
        raise NotFound(f"activity {activity_id} not found on opportunity {opp.id}")
    return found


def _activity_state(a: OpportunityActivity) -> dict[str, Any]:
    details = a.details or {}
    return {
        "kind": a.kind,
        "subject": a.subject,
        "due_date": details.get("due_date"),
        "done": details.get("done"),
    }


def add_activity(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    if_match: str | None,
    data: o.ActivityIn,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    def apply(e: _Editing) -> _Change:
        e.allow("add activities to the opportunity")
        due = data.due_date.isoformat() if data.due_date else None
        activity = OpportunityActivity(
            kind=data.kind,
            subject=data.subject,
            actor_user_id=e.principal.user_id,
            occurred_at=e.now,
            details={"due_date": due, "done": data.done},
        )
        e.opp.activities.append(activity)
        e.session.flush()
        return _Change("activity_added", None, _activity_state(activity), {"activity_id": activity.id})

    return _edit(db, principal, opportunity_id, if_match, on_changed, apply)


def update_activity(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    activity_id: int,
    if_match: str | None,
    data: o.ActivityPatch,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    def apply(e: _Editing) -> _Change:
        activity = _activity(e.opp, activity_id)
        e.allow("change the opportunity's activities")
        before = _activity_state(activity)
        changes = data.model_dump(include=data.model_fields_set)
        if "kind" in changes:
            activity.kind = changes["kind"]
        if "subject" in changes:
            activity.subject = changes["subject"]
        details = dict(activity.details or {})
        if "due_date" in changes:
            details["due_date"] = changes["due_date"].isoformat() if changes["due_date"] else None
        if "done" in changes:
            details["done"] = changes["done"]
        activity.details = details  # a new dict: the JSON column sees the change
        return _Change("activity_updated", before, _activity_state(activity), {"activity_id": activity.id})

    return _edit(db, principal, opportunity_id, if_match, on_changed, apply)


def delete_activity(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    activity_id: int,
    if_match: str | None,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    def apply(e: _Editing) -> _Change:
        activity = _activity(e.opp, activity_id)
        e.allow("change the opportunity's activities")
        before = _activity_state(activity)
        e.opp.activities.remove(activity)
        return _Change("activity_deleted", before, None, {"activity_id": activity_id})

    return _edit(db, principal, opportunity_id, if_match, on_changed, apply)
