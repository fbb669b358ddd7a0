"""Approval rounds without I/O (pure): the statuses of rounds and steps, how one step's approvers'
decisions decide it, which approver of a round becomes the opportunity owner, and the refusals.

A round's steps run one after another (serial). Within a step, ``parallel`` means the first decision
decides it; ``all`` means every approver must approve (any reject still rejects at once).

>>> step_outcome("parallel", [None, "approved"])
<StepStatus.APPROVED: 'approved'>
>>> step_outcome("all", [None, "approved"])
<StepStatus.PENDING: 'pending'>
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from common.errors import Forbidden


class RoundStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class StepStatus(StrEnum):
    WAITING = "waiting"  # a later step; its turn has not come
    PENDING = "pending"  # the current step
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"  # the round ended (reject, withdraw) before its turn


class StepMode(StrEnum):
    PARALLEL = "parallel"
    ALL = "all"


class ApproverDecision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


PROVIDE_INFORMATION = "provide_information"
#: The role an admin acting on a step they are not an approver of is recorded with.
ADMIN_OVERRIDE = "admin_override"


class NotAnApprover(Forbidden):
    """The caller may see the registration but is not an approver of its current step."""

    code, title = "not-an-approver", "Not an approver of the current step"


class NotTheSubmitter(Forbidden):
    """Only the submitter (or the partner whose lead it is, or an admin) answers or withdraws."""

    code, title = "not-the-submitter", "Not the submitter"


def step_outcome(mode: str, decisions: Sequence[str | None]) -> StepStatus:
    """How a step stands given each approver's decision (None: not decided yet)."""
    if ApproverDecision.REJECTED in decisions:
        return StepStatus.REJECTED
    approved = [d == ApproverDecision.APPROVED for d in decisions]
    if StepMode(mode) is StepMode.PARALLEL:
        return StepStatus.APPROVED if any(approved) else StepStatus.PENDING
    return StepStatus.APPROVED if approved and all(approved) else StepStatus.PENDING


def pick_owner(approvals: Sequence[tuple[int, bool]], final_approver: int) -> int:
    """The opportunity owner: the last approving user who is a channel account manager, else the user
    whose approval completed the round. ``approvals`` is (user id, holds the CAM role) in round order.

    >>> pick_owner([(7, True), (9, False)], final_approver=9)
    7
    >>> pick_owner([(9, False)], final_approver=9)
    9
    """
    cams = [user for user, is_cam in approvals if is_cam]
    return cams[-1] if cams else final_approver
