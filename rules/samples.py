"""Sample lead facts for the smoke evaluation of a new ruleset version (pure).

The samples touch every comparison of the ruleset: each value it tests, a value next to each number it
compares against, every fact missing, and all the tested values at once. They are small on purpose: the
point is to load the ruleset into durable_rules and see it answer (and agree with the reference
evaluator), not to prove it correct.
"""

from __future__ import annotations

from collections.abc import Iterator

from rules import ast
from rules.vocabulary import FACTS, MAX_NUMBER, FactType

#: Upper bound on the number of samples, so a large ruleset still verifies quickly.
MAX_SAMPLES = 200


def _comparisons(cond: ast.Condition) -> Iterator[ast.Compare]:
    if isinstance(cond, ast.Compare):
        yield cond
    elif isinstance(cond, ast.AllOf | ast.AnyOf):
        for item in cond.items:
            yield from _comparisons(item)
    elif isinstance(cond, ast.Not):
        yield from _comparisons(cond.item)


def _typical(fact: str) -> ast.Scalar:
    spec = FACTS[fact]
    if spec.type is FactType.NUMBER:
        return 1
    if spec.type is FactType.ENUM:
        return spec.values[0]
    return "sample"


def _values(cmp: ast.Compare) -> list[ast.Scalar]:
    if cmp.fact not in FACTS:
        return []
    if cmp.op is ast.Op.EXISTS or isinstance(cmp.value, bool) or cmp.value is None:
        return [_typical(cmp.fact)]
    values = list(cmp.value) if isinstance(cmp.value, tuple) else [cmp.value]
    out: list[ast.Scalar] = []
    for value in values[:3]:
        out.append(value)
        if isinstance(value, int | float) and FACTS[cmp.fact].type is FactType.NUMBER:
            out += [value - 1, value + 1]
    return out


def _in_range(value: ast.Scalar) -> bool:
    return not isinstance(value, int | float) or abs(value) <= MAX_NUMBER


def smoke_facts(ruleset: ast.Ruleset) -> list[dict[str, object]]:
    """Lead facts that exercise each comparison of `ruleset` (at most `MAX_SAMPLES`).

    >>> rs = ast.make_ruleset(ast.Kind.POLICY, ast.HitPolicy.FIRST, (
    ...     ast.Rule("big", 0, ast.Compare("deal_size", ast.Op.GT, 100), ast.PolicyActions()),
    ...     ast.Rule("rest", 0, ast.Always(), ast.PolicyActions())))
    >>> smoke_facts(rs)
    [{}, {'deal_size': 100}, {'deal_size': 99}, {'deal_size': 101}]
    """
    samples: list[dict[str, object]] = [{}]
    combined: dict[str, object] = {}
    seen: set[tuple[str, object]] = set()
    for rule in ruleset.rules:
        for cmp in _comparisons(rule.condition):
            for value in _values(cmp):
                if (cmp.fact, value) in seen or not _in_range(value):
                    continue
                seen.add((cmp.fact, value))
                samples.append({cmp.fact: value})
                combined.setdefault(cmp.fact, value)
    if len(combined) > 1:
        samples.append(combined)
    return samples[:MAX_SAMPLES]
