"""The demo rulesets pass their own given/expect tests with both evaluators."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.testcases import run_tests

DEMO = Path(__file__).resolve().parents[2] / "rules" / "demo"


@pytest.mark.parametrize("engine", ["durable", "python"])
@pytest.mark.parametrize("kind", ["assignment", "approval", "policy"])
def test_demo_ruleset_passes_its_tests(kind, engine):
    report = run_tests(DEMO / f"{kind}.yaml", engine=engine)
    assert report.cases, "the demo ruleset has test cases"
    assert report.passed, report.render()
