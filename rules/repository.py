"""Stored ruleset versions and the names a rules file may refer to (the database adapter of `rules`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import String, literal_column, null, select
from sqlalchemy.orm import Session

from common.principal import Role
from directory.enums import OrganizationKind
from directory.models import Customer, Organization, PartnerProgram, Product, User
from rules.checks import RuleContext
from rules.models import RulesetStatus, StoredRuleset
from territory.models import ModelStatus, Territory, TerritoryDimension, TerritoryModel
from territory.repository import ACTIVE_LITERAL, StateSelect, state_tag

#: Lead fact -> the table whose keys are its known members.
_MEMBER_TABLES: dict[str, type[Customer] | type[Product] | type[PartnerProgram]] = {
    "customer": Customer,
    "product": Product,
    "program": PartnerProgram,
}


def rule_context(session: Session) -> RuleContext:
    """The names a rules file may refer to, as the database knows them now.

    Users and roles are always checked. Territories are checked against the active territory model once
    territories exist at all; dimension members (customer, product, program, partner) once their table
    has rows, so a fresh install can still load rules written ahead of its reference data.
    """
    roles = {r.value for r in Role}
    for user_roles in session.scalars(select(User.roles)):
        roles.update(str(r) for r in user_roles or ())
    territories: frozenset[str] | None = None
    if session.scalar(select(Territory.id).limit(1)) is not None:
        territories = frozenset(
            session.scalars(
                select(Territory.key)
                .join(TerritoryModel, Territory.model_id == TerritoryModel.id)
                .where(TerritoryModel.status == ModelStatus.ACTIVE)
            )
        )
    members: dict[str, frozenset[str]] = {}
    for fact, table in _MEMBER_TABLES.items():
        keys = frozenset(session.scalars(select(table.key)))
        if keys:
            members[fact] = keys
    partners = frozenset(
        session.scalars(select(Organization.key).where(Organization.kind == OrganizationKind.PARTNER))
    )
    if partners:
        members["partner"] = partners
    declared = frozenset(session.scalars(select(TerritoryDimension.name).distinct()))
    return RuleContext(
        dimensions=declared,
        users=frozenset(session.scalars(select(User.key))),
        territories=territories,
        roles=frozenset(roles),
        members=members,
    )


def get(session: Session, ruleset_id: int, *, for_update: bool = False) -> StoredRuleset | None:
    stmt = select(StoredRuleset).where(StoredRuleset.id == ruleset_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def get_version(session: Session, kind: str, version_hash: str) -> StoredRuleset | None:
    """The stored ruleset of one version (a kind's versions are unique)."""
    stmt = select(StoredRuleset).where(StoredRuleset.kind == kind, StoredRuleset.version_hash == version_hash)
    return session.scalars(stmt).one_or_none()


def by_hash(session: Session, kind: str, version_hash: str) -> StoredRuleset | None:
    stmt = select(StoredRuleset).where(StoredRuleset.kind == kind, StoredRuleset.version_hash == version_hash)
    return session.scalars(stmt).one_or_none()


def active(session: Session, kind: str, *, for_update: bool = False) -> StoredRuleset | None:
    stmt = select(StoredRuleset).where(
        StoredRuleset.kind == kind, StoredRuleset.status == RulesetStatus.ACTIVE
    )
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def active_versions_select(tag: int) -> StateSelect:
    """``active_versions`` as rows of the freshness statement (``territory.repository.state_selects``):
    ``(tag, id, NULL, NULL, "kind version_hash")``; ``versions_of`` reads them back."""
    label = StoredRuleset.kind + literal_column("' '", String) + StoredRuleset.version_hash
    # the status, the tag and the separator written into the statement: see
    # ``territory.repository.ACTIVE_LITERAL`` and ``state_tag``
    return select(state_tag(tag), StoredRuleset.id, null(), null(), label).where(
        StoredRuleset.status == ACTIVE_LITERAL
    )


def versions_of(rows: Iterable[Sequence[Any]], tag: int) -> list[tuple[str, str, int]]:
    """(kind, version_hash, id) of the rows of ``active_versions_select(tag)`` among ``rows``."""
    out = []
    for row in rows:
        if row[0] == tag:
            kind, version_hash = str(row[4]).split(" ", 1)
            out.append((kind, version_hash, int(row[1])))
    return out


def active_versions(session: Session) -> list[tuple[str, str, int]]:
    """(kind, version_hash, id) of every active ruleset."""
    stmt = select(StoredRuleset.kind, StoredRuleset.version_hash, StoredRuleset.id).where(
        StoredRuleset.status == RulesetStatus.ACTIVE
    )
    return [(kind, version_hash, id_) for kind, version_hash, id_ in session.execute(stmt)]


def last_archived(session: Session, kind: str) -> StoredRuleset | None:
    """The archived version of `kind` that was activated most recently (the one before the active one)."""
    stmt = (
        select(StoredRuleset)
        .where(
            StoredRuleset.kind == kind,
            StoredRuleset.status == RulesetStatus.ARCHIVED,
            StoredRuleset.activated_at.is_not(None),
        )
        .order_by(StoredRuleset.activated_at.desc(), StoredRuleset.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def page(
    session: Session, *, kind: str | None, status: str | None, after: int, limit: int
) -> list[StoredRuleset]:
    """Up to `limit` + 1 versions with an id above `after`, oldest first (the extra one says "more")."""
    stmt = select(StoredRuleset).where(StoredRuleset.id > after)
    if kind is not None:
        stmt = stmt.where(StoredRuleset.kind == kind)
    if status is not None:
        stmt = stmt.where(StoredRuleset.status == status)
    return list(session.scalars(stmt.order_by(StoredRuleset.id).limit(limit + 1)))
