"""Extension requests of a registration's protection period (pure): statuses, the refusals, and the
checks a request must pass (Oracle's protection period: the partner asks, the channel account manager
grants or refuses, the policy caps how many are granted).

>>> remaining(granted=1, maximum=2)
1
>>> remaining(granted=3, maximum=None) is None
True
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from common.errors import Conflict, FieldProblem, Forbidden, ValidationFailed


class ExtensionStatus(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    REJECTED = "rejected"


class ExtensionLimitReached(Conflict):
    code, title = "extension-limit-reached", "No more extensions allowed"


class ExtensionPending(Conflict):
    code, title = "extension-pending", "An extension request is already open"


class ExtensionDecided(Conflict):
    code, title = "extension-decided", "The extension request was already decided"


class NotThePartner(Forbidden):
    code, title = "not-the-partner", "Not the partner of the registration"


def remaining(granted: int, maximum: int | None) -> int | None:
    """How many more extensions may be granted (None: no limit)."""
    return None if maximum is None else max(0, maximum - granted)


def check_limit(registration_number: str | None, granted: int, maximum: int | None) -> None:
    """409 once the policy's maximum number of extensions was granted."""
    if maximum is not None and granted >= maximum:
        raise ExtensionLimitReached(
            f"Registration {registration_number} was extended {granted} time(s); its policy allows {maximum}",
            max_extensions=maximum,
            granted=granted,
        )


def check_requested_date(
    requested: datetime, current: datetime | None, now: datetime, pointer: str = "/expires_at"
) -> None:
    """422 unless the requested expiry is in the future and later than the current one."""
    floor = max(current, now) if current is not None else now
    if requested <= floor:
        raise ValidationFailed(
            "An extension must move the expiry later",
            [FieldProblem(pointer, f"must be later than {floor.isoformat()}")],
        )
