"""Services for the command line: the first admin, minting and revoking keys without an API caller."""

from __future__ import annotations

from sqlalchemy import select

from common import audit
from common.clock import utcnow
from common.database import Database
from common.errors import Conflict, NotFound
from common.principal import Role
from directory.enums import OrganizationKind
from directory.models import ApiKey, Organization, User
from directory.services.users import mint_key_for_user


def create_admin(db: Database, *, email: str, name: str, user_key: str, brand_key: str) -> str:
    """Create an admin user in the brand owner organization (created if missing); return a new API key."""
    with db.transaction() as session:
        brand = session.scalar(select(Organization).where(Organization.kind == OrganizationKind.BRAND_OWNER))
        if brand is None:
            brand = Organization(key=brand_key, name=brand_key, kind=OrganizationKind.BRAND_OWNER)
            session.add(brand)
            session.flush()
            audit.record(session, None, "organization", brand.id, "created", after={"key": brand_key})
        if session.scalar(select(User.id).where((User.key == user_key) | (User.email == email))):
            raise Conflict(f"a user with key {user_key!r} or e-mail {email!r} already exists")
        user = User(organization_id=brand.id, key=user_key, email=email, name=name, roles=[Role.ADMIN.value])
        session.add(user)
        session.flush()
        audit.record(session, None, "user", user.id, "created", after={"key": user_key, "roles": ["admin"]})
        return mint_key_for_user(session, None, user, "cli").key


def mint_for(db: Database, user_key: str, name: str) -> str:
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.key == user_key))
        if user is None:
            raise NotFound(f"no user with key {user_key!r}")
        return mint_key_for_user(session, None, user, name).key


def revoke(db: Database, public_id: str) -> None:
    with db.transaction() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.public_id == public_id))
        if key is None:
            raise NotFound(f"no API key {public_id!r}")
        if key.revoked_at is not None:
            raise Conflict(f"API key {public_id!r} is already revoked")
        key.revoked_at = utcnow()
        audit.record(session, None, "api_key", key.id, "revoked", after={"public_id": public_id})
