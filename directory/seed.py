"""Demo data: a brand owner, partners of several types and programs, a channel management chain, a few
hundred customers in an account hierarchy across countries, a three-level product catalog.

Idempotent: records are matched by key, so running it again changes nothing; API keys are kept in a file
and minted only for users that have no working key there.
"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.database import Database
from common.principal import Role, split_key
from directory.enums import CustomerSize, OrganizationKind, PartnerType, ProductLevel
from directory.models import Customer, Organization, PartnerProgram, Product, ProgramMembership, User
from directory.services.users import mint_key_for_user, principal_for_key

BRAND = ("acme", "Acme Networks", "US")

PROGRAMS = [
    ("resell", "Reseller Program", "Partners who buy and resell Acme products"),
    ("referral", "Referral Program", "Partners who refer opportunities for a fee"),
    ("co-sell", "Co-Sell Program", "Partners who sell jointly with Acme's field team"),
]

# key, name, partner type, country, can register leads, [(program, tier)]
PARTNERS = [
    ("northwind", "Northwind Systems", PartnerType.RESELLER, "JP", True, [("resell", "gold")]),
    ("contoso", "Contoso Integration", PartnerType.SYSTEM_INTEGRATOR, "DE", True, [("co-sell", "platinum")]),
    ("fabrikam", "Fabrikam Referrals", PartnerType.REFERRAL, "US", True, [("referral", "silver")]),
    ("tailspin", "Tailspin Distribution", PartnerType.DISTRIBUTOR, "GB", False, [("resell", "silver")]),
]

# key, name, roles, manager key
STAFF = [
    ("admin", "Ada Admin", [Role.ADMIN], None),
    ("dir-global", "Grace Director", [Role.CHANNEL_SALES_DIRECTOR], None),
    ("mgr-amer", "Alan Manager (Americas)", [Role.CHANNEL_SALES_MANAGER], "dir-global"),
    ("mgr-emea", "Emmy Manager (EMEA)", [Role.CHANNEL_SALES_MANAGER], "dir-global"),
    ("mgr-apac", "Kenji Manager (APAC)", [Role.CHANNEL_SALES_MANAGER], "dir-global"),
    ("cam-us", "Una CAM (US)", [Role.CHANNEL_ACCOUNT_MANAGER], "mgr-amer"),
    ("cam-de", "Dieter CAM (Germany)", [Role.CHANNEL_ACCOUNT_MANAGER], "mgr-emea"),
    ("cam-gb", "Gwen CAM (UK)", [Role.CHANNEL_ACCOUNT_MANAGER], "mgr-emea"),
    ("cam-jp", "Yuki CAM (Japan)", [Role.CHANNEL_ACCOUNT_MANAGER], "mgr-apac"),
    ("cam-jp-security", "Haruto CAM (Japan, security)", [Role.CHANNEL_ACCOUNT_MANAGER], "cam-jp"),
    ("rep-us", "Sam Sales Rep", [Role.SALES_REP], "mgr-amer"),
    ("integration", "CRM integration", [Role.INTEGRATION], None),
]

COUNTRIES = {
    "US": "AMER",
    "CA": "AMER",
    "BR": "AMER",
    "DE": "EMEA",
    "GB": "EMEA",
    "FR": "EMEA",
    "JP": "APAC",
    "AU": "APAC",
    "IN": "APAC",
}
INDUSTRIES = ["manufacturing", "finance", "retail", "healthcare", "public_sector", "telecom"]

CATALOG = {
    "networking": ("Networking", {"switches": ["sw-100", "sw-200", "sw-900"], "routers": ["rt-10", "rt-50"]}),
    "security": ("Security", {"firewalls": ["fw-1", "fw-5"], "identity": ["id-cloud", "id-edge"]}),
    "cloud": ("Cloud", {"compute": ["cc-small", "cc-large"], "storage": ["st-object", "st-block"]}),
}


def _org(session: Session, key: str, **values: object) -> Organization:
    org = session.scalar(select(Organization).where(Organization.key == key))
    if org is None:
        org = Organization(key=key, **values)
        session.add(org)
        session.flush()
    return org


def _user(
    session: Session, org: Organization, key: str, name: str, roles: list[Role], manager: User | None
) -> User:
    user = session.scalar(select(User).where(User.key == key))
    if user is None:
        user = User(
            organization_id=org.id,
            key=key,
            email=f"{key}@{org.key}.example",
            name=name,
            roles=[r.value for r in roles],
            manager_id=manager.id if manager else None,
        )
        session.add(user)
        session.flush()
    return user


def _customers(session: Session) -> int:
    if session.scalar(select(Customer.id).limit(1)) is not None:
        return 0
    rng = random.Random(20261123)
    countries = list(COUNTRIES)
    count = 0
    for i in range(1, 61):
        home = rng.choice(countries)
        parent = Customer(
            key=f"C-{i:04d}",
            name=f"{rng.choice(['Global', 'United', 'Pacific', 'Northern', 'Atlas', 'Summit'])} "
            f"{rng.choice(['Foods', 'Motors', 'Bank', 'Health', 'Telecom', 'Retail', 'Energy'])} {i}",
            country=home,
            region=COUNTRIES[home],
            industry=rng.choice(INDUSTRIES),
            size=CustomerSize.ENTERPRISE,
        )
        session.add(parent)
        session.flush()
        count += 1
        for j in range(1, rng.randint(2, 6)):
            country = rng.choice(countries)
            session.add(
                Customer(
                    key=f"C-{i:04d}-{j}",
                    name=f"{parent.name} {country}",
                    parent_id=parent.id,
                    country=country,
                    region=COUNTRIES[country],
                    industry=parent.industry,
                    size=rng.choice([CustomerSize.MEDIUM, CustomerSize.LARGE]),
                )
            )
            count += 1
    for k in range(1, 61):
        country = rng.choice(countries)
        session.add(
            Customer(
                key=f"C-S{k:03d}",
                name=f"Local Business {k} ({country})",
                country=country,
                region=COUNTRIES[country],
                industry=rng.choice(INDUSTRIES),
                size=CustomerSize.SMALL,
            )
        )
        count += 1
    return count


def _catalog(session: Session) -> None:
    for group_key, (group_name, subgroups) in CATALOG.items():
        group = session.scalar(select(Product).where(Product.key == group_key))
        if group is None:
            group = Product(key=group_key, name=group_name, level=ProductLevel.GROUP)
            session.add(group)
            session.flush()
        for sub_key, items in subgroups.items():
            sub = session.scalar(select(Product).where(Product.key == sub_key))
            if sub is None:
                sub = Product(
                    key=sub_key, name=sub_key.title(), level=ProductLevel.SUBGROUP, parent_id=group.id
                )
                session.add(sub)
                session.flush()
            for item in items:
                if session.scalar(select(Product.id).where(Product.key == item)) is None:
                    session.add(
                        Product(key=item, name=item.upper(), level=ProductLevel.ITEM, parent_id=sub.id)
                    )


def _read_keys(path: Path) -> dict[str, str]:
    keys: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            user, _, key = line.partition(" ")
            if user and key:
                keys[user] = key.strip()
    return keys


def seed(db: Database, keys_file: Path) -> str:
    """Load the demo data; return a one-line summary."""
    with db.transaction() as session:
        brand = _org(session, BRAND[0], name=BRAND[1], kind=OrganizationKind.BRAND_OWNER, country=BRAND[2])
        programs = {}
        for key, name, description in PROGRAMS:
            program = session.scalar(select(PartnerProgram).where(PartnerProgram.key == key))
            if program is None:
                program = PartnerProgram(key=key, name=name, description=description)
                session.add(program)
                session.flush()
            programs[key] = program
        users: dict[str, User] = {}
        for key, name, roles, manager in STAFF:
            users[key] = _user(session, brand, key, name, roles, users.get(manager or ""))
        for key, name, ptype, country, can_register, memberships in PARTNERS:
            org = _org(
                session,
                key,
                name=name,
                kind=OrganizationKind.PARTNER,
                partner_type=ptype,
                country=country,
                can_register_leads=can_register,
            )
            if not org.memberships:
                org.memberships = [
                    ProgramMembership(program=programs[p], tier=tier, valid_from=date(2026, 1, 1))
                    for p, tier in memberships
                ]
            users[f"{key}-admin"] = _user(
                session, org, f"{key}-admin", f"{name} admin", [Role.PARTNER_ADMIN], None
            )
            users[f"{key}-user"] = _user(
                session, org, f"{key}-user", f"{name} seller", [Role.PARTNER_USER], None
            )
        created_customers = _customers(session)
        _catalog(session)

    existing = _read_keys(keys_file)
    working = {}
    for user_key, key in existing.items():
        parts = split_key(key)
        if user_key in users and parts and principal_for_key(db, *parts) is not None:
            working[user_key] = key
    with db.transaction() as session:
        for user_key, user in users.items():
            if user_key not in working:
                working[user_key] = mint_key_for_user(session, None, session.merge(user), "demo").key
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    keys_file.write_text("".join(f"{u} {k}\n" for u, k in sorted(working.items())))
    keys_file.chmod(0o600)
    return (
        f"demo data ready: {len(users)} users, {len(PARTNERS)} partners, "
        f"{created_customers} customers added; API keys in {keys_file}"
    )
