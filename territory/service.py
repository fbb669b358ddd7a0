"""Territory model services: each function owns one transaction, writes one audit row per change, and
re-checks the whole tree before anything is written.

Only planning models change (409 otherwise). Every change inside a model names the model's ETag in
``If-Match`` and bumps the model's version. A change that would leave an invalid tree is refused with 422
listing every problem; warnings (children covering more than their parent) come back with the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match, etag_for
from common.database import Database
from common.errors import Conflict, FieldProblem, InvalidTransition, NotFound, ValidationFailed
from common.pagination import decode_cursor, encode_cursor
from common.principal import Principal
from territory import csv_import
from territory import repository as repo
from territory import schemas as s
from territory.dimensions import Dimension, MemberHierarchy
from territory.errors import TreeInvalid, did_you_mean, hint
from territory.lifecycle import EDITABLE, ModelEvent, TransitionNotAllowed, next_status
from territory.models import ModelStatus, Territory, TerritoryModel
from territory.snapshot import TerritorySnapshot
from territory.team import UserDirectory, team_member_problem
from territory.tree import Coverage, TeamMember, TerritoryDef, TreeWarning, check_tree

ENTITY = "territory_model"


# --- outputs ------------------------------------------------------------------------------------------


def warning_out(w: TreeWarning) -> s.TreeWarningOut:
    return s.TreeWarningOut(
        code=w.code,
        territory=w.territory,
        parent=w.parent,
        dimension=w.dimension,
        member=w.member,
        message=w.message,
    )


def territory_out(d: TerritoryDef) -> s.TerritoryOut:
    return s.TerritoryOut(
        key=d.key,
        parent_key=d.parent_key,
        name=d.name,
        type=d.type,
        partner=d.partner,
        coverage={
            dim: s.CoverageOut(include=sorted(cov.include), exclude=sorted(cov.exclude))
            for dim, cov in sorted(d.coverage.items(), key=lambda kv: list(Dimension).index(kv[0]))
        },
        team=[s.TeamMemberOut(user=m.user, role=m.role) for m in d.team],
    )


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


# --- shared mechanics ---------------------------------------------------------------------------------


def _model(session: Session, model_id: int, *, lock: bool = False) -> TerritoryModel:
    model = session.get(TerritoryModel, model_id, with_for_update=lock or None)
    if model is None:
        raise NotFound(f"territory model {model_id} not found")
    return model


def _editable(session: Session, model_id: int, if_match: str | None) -> TerritoryModel:
    """Lock the model, check it is a planning model and that ``If-Match`` names its current version."""
    model = _model(session, model_id, lock=True)
    check_if_match(if_match, model.id, model.version)
    if model.status not in EDITABLE:
        raise InvalidTransition(
            f"territory model {model.id} is {model.status}; only planning models can be changed "
            "(clone it into a new planning model)"
        )
    return model


def _touch(model: TerritoryModel) -> None:
    """Make the flush bump the model's version: a change to any territory is a change of the model."""
    flag_modified(model, "name")


def _team_problems(defs: Sequence[TerritoryDef], users: UserDirectory) -> list[FieldProblem]:
    problems = []
    for d in defs:
        seen: set[TeamMember] = set()
        for i, m in enumerate(d.team):
            pointer = f"/territories/{d.key}/team/{i}"
            if m in seen:
                problems.append(FieldProblem(pointer, f"{m.user!r} is listed twice as {m.role!r}"))
                continue
            seen.add(m)
            why = team_member_problem(m.user, m.role, users)
            if why:
                problems.append(FieldProblem(pointer, f"territory {d.key!r}: {why}"))
    return problems


def _partner_problems(defs: Sequence[TerritoryDef], partners: MemberHierarchy) -> list[FieldProblem]:
    return [
        FieldProblem(
            f"/territories/{d.key}/partner",
            f"territory {d.key!r} names unknown partner {d.partner!r}{hint(did_you_mean(d.partner, list(partners)))}",
        )
        for d in defs
        if d.partner is not None and d.partner not in partners
    ]


def _overlap_problems(defs: Sequence[TerritoryDef]) -> list[FieldProblem]:
    return [
        FieldProblem(
            f"/territories/{d.key}/coverage/{dim}",
            f"territory {d.key!r} both includes and excludes {dim} {m!r}",
        )
        for d in defs
        for dim, cov in d.coverage.items()
        for m in sorted(cov.include & cov.exclude)
    ]


def check_defs(
    session: Session, defs: Sequence[TerritoryDef], *, allow_empty: bool = True
) -> list[TreeWarning]:
    """Check a whole model against the reference data; raise ``ValidationFailed`` listing every problem."""
    if not defs and allow_empty:
        return []
    dims = repo.load_dimensions(session)
    problems = _team_problems(defs, repo.internal_users(session))
    problems += _partner_problems(defs, dims[Dimension.PARTNER])
    problems += _overlap_problems(defs)
    warnings: list[TreeWarning] = []
    try:
        warnings = list(check_tree(defs, dims).warnings)
    except TreeInvalid as exc:
        problems = repo.tree_problems(exc) + problems
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in the territory tree", problems)
    return warnings


def _coverage(data: dict[Dimension, s.CoverageIn]) -> dict[Dimension, Coverage]:
    return {dim: Coverage.of(c.include, c.exclude) for dim, c in data.items() if c.include or c.exclude}


def _team(data: Sequence[s.TeamMemberIn]) -> tuple[TeamMember, ...]:
    return tuple(TeamMember(m.user, m.role.value) for m in data)


def _territory(rows: dict[str, Territory], model: TerritoryModel, key: str) -> Territory:
    t = rows.get(key)
    if t is None:
        raise NotFound(
            f"territory {key!r} not found in model {model.id}{hint(did_you_mean(key, rows.keys()))}"
        )
    return t


def _changed(
    session: Session,
    principal: Principal | None,
    model: TerritoryModel,
    action: str,
    before: s.TerritoryOut | None,
    after: TerritoryDef | None,
    warnings: Sequence[TreeWarning],
) -> s.TerritoryChanged:
    _touch(model)
    session.flush()
    out = territory_out(after) if after else None
    audit.record(
        session,
        principal,
        ENTITY,
        model.id,
        action,
        before=before.model_dump(mode="json") if before else None,
        after=out.model_dump(mode="json") if out else None,
        details={"model_version": model.version},
    )
    return s.TerritoryChanged(
        territory=out, model_version=model.version, warnings=[warning_out(w) for w in warnings]
    )


# --- models -------------------------------------------------------------------------------------------


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
        model = _model(session, model_id)
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
        model = _model(session, model_id, lock=True)
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
            warnings = check_defs(session, defs, allow_empty=False)
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


# --- territories --------------------------------------------------------------------------------------


def list_territories(
    db: Database, principal: Principal | None, model_id: int, query: s.TerritoryListQuery
) -> s.TerritoryPage:
    with db.transaction() as session:
        _model(session, model_id)
        stmt = (
            select(Territory)
            .where(Territory.model_id == model_id, Territory.id > decode_cursor(query.cursor))
            .order_by(Territory.id)
            .limit(query.limit + 1)
        )
        rows = list(session.scalars(stmt))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return s.TerritoryPage(
            items=[territory_out(repo.def_of(t)) for t in rows],
            next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
        )


def get_territory(
    db: Database, principal: Principal | None, model_id: int, key: str
) -> tuple[s.TerritoryOut, int]:
    """The territory and its model's version (the ETag to send with changes)."""
    with db.transaction() as session:
        model = _model(session, model_id)
        t = session.scalar(select(Territory).where(Territory.model_id == model_id, Territory.key == key))
        if t is None:
            keys = session.scalars(select(Territory.key).where(Territory.model_id == model_id)).all()
            raise NotFound(f"territory {key!r} not found in model {model_id}{hint(did_you_mean(key, keys))}")
        return territory_out(repo.def_of(t)), model.version


def create_territory(
    db: Database, principal: Principal | None, model_id: int, if_match: str | None, data: s.TerritoryCreate
) -> s.TerritoryChanged:
    with db.transaction() as session:
        model = _editable(session, model_id, if_match)
        rows = repo.territory_rows(session, model.id)
        if data.key in rows:
            raise Conflict(f"territory {data.key!r} already exists in model {model.id}")
        new = TerritoryDef(
            data.key,
            data.parent_key,
            data.name,
            data.type,
            _team(data.team),
            data.partner,
            _coverage(data.coverage),
        )
        warnings = check_defs(session, [*(repo.def_of(t) for t in rows.values()), new])
        repo.add_territory(session, model, new)
        return _changed(session, principal, model, "territory_created", None, new, warnings)


def _replace_one(
    session: Session,
    principal: Principal | None,
    model: TerritoryModel,
    key: str,
    action: str,
    change: dict[str, Any],
) -> s.TerritoryChanged:
    """Apply ``change`` (fields of ``TerritoryDef``) to one territory, check the tree, write it."""
    rows = repo.territory_rows(session, model.id)
    t = _territory(rows, model, key)
    before = repo.def_of(t)
    after = replace(before, **change)
    warnings = check_defs(session, [after if k == key else repo.def_of(r) for k, r in rows.items()])
    t.parent_key, t.name, t.type, t.partner_key = after.parent_key, after.name, after.type, after.partner
    if "coverage" in change:
        repo.set_coverage_rows(t, after.coverage.items())
    if "team" in change:
        repo.set_team_rows(t, after.team)
    return _changed(session, principal, model, action, territory_out(before), after, warnings)


def update_territory(
    db: Database,
    principal: Principal | None,
    model_id: int,
    key: str,
    if_match: str | None,
    data: s.TerritoryUpdate,
) -> s.TerritoryChanged:
    with db.transaction() as session:
        model = _editable(session, model_id, if_match)
        fields = data.model_dump(exclude_unset=True)
        for required in ("name", "type"):
            if required in fields and fields[required] is None:
                raise ValidationFailed("Missing value", [FieldProblem(f"/{required}", "may not be null")])
        return _replace_one(session, principal, model, key, "territory_updated", fields)


def set_coverage(
    db: Database,
    principal: Principal | None,
    model_id: int,
    key: str,
    if_match: str | None,
    data: s.CoverageSet,
) -> s.TerritoryChanged:
    with db.transaction() as session:
        model = _editable(session, model_id, if_match)
        return _replace_one(
            session, principal, model, key, "coverage_set", {"coverage": _coverage(data.coverage)}
        )


def set_team(
    db: Database, principal: Principal | None, model_id: int, key: str, if_match: str | None, data: s.TeamSet
) -> s.TerritoryChanged:
    with db.transaction() as session:
        model = _editable(session, model_id, if_match)
        return _replace_one(session, principal, model, key, "team_set", {"team": _team(data.team)})


def delete_territory(
    db: Database, principal: Principal | None, model_id: int, key: str, if_match: str | None
) -> s.TerritoryChanged:
    """Delete a leaf territory (a territory with children is refused: they would lose their parent)."""
    with db.transaction() as session:
        model = _editable(session, model_id, if_match)
        rows = repo.territory_rows(session, model.id)
        t = _territory(rows, model, key)
        before = repo.def_of(t)
        warnings = check_defs(session, [repo.def_of(r) for k, r in rows.items() if k != key])
        session.delete(t)
        return _changed(session, principal, model, "territory_deleted", territory_out(before), None, warnings)


# --- import -------------------------------------------------------------------------------------------


def import_model(
    db: Database,
    principal: Principal | None,
    model_id: int,
    if_match: str | None,
    files: csv_import.ModelFiles,
) -> s.ModelImportReport:
    """Replace a planning model's content with three CSV files, all rows checked before anything is written."""
    with db.transaction() as session:
        model = _editable(session, model_id, if_match)
        dims = repo.load_dimensions(session)
        defs = csv_import.parse_model(files, dims, repo.internal_users(session))
        warnings = check_defs(session, defs)  # the same checks as every other change (reports by territory)
        repo.replace_content(session, model, defs)
        _touch(model)
        session.flush()
        report = s.ModelImportReport(
            model_id=model.id,
            territories=len(defs),
            coverage_rows=sum(len(c.include) + len(c.exclude) for d in defs for c in d.coverage.values()),
            members=sum(len(d.team) for d in defs),
            model_version=model.version,
            warnings=[warning_out(w) for w in warnings],
        )
        audit.record(
            session,
            principal,
            ENTITY,
            model.id,
            "imported",
            details={**report.model_dump(mode="json", exclude={"warnings"}), "files": list(files.names)},
        )
        return report


# --- views --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeView:
    """What the hierarchy views render: the model, its snapshot (``None`` when empty) and lead counts."""

    model: s.ModelOut
    snapshot: TerritorySnapshot | None
    lead_counts: dict[str, int]


def model_tree(db: Database, principal: Principal | None, model_id: int | None) -> TreeView:
    """The tree of ``model_id``, or of the active model when ``None``."""
    with db.transaction() as session:
        if model_id is None:
            model = session.scalar(select(TerritoryModel).where(TerritoryModel.status == ModelStatus.ACTIVE))
            if model is None:
                raise NotFound("no territory model is active")
        else:
            model = _model(session, model_id)
        count = repo.count_territories(session, [model.id]).get(model.id, 0)
        snapshot = None
        if count:
            try:
                snapshot = repo.build_snapshot(session, model)
            except TreeInvalid as exc:
                raise Conflict(
                    f"territory model {model.id} is not a valid tree",
                    errors=[p.as_dict() for p in repo.tree_problems(exc)],
                ) from None
        return TreeView(
            model_out(model, count, snapshot.warnings if snapshot else ()),
            snapshot,
            repo.lead_counts(session, model.id),
        )


def current_version(db: Database, model_id: int) -> str:
    """The model's current ETag (for the command line, which acts on what it just read)."""
    with db.transaction() as session:
        model = _model(session, model_id)
        return etag_for(model.id, model.version)
