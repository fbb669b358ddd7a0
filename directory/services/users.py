"""Users (people and integrations), their roles and managers, their API keys, and the principal a key
signs in as."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.database import Database
from common.errors import Conflict, FieldProblem, Forbidden, ValidationFailed
from common.pagination import Page
from common.principal import (
    INTERNAL_ROLES,
    PARTNER_ROLES,
    PageSession,
    Principal,
    Role,
    hash_secret,
    mint_key,
    session_proof,
    split_key,
)
from directory import schemas as s
from directory.enums import OrganizationKind
from directory.models import ApiKey, Organization, User
from directory.services.records import Entity, page


def user_out(user: User) -> s.UserOut:
    return s.UserOut.model_validate(user)


def _out(session: Session, user: User) -> s.UserOut:
    return user_out(user)


def _visible(principal: Principal, user: User) -> bool:
    return principal.can_see_organization(user.organization_id)


def _key_out(session: Session, key: ApiKey) -> s.ApiKeyOut:
    return s.ApiKeyOut.model_validate(key)


def _key_visible(principal: Principal, key: ApiKey) -> bool:
    return principal.can_see_organization(key.user.organization_id)


USERS = Entity(User, "user", "user", _out, _visible)
API_KEYS = Entity(ApiKey, "API key", "api_key", _key_out, _key_visible)


def _check_user_roles(org: Organization, roles: Sequence[Role], pointer: str = "/roles") -> None:
    allowed = INTERNAL_ROLES if org.kind == OrganizationKind.BRAND_OWNER else PARTNER_ROLES
    wrong = [r for r in roles if r not in allowed]
    if wrong:
        raise ValidationFailed(
            "Roles do not fit the organization",
            [
                FieldProblem(pointer, f"role {r.value!r} is not for {OrganizationKind(org.kind).value} users")
                for r in wrong
            ],
        )


def _check_manager(session: Session, user_org_id: int, manager_id: int | None) -> None:
    if manager_id is None:
        return
    manager = session.get(User, manager_id)
    if manager is None or manager.organization_id != user_org_id:
        raise ValidationFailed(
            "Unknown manager", [FieldProblem("/manager_id", f"no user {manager_id} in this organization")]
        )


def _may_manage_users_of(principal: Principal, org_id: int) -> bool:
    return principal.is_admin or (principal.has(Role.PARTNER_ADMIN) and principal.organization_id == org_id)


def create_user(db: Database, principal: Principal, data: s.UserCreate) -> s.UserOut:
    with db.transaction() as session:
        org_id = data.organization_id or principal.organization_id
        org = session.get(Organization, org_id)
        if org is None or not principal.can_see_organization(org_id):
            raise ValidationFailed(
                "Unknown organization", [FieldProblem("/organization_id", f"no organization {org_id}")]
            )
        if not _may_manage_users_of(principal, org_id):
            raise Forbidden("You may not create users in this organization")
        _check_user_roles(org, data.roles)
        _check_manager(session, org_id, data.manager_id)
        if session.scalar(select(User.id).where((User.key == data.key) | (User.email == data.email))):
            raise Conflict("a user with this key or e-mail already exists")
        user = User(
            **data.model_dump(exclude={"organization_id", "roles"}),
            organization_id=org_id,
            roles=[r.value for r in data.roles],
        )
        return USERS.create(session, principal, user, "user")


def get_user(db: Database, principal: Principal, user_id: int) -> s.UserOut:
    with db.transaction() as session:
        return user_out(USERS.get(session, principal, user_id))


def list_users(db: Database, principal: Principal, query: s.ListQuery) -> Page[s.UserOut]:
    with db.transaction() as session:
        stmt = select(User)
        if not principal.internal:
            stmt = stmt.where(User.organization_id == principal.organization_id)
        rows, cursor = page(session, stmt, User, query)
        return Page[s.UserOut](items=[user_out(r) for r in rows], next_cursor=cursor)


def update_user(
    db: Database, principal: Principal, user_id: int, if_match: str | None, data: s.UserUpdate
) -> s.UserOut:
    def may_change(user: User) -> None:
        if not _may_manage_users_of(principal, user.organization_id):
            raise Forbidden("You may not change users of this organization")

    with db.transaction() as session:
        user = USERS.get_for_update(session, principal, user_id, if_match, may_change=may_change)
        changes = data.model_dump(exclude_unset=True)
        if data.roles is not None:
            _check_user_roles(user.organization, data.roles)
            changes["roles"] = [r.value for r in data.roles]
        if "manager_id" in changes:
            _check_manager(session, user.organization_id, data.manager_id)
        if user.id == principal.user_id and (changes.get("active") is False or "roles" in changes):
            raise Conflict("You may not deactivate yourself or change your own roles")
        return USERS.update(session, principal, user, changes, unique_what="a user with this e-mail")


def _may_manage_keys_of(principal: Principal, user: User) -> bool:
    return user.id == principal.user_id or _may_manage_users_of(principal, user.organization_id)


def create_api_key(db: Database, principal: Principal, user_id: int, data: s.ApiKeyCreate) -> s.ApiKeyCreated:
    with db.transaction() as session:
        user = USERS.get(session, principal, user_id)
        if not _may_manage_keys_of(principal, user):
            raise Forbidden("You may not mint keys for this user")
        return mint_key_for_user(session, principal, user, data.name)


def mint_key_for_user(session: Session, actor: Principal | None, user: User, name: str) -> s.ApiKeyCreated:
    full, public_id, secret_hash = mint_key()
    key = ApiKey(user_id=user.id, public_id=public_id, secret_hash=secret_hash, name=name)
    session.add(key)
    session.flush()
    audit.record(
        session,
        actor,
        "api_key",
        key.id,
        "created",
        after={"user_id": user.id, "public_id": public_id, "name": name},
    )
    return s.ApiKeyCreated(**s.ApiKeyOut.model_validate(key).model_dump(), key=full)


def list_api_keys(db: Database, principal: Principal, user_id: int) -> list[s.ApiKeyOut]:
    with db.transaction() as session:
        user = USERS.get(session, principal, user_id)
        if not _may_manage_keys_of(principal, user):
            raise Forbidden("You may not see this user's keys")
        keys = session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id))
        return [s.ApiKeyOut.model_validate(k) for k in keys]


def revoke_api_key(db: Database, principal: Principal, key_id: int, if_match: str | None) -> s.ApiKeyOut:
    def may_change(key: ApiKey) -> None:
        if not _may_manage_keys_of(principal, key.user):
            raise Forbidden("You may not revoke this key")

    with db.transaction() as session:
        key = API_KEYS.get_for_update(session, principal, key_id, if_match, may_change=may_change)
        if key.revoked_at is not None:
            raise Conflict("This key is already revoked")
        key.revoked_at = utcnow()
        session.flush()
        audit.record(session, principal, "api_key", key.id, "revoked", after={"public_id": key.public_id})
        return s.ApiKeyOut.model_validate(key)


#: How long a verified key is trusted without asking the database again. A key revoked, or a user or
#: organization deactivated or given other roles, stops working at once in the process that made the
#: change and within this many seconds in every other.
KEY_CACHE_SECONDS = 5.0
_KEY_CACHE_MAX = 10_000
_verified: dict[tuple[str, str, str], tuple[float, Principal]] = {}
_verified_lock = threading.Lock()
#: Bumped by every forget, so a verification read before a change is not cached after it.
_generation = [0]


def forget_verified_keys() -> None:
    """Drop every cached key verification (the next request of each key asks the database)."""
    with _verified_lock:
        _verified.clear()
        _generation[0] += 1


@event.listens_for(Session, "after_flush")
def _note_change(session: Session, _context: Any) -> None:
    """A change of any key, user or organization written in this process ends the cached verifications
    when it commits (a verification read in between saw the old state: the generation drops it)."""
    for record in (*session.new, *session.dirty, *session.deleted):
        if isinstance(record, ApiKey | User | Organization):
            session.info["prm.keys_changed"] = True
            return


@event.listens_for(Session, "after_commit")
def _forget_on_commit(session: Session) -> None:
    if session.info.pop("prm.keys_changed", False):
        forget_verified_keys()


def principal_for_key(db: Database, public_id: str, secret: str) -> Principal | None:
    """Resolve an API key to its principal; None when unknown, revoked, or the user/org is inactive.

    One statement; a verified key is remembered for ``KEY_CACHE_SECONDS`` (keyed by the secret's hash,
    so only the holder of the key hits the cache). Refusals are not cached: a key minted a moment ago
    works at once.
    """
    digest = hash_secret(secret)
    cache_key = (db.url, public_id, digest)
    now = time.monotonic()
    hit = _verified.get(cache_key)
    if hit is not None and hit[0] > now:
        return hit[1]
    generation = _generation[0]
    found = _key_principal(db, public_id, lambda stored: hmac.compare_digest(digest, stored))
    if found is None:
        return None
    principal = found[0]
    with _verified_lock:
        if generation == _generation[0]:
            if len(_verified) >= _KEY_CACHE_MAX:
                _verified.clear()
            _verified[cache_key] = (now + KEY_CACHE_SECONDS, principal)
    return principal


def sign_in_with_key(db: Database, key: str) -> tuple[Principal, PageSession] | None:
    """Check an API key a person pasted into the sign-in page; return its principal and what the page
    session keeps instead of the key (None when the key is malformed, unknown, revoked or inactive)."""
    parts = split_key(key.strip())
    if parts is None:
        return None
    public_id, secret = parts
    digest = hash_secret(secret)
    found = _key_principal(db, public_id, lambda stored: hmac.compare_digest(digest, stored))
    if found is None:
        return None
    principal, name = found
    return principal, PageSession(public_id, session_proof(digest), name)


def principal_for_session(db: Database, public_id: str, proof: str) -> Principal | None:
    """The principal of a page session (see ``sign_in_with_key``), checked against the key as it is now:
    a revoked key, an inactive user or organization ends every session signed in with it. Not cached."""
    found = _key_principal(db, public_id, lambda stored: hmac.compare_digest(session_proof(stored), proof))
    return None if found is None else found[0]


def _key_principal(
    db: Database, public_id: str, matches: Callable[[str], bool]
) -> tuple[Principal, str] | None:
    """The principal and user name of a live key whose stored secret hash ``matches`` (one statement)."""
    with db.read() as session:
        row = session.execute(
            select(
                ApiKey.secret_hash,
                ApiKey.revoked_at,
                User.id,
                User.roles,
                User.active,
                User.name,
                Organization,
            )
            .join(User, User.id == ApiKey.user_id)
            .join(Organization, Organization.id == User.organization_id)
            .where(ApiKey.public_id == public_id)
        ).first()
        if row is None:
            return None
        stored_hash, revoked_at, user_id, roles, user_active, user_name, org = row
        if revoked_at is not None or not matches(stored_hash):
            return None
        if not user_active or not org.active:
            return None
        principal = Principal(
            user_id=user_id,
            organization_id=org.id,
            roles=frozenset(Role(r) for r in roles),
            internal=org.kind == OrganizationKind.BRAND_OWNER,
        )
        return principal, user_name
