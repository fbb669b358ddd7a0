"""Planning the revert of an applied run: a new run whose items are the inverse of the applied ones.

Each applied item becomes an item that moves the lead back to what it had before (its earlier decision,
territory and sales teams, approvers and opportunity owner). A lead changed since the run applied (its
version is no longer the one the apply left) or locked since is kept, with why: a revert never
overwrites a newer change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.batch import Chunk, database_for
from common.clock import utcnow
from registration.leads.models import Lead
from registration.reassignment.apply_service import applied_items
from registration.reassignment.models import (
    AssignmentLock,
    ReassignmentChunk,
    ReassignmentItem,
    ReassignmentRun,
)
from registration.reassignment.plan_service import PHASE, insert_for
from registration.reassignment.planning import Assignment, ItemOutcome, differences

REVERT_TASK = "registration.reassignment.revert_service:revert_chunk"


def create_chunks(session: Session, run: ReassignmentRun, original_id: int) -> int:
    """Chunks over the original run's applied items (by item id, streamed: a chunk's first and last id
    are all that is kept); returns how many."""
    size = max(run.chunk_size, 1)
    ids = session.scalars(
        applied_items(original_id, ReassignmentItem.id)
        .order_by(ReassignmentItem.id)
        .execution_options(yield_per=max(size, 1000))
    )
    number, first, count, last = 0, None, 0, 0
    for item_id in ids:
        if first is None:
            first = item_id
        count, last = count + 1, item_id
        if count == size:
            number += 1
            session.add(
                ReassignmentChunk(run_id=run.id, phase=PHASE, number=number, first_id=first, last_id=last)
            )
            first, count = None, 0
    if first is not None:
        number += 1
        session.add(
            ReassignmentChunk(run_id=run.id, phase=PHASE, number=number, first_id=first, last_id=last)
        )
    return number


def _inverse(
    original: ReassignmentItem, run_id: int, version: int, status: str, lock: str | None
) -> dict[str, Any]:
    before = {**original.after, "decision_id": original.decision_id}
    after = dict(original.before)
    changes = differences(
        Assignment.from_json(before), Assignment.from_json(after), approvals=original.action == "reroute"
    )
    what = f"revert of run {original.run_id}: " + ("; ".join(changes) or "assignment restored")
    if lock is not None:
        outcome, reason = ItemOutcome.KEEP, f"locked: {lock}; {what}"
    elif version != original.lead_version + 1:
        outcome, reason = ItemOutcome.KEEP, f"changed since run {original.run_id} was applied; {what}"
    else:
        outcome, reason = ItemOutcome.MOVE, what
    return {
        "run_id": run_id,
        "lead_id": original.lead_id,
        "lead_version": version,
        "lead_status": status,
        "outcome": outcome.value,
        "reason": reason,
        "action": original.action,
        "territory_before": original.territory_after,
        "territory_after": original.territory_before,
        "cam_before": original.cam_after,
        "cam_after": original.cam_before,
        "before": before,
        "after": after,
        "decision_id": after.get("decision_id"),  # the earlier decision, restored
    }


def revert_chunk(database_url: str, chunk: Chunk) -> dict[str, int]:
    """Store the inverse items of one chunk of the original run's applied items."""
    db = database_for(database_url)
    with db.transaction() as session:
        row = session.scalar(
            select(ReassignmentChunk)
            .where(
                ReassignmentChunk.run_id == chunk.run_id,
                ReassignmentChunk.phase == PHASE,
                ReassignmentChunk.number == chunk.number,
            )
            .with_for_update()
        )
        run = session.get(ReassignmentRun, chunk.run_id)
        if row is None or row.done_at is not None or run is None or run.reverts_run_id is None:
            return {}
        originals = list(
            session.scalars(
                applied_items(run.reverts_run_id, ReassignmentItem)
                .where(ReassignmentItem.id >= chunk.first_id, ReassignmentItem.id <= chunk.last_id)
                .order_by(ReassignmentItem.id)
            )
        )
        ids = [o.lead_id for o in originals]
        leads = {
            lead_id: (version, status)
            for lead_id, version, status in session.execute(
                select(Lead.id, Lead.version, Lead.status).where(Lead.id.in_(ids))
            )
        }
        locks = dict(
            session.execute(
                select(AssignmentLock.subject_id, AssignmentLock.reason).where(
                    AssignmentLock.subject_type == "lead", AssignmentLock.subject_id.in_(ids)
                )
            ).all()
        )
        items = [
            _inverse(o, run.id, *leads[o.lead_id], locks.get(o.lead_id))
            for o in originals
            if o.lead_id in leads
        ]
        if items:
            session.execute(
                insert_for(session)(ReassignmentItem).on_conflict_do_nothing(
                    index_elements=["run_id", "lead_id"]
                ),
                items,
            )
        row.done_at = utcnow()
    moved = sum(1 for i in items if i["outcome"] == ItemOutcome.MOVE.value)
    return {"evaluated": len(items), "moved": moved, "kept": len(items) - moved}
