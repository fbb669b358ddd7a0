"""Assignment locks: a lead or opportunity that batch reassignment must leave where it is; and territory
freezes: a territory of a model whose leads it must leave where they are.

Placing or lifting a lock is a change of the record: it names the record's ETag in ``If-Match``, bumps
its version (so a plan made before it skips the lead as changed) and writes one history row. A freeze is
a change of the territory, whose ETag is its model's (as for its coverage and team): it names that ETag,
bumps the model's version and writes one history row on the model. Freezing is allowed in any model,
the active one included (a freeze changes no coverage or team).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import NotFound
from common.principal import Principal
from registration.leads.models import Lead
from registration.leads.service import visible_lead
from registration.opportunities.models import Opportunity
from registration.opportunities.service import visible_opportunity
from registration.reassignment import schemas as s
from registration.reassignment.models import AssignmentLock, TerritoryFreeze
from territory.errors import did_you_mean, hint
from territory.models import Territory, TerritoryModel
from territory.repository import snapshot_for
from territory.snapshot import TerritorySnapshot

SUBJECTS = ("lead", "opportunity")


def _subject(
    session: Session, principal: Principal, subject_type: str, subject_id: int, *, for_update: bool = False
) -> Lead | Opportunity:
    if subject_type == "lead":
        return visible_lead(session, principal, subject_id, for_update=for_update)
    return visible_opportunity(session, principal, subject_id, for_update=for_update)


def _lock(session: Session, subject_type: str, subject_id: int) -> AssignmentLock | None:
    return session.scalar(
        select(AssignmentLock).where(
            AssignmentLock.subject_type == subject_type, AssignmentLock.subject_id == subject_id
        )
    )


def lock_out(subject_type: str, subject_id: int, lock: AssignmentLock | None) -> s.LockOut:
    if lock is None:
        return s.LockOut(subject_type=subject_type, subject_id=subject_id, locked=False)
    return s.LockOut(
        subject_type=subject_type,
        subject_id=subject_id,
        locked=True,
        reason=lock.reason,
        locked_by=lock.locked_by,
        locked_at=lock.locked_at,
    )


def get_lock(
    db: Database, principal: Principal, subject_type: str, subject_id: int
) -> tuple[s.LockOut, tuple[int, int]]:
    """The lock (or its absence) and the record's ETag parts."""
    with db.transaction() as session:
        record = _subject(session, principal, subject_type, subject_id)
        return lock_out(subject_type, subject_id, _lock(session, subject_type, subject_id)), (
            record.id,
            record.version,
        )


def set_lock(
    db: Database,
    principal: Principal,
    subject_type: str,
    subject_id: int,
    if_match: str | None,
    data: s.LockIn | None,
) -> tuple[s.LockOut, tuple[int, int]]:
    """Place (``data``) or lift (``None``) the lock; one history row either way."""
    now = utcnow()
    with db.transaction() as session:
        record = _subject(session, principal, subject_type, subject_id, for_update=True)
        check_if_match(if_match, record.id, record.version)
        lock = _lock(session, subject_type, subject_id)
        before = {"locked": lock is not None, "reason": lock.reason if lock else None}
        if data is None:
            if lock is not None:
                session.delete(lock)
            lock = None
        elif lock is None:
            lock = AssignmentLock(
                subject_type=subject_type,
                subject_id=subject_id,
                reason=data.reason,
                locked_by=principal.user_id,
                locked_at=now,
            )
            session.add(lock)
        else:
            lock.reason, lock.locked_by, lock.locked_at = data.reason, principal.user_id, now
        record.updated_at = now  # a change of the record: its version moves
        session.flush()
        audit.record(
            session,
            principal,
            subject_type,
            record.id,
            "assignment_locked" if data is not None else "assignment_unlocked",
            before=before,
            after={"locked": lock is not None, "reason": lock.reason if lock else None},
            reason=data.reason if data is not None else None,
            now=now,
        )
        return lock_out(subject_type, subject_id, lock), (record.id, record.version)


# --- territory freezes ------------------------------------------------------------------------------------


def _territory_model(
    session: Session, model_id: int, key: str, *, for_update: bool = False
) -> TerritoryModel:
    stmt = select(TerritoryModel).where(TerritoryModel.id == model_id)
    model = session.scalar(stmt.with_for_update() if for_update else stmt)
    if model is None:
        raise NotFound(f"territory model {model_id} not found")
    if (
        session.scalar(select(Territory.id).where(Territory.model_id == model_id, Territory.key == key))
        is None
    ):
        keys = session.scalars(select(Territory.key).where(Territory.model_id == model_id)).all()
        raise NotFound(f"territory {key!r} not found in model {model_id}{hint(did_you_mean(key, keys))}")
    return model


def _freeze(session: Session, model_id: int, key: str) -> TerritoryFreeze | None:
    return session.scalar(
        select(TerritoryFreeze).where(
            TerritoryFreeze.territory_model_id == model_id, TerritoryFreeze.territory_key == key
        )
    )


def freeze_out(model_id: int, key: str, freeze: TerritoryFreeze | None) -> s.FreezeOut:
    if freeze is None:
        return s.FreezeOut(territory_model_id=model_id, territory_key=key, frozen=False)
    return s.FreezeOut(
        territory_model_id=model_id,
        territory_key=key,
        frozen=True,
        reason=freeze.reason,
        frozen_by=freeze.frozen_by,
        frozen_at=freeze.frozen_at,
    )


def get_freeze(
    db: Database, principal: Principal, model_id: int, key: str
) -> tuple[s.FreezeOut, tuple[int, int]]:
    """The territory's freeze (or its absence) and its model's ETag parts."""
    with db.transaction() as session:
        model = _territory_model(session, model_id, key)
        return freeze_out(model_id, key, _freeze(session, model_id, key)), (model.id, model.version)


def set_freeze(
    db: Database,
    principal: Principal,
    model_id: int,
    key: str,
    if_match: str | None,
    data: s.LockIn | None,
) -> tuple[s.FreezeOut, tuple[int, int]]:
    """Freeze (``data``) or thaw (``None``) a territory of a model; one history row on the model."""
    now = utcnow()
    with db.transaction() as session:
        model = _territory_model(session, model_id, key, for_update=True)
        check_if_match(if_match, model.id, model.version)
        freeze = _freeze(session, model_id, key)
        before = {"territory": key, "frozen": freeze is not None, "reason": freeze.reason if freeze else None}
        if data is None:
            if freeze is not None:
                session.delete(freeze)
            freeze = None
        elif freeze is None:
            freeze = TerritoryFreeze(
                territory_model_id=model_id,
                territory_key=key,
                reason=data.reason,
                frozen_by=principal.user_id,
                frozen_at=now,
            )
            session.add(freeze)
        else:
            freeze.reason, freeze.frozen_by, freeze.frozen_at = data.reason, principal.user_id, now
        session.flush()
        # a change of the territory: its model's version (the territory's ETag) moves
        version = model.version + 1
        session.execute(
            update(TerritoryModel)
            .where(TerritoryModel.id == model_id)
            .values(version=version)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            session,
            principal,
            "territory_model",
            model_id,
            "territory_frozen" if data is not None else "territory_thawed",
            before=before,
            after={
                "territory": key,
                "frozen": freeze is not None,
                "reason": freeze.reason if freeze else None,
            },
            reason=data.reason if data is not None else None,
            now=now,
        )
        return freeze_out(model_id, key, freeze), (model_id, version)


#: Snapshots by (model id, version), per process: a freeze bumps its model's version, so a cached
#: snapshot never hides one.
_SNAPSHOTS: dict[tuple[int, int], TerritorySnapshot] = {}


def _snapshot(db: Database, model_id: int, version: int) -> TerritorySnapshot:
    key = (model_id, version)
    snapshot = _SNAPSHOTS.get(key)
    if snapshot is None:
        if len(_SNAPSHOTS) > 8:
            _SNAPSHOTS.clear()
        snapshot = _SNAPSHOTS[key] = snapshot_for(db, model_id)
    return snapshot


def frozen_territories(db: Database, model_ids: Iterable[int | None]) -> dict[str, tuple[str, str]]:
    """Every territory frozen in one of the models, or below one that is: key -> (the frozen territory,
    its reason). Read outside any transaction (it may build the models' snapshots)."""
    ids = sorted({m for m in model_ids if m is not None})
    if not ids:
        return {}
    with db.transaction() as session:
        rows = session.execute(
            select(TerritoryFreeze.territory_model_id, TerritoryFreeze.territory_key, TerritoryFreeze.reason)
            .where(TerritoryFreeze.territory_model_id.in_(ids))
            .order_by(TerritoryFreeze.territory_model_id, TerritoryFreeze.territory_key)
        ).all()
        if not rows:
            return {}
        versions = dict(
            session.execute(
                select(TerritoryModel.id, TerritoryModel.version).where(TerritoryModel.id.in_(ids))
            ).all()
        )
    by_model: dict[int, dict[str, str]] = {}
    for model_id, key, reason in rows:
        by_model.setdefault(model_id, {})[key] = reason
    out: dict[str, tuple[str, str]] = {}
    for model_id, frozen in by_model.items():
        for key, reason in frozen.items():
            out.setdefault(key, (key, reason))
        snapshot = _snapshot(db, model_id, versions[model_id])
        for key in snapshot:
            for above in snapshot.path(key):
                if above in frozen:
                    out.setdefault(key, (above, frozen[above]))
                    break
    return out


def frozen_hit(frozen: Mapping[str, tuple[str, str]], keys: Iterable[str]) -> str | None:
    """``territory T: reason`` for the first of ``keys`` that is frozen (or below a frozen one)."""
    for key in keys:
        hit = frozen.get(key)
        if hit is not None:
            return f"territory {hit[0]}: {hit[1]}"
    return None
