"""Turn a validated spec into the rule AST (after `checks` found no errors)."""

from __future__ import annotations

from collections.abc import Callable

from rules import ast
from rules.spec import (
    ApprovalFile,
    ApprovalThen,
    AssignmentThen,
    ConditionSpec,
    PolicyThen,
    RulesFile,
    RuleSpec,
)
from rules.vocabulary import normalize_number

#: Maps a rule index to where the rule starts in its file.
RulePosition = Callable[[int], ast.Position | None]


def _value(value: object) -> ast.Value:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return normalize_number(value)
    if isinstance(value, list):
        return tuple(_value(v) for v in value)  # type: ignore[misc]
    raise TypeError(f"unsupported value {value!r}")


def to_condition(spec: ConditionSpec | None) -> ast.Condition:
    """The AST condition of a (checked) spec condition; `None` is the catch-all."""
    if spec is None:
        return ast.Always()
    if spec.all_ is not None:
        return ast.AllOf(tuple(to_condition(c) for c in spec.all_))
    if spec.any_ is not None:
        return ast.AnyOf(tuple(to_condition(c) for c in spec.any_))
    if spec.not_ is not None:
        return ast.Not(to_condition(spec.not_))
    assert spec.fact is not None and spec.op is not None
    op = ast.Op(spec.op)
    value = _value(spec.value)
    if op is ast.Op.EXISTS and value is None:
        value = True
    return ast.Compare(spec.fact, op, value)


def canonical_condition(cond: ast.Condition) -> ast.Condition:
    """Condition with set members sorted and de-duplicated: equal meaning compares equal."""
    if isinstance(cond, ast.Compare) and isinstance(cond.value, tuple):
        return ast.Compare(cond.fact, cond.op, tuple(sorted(set(cond.value), key=repr)))
    if isinstance(cond, ast.AllOf):
        return ast.AllOf(tuple(canonical_condition(c) for c in cond.items))
    if isinstance(cond, ast.AnyOf):
        return ast.AnyOf(tuple(canonical_condition(c) for c in cond.items))
    if isinstance(cond, ast.Not):
        return ast.Not(canonical_condition(cond.item))
    return cond


def _actions(then: AssignmentThen | ApprovalThen | PolicyThen, rule_id: str) -> ast.Actions:
    if isinstance(then, AssignmentThen):
        return ast.AssignmentActions(
            tuple(ast.Resource(r.user, r.role) for r in then.add_resources), tuple(then.add_territories)
        )
    if isinstance(then, ApprovalThen):
        return ast.ApprovalActions(
            tuple(
                ast.ApprovalStep(s.name or f"{rule_id}.{i + 1}", tuple(s.roles), tuple(s.users), s.mode)
                for i, s in enumerate(then.steps)
            )
        )
    return ast.PolicyActions(
        expiry_days=then.expiry_days,
        required_fields=None if then.required_fields is None else tuple(then.required_fields),
        transfer=then.transfer,
        notify=tuple(
            ast.Notify(event, tuple(target.roles), tuple(target.users))
            for event, target in sorted(then.notify.items())
        ),
        block_overlapping_registrations=then.block_overlapping_registrations,
        reassignment_pending=then.reassignment.pending_approvals if then.reassignment else None,
        reassignment_approved=then.reassignment.approved if then.reassignment else None,
        reassign_on_resubmit=then.reassign_on_resubmit,
        max_extensions=then.max_extensions,
        unknown_values=then.unknown_values,
        transfer_updates=then.transfer_updates,
    )


def build_ruleset(spec: RulesFile, position_of: RulePosition = lambda _i: None) -> ast.Ruleset:
    """The AST of a checked rules file, stamped with its content-hash version."""
    specs: list[RuleSpec] = list(spec.rules)
    rules = tuple(
        ast.Rule(
            id=rule.id,
            priority=rule.priority,
            condition=to_condition(rule.when),
            actions=_actions(rule.then, rule.id),
            position=position_of(i),
            description=rule.description,
        )
        for i, rule in enumerate(specs)
    )
    return ast.make_ruleset(
        ast.Kind(spec.kind),
        ast.HitPolicy(spec.hit_policy),
        rules,
        fallback_approver=spec.fallback_approver if isinstance(spec, ApprovalFile) else None,
        description=spec.description,
    )
