"""Approval rounds over the database: a routed submission starts a round from its stored decision's
approval steps; a lead's rounds and tasks are read as the API shows them (the decisions taken in a round
are ``service``'s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Insert,
    Integer,
    String,
    Table,
    TextClause,
    Update,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from common import audit
from common.database import Database, UtcDateTime
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


ROUNDS = cast(Table, ApprovalRound.__table__)
STEPS = cast(Table, ApprovalStep.__table__)
APPROVERS = cast(Table, ApprovalStepApprover.__table__)


@cache
def _round_statements() -> tuple[Insert, Insert, Insert, Update]:
    """The statements that store a round, built once (building costs more than running them): the round
    numbered after the lead's last one (the lead is locked), its steps, their approvers, and the round's
    current step."""
    number = (
        select(func.coalesce(func.max(ROUNDS.c.number), 0) + 1)
        .where(ROUNDS.c.lead_id == bindparam("lead_id", type_=Integer()))
        .scalar_subquery()
    )
    values = {
        "lead_id": bindparam("lead_id", type_=Integer()),
        "number": number,
        "decision_id": bindparam("decision_id", type_=Integer()),
        "status": bindparam("status", type_=String()),
        "started_at": bindparam("now", type_=UtcDateTime()),
        "started_by": bindparam("started_by", type_=Integer()),
        "created_at": bindparam("now", type_=UtcDateTime()),
        "updated_at": bindparam("now", type_=UtcDateTime()),
    }
    new_round = (
        insert(ROUNDS)
        .from_select(list(values), select(*(v.label(k) for k, v in values.items())))
        .returning(ROUNDS.c.id, ROUNDS.c.number)
    )
    new_steps = insert(STEPS).returning(STEPS.c.id, sort_by_parameter_order=True)
    new_approvers = insert(APPROVERS)
    current = (
        update(ROUNDS)
        .where(ROUNDS.c.id == bindparam("round_id", type_=Integer()))
        .values(
            current_step_id=bindparam("step_id", type_=Integer()),
            updated_at=bindparam("now", type_=UtcDateTime()),
        )
    )
    return new_round, new_steps, new_approvers, current


def round_ctes_pg() -> str:
    """PostgreSQL: the common table expressions that write a round (``new_round``, returning its ``id``
    and ``number``), its steps and their approvers, with `round_bindparams_pg`'s parameters; for a
    statement that writes other rows with them."""
    next_step_id = "nextval(pg_get_serial_sequence('approval_steps', 'id'))"
    return f"""
        new_round AS (
            INSERT INTO approval_rounds (lead_id, number, decision_id, status, started_at, started_by,
                                         current_step_id, created_at, updated_at)
            SELECT :lead_id,
                   (SELECT coalesce(max(number), 0) + 1 FROM approval_rounds WHERE lead_id = :lead_id),
                   :decision_id, :status, :now, :started_by,
                   CASE WHEN :has_steps THEN {next_step_id} END, :now, :now
            RETURNING id, number, current_step_id
        ), step_ids AS (
            SELECT s.position,
                   CASE WHEN s.position = 1 THEN r.current_step_id ELSE {next_step_id} END AS id
            FROM new_round AS r, jsonb_to_recordset(:steps) AS s(position integer)
            ORDER BY s.position
        ), new_steps AS (
            INSERT INTO approval_steps (id, round_id, position, name, mode, status, decided_at,
                                        created_at, updated_at)
            SELECT i.id, r.id, s.position, s.name, s.mode, s.status, NULL, :now, :now
            FROM new_round AS r,
                 jsonb_to_recordset(:steps) AS s(position integer, name varchar, mode varchar,
                                                  status varchar)
                 JOIN step_ids AS i ON i.position = s.position
            ORDER BY s.position
        ), new_approvers AS (
            INSERT INTO approval_step_approvers (step_id, user_id, user_key, role, source, decision,
                                                 comment, decided_at, created_at, updated_at)
            SELECT i.id, a.user_id, a.user_key, a.role, a.source, NULL, NULL, NULL, :now, :now
            FROM jsonb_to_recordset(:approvers) AS a(n integer, position integer, user_id integer,
                                                     user_key varchar, role varchar, source varchar)
                 JOIN step_ids AS i ON i.position = a.position
            ORDER BY a.n
        )
    """


def round_bindparams_pg() -> tuple[BindParameter[Any], ...]:
    """The typed parameters of `round_ctes_pg` (their values: `RoundRows.params_pg`)."""
    return (
        bindparam("lead_id", type_=Integer()),
        bindparam("decision_id", type_=Integer()),
        bindparam("status", type_=String()),
        bindparam("now", type_=UtcDateTime()),
        bindparam("started_by", type_=Integer()),
        bindparam("has_steps"),
        bindparam("steps", type_=JSONB()),
        bindparam("approvers", type_=JSONB()),
    )


@cache
def _round_statement_pg() -> TextClause:
    """PostgreSQL: the round, its steps and their approvers by one statement, built once. The step ids
    are taken from their sequence in position order, the first one by the round's INSERT, which names
    it as the current step (no UPDATE after the steps): rows as the four statements of
    `_round_statements` write them."""
    return text(f"WITH {round_ctes_pg()} SELECT id, number FROM new_round").bindparams(*round_bindparams_pg())


def _write_round(
    session: Session,
    new_round: dict[str, Any],
    steps: list[dict[str, Any]],
    approvers: list[list[dict[str, Any]]],
) -> tuple[int, int]:
    """The round, its steps, their approvers and its current step, one statement each (SQLite: no
    INSERT in a WITH); (its id, its number)."""
    insert_round, insert_steps, insert_approvers, current = _round_statements()
    now = new_round["now"]
    round_id, number = session.execute(insert_round, new_round).one()
    if steps:
        stamps = {"decided_at": None, "created_at": now, "updated_at": now}
        step_rows = [{**st, **stamps, "round_id": round_id} for st in steps]
        step_ids = list(session.execute(insert_steps, step_rows).scalars())
        rows = [
            {**ap, **stamps, "decision": None, "comment": None, "step_id": step_id}
            for step_id, mine in zip(step_ids, approvers, strict=True)
            for ap in mine
        ]
        if rows:
            session.execute(insert_approvers, rows)
        session.execute(current, {"round_id": round_id, "step_id": step_ids[0], "now": now})
    return round_id, number


@dataclass(frozen=True)
class RoundRows:
    """What a new round writes: the round's values (``now`` its times), its steps, each one's approvers."""

    round: dict[str, Any]
    steps: list[dict[str, Any]]
    approvers: list[list[dict[str, Any]]]

    def params_pg(self) -> dict[str, Any]:
        """The values of `round_ctes_pg`'s parameters."""
        rows = [
            {**ap, "position": st["position"]}
            for st, mine in zip(self.steps, self.approvers, strict=True)
            for ap in mine
        ]
        for n, row in enumerate(rows):
            row["n"] = n  # their order of insertion (their ids)
        return {**self.round, "has_steps": bool(self.steps), "steps": self.steps, "approvers": rows}


def round_rows(
    session: Session,
    actor: Principal | None,
    lead: Lead,
    *,
    now: datetime,
    user_ids: Mapping[str, int] | None = None,
) -> RoundRows:
    """The rows of the lead's next round, from its stored decision's approval steps (see `start_round`)."""
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
    steps: list[dict[str, Any]] = []
    approvers: list[list[dict[str, Any]]] = []
    for position, st in enumerate(steps_in, start=1):
        steps.append(
            {
                "position": position,
                "name": st.get("name") or f"step {position}",
                "mode": st.get("mode") or "parallel",
                "status": (StepStatus.PENDING if position == 1 else StepStatus.WAITING).value,
            }
        )
        seen: set[int] = set()
        mine = []
        for ap in st.get("approvers", []):
            user_id = users.get(ap["user"])
            if user_id is None or user_id in seen:
                continue  # a user key the directory does not know cannot act; admins still can
            seen.add(user_id)
            mine.append(
                {"user_id": user_id, "user_key": ap["user"], "role": ap["role"], "source": ap["source"]}
            )
        approvers.append(mine)
    new_round = {
        "lead_id": lead.id,
        "decision_id": lead.decision_id,
        "status": RoundStatus.OPEN.value,
        "started_by": actor.user_id if actor else None,
        "now": now,
    }
    return RoundRows(new_round, steps, approvers)


def round_started(
    session: Session,
    actor: Principal | None,
    lead: Lead,
    rows: RoundRows,
    round_id: int,
    number: int,
) -> int:
    """A round written as ``rows`` under ``round_id`` and ``number``: its audit row and the transition's
    side effects; returns its id."""
    now = rows.round["now"]
    audit.record(
        session,
        actor,
        "lead",
        lead.id,
        "approval_round_started",
        details={
            "round": number,
            "round_id": round_id,
            "decision_id": lead.decision_id,
            "steps": [
                {"name": st["name"], "mode": st["mode"], "approvers": [ap["user_key"] for ap in mine]}
                for st, mine in zip(rows.steps, rows.approvers, strict=True)
            ],
        },
        now=now,
    )
    after_transition(session, lead, Event.ROUTE, actor, previous=RegistrationStatus.SUBMITTED, now=now)
    return int(round_id)


def start_round(
    session: Session,
    actor: Principal | None,
    lead: Lead,
    *,
    now: datetime,
    user_ids: Mapping[str, int] | None = None,
) -> int:
    """Start the lead's next approval round from its stored decision's approval steps (call it right
    after the submission was routed to ``pending_approval``, in the same transaction, the lead locked);
    returns the round's id.

    ``user_ids``: user key -> id, already looked up for every approver the decision names (a key it
    lacks is no user); without it they are looked up here. The round, its steps and their approvers are
    written as rows, not as objects: by one statement on PostgreSQL, one per table (and one naming the
    current step) on SQLite.
    """
    rows = round_rows(session, actor, lead, now=now, user_ids=user_ids)
    return round_started(session, actor, lead, rows, *write_round(session, rows))


def write_round(session: Session, rows: RoundRows) -> tuple[int, int]:
    """Write a round's ``rows``: by one statement on PostgreSQL, one per table (and one naming the
    current step) on SQLite; (its id, its number)."""
    if session.get_bind().dialect.name == "postgresql":
        round_id, number = session.execute(_round_statement_pg(), rows.params_pg()).one()
        return int(round_id), int(number)
    return _write_round(session, rows.round, rows.steps, rows.approvers)


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
