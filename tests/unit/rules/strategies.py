"""Hypothesis strategies for rule ASTs and lead facts that exercise every operator and combinator."""

from __future__ import annotations

from hypothesis import strategies as st

from rules import ast
from rules.vocabulary import FACTS, FactType

NUMBER_FACTS = [name for name, spec in FACTS.items() if spec.type is FactType.NUMBER]
STRING_FACTS = ["region", "product", "customer_country", "partner_type"]
ENUM_FACTS = [name for name, spec in FACTS.items() if spec.type is FactType.ENUM]
# a long set (> 128 members, so several $or groups) and values inside, at the edges and outside of it
BIG_SET = tuple(f"m{i}" for i in range(300))
STRINGS = ["EMEA", "APAC", "amer", "Zürich ✓", 'quo"te', "", "m0", "m127", "m128", "m255", "m299", "m300"]
THRESHOLDS = [0, 1, 100, 99_999.5, 100_000, -250, 10**15]
NUMBERS = sorted(
    {t + d for t in THRESHOLDS for d in (0, 1, -1, 0.5, -0.5, 0.0001, -0.0001) if abs(t + d) <= 10**15}
)

string_values = st.sampled_from(STRINGS)
number_values = st.sampled_from(NUMBERS)


def _values_for(fact: str) -> st.SearchStrategy[ast.Scalar]:
    spec = FACTS[fact]
    if spec.type is FactType.NUMBER:
        return number_values
    if spec.type is FactType.ENUM:
        return st.sampled_from(spec.values)
    return string_values


@st.composite
def comparisons(draw: st.DrawFn) -> ast.Compare:
    fact = draw(st.sampled_from(NUMBER_FACTS + STRING_FACTS + ENUM_FACTS))
    is_number = FACTS[fact].type is FactType.NUMBER
    ops = list(ast.Op) if is_number else [op for op in ast.Op if op not in ast.NUMBER_OPS]
    op = draw(st.sampled_from(ops))
    if op is ast.Op.EXISTS:
        return ast.Compare(fact, op, draw(st.booleans()))
    values = _values_for(fact)
    if op in ast.SET_OPS:
        if FACTS[fact].type is FactType.STRING and draw(st.booleans()):
            extra = draw(st.lists(string_values, max_size=3))
            return ast.Compare(fact, op, BIG_SET + tuple(extra))
        return ast.Compare(fact, op, tuple(draw(st.lists(values, min_size=1, max_size=5))))
    return ast.Compare(fact, op, draw(values))


conditions: st.SearchStrategy[ast.Condition] = st.recursive(
    comparisons(),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda items: ast.AllOf(tuple(items))),
        st.lists(children, min_size=1, max_size=3).map(lambda items: ast.AnyOf(tuple(items))),
        children.map(ast.Not),
    ),
    max_leaves=8,
)


def actions_for(kind: ast.Kind, n: int) -> ast.Actions:
    if kind is ast.Kind.ASSIGNMENT:
        return ast.AssignmentActions(
            (ast.Resource(f"u{n % 3}", "channel_account_manager"),), (f"T{n % 4}", "T-shared")
        )
    if kind is ast.Kind.APPROVAL:
        mode = "all" if n % 2 else "parallel"
        return ast.ApprovalActions((ast.ApprovalStep(f"s{n}", ("channel_account_manager",), (), mode),))
    return ast.PolicyActions(
        expiry_days=30 + n if n % 2 else None,
        required_fields=("customer", "deal_size") if n % 3 == 0 else None,
        transfer="on_approval" if n % 4 == 1 else None,
        notify=(ast.Notify("approved", ("channel_account_manager",), (f"u{n}",)),) if n % 2 == 0 else (),
        block_overlapping_registrations=(n % 5 == 0) if n % 2 else None,
        reassign_on_resubmit=(n % 3 == 0) if n % 2 == 0 else None,
        reassignment_pending=("keep" if n % 3 else "reroute") if n % 5 == 1 else None,
        reassignment_approved=("keep_owner", "move_team", "move_owner")[n % 3] if n % 7 < 2 else None,
        max_extensions=n % 3 if n % 4 == 2 else None,
    )


@st.composite
def rulesets(
    draw: st.DrawFn,
    hit_policy: ast.HitPolicy | None = None,
    min_rules: int = 1,
    max_rules: int = 8,
    conditions_strategy: st.SearchStrategy[ast.Condition] = conditions,
) -> ast.Ruleset:
    policy = hit_policy or draw(st.sampled_from(list(ast.HitPolicy)))
    kind = draw(st.sampled_from(list(ast.Kind)))
    count = draw(st.integers(min_rules, max_rules))
    rules = []
    for n in range(count):
        cond = ast.Always() if draw(st.integers(0, 9)) == 0 else draw(conditions_strategy)
        rules.append(ast.Rule(f"r{n}", draw(st.integers(0, 3)), cond, actions_for(kind, n)))
    if draw(st.booleans()):
        rules.append(ast.Rule("fallback", 0, ast.Always(), actions_for(kind, count)))
    fallback = "u.fallback" if kind is ast.Kind.APPROVAL else None
    return ast.make_ruleset(kind, policy, tuple(rules), fallback_approver=fallback)


@st.composite
def lead_facts(draw: st.DrawFn) -> dict[str, object]:
    facts: dict[str, object] = {}
    for fact in NUMBER_FACTS + STRING_FACTS + ENUM_FACTS:
        if draw(st.integers(0, 3)) == 0:
            continue  # missing fact
        facts[fact] = draw(_values_for(fact))
    return facts
