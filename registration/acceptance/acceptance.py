"""Accepting a lead (pure): who owns it afterwards, who its primary partner is, and which sales-team
members and territories leave (DESIGN.md 1.1 "accept", after Oracle's "What's the difference between an
accepted and a registered lead").

- The acting user becomes the owner; a previous owner stays on the sales team as a member.
- An accepted lead cannot be accepted again (409).
- When a partner user accepts (the lead was created by an internal user or a campaign: a partner's own
  leads are accepted when created), its organization becomes the primary partner and the lead's owning
  organization; resources of other partner organizations leave the sales team and territories bound to
  other partners leave the territory team. Internal resources and unbound territories stay.

>>> plan = plan_acceptance(
...     accepted=False,
...     owner_user_id=1,
...     members=[Member(1, "lead_owner", 100, False), Member(7, "partner_rep", 300, True)],
...     territories=[Territory("JP", 1, None), Territory("JP-CONTOSO", 1, 300)],
...     actor=Actor(5, 200, True),
... )
>>> plan.owner_user_id, plan.primary_partner_id, [m.user_id for m in plan.removed_members]
(5, 200, [7])
>>> [t.key for t in plan.removed_territories], [m.user_id for m in plan.former_owners]
(['JP-CONTOSO'], [1])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from common.errors import Conflict

LEAD_OWNER = "lead_owner"  # the sales-team role of the owner (as registration.leads.service names it)
TEAM_MEMBER = "sales_team_member"  # what a previous owner becomes


class AlreadyAccepted(Conflict):
    """An accepted lead cannot be accepted again."""

    code, title = "lead-already-accepted", "Lead already accepted"


@dataclass(frozen=True)
class Member:
    """A sales-team row: the user, its role, the user's organization and whether that is a partner."""

    user_id: int
    role: str
    organization_id: int | None
    partner: bool


@dataclass(frozen=True)
class Territory:
    """A territory-team row and the partner organization the territory is bound to (None: unbound)."""

    key: str
    model_id: int | None
    partner_organization_id: int | None


@dataclass(frozen=True)
class Actor:
    user_id: int
    organization_id: int
    partner: bool


@dataclass(frozen=True)
class AcceptancePlan:
    owner_user_id: int
    previous_owner_id: int | None
    primary_partner_id: int | None  # None: unchanged (an internal user accepted)
    former_owners: tuple[Member, ...]  # owner rows of the previous owner: they stay, as members
    removed_members: tuple[Member, ...]
    removed_territories: tuple[Territory, ...]


def plan_acceptance(
    *,
    accepted: bool,
    owner_user_id: int | None,
    members: Sequence[Member],
    territories: Sequence[Territory],
    actor: Actor,
) -> AcceptancePlan:
    """What accepting the lead changes; raises ``AlreadyAccepted`` for an accepted lead."""
    if accepted:
        raise AlreadyAccepted("The lead is already accepted; an accepted lead cannot be accepted again")
    previous = owner_user_id if owner_user_id != actor.user_id else None
    removed: list[Member] = []
    removed_territories: list[Territory] = []
    if actor.partner:
        removed = [m for m in members if m.partner and m.organization_id != actor.organization_id]
        removed_territories = [
            t
            for t in territories
            if t.partner_organization_id is not None and t.partner_organization_id != actor.organization_id
        ]
    former = tuple(m for m in members if m.user_id == previous and m.role == LEAD_OWNER and m not in removed)
    return AcceptancePlan(
        owner_user_id=actor.user_id,
        previous_owner_id=previous,
        primary_partner_id=actor.organization_id if actor.partner else None,
        former_owners=former,
        removed_members=tuple(removed),
        removed_territories=tuple(removed_territories),
    )
