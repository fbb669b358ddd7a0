"""Reassignment runs: plan (every lead in scope re-decided in chunks, each that would move or be kept
stored with why), review, apply exactly that plan, resume after a kill, cancel, and revert.

The chunks run on a ``common.batch`` backend (a local process pool by default). Progress is what the
database says (finished chunk rows), so a run killed at any point resumes where it stopped.

How the chunks are driven and a phase finished is ``run_service``'s; this module holds what a user asks for
and what they read back.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from sqlalchemy import func, insert, literal, or_, select
from sqlalchemy.orm import Session

from common import audit
from common.batch import Backend, backend_named, default_chunk_size
from common.clock import utcnow
from common.database import Database
from common.errors import (
    Conflict,
    FieldProblem,
    ValidationFailed,
)
from common.pagination import Page, decode_cursor, encode_cursor
from common.principal import Principal
from registration.reassignment import apply_service, plan_service, revert_service, run_service
from registration.reassignment import schemas as s
from registration.reassignment.models import ReassignmentChunk, ReassignmentItem, ReassignmentRun
from registration.reassignment.planning import ItemOutcome, ItemResult, RunKind, RunStatus
from registration.reassignment.run_service import ENTITY, Progress, load_run
from rules import repository as rules_repository
from territory.models import ModelStatus, TerritoryModel
from territory.repository import snapshot_for

# --- outputs --------------------------------------------------------------------------------------------


def _progress(session: Session, run: ReassignmentRun) -> float:
    phase = (
        apply_service.PHASE if run.status in (RunStatus.APPLYING, RunStatus.APPLIED) else plan_service.PHASE
    )
    total, done = session.execute(
        select(func.count(), func.count(ReassignmentChunk.done_at)).where(
            ReassignmentChunk.run_id == run.id, ReassignmentChunk.phase == phase
        )
    ).one()
    if not total:
        return 1.0 if run.status not in (RunStatus.PLANNING, RunStatus.APPLYING) else 0.0
    return round(done / total, 4)


def run_out(session: Session, run: ReassignmentRun) -> s.RunOut:
    return s.RunOut(
        id=run.id,
        kind=RunKind(run.kind),
        status=RunStatus(run.status),
        territory_model_id=run.territory_model_id,
        base_model_id=run.base_model_id,
        ruleset_ids=list(run.ruleset_ids),
        scope=dict(run.scope),
        reverts_run_id=run.reverts_run_id,
        incremental=run.incremental,
        content_hash=run.content_hash,
        total_leads=run.total_leads,
        evaluated=run.evaluated,
        moved=run.moved,
        kept=run.kept,
        applied=run.applied,
        skipped=run.skipped,
        progress=_progress(session, run),
        cancel_requested=run.cancel_requested,
        created_at=run.created_at,
        planned_at=run.planned_at,
        apply_started_at=run.apply_started_at,
        finished_at=run.finished_at,
    )


def _moves(session: Session, run_id: int) -> tuple[dict[str, s.CountChange], dict[str, s.CountChange]]:
    """The moved leads counted per territory and per CAM, before -> after, from one pass over the
    run's items (a pass per column cost 0.3-0.5 s each over 200,000 items)."""
    territories: dict[str, list[int]] = {}
    cams: dict[str, list[int]] = {}
    item = ReassignmentItem
    for t_before, t_after, c_before, c_after, n in session.execute(
        select(item.territory_before, item.territory_after, item.cam_before, item.cam_after, func.count())
        .where(item.run_id == run_id, item.outcome == ItemOutcome.MOVE.value)
        .group_by(item.territory_before, item.territory_after, item.cam_before, item.cam_after)
    ):
        for counts, before, after in ((territories, t_before, t_after), (cams, c_before, c_after)):
            counts.setdefault(before or "(none)", [0, 0])[0] += int(n)
            counts.setdefault(after or "(none)", [0, 0])[1] += int(n)
    return _changes(territories), _changes(cams)


def _changes(counts: dict[str, list[int]]) -> dict[str, s.CountChange]:
    return {k: s.CountChange(before=b, after=a) for k, (b, a) in sorted(counts.items())}


def summary(session: Session, run: ReassignmentRun) -> s.RunSummary:
    """The run with its counts per territory and per CAM (moved leads, before -> after)."""
    kept: Counter[str] = Counter()
    for reason, n in session.execute(
        select(ReassignmentItem.reason, func.count())
        .where(ReassignmentItem.run_id == run.id, ReassignmentItem.outcome == ItemOutcome.KEEP.value)
        .group_by(ReassignmentItem.reason)
    ):
        kept[str(reason).split(";", 1)[0].split(":", 1)[0]] += int(n)
    by_territory, by_cam = _moves(session, run.id)
    return s.RunSummary(
        **run_out(session, run).model_dump(),
        by_territory=by_territory,
        by_cam=by_cam,
        kept_by_reason=dict(sorted(kept.items())),
    )


def item_out(item: ReassignmentItem, applied_at: datetime | None) -> s.ItemOut:
    """The item as the API shows it; ``applied_at``: when its apply chunk finished (``None``: not
    applied, see ``apply_service.applied_items``)."""
    if item.result:
        result: ItemResult | None = ItemResult(item.result)
    else:
        result = ItemResult.APPLIED if applied_at is not None else None
    return s.ItemOut(
        id=item.id,
        lead_id=item.lead_id,
        lead_version=item.lead_version,
        lead_status=item.lead_status,
        outcome=ItemOutcome(item.outcome),
        reason=item.reason,
        action=item.action,
        before=item.before,
        after=item.after,
        decision_id=item.decision_id,
        result=result,
        result_reason=item.result_reason,
        applied_at=applied_at,
    )


# --- services -------------------------------------------------------------------------------------------


def _check_ruleset_ids(session: Session, ids: list[int]) -> None:
    problems = [
        FieldProblem(f"/ruleset_ids/{i}", f"no ruleset {rid}")
        for i, rid in enumerate(ids)
        if rules_repository.get(session, rid) is None
    ]
    if problems:
        raise ValidationFailed("Unknown ruleset", problems)


def create_run(
    db: Database,
    principal: Principal | None,
    data: s.RunCreate,
    *,
    backend: Backend | None = None,
    progress: Progress | None = None,
    wait: bool = True,
) -> s.RunSummary:
    """Plan a run: every lead in scope (or, when only a few territories changed, those in the changed
    coverage) re-decided with the model and rules given; nothing but the plan is stored. With
    ``wait=False`` the chunks are started and the run is returned while it is still planning."""
    with db.transaction() as session:
        active = session.scalar(select(TerritoryModel.id).where(TerritoryModel.status == ModelStatus.ACTIVE))
        model_id = data.territory_model_id or active
        if (
            data.territory_model_id is not None
            and session.get(TerritoryModel, data.territory_model_id) is None
        ):
            raise ValidationFailed(
                "Unknown territory model",
                [FieldProblem("/territory_model_id", f"no territory model {data.territory_model_id}")],
            )
        _check_ruleset_ids(session, list(data.ruleset_ids))
    incremental = not data.full and not data.ruleset_ids and active is not None and model_id != active
    with ThreadPoolExecutor(1, thread_name_prefix="reassignment-coverage") as reader:
        # an incremental plan's comparison of the models read while the planned model's snapshot is built
        reads = (
            reader.submit(plan_service.coverage_reads, db, active, model_id)
            if incremental and active is not None and model_id is not None
            else None
        )
        if model_id is not None:
            snapshot_for(db, model_id)  # 409 with the problems when the model is not a valid tree
        rulesets = plan_service.rulesets_for(db, list(data.ruleset_ids))
        members = None
        if reads is not None:
            assert active is not None and model_id is not None
            members = plan_service.changed_coverage(db, active, model_id, rulesets, reads.result())
    scope = data.where.model_dump(mode="json", exclude_none=True)
    with db.transaction() as session:
        run = ReassignmentRun(
            kind=RunKind.PLAN.value,
            status=RunStatus.PLANNING.value,
            territory_model_id=model_id,
            base_model_id=active,
            ruleset_ids=list(data.ruleset_ids),
            scope=scope,
            incremental=members is not None,
            incremental_members=members,
            chunk_size=data.chunk_size or default_chunk_size(),
            created_by=principal.user_id if principal else None,
        )
        session.add(run)
        session.flush()
        run.evaluated = plan_service.create_chunks(session, run, plan_service.run_branches(session, run))
        audit.record(
            session,
            principal,
            ENTITY,
            run.id,
            "created",
            after={"territory_model_id": model_id, "ruleset_ids": list(data.ruleset_ids), "scope": scope},
        )
        run_id = run.id
    started = None if wait else get_run(db, principal, run_id)  # (see `apply_run`)
    run_service.plan_phase(db, run_id, plan_service.PLAN_TASK, backend or backend_named(), progress, wait)
    return started or get_run(db, principal, run_id)


def get_run(db: Database, principal: Principal | None, run_id: int) -> s.RunSummary:
    with db.transaction() as session:
        return summary(session, load_run(session, run_id))


def list_runs(db: Database, principal: Principal | None, query: s.RunListQuery) -> Page[s.RunOut]:
    after = decode_cursor(query.cursor)
    with db.transaction() as session:
        runs = list(
            session.scalars(
                select(ReassignmentRun)
                .where(ReassignmentRun.id > after)
                .order_by(ReassignmentRun.id)
                .limit(query.limit + 1)
            )
        )
        more = len(runs) > query.limit
        runs = runs[: query.limit]
        return Page[s.RunOut](
            items=[run_out(session, r) for r in runs],
            next_cursor=encode_cursor(runs[-1].id) if more and runs else None,
        )


def list_items(db: Database, principal: Principal | None, run_id: int, query: s.ItemQuery) -> Page[s.ItemOut]:
    """The run's items by id, filtered by outcome, territory (before or after) and apply result."""
    after = decode_cursor(query.cursor)
    with db.transaction() as session:
        load_run(session, run_id)
        applied_at = apply_service.applied_at()
        stmt = select(ReassignmentItem, applied_at).where(
            ReassignmentItem.run_id == run_id, ReassignmentItem.id > after
        )
        if query.outcome is not None:
            stmt = stmt.where(ReassignmentItem.outcome == query.outcome.value)
        if query.result == ItemResult.APPLIED:
            stmt = stmt.where(applied_at.is_not(None))
        elif query.result is not None:
            stmt = stmt.where(ReassignmentItem.result == query.result.value)
        if query.territory is not None:
            stmt = stmt.where(
                or_(
                    ReassignmentItem.territory_before == query.territory,
                    ReassignmentItem.territory_after == query.territory,
                )
            )
        rows = session.execute(stmt.order_by(ReassignmentItem.id).limit(query.limit + 1)).all()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return Page[s.ItemOut](
            items=[item_out(item, at) for item, at in rows],
            next_cursor=encode_cursor(rows[-1][0].id) if more and rows else None,
        )


def _create_apply_chunks(session: Session, run: ReassignmentRun) -> None:
    """The apply's chunks: the run's moves by item id, ``chunk_size`` to a chunk, cut by the database
    in one statement (streaming 200,000 ids here took half a second), each with its count of items."""
    size = max(run.chunk_size, 1)
    moves = (
        select(
            ReassignmentItem.id,
            # (integer division on both databases; the parentheses kept)
            (func.row_number().over(order_by=ReassignmentItem.id) - 1).self_group().op("/")(size).label("n"),
        )
        .where(ReassignmentItem.run_id == run.id, ReassignmentItem.outcome == ItemOutcome.MOVE.value)
        .subquery()
    )
    session.execute(
        insert(ReassignmentChunk).from_select(
            ["run_id", "phase", "number", "first_id", "last_id", "size"],
            select(
                literal(run.id),
                literal(apply_service.PHASE),
                moves.c.n + 1,
                func.min(moves.c.id),
                func.max(moves.c.id),
                func.count(),
            ).group_by(moves.c.n),
        )
    )


def apply_run(
    db: Database,
    principal: Principal | None,
    run_id: int,
    *,
    backend: Backend | None = None,
    progress: Progress | None = None,
    wait: bool = True,
) -> s.RunSummary:
    """Apply exactly the stored plan: leads changed since the plan are skipped, never re-decided. With
    ``wait=False`` the chunks are started and the run is returned while it is still applying."""
    with db.transaction() as session:
        run = load_run(session, run_id, lock=True)
        if run.status != RunStatus.PLANNED:
            raise Conflict(
                f"reassignment run {run_id} is {run.status}; only a planned run can be applied",
                current_status=run.status,
            )
        run.status, run.apply_started_at = RunStatus.APPLYING.value, utcnow()
        _create_apply_chunks(session, run)
        audit.record(session, principal, ENTITY, run.id, "apply_started", after={"status": run.status})
    if not wait:
        # the run as it starts: a small run may be done before the caller's answer is written, and
        # that answer says the work was accepted, not finished (the run's URL tells the rest)
        started = get_run(db, principal, run_id)
        run_service.launch(
            db, run_id, apply_service.PHASE, apply_service.APPLY_TASK, backend or backend_named()
        )
        return started
    return _continue_apply(db, principal, run_id, backend, progress)


def _continue_apply(
    db: Database, principal: Principal | None, run_id: int, backend: Backend | None, progress: Progress | None
) -> s.RunSummary:
    run_service.drive(
        db, run_id, apply_service.PHASE, apply_service.APPLY_TASK, backend or backend_named(), progress
    )
    run_service.finish_apply(db, run_id)
    return get_run(db, principal, run_id)


def resume_run(
    db: Database,
    principal: Principal | None,
    run_id: int,
    *,
    backend: Backend | None = None,
    progress: Progress | None = None,
) -> s.RunSummary:
    """Continue a run that stopped (killed) while planning or applying, from its unfinished chunks."""
    with db.transaction() as session:
        run = load_run(session, run_id)
        status, kind = run.status, run.kind
    if status == RunStatus.PLANNING:
        task = plan_service.PLAN_TASK if kind == RunKind.PLAN else revert_service.REVERT_TASK
        run_service.plan_and_finish(db, run_id, task, backend or backend_named(), progress)
        return get_run(db, principal, run_id)
    if status == RunStatus.APPLYING:
        return _continue_apply(db, principal, run_id, backend, progress)
    raise Conflict(
        f"reassignment run {run_id} is {status}; only a run planning or applying can be resumed",
        current_status=status,
    )


def cancel_run(db: Database, principal: Principal | None, run_id: int) -> s.RunSummary:
    """Stop a run: a planned one is never applied; an applying one stops after its running chunks (the
    leads of the chunks not started stay untouched)."""
    with db.transaction() as session:
        run = load_run(session, run_id, lock=True)
        if run.status not in (RunStatus.PLANNED, RunStatus.APPLYING, RunStatus.PLANNING):
            raise Conflict(
                f"reassignment run {run_id} is {run.status}; it cannot be cancelled",
                current_status=run.status,
            )
        run.cancel_requested = True
        if run.status != RunStatus.APPLYING:
            run.status, run.finished_at = RunStatus.CANCELLED.value, utcnow()
        audit.record(session, principal, ENTITY, run.id, "cancel_requested", after={"status": run.status})
    return get_run(db, principal, run_id)


def revert_run(
    db: Database,
    principal: Principal | None,
    run_id: int,
    *,
    backend: Backend | None = None,
    progress: Progress | None = None,
    wait: bool = True,
) -> s.RunSummary:
    """Plan the inverse of an applied run (a new run, applied like any other)."""
    with db.transaction() as session:
        original = load_run(session, run_id)
        if (
            original.status not in (RunStatus.APPLIED, RunStatus.CANCELLED)
            or original.apply_started_at is None
        ):
            raise Conflict(
                f"reassignment run {run_id} is {original.status}; only an applied run can be reverted",
                current_status=original.status,
            )
        run = ReassignmentRun(
            kind=RunKind.REVERT.value,
            status=RunStatus.PLANNING.value,
            territory_model_id=original.base_model_id,
            base_model_id=original.territory_model_id,
            ruleset_ids=[],
            scope={},
            reverts_run_id=original.id,
            incremental=False,
            chunk_size=original.chunk_size,
            created_by=principal.user_id if principal else None,
        )
        session.add(run)
        session.flush()
        revert_service.create_chunks(session, run, original.id)
        audit.record(session, principal, ENTITY, run.id, "created", details={"reverts_run_id": original.id})
        new_id = run.id
    started = None if wait else get_run(db, principal, new_id)  # (see `apply_run`)
    run_service.plan_phase(db, new_id, revert_service.REVERT_TASK, backend or backend_named(), progress, wait)
    return started or get_run(db, principal, new_id)
