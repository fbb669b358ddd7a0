"""Choosing an evaluator: durable_rules (default) or the pure-Python reference (`PRM_RULES_ENGINE=python`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from rules import ast
from rules.outcome import Outcome
from rules.reference import ReferenceEvaluator

ENGINE_VARIABLE = "PRM_RULES_ENGINE"


class Evaluator(Protocol):
    """Evaluates a ruleset against lead facts; both evaluators give equal `Outcome`s."""

    name: str

    def evaluate(
        self, ruleset: ast.Ruleset, facts: Mapping[str, object], *, trace: bool = True
    ) -> Outcome: ...


def get_evaluator(name: str | None = None) -> Evaluator:
    """The evaluator named `name`, else by `PRM_RULES_ENGINE` (`durable`, the default, or `python`)."""
    choice = (name or os.environ.get(ENGINE_VARIABLE) or "durable").strip().lower()
    if choice == "python":
        return ReferenceEvaluator()
    if choice == "durable":
        from rules.engine import DurableEvaluator  # durable is imported only when chosen

        return DurableEvaluator()
    raise ValueError(f"{ENGINE_VARIABLE} must be 'durable' or 'python', not {choice!r}")
