"""Dimensions of a territory model: the built-in ones, the ones its admins declare (a name, the lead fact
feeding it, a member hierarchy), and the members admins import for any dimension (postal-code areas under
a subdivision, regions and the countries they hold, industries...). All of it is part of the model: it
changes only in planning models, bumps the model's version (its ETag), is copied when the model is
cloned and becomes active with it.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common import audit
from common.database import Database
from common.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from common.pagination import decode_cursor, encode_cursor
from common.principal import Principal
from territory import csv_import
from territory import repository as repo
from territory import schemas as s
from territory.dimensions import BUILT_IN, Dimension, MemberHierarchy, ordered
from territory.errors import did_you_mean, hint
from territory.geography import WORLD, countries
from territory.models import DimensionMember, TerritoryDimension, TerritoryModel
from territory.planning_service import ENTITY, check_defs, editable_model, find_model, touch_model


def _imported_counts(session: Session, model_id: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for dim in session.scalars(select(DimensionMember.dimension).where(DimensionMember.model_id == model_id)):
        counts[dim] = counts.get(dim, 0) + 1
    return counts


def _dimension_out(
    name: str, hierarchy: MemberHierarchy, declared: TerritoryDimension | None, imported: int
) -> s.DimensionOut:
    return s.DimensionOut(
        name=name,
        built_in=declared is None,
        source=(declared.source or name) if declared is not None else name,
        description=declared.description if declared is not None else None,
        members=len(hierarchy),
        imported_members=imported,
    )


def _dims(
    session: Session, model: TerritoryModel
) -> tuple[dict[str, MemberHierarchy], dict[str, TerritoryDimension]]:
    dims = repo.load_dimensions(session, model=model)
    declared = {d.name: d for d in repo.declared_dimensions(session, model.id)}
    return dims, declared


def _known(dims: dict[str, MemberHierarchy], name: str, model_id: int) -> MemberHierarchy:
    hierarchy = dims.get(name)
    if hierarchy is None:
        raise NotFound(
            f"territory model {model_id} has no dimension {name!r}{hint(did_you_mean(name, ordered(dims)))}"
        )
    return hierarchy


def list_dimensions(db: Database, principal: Principal | None, model_id: int) -> s.DimensionList:
    """The model's dimensions: the built-in ones, then the declared ones by name."""
    with db.transaction() as session:
        model = find_model(session, model_id)
        dims, declared = _dims(session, model)
        counts = _imported_counts(session, model.id)
        return s.DimensionList(
            items=[_dimension_out(n, dims[n], declared.get(n), counts.get(n, 0)) for n in ordered(dims)],
            model_version=model.version,
        )


def declare_dimension(
    db: Database, principal: Principal | None, model_id: int, if_match: str | None, data: s.DimensionCreate
) -> s.DimensionChanged:
    """Declare a dimension on a planning model (its members come from a member import)."""
    with db.transaction() as session:
        model = editable_model(session, model_id, if_match)
        if data.name in BUILT_IN:
            raise ValidationFailed(
                "Built-in dimension", [FieldProblem("/name", f"{data.name!r} is a built-in dimension")]
            )
        if any(d.name == data.name for d in repo.declared_dimensions(session, model.id)):
            raise Conflict(f"territory model {model.id} already has a dimension {data.name!r}")
        row = TerritoryDimension(
            model_id=model.id, name=data.name, source=data.source, description=data.description
        )
        session.add(row)
        touch_model(model)
        session.flush()
        out = _dimension_out(data.name, MemberHierarchy({}, name=data.name), row, 0)
        audit.record(
            session,
            principal,
            ENTITY,
            model.id,
            "dimension_declared",
            after=out.model_dump(mode="json"),
        )
        return s.DimensionChanged(dimension=out, model_version=model.version)


def import_members(
    db: Database,
    principal: Principal | None,
    model_id: int,
    name: str,
    if_match: str | None,
    data: s.MembersImport,
) -> s.MembersImportReport:
    """Replace the members imported for one dimension of a planning model with a CSV file (all rows or
    none); the model's territories must still cover only members the dimension knows afterwards."""
    with db.transaction() as session:
        model = editable_model(session, model_id, if_match)
        # the members the file builds on: the dimension without this model's earlier import
        base = repo.load_dimensions(session)
        declared = {d.name: d for d in repo.declared_dimensions(session, model.id)}
        if name not in base and name not in declared:
            known = ordered([*base, *declared])
            raise NotFound(
                f"territory model {model.id} has no dimension {name!r}{hint(did_you_mean(name, known))}"
            )
        below = base.get(name, MemberHierarchy({}, name=name))
        geography = name == Dimension.GEOGRAPHY
        rows = csv_import.parse_members(
            data.filename,
            data.members,
            name,
            below,
            movable=countries() if geography else (),
            moves_under=WORLD if geography else None,
        )
        session.execute(
            delete(DimensionMember).where(
                DimensionMember.model_id == model.id, DimensionMember.dimension == name
            )
        )
        session.add_all(
            DimensionMember(model_id=model.id, dimension=name, key=r.key, parent_key=r.parent, name=r.name)
            for r in rows
        )
        touch_model(model)
        session.flush()
        # the territories' coverage must still name known members (a member file may drop some)
        check_defs(session, model, repo.load_defs(session, model.id))
        moved = sum(1 for r in rows if r.key in below)
        report = s.MembersImportReport(
            model_id=model.id, dimension=name, members=len(rows), moved=moved, model_version=model.version
        )
        audit.record(
            session,
            principal,
            ENTITY,
            model.id,
            "members_imported",
            details={**report.model_dump(mode="json"), "file": data.filename},
        )
        return report


def list_members(
    db: Database, principal: Principal | None, model_id: int, name: str, query: s.MemberQuery
) -> s.MemberPage:
    """A dimension's members on the model, by key (``parent``: one member's children; ``q``: a search)."""
    with db.transaction() as session:
        model = find_model(session, model_id)
        dims = repo.load_dimensions(session, model=model)
        hierarchy = _known(dims, name, model.id)
        imported = set(
            session.scalars(
                select(DimensionMember.key).where(
                    DimensionMember.model_id == model.id, DimensionMember.dimension == name
                )
            )
        )
    if query.parent is not None:
        if query.parent not in hierarchy:
            raise NotFound(f"no {name} member {query.parent!r}{hint(hierarchy.suggest(query.parent))}")
        keys: list[str] = list(hierarchy.children(query.parent))
    else:
        keys = sorted(hierarchy)
    if query.q:
        needle = query.q.casefold()
        keys = [k for k in keys if needle in k.casefold() or needle in (hierarchy.label(k) or "").casefold()]
    start = decode_cursor(query.cursor)
    chunk = keys[start : start + query.limit]
    more = start + query.limit < len(keys)
    return s.MemberPage(
        items=[
            s.MemberOut(
                key=k,
                parent=hierarchy.parent(k),
                name=hierarchy.label(k),
                depth=hierarchy.depth(k),
                imported=k in imported,
            )
            for k in chunk
        ],
        next_cursor=encode_cursor(start + query.limit) if more else None,
    )
