"""The registration state machine: every (status, event) pair either moves as the table says or is
refused with the current status (STYLE.md, "State machines")."""

from __future__ import annotations

import itertools

import pytest

from common.errors import InvalidTransition
from registration.leads.lifecycle import (
    EDITABLE,
    TRANSITIONS,
    Event,
    RegistrationStatus,
    editable,
    next_status,
)

S, E = RegistrationStatus, Event

#: The machine of issue 4 item 2 (and issue 10 item 3: a later expiry approves an expired registration
#: again), written out independently of the module's table.
EXPECTED = {
    ("draft", "submit"): "submitted",
    ("submitted", "route"): "pending_approval",
    ("pending_approval", "approve"): "approved",
    ("pending_approval", "reject"): "rejected",
    ("rejected", "submit"): "submitted",
    ("pending_approval", "request_info"): "info_requested",
    ("info_requested", "submit_info"): "pending_approval",
    ("submitted", "withdraw"): "withdrawn",
    ("pending_approval", "withdraw"): "withdrawn",
    ("info_requested", "withdraw"): "withdrawn",
    ("withdrawn", "submit"): "submitted",
    ("approved", "expire"): "expired",
    ("expired", "extend"): "approved",
}

ALL_PAIRS = list(itertools.product(RegistrationStatus, Event))


def test_the_table_is_the_machine_of_the_issue():
    assert {(s.value, e.value): t.value for (s, e), t in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize(("status", "event"), ALL_PAIRS, ids=[f"{s}-{e}" for s, e in ALL_PAIRS])
def test_every_pair_moves_or_is_refused_with_the_current_status(status, event):
    expected = EXPECTED.get((status.value, event.value))
    if expected is not None:
        assert next_status(status, event) == RegistrationStatus(expected)
        assert next_status(status.value, event.value) == RegistrationStatus(expected)
        return
    with pytest.raises(InvalidTransition) as caught:
        next_status(status, event)
    problem = caught.value.to_problem()
    assert problem["status"] == 409
    assert problem["current_status"] == status.value
    assert problem["event"] == event.value
    assert status.value in problem["detail"]


def test_approved_only_expires_and_expired_only_comes_back_by_an_extension():
    assert [e for e in Event if (S.EXPIRED, e) in TRANSITIONS] == [E.EXTEND]
    assert [e for e in Event if (S.APPROVED, e) in TRANSITIONS] == [E.EXPIRE]


def test_only_draft_rejected_and_withdrawn_registrations_are_editable():
    assert set(EDITABLE) == {S.DRAFT, S.REJECTED, S.WITHDRAWN}
    assert [s for s in RegistrationStatus if editable(s)] == [S.DRAFT, S.REJECTED, S.WITHDRAWN]


def test_unknown_status_or_event_is_a_programming_error():
    with pytest.raises(ValueError):
        next_status("converted", "submit")
    with pytest.raises(ValueError):
        next_status("draft", "teleport")
