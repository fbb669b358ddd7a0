"""The assignment decision: territory matching + the admins' policy rules -> sales team, approvers,
policy, and a trace that answers "why did this lead go to X and not Y" (pure; no database, no HTTP).

Approvers come from the approval ruleset's steps. A role in a step is resolved on the lead's lowest
matching territories: ``channel_account_manager`` is each lowest territory's CAM (walking up when the node
has none); any other role is the nearest holder on the path from the lowest territory up to the root.
When nothing resolves a step, the approval file's fallback approver takes it. Without an approval ruleset
the default is one parallel step for the CAM.

A subject that keeps its territory team (a registration submitted again) is decided on that team instead
of a fresh match: its territories are the lowest ones, so its approvers are the channel roles on the lead,
never a mix of its team and the territories its changed facts would match now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from rules import ast
from rules.evaluator import Evaluator
from rules.outcome import ApprovalDecision, AssignmentDecision, Outcome, PolicyDecision
from rules.reference import explain, explain_rule
from rules.vocabulary import FACTS, NormalizedFacts, normalize_facts
from territory.dimensions import BUILT_IN
from territory.errors import hint
from territory.snapshot import (
    CamAssignment,
    Candidates,
    Explanation,
    MatchResult,
    TerritorySnapshot,
    UnknownValue,
)
from territory.tree import CHANNEL_ACCOUNT_MANAGER

#: Losing territories a trace explains besides the matches (the closest by dimensions met); the others
#: are counted by reason. ``detail=full`` explains them all.
TRACE_CLOSEST_LOSERS = 3
#: Bounded traces' candidates a snapshot remembers (`_bounded_candidates`) before starting afresh.
CANDIDATES_CAP = 1_024

DEFAULT_STEP = ast.ApprovalStep(
    name="channel account manager", roles=(CHANNEL_ACCOUNT_MANAGER,), mode="parallel"
)


@dataclass(frozen=True)
class LeadFacts:
    """A lead's facts as given (matched against territories, shown in the trace, stored) and as checked
    against the vocabulary (what the rules compare). The edge that receives the facts checks them once,
    with `LeadFacts.check`; the decision never checks them again."""

    given: Mapping[str, Any]
    normalized: NormalizedFacts

    @classmethod
    def check(cls, facts: Mapping[str, Any]) -> LeadFacts:
        """Check `facts` against the vocabulary; raises `FactsInvalid` with every problem."""
        return cls(dict(facts), normalize_facts(facts))


@dataclass(frozen=True)
class ResolvedApprover:
    """One approver of one step and where it came from (``territory:KEY``, ``rule``, ``fallback``)."""

    user: str
    role: str
    source: str


@dataclass(frozen=True)
class ResolvedStep:
    name: str
    mode: str
    approvers: tuple[ResolvedApprover, ...]
    unresolved_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class _TraceInputs:
    """What the trace is built from, kept so it is built only when someone reads it."""

    facts: LeadFacts
    territory_facts: dict[str, str]
    snapshot: TerritorySnapshot | None
    rulesets: Mapping[ast.Kind, ast.Ruleset]
    outcomes: Mapping[ast.Kind, Outcome]
    cam: CamAssignment | None
    match: MatchResult | None = None  # the fresh match the decision made, if it made one


@dataclass(frozen=True)
class AssignmentDecisionResult:
    """Everything the assignment decided for one lead, plus its trace.

    The trace is built on first access (``trace``): explaining every rule and every losing candidate
    territory costs ten times the decision itself, and it is reproducible from what the decision keeps
    (the facts, the snapshot and the ruleset versions), so batch work that never reads it never pays.
    """

    matched: tuple[str, ...]
    lowest: tuple[str, ...]
    cam: str | None
    cam_territory: str | None
    resources: tuple[ast.Resource, ...]
    territory_team: tuple[str, ...]
    steps: tuple[ResolvedStep, ...]
    policy: PolicyDecision
    _inputs: _TraceInputs = field(compare=False, repr=False)
    kept_team: bool = False  # decided on the subject's own territory team, not on a fresh match
    #: Facts naming members the territory model does not know (they match only unrestricted territories).
    unknown_values: tuple[UnknownValue, ...] = ()

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """The unknown values as the API reports them (``field``, ``value``, ``message``, ``did_you_mean``)."""
        snapshot = self._inputs.snapshot
        if snapshot is None:
            return []
        return [warning_json(u, snapshot.suggestions(u)) for u in self.unknown_values]

    @property
    def territory_model_version(self) -> str | None:
        snapshot = self._inputs.snapshot
        return snapshot.model_version if snapshot else None

    @property
    def ruleset_versions(self) -> dict[str, str]:
        """Kind -> version of every ruleset the decision evaluated."""
        return {kind.value: o.ruleset_version for kind, o in self._inputs.outcomes.items()}

    @cached_property
    def trace(self) -> dict[str, Any]:
        """The bounded trace: versions, facts, root-to-winner paths, every rule's result, every matching
        territory and the ``TRACE_CLOSEST_LOSERS`` closest losers, the other losers counted by reason."""
        return self.trace_with(TRACE_CLOSEST_LOSERS)

    @cached_property
    def full_trace(self) -> dict[str, Any]:
        """The trace with every losing candidate explained (``?detail=full``)."""
        return self.trace_with(None)

    def trace_with(self, closest: int | None) -> dict[str, Any]:
        """The trace explaining the ``closest`` losing candidates (all of them for ``None``).

        The bounded trace leaves out what its decision says elsewhere: the facts (the decision carries
        them) and each ruleset's merged actions and version (the result and ``rulesets`` hold them), and
        explains only the fired rules (the others are counted).
        """
        i = self._inputs
        snapshot, cam = i.snapshot, i.cam
        rules: dict[str, Any] = {}
        facts = i.facts.normalized
        for kind, o in i.outcomes.items():
            ruleset = i.rulesets[kind]
            rules[kind.value] = (
                replace(o, results=explain(ruleset, facts)).to_json()
                if closest is None
                else _fired_rules_json(o, ruleset, facts)
            )
        return {
            "detail": "full" if closest is None else "summary",
            "territory_model_version": self.territory_model_version,
            "rulesets": self.ruleset_versions,
            **(
                {"facts": dict(i.facts.given), "territory_facts": i.territory_facts}
                if closest is None
                else {}
            ),
            "paths": {key: list(snapshot.path(key)) for key in self.lowest} if snapshot else {},
            "cam": {"user": cam.user, "territory": cam.territory, "inherited": cam.inherited}
            if cam
            else None,
            "rules": rules,
            **candidates_json(snapshot, i.territory_facts, closest, i.match),
        }

    def deferred_trace(self) -> dict[str, Any]:
        """The bounded trace without what costs to build and can be built again when it is read
        (`completed_trace`): each rule's result and the candidates' explanations. What the decision
        alone knows is kept: the versions, the paths, the CAM, each ruleset's hit policy, engine and
        fired rules. Building it costs a tenth of the trace's explanations."""
        i = self._inputs
        snapshot, cam = i.snapshot, i.cam
        rules: dict[str, Any] = {
            kind.value: {
                "kind": o.kind.value,
                "hit_policy": o.hit_policy.value,
                "engine": o.engine,
                "fired": list(o.fired),
            }
            for kind, o in i.outcomes.items()
        }
        return {
            "detail": "summary",
            "territory_model_version": self.territory_model_version,
            "rulesets": self.ruleset_versions,
            "paths": {key: list(snapshot.path(key)) for key in self.lowest} if snapshot else {},
            "cam": {"user": cam.user, "territory": cam.territory, "inherited": cam.inherited}
            if cam
            else None,
            "rules": rules,
            DEFERRED: {"closest": TRACE_CLOSEST_LOSERS},
        }

    @property
    def approvers(self) -> tuple[str, ...]:
        """Every approver user, in step order, without repeats."""
        return tuple(dict.fromkeys(a.user for s in self.steps for a in s.approvers))

    def to_json(self) -> dict[str, Any]:
        kept: dict[str, Any] = {"territories_from": "territory_team"} if self.kept_team else {}
        if self.unknown_values:  # left out when there are none: results stored before stay comparable
            kept["warnings"] = self.warnings
        return {
            **kept,
            "matched_territories": list(self.matched),
            "lowest_territories": list(self.lowest),
            "cam": self.cam,
            "cam_territory": self.cam_territory,
            "resources": [{"user": r.user, "role": r.role} for r in self.resources],
            "territory_team": list(self.territory_team),
            "approval_steps": [
                {
                    "name": s.name,
                    "mode": s.mode,
                    "approvers": [{"user": a.user, "role": a.role, "source": a.source} for a in s.approvers],
                    "unresolved_roles": list(s.unresolved_roles),
                }
                for s in self.steps
            ],
            "policy": {
                "expiry_days": self.policy.expiry_days,
                "required_fields": list(self.policy.required_fields),
                "transfer": self.policy.transfer,
                "block_overlapping_registrations": self.policy.block_overlapping_registrations,
                "reassignment": {
                    "pending_approvals": self.policy.reassignment_pending,
                    "approved": self.policy.reassignment_approved,
                },
                "reassign_on_resubmit": self.policy.reassign_on_resubmit,
                "max_extensions": self.policy.max_extensions,
                "unknown_values": self.policy.unknown_values,
                "transfer_updates": self.policy.transfer_updates,
                "notify": [
                    {"event": n.event, "roles": list(n.roles), "users": list(n.users)}
                    for n in self.policy.notify
                ],
            },
        }


def _fired_rules_json(outcome: Outcome, ruleset: ast.Ruleset, facts: NormalizedFacts) -> dict[str, Any]:
    """A ruleset's part of a bounded trace: why the fired rules fired (only they are explained), the
    others counted; its merged actions and version are left to the result and the trace's ``rulesets``."""
    fired = [rule for rule in ruleset.rules if rule.id in outcome.fired]
    return {
        "kind": outcome.kind.value,
        "hit_policy": outcome.hit_policy.value,
        "engine": outcome.engine,
        "fired": list(outcome.fired),
        "results": [
            {"rule_id": r.rule_id, "matched": r.matched, "reason": r.reason}
            for r in (explain_rule(rule, facts) for rule in fired)
        ],
        "results_omitted": len(ruleset.rules) - len(fired),
    }


def warning_json(u: UnknownValue, suggestions: Sequence[str]) -> dict[str, Any]:
    """One unknown value as decisions and what-if answers report it."""
    return {
        "code": "unknown_value",
        "field": u.dimension,
        "value": u.value,
        "message": f"unknown {u.dimension} {u.value!r} (it matches only territories unrestricted on "
        f"{u.dimension}){hint(suggestions)}",
        "did_you_mean": list(suggestions),
    }


def territory_facts(facts: Mapping[str, Any], snapshot: TerritorySnapshot | None = None) -> dict[str, str]:
    """The lead facts the territory matcher reads (one member key per dimension); with a snapshot, its
    declared dimensions too (from the fact named like the dimension, else from the dimension's source)."""
    if snapshot is not None:
        return snapshot.territory_facts(facts)
    out: dict[str, str] = {}
    for name in BUILT_IN:
        value = facts.get(name)
        if value is not None and value != "":
            out[name] = str(value)
    return out


def _nearest_holder(snapshot: TerritorySnapshot, territory: str, role: str) -> tuple[str, str] | None:
    for key in reversed(snapshot.path(territory)):
        holders = sorted(m.user for m in snapshot.team(key) if m.role == role)
        if holders:
            return holders[0], key
    return None


def _resolve_step(
    step: ast.ApprovalStep, snapshot: TerritorySnapshot | None, lowest: Sequence[str], fallback: str | None
) -> ResolvedStep:
    approvers: list[ResolvedApprover] = [ResolvedApprover(u, "named", "rule") for u in step.users]
    unresolved: list[str] = []
    for role in step.roles:
        found: list[ResolvedApprover] = []
        for territory in lowest if snapshot else ():
            if role == CHANNEL_ACCOUNT_MANAGER:
                cam = snapshot.cam_for(territory) if snapshot else None
                if cam:
                    found.append(ResolvedApprover(cam.user, role, f"territory:{cam.territory}"))
            else:
                holder = _nearest_holder(snapshot, territory, role) if snapshot else None
                if holder:
                    found.append(ResolvedApprover(holder[0], role, f"territory:{holder[1]}"))
        if not found:
            unresolved.append(role)
        approvers.extend(found)
    if not approvers and fallback:
        approvers.append(ResolvedApprover(fallback, "fallback", "fallback"))
    unique = tuple({a.user: a for a in reversed(approvers)}.values())[::-1]
    return ResolvedStep(step.name, step.mode, unique, tuple(unresolved))


def explanation_json(e: Explanation, *, brief: bool = False) -> dict[str, Any]:
    """An explanation as JSON; ``brief`` leaves out what the message and the trace's facts already say
    and what may be long (every member the territory includes)."""
    out: dict[str, Any] = {"territory": e.territory, "reason": e.reason.value, "message": e.message}
    names = ("dimension", "excluded_member", "depth", "lowest_depth", "dimensions_matched")
    for name in names if brief else ("lead_member", *names):
        value = getattr(e, name)
        if value is not None:
            out[name] = str(value) if name == "dimension" else value
    if e.territory_includes and not brief:
        out["territory_includes"] = list(e.territory_includes)
    if e.dimensions_failed and not (brief and e.dimensions_failed == (e.dimension,)):
        out["dimensions_failed"] = [str(d) for d in e.dimensions_failed]
    return out


def candidates_json(
    snapshot: TerritorySnapshot | None,
    tfacts: Mapping[str, str],
    closest: int | None,
    match: MatchResult | None = None,
) -> dict[str, Any]:
    """The trace's ``candidates`` (matches and the ``closest`` losers; all for ``None``) and
    ``candidates_omitted`` (how many losers were left out, by reason).

    The bounded form leaves out the ancestors on the winning paths (``paths`` lists them, and they
    matched): every other match, every tie and the closest losers stay.
    """
    if snapshot is None:
        return {"candidates": [], "candidates_omitted": {"count": 0, "reasons": {}}}
    brief = closest is not None
    found = (
        _bounded_candidates(snapshot, tfacts, closest, match)
        if closest is not None
        else snapshot.candidates(tfacts, closest, paths=True, match=match)
    )
    return {
        "candidates": [explanation_json(e, brief=brief) for e in found.explained],
        "candidates_omitted": {"count": found.omitted, "reasons": dict(found.omitted_reasons)},
    }


def _bounded_candidates(
    snapshot: TerritorySnapshot, tfacts: Mapping[str, str], closest: int, match: MatchResult | None
) -> Candidates:
    """The candidates of a bounded trace, remembered per snapshot: they depend on the territory facts
    alone (``match``, when given, is the snapshot's match of them), which leads share (a country, a
    product line), and explaining them was most of a bounded trace's cost. At most
    ``CANDIDATES_CAP`` are kept (the snapshot's own cap is for far smaller values)."""
    remembered: dict[tuple[Any, ...], Candidates] = snapshot.derived(("bounded candidates",), dict)
    key = (tuple(sorted(tfacts.items())), closest)
    found = remembered.get(key)
    if found is None:
        if len(remembered) >= CANDIDATES_CAP:
            remembered.clear()
        found = remembered[key] = snapshot.candidates(tfacts, closest, paths=False, match=match)
    return found


def deepest_territories(snapshot: TerritorySnapshot | None, keys: Sequence[str]) -> tuple[str, ...]:
    """The territories of a team that play the lowest matches' part: those of the snapshot that are no
    ancestor of another of them (in the team's order).

    >>> deepest_territories(None, ["JP", "JP-SEC"])
    ('JP', 'JP-SEC')
    """
    if snapshot is None:
        return tuple(dict.fromkeys(keys))
    present = [k for k in dict.fromkeys(keys) if k in snapshot]
    ancestors = {a for k in present for a in snapshot.path(k)[:-1]}
    return tuple(k for k in present if k not in ancestors)


def _with_dimensions(
    facts: LeadFacts, snapshot: TerritorySnapshot | None
) -> tuple[LeadFacts, dict[str, str]]:
    """The facts the rules see (with the snapshot's declared dimensions, which rules files test as text
    facts) and the territory facts."""
    tfacts = territory_facts(facts.given, snapshot)
    normalized = facts.normalized
    declared = snapshot.declared_dimensions if snapshot else ()
    extra = {k: tfacts[k] for k in declared if k in tfacts and k not in FACTS and k not in normalized}
    if extra:
        facts = LeadFacts(facts.given, NormalizedFacts({**normalized, **extra}))
    return facts, tfacts


#: The key of a stored trace whose explanations are left to be built when it is read (`completed_trace`).
DEFERRED = "explained_on_read"


def completed_trace(
    stored: Mapping[str, Any],
    facts: Mapping[str, Any],
    snapshot: TerritorySnapshot | None,
    rulesets: Mapping[ast.Kind, ast.Ruleset],
) -> dict[str, Any]:
    """The bounded trace (`AssignmentDecisionResult.trace`) of a decision stored with its explanations
    left out (`AssignmentDecisionResult.deferred_trace`), from its stored facts, on the territory model
    and the ruleset versions it used (whose content never changes): every rule's result explained, the
    candidates explained. A trace stored whole is returned as it is."""
    if DEFERRED not in stored:
        return dict(stored)
    checked, tfacts = _with_dimensions(LeadFacts.check(facts), snapshot)
    rules: dict[str, Any] = {}
    for kind, out in stored["rules"].items():
        ruleset = rulesets.get(ast.Kind(kind))
        results = explain(ruleset, checked.normalized) if ruleset is not None else ()
        fired = set(out["fired"])
        rules[kind] = {
            **out,
            "results": [
                {"rule_id": r.rule_id, "matched": r.matched, "reason": r.reason}
                for r in results
                if r.rule_id in fired
            ],
            "results_omitted": sum(1 for r in results if r.rule_id not in fired),
        }
    kept = {k: v for k, v in stored.items() if k != DEFERRED}
    return {
        **kept,
        "rules": rules,
        **candidates_json(snapshot, tfacts, stored[DEFERRED]["closest"]),
    }


def decide(
    facts: LeadFacts,
    snapshot: TerritorySnapshot | None,
    rulesets: Mapping[ast.Kind, ast.Ruleset],
    evaluator: Evaluator,
    *,
    territory_team: Sequence[str] | None = None,
) -> AssignmentDecisionResult:
    """Decide territories, CAM, rule-based resources, approvers and policy for one lead's checked facts.

    With ``territory_team`` (the subject keeps the team it has) the team's deepest territories take the
    place of the lowest matches: the CAM and the approvers' roles resolve on them.

    Examples
    --------
    >>> from rules.reference import ReferenceEvaluator
    >>> decide(LeadFacts.check({"customer": "C-1"}), None, {}, ReferenceEvaluator()).approvers
    ()
    """
    facts, tfacts = _with_dimensions(facts, snapshot)
    unknown = snapshot.unknown_values(tfacts) if snapshot else ()
    kept_team = territory_team is not None
    match = None
    if territory_team is not None:
        matched = lowest = deepest_territories(snapshot, territory_team)
    else:
        match = snapshot.match(tfacts) if snapshot else None
        matched = match.matched if match else ()
        lowest = match.lowest if match else ()

    # checked facts: the evaluators' own check of them returns them as they are
    outcomes: dict[ast.Kind, Outcome] = {
        kind: evaluator.evaluate(ruleset, facts.normalized, trace=False) for kind, ruleset in rulesets.items()
    }
    assignment = outcomes.get(ast.Kind.ASSIGNMENT)
    approval = outcomes.get(ast.Kind.APPROVAL)
    policy_outcome = outcomes.get(ast.Kind.POLICY)

    cam = snapshot.cam_for(lowest[0]) if snapshot and lowest else None
    resources: list[ast.Resource] = []
    if cam:
        resources.append(ast.Resource(cam.user, CHANNEL_ACCOUNT_MANAGER))
    team = list(lowest)
    if assignment and isinstance(assignment.actions, AssignmentDecision):
        resources.extend(assignment.actions.resources)
        team.extend(assignment.actions.territories)
        if snapshot:
            for key in assignment.actions.territories:
                if key in snapshot:
                    resources.extend(ast.Resource(m.user, m.role) for m in snapshot.team(key))

    approval_actions = (
        approval.actions if approval and isinstance(approval.actions, ApprovalDecision) else None
    )
    steps_in = approval_actions.steps if approval_actions and approval_actions.steps else (DEFAULT_STEP,)
    fallback = approval_actions.fallback_approver if approval_actions else None
    if snapshot is None:
        steps = tuple(_resolve_step(step, None, lowest, fallback) for step in steps_in)
    else:  # the same steps on the same lowest territories resolve alike: remembered per snapshot
        steps = snapshot.derived(
            ("approval steps", steps_in, lowest, fallback),
            lambda: tuple(_resolve_step(step, snapshot, lowest, fallback) for step in steps_in),
        )
    policy = (
        policy_outcome.actions
        if policy_outcome and isinstance(policy_outcome.actions, PolicyDecision)
        else PolicyDecision()
    )

    return AssignmentDecisionResult(
        matched=matched,
        lowest=lowest,
        cam=cam.user if cam else None,
        cam_territory=cam.territory if cam else None,
        resources=tuple(dict.fromkeys(resources)),
        territory_team=tuple(dict.fromkeys(team)),
        steps=steps,
        policy=policy,
        _inputs=_TraceInputs(facts, tfacts, snapshot, rulesets, outcomes, cam, match),
        kept_team=kept_team,
        unknown_values=unknown,
    )


def why_not_territory(
    snapshot: TerritorySnapshot, facts: Mapping[str, Any], territory: str
) -> dict[str, Any]:
    """Answer "why not territory X" for a lead's facts."""
    return explanation_json(snapshot.explain(territory_facts(facts, snapshot), territory))
