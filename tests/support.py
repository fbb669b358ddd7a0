"""Test data builders shared by the API and integration tests (through the real services)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from common.database import Database
from common.principal import Role
from directory.enums import OrganizationKind, PartnerType
from directory.models import Organization, PartnerProgram, ProgramMembership, User
from directory.services.users import mint_key_for_user


@dataclass
class Actor:
    """A caller of the API: its user id, organization id and the headers carrying its key."""

    name: str
    user_id: int | None
    organization_id: int | None
    key: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


@dataclass
class World:
    """Two partner organizations (A, B), the brand owner, and one actor per principal of the
    authorization matrix."""

    brand_id: int
    partner_a_id: int
    partner_b_id: int
    actors: dict[str, Actor]

    def __getitem__(self, name: str) -> Actor:
        return self.actors[name]


def build_world(db: Database) -> World:
    with db.transaction() as session:
        brand = Organization(key="brand", name="Brand Owner", kind=OrganizationKind.BRAND_OWNER, country="US")
        program = PartnerProgram(key="resell", name="Reseller Program")
        session.add_all([brand, program])
        session.flush()
        partners = []
        for key in ("partner-a", "partner-b"):
            org = Organization(
                key=key,
                name=key.title(),
                kind=OrganizationKind.PARTNER,
                partner_type=PartnerType.RESELLER,
                can_register_leads=True,
                country="JP",
            )
            org.memberships = [ProgramMembership(program=program, tier="gold", valid_from=date(2026, 1, 1))]
            session.add(org)
            partners.append(org)
        session.flush()
        a, b = partners
        spec = [
            ("admin", brand, [Role.ADMIN]),
            ("cam_1", brand, [Role.CHANNEL_ACCOUNT_MANAGER]),
            ("cam_2", brand, [Role.CHANNEL_ACCOUNT_MANAGER]),
            ("integration", brand, [Role.INTEGRATION]),
            ("partner_admin_a", a, [Role.PARTNER_ADMIN]),
            ("partner_user_a", a, [Role.PARTNER_USER]),
            ("partner_user_b", b, [Role.PARTNER_USER]),
        ]
        actors = {"anonymous": Actor("anonymous", None, None, None)}
        for name, org, roles in spec:
            user = User(
                organization_id=org.id,
                key=name.replace("_", "-"),
                email=f"{name}@{org.key}.example",
                name=name,
                roles=[r.value for r in roles],
            )
            session.add(user)
            session.flush()
            key = mint_key_for_user(session, None, user, "test").key
            actors[name] = Actor(name, user.id, org.id, key)
        return World(brand.id, a.id, b.id, actors)
