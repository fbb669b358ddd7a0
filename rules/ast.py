"""Our own small, immutable rule AST: what is validated, stored, diffed and explained.

A `Ruleset` serialises to canonical JSON; the sha256 of that JSON (without source positions) is the
ruleset's version id, so the same rules always get the same version whatever the comments or layout.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeAlias

Scalar: TypeAlias = str | int | float
Value: TypeAlias = Scalar | bool | tuple[Scalar, ...] | None


class Kind(StrEnum):
    ASSIGNMENT = "assignment"
    APPROVAL = "approval"
    POLICY = "policy"


class HitPolicy(StrEnum):
    FIRST = "first"
    PRIORITY = "priority"
    COLLECT = "collect"


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    IN = "in"
    NOT_IN = "not_in"
    EXISTS = "exists"


NUMBER_OPS = frozenset({Op.LT, Op.LTE, Op.GT, Op.GTE})
SET_OPS = frozenset({Op.IN, Op.NOT_IN})


# -- conditions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Always:
    """The catch-all condition (`when: always` or no `when`)."""


@dataclass(frozen=True)
class Compare:
    """`fact op value`. `value` is a tuple for in/not_in, a bool for exists (true: the fact is present)."""

    fact: str
    op: Op
    value: Value


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition: TypeAlias = Always | Compare | AllOf | AnyOf | Not


# -- actions ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """A user added to the lead's sales team with a role."""

    user: str
    role: str


@dataclass(frozen=True)
class AssignmentActions:
    add_resources: tuple[Resource, ...] = ()
    add_territories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalStep:
    """One serial approval step; `parallel`: the first decision decides, `all`: everyone must approve."""

    name: str
    roles: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    mode: str = "parallel"


@dataclass(frozen=True)
class ApprovalActions:
    steps: tuple[ApprovalStep, ...] = ()


@dataclass(frozen=True)
class Notify:
    event: str
    roles: tuple[str, ...] = ()
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyActions:
    expiry_days: int | None = None
    required_fields: tuple[str, ...] | None = None
    transfer: str | None = None
    notify: tuple[Notify, ...] = ()
    block_overlapping_registrations: bool | None = None
    reassignment_pending: str | None = None
    reassignment_approved: str | None = None
    reassign_on_resubmit: bool | None = None
    max_extensions: int | None = None
    unknown_values: str | None = None
    transfer_updates: str | None = None


Actions: TypeAlias = AssignmentActions | ApprovalActions | PolicyActions


@dataclass(frozen=True)
class Position:
    """Where a rule was written (1-based), for messages and traces."""

    file: str
    line: int
    column: int


@dataclass(frozen=True)
class Rule:
    id: str
    priority: int
    condition: Condition
    actions: Actions
    position: Position | None = field(default=None, compare=False)
    description: str | None = None

    @property
    def is_catch_all(self) -> bool:
        return isinstance(self.condition, Always)


@dataclass(frozen=True)
class Ruleset:
    """A compiled rules file. `version` is the content hash; build with `make_ruleset`."""

    kind: Kind
    hit_policy: HitPolicy
    rules: tuple[Rule, ...]
    version: str = ""
    fallback_approver: str | None = None
    description: str | None = None

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def ranked(self) -> tuple[Rule, ...]:
        """Rules in the order the hit policy considers them (priority: highest first, ties by file order)."""
        if self.hit_policy is HitPolicy.PRIORITY:
            order = sorted(range(len(self.rules)), key=lambda i: (-self.rules[i].priority, i))
            return tuple(self.rules[i] for i in order)
        return self.rules


def make_ruleset(
    kind: Kind,
    hit_policy: HitPolicy,
    rules: tuple[Rule, ...],
    *,
    fallback_approver: str | None = None,
    description: str | None = None,
) -> Ruleset:
    """Build a `Ruleset` and stamp its content-hash version."""
    ruleset = Ruleset(kind, hit_policy, rules, "", fallback_approver, description)
    return replace(ruleset, version=content_hash(ruleset))


# -- JSON -------------------------------------------------------------------------------------------


def condition_to_json(cond: Condition) -> dict[str, Any]:
    if isinstance(cond, Always):
        return {"always": True}
    if isinstance(cond, Compare):
        value = list(cond.value) if isinstance(cond.value, tuple) else cond.value
        return {"fact": cond.fact, "op": cond.op.value, "value": value}
    if isinstance(cond, AllOf):
        return {"all": [condition_to_json(c) for c in cond.items]}
    if isinstance(cond, AnyOf):
        return {"any": [condition_to_json(c) for c in cond.items]}
    return {"not": condition_to_json(cond.item)}


def condition_from_json(data: Mapping[str, Any]) -> Condition:
    if "always" in data:
        return Always()
    if "fact" in data:
        value = data["value"]
        return Compare(data["fact"], Op(data["op"]), tuple(value) if isinstance(value, list) else value)
    if "all" in data:
        return AllOf(tuple(condition_from_json(c) for c in data["all"]))
    if "any" in data:
        return AnyOf(tuple(condition_from_json(c) for c in data["any"]))
    return Not(condition_from_json(data["not"]))


def actions_to_json(actions: Actions) -> dict[str, Any]:
    if isinstance(actions, AssignmentActions):
        return {
            "add_resources": [{"user": r.user, "role": r.role} for r in actions.add_resources],
            "add_territories": list(actions.add_territories),
        }
    if isinstance(actions, ApprovalActions):
        return {
            "steps": [
                {"name": s.name, "roles": list(s.roles), "users": list(s.users), "mode": s.mode}
                for s in actions.steps
            ]
        }
    out: dict[str, Any] = {
        "expiry_days": actions.expiry_days,
        "required_fields": None if actions.required_fields is None else list(actions.required_fields),
        "transfer": actions.transfer,
        "notify": [
            {"event": n.event, "roles": list(n.roles), "users": list(n.users)} for n in actions.notify
        ],
        "block_overlapping_registrations": actions.block_overlapping_registrations,
    }
    # Only when set, so the versions (content hashes) of rulesets written before it stay what they were.
    if actions.reassignment_pending is not None or actions.reassignment_approved is not None:
        out["reassignment"] = {
            "pending_approvals": actions.reassignment_pending,
            "approved": actions.reassignment_approved,
        }
    if actions.reassign_on_resubmit is not None:
        out["reassign_on_resubmit"] = actions.reassign_on_resubmit
    if actions.max_extensions is not None:  # left out when unset: earlier files keep their version hash
        out["max_extensions"] = actions.max_extensions
    if actions.unknown_values is not None:  # likewise
        out["unknown_values"] = actions.unknown_values
    if actions.transfer_updates is not None:  # likewise
        out["transfer_updates"] = actions.transfer_updates
    return out


def actions_from_json(kind: Kind, data: Mapping[str, Any]) -> Actions:
    if kind is Kind.ASSIGNMENT:
        return AssignmentActions(
            tuple(Resource(r["user"], r["role"]) for r in data["add_resources"]),
            tuple(data["add_territories"]),
        )
    if kind is Kind.APPROVAL:
        return ApprovalActions(
            tuple(
                ApprovalStep(s["name"], tuple(s["roles"]), tuple(s["users"]), s["mode"])
                for s in data["steps"]
            )
        )
    required = data["required_fields"]
    return PolicyActions(
        data["expiry_days"],
        None if required is None else tuple(required),
        data["transfer"],
        tuple(Notify(n["event"], tuple(n["roles"]), tuple(n["users"])) for n in data["notify"]),
        data["block_overlapping_registrations"],
        (data.get("reassignment") or {}).get("pending_approvals"),
        (data.get("reassignment") or {}).get("approved"),
        data.get("reassign_on_resubmit"),
        data.get("max_extensions"),
        data.get("unknown_values"),
        data.get("transfer_updates"),
    )


def _rule_to_json(rule: Rule, *, positions: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": rule.id,
        "priority": rule.priority,
        "description": rule.description,
        "when": condition_to_json(rule.condition),
        "then": actions_to_json(rule.actions),
    }
    if positions and rule.position is not None:
        p = rule.position
        out["position"] = {"file": p.file, "line": p.line, "column": p.column}
    return out


def ruleset_to_json(ruleset: Ruleset, *, positions: bool = True) -> dict[str, Any]:
    """The JSON document stored for a ruleset version (positions included unless asked not to)."""
    return {
        "version": ruleset.version,
        "kind": ruleset.kind.value,
        "hit_policy": ruleset.hit_policy.value,
        "description": ruleset.description,
        "fallback_approver": ruleset.fallback_approver,
        "rules": [_rule_to_json(r, positions=positions) for r in ruleset.rules],
    }


def ruleset_from_json(data: Mapping[str, Any]) -> Ruleset:
    """Rebuild a stored ruleset; raises `ValueError` if its content does not match its version."""
    kind = Kind(data["kind"])
    rules = []
    for r in data["rules"]:
        pos = r.get("position")
        rules.append(
            Rule(
                id=r["id"],
                priority=r["priority"],
                condition=condition_from_json(r["when"]),
                actions=actions_from_json(kind, r["then"]),
                position=Position(pos["file"], pos["line"], pos["column"]) if pos else None,
                description=r.get("description"),
            )
        )
    ruleset = make_ruleset(
        kind,
        HitPolicy(data["hit_policy"]),
        tuple(rules),
        fallback_approver=data.get("fallback_approver"),
        description=data.get("description"),
    )
    stored = data.get("version")
    if stored and stored != ruleset.version:
        raise ValueError(f"ruleset content does not match its version {stored} (got {ruleset.version})")
    return ruleset


def canonical_json(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(ruleset: Ruleset) -> str:
    """sha256 over the canonical JSON of the ruleset's content (no version, no positions)."""
    doc = ruleset_to_json(ruleset, positions=False)
    del doc["version"]
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()
