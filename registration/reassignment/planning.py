"""Batch reassignment without I/O (pure): what a lead's assignment is, what changed between two, whether
a plan moves or keeps a lead and why, the plan's content hash, and which territories changed between two
model versions (for incremental realignment).

A lead *moves* when its assignment (lowest territories, CAM, territory team, rule-assigned resources, and,
while a round waits for a decision, the approvers) differs under the new model and rules. It is *kept*
instead when it is locked, in a frozen territory (now, or the one it would move into), closed (expired,
or its opportunity closed), or the transition policy says so (``reassignment: {pending_approvals: keep}``,
``approved: keep_owner``, the default for approved registrations).

>>> old = Assignment(("JP",), "cam-a", "JP", ("JP",), (("cam-a", "channel_account_manager"),), ())
>>> new = Assignment(("JP-NET",), "cam-b", "JP-NET", ("JP-NET",), (("cam-b", "channel_account_manager"),), ())
>>> differences(old, new, approvals=False)[:2]
['territory JP -> JP-NET', 'CAM cam-a -> cam-b']
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson


class RunKind(StrEnum):
    PLAN = "plan"
    REVERT = "revert"


class RunStatus(StrEnum):
    PLANNING = "planning"
    PLANNED = "planned"
    APPLYING = "applying"
    APPLIED = "applied"
    CANCELLED = "cancelled"
    FAILED = "failed"


class ItemOutcome(StrEnum):
    MOVE = "move"
    KEEP = "keep"


class ItemResult(StrEnum):
    APPLIED = "applied"
    SKIPPED = "skipped"


class Action(StrEnum):
    """What the apply does with a moved lead's registration."""

    FOLLOW = "follow"  # not in flight (draft, rejected, withdrawn): the teams follow the new territory
    REROUTE = "reroute"  # the open approval round goes to the new approvers
    MOVE_TEAM = "move_team"  # approved: the teams move, the opportunity keeps its owner
    MOVE_OWNER = "move_owner"  # approved: the opportunity's owner moves too


#: Registration statuses with an approval round that waits for someone.
IN_FLIGHT = frozenset({"submitted", "pending_approval", "info_requested"})
CLOSED = frozenset({"expired"})
CHANGED_SINCE_PLAN = "changed since plan"
LOCKED_SINCE_PLAN = "locked since plan"
FROZEN_SINCE_PLAN = "frozen since plan"


@dataclass(frozen=True)
class Assignment:
    """Who and where a lead is assigned to; ``resources`` are (user, role) pairs."""

    lowest: tuple[str, ...]
    cam: str | None
    cam_territory: str | None
    territory_team: tuple[str, ...]
    resources: tuple[tuple[str, str], ...]
    approvers: tuple[str, ...]

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Assignment:
        """From a stored decision's result (``AssignmentDecisionResult.to_json()``)."""
        return cls(
            lowest=tuple(result.get("lowest_territories", ())),
            cam=result.get("cam"),
            cam_territory=result.get("cam_territory"),
            territory_team=tuple(result.get("territory_team", ())),
            resources=tuple((r["user"], r["role"]) for r in result.get("resources", ())),
            approvers=tuple(
                dict.fromkeys(
                    a["user"] for step in result.get("approval_steps", ()) for a in step.get("approvers", ())
                )
            ),
        )

    @classmethod
    def of(cls, result: Any) -> Assignment:
        """From a decision (``rules.decision.AssignmentDecisionResult``): what ``from_result`` reads of
        its ``to_json()``, without writing it."""
        return cls(
            lowest=tuple(result.lowest),
            cam=result.cam,
            cam_territory=result.cam_territory,
            territory_team=tuple(result.territory_team),
            resources=tuple((r.user, r.role) for r in result.resources),
            approvers=result.approvers,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "lowest_territories": list(self.lowest),
            "cam": self.cam,
            "cam_territory": self.cam_territory,
            "territory_team": list(self.territory_team),
            "resources": [{"user": u, "role": r} for u, r in self.resources],
            "approvers": list(self.approvers),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Assignment:
        return cls(
            lowest=tuple(data.get("lowest_territories", ())),
            cam=data.get("cam"),
            cam_territory=data.get("cam_territory"),
            territory_team=tuple(data.get("territory_team", ())),
            resources=tuple((r["user"], r["role"]) for r in data.get("resources", ())),
            approvers=tuple(data.get("approvers", ())),
        )


def _names(values: Iterable[str]) -> str:
    return ", ".join(values) or "none"


def differences(before: Assignment, after: Assignment, *, approvals: bool) -> list[str]:
    """What changed, one phrase per part (empty: nothing); approvers count only when ``approvals``."""
    out: list[str] = []
    if before.lowest != after.lowest:
        out.append(f"territory {_names(before.lowest)} -> {_names(after.lowest)}")
    if before.cam != after.cam:
        out.append(f"CAM {before.cam or 'none'} -> {after.cam or 'none'}")
    if before.territory_team != after.territory_team and (
        set(before.territory_team) - set(before.lowest) or set(after.territory_team) - set(after.lowest)
    ):
        out.append(f"territory team {_names(before.territory_team)} -> {_names(after.territory_team)}")
    if set(before.resources) != set(after.resources):
        gone = sorted(f"{u} ({r})" for u, r in set(before.resources) - set(after.resources))
        new = sorted(f"{u} ({r})" for u, r in set(after.resources) - set(before.resources))
        out.append(
            "resources" + (f" -{', -'.join(gone)}" if gone else "") + (f" +{', +'.join(new)}" if new else "")
        )
    if approvals and before.approvers != after.approvers:
        out.append(f"approvers {_names(before.approvers)} -> {_names(after.approvers)}")
    return out


@dataclass(frozen=True)
class LeadState:
    """What the plan needs to know about a lead besides its assignment."""

    lead_id: int
    version: int
    status: str
    lock_reason: str | None = None
    opportunity_status: str | None = None
    opportunity_lock_reason: str | None = None
    #: ``territory T: reason`` when the lead is in a frozen territory now or the plan would move it into one
    frozen: str | None = None


@dataclass(frozen=True)
class Verdict:
    outcome: ItemOutcome
    reason: str
    action: Action | None = None


def verdict(
    state: LeadState,
    before: Assignment,
    after: Assignment,
    *,
    pending_approvals: str = "reroute",
    approved: str = "keep_owner",
) -> Verdict | None:
    """Whether the plan moves or keeps the lead, and why; ``None`` when nothing would change.

    >>> a = Assignment(("JP",), "cam-a", "JP", ("JP",), (), ())
    >>> b = Assignment(("DE",), "cam-b", "DE", ("DE",), (), ())
    >>> verdict(LeadState(1, 3, "approved", opportunity_status="open"), a, b).reason
    'policy: approved registrations keep their owner (approved: keep_owner); territory JP -> DE; CAM cam-a -> cam-b'
    >>> verdict(LeadState(1, 3, "draft", lock_reason="key account"), a, b).reason
    'locked: key account; territory JP -> DE; CAM cam-a -> cam-b'
    >>> verdict(LeadState(1, 3, "draft", frozen="territory JP: audit"), a, b).reason
    'frozen: territory JP: audit; territory JP -> DE; CAM cam-a -> cam-b'
    """
    changes = differences(before, after, approvals=state.status in IN_FLIGHT)
    if not changes:
        return None
    what = "; ".join(changes)

    def keep(why: str) -> Verdict:
        return Verdict(ItemOutcome.KEEP, f"{why}; {what}")

    if state.lock_reason is not None:
        return keep(f"locked: {state.lock_reason}")
    if state.frozen is not None:
        return keep(f"frozen: {state.frozen}")
    if state.status in CLOSED:
        return keep(f"closed: registration {state.status}")
    if state.status == "approved":
        if state.opportunity_status not in (None, "open"):
            return keep(f"closed: opportunity {state.opportunity_status}")
        if state.opportunity_lock_reason is not None:
            return keep(f"locked: opportunity: {state.opportunity_lock_reason}")
        if approved == Action.MOVE_TEAM:
            return Verdict(ItemOutcome.MOVE, what, Action.MOVE_TEAM)
        if approved == Action.MOVE_OWNER:
            return Verdict(ItemOutcome.MOVE, what, Action.MOVE_OWNER)
        return keep(f"policy: approved registrations keep their owner (approved: {approved})")
    if state.status in IN_FLIGHT:
        if pending_approvals == "keep":
            return keep("policy: pending approvals keep their approvers (pending_approvals: keep)")
        return Verdict(ItemOutcome.MOVE, what, Action.REROUTE)
    return Verdict(ItemOutcome.MOVE, what, Action.FOLLOW)


def item_digest(item: Mapping[str, Any]) -> bytes:
    """The canonical bytes of one plan item (for the plan's content hash)."""
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS, default=str)


class PlanHash:
    """The content hash of a plan: its parameters, then its items in lead order."""

    def __init__(self, parameters: Mapping[str, Any]) -> None:
        self._sha = hashlib.sha256(item_digest(parameters))

    def add(self, item: Mapping[str, Any]) -> None:
        self._sha.update(item_digest(item))

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
