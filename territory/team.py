"""Who may sit on a territory's team, and in which role (pure).

A team member is an active user of the brand owner holding, among their own roles, the role they get on
the territory: a territory cannot make someone a channel account manager who is not one.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from territory.errors import did_you_mean, hint


class TeamRole(StrEnum):
    """Roles a user can hold on a territory (values match ``common.principal.Role``)."""

    CHANNEL_ACCOUNT_MANAGER = "channel_account_manager"
    CHANNEL_SALES_MANAGER = "channel_sales_manager"
    CHANNEL_SALES_DIRECTOR = "channel_sales_director"
    SALES_REP = "sales_rep"


#: user key -> the roles the user holds (active internal users only)
UserDirectory = Mapping[str, frozenset[str]]


def team_member_problem(user: str, role: str, users: UserDirectory) -> str | None:
    """Why ``user`` cannot hold ``role`` on a territory; ``None`` when they can.

    >>> team_member_problem("cam-jp", "channel_account_manager", {"cam-jp": frozenset({"channel_account_manager"})})
    >>> team_member_problem("cam-jq", "channel_account_manager", {"cam-jp": frozenset()})
    "unknown internal user 'cam-jq'; did you mean 'cam-jp'?"
    """
    known = [r.value for r in TeamRole]
    if role not in known:
        return f"unknown team role {role!r}{hint(did_you_mean(role, known))} (one of {', '.join(known)})"
    roles = users.get(user)
    if roles is None:
        return f"unknown internal user {user!r}{hint(did_you_mean(user, users.keys()))}"
    if role not in roles:
        held = ", ".join(sorted(roles)) or "no roles"
        return f"user {user!r} does not hold the role {role!r} (holds {held})"
    return None
