"""A plan reads a decision's assignment from the decision itself (``Assignment.of``) and a stored one from
its JSON (``Assignment.from_result``): both must read the same."""

from __future__ import annotations

import pytest

from registration.reassignment.planning import Assignment
from rules.decision import LeadFacts, decide
from rules.evaluator import get_evaluator
from tests.unit.test_assignment_decision import _rulesets, _snapshot


@pytest.mark.parametrize(
    "facts",
    [
        {"geography": "JP", "product": "sw-1", "deal_size": 10},
        {"geography": "JP", "product": "fw-1", "deal_size": 250000},
        {"geography": "DE", "product": "fw-1", "deal_size": 10},
        {},
    ],
)
def test_a_decision_and_its_stored_json_give_one_assignment(facts):
    result = decide(LeadFacts.check(facts), _snapshot(), _rulesets(), get_evaluator("durable"))
    assert Assignment.of(result) == Assignment.from_result(result.to_json())
