"""Driving a reassignment run's chunks: start them on a ``common.batch`` backend, follow their progress,
and finish the run's phase (count and hash a plan, count an apply and queue its digests) once the last
chunk is done, whichever process finds it so.

The CLI waits for a run's chunks and finishes the run itself. A web request does not: on Celery the chunks
go to the workers and the one that finds the last chunk done finishes the run (``finish_chunk``); on the
local pool a thread of the server process drives the chunks; inline, the request does all the work.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from common import audit
from common.batch import Backend, Chunk, database_for, is_queued
from common.clock import utcnow
from common.database import Database, json_loads
from common.errors import NotFound, PrmError, ServiceUnavailable
from registration.reassignment import apply_service, plan_service
from registration.reassignment.models import ReassignmentChunk, ReassignmentItem, ReassignmentRun
from registration.reassignment.planning import ItemOutcome, PlanHash, RunKind, RunStatus

#: Called after each finished chunk with (chunks finished, chunks in the phase).
Progress = Callable[[int, int], None]
ENTITY = "reassignment_run"
#: The task a queued backend runs behind every chunk (``finish_chunk``).
FINISH_TASK = "registration.reassignment.run_service:finish_chunk"
log = logging.getLogger(__name__)


def load_run(session: Session, run_id: int, *, lock: bool = False) -> ReassignmentRun:
    stmt = select(ReassignmentRun).where(ReassignmentRun.id == run_id)
    run = session.scalar(stmt.with_for_update() if lock else stmt)
    if run is None:
        raise NotFound(f"reassignment run {run_id} not found")
    return run


def pending_chunks(db: Database, run_id: int, phase: str) -> list[Chunk]:
    with db.transaction() as session:
        rows = session.execute(
            select(ReassignmentChunk.number, ReassignmentChunk.first_id, ReassignmentChunk.last_id)
            .where(
                ReassignmentChunk.run_id == run_id,
                ReassignmentChunk.phase == phase,
                ReassignmentChunk.done_at.is_(None),
            )
            .order_by(ReassignmentChunk.number)
        )
        return [Chunk(run_id, phase, n, first, last) for n, first, last in rows]


def _cancel_requested(db: Database, run_id: int) -> bool:
    with db.transaction() as session:
        return bool(
            session.scalar(select(ReassignmentRun.cancel_requested).where(ReassignmentRun.id == run_id))
        )


def drive(
    db: Database, run_id: int, phase: str, task: str, backend: Backend, progress: Progress | None
) -> None:
    chunks = pending_chunks(db, run_id, phase)
    with db.transaction() as session:
        total = session.scalar(
            select(func.count()).where(ReassignmentChunk.run_id == run_id, ReassignmentChunk.phase == phase)
        )
    finished = int(total or 0) - len(chunks)
    if progress:
        progress(finished, int(total or 0))

    def done(_chunk: Chunk, _counts: Any) -> None:
        nonlocal finished
        finished += 1
        if progress:
            progress(finished, int(total or 0))

    stop = (lambda: _cancel_requested(db, run_id)) if phase == apply_service.PHASE else (lambda: False)
    backend.run(task, db.url, chunks, done=done, stop=stop)


def _pending_count(session: Session, run_id: int, phase: str) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                ReassignmentChunk.run_id == run_id,
                ReassignmentChunk.phase == phase,
                ReassignmentChunk.done_at.is_(None),
            )
        )
        or 0
    )


def finish_plan(
    db: Database, run_id: int, *, only_if_complete: bool = False, total_leads: int | None = None
) -> None:
    """Count the plan and hash its content (items streamed in lead order). Nothing happens unless the
    run is still planning (a second call, or a run cancelled meanwhile), nor, with
    ``only_if_complete``, while a chunk of the plan is not done. ``total_leads``: the leads in the
    plan's scope when the caller counted them already (``_leads_in_scope``)."""
    with db.transaction() as session:
        loaded = load_run(session, run_id)
        if loaded.status != RunStatus.PLANNING or (
            only_if_complete and _pending_count(session, run_id, plan_service.PHASE)
        ):
            return  # (checked again under the run's lock below)
    with db.transaction() as session:
        run = load_run(session, run_id, lock=True)
        if run.status != RunStatus.PLANNING or (
            only_if_complete and _pending_count(session, run_id, plan_service.PHASE)
        ):
            return
        digest = PlanHash(
            {
                "kind": run.kind,
                "territory_model_id": run.territory_model_id,
                "ruleset_ids": list(run.ruleset_ids),
                "scope": run.scope,
                "reverts_run_id": run.reverts_run_id,
            }
        )
        last, counts = 0, Counter[str]()
        while True:
            page = session.execute(  # rows, not objects: a plan may hold a million items
                select(
                    ReassignmentItem.lead_id,
                    ReassignmentItem.lead_version,
                    ReassignmentItem.outcome,
                    ReassignmentItem.reason,
                    ReassignmentItem.action,
                    cast(ReassignmentItem.before, Text),
                    cast(ReassignmentItem.after, Text),
                )
                .where(ReassignmentItem.run_id == run_id, ReassignmentItem.lead_id > last)
                .order_by(ReassignmentItem.lead_id)
                .limit(1000)
            ).all()
            for lead_id, version, outcome, reason, action, before, after in page:
                counts[outcome] += 1
                digest.add(
                    {
                        "lead_id": lead_id,
                        "lead_version": version,
                        "outcome": outcome,
                        "reason": reason,
                        "action": action,
                        "before": json_loads(before),
                        "after": json_loads(after),
                    }
                )
            if len(page) < 1000:
                break
            last = page[-1][0]
        run = load_run(session, run_id, lock=True)
        run.moved, run.kept = counts[ItemOutcome.MOVE.value], counts[ItemOutcome.KEEP.value]
        if run.kind == RunKind.PLAN:
            run.total_leads = (
                total_leads
                if total_leads is not None
                else plan_service.count_leads(session, plan_service.scope_conditions(session, run.scope))
            )
            if not run.incremental:  # (an incremental plan counted its leads when it cut its chunks)
                run.evaluated = run.total_leads
        else:
            run.total_leads = run.evaluated = run.moved + run.kept
        run.content_hash = digest.hexdigest()
        run.status, run.planned_at = RunStatus.PLANNED.value, utcnow()
        audit.record(
            session,
            None,
            ENTITY,
            run.id,
            "planned",
            after={"moved": run.moved, "kept": run.kept, "content_hash": run.content_hash},
            details={
                "evaluated": run.evaluated,
                "total_leads": run.total_leads,
                "incremental": run.incremental,
            },
        )


def finish_apply(db: Database, run_id: int, *, only_if_complete: bool = False) -> None:
    """Count what the apply did, mark the run applied (cancelled when chunks were left undone) and
    queue the digests. Nothing happens unless the run is still applying, nor, with
    ``only_if_complete``, while a chunk is not done and no cancel was asked for."""
    now = utcnow()
    if only_if_complete:
        # without the run's lock first: taking it waits for every chunk running (they hold it shared)
        with db.transaction() as session:
            run = load_run(session, run_id)
            if run.status != RunStatus.APPLYING or (
                _pending_count(session, run_id, apply_service.PHASE) and not run.cancel_requested
            ):
                return
    with db.transaction() as session:
        run = load_run(session, run_id, lock=True)
        if run.status != RunStatus.APPLYING:
            return
        pending = _pending_count(session, run_id, apply_service.PHASE)
        if only_if_complete and pending and not run.cancel_requested:
            return
        counts = apply_service.settle(session, run, now)
        run.applied, run.skipped = counts["applied"], counts["skipped"]
        run.status = RunStatus.CANCELLED.value if pending else RunStatus.APPLIED.value
        run.finished_at = now
        audit.record(
            session,
            None,
            ENTITY,
            run.id,
            run.status,
            after={"applied": run.applied, "skipped": run.skipped},
            now=now,
        )


def plan_and_finish(
    db: Database, run_id: int, task: str, backend: Backend, progress: Progress | None
) -> None:
    # the leads in scope are counted while the chunks run: the count of a million leads is a tenth
    # of a second of the database's time, most of what a small incremental plan takes to finish
    with ThreadPoolExecutor(1, thread_name_prefix=f"reassignment-run-{run_id}-count") as counter:
        total = counter.submit(_leads_in_scope, db, run_id)
        drive(db, run_id, plan_service.PHASE, task, backend, progress)
        finish_plan(db, run_id, total_leads=total.result())


def _leads_in_scope(db: Database, run_id: int) -> int | None:
    """How many leads a plan's scope holds (``None`` for a revert, which counts its own items); read
    without a transaction (on SQLite, no write lock taken beside the chunks')."""
    with db.read() as session:
        run = load_run(session, run_id)
        if run.kind != RunKind.PLAN:
            return None
        return plan_service.count_leads(session, plan_service.scope_conditions(session, run.scope))


def finish_chunk(database_url: str, chunk: Chunk) -> dict[str, int]:
    """What a queued backend's worker runs behind each chunk: finish the run's phase once its last
    chunk is done (an apply also once a cancel stopped it). Idempotent: only the first call that finds
    the phase complete finishes it; the run's row lock orders concurrent calls."""
    db = database_for(database_url)
    if chunk.phase == apply_service.PHASE:
        finish_apply(db, chunk.run_id, only_if_complete=True)
    else:
        finish_plan(db, chunk.run_id, only_if_complete=True)
    return {}


#: Runs started in the background of this process (the local pool behind a web request).
_BACKGROUND: dict[int, threading.Thread] = {}


def _in_background(db: Database, run_id: int, phase: str, task: str, backend: Backend) -> None:
    try:
        drive(db, run_id, phase, task, backend, None)
        if phase == apply_service.PHASE:
            finish_apply(db, run_id)
        else:
            finish_plan(db, run_id)
    except Exception as exc:  # the run stays where it stopped; `prm reassign resume` continues it
        log.exception("reassignment run %s stopped in its %s phase", run_id, phase)
        with db.transaction() as session:
            load_run(session, run_id, lock=True).error = f"{type(exc).__name__}: {exc}"[:2000]


def launch(db: Database, run_id: int, phase: str, task: str, backend: Backend) -> None:
    """Start the phase's pending chunks and return at once: on a queued backend the chunks go to its
    workers, which finish the run behind the last chunk (``finish_chunk``); on a local pool a thread
    of this process drives them."""
    if is_queued(backend):
        chunks = pending_chunks(db, run_id, phase)
        if not chunks:
            finish_chunk(db.url, Chunk(run_id, phase, 0, 0, 0))
            return
        try:
            backend.submit(task, db.url, chunks, after=FINISH_TASK)  # type: ignore[attr-defined]
        except PrmError as exc:  # the broker is down: the run waits for `prm reassign resume`
            with db.transaction() as session:
                load_run(session, run_id, lock=True).error = exc.detail[:2000]
            raise ServiceUnavailable(
                f"{exc.detail}; reassignment run {run_id} is saved, continue it with "
                f"`prm reassign resume {run_id}`",
                run_id=run_id,
            ) from exc
        return
    thread = threading.Thread(
        target=_in_background,
        args=(db, run_id, phase, task, backend),
        name=f"reassignment-run-{run_id}-{phase}",
        daemon=True,
    )
    _BACKGROUND[run_id] = thread
    thread.start()


def wait_for_background(timeout: float | None = None) -> None:
    """Wait for the runs this process drives in the background (tests, an orderly shutdown)."""
    for run_id, thread in list(_BACKGROUND.items()):
        thread.join(timeout)
        if not thread.is_alive():
            _BACKGROUND.pop(run_id, None)


def plan_phase(
    db: Database, run_id: int, task: str, backend: Backend, progress: Progress | None, wait: bool
) -> None:
    if wait:
        plan_and_finish(db, run_id, task, backend, progress)
    else:
        launch(db, run_id, plan_service.PHASE, task, backend)
