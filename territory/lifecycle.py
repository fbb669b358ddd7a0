"""A territory model's life: planning -> active -> archived (pure; transitions are data).

Only planning models are edited; activating one archives the model that was active.
"""

from __future__ import annotations

from enum import StrEnum

from territory.models import ModelStatus


class ModelEvent(StrEnum):
    ACTIVATE = "activate"
    ARCHIVE = "archive"


TRANSITIONS: dict[tuple[ModelStatus, ModelEvent], ModelStatus] = {
    (ModelStatus.PLANNING, ModelEvent.ACTIVATE): ModelStatus.ACTIVE,
    (ModelStatus.ACTIVE, ModelEvent.ARCHIVE): ModelStatus.ARCHIVED,
}

EDITABLE = frozenset({ModelStatus.PLANNING})


class TransitionNotAllowed(Exception):
    """``event`` is not allowed in ``status``."""

    def __init__(self, status: ModelStatus, event: ModelEvent) -> None:
        self.status = status
        self.event = event
        super().__init__(f"cannot {event.value} a model that is {status.value}")


def next_status(status: ModelStatus, event: ModelEvent) -> ModelStatus:
    """The status after ``event``; raises ``TransitionNotAllowed``.

    >>> next_status(ModelStatus.PLANNING, ModelEvent.ACTIVATE)
    <ModelStatus.ACTIVE: 'active'>
    """
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise TransitionNotAllowed(status, event) from None
