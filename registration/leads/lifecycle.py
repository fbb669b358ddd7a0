"""The registration state machine: statuses, events and the one transition table (pure).

Every move of a registration goes through ``next_status``; any pair the table does not list raises
``InvalidTransition`` (409) carrying the current status.

>>> next_status(RegistrationStatus.DRAFT, Event.SUBMIT)
<RegistrationStatus.SUBMITTED: 'submitted'>
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from common.errors import InvalidTransition


class RegistrationStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    INFO_REQUESTED = "info_requested"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class LeadStatus(StrEnum):
    """The lead's own status, beside its registration's: an approved registration converts the lead."""

    OPEN = "open"
    CONVERTED = "converted"


class Event(StrEnum):
    SUBMIT = "submit"
    ROUTE = "route"
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_INFO = "request_info"
    SUBMIT_INFO = "submit_info"
    WITHDRAW = "withdraw"
    EXPIRE = "expire"
    EXTEND = "extend"


S, E = RegistrationStatus, Event

#: (status, event) -> status. Withdraw is the submitter's recall before a decision, so it applies while
#: the registration waits: submitted, pending approval, or waiting for the submitter's information.
TRANSITIONS: Mapping[tuple[RegistrationStatus, Event], RegistrationStatus] = {
    (S.DRAFT, E.SUBMIT): S.SUBMITTED,
    (S.SUBMITTED, E.ROUTE): S.PENDING_APPROVAL,
    (S.PENDING_APPROVAL, E.APPROVE): S.APPROVED,
    (S.PENDING_APPROVAL, E.REJECT): S.REJECTED,
    (S.PENDING_APPROVAL, E.REQUEST_INFO): S.INFO_REQUESTED,
    (S.INFO_REQUESTED, E.SUBMIT_INFO): S.PENDING_APPROVAL,
    (S.REJECTED, E.SUBMIT): S.SUBMITTED,
    (S.SUBMITTED, E.WITHDRAW): S.WITHDRAWN,
    (S.PENDING_APPROVAL, E.WITHDRAW): S.WITHDRAWN,
    (S.INFO_REQUESTED, E.WITHDRAW): S.WITHDRAWN,
    (S.WITHDRAWN, E.SUBMIT): S.SUBMITTED,
    (S.APPROVED, E.EXPIRE): S.EXPIRED,
    # a later expiry given to an expired registration (by its CAM, or granting the partner's request)
    # protects the deal again
    (S.EXPIRED, E.EXTEND): S.APPROVED,
}

#: Statuses in which the partner may edit the lead (notes are separate and allowed while pending).
EDITABLE: frozenset[RegistrationStatus] = frozenset({S.DRAFT, S.REJECTED, S.WITHDRAWN})


def next_status(status: RegistrationStatus | str, event: Event | str) -> RegistrationStatus:
    """The status ``event`` moves a registration in ``status`` to; raises ``InvalidTransition``."""
    current = RegistrationStatus(status)
    target = TRANSITIONS.get((current, Event(event)))
    if target is None:
        raise InvalidTransition(
            f"A registration in status {current.value!r} cannot {Event(event).value.replace('_', ' ')}",
            current_status=current.value,
            event=Event(event).value,
        )
    return target


def editable(status: RegistrationStatus | str) -> bool:
    """Whether the lead's fields may change in this status."""
    return RegistrationStatus(status) in EDITABLE
