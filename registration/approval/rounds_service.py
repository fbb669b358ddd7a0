"""Approval rounds over the database: a routed submission starts a round from its stored decision's
approval steps; a lead's rounds and tasks are read as the API shows them (the decisions taken in a round
are ``service``'s).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common import audit
from common.database import Database
from common.principal import Principal
from directory.models import User
from registration.approval import schemas as a
from registration.approval.approval import RoundStatus, StepStatus
from registration.approval.models import ApprovalRound, ApprovalStep, ApprovalStepApprover, LeadTask
from registration.leads.lifecycle import Event, RegistrationStatus
from registration.leads.models import Lead
from registration.leads.service import visible_lead
from registration.leads.transition_service import after_transition
from rules.models import StoredDecision

# --- starting a round ---------------------------------------------------------------------------------


def start_round(
    session: Session,
    actor: Principal | None,
    lead: Lead,
    *,
    now: datetime,
    user_ids: Mapping[str, int] | None = None,
) -> ApprovalRound:
    """Start the lead's next approval round from its stored decision's approval steps (call it right
    after the submission was routed to ``pending_approval``, in the same transaction).

    ``user_ids``: user key -> id, already looked up for every approver the decision names (a key it
    lacks is no user); without it they are looked up here.
    """
    decision = session.get(StoredDecision, lead.decision_id) if lead.decision_id else None
    steps_in: list[dict[str, Any]] = list((decision.result if decision else {}).get("approval_steps", []))
    keys = sorted({ap["user"] for st in steps_in for ap in st.get("approvers", [])})
    users: Mapping[str, int]
    if user_ids is not None:
        users = user_ids
    elif keys:
        users = {
            key: id_ for key, id_ in session.execute(select(User.key, User.id).where(User.key.in_(keys)))
        }
    else:
        users = {}
    last = session.scalar(select(func.max(ApprovalRound.number)).where(ApprovalRound.lead_id == lead.id))
    rnd = ApprovalRound(
        lead_id=lead.id,
        number=(last or 0) + 1,
        decision_id=lead.decision_id,
        status=RoundStatus.OPEN.value,
        started_at=now,
        started_by=actor.user_id if actor else None,
        created_at=now,
        updated_at=now,
    )
    for position, st in enumerate(steps_in, start=1):
        step = ApprovalStep(
            position=position,
            name=st.get("name") or f"step {position}",
            mode=st.get("mode") or "parallel",
            status=(StepStatus.PENDING if position == 1 else StepStatus.WAITING).value,
        )
        seen: set[int] = set()
        for ap in st.get("approvers", []):
            user_id = users.get(ap["user"])
            if user_id is None or user_id in seen:
                continue  # a user key the directory does not know cannot act; admins still can
            seen.add(user_id)
            step.approvers.append(
                ApprovalStepApprover(
                    user_id=user_id, user_key=ap["user"], role=ap["role"], source=ap["source"]
                )
            )
        rnd.steps.append(step)
    session.add(rnd)
    session.flush()
    rnd.current_step_id = rnd.steps[0].id if rnd.steps else None
    audit.record(
        session,
        actor,
        "lead",
        lead.id,
        "approval_round_started",
        details={
            "round": rnd.number,
            "round_id": rnd.id,
            "decision_id": lead.decision_id,
            "steps": [
                {"name": st.name, "mode": st.mode, "approvers": [ap.user_key for ap in st.approvers]}
                for st in rnd.steps
            ],
        },
        now=now,
    )
    after_transition(session, lead, Event.ROUTE, actor, previous=RegistrationStatus.SUBMITTED, now=now)
    return rnd


# --- reading ------------------------------------------------------------------------------------------


def round_out(rnd: ApprovalRound) -> a.RoundOut:
    current = next((st.position for st in rnd.steps if st.id == rnd.current_step_id), None)
    return a.RoundOut(
        id=rnd.id,
        lead_id=rnd.lead_id,
        number=rnd.number,
        decision_id=rnd.decision_id,
        status=rnd.status,
        current_step=current,
        started_at=rnd.started_at,
        started_by=rnd.started_by,
        ended_at=rnd.ended_at,
        steps=[
            a.StepOut(
                position=st.position,
                name=st.name,
                mode=st.mode,
                status=st.status,
                decided_at=st.decided_at,
                approvers=[
                    a.ApproverOut(
                        user_id=ap.user_id,
                        user=ap.user_key,
                        role=ap.role,
                        source=ap.source,
                        decision=ap.decision,
                        comment=ap.comment,
                        decided_at=ap.decided_at,
                    )
                    for ap in st.approvers
                ],
            )
            for st in rnd.steps
        ],
    )


def list_rounds(db: Database, principal: Principal, lead_id: int) -> a.RoundList:
    """Every approval round of the lead, oldest first (earlier rounds as they ended)."""
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id)
        rounds = session.scalars(
            select(ApprovalRound).where(ApprovalRound.lead_id == lead.id).order_by(ApprovalRound.number)
        )
        return a.RoundList(items=[round_out(r) for r in rounds])


def list_tasks(db: Database, principal: Principal, lead_id: int) -> a.TaskList:
    """The lead's tasks (requests for information and their answers), oldest first."""
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id)
        tasks = session.scalars(select(LeadTask).where(LeadTask.lead_id == lead.id).order_by(LeadTask.id))
        return a.TaskList(
            items=[
                a.TaskOut(
                    id=t.id,
                    lead_id=t.lead_id,
                    round_id=t.round_id,
                    kind=t.kind,
                    status=t.status,
                    assignee_user_id=t.assignee_user_id,
                    question=t.question,
                    requested_by=t.requested_by,
                    answer=t.answer,
                    answer_note_id=t.answer_note_id,
                    answered_by=t.answered_by,
                    answered_at=t.answered_at,
                    created_at=t.created_at,
                )
                for t in tasks
            ]
        )
