"""The pure-Python reference evaluator of the rule AST.

It defines the semantics the durable_rules engine must reproduce (the property tests run both):

- a comparison on a missing fact is false, whatever the operator (`ne` and `not_in` included);
  only `exists: false` is true for a missing fact, and `not` negates as usual;
- numbers compare after `rules.vocabulary.normalize_number` (4 decimals);
- `first`: the first matching rule in file order fires; `priority`: the matching rule with the highest
  priority, ties by file order; `collect`: every matching rule, in file order.
"""

from __future__ import annotations

from collections.abc import Mapping

from rules import ast
from rules.outcome import Outcome, RuleResult, merge_actions
from rules.vocabulary import normalize_facts

Facts = Mapping[str, str | int | float]

_SYMBOL = {
    ast.Op.EQ: "=",
    ast.Op.NE: "!=",
    ast.Op.LT: "<",
    ast.Op.LTE: "<=",
    ast.Op.GT: ">",
    ast.Op.GTE: ">=",
    ast.Op.IN: "in",
    ast.Op.NOT_IN: "not in",
}


def compare(cond: ast.Compare, facts: Facts) -> bool:
    """Truth of one comparison on normalized facts."""
    present = cond.fact in facts
    if cond.op is ast.Op.EXISTS:
        return present is bool(cond.value)
    if not present:
        return False
    actual = facts[cond.fact]
    value = cond.value
    if cond.op is ast.Op.EQ:
        return actual == value
    if cond.op is ast.Op.NE:
        return actual != value
    if cond.op is ast.Op.IN:
        return isinstance(value, tuple) and actual in value
    if cond.op is ast.Op.NOT_IN:
        return isinstance(value, tuple) and actual not in value
    if isinstance(actual, str) or not isinstance(value, int | float) or isinstance(value, bool):
        return False
    if cond.op is ast.Op.LT:
        return actual < value
    if cond.op is ast.Op.LTE:
        return actual <= value
    if cond.op is ast.Op.GT:
        return actual > value
    return actual >= value


def holds(cond: ast.Condition, facts: Facts) -> bool:
    """Truth of a condition on normalized facts."""
    if isinstance(cond, ast.Always):
        return True
    if isinstance(cond, ast.Compare):
        return compare(cond, facts)
    if isinstance(cond, ast.AllOf):
        return all(holds(c, facts) for c in cond.items)
    if isinstance(cond, ast.AnyOf):
        return any(holds(c, facts) for c in cond.items)
    return not holds(cond.item, facts)


def _show(value: ast.Value) -> str:
    if isinstance(value, tuple):
        shown = ", ".join(repr(v) for v in value[:5])
        return f"[{shown}{', ...' if len(value) > 5 else ''}]"
    return repr(value) if isinstance(value, str) else str(value)


def describe(cond: ast.Condition, facts: Facts) -> str:
    """Why a condition has its truth value, naming the comparisons that decided it."""
    if isinstance(cond, ast.Always):
        return "always"
    if isinstance(cond, ast.Compare):
        if cond.op is ast.Op.EXISTS:
            state = "present" if cond.fact in facts else "missing"
            return f"{cond.fact} {state}"
        if cond.fact not in facts:
            return f"{cond.fact} missing"
        return f"{cond.fact} {_show(facts[cond.fact])} {_SYMBOL[cond.op]} {_show(cond.value)}"
    if isinstance(cond, ast.Not):
        return f"not ({describe(cond.item, facts)})"
    truth = holds(cond, facts)
    # all: a false one decides when false; any: a true one decides when true; else every part counts
    if isinstance(cond, ast.AllOf):
        deciding = [c for c in cond.items if not holds(c, facts)][:1] if not truth else list(cond.items)
        joiner = " and "
    else:
        deciding = [c for c in cond.items if holds(c, facts)][:1] if truth else list(cond.items)
        joiner = " or "
    return joiner.join(describe(c, facts) for c in deciding)


def explain(ruleset: ast.Ruleset, facts: Facts) -> tuple[RuleResult, ...]:
    """Per rule (file order): whether its condition held and why."""
    return tuple(explain_rule(rule, facts) for rule in ruleset.rules)


def explain_rule(rule: ast.Rule, facts: Facts) -> RuleResult:
    """Whether one rule's condition held and why."""
    matched = holds(rule.condition, facts)
    verdict = "true" if matched else "false"
    return RuleResult(rule.id, matched, f"condition {verdict} ({describe(rule.condition, facts)})")


def select(ruleset: ast.Ruleset, matched: set[str]) -> tuple[str, ...]:
    """Fired rule ids under the ruleset's hit policy, given the ids whose condition held."""
    if ruleset.hit_policy is ast.HitPolicy.COLLECT:
        return tuple(r.id for r in ruleset.rules if r.id in matched)
    if len(matched) == 1:
        return tuple(matched)
    for rule in ruleset.ranked():
        if rule.id in matched:
            return (rule.id,)
    return ()


class ReferenceEvaluator:
    """Evaluates rulesets in pure Python (`PRM_RULES_ENGINE=python`)."""

    name = "python"

    def evaluate(self, ruleset: ast.Ruleset, facts: Mapping[str, object], *, trace: bool = True) -> Outcome:
        return evaluate(ruleset, facts, trace=trace)


def evaluate(ruleset: ast.Ruleset, facts: Mapping[str, object], *, trace: bool = True) -> Outcome:
    """Evaluate `ruleset` against lead `facts`; `FactsInvalid` if a fact has the wrong type.

    >>> from rules.loader import load_ruleset
    >>> rs = load_ruleset(
    ...     "kind: policy\\nhit_policy: first\\nrules:\\n"
    ...     "  - {id: big, when: {fact: deal_size, op: gte, value: 1000}, then: {expiry_days: 30}}\\n"
    ...     "  - {id: other, when: always}\\n"
    ... ).unwrap()
    >>> out = evaluate(rs, {"deal_size": 500})
    >>> out.fired, out.actions.expiry_days, out.results[0].reason
    (('other',), 90, 'condition false (deal_size 500 >= 1000)')
    """
    normalized = normalize_facts(facts)
    if trace:
        results = explain(ruleset, normalized)
        matched = {r.rule_id for r in results if r.matched}
    else:
        results = ()
        matched = {r.id for r in ruleset.rules if holds(r.condition, normalized)}
    fired = select(ruleset, matched)
    return Outcome(
        ruleset.version,
        ruleset.kind,
        ruleset.hit_policy,
        fired,
        merge_actions(ruleset, fired),
        results,
        "python",
    )
