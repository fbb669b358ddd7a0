"""Decisions of approval rounds over the database: approvers of the current step approve (the last step's
approval converts the lead into an opportunity), reject, or ask the submitter for information; the
submitter answers or withdraws. Rounds start and are read in ``rounds_service``. Each function owns one
transaction; every status change goes through ``transition_service.apply_transition``.

Refusals, in the order they are checked: a lead the caller cannot see 404; a partner acting as approver,
or a caller who is neither submitter nor partner of the lead answering or withdrawing, 403; no or a stale
If-Match 428/412; a move the transition table does not allow 409 with the current status; a caller who
is not an approver of the current step (admins may always act) 403.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Integer, Select, Table, Update, bindparam, inspect, select, update
from sqlalchemy.orm import Session, contains_eager
from sqlalchemy.orm.attributes import set_committed_value

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import Conflict
from common.principal import Principal, Role
from directory.models import User
from registration.approval import schemas as a
from registration.approval.approval import (
    ADMIN_OVERRIDE,
    PROVIDE_INFORMATION,
    ApproverDecision,
    NotAnApprover,
    NotTheSubmitter,
    RoundStatus,
    StepStatus,
    TaskStatus,
    pick_owner,
    step_outcome,
)
from registration.approval.models import ApprovalRound, ApprovalStep, ApprovalStepApprover, LeadTask
from registration.duplicates.service import refuse_overlapping_registration
from registration.leads import schemas as s
from registration.leads.eligibility_service import Eligibility, eligibility
from registration.leads.errors import RegistrationNotAllowed
from registration.leads.lifecycle import Event, LeadStatus, next_status
from registration.leads.models import Lead, LeadNote
from registration.leads.service import Children, lead_out, locked_lead, visible_lead
from registration.leads.submission_service import write_lead
from registration.leads.transition_service import apply_transition
from registration.opportunities.conversion_service import OpportunityCreated, convert_lead, decision_policy
from registration.opportunities.opportunity import expires_at
from rules.outcome import PolicyDecision

# --- shared checks ------------------------------------------------------------------------------------


@cache
def _open_round_statement() -> Select[ApprovalRound]:
    """The lead's open round with its steps and their approvers, one statement (not one per table), built
    once (``lead_id`` its parameter)."""
    latest = (
        select(ApprovalRound.id)
        .where(
            ApprovalRound.lead_id == bindparam("lead_id", type_=Integer()),
            ApprovalRound.status == RoundStatus.OPEN.value,
        )
        .order_by(ApprovalRound.number.desc())
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(ApprovalRound)
        .outerjoin(ApprovalRound.steps)
        .outerjoin(ApprovalStep.approvers)
        .options(contains_eager(ApprovalRound.steps).contains_eager(ApprovalStep.approvers))
        .where(ApprovalRound.id == latest)
        .order_by(ApprovalStep.position, ApprovalStepApprover.id)
    )


def _open_round(session: Session, lead: Lead) -> ApprovalRound | None:
    return session.scalars(_open_round_statement(), {"lead_id": lead.id}).unique().first()


def _current_step(session: Session, lead: Lead) -> tuple[ApprovalRound, ApprovalStep]:
    rnd = _open_round(session, lead)
    step = next((st for st in rnd.steps if st.id == rnd.current_step_id), None) if rnd else None
    if rnd is None or step is None:  # a registration routed before rounds existed
        raise Conflict(
            "The registration has no open approval round; submit it again", current_status=lead.status
        )
    return rnd, step


def _check_approver(principal: Principal, step: ApprovalStep) -> ApprovalStepApprover | None:
    """The caller's approver row on the current step (None for an admin who is no approver of it)."""
    row = next((ap for ap in step.approvers if ap.user_id == principal.user_id), None)
    if row is None and not principal.is_admin:
        names = ", ".join(ap.user_key for ap in step.approvers) or "an admin"
        raise NotAnApprover(
            f"You are not an approver of the current step {step.name!r} (its approvers: {names})"
        )
    return row


def _approver_row(principal: Principal, step: ApprovalStep) -> ApprovalStepApprover:
    """The caller's approver row on the step, to record a decision; an admin who is none gets an
    override row (their decision decides the step)."""
    row = _check_approver(principal, step)
    if row is None:
        row = ApprovalStepApprover(
            user_id=principal.user_id,
            user_key=f"user:{principal.user_id}",
            role=ADMIN_OVERRIDE,
            source="admin",
        )
        step.approvers.append(row)
    elif row.decision is not None:
        raise Conflict(f"You already decided step {step.name!r} ({row.decision})")
    return row


def _locked_for_approver(
    session: Session, principal: Principal, lead_id: int, if_match: str | None, event: Event
) -> tuple[Lead, Children]:
    lead, children = locked_lead(session, principal, lead_id)
    if not principal.internal:
        raise NotAnApprover("Partners do not approve, reject or request information on registrations")
    check_if_match(if_match, lead.id, lead.version)
    next_status(lead.status, event)
    return lead, children


def _locked_for_submitter(
    session: Session, principal: Principal, lead_id: int, if_match: str | None, event: Event
) -> Lead:
    lead = visible_lead(session, principal, lead_id, for_update=True)
    partner_of_lead = not principal.internal and principal.organization_id == lead.organization_id
    if not (principal.is_admin or partner_of_lead or principal.user_id == lead.submitted_by):
        raise NotTheSubmitter("Only the submitter, the partner whose lead it is, or an admin may do this")
    check_if_match(if_match, lead.id, lead.version)
    next_status(lead.status, event)
    return lead


def _end_round(session: Session, rnd: ApprovalRound, status: RoundStatus, now: datetime) -> None:
    rnd.status, rnd.ended_at, rnd.current_step_id, rnd.updated_at = status.value, now, None, now
    for st in rnd.steps:
        if st.status in (StepStatus.PENDING, StepStatus.WAITING):
            st.status = StepStatus.CANCELLED.value
    for task in session.scalars(
        select(LeadTask).where(LeadTask.round_id == rnd.id, LeadTask.status == TaskStatus.OPEN.value)
    ):
        task.status, task.updated_at = TaskStatus.CANCELLED.value, now


def _step_details(rnd: ApprovalRound, step: ApprovalStep) -> dict[str, Any]:
    return {"round": rnd.number, "round_id": rnd.id, "step": step.name, "step_position": step.position}


def _refuse_ended_agreement(session: Session, lead: Lead, now: datetime) -> Eligibility:
    """What submitting checked must still hold when approving: the partner's agreement and program
    membership may have ended (or the lead changed hands) while the registration waited. Returns what
    was read (the answer names its program)."""
    allowed = eligibility(session, lead, now.date())
    blockers = allowed.blockers
    if blockers:
        raise RegistrationNotAllowed(
            "The registration can no longer be approved: "
            + "; ".join(blockers)
            + " (reject it, or restore the agreement or membership first)",
            reasons=blockers,
        )
    return allowed


# --- approver actions ---------------------------------------------------------------------------------


def approve(
    db: Database,
    principal: Principal,
    lead_id: int,
    if_match: str | None,
    data: a.ApproveIn,
    *,
    on_opportunity_created: OpportunityCreated,
) -> s.LeadOut:
    """Approve the current step; the last step's approval approves the registration and converts the
    lead into an opportunity owned by the approving channel account manager, then calls
    `on_opportunity_created` in the same transaction."""
    now = utcnow()
    with db.transaction() as session, audit.batched(session):
        lead, children = _locked_for_approver(session, principal, lead_id, if_match, Event.APPROVE)
        rnd, step = _current_step(session, lead)
        allowed = _refuse_ended_agreement(session, lead, now)
        row = _approver_row(principal, step)
        approved = ApproverDecision.APPROVED.value
        decided: dict[str, Any] = {"decision": approved, "decided_at": now, "comment": data.comment}
        decisions = [
            approved if ap is row else ap.decision for ap in step.approvers if ap.role != ADMIN_OVERRIDE
        ]
        outcome = StepStatus.APPROVED if row.role == ADMIN_OVERRIDE else step_outcome(step.mode, decisions)
        details = _step_details(rnd, step)
        following = (
            next((st for st in rnd.steps if st.position == step.position + 1), None)
            if outcome is not StepStatus.PENDING
            else None
        )
        if inspect(row).persistent and (outcome is StepStatus.PENDING or following is not None):
            # the registration stays pending: the rows the decision changes are written by one UPDATE
            # each, of their tables (the unit of work's flush of them cost as much as the statements)
            _written(session, row, {**decided, "updated_at": now})
            if following is not None:
                _written(
                    session, step, {"status": StepStatus.APPROVED.value, "decided_at": now, "updated_at": now}
                )
                _written(session, following, {"status": StepStatus.PENDING.value, "updated_at": now})
                _written(session, rnd, {"current_step_id": following.id, "updated_at": now})
            write_lead(session, lead, {}, now)  # every decision is a new version of the registration
            _record_step(session, principal, lead.id, data.comment, details, following, now)
        else:
            row.decision, row.decided_at, row.comment = approved, now, data.comment
            lead.updated_at = now  # every decision is a new version of the registration
            if outcome is StepStatus.PENDING:  # mode "all": others still have to approve
                session.flush()
                _record_step(session, principal, lead.id, data.comment, details, None, now)
            else:
                step.status, step.decided_at = StepStatus.APPROVED.value, now
                if following is not None:
                    following.status = StepStatus.PENDING.value
                    rnd.current_step_id, rnd.updated_at = following.id, now
                    session.flush()
                    _record_step(session, principal, lead.id, data.comment, details, following, now)
                else:
                    _finish_approval(
                        session, principal, lead, rnd, data.comment, details, now, on_opportunity_created
                    )
        session.flush()
        # approving changes no contact or activity; the answer names the program read
        return lead_out(session, lead, children=children, programs=allowed.program_keys)


def _record_step(
    session: Session,
    principal: Principal,
    lead_id: int,
    comment: str | None,
    details: dict[str, Any],
    following: ApprovalStep | None,
    now: datetime,
) -> None:
    """An approval that leaves the registration pending, in its history: the approver's decision
    recorded (others of an 'all' step still to approve), or the step approved and ``following``'s turn."""
    if following is None:
        audit.record(
            session, principal, "lead", lead_id, "approval_recorded", reason=comment, details=details, now=now
        )
    else:
        audit.record(
            session,
            principal,
            "lead",
            lead_id,
            "step_approved",
            reason=comment,
            details={**details, "next_step": following.name},
            now=now,
        )


@cache
def _row_update(table: Table) -> Update:
    """The UPDATE of `_written` of one row (``row_id``) of ``table``, built once (its SET names the
    columns a call gives)."""
    return update(table).where(table.c.id == bindparam("row_id", type_=Integer()))


def _written(
    session: Session, record: ApprovalRound | ApprovalStep | ApprovalStepApprover, values: dict[str, Any]
) -> None:
    """Give the persistent, unchanged ``record`` ``values`` by one UPDATE of its table, then hold them on
    it as if read back (the unit of work has nothing left to write for it)."""
    table = cast(Table, type(record).__table__)
    session.execute(_row_update(table), {**values, "row_id": record.id})
    for name, value in values.items():
        set_committed_value(record, name, value)


def _finish_approval(
    session: Session,
    principal: Principal,
    lead: Lead,
    rnd: ApprovalRound,
    comment: str | None,
    details: dict[str, Any],
    now: datetime,
    on_opportunity_created: OpportunityCreated,
) -> None:
    approvals = [
        ap.user_id
        for st in rnd.steps
        for ap in sorted(st.approvers, key=lambda x: x.decided_at or now)
        if ap.decision == ApproverDecision.APPROVED
    ]
    roles = {uid: r for uid, r in session.execute(select(User.id, User.roles).where(User.id.in_(approvals)))}
    owner = pick_owner(
        [(uid, Role.CHANNEL_ACCOUNT_MANAGER.value in (roles.get(uid) or [])) for uid in approvals],
        final_approver=principal.user_id,
    )
    policy = decision_policy(session, lead)
    # checked again at approval: two overlapping registrations pending side by side cannot both win
    blocking = bool(policy and policy.get("block_overlapping_registrations"))
    refuse_overlapping_registration(
        session, lead, PolicyDecision(block_overlapping_registrations=blocking), now
    )
    _end_round(session, rnd, RoundStatus.APPROVED, now)
    rnd.steps[-1].status = StepStatus.APPROVED.value
    lead.lead_status = LeadStatus.CONVERTED.value
    lead.expires_at = expires_at(now, policy)
    opportunity = convert_lead(session, principal, lead, owner, now=now)
    on_opportunity_created(session, principal, opportunity, policy, now=now)
    apply_transition(
        session,
        principal,
        lead,
        Event.APPROVE,
        now=now,
        reason=comment,
        details={
            **details,
            "opportunity_id": opportunity.id,
            "opportunity_owner_user_id": owner,
            "expires_at": lead.expires_at.isoformat(),
        },
    )


def reject(
    db: Database, principal: Principal, lead_id: int, if_match: str | None, data: a.RejectIn
) -> s.LeadOut:
    """Reject the registration at its current step (the comment is required and kept); it becomes
    editable and may be submitted again, which starts a new round."""
    now = utcnow()
    with db.transaction() as session, audit.batched(session):
        lead, children = _locked_for_approver(session, principal, lead_id, if_match, Event.REJECT)
        rnd, step = _current_step(session, lead)
        row = _approver_row(principal, step)
        row.decision, row.decided_at, row.comment = ApproverDecision.REJECTED.value, now, data.comment
        step.status, step.decided_at = StepStatus.REJECTED.value, now
        details = _step_details(rnd, step)
        _end_round(session, rnd, RoundStatus.REJECTED, now)
        apply_transition(
            session, principal, lead, Event.REJECT, now=now, reason=data.comment, details=details
        )
        session.flush()
        return lead_out(session, lead, children=children)


def request_info(
    db: Database, principal: Principal, lead_id: int, if_match: str | None, data: a.RequestInfoIn
) -> s.LeadOut:
    """Ask the submitter a question: a task for the submitter; the round waits at its current step."""
    now = utcnow()
    with db.transaction() as session, audit.batched(session):
        lead, children = _locked_for_approver(session, principal, lead_id, if_match, Event.REQUEST_INFO)
        rnd, step = _current_step(session, lead)
        _check_approver(principal, step)
        task = LeadTask(
            lead_id=lead.id,
            round_id=rnd.id,
            kind=PROVIDE_INFORMATION,
            status=TaskStatus.OPEN.value,
            assignee_user_id=lead.submitted_by,
            question=data.question,
            requested_by=principal.user_id,
            created_at=now,
            updated_at=now,
        )
        session.add(task)
        session.flush()
        apply_transition(
            session,
            principal,
            lead,
            Event.REQUEST_INFO,
            now=now,
            reason=data.question,
            details={**_step_details(rnd, step), "task_id": task.id, "assignee_user_id": lead.submitted_by},
        )
        session.flush()
        return lead_out(session, lead, children=children)


# --- submitter actions --------------------------------------------------------------------------------


def submit_info(
    db: Database, principal: Principal, lead_id: int, if_match: str | None, data: a.SubmitInfoIn
) -> s.LeadOut:
    """The submitter answers (a note of the lead); the same round resumes at the same step."""
    now = utcnow()
    with db.transaction() as session, audit.batched(session):
        lead = _locked_for_submitter(session, principal, lead_id, if_match, Event.SUBMIT_INFO)
        rnd = _open_round(session, lead)
        note = LeadNote(lead_id=lead.id, author_user_id=principal.user_id, text=data.text, created_at=now)
        session.add(note)
        session.flush()
        answered = []
        for task in session.scalars(
            select(LeadTask).where(LeadTask.lead_id == lead.id, LeadTask.status == TaskStatus.OPEN.value)
        ):
            task.status, task.answer, task.answer_note_id = TaskStatus.DONE.value, data.text, note.id
            task.answered_by, task.answered_at, task.updated_at = principal.user_id, now, now
            answered.append(task.id)
        apply_transition(
            session,
            principal,
            lead,
            Event.SUBMIT_INFO,
            now=now,
            reason=data.text,
            details={"note_id": note.id, "task_ids": answered, "round": rnd.number if rnd else None},
        )
        session.flush()
        return lead_out(session, lead)


def withdraw(
    db: Database, principal: Principal, lead_id: int, if_match: str | None, data: a.WithdrawIn
) -> s.LeadOut:
    """Recall the registration before a decision; it may be edited and submitted again (a new round)."""
    now = utcnow()
    with db.transaction() as session, audit.batched(session):
        lead = _locked_for_submitter(session, principal, lead_id, if_match, Event.WITHDRAW)
        rnd = _open_round(session, lead)
        if rnd is not None:
            _end_round(session, rnd, RoundStatus.WITHDRAWN, now)
        apply_transition(
            session,
            principal,
            lead,
            Event.WITHDRAW,
            now=now,
            reason=data.comment,
            details={"round": rnd.number if rnd else None},
        )
        session.flush()
        return lead_out(session, lead)
