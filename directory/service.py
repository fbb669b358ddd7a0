"""Reference-data services: each function owns one transaction, checks who may see what, and writes
one audit row per change. Another organization's record answers exactly like a missing one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import Conflict, FieldProblem, Forbidden, NotFound, ValidationFailed
from common.pagination import Page, decode_cursor, encode_cursor
from common.principal import INTERNAL_ROLES, PARTNER_ROLES, Principal, Role, mint_key, secret_matches
from directory import schemas as s
from directory.catalog import check_product_parent
from directory.enums import OrganizationKind
from directory.models import (
    ApiKey,
    Customer,
    Organization,
    PartnerProgram,
    Product,
    ProgramMembership,
    User,
)

M = TypeVar("M", Organization, PartnerProgram, User, Customer, Product, ApiKey)


# --- shared mechanics ---------------------------------------------------------------------------------


def _page(
    session: Session, stmt: Select[M], model: type[M], query: s.ListQuery
) -> tuple[list[M], str | None]:
    after = decode_cursor(query.cursor)
    if query.q:  # every paged list searches by name
        stmt = stmt.where(model.name.icontains(query.q, autoescape=True))
    rows = list(
        session.scalars(stmt.where(model.id > after).order_by(model.id).limit(query.limit + 1)).unique()
    )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return rows, encode_cursor(rows[-1].id) if more and rows else None


def _commit_unique(session: Session, what: str) -> None:
    """Flush, turning a unique-key race into a 409 instead of a 500."""
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"{what} already exists") from None


def _apply(record: Any, changes: dict[str, Any]) -> None:
    for field, value in changes.items():
        setattr(record, field, value)


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("Only an admin may do this")


# --- partner programs ---------------------------------------------------------------------------------


def program_out(p: PartnerProgram) -> s.ProgramOut:
    return s.ProgramOut.model_validate(p)


def create_program(db: Database, principal: Principal, data: s.ProgramCreate) -> s.ProgramOut:
    with db.transaction() as session:
        if session.scalar(select(PartnerProgram.id).where(PartnerProgram.key == data.key)):
            raise Conflict(f"program {data.key!r} already exists")
        program = PartnerProgram(**data.model_dump())
        session.add(program)
        _commit_unique(session, f"program {data.key!r}")
        out = program_out(program)
        audit.record(
            session, principal, "partner_program", program.id, "created", after=out.model_dump(mode="json")
        )
        return out


def list_programs(db: Database, principal: Principal, query: s.ListQuery) -> Page[s.ProgramOut]:
    with db.transaction() as session:
        stmt = select(PartnerProgram)
        rows, cursor = _page(session, stmt, PartnerProgram, query)
        return Page[s.ProgramOut](items=[program_out(r) for r in rows], next_cursor=cursor)


def get_program(db: Database, principal: Principal, program_id: int) -> s.ProgramOut:
    with db.transaction() as session:
        return program_out(_program(session, program_id))


def _program(session: Session, program_id: int) -> PartnerProgram:
    program = session.get(PartnerProgram, program_id)
    if program is None:
        raise NotFound(f"program {program_id} not found")
    return program


def update_program(
    db: Database, principal: Principal, program_id: int, if_match: str | None, data: s.ProgramUpdate
) -> s.ProgramOut:
    with db.transaction() as session:
        program = _program(session, program_id)
        check_if_match(if_match, program.id, program.version)
        before = program_out(program).model_dump(mode="json")
        _apply(program, data.model_dump(exclude_unset=True))
        session.flush()
        out = program_out(program)
        audit.record(
            session,
            principal,
            "partner_program",
            program.id,
            "updated",
            before=before,
            after=out.model_dump(mode="json"),
        )
        return out


# --- organizations ------------------------------------------------------------------------------------


def organization_out(org: Organization) -> s.OrganizationOut:
    return s.OrganizationOut(
        id=org.id,
        key=org.key,
        name=org.name,
        kind=org.kind,
        partner_type=org.partner_type,
        can_register_leads=org.can_register_leads,
        country=org.country,
        programs=[
            s.MembershipOut(program=m.program.key, tier=m.tier, valid_from=m.valid_from, valid_to=m.valid_to)
            for m in org.memberships
        ],
        active=org.active,
        version=org.version,
        created_at=org.created_at,
        updated_at=org.updated_at,
    )


def _memberships(session: Session, items: Sequence[s.MembershipIn]) -> list[ProgramMembership]:
    keys = [m.program for m in items]
    programs = {p.key: p for p in session.scalars(select(PartnerProgram).where(PartnerProgram.key.in_(keys)))}
    problems = [
        FieldProblem(f"/programs/{i}/program", f"unknown program {m.program!r}")
        for i, m in enumerate(items)
        if m.program not in programs
    ]
    problems += [
        FieldProblem(f"/programs/{i}/program", f"program {m.program!r} listed twice")
        for i, m in enumerate(items)
        if m.program in keys[:i]
    ]
    if problems:
        raise ValidationFailed("Invalid program memberships", problems)
    return [
        ProgramMembership(
            program=programs[m.program], tier=m.tier, valid_from=m.valid_from, valid_to=m.valid_to
        )
        for m in items
    ]


def create_organization(db: Database, principal: Principal, data: s.OrganizationCreate) -> s.OrganizationOut:
    with db.transaction() as session:
        if session.scalar(select(Organization.id).where(Organization.key == data.key)):
            raise Conflict(f"organization {data.key!r} already exists")
        if data.kind == OrganizationKind.BRAND_OWNER and session.scalar(
            select(Organization.id).where(Organization.kind == OrganizationKind.BRAND_OWNER)
        ):
            raise Conflict("there is already a brand owner organization")
        org = Organization(**data.model_dump(exclude={"programs"}))
        org.memberships = _memberships(session, data.programs)
        session.add(org)
        _commit_unique(session, f"organization {data.key!r}")
        out = organization_out(org)
        audit.record(session, principal, "organization", org.id, "created", after=out.model_dump(mode="json"))
        return out


def _organization(session: Session, principal: Principal, org_id: int) -> Organization:
    org = session.get(Organization, org_id)
    if org is None or not principal.can_see_organization(org.id):
        raise NotFound(f"organization {org_id} not found")
    return org


def get_organization(db: Database, principal: Principal, org_id: int) -> s.OrganizationOut:
    with db.transaction() as session:
        return organization_out(_organization(session, principal, org_id))


def list_organizations(db: Database, principal: Principal, query: s.ListQuery) -> Page[s.OrganizationOut]:
    with db.transaction() as session:
        stmt = select(Organization)
        if not principal.internal:
            stmt = stmt.where(Organization.id == principal.organization_id)
        rows, cursor = _page(session, stmt, Organization, query)
        return Page[s.OrganizationOut](items=[organization_out(r) for r in rows], next_cursor=cursor)


def update_organization(
    db: Database, principal: Principal, org_id: int, if_match: str | None, data: s.OrganizationUpdate
) -> s.OrganizationOut:
    with db.transaction() as session:
        org = _organization(session, principal, org_id)
        _require_admin(principal)
        check_if_match(if_match, org.id, org.version)
        before = organization_out(org).model_dump(mode="json")
        changes = data.model_dump(exclude_unset=True, exclude={"programs"})
        if org.kind == OrganizationKind.BRAND_OWNER and (
            changes.get("partner_type") or data.programs or changes.get("active") is False
        ):
            raise ValidationFailed("The brand owner has no partner type or programs and stays active")
        _apply(org, changes)
        if data.programs is not None:
            org.memberships = _memberships(session, data.programs)
            org.updated_at = utcnow()  # membership rows alone would not bump the organization's version
        session.flush()
        out = organization_out(org)
        audit.record(
            session,
            principal,
            "organization",
            org.id,
            "updated",
            before=before,
            after=out.model_dump(mode="json"),
        )
        return out


# --- users and API keys -------------------------------------------------------------------------------


def user_out(user: User) -> s.UserOut:
    return s.UserOut.model_validate(user)


def _user(session: Session, principal: Principal, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not principal.can_see_organization(user.organization_id):
        raise NotFound(f"user {user_id} not found")
    return user


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
        session.add(user)
        _commit_unique(session, "user")
        out = user_out(user)
        audit.record(session, principal, "user", user.id, "created", after=out.model_dump(mode="json"))
        return out


def get_user(db: Database, principal: Principal, user_id: int) -> s.UserOut:
    with db.transaction() as session:
        return user_out(_user(session, principal, user_id))


def list_users(db: Database, principal: Principal, query: s.ListQuery) -> Page[s.UserOut]:
    with db.transaction() as session:
        stmt = select(User)
        if not principal.internal:
            stmt = stmt.where(User.organization_id == principal.organization_id)
        rows, cursor = _page(session, stmt, User, query)
        return Page[s.UserOut](items=[user_out(r) for r in rows], next_cursor=cursor)


def update_user(
    db: Database, principal: Principal, user_id: int, if_match: str | None, data: s.UserUpdate
) -> s.UserOut:
    with db.transaction() as session:
        user = _user(session, principal, user_id)
        if not _may_manage_users_of(principal, user.organization_id):
            raise Forbidden("You may not change users of this organization")
        check_if_match(if_match, user.id, user.version)
        changes = data.model_dump(exclude_unset=True)
        if data.roles is not None:
            _check_user_roles(user.organization, data.roles)
            changes["roles"] = [r.value for r in data.roles]
        if "manager_id" in changes:
            _check_manager(session, user.organization_id, data.manager_id)
        if user.id == principal.user_id and (changes.get("active") is False or "roles" in changes):
            raise Conflict("You may not deactivate yourself or change your own roles")
        before = user_out(user).model_dump(mode="json")
        _apply(user, changes)
        _commit_unique(session, "a user with this e-mail")
        out = user_out(user)
        audit.record(
            session, principal, "user", user.id, "updated", before=before, after=out.model_dump(mode="json")
        )
        return out


def _may_manage_keys_of(principal: Principal, user: User) -> bool:
    return user.id == principal.user_id or _may_manage_users_of(principal, user.organization_id)


def create_api_key(db: Database, principal: Principal, user_id: int, data: s.ApiKeyCreate) -> s.ApiKeyCreated:
    with db.transaction() as session:
        user = _user(session, principal, user_id)
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
        user = _user(session, principal, user_id)
        if not _may_manage_keys_of(principal, user):
            raise Forbidden("You may not see this user's keys")
        keys = session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id))
        return [s.ApiKeyOut.model_validate(k) for k in keys]


def revoke_api_key(db: Database, principal: Principal, key_id: int, if_match: str | None) -> s.ApiKeyOut:
    with db.transaction() as session:
        key = session.get(ApiKey, key_id)
        if key is None or not principal.can_see_organization(key.user.organization_id):
            raise NotFound(f"API key {key_id} not found")
        if not _may_manage_keys_of(principal, key.user):
            raise Forbidden("You may not revoke this key")
        check_if_match(if_match, key.id, key.version)
        if key.revoked_at is not None:
            raise Conflict("This key is already revoked")
        key.revoked_at = utcnow()
        session.flush()
        audit.record(session, principal, "api_key", key.id, "revoked", after={"public_id": key.public_id})
        return s.ApiKeyOut.model_validate(key)


def principal_for_key(db: Database, public_id: str, secret: str) -> Principal | None:
    """Resolve an API key to its principal; None when unknown, revoked, or the user/org is inactive."""

    with db.transaction() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.public_id == public_id))
        if key is None or key.revoked_at is not None or not secret_matches(secret, key.secret_hash):
            return None
        user = key.user
        if not user.active or not user.organization.active:
            return None
        return Principal(
            user_id=user.id,
            organization_id=user.organization_id,
            roles=frozenset(Role(r) for r in user.roles),
            internal=user.organization.kind == OrganizationKind.BRAND_OWNER,
        )


# --- customers and products ---------------------------------------------------------------------------


def _keys_by_id(session: Session, model: type[Customer] | type[Product], ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    # Result.tuples() is deprecated in SQLAlchemy 2.1 (a warning, an error under the test settings).
    rows = session.execute(select(model.id, model.key).where(model.id.in_(ids)))
    return {record_id: key for record_id, key in rows}


def _parent_key(
    session: Session, model: type[Customer] | type[Product], record: Customer | Product
) -> str | None:
    if record.parent_id is None:
        return None
    return session.scalar(select(model.key).where(model.id == record.parent_id))


def customer_out(c: Customer, parent_key: str | None) -> s.CustomerOut:
    return s.CustomerOut(
        id=c.id,
        key=c.key,
        name=c.name,
        parent_key=parent_key,
        country=c.country,
        region=c.region,
        industry=c.industry,
        size=c.size,
        active=c.active,
        version=c.version,
    )


def product_out(p: Product, parent_key: str | None) -> s.ProductOut:
    return s.ProductOut(
        id=p.id,
        key=p.key,
        name=p.name,
        level=p.level,
        parent_key=parent_key,
        active=p.active,
        version=p.version,
    )


def _id_for_key(
    session: Session, model: type[Customer] | type[Product], key: str | None, pointer: str
) -> int | None:
    if key is None:
        return None
    found = session.scalar(select(model.id).where(model.key == key))
    if found is None:
        raise ValidationFailed("Unknown parent", [FieldProblem(pointer, f"no record with key {key!r}")])
    return int(found)


def _would_cycle(
    session: Session, model: type[Customer] | type[Product], record_id: int, parent_id: int | None
) -> bool:
    seen = 0
    while parent_id is not None and seen < 10_000:
        if parent_id == record_id:
            return True
        parent_id = session.scalar(select(model.parent_id).where(model.id == parent_id))
        seen += 1
    return False


def create_customer(db: Database, principal: Principal, data: s.CustomerCreate) -> s.CustomerOut:
    with db.transaction() as session:
        if session.scalar(select(Customer.id).where(Customer.key == data.key)):
            raise Conflict(f"customer {data.key!r} already exists")
        parent_id = _id_for_key(session, Customer, data.parent_key, "/parent_key")
        customer = Customer(**data.model_dump(exclude={"parent_key"}), parent_id=parent_id)
        session.add(customer)
        _commit_unique(session, f"customer {data.key!r}")
        out = customer_out(customer, data.parent_key)
        audit.record(
            session, principal, "customer", customer.id, "created", after=out.model_dump(mode="json")
        )
        return out


def _customer(session: Session, principal: Principal, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None or not principal.internal:
        raise NotFound(f"customer {customer_id} not found")
    return customer


def get_customer(db: Database, principal: Principal, customer_id: int) -> s.CustomerOut:
    with db.transaction() as session:
        c = _customer(session, principal, customer_id)
        return customer_out(c, _parent_key(session, Customer, c))


def list_customers(db: Database, principal: Principal, query: s.ListQuery) -> Page[s.CustomerOut]:
    with db.transaction() as session:
        stmt = select(Customer)
        if not principal.internal:
            stmt = stmt.where(func.false())
        rows, cursor = _page(session, stmt, Customer, query)
        parents = _keys_by_id(session, Customer, {r.parent_id for r in rows if r.parent_id})
        items = [customer_out(r, parents.get(r.parent_id or 0)) for r in rows]
        return Page[s.CustomerOut](items=items, next_cursor=cursor)


def update_customer(
    db: Database, principal: Principal, customer_id: int, if_match: str | None, data: s.CustomerUpdate
) -> s.CustomerOut:
    with db.transaction() as session:
        c = _customer(session, principal, customer_id)
        check_if_match(if_match, c.id, c.version)
        before = customer_out(c, _parent_key(session, Customer, c))
        changes = data.model_dump(exclude_unset=True, exclude={"parent_key"})
        parent_key = before.parent_key
        if "parent_key" in data.model_fields_set:
            parent_id = _id_for_key(session, Customer, data.parent_key, "/parent_key")
            if _would_cycle(session, Customer, c.id, parent_id):
                raise ValidationFailed(
                    "Cycle",
                    [FieldProblem("/parent_key", "this parent would make the account its own ancestor")],
                )
            changes["parent_id"], parent_key = parent_id, data.parent_key
        _apply(c, changes)
        session.flush()
        out = customer_out(c, parent_key)
        audit.record(
            session,
            principal,
            "customer",
            c.id,
            "updated",
            before=before.model_dump(mode="json"),
            after=out.model_dump(mode="json"),
        )
        return out


def create_product(db: Database, principal: Principal, data: s.ProductCreate) -> s.ProductOut:
    with db.transaction() as session:
        if session.scalar(select(Product.id).where(Product.key == data.key)):
            raise Conflict(f"product {data.key!r} already exists")
        parent_id = _id_for_key(session, Product, data.parent_key, "/parent_key")
        parent = session.get(Product, parent_id) if parent_id else None
        problem = check_product_parent(data.level, parent.level if parent else None)
        if problem:
            raise ValidationFailed("Invalid catalog position", [FieldProblem("/parent_key", problem)])
        product = Product(**data.model_dump(exclude={"parent_key"}), parent_id=parent_id)
        session.add(product)
        _commit_unique(session, f"product {data.key!r}")
        out = product_out(product, data.parent_key)
        audit.record(session, principal, "product", product.id, "created", after=out.model_dump(mode="json"))
        return out


def _product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound(f"product {product_id} not found")
    return product


def get_product(db: Database, principal: Principal, product_id: int) -> s.ProductOut:
    with db.transaction() as session:
        p = _product(session, product_id)
        return product_out(p, _parent_key(session, Product, p))


def list_products(db: Database, principal: Principal, query: s.ListQuery) -> Page[s.ProductOut]:
    with db.transaction() as session:
        stmt = select(Product)
        rows, cursor = _page(session, stmt, Product, query)
        parents = _keys_by_id(session, Product, {r.parent_id for r in rows if r.parent_id})
        return Page[s.ProductOut](
            items=[product_out(r, parents.get(r.parent_id or 0)) for r in rows], next_cursor=cursor
        )


def update_product(
    db: Database, principal: Principal, product_id: int, if_match: str | None, data: s.ProductUpdate
) -> s.ProductOut:
    with db.transaction() as session:
        p = _product(session, product_id)
        check_if_match(if_match, p.id, p.version)
        before = product_out(p, _parent_key(session, Product, p))
        changes = data.model_dump(exclude_unset=True, exclude={"parent_key"})
        parent_key = before.parent_key
        if "parent_key" in data.model_fields_set:
            parent_id = _id_for_key(session, Product, data.parent_key, "/parent_key")
            parent = session.get(Product, parent_id) if parent_id else None
            problem = check_product_parent(p.level, parent.level if parent else None)
            if problem:
                raise ValidationFailed("Invalid catalog position", [FieldProblem("/parent_key", problem)])
            changes["parent_id"], parent_key = parent_id, data.parent_key
        _apply(p, changes)
        session.flush()
        out = product_out(p, parent_key)
        audit.record(
            session,
            principal,
            "product",
            p.id,
            "updated",
            before=before.model_dump(mode="json"),
            after=out.model_dump(mode="json"),
        )
        return out
