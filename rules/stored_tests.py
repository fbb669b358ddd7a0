"""Run a tests file, posted as text, against a stored ruleset version (pure; no database, no HTTP).

Same file format and the same pass/fail rules as ``prm rules test`` (`rules.testcases`): ``fired`` is
compared exactly and in order, ``actions`` only on the keys given. Problems in the tests file itself are
diagnostics with positions, like a rules file's.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.reader import ReaderError

from rules import ast
from rules.errors import Diagnostic, FactsInvalid, RulesetInvalid
from rules.evaluator import Evaluator
from rules.loader import Positions, _plain, _Unsupported, format_path
from rules.outcome import decision_to_json
from rules.testcases import Case, TestsFile


@dataclass(frozen=True)
class CaseOutcome:
    """One case: whether it passed, what fired, and what differed from its `expect`."""

    name: str
    passed: bool
    fired: tuple[str, ...]
    failures: tuple[str, ...]


def parse_tests(text: str, filename: str) -> TestsFile:
    """The tests file's cases; `RulesetInvalid` lists every problem as ``file:line:column: path: ...``."""
    pos = Positions()
    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise RulesetInvalid([Diagnostic(filename, line, col, "", f"YAML syntax error: {problem}")]) from None
    except ReaderError as exc:  # a control character: no mark, only an offset
        offset = max(0, min(int(exc.position), len(text)))
        line, col = text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)
        raise RulesetInvalid(
            [Diagnostic(filename, line, col, "", f"YAML syntax error: {exc.reason}")]
        ) from None
    if not isinstance(doc, CommentedMap):
        raise RulesetInvalid([Diagnostic(filename, 1, 1, "", "a tests file is a mapping with 'cases'")])
    pos.values[()] = (1, 1)
    try:
        data = _plain(doc, (), pos)
    except _Unsupported as exc:
        line, col = pos.of(exc.path)
        raise RulesetInvalid([Diagnostic(filename, line, col, format_path(exc.path), exc.what)]) from None
    try:
        return TestsFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = list(err["loc"])
            line, col = pos.of(loc, key=err["type"] == "extra_forbidden")
            message = f"unknown field '{loc[-1]}'" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(Diagnostic(filename, line, col, format_path(loc), message))
        raise RulesetInvalid(problems) from None


def _diff(label: str, expected: Any, actual: Any) -> str:
    want = json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    got = json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    return "\n".join(difflib.unified_diff(want, got, f"expected {label}", f"actual {label}", lineterm=""))


def run_case(ruleset: ast.Ruleset, case: Case, evaluator: Evaluator) -> CaseOutcome:
    """Evaluate one case's `given` facts and compare with its `expect`."""
    try:
        outcome = evaluator.evaluate(ruleset, case.given)
    except FactsInvalid as exc:
        return CaseOutcome(case.name, False, (), (f"invalid facts: {exc}",))
    failures = []
    expect = case.expect
    if expect.fired is not None and list(outcome.fired) != expect.fired:
        failures.append(_diff("fired", expect.fired, list(outcome.fired)))
    if expect.actions is not None:
        actual = decision_to_json(outcome.actions)
        unknown = sorted(set(expect.actions) - set(actual))
        if unknown:
            failures.append(f"unknown action keys {unknown}; known: {sorted(actual)}")
        shown = {k: actual.get(k) for k in expect.actions}
        if shown != expect.actions:
            failures.append(_diff("actions", expect.actions, shown))
    return CaseOutcome(case.name, not failures, outcome.fired, tuple(failures))


def run_tests_text(
    ruleset: ast.Ruleset, text: str, evaluator: Evaluator, *, filename: str = "tests.yaml"
) -> list[CaseOutcome]:
    """Run every case of a tests file's text against `ruleset`."""
    return [run_case(ruleset, case, evaluator) for case in parse_tests(text, filename).cases]
