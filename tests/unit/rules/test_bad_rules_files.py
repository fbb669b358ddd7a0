"""Every bad rules file is rejected with the exact position, path and message an admin needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.checks import RuleContext
from rules.loader import load_ruleset
from tests.unit.rules.bad_expectations import EXPECTED

BAD = Path(__file__).parent / "bad"
CONTEXT = RuleContext(
    users={"u.jane", "u.bob"},
    territories={"T-EMEA", "T-APAC"},
    members={"product": frozenset({"P-100", "P-200"})},
)


def test_every_bad_file_has_an_expectation():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_rules_file_is_reported_with_its_position(name):
    path = BAD / name
    result = load_ruleset(path, CONTEXT)
    assert result.ruleset is None
    rendered = [str(d) for d in result.errors]
    expected = f"{path}:{EXPECTED[name]}"
    assert any(line.startswith(expected) or expected in line for line in rendered), "\n".join(rendered)


def test_all_errors_are_collected_not_just_the_first():
    text = (
        "kind: policy\nhit_policy: first\nrules:\n"
        "  - id: a\n    when: {fact: regin, op: eq, value: x}\n"
        "  - id: b\n    whn: always\n"
        "  - id: c\n    when: {fact: deal_size, op: gt, value: '1'}\n"
    )
    errors = [str(d) for d in load_ruleset(text, filename="f.yaml").errors]
    assert errors == [
        "f.yaml:5:18: rules[0].when.fact: unknown fact 'regin' (did you mean 'region'?)",
        "f.yaml:7:5: rules[1].whn: unknown field 'whn' (did you mean 'when'?); "
        "allowed: id, description, priority, when, then",
        "f.yaml:9:44: rules[2].when.value: wrong value type: 'deal_size' is a number, got string '1'",
    ]


def test_missing_catch_all_under_collect_is_only_a_warning():
    text = (
        "kind: policy\nhit_policy: collect\nrules:\n  - id: a\n    when: {fact: region, op: eq, value: x}\n"
    )
    result = load_ruleset(text, filename="c.yaml")
    assert result.ok
    assert [str(w) for w in result.warnings] == [
        "c.yaml:3:1: rules: warning: no catch-all rule ('when: always'); leads matching no rule get no outcome"
    ]


def test_reference_checks_are_skipped_without_context():
    text = (
        "kind: assignment\nhit_policy: collect\nrules:\n  - id: a\n    then:\n"
        "      add_resources: [{user: u.nobody, role: channel_account_manager}]\n"
        "      add_territories: [T-NOWHERE]\n"
    )
    assert load_ruleset(text).ok
    assert not load_ruleset(text, RuleContext(users=set(), territories=set())).ok


def test_json_is_accepted_as_the_same_data():
    text = '{"kind": "policy", "hit_policy": "first", "rules": [{"id": "x", "when": "always"}]}'
    yaml_text = "kind: policy\nhit_policy: first\nrules:\n  - id: x\n    when: always\n"
    assert load_ruleset(text).unwrap().version == load_ruleset(yaml_text).unwrap().version
