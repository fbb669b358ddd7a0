"""Territory model lifecycle: create (empty or cloned), list, read, activate (archiving the previous
active model), and the hierarchy view of a model. Each function owns one transaction and writes one audit
row per change. Changes inside a planning model are in ``territory_service``, CSV import in
``import_service``; the checks they share in ``planning_service``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match, etag_for
from common.database import Database
from common.errors import Conflict, FieldProblem, InvalidTransition, NotFound, ValidationFailed
from common.pagination import decode_cursor, encode_cursor
from common.principal import Principal
from territory import repository as repo
from territory import schemas as s
from territory.errors import TreeInvalid
from territory.lifecycle import ModelEvent, TransitionNotAllowed, next_status
from territory.models import ModelStatus, TerritoryModel
from territory.outline import TreeShape
from territory.planning_service import ENTITY, check_defs, find_model, warning_out
from territory.tree import TreeWarning


def model_out(
    model: TerritoryModel, territory_count: int, warnings: Sequence[TreeWarning] = ()
) -> s.ModelOut:
    return s.ModelOut(
        id=model.id,
        name=model.name,
        status=ModelStatus(model.status),
        cloned_from_id=model.cloned_from_id,
        created_at=model.created_at,
        activated_at=model.activated_at,
        archived_at=model.archived_at,
        territory_count=territory_count,
        version=model.version,
        warnings=[warning_out(w) for w in warnings],
    )


def _audit_model(model: TerritoryModel) -> dict[str, object]:
    return {"name": model.name, "status": str(model.status), "version": model.version}


def create_model(db: Database, principal: Principal | None, data: s.ModelCreate) -> s.ModelOut:
    """A new planning model: empty, or a copy of the active model (or of ``clone_from_id``)."""
    with db.transaction() as session:
        source: TerritoryModel | None = None
        if data.clone_active:
            source = session.scalar(select(TerritoryModel).where(TerritoryModel.status == ModelStatus.ACTIVE))
            if source is None:
                raise Conflict("there is no active territory model to clone")
        elif data.clone_from_id is not None:
            source = session.get(TerritoryModel, data.clone_from_id)
            if source is None:
                raise ValidationFailed(
                    "Unknown model",
                    [FieldProblem("/clone_from_id", f"no territory model {data.clone_from_id}")],
                )
        model = TerritoryModel(
            name=data.name, status=ModelStatus.PLANNING, cloned_from_id=source.id if source else None
        )
        session.add(model)
        session.flush()
        defs = repo.load_defs(session, source.id) if source else []
        for d in defs:
            repo.add_territory(session, model, d)
        if source is not None:
            repo.copy_dimension_layer(session, source.id, model.id)
        session.flush()
        out = model_out(model, len(defs))
        audit.record(
            session,
            principal,
            ENTITY,
            model.id,
            "cloned" if source else "created",
            after=_audit_model(model),
            details={"cloned_from_id": source.id, "territories": len(defs)} if source else None,
        )
        return out


def list_models(db: Database, principal: Principal | None, query: s.ModelListQuery) -> s.ModelPage:
    with db.transaction() as session:
        stmt = select(TerritoryModel).where(TerritoryModel.id > decode_cursor(query.cursor))
        if query.status is not None:
            stmt = stmt.where(TerritoryModel.status == query.status)
        rows = list(session.scalars(stmt.order_by(TerritoryModel.id).limit(query.limit + 1)))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        counts = repo.count_territories(session, [m.id for m in rows])
        return s.ModelPage(
            items=[model_out(m, counts.get(m.id, 0)) for m in rows],
            next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
        )


def get_model(db: Database, principal: Principal | None, model_id: int) -> s.ModelOut:
    with db.transaction() as session:
        model = find_model(session, model_id)
        count = repo.count_territories(session, [model.id]).get(model.id, 0)
        warnings: Sequence[TreeWarning] = ()
        if count:
            try:
                warnings = repo.build_snapshot(session, model).warnings
            except TreeInvalid:
                warnings = ()  # the reference data moved under a stored model; activation reports it
        return model_out(model, count, warnings)


def activate_model(
    db: Database, principal: Principal | None, model_id: int, if_match: str | None
) -> s.ModelOut:
    """Make a planning model the active one and archive the previous one, in one transaction.

    409 when the model is not planning or is not a valid tree (the problem lists every reason).
    """
    with db.transaction() as session:
        model = find_model(session, model_id, lock=True)
        check_if_match(if_match, model.id, model.version)
        try:
            new_status = next_status(ModelStatus(model.status), ModelEvent.ACTIVATE)
        except TransitionNotAllowed as exc:
            raise InvalidTransition(f"territory model {model.id}: {exc}") from None
        defs = repo.load_defs(session, model.id)
        try:
            if not defs:
                raise ValidationFailed(
                    "empty", [FieldProblem("/territories", "the model has no territories")]
                )
            warnings = check_defs(session, model, defs, allow_empty=False)
        except ValidationFailed as exc:
            raise Conflict(
                f"territory model {model.id} cannot be activated: {len(exc.errors)} problem(s)",
                errors=[e.as_dict() for e in exc.errors],
            ) from None
        now = utcnow()
        old = session.scalar(
            select(TerritoryModel).where(TerritoryModel.status == ModelStatus.ACTIVE).with_for_update()
        )
        try:
            if old is not None:
                before = _audit_model(old)
                old.status = next_status(ModelStatus(old.status), ModelEvent.ARCHIVE)
                old.archived_at = now
                session.flush()  # the one-active index must see the old model leave first
                audit.record(
                    session, principal, ENTITY, old.id, "archived", before=before, after=_audit_model(old)
                )
            before = _audit_model(model)
            model.status = new_status
            model.activated_at = now
            session.flush()
        except IntegrityError:
            raise Conflict("another territory model was activated at the same time; read and retry") from None
        audit.record(
            session,
            principal,
            ENTITY,
            model.id,
            "activated",
            before=before,
            after=_audit_model(model),
            details={"archived_model_id": old.id if old else None},
        )
        return model_out(model, len(defs), warnings)


@dataclass(frozen=True)
class TreeView:
    """What the hierarchy views render: the model, its tree (a snapshot or the stored outline, ``None``
    when empty) and lead counts."""

    model: s.ModelOut
    snapshot: TreeShape | None
    lead_counts: dict[str, int]


def model_tree(db: Database, principal: Principal | None, model_id: int | None) -> TreeView:
    """The tree of ``model_id``, or of the active model when ``None``."""
    with db.transaction() as session:
        if model_id is None:
            model = session.scalar(select(TerritoryModel).where(TerritoryModel.status == ModelStatus.ACTIVE))
            if model is None:
                raise NotFound("no territory model is active")
        else:
            model = find_model(session, model_id)
        count = repo.count_territories(session, [model.id]).get(model.id, 0)
        tree = None
        if count:
            try:
                tree = repo.tree_for_view(session, model)
            except TreeInvalid as exc:
                raise Conflict(
                    f"territory model {model.id} is not a valid tree",
                    errors=[p.as_dict() for p in repo.tree_problems(exc)],
                ) from None
        return TreeView(
            model_out(model, count, tree.warnings if tree else ()),
            tree,
            repo.lead_counts(session, model.id),
        )


def current_version(db: Database, model_id: int) -> str:
    """The model's current ETag (for the command line, which acts on what it just read)."""
    with db.transaction() as session:
        model = find_model(session, model_id)
        return etag_for(model.id, model.version)
