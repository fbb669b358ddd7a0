"""Applying a reassignment plan, one chunk of items per transaction, set-based where it can be.

Per chunk: one ``UPDATE leads ... WHERE`` the lead's version is still the planned one and nothing holds
it since the plan (a lock on the lead or its opportunity, a frozen territory; ``RETURNING`` the ids it
moved; the others are skipped with why: the lock's or the freeze's reason, or "changed since plan"), then the chunk's territory and
sales teams are replaced and its history rows written with a statement each. Only registrations in
flight (a round re-routed to new approvers, an opportunity changing owner) are touched row by row.
Each item's ``result`` is set once (``WHERE result IS NULL``) and the chunk row is locked and marked
done in the same transaction, so a chunk run twice, or resumed after a kill, changes nothing twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from common import audit, outbox
from common.audit import AuditEvent
from common.batch import Chunk, database_for
from common.clock import utcnow
from common.mail import CHANNEL
from directory.models import User
from registration.approval.approval import RoundStatus, StepStatus
from registration.approval.models import ApprovalRound, ApprovalStep
from registration.approval.rounds_service import start_round
from registration.leads.models import Lead, LeadTerritory, SalesTeamMember
from registration.notifications import service as notifications_service
from registration.opportunities.models import Opportunity
from registration.opportunities.opportunity import OWNER_ROLE
from registration.reassignment.lock_service import frozen_hit, frozen_territories
from registration.reassignment.models import (
    AssignmentLock,
    ReassignmentChunk,
    ReassignmentItem,
    ReassignmentRun,
)
from registration.reassignment.planning import (
    CHANGED_SINCE_PLAN,
    FROZEN_SINCE_PLAN,
    LOCKED_SINCE_PLAN,
    Action,
    ItemOutcome,
    ItemResult,
)
from rules.models import StoredDecision

APPLY_TASK = "registration.reassignment.apply_service:apply_chunk"
PHASE = "apply"
LEADS = cast(Table, Lead.__table__)
#: Status of a round (and its open steps) closed because its registration was re-routed.
REASSIGNED = "reassigned"


def _locked_chunk(session: Session, chunk: Chunk) -> ReassignmentChunk | None:
    return session.scalar(
        select(ReassignmentChunk)
        .where(
            ReassignmentChunk.run_id == chunk.run_id,
            ReassignmentChunk.phase == chunk.phase,
            ReassignmentChunk.number == chunk.number,
        )
        .with_for_update()
    )


def _move_leads(session: Session, chunk: Chunk, now: datetime, held: set[int]) -> set[int]:
    """Bump the version of every planned lead still at its planned version and not held (locked, its
    opportunity locked, or frozen); their ids."""
    item = ReassignmentItem
    planned = exists().where(
        item.run_id == chunk.run_id,
        item.id >= chunk.first_id,
        item.id <= chunk.last_id,
        item.outcome == ItemOutcome.MOVE.value,
        item.result.is_(None),
        item.lead_id == Lead.id,
        item.lead_version == Lead.version,
    )
    locked = exists().where(AssignmentLock.subject_type == "lead", AssignmentLock.subject_id == Lead.id)
    stmt = update(LEADS).where(planned, ~locked)
    if held:
        stmt = stmt.where(Lead.id.not_in(sorted(held)))
    stmt = stmt.values(version=Lead.version + 1, updated_at=now).returning(Lead.id)
    return set(session.scalars(stmt))


def _held(
    session: Session, items: list[ReassignmentItem], frozen: Mapping[str, tuple[str, str]]
) -> dict[int, str]:
    """The planned leads the apply must leave alone though the plan moves them, with why: locked (the
    lead, or its opportunity) or in a frozen territory (now, or the one it would move into), since the
    plan was made."""
    ids = [i.lead_id for i in items]
    held: dict[int, str] = {}
    if not ids:
        return held
    for lead_id, reason in session.execute(
        select(AssignmentLock.subject_id, AssignmentLock.reason).where(
            AssignmentLock.subject_type == "lead", AssignmentLock.subject_id.in_(ids)
        )
    ):
        held[lead_id] = f"{LOCKED_SINCE_PLAN}: {reason}"
    for lead_id, reason in session.execute(
        select(Opportunity.lead_id, AssignmentLock.reason)
        .join(
            AssignmentLock,
            and_(AssignmentLock.subject_type == "opportunity", AssignmentLock.subject_id == Opportunity.id),
        )
        .where(Opportunity.lead_id.in_(ids))
    ):
        held.setdefault(lead_id, f"{LOCKED_SINCE_PLAN}: opportunity: {reason}")
    if frozen:
        for i in items:
            hit = frozen_hit(
                frozen, (*i.before.get("lowest_territories", ()), *i.after.get("lowest_territories", ()))
            )
            if hit is not None:
                held.setdefault(i.lead_id, f"{FROZEN_SINCE_PLAN}: {hit}")
    return held


def _user_ids(session: Session, keys: set[str]) -> dict[str, int]:
    if not keys:
        return {}
    return dict(session.execute(select(User.key, User.id).where(User.key.in_(sorted(keys)))).all())


def _replace_teams(session: Session, items: list[ReassignmentItem]) -> None:
    """The moved leads' territory teams and rule-assigned sales team members, as planned."""
    ids = [i.lead_id for i in items]
    session.execute(delete(LeadTerritory).where(LeadTerritory.lead_id.in_(ids)))
    territory_rows = [
        {"lead_id": i.lead_id, "territory_key": key, "territory_model_id": i.after.get("territory_model_id")}
        for i in items
        for key in dict.fromkeys(i.after.get("territory_team", ()))
    ]
    if territory_rows:
        session.execute(insert(LeadTerritory), territory_rows)
    session.execute(
        delete(SalesTeamMember).where(
            SalesTeamMember.lead_id.in_(ids), SalesTeamMember.source == "assignment"
        )
    )
    users = _user_ids(session, {r["user"] for i in items for r in i.after.get("resources", ())})
    present: set[tuple[int, int | None, str]] = set(
        session.execute(
            select(SalesTeamMember.lead_id, SalesTeamMember.user_id, SalesTeamMember.role).where(
                SalesTeamMember.lead_id.in_(ids)
            )
        )
    )
    member_rows = []
    for i in items:
        for r in i.after.get("resources", ()):
            key = (i.lead_id, users.get(r["user"]), r["role"])
            if key[1] is None or key in present:
                continue
            present.add(key)
            member_rows.append(
                {"lead_id": i.lead_id, "user_id": key[1], "role": r["role"], "source": "assignment"}
            )
    if member_rows:
        session.execute(insert(SalesTeamMember), member_rows)


def _store_decisions(
    session: Session, run: ReassignmentRun, items: list[ReassignmentItem], now: datetime
) -> None:
    """Each moved lead's decision: a new one when the plan re-decided it, the earlier one on a revert."""
    organization = dict(
        session.execute(
            select(Lead.id, Lead.organization_id).where(Lead.id.in_([i.lead_id for i in items]))
        ).all()
    )
    fresh = [i for i in items if i.result_json is not None]
    rows = [
        StoredDecision(
            created_at=now,
            subject_type="lead",
            subject_id=i.lead_id,
            organization_id=organization.get(i.lead_id),
            territory_model_id=i.after.get("territory_model_id"),
            facts=i.facts or {},
            result=i.result_json or {},
            trace={"reassignment_run_id": run.id, "facts": i.facts or {}, "reason": i.reason},
        )
        for i in fresh
    ]
    session.add_all(rows)
    session.flush()
    for item, row in zip(fresh, rows, strict=True):
        item.decision_id = row.id
    for item in items:
        if item.result_json is None:
            item.decision_id = item.after.get("decision_id")
    pairs = [{"lead": i.lead_id, "decision": i.decision_id} for i in items if i.decision_id is not None]
    if pairs:
        session.execute(
            update(LEADS).where(LEADS.c.id == bindparam("lead")).values(decision_id=bindparam("decision")),
            pairs,
        )


def _reroute(session: Session, run: ReassignmentRun, lead_id: int, now: datetime) -> None:
    """Close the lead's open round as reassigned and start one with the new decision's approvers."""
    lead = session.get(Lead, lead_id)
    assert lead is not None
    rnd = session.scalar(
        select(ApprovalRound).where(
            ApprovalRound.lead_id == lead_id, ApprovalRound.status == RoundStatus.OPEN.value
        )
    )
    if rnd is None:
        return
    rnd.status, rnd.ended_at, rnd.current_step_id = REASSIGNED, now, None
    session.execute(
        update(ApprovalStep)
        .where(
            ApprovalStep.round_id == rnd.id,
            ApprovalStep.status.in_([StepStatus.PENDING.value, StepStatus.WAITING.value]),
        )
        .values(status=REASSIGNED, decided_at=now, updated_at=now)
    )
    session.flush()
    start_round(session, None, lead, now=now)
    notifications_service.notify(
        session, lead, "submitted", None, now=now, occurrence=f"reassignment-{run.id}"
    )


def _move_owner(session: Session, item: ReassignmentItem, now: datetime) -> None:
    opp = session.scalar(select(Opportunity).where(Opportunity.lead_id == item.lead_id))
    if opp is None:
        return
    owner_id = item.after.get("opportunity_owner_id")
    if owner_id is None and item.after.get("cam"):
        owner_id = _user_ids(session, {item.after["cam"]}).get(item.after["cam"])
    if owner_id is None or owner_id == opp.owner_user_id:
        return
    previous = opp.owner_user_id
    opp.owner_user_id = owner_id
    opp.updated_at = now
    for member in opp.sales_team:
        if member.role == OWNER_ROLE and member.user_id == previous:
            member.user_id = owner_id
    session.flush()
    audit.record(
        session,
        None,
        "opportunity",
        opp.id,
        "reassigned",
        before={"owner_user_id": previous},
        after={"owner_user_id": owner_id},
        details={"reassignment_run_id": item.run_id},
        now=now,
    )


def apply_chunk(database_url: str, chunk: Chunk) -> dict[str, int]:
    """Apply one chunk of a run's planned moves (idempotent per run and lead)."""
    db = database_for(database_url)
    with db.transaction() as session:
        models = session.execute(
            select(ReassignmentRun.territory_model_id, ReassignmentRun.base_model_id).where(
                ReassignmentRun.id == chunk.run_id
            )
        ).first()
    frozen = frozen_territories(db, models or ())
    now = utcnow()
    with db.transaction() as session:
        row = _locked_chunk(session, chunk)
        # shared: a cancel or the run's finish (which lock it for update) waits for running chunks
        run = session.scalar(
            select(ReassignmentRun).where(ReassignmentRun.id == chunk.run_id).with_for_update(read=True)
        )
        if row is None or row.done_at is not None or run is None or run.cancel_requested:
            return {}
        items = list(
            session.scalars(
                select(ReassignmentItem)
                .where(
                    ReassignmentItem.run_id == chunk.run_id,
                    ReassignmentItem.id >= chunk.first_id,
                    ReassignmentItem.id <= chunk.last_id,
                    ReassignmentItem.outcome == ItemOutcome.MOVE.value,
                    ReassignmentItem.result.is_(None),
                )
                .order_by(ReassignmentItem.id)
            )
        )
        held = _held(session, items, frozen)
        moved = _move_leads(session, chunk, now, set(held))
        done = [i for i in items if i.lead_id in moved]
        skipped = [i for i in items if i.lead_id not in moved]
        for i in skipped:
            i.result = ItemResult.SKIPPED.value
            i.result_reason = held.get(i.lead_id, CHANGED_SINCE_PLAN)
        if done:
            _replace_teams(session, done)
            _store_decisions(session, run, done, now)
            for i in done:
                i.result, i.applied_at = ItemResult.APPLIED.value, now
            session.flush()
            for i in done:
                if i.action == Action.REROUTE:
                    _reroute(session, run, i.lead_id, now)
                elif i.action == Action.MOVE_OWNER:
                    _move_owner(session, i, now)
            session.execute(
                insert(AuditEvent),
                [
                    {
                        "occurred_at": now,
                        "actor_user_id": run.created_by,
                        "actor_organization_id": None,
                        "entity_type": "lead",
                        "entity_id": i.lead_id,
                        "action": "reassigned",
                        "before": i.before,
                        "after": i.after,
                        "reason": i.reason,
                        "details": {
                            "reassignment_run_id": run.id,
                            "action": i.action,
                            "decision_id": i.decision_id,
                        },
                    }
                    for i in done
                ],
            )
        row.done_at = now
    return {"applied": len(done), "skipped": len(skipped)}


# --- the digest -----------------------------------------------------------------------------------------


def queue_digests(session: Session, run: ReassignmentRun, now: datetime) -> int:
    """One mail per CAM who gains or loses leads in ``run`` (idempotent per run and person)."""
    gains: dict[str, list[int]] = defaultdict(list)
    losses: dict[str, list[int]] = defaultdict(list)
    rows = session.execute(
        select(ReassignmentItem.lead_id, ReassignmentItem.cam_before, ReassignmentItem.cam_after).where(
            ReassignmentItem.run_id == run.id,
            ReassignmentItem.result == ItemResult.APPLIED.value,
            and_(ReassignmentItem.cam_before.is_distinct_from(ReassignmentItem.cam_after)),
        )
    )
    for lead_id, before, after in rows:
        if before:
            losses[before].append(lead_id)
        if after:
            gains[after].append(lead_id)
    people = set(gains) | set(losses)
    if not people:
        return 0
    users = session.scalars(select(User).where(User.key.in_(sorted(people)), User.active.is_(True))).all()
    queued = 0
    for user in users:
        won, lost = gains.get(user.key, []), losses.get(user.key, [])
        lines = [f"Reassignment run {run.id} changed which leads are yours."]
        if won:
            lines.append(f"You gain {len(won)} lead(s): " + ", ".join(str(i) for i in won[:50]))
        if lost:
            lines.append(f"You lose {len(lost)} lead(s): " + ", ".join(str(i) for i in lost[:50]))
        payload = {
            "to": user.email,
            "to_name": user.name,
            "subject": f"Reassignment run {run.id}: +{len(won)} / -{len(lost)} leads",
            "body": "\n\n".join(lines) + "\n",
            "user_id": user.id,
            "reassignment_run_id": run.id,
            "gained": len(won),
            "lost": len(lost),
        }
        key = f"reassignment:{run.id}:user:{user.id}"
        if outbox.enqueue(session, CHANNEL, "reassignment.digest", key, payload, now=now) is not None:
            queued += 1
    return queued


def result_counts(session: Session, run_id: int) -> Counter[str]:
    """How many of the run's items the apply applied and skipped."""
    rows = session.execute(
        select(ReassignmentItem.result, func.count())
        .where(ReassignmentItem.run_id == run_id, ReassignmentItem.result.is_not(None))
        .group_by(ReassignmentItem.result)
    )
    return Counter({str(result): int(n) for result, n in rows})
