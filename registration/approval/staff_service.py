"""Who answers for a registration inside the brand owner (read inside the caller's transaction): its own
approvers (every round), and the channel staff of its territories: channel account managers, channel
sales managers and directors on each territory of the lead and on every territory above it.

These decide its expiry and extension requests, and the managers among them hear what its team hears.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.principal import CHANNEL_ROLES, Principal, Role
from directory.models import User
from registration.approval.approval import ADMIN_OVERRIDE
from registration.approval.models import ApprovalRound, ApprovalStep, ApprovalStepApprover
from registration.leads.models import Lead
from territory.models import ModelStatus, Territory, TerritoryModel

#: Territory roles of a manager of the territory's CAMs (told what the lead's team is told).
MANAGER_ROLES = frozenset({Role.CHANNEL_SALES_MANAGER.value, Role.CHANNEL_SALES_DIRECTOR.value})
_CHANNEL = frozenset(r.value for r in CHANNEL_ROLES)
#: Territories walked up from one of the lead's, at most (a tree is far shallower; guards a bad model).
MAX_DEPTH = 64


@dataclass(frozen=True)
class TerritoryStaff:
    """A channel role held on one of the lead's territories or on a territory above it."""

    user: User
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


def territory_staff(session: Session, lead: Lead) -> list[TerritoryStaff]:
    """Channel staff on the lead's territories and above them, nearest first, each (user, role) once."""
    found: list[tuple[str, str, str]] = []
    default_model: int | None = None
    for lt in lead.territory_team:
        model_id = lt.territory_model_id
        if model_id is None:
            default_model = default_model or _active_model_id(session)
            model_id = default_model
        key: str | None = lt.territory_key
        for _ in range(MAX_DEPTH):
            if key is None or model_id is None:
                break
            territory = session.scalar(
                select(Territory).where(Territory.model_id == model_id, Territory.key == key)
            )
            if territory is None:
                break
            found += [(m.user_key, m.role, key) for m in territory.members if m.role in _CHANNEL]
            key = territory.parent_key
    keys = {k for k, _, _ in found}
    users = (
        {u.key: u for u in session.scalars(select(User).where(User.key.in_(keys), User.active.is_(True)))}
        if keys
        else {}
    )
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
