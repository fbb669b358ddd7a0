"""Who is calling: roles, the principal, API key minting and checking (pure; no Flask).

A key looks like ``prm_<public id>_<secret>``; only a SHA-256 of the secret is stored (keys are 256-bit
random, so a slow hash adds nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    CHANNEL_ACCOUNT_MANAGER = "channel_account_manager"
    CHANNEL_SALES_MANAGER = "channel_sales_manager"
    CHANNEL_SALES_DIRECTOR = "channel_sales_director"
    SALES_REP = "sales_rep"
    PARTNER_ADMIN = "partner_admin"
    PARTNER_USER = "partner_user"
    INTEGRATION = "integration"


INTERNAL_ROLES = frozenset(
    {
        Role.ADMIN,
        Role.CHANNEL_ACCOUNT_MANAGER,
        Role.CHANNEL_SALES_MANAGER,
        Role.CHANNEL_SALES_DIRECTOR,
        Role.SALES_REP,
        Role.INTEGRATION,
    }
)
PARTNER_ROLES = frozenset({Role.PARTNER_ADMIN, Role.PARTNER_USER})
ANY_ROLE = frozenset(Role)
CHANNEL_ROLES = frozenset(
    {Role.CHANNEL_ACCOUNT_MANAGER, Role.CHANNEL_SALES_MANAGER, Role.CHANNEL_SALES_DIRECTOR}
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user with roles, in an organization."""

    user_id: int
    organization_id: int
    roles: frozenset[Role]
    internal: bool  # the user belongs to the brand owner

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    def can_see_organization(self, organization_id: int) -> bool:
        return self.internal or organization_id == self.organization_id


KEY_PREFIX = "prm"


def mint_key() -> tuple[str, str, str]:
    """Return (full key shown once, public id, secret hash to store)."""
    public_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}_{public_id}_{secret}", public_id, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """Return (public id, secret) of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


#: What a page session's proof is derived from the key with (see ``session_proof``).
_SESSION_PROOF_CONTEXT = b"prm page session v1"


def session_proof(secret_hash: str) -> str:
    """What a browser session keeps instead of the API key it was signed in with: derived from the key's
    stored secret hash, so the server can check it against the key as it is now, while the cookie reveals
    nothing that works as a key and cannot be forged without the key (even by someone who knows the
    cookie signing secret).

    >>> len(session_proof(hash_secret("s3cret")))
    64
    >>> session_proof(hash_secret("s3cret")) == session_proof(hash_secret("other"))
    False
    """
    return hmac.new(secret_hash.encode(), _SESSION_PROOF_CONTEXT, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PageSession:
    """A signed-in browser session: the key's public id, its ``session_proof`` and the user's name (for
    display only; rights always come from the key as it is now)."""

    public_id: str
    proof: str
    user_name: str
