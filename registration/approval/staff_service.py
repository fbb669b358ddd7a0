"""Who answers for a registration inside the brand owner (read inside the caller's transaction): its own
approvers (every round), and the channel staff of its territories: channel account managers, channel
sales managers and directors on each territory of the lead and on every territory above it.

These decide its expiry and extension requests, and the managers among them hear what its team hears.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    Integer,
    Select,
    String,
    and_,
    any_,
    bindparam,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from common.database import plain_rows
from common.principal import CHANNEL_ROLES, Principal, Role
from directory.models import User
from registration.approval.approval import ADMIN_OVERRIDE
from registration.approval.models import ApprovalRound, ApprovalStep, ApprovalStepApprover
from registration.leads.models import Lead
from territory.models import ModelStatus, Territory, TerritoryMember, TerritoryModel

#: Territory roles of a manager of the territory's CAMs (told what the lead's team is told).
MANAGER_ROLES = frozenset({Role.CHANNEL_SALES_MANAGER.value, Role.CHANNEL_SALES_DIRECTOR.value})
_CHANNEL = frozenset(r.value for r in CHANNEL_ROLES)
#: Territories walked up from one of the lead's, at most (a tree is far shallower; guards a bad model).
MAX_DEPTH = 64


class StaffUser(Protocol):
    """A user as staff lists and mail need one: a directory user, or a `UserRow`."""

    @property
    def id(self) -> int: ...

    @property
    def key(self) -> str: ...

    @property
    def email(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def active(self) -> bool: ...


class UserRow(NamedTuple):
    """A user read as a plain row (`channel_roles_and_users`), with what mail and staff lists use."""

    id: int
    key: str
    email: str
    name: str
    active: bool


@dataclass(frozen=True)
class TerritoryStaff:
    """A channel role held on one of the lead's territories or on a territory above it."""

    user: StaffUser
    role: str
    territory: str


def approver_ids(session: Session, lead: Lead) -> set[int]:
    """Users named approvers of any of the lead's approval rounds (an admin's override is no approver)."""
    stmt = (
        select(ApprovalStepApprover.user_id)
        .join(ApprovalStep, ApprovalStep.id == ApprovalStepApprover.step_id)
        .join(ApprovalRound, ApprovalRound.id == ApprovalStep.round_id)
        .where(ApprovalRound.lead_id == lead.id, ApprovalStepApprover.role != ADMIN_OVERRIDE)
    )
    return set(session.scalars(stmt))


def _active_model_id(session: Session) -> int | None:
    return session.scalar(select(TerritoryModel.id).where(TerritoryModel.status == ModelStatus.ACTIVE))


@cache
def _channel_roles_up_statement() -> Select[Any]:
    """The recursive query of `_channel_roles_up_from`, built once (``model_id`` and ``key`` are its
    parameters): building it costs more than running it."""
    model_id, key = bindparam("model_id", type_=Integer()), bindparam("key", type_=String())
    up = (
        select(Territory.key, Territory.parent_key, literal(0).label("depth"))
        .where(Territory.model_id == model_id, Territory.key == key)
        .cte("up", recursive=True)
    )
    parent = aliased(Territory)
    up = up.union_all(
        select(parent.key, parent.parent_key, up.c.depth + 1).where(
            parent.model_id == model_id, parent.key == up.c.parent_key, up.c.depth < MAX_DEPTH - 1
        )
    )
    return (
        select(TerritoryMember.user_key, TerritoryMember.role, up.c.key)
        .join(Territory, and_(Territory.model_id == model_id, Territory.key == up.c.key))
        .join(TerritoryMember, TerritoryMember.territory_id == Territory.id)
        .where(TerritoryMember.role.in_(sorted(_CHANNEL)))
        .order_by(up.c.depth, TerritoryMember.id)
    )


def _one_of(column: Any, name: str, item: Any, dialect: str, value: Any = None) -> Any:
    """``column`` is one of the list parameter ``name`` (of ``item``s; ``value``: its value, bound in
    the statement): on PostgreSQL ``= ANY`` of one array parameter, so the statement's text is the same
    whatever the lists' lengths and `plain_rows` can run it as the driver does; elsewhere an expanding ``IN``."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, value, type_=postgresql.ARRAY(item)))
    return column.in_(bindparam(name, value, expanding=True))


@cache
def _staff_and_users_statement(dialect: str) -> Select[Any]:
    """The statement of `channel_roles_and_users`, built once per database (``model_id``, ``territories``,
    ``ids`` and ``keys`` are its parameters): the recursive walk of `_channel_roles_up_statement` from
    every territory at once (each row says which one it walked up from), each role with its user (a key
    no user has gives a role row without one), then every user ``ids`` and ``keys`` name, without a
    role."""
    model_id = bindparam("model_id", type_=Integer())
    up = (
        select(
            Territory.key.label("origin"),
            Territory.key,
            Territory.parent_key,
            literal(0).label("depth"),
        )
        .where(Territory.model_id == model_id, _one_of(Territory.key, "territories", String(), dialect))
        .cte("up", recursive=True)
    )
    parent = aliased(Territory)
    up = up.union_all(
        select(up.c.origin, parent.key, parent.parent_key, up.c.depth + 1).where(
            parent.model_id == model_id, parent.key == up.c.parent_key, up.c.depth < MAX_DEPTH - 1
        )
    )
    roles = (
        select(
            User.id.label("user_id"),
            TerritoryMember.user_key,
            TerritoryMember.role,
            up.c.key.label("territory"),
            up.c.origin,
            up.c.depth,
            TerritoryMember.id.label("member_id"),
        )
        .select_from(up)
        .join(Territory, and_(Territory.model_id == model_id, Territory.key == up.c.key))
        .join(TerritoryMember, TerritoryMember.territory_id == Territory.id)
        .outerjoin(User, User.key == TerritoryMember.user_key)
        .where(_one_of(TerritoryMember.role, "channel_roles", String(), dialect, sorted(_CHANNEL)))
    )
    named = select(
        User.id,
        null().label("user_key"),
        null().label("role"),
        null().label("territory"),
        null().label("origin"),
        null().label("depth"),
        null().label("member_id"),
    ).where(
        or_(
            _one_of(User.id, "ids", Integer(), dialect),
            _one_of(User.key, "keys", String(), dialect),
        )
    )
    rows = union_all(roles, named).subquery("staff")
    return (
        select(
            User.id,
            User.key,
            User.email,
            User.name,
            User.active,
            rows.c.user_key,
            rows.c.role,
            rows.c.territory,
            rows.c.origin,
            rows.c.depth,
            rows.c.member_id,
        )
        .select_from(rows)
        .outerjoin(User, User.id == rows.c.user_id)
    )


def channel_roles_and_users(
    session: Session,
    territories: Sequence[tuple[int | None, str]],
    keys: Iterable[str],
    ids: Iterable[int],
) -> tuple[list[tuple[str, str, str]], list[UserRow]] | None:
    """`channel_roles_on` and every user the roles, ``keys`` and ``ids`` name, by one statement, when the
    territories are of one territory model given by its id (None: they are not; read them apart). The
    users are plain rows (read on the session's connection: directory objects for them cost a third of
    the statement; on PostgreSQL as the driver reads them, `plain_rows`)."""
    model_ids = {model_id for model_id, _ in territories}
    if len(model_ids) != 1 or None in model_ids:
        return None
    order: dict[str, int] = {}
    for key in (key for _, key in territories):
        order.setdefault(key, len(order))
    if len(order) != len(territories):  # a territory named twice: its roles would come once
        return None
    params = {
        "model_id": next(iter(model_ids)),
        "territories": list(order),
        "ids": sorted(ids),
        "keys": sorted(keys),
    }
    found: list[tuple[tuple[int, int, int], tuple[str, str, str]]] = []
    users: dict[int, UserRow] = {}
    connection = session.connection()
    rows: Sequence[Any] = plain_rows(connection, _staff_and_users_statement(connection.dialect.name), params)
    for user_id, key, email, name, active, user_key, role, territory, origin, depth, member_id in rows:
        if user_id is not None:
            users[user_id] = UserRow(user_id, key, email, name, bool(active))
        if role is not None:
            found.append(((order[origin], depth, member_id), (user_key, role, territory)))
    found.sort(key=lambda f: f[0])
    return [role for _, role in found], list(users.values())


def _channel_roles_up_from(session: Session, model_id: int, key: str) -> list[tuple[str, str, str]]:
    """(user key, role, territory) of the channel roles on a territory and every one above it, nearest
    first: one statement walking up the tree (a recursive query), not one per level."""
    rows = session.execute(_channel_roles_up_statement(), {"model_id": model_id, "key": key})
    return [(user_key, role, territory) for user_key, role, territory in rows]


def territory_channel_roles(session: Session, lead: Lead) -> list[tuple[str, str, str]]:
    """(user key, role, territory) of the channel roles on the lead's territories and above them,
    nearest first (the users not yet looked up: see `staff_of`)."""
    return channel_roles_on(session, [(t.territory_model_id, t.territory_key) for t in lead.territory_team])


def channel_roles_on(
    session: Session, territories: Sequence[tuple[int | None, str]]
) -> list[tuple[str, str, str]]:
    """`territory_channel_roles` of a territory team given as (territory model id, territory key), the
    model None meaning the active one."""
    found: list[tuple[str, str, str]] = []
    default_model: int | None = None
    for territory_model_id, territory_key in territories:
        model_id = territory_model_id
        if model_id is None:
            default_model = default_model or _active_model_id(session)
            model_id = default_model
        if model_id is not None:
            found += _channel_roles_up_from(session, model_id, territory_key)
    return found


def territory_staff(session: Session, lead: Lead) -> list[TerritoryStaff]:
    """Channel staff on the lead's territories and above them, nearest first, each (user, role) once."""
    found = territory_channel_roles(session, lead)
    keys = {k for k, _, _ in found}
    users = (
        {u.key: u for u in session.scalars(select(User).where(User.key.in_(keys), User.active.is_(True)))}
        if keys
        else {}
    )
    return staff_of(found, users)


def staff_of(found: list[tuple[str, str, str]], users: Mapping[str, StaffUser]) -> list[TerritoryStaff]:
    """`territory_staff` from the channel roles found and the active users by key (a key missing from
    ``users`` is no active user)."""
    out: dict[tuple[int, str], TerritoryStaff] = {}
    for user_key, role, territory_key in found:
        user = users.get(user_key)
        if user is not None and (user.id, role) not in out:
            out[(user.id, role)] = TerritoryStaff(user, role, territory_key)
    return list(out.values())


def answers_for(session: Session, principal: Principal, lead: Lead) -> bool:
    """Whether the caller may decide on the registration's protection (expiry, extensions): an admin, one
    of its approvers, or channel staff of its territories or above them."""
    if principal.is_admin:
        return True
    if not principal.internal:
        return False
    if principal.user_id in approver_ids(session, lead):
        return True
    return any(s.user.id == principal.user_id for s in territory_staff(session, lead))
