"""The key correctness proof: durable_rules and the reference evaluator decide the same on any input."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rules import ast, reference
from rules.compiler import complexity_problem
from rules.engine import DurableEvaluator, shard_definitions
from tests.unit.rules.strategies import comparisons, lead_facts, rulesets

durable = DurableEvaluator()
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same(ruleset: ast.Ruleset, facts: dict[str, object]) -> None:
    # the loader rejects conditions durable cannot run; generated ASTs skip that check
    assume(all(complexity_problem(rule.condition) is None for rule in ruleset.rules))
    want = reference.evaluate(ruleset, facts, trace=False)
    got = durable.evaluate(ruleset, facts, trace=False)
    assert got.fired == want.fired
    assert got == want


@SETTINGS
@given(rulesets(hit_policy=ast.HitPolicy.FIRST), st.lists(lead_facts(), min_size=1, max_size=4))
def test_first_hit_policy_agrees_with_reference(ruleset, many_facts):
    for facts in many_facts:
        assert_same(ruleset, facts)


@SETTINGS
@given(rulesets(hit_policy=ast.HitPolicy.PRIORITY), st.lists(lead_facts(), min_size=1, max_size=4))
def test_priority_hit_policy_agrees_with_reference(ruleset, many_facts):
    for facts in many_facts:
        assert_same(ruleset, facts)


@SETTINGS
@given(rulesets(hit_policy=ast.HitPolicy.COLLECT), st.lists(lead_facts(), min_size=1, max_size=4))
def test_collect_hit_policy_agrees_with_reference(ruleset, many_facts):
    for facts in many_facts:
        assert_same(ruleset, facts)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    rulesets(min_rules=95, max_rules=260, conditions_strategy=comparisons()),
    st.lists(lead_facts(), min_size=1, max_size=6),
)
def test_rulesets_split_into_shards_agree_with_reference(ruleset, many_facts):
    assert len(shard_definitions(ruleset)) >= 1
    for facts in many_facts:
        assert_same(ruleset, facts)
