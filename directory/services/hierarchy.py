"""Customers and products form trees by ``parent_id``; the API names parents by key."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.errors import FieldProblem, ValidationFailed
from directory.models import Customer, Product

Tree = type[Customer] | type[Product]


def keys_by_id(session: Session, model: Tree, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    # Result.tuples() is deprecated in SQLAlchemy 2.1 (a warning, an error under the test settings).
    rows = session.execute(select(model.id, model.key).where(model.id.in_(ids)))
    return {record_id: key for record_id, key in rows}


def parent_key(session: Session, model: Tree, record: Customer | Product) -> str | None:
    if record.parent_id is None:
        return None
    return session.scalar(select(model.key).where(model.id == record.parent_id))


def id_for_key(session: Session, model: Tree, key: str | None, pointer: str) -> int | None:
    if key is None:
        return None
    found = session.scalar(select(model.id).where(model.key == key))
    if found is None:
        raise ValidationFailed("Unknown parent", [FieldProblem(pointer, f"no record with key {key!r}")])
    return int(found)


def would_cycle(session: Session, model: Tree, record_id: int, parent_id: int | None) -> bool:
    seen = 0
    while parent_id is not None and seen < 10_000:
        if parent_id == record_id:
            return True
        parent_id = session.scalar(select(model.parent_id).where(model.id == parent_id))
        seen += 1
    return False
