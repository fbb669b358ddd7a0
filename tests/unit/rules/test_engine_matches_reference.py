"""The key correctness proof: durable_rules and the reference evaluator decide the same on any input."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rules import ast, reference
from rules.compiler import complexity_problem
from rules.engine import DurableEvaluator, FactClasses, shard_definitions
from rules.vocabulary import normalize_facts
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


@SETTINGS
@given(rulesets(), st.lists(lead_facts(), min_size=2, max_size=12))
def test_facts_of_one_class_fire_the_same_rules(ruleset, many_facts):
    """The durable evaluator answers once per class of facts (``FactClasses``): any two facts of one
    class must fire the same rules by the reference evaluator, which knows nothing of classes."""
    classes = FactClasses.of(ruleset)
    fired: dict[tuple[object, ...], tuple[str, ...]] = {}
    for facts in many_facts:
        normalized = normalize_facts(facts)
        want = reference.evaluate(ruleset, normalized, trace=False).fired
        assert fired.setdefault(classes.key(normalized), want) == want


def test_numbers_are_classed_by_the_constants_they_fall_between():
    rule = ast.Rule("mid", 0, ast.Compare("deal_size", ast.Op.GT, 1000), ast.PolicyActions(expiry_days=9))
    other = ast.Rule("eq", 0, ast.Compare("deal_size", ast.Op.EQ, 5000), ast.PolicyActions(expiry_days=8))
    ruleset = ast.make_ruleset(ast.Kind.POLICY, ast.HitPolicy.COLLECT, (rule, other))
    key = FactClasses.of(ruleset).key
    assert key({"deal_size": 1001}) == key({"deal_size": 4999}) != key({"deal_size": 5000})
    assert key({"deal_size": 1000}) != key({"deal_size": 1000.5}) != key({})
    for facts in ({"deal_size": 1001}, {"deal_size": 4999}, {"deal_size": 5000}, {"deal_size": 1000}, {}):
        assert durable.evaluate(ruleset, facts, trace=False) == reference.evaluate(
            ruleset, facts, trace=False
        )


def test_facts_of_one_class_reach_the_durable_core_once(monkeypatch):
    """The rules that fired are remembered per class of facts, also for rulesets with an ``always`` rule
    (whose compiled condition, like the internal catch-all, reads the mark every message carries)."""
    import durable_rules_engine

    asked: list[str] = []
    real = durable_rules_engine.assert_event

    def counted(handle: int, message: str) -> object:
        asked.append(message)
        return real(handle, message)

    monkeypatch.setattr(durable_rules_engine, "assert_event", counted)
    big = ast.Rule("big", 0, ast.Compare("deal_size", ast.Op.GT, 1000), ast.PolicyActions(expiry_days=30))
    other = ast.Rule("other", 0, ast.Always(), ast.PolicyActions(expiry_days=90))
    ruleset = ast.make_ruleset(ast.Kind.POLICY, ast.HitPolicy.FIRST, (big, other))
    fired = [durable.evaluate(ruleset, {"deal_size": d}, trace=False).fired for d in (1001, 4999, 500, 999)]
    assert fired == [("big",), ("big",), ("other",), ("other",)]
    assert len(asked) == 2  # one message per class: above 1000, not above
