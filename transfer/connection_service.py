"""Partner CRM connections over the database: create, read, change (If-Match), and the loaded mapping
profiles of a connection. Secrets are stored encrypted and never returned; profiles are checked when
saved (every error with its file:line:column) and URLs against the partner URL policy."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import Conflict, NotFound, ValidationFailed
from common.principal import Principal
from common.settings import Settings
from directory.models import Organization
from transfer import schemas as s
from transfer.errors import PartnerHostUnresolvable, PartnerUrlRefused
from transfer.mapping import MappingProfile, bundled_profile, load_mapping_profile
from transfer.models import PartnerCrmConnection
from transfer.secret_box import SecretBox, last4
from transfer.signing import secret_key
from transfer.urls import check_partner_url

OWN_NAMES_PROFILE = "brand_owner"


@lru_cache(maxsize=128)
def _profile(source: str, filename: str) -> MappingProfile:
    return load_mapping_profile(source, filename=filename).unwrap()


def outbound_profile(connection: PartnerCrmConnection) -> MappingProfile:
    """The partner's data model: what we send them, and how their answers read."""
    return _profile(connection.profile_source, f"connection-{connection.key}.yaml")


def inbound_profile(connection: PartnerCrmConnection) -> MappingProfile:
    """The model the partner speaks to us in (our own names unless the connection says otherwise)."""
    if connection.inbound_profile_source is None:
        return bundled_profile(OWN_NAMES_PROFILE)
    return _profile(connection.inbound_profile_source, f"connection-{connection.key}-inbound.yaml")


def check_profile(source: str, filename: str) -> MappingProfile:
    """Load a profile or raise `MappingProfileInvalid` (422) listing every error with its position."""
    return load_mapping_profile(source, filename=filename).unwrap()


def _check_url(url: str, settings: Settings) -> None:
    try:
        check_partner_url(url, allow_private=settings.transfer_allow_private_urls)
    except PartnerHostUnresolvable as exc:  # retryable when calling; when saving, the URL is wrong now
        raise PartnerUrlRefused(exc.detail) from None


def _check_secret(name: str, value: str) -> None:
    try:
        secret_key(value)
    except ValidationFailed as exc:
        raise ValidationFailed(f"{name}: {exc.detail}") from None


def connection_out(c: PartnerCrmConnection) -> s.ConnectionOut:
    return s.ConnectionOut(
        id=c.id,
        organization_id=c.organization_id,
        key=c.key,
        name=c.name,
        base_url=c.base_url,
        operations=[s.Operation(o) for o in c.operations],
        signing_secret_last4=c.signing_secret_last4,
        inbound_secret_last4=c.inbound_secret_last4,
        timeout_seconds=c.timeout_seconds,
        profile_name=c.profile_name,
        profile=c.profile_source,
        inbound_profile=c.inbound_profile_source,
        inbound_creates=s.InboundCreates(c.inbound_creates),
        transfer_on_approval=c.transfer_on_approval,
        send_updates_automatically=c.send_updates_automatically,
        active=c.active,
        created_at=c.created_at,
        updated_at=c.updated_at,
        version=c.version,
    )


def _snapshot(c: PartnerCrmConnection) -> dict[str, Any]:
    out = connection_out(c).model_dump(mode="json", exclude={"profile", "inbound_profile"})
    out.pop("created_at", None)
    out.pop("updated_at", None)
    return out


def create_connection(
    db: Database,
    settings: Settings,
    actor: Principal | None,
    data: s.ConnectionIn,
    *,
    filenames: dict[str, str] | None = None,
) -> s.ConnectionOut:
    """Connect a partner's CRM; ``filenames`` names the profile files in error positions."""
    names = {"profile": "profile", "inbound_profile": "inbound_profile", **(filenames or {})}
    _check_url(data.base_url, settings)
    _check_secret("signing_secret", data.signing_secret)
    _check_secret("inbound_secret", data.inbound_secret)
    profile = check_profile(data.profile, names["profile"])
    if data.inbound_profile is not None:
        check_profile(data.inbound_profile, names["inbound_profile"])
    box = SecretBox(settings.secret_key)
    now = utcnow()
    try:
        with db.transaction() as session:
            org = session.get(Organization, data.organization_id)
            if org is None:
                raise NotFound(f"organization {data.organization_id} not found")
            c = PartnerCrmConnection(
                organization_id=org.id,
                key=data.key,
                name=data.name,
                base_url=data.base_url,
                operations=sorted({o.value for o in data.operations}),
                signing_secret_encrypted=box.encrypt(data.signing_secret),
                signing_secret_last4=last4(data.signing_secret),
                inbound_secret_encrypted=box.encrypt(data.inbound_secret),
                inbound_secret_last4=last4(data.inbound_secret),
                timeout_seconds=data.timeout_seconds,
                profile_source=data.profile,
                profile_name=profile.name,
                inbound_profile_source=data.inbound_profile,
                inbound_creates=data.inbound_creates.value,
                transfer_on_approval=data.transfer_on_approval,
                send_updates_automatically=data.send_updates_automatically,
                active=True,
                created_at=now,
                updated_at=now,
            )
            session.add(c)
            session.flush()
            audit.record(
                session, actor, "partner_crm_connection", c.id, "created", after=_snapshot(c), now=now
            )
            return connection_out(c)
    except IntegrityError:
        raise Conflict(
            "the organization already has a CRM connection, or the key is taken", key=data.key
        ) from None


def _get(session: Session, connection_id: int, *, for_update: bool = False) -> PartnerCrmConnection:
    stmt = select(PartnerCrmConnection).where(PartnerCrmConnection.id == connection_id)
    c = session.scalar(stmt.with_for_update() if for_update else stmt)
    if c is None:
        raise NotFound(f"partner CRM connection {connection_id} not found")
    return c


def get_connection(db: Database, connection_id: int) -> s.ConnectionOut:
    with db.transaction() as session:
        return connection_out(_get(session, connection_id))


def list_connections(db: Database) -> s.ConnectionList:
    with db.transaction() as session:
        rows = session.scalars(select(PartnerCrmConnection).order_by(PartnerCrmConnection.id))
        return s.ConnectionList(items=[connection_out(c) for c in rows])


def update_connection(
    db: Database,
    settings: Settings,
    actor: Principal | None,
    connection_id: int,
    if_match: str | None,
    data: s.ConnectionPatch,
    *,
    filenames: dict[str, str] | None = None,
) -> s.ConnectionOut:
    """Change a connection; ``filenames`` names the profile files in error positions (default: the field)."""
    fields = data.model_dump(exclude_unset=True)
    names = {"profile": "profile", "inbound_profile": "inbound_profile", **(filenames or {})}
    if "base_url" in fields:
        _check_url(fields["base_url"], settings)
    for name in ("signing_secret", "inbound_secret"):
        if name in fields:
            _check_secret(name, fields[name])
    profile = check_profile(fields["profile"], names["profile"]) if "profile" in fields else None
    if fields.get("inbound_profile") is not None:
        check_profile(fields["inbound_profile"], names["inbound_profile"])
    box = SecretBox(settings.secret_key)
    now: datetime = utcnow()
    with db.transaction() as session:
        c = _get(session, connection_id, for_update=True)
        check_if_match(if_match, c.id, c.version)
        before = _snapshot(c)
        for name, value in fields.items():
            if name in ("signing_secret", "inbound_secret"):
                setattr(c, f"{name}_encrypted", box.encrypt(value))
                setattr(c, f"{name}_last4", last4(value))
            elif name == "profile":
                assert profile is not None
                c.profile_source, c.profile_name = value, profile.name
            elif name == "inbound_profile":
                c.inbound_profile_source = value
            elif name == "operations":
                c.operations = sorted({str(o) for o in value})
            else:
                setattr(c, name, value)
        c.updated_at = now
        session.flush()
        audit.record(
            session,
            actor,
            "partner_crm_connection",
            c.id,
            "updated",
            before=before,
            after=_snapshot(c),
            details={"changed": sorted(fields)},
            now=now,
        )
        return connection_out(c)


def secrets_of(settings: Settings, c: PartnerCrmConnection) -> tuple[str, str]:
    """(signing secret, inbound secret) of a connection, decrypted."""
    return _decrypted(settings.secret_key, c.signing_secret_encrypted, c.inbound_secret_encrypted)


@lru_cache(maxsize=128)
def _decrypted(secret_key: str, signing: str, inbound: str) -> tuple[str, str]:
    """Decrypted once per stored pair (a new secret is a new token): every call and answer needs them."""
    box = SecretBox(secret_key)
    return box.decrypt(signing), box.decrypt(inbound)
