"""Given/expect test cases that live next to a rules file (`NAME.tests.yaml` beside `NAME.yaml`).

A tests file::

    cases:
      - name: big EMEA deal needs the director
        given: {deal_size: 250000, region: EMEA}
        expect:
          fired: [cam-review, director-above-100k]   # exact, in order
          actions:                                   # only the keys given are compared
            steps: [...]
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rules import ast
from rules.checks import RuleContext
from rules.errors import Diagnostic, FactsInvalid, RulesError
from rules.evaluator import Evaluator, get_evaluator
from rules.loader import load_ruleset, parse_yaml, validation_diagnostics
from rules.outcome import decision_to_json


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    fired: list[str] | None = None
    actions: dict[str, Any] | None = None


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    given: dict[str, Any] = Field(default_factory=dict)
    expect: Expectation


class TestsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    cases: list[Case] = Field(min_length=1)


class TestsInvalid(RulesError):
    """A tests file failed to load; carries every error with its position."""

    code = "tests_invalid"

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


@dataclass(frozen=True)
class CaseResult:
    """One case: what fired, and every expectation that failed (each with a readable diff)."""

    name: str
    passed: bool
    fired: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()

    @property
    def diff(self) -> str:
        return "\n".join(self.failures)


@dataclass(frozen=True)
class TestReport:
    """Outcome of running a rules file's tests; `errors` are load problems of either file."""

    __test__ = False  # not a pytest class

    rules_path: str
    tests_path: str
    engine: str
    cases: tuple[CaseResult, ...] = ()
    errors: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.errors and all(c.passed for c in self.cases)

    def render(self) -> str:
        """Human-readable report: one line per case, the diff under each failure."""
        lines = [f"{self.rules_path} ({self.engine}):"]
        lines += [f"  error: {e}" for e in self.errors]
        for case in self.cases:
            lines.append(f"  {'PASS' if case.passed else 'FAIL'} {case.name}")
            lines += ["      " + line for line in case.diff.splitlines()]
        failed = sum(not c.passed for c in self.cases)
        lines.append(f"  {len(self.cases) - failed} passed, {failed} failed")
        return "\n".join(lines)


def tests_path_for(rules_path: Path) -> Path:
    """``approval.yaml`` -> ``approval.tests.yaml`` (same folder)."""
    return rules_path.with_name(rules_path.name.removesuffix(rules_path.suffix) + ".tests.yaml")


def _diff(label: str, expected: Any, actual: Any) -> str:
    want = json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    got = json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    body = difflib.unified_diff(want, got, f"expected {label}", f"actual {label}", lineterm="")
    return "\n".join(body)


def parse_tests(source: str, filename: str = "<tests>") -> TestsFile:
    """Validate a tests file's text; `TestsInvalid` with positions on any problem."""
    data, pos, diagnostics = parse_yaml(source, filename)
    if diagnostics:
        raise TestsInvalid(diagnostics)
    try:
        return TestsFile.model_validate(data)
    except ValidationError as exc:
        raise TestsInvalid(validation_diagnostics(exc, TestsFile, filename, pos)) from None


def run_case(ruleset: ast.Ruleset, case: Case, evaluator: Evaluator) -> CaseResult:
    """Evaluate one case and compare with its expectations."""
    try:
        outcome = evaluator.evaluate(ruleset, case.given)
    except FactsInvalid as exc:
        return CaseResult(case.name, False, (), (f"invalid facts: {exc}",))
    failures = []
    if case.expect.fired is not None and list(outcome.fired) != case.expect.fired:
        failures.append(_diff("fired", case.expect.fired, list(outcome.fired)))
    if case.expect.actions is not None:
        actual = decision_to_json(outcome.actions)
        unknown = sorted(set(case.expect.actions) - set(actual))
        if unknown:
            failures.append(f"unknown action keys {unknown}; known: {sorted(actual)}")
        shown = {k: actual.get(k) for k in case.expect.actions}
        if shown != case.expect.actions:
            failures.append(_diff("actions", case.expect.actions, shown))
    if failures:
        failures.append("why:\n" + "\n".join(f"  {r.rule_id}: {r.reason}" for r in outcome.results))
    return CaseResult(case.name, not failures, outcome.fired, tuple(failures))


def run_tests_text(
    ruleset: ast.Ruleset,
    source: str,
    *,
    filename: str = "<tests>",
    engine: Evaluator | str | None = None,
) -> list[CaseResult]:
    """Run the cases of a tests file's text against a loaded ruleset; `TestsInvalid` if malformed."""
    evaluator = engine if engine is not None and not isinstance(engine, str) else get_evaluator(engine)
    return [run_case(ruleset, case, evaluator) for case in parse_tests(source, filename).cases]


def run_tests(
    rules_path: Path | str,
    tests_path: Path | str | None = None,
    engine: Evaluator | str | None = None,
    context: RuleContext | None = None,
) -> TestReport:
    """Run the given/expect cases of a rules file (default: its sibling tests file) with `engine`."""
    rules_path = Path(rules_path)
    tests_file = Path(tests_path) if tests_path is not None else tests_path_for(rules_path)
    evaluator = engine if engine is not None and not isinstance(engine, str) else get_evaluator(engine)
    base = TestReport(str(rules_path), str(tests_file), evaluator.name)
    loaded = load_ruleset(rules_path, context)
    if loaded.ruleset is None:
        return replace(base, errors=tuple(str(d) for d in loaded.errors))
    try:
        source = tests_file.read_text(encoding="utf-8")
        cases = parse_tests(source, str(tests_file)).cases
    except OSError as exc:
        return replace(base, errors=(f"{tests_file}: cannot read: {exc.strerror}",))
    except TestsInvalid as exc:
        return replace(base, errors=tuple(str(d) for d in exc.diagnostics))
    return replace(base, cases=tuple(run_case(loaded.ruleset, case, evaluator) for case in cases))
