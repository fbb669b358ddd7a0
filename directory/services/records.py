"""What every directory entity shares: look a record up, create it, update it under its ETag, page
through a list; each change writes one audit row with the record as the API shows it before and after."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import audit
from common.concurrency import check_if_match
from common.errors import Conflict, Forbidden, NotFound
from common.pagination import decode_cursor, encode_cursor
from common.principal import Principal
from directory import schemas as s
from directory.models import ApiKey, Customer, Organization, PartnerProgram, Product, User

M = TypeVar("M", Organization, PartnerProgram, User, Customer, Product, ApiKey)
Out = TypeVar("Out", bound=BaseModel)


def _seen_by_all(principal: Principal, record: Any) -> bool:
    return True


def _nothing(record: Any) -> None:
    return None


@dataclass(frozen=True)
class Entity(Generic[M, Out]):
    """One kind of directory record: its model, its name in messages and in the audit log, how the API
    shows it, and who may see it (a record the principal may not see answers like a missing one)."""

    model: type[M]
    noun: str
    audit_type: str
    out: Callable[[Session, M], Out]
    visible: Callable[[Principal, M], bool] = _seen_by_all

    def get(self, session: Session, principal: Principal, record_id: int) -> M:
        record = session.get(self.model, record_id)
        if record is None or not self.visible(principal, record):
            raise NotFound(f"{self.noun} {record_id} not found")
        return record

    def get_for_update(
        self,
        session: Session,
        principal: Principal,
        record_id: int,
        if_match: str | None,
        *,
        may_change: Callable[[M], None] = _nothing,
    ) -> M:
        """The record to change: 404 when unseen, then ``may_change`` (raises 403), then the ETag (412/428)."""
        record = self.get(session, principal, record_id)
        may_change(record)
        check_if_match(if_match, record.id, record.version)
        return record

    def create(self, session: Session, principal: Principal, record: M, what: str) -> Out:
        """Add a new record (a unique-key race is a 409 about ``what``) and audit it."""
        session.add(record)
        flush_unique(session, what)
        out = self.out(session, record)
        audit.record(
            session, principal, self.audit_type, record.id, "created", after=out.model_dump(mode="json")
        )
        return out

    def update(
        self,
        session: Session,
        principal: Principal,
        record: M,
        changes: dict[str, Any],
        *,
        unique_what: str | None = None,
        apply: Callable[[M], None] = _nothing,
    ) -> Out:
        """Apply validated changes and audit the record before and after.

        ``apply`` makes the changes a field assignment cannot (rows of a child collection);
        ``unique_what`` names what a unique-key clash would duplicate (a 409) when a change can clash.
        """
        before = self.out(session, record).model_dump(mode="json")
        for field, value in changes.items():
            setattr(record, field, value)
        apply(record)
        if unique_what is None:
            session.flush()
        else:
            flush_unique(session, unique_what)
        out = self.out(session, record)
        audit.record(
            session,
            principal,
            self.audit_type,
            record.id,
            "updated",
            before=before,
            after=out.model_dump(mode="json"),
        )
        return out


def page(session: Session, stmt: Select[M], model: type[M], query: s.ListQuery) -> tuple[list[M], str | None]:
    """One page of ``stmt`` in id order (searching names by ``query.q``) and the cursor of the next."""
    after = decode_cursor(query.cursor)
    if query.q:  # every paged list searches by name
        stmt = stmt.where(model.name.icontains(query.q, autoescape=True))
    rows = list(
        session.scalars(stmt.where(model.id > after).order_by(model.id).limit(query.limit + 1)).unique()
    )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return rows, encode_cursor(rows[-1].id) if more and rows else None


def flush_unique(session: Session, what: str) -> None:
    """Flush, turning a unique-key race into a 409 instead of a 500."""
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"{what} already exists") from None


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("Only an admin may do this")
