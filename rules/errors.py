"""Exceptions and diagnostics of the rules package."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in a rules file, printed as ``file:line:column: path: message``.

    `line` and `column` are 1-based; `path` is the dotted/indexed path of the offending node, such as
    ``rules[2].when.all[0].op`` (empty for the document itself).
    """

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{self.file}:{self.line}:{self.column}: {self.path}: {prefix}{self.message}"


class RulesError(Exception):
    """Root of the rules package's exceptions."""

    code = "rules_error"


class RulesetInvalid(RulesError):
    """A rules file failed to load: carries every error found, with positions."""

    code = "ruleset_invalid"

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics) or "ruleset invalid")


class FactsInvalid(RulesError):
    """Lead facts do not fit the declared vocabulary (wrong type, value outside an enum)."""

    code = "facts_invalid"

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class EngineFailure(RulesError):
    """The durable_rules engine failed or misbehaved while evaluating a ruleset."""

    code = "rules_engine_failure"


class VerificationFailed(RulesError):
    """A new ruleset version failed its smoke evaluation in a subprocess (error or timeout)."""

    code = "ruleset_verification_failed"
