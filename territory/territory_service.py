"""Territories inside a planning model: list, read, create, change (fields, coverage, team), delete.

Every change names the model's ETag in ``If-Match``, is checked against the whole tree, bumps the model's
version and writes one audit row on the model (``planning_service``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common import audit
from common.database import Database
from common.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from common.pagination import decode_cursor, encode_cursor
from common.principal import Principal
from territory import repository as repo
from territory import schemas as s
from territory.dimensions import ordered
from territory.errors import did_you_mean, hint
from territory.models import Territory, TerritoryModel
from territory.planning_service import (
    ENTITY,
    check_defs,
    editable_model,
    find_model,
    touch_model,
    warning_out,
)
from territory.tree import Coverage, TeamMember, TerritoryDef, TreeWarning


def territory_out(d: TerritoryDef) -> s.TerritoryOut:
    return s.TerritoryOut(
        key=d.key,
        parent_key=d.parent_key,
        name=d.name,
        type=d.type,
        partner=d.partner,
        coverage={
            str(dim): s.CoverageOut(
                include=sorted(d.coverage[dim].include), exclude=sorted(d.coverage[dim].exclude)
            )
            for dim in ordered(d.coverage)
        },
        team=[s.TeamMemberOut(user=m.user, role=m.role) for m in d.team],
    )


def _coverage(data: dict[str, s.CoverageIn]) -> dict[str, Coverage]:
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
    touch_model(model)
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


def list_territories(
    db: Database, principal: Principal | None, model_id: int, query: s.TerritoryListQuery
) -> s.TerritoryPage:
    with db.transaction() as session:
        find_model(session, model_id)
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
        model = find_model(session, model_id)
        t = session.scalar(select(Territory).where(Territory.model_id == model_id, Territory.key == key))
        if t is None:
            keys = session.scalars(select(Territory.key).where(Territory.model_id == model_id)).all()
            raise NotFound(f"territory {key!r} not found in model {model_id}{hint(did_you_mean(key, keys))}")
        return territory_out(repo.def_of(t)), model.version


def create_territory(
    db: Database, principal: Principal | None, model_id: int, if_match: str | None, data: s.TerritoryCreate
) -> s.TerritoryChanged:
    with db.transaction() as session:
        model = editable_model(session, model_id, if_match)
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
        warnings = check_defs(session, model, [*(repo.def_of(t) for t in rows.values()), new])
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
    warnings = check_defs(session, model, [after if k == key else repo.def_of(r) for k, r in rows.items()])
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
        model = editable_model(session, model_id, if_match)
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
        model = editable_model(session, model_id, if_match)
        return _replace_one(
            session, principal, model, key, "coverage_set", {"coverage": _coverage(data.coverage)}
        )


def set_team(
    db: Database, principal: Principal | None, model_id: int, key: str, if_match: str | None, data: s.TeamSet
) -> s.TerritoryChanged:
    with db.transaction() as session:
        model = editable_model(session, model_id, if_match)
        return _replace_one(session, principal, model, key, "team_set", {"team": _team(data.team)})


def delete_territory(
    db: Database, principal: Principal | None, model_id: int, key: str, if_match: str | None
) -> s.TerritoryChanged:
    """Delete a leaf territory (a territory with children is refused: they would lose their parent)."""
    with db.transaction() as session:
        model = editable_model(session, model_id, if_match)
        rows = repo.territory_rows(session, model.id)
        t = _territory(rows, model, key)
        before = repo.def_of(t)
        warnings = check_defs(session, model, [repo.def_of(r) for k, r in rows.items() if k != key])
        session.delete(t)
        return _changed(session, principal, model, "territory_deleted", territory_out(before), None, warnings)
