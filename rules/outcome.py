"""What an evaluation returns: fired rules, merged actions, and per-rule explanations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from rules import ast
from rules.vocabulary import DEFAULT_EXPIRY_DAYS, DEFAULT_REQUIRED_FIELDS


@dataclass(frozen=True)
class AssignmentDecision:
    resources: tuple[ast.Resource, ...] = ()
    territories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalDecision:
    """Serial approval steps, then the file's fallback approver for when no CAM matches."""

    steps: tuple[ast.ApprovalStep, ...] = ()
    fallback_approver: str | None = None


@dataclass(frozen=True)
class PolicyDecision:
    expiry_days: int = DEFAULT_EXPIRY_DAYS
    required_fields: tuple[str, ...] = DEFAULT_REQUIRED_FIELDS
    transfer: str = "never"
    notify: tuple[ast.Notify, ...] = ()
    block_overlapping_registrations: bool = False
    #: Batch reassignment: ``reroute`` or ``keep`` open approval rounds; ``keep_owner``, ``move_team`` or
    #: ``move_owner`` for approved registrations and their opportunities.
    reassignment_pending: str = "reroute"
    reassignment_approved: str = "keep_owner"
    reassign_on_resubmit: bool = False  # a resubmitted registration is assigned afresh (new team)
    max_extensions: int | None = None  # None: no limit
    #: Facts naming members the territory model does not know: ``warn`` (default) or ``refuse`` at submit.
    unknown_values: str = "warn"
    transfer_updates: str = "manual"  # automatic: a transferred opportunity's changes go out by themselves


Decision: TypeAlias = AssignmentDecision | ApprovalDecision | PolicyDecision


@dataclass(frozen=True)
class RuleResult:
    """Whether one rule's condition held, and why, e.g. ``deal_size 500 < 100000 is false``."""

    rule_id: str
    matched: bool
    reason: str


@dataclass(frozen=True)
class Outcome:
    """Result of evaluating a ruleset against lead facts.

    `fired` lists the rules that fired (in file order for `collect`); `actions` is their merged
    decision. `results` (one per rule, file order) and `engine` explain; they are left out of equality
    so outcomes of the two evaluators compare on what was decided.
    """

    ruleset_version: str
    kind: ast.Kind
    hit_policy: ast.HitPolicy
    fired: tuple[str, ...]
    actions: Decision
    results: tuple[RuleResult, ...] = field(default=(), compare=False)
    engine: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        """JSON form for traces and the API."""
        return {
            "ruleset_version": self.ruleset_version,
            "kind": self.kind.value,
            "hit_policy": self.hit_policy.value,
            "engine": self.engine,
            "fired": list(self.fired),
            "actions": decision_to_json(self.actions),
            "results": [
                {"rule_id": r.rule_id, "matched": r.matched, "reason": r.reason} for r in self.results
            ],
        }


def decision_to_json(decision: Decision) -> dict[str, Any]:
    if isinstance(decision, AssignmentDecision):
        return {
            "resources": [{"user": r.user, "role": r.role} for r in decision.resources],
            "territories": list(decision.territories),
        }
    if isinstance(decision, ApprovalDecision):
        steps = ast.actions_to_json(ast.ApprovalActions(decision.steps))["steps"]
        return {"steps": steps, "fallback_approver": decision.fallback_approver}
    return {
        "expiry_days": decision.expiry_days,
        "required_fields": list(decision.required_fields),
        "transfer": decision.transfer,
        "notify": [
            {"event": n.event, "roles": list(n.roles), "users": list(n.users)} for n in decision.notify
        ],
        "block_overlapping_registrations": decision.block_overlapping_registrations,
        "reassignment": {
            "pending_approvals": decision.reassignment_pending,
            "approved": decision.reassignment_approved,
        },
        "reassign_on_resubmit": decision.reassign_on_resubmit,
        "max_extensions": decision.max_extensions,
        "unknown_values": decision.unknown_values,
        "transfer_updates": decision.transfer_updates,
    }


def _unique(items: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


#: (kind, version, fired) -> merged decision. Ruleset versions are content hashes, so an entry never
#: goes stale; a policy ruleset fires a handful of distinct combinations, so the cache stays small (it is
#: emptied if it ever reaches the cap).
_MERGED: dict[tuple[ast.Kind, str, tuple[str, ...]], Decision] = {}
_MERGED_CAP = 10_000


def merge_actions(ruleset: ast.Ruleset, fired: Sequence[str]) -> Decision:
    """`merge_actions_uncached`, remembered per ruleset version and fired rules."""
    if not ruleset.version:  # not built by make_ruleset: no identity to remember it by
        return merge_actions_uncached(ruleset, fired)
    key = (ruleset.kind, ruleset.version, tuple(fired))
    decision = _MERGED.get(key)
    if decision is None:
        if len(_MERGED) >= _MERGED_CAP:
            _MERGED.clear()
        decision = _MERGED[key] = merge_actions_uncached(ruleset, fired)
    return decision


def merge_actions_uncached(ruleset: ast.Ruleset, fired: Sequence[str]) -> Decision:
    """Merge the actions of the fired rules, in fired order.

    Lists are concatenated without duplicates (resources, territories, steps, required fields, notify
    recipients per event); for single values (expiry, transfer, blocking) the first rule that sets one
    wins; nothing set means the documented default.
    """
    actions = [ruleset.rule(rule_id).actions for rule_id in fired]
    if ruleset.kind is ast.Kind.ASSIGNMENT:
        assignment = [a for a in actions if isinstance(a, ast.AssignmentActions)]
        return AssignmentDecision(
            _unique([r for a in assignment for r in a.add_resources]),
            _unique([t for a in assignment for t in a.add_territories]),
        )
    if ruleset.kind is ast.Kind.APPROVAL:
        approval = [a for a in actions if isinstance(a, ast.ApprovalActions)]
        return ApprovalDecision(_unique([s for a in approval for s in a.steps]), ruleset.fallback_approver)
    policy = [a for a in actions if isinstance(a, ast.PolicyActions)]
    required = [a.required_fields for a in policy if a.required_fields is not None]
    notify: dict[str, tuple[list[str], list[str]]] = {}
    for a in policy:
        for n in a.notify:
            roles, users = notify.setdefault(n.event, ([], []))
            roles.extend(n.roles)
            users.extend(n.users)
    return PolicyDecision(
        expiry_days=next((a.expiry_days for a in policy if a.expiry_days is not None), DEFAULT_EXPIRY_DAYS),
        required_fields=_unique([f for r in required for f in r]) if required else DEFAULT_REQUIRED_FIELDS,
        transfer=next((a.transfer for a in policy if a.transfer is not None), "never"),
        notify=tuple(
            ast.Notify(event, _unique(roles), _unique(users))
            for event, (roles, users) in sorted(notify.items())
        ),
        block_overlapping_registrations=next(
            (
                a.block_overlapping_registrations
                for a in policy
                if a.block_overlapping_registrations is not None
            ),
            False,
        ),
        reassignment_pending=next(
            (a.reassignment_pending for a in policy if a.reassignment_pending is not None), "reroute"
        ),
        reassignment_approved=next(
            (a.reassignment_approved for a in policy if a.reassignment_approved is not None), "keep_owner"
        ),
        reassign_on_resubmit=next(
            (a.reassign_on_resubmit for a in policy if a.reassign_on_resubmit is not None), False
        ),
        max_extensions=next((a.max_extensions for a in policy if a.max_extensions is not None), None),
        unknown_values=next((a.unknown_values for a in policy if a.unknown_values is not None), "warn"),
        transfer_updates=next(
            (a.transfer_updates for a in policy if a.transfer_updates is not None), "manual"
        ),
    )
