"""Semantic checks that run after the schema: ids, facts, types, references, shadowing, catch-all."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rules import ast
from rules.build import canonical_condition, to_condition
from rules.compiler import complexity_problem
from rules.errors import Diagnostic, Severity
from rules.spec import (
    ApprovalFile,
    ApprovalThen,
    AssignmentThen,
    ConditionSpec,
    PolicyThen,
    RulesFile,
    RuleSpec,
)
from rules.vocabulary import FACTS, ROLES, FactSpec, FactType, normalize_number

PathKey = tuple[str | int, ...]
#: (path, key=False) -> 1-based (line, column) of that node in the file
Locate = Callable[..., tuple[int, int]]


@dataclass(frozen=True)
class RuleContext:
    """Names a rules file may refer to. A `None` field skips that reference check.

    `roles` extends the built-in roles (`rules.vocabulary.ROLES`); `members` maps a fact (dimension) to
    its known member keys, e.g. ``{"product": {"P-100", "P-200"}}``.
    """

    users: frozenset[str] | None = None
    territories: frozenset[str] | None = None
    roles: frozenset[str] = frozenset()
    members: Mapping[str, frozenset[str]] | None = field(default=None)
    #: Dimensions declared on the territory models (a file's ``dimensions`` must name some of them).
    dimensions: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for name in ("users", "territories", "roles", "dimensions"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))
        if self.members is not None:
            object.__setattr__(self, "members", {k: frozenset(v) for k, v in self.members.items()})


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fmt(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Checker:
    def __init__(
        self,
        rules: Sequence[tuple[int, RuleSpec]],
        hit_policy: str,
        context: RuleContext | None,
        locate: Locate,
        filename: str,
    ) -> None:
        self.rules = rules
        self.hit_policy = hit_policy
        self.context = context or RuleContext()
        self.locate = locate
        self.filename = filename
        self.out: list[Diagnostic] = []
        self.facts: dict[str, FactSpec] = dict(FACTS)

    def declare(self, dimensions: Sequence[str]) -> None:
        """Make the file's declared dimensions text facts; report those no territory model declares."""
        known = self.context.dimensions
        for i, name in enumerate(dimensions):
            if name in FACTS:
                self.report(("dimensions", i), f"'{name}' is a built-in fact; list declared dimensions only")
                continue
            if known is not None and name not in known:
                self.report(
                    ("dimensions", i),
                    f"no territory model declares a dimension '{name}'{_suggest(name, known)}",
                )
            self.facts[name] = FactSpec(FactType.STRING, f"declared dimension {name}")

    def report(
        self, path: PathKey, message: str, *, key: bool = False, severity: Severity = Severity.ERROR
    ) -> None:
        line, col = self.locate(path, key=key)
        self.out.append(Diagnostic(self.filename, line, col, _fmt(path), message, severity))

    # -- conditions ---------------------------------------------------------------------------------

    def condition(self, cond: ConditionSpec, path: PathKey) -> None:
        for name, items in (("all", cond.all_), ("any", cond.any_)):
            for i, child in enumerate(items or ()):
                self.condition(child, (*path, name, i))
        if cond.not_ is not None:
            self.condition(cond.not_, (*path, "not"))
        if cond.fact is not None and cond.op is not None:
            self.comparison(cond, path)

    def comparison(self, cond: ConditionSpec, path: PathKey) -> None:
        fact, op = cond.fact or "", ast.Op(cond.op or "")
        spec = self.facts.get(fact)
        if spec is None:
            self.report((*path, "fact"), f"unknown fact '{fact}'{_suggest(fact, self.facts)}")
            return
        vpath = (*path, "value")
        has_value = "value" in cond.model_fields_set
        if op is ast.Op.EXISTS:
            if has_value and not isinstance(cond.value, bool):
                self.report(vpath, f"'exists' takes true or false, got {_type(cond.value)}")
            return
        if not has_value:
            self.report(path, f"missing 'value' for operator '{op}'")
            return
        if op in ast.NUMBER_OPS and spec.type is not FactType.NUMBER:
            self.report((*path, "op"), f"operator '{op}' needs a number fact; '{fact}' is a {spec.type}")
            return
        if op in ast.SET_OPS:
            if not isinstance(cond.value, list):
                self.report(vpath, f"operator '{op}' takes a list, got {_type(cond.value)}")
                return
            if not cond.value:
                self.report(vpath, f"operator '{op}' needs at least one value")
            for i, item in enumerate(cond.value):
                self.scalar(fact, item, (*vpath, i))
        else:
            self.scalar(fact, cond.value, vpath)

    def scalar(self, fact: str, value: Any, path: PathKey) -> None:
        spec = self.facts[fact]
        if spec.type is FactType.NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.report(path, f"wrong value type: '{fact}' is a number, got {_type(value)}")
                return
            try:
                normalize_number(value)
            except ValueError as exc:
                self.report(path, str(exc))
            return
        if not isinstance(value, str):
            self.report(path, f"wrong value type: '{fact}' is a {spec.type}, got {_type(value)}")
            return
        if spec.type is FactType.ENUM and value not in spec.values:
            self.report(
                path,
                f"'{value}' is not a value of '{fact}'{_suggest(value, spec.values)}; "
                f"expected one of: {', '.join(spec.values)}",
            )
            return
        members = (self.context.members or {}).get(fact)
        if members is not None and value not in members:
            self.report(path, f"unknown {fact} '{value}'{_suggest(value, members)}")

    # -- references ---------------------------------------------------------------------------------

    def role(self, role: str, path: PathKey) -> None:
        known = ROLES | self.context.roles
        if role not in known:
            self.report(path, f"unknown role '{role}'{_suggest(role, known)}")

    def user(self, user: str, path: PathKey) -> None:
        users = self.context.users
        if users is not None and user not in users:
            self.report(path, f"unknown user '{user}'{_suggest(user, users)}")

    def territory(self, territory: str, path: PathKey) -> None:
        known = self.context.territories
        if known is not None and territory not in known:
            self.report(path, f"unknown territory '{territory}'{_suggest(territory, known)}")

    def actions(self, then: AssignmentThen | ApprovalThen | PolicyThen, path: PathKey) -> None:
        if isinstance(then, AssignmentThen):
            for i, res in enumerate(then.add_resources):
                self.user(res.user, (*path, "add_resources", i, "user"))
                self.role(res.role, (*path, "add_resources", i, "role"))
            for i, territory in enumerate(then.add_territories):
                self.territory(territory, (*path, "add_territories", i))
        elif isinstance(then, ApprovalThen):
            for i, step in enumerate(then.steps):
                for j, role in enumerate(step.roles):
                    self.role(role, (*path, "steps", i, "roles", j))
                for j, user in enumerate(step.users):
                    self.user(user, (*path, "steps", i, "users", j))
        else:
            for event, target in then.notify.items():
                for j, role in enumerate(target.roles):
                    self.role(role, (*path, "notify", event, "roles", j))
                for j, user in enumerate(target.users):
                    self.user(user, (*path, "notify", event, "users", j))

    # -- whole file ---------------------------------------------------------------------------------

    def run(self, fallback_approver: str | None, *, whole_file: bool) -> list[Diagnostic]:
        seen: dict[str, int] = {}
        for i, rule in self.rules:
            if rule.id in seen:
                line, _ = self.locate(("rules", seen[rule.id], "id"))
                self.report(("rules", i, "id"), f"duplicate rule id '{rule.id}' (first used on line {line})")
            else:
                seen[rule.id] = i
            if rule.when is not None:
                self.condition(rule.when, ("rules", i, "when"))
            self.actions(rule.then, ("rules", i, "then"))
            if rule.priority and self.hit_policy != "priority":
                self.report(
                    ("rules", i, "priority"),
                    f"priority is ignored under hit policy '{self.hit_policy}'",
                    severity=Severity.WARNING,
                )
        if fallback_approver is not None:
            self.user(fallback_approver, ("fallback_approver",))
        if not any(d.severity is Severity.ERROR for d in self.out):
            for i, rule in self.rules:
                problem = complexity_problem(to_condition(rule.when)) if rule.when is not None else None
                if problem:
                    self.report(("rules", i, "when"), problem)
        if whole_file and not any(d.severity is Severity.ERROR for d in self.out):
            self.shadowing()
        return sorted(self.out, key=lambda d: (d.line, d.column))

    def shadowing(self) -> None:
        rules = [rule for _, rule in self.rules]
        policy = self.hit_policy
        conditions = [canonical_condition(to_condition(r.when)) for r in rules]
        if policy == "collect":
            if not any(isinstance(c, ast.Always) for c in conditions):
                self.report(
                    ("rules",),
                    "no catch-all rule ('when: always'); leads matching no rule get no outcome",
                    key=True,
                    severity=Severity.WARNING,
                )
            return
        order = list(range(len(rules)))
        if policy == "priority":
            order.sort(key=lambda i: (-rules[i].priority, i))
        for rank, j in enumerate(order):
            for i in order[:rank]:
                if isinstance(conditions[i], ast.Always) or conditions[i] == conditions[j]:
                    line, _ = self.locate(("rules", i))
                    why = "catch-all rule" if isinstance(conditions[i], ast.Always) else "rule"
                    same = "" if isinstance(conditions[i], ast.Always) else " with the same condition"
                    self.report(
                        ("rules", j, "id"),
                        f"rule '{rules[j].id}' can never fire under hit policy '{policy}': "
                        f"shadowed by {why} '{rules[i].id}' (line {line}){same}",
                    )
                    break
        if not any(isinstance(c, ast.Always) for c in conditions):
            last = "with the lowest priority" if policy == "priority" else "as the last rule"
            self.report(
                ("rules",),
                f"missing catch-all rule: hit policy '{policy}' needs a rule with 'when: always' {last}",
                key=True,
            )


def _type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "mapping"}
    text = repr(value)
    return f"{names.get(type(value), type(value).__name__)} {text if len(text) <= 30 else text[:27] + '...'}"


def check_spec(
    spec: RulesFile, context: RuleContext | None, locate: Locate, filename: str
) -> list[Diagnostic]:
    """Every semantic error and warning in a schema-valid rules file, ordered by position."""
    fallback = spec.fallback_approver if isinstance(spec, ApprovalFile) else None
    checker = _Checker(list(enumerate(spec.rules)), spec.hit_policy, context, locate, filename)
    checker.declare(spec.dimensions)
    return checker.run(fallback, whole_file=True)


def check_rules(
    rules: Sequence[tuple[int, RuleSpec]],
    hit_policy: str,
    context: RuleContext | None,
    locate: Locate,
    filename: str,
    dimensions: Sequence[str] = (),
) -> list[Diagnostic]:
    """Rule-level checks of the schema-valid rules of a file that has schema errors elsewhere.

    File-level checks (shadowing, catch-all) need every rule and are left out.
    """
    checker = _Checker(rules, hit_policy, context, locate, filename)
    for name in dimensions:
        checker.facts.setdefault(name, FactSpec(FactType.STRING, f"declared dimension {name}"))
    return checker.run(None, whole_file=False)
