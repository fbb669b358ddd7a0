"""The shipped examples pass their tests; a wrong expectation fails with a readable diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rules import testcases
from rules.cli import rules_cli
from rules.testcases import run_tests, run_tests_text

EXAMPLES = Path(__file__).resolve().parents[3] / "rules" / "examples"


@pytest.mark.parametrize("engine", ["durable", "python"])
@pytest.mark.parametrize("name", ["assignment", "approval", "policy"])
def test_example_rules_files_pass_their_tests(name, engine):
    report = run_tests(EXAMPLES / f"{name}.yaml", engine=engine)
    assert report.passed, report.render()
    assert len(report.cases) >= 3


def test_wrong_expectation_fails_with_a_readable_diff(tmp_path):
    tests = tmp_path / "policy.tests.yaml"
    tests.write_text(
        "cases:\n  - name: referral\n    given: {registration_type: referral}\n"
        "    expect:\n      fired: [default-policy]\n      actions: {expiry_days: 90}\n"
    )
    report = run_tests(EXAMPLES / "policy.yaml", tests, engine="python")
    assert not report.passed
    text = report.render()
    assert "FAIL referral" in text
    assert '-  "default-policy"' in text and '+  "referrals-expire-fast"' in text
    assert '-  "expiry_days": 90' in text and '+  "expiry_days": 30' in text
    assert "default-policy: condition true (always)" in text


def test_malformed_tests_file_is_reported_with_positions():
    with pytest.raises(testcases.TestsInvalid) as info:
        run_tests_text(
            run_tests_ruleset(), "cases:\n  - name: x\n    gven: {}\n    expect: {}\n", filename="t.yaml"
        )
    assert "t.yaml:3:5: cases[0].gven: unknown field 'gven' (did you mean 'given'?)" in str(info.value)


def run_tests_ruleset():
    from rules.loader import load_ruleset

    return load_ruleset(EXAMPLES / "policy.yaml").unwrap()


def test_cli_check_prints_errors_with_positions_and_exits_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: policy\nhit_policy: first\nrules:\n  - id: a\n    when: {fact: regin, op: eq, value: x}\n"
    )
    result = CliRunner().invoke(rules_cli, ["check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:5:18: rules[0].when.fact: unknown fact 'regin' (did you mean 'region'?)" in result.output


def test_cli_check_and_test_accept_the_examples():
    runner = CliRunner()
    assert runner.invoke(rules_cli, ["check", str(EXAMPLES / "approval.yaml")]).exit_code == 0
    result = runner.invoke(rules_cli, ["test", str(EXAMPLES / "approval.yaml"), "--engine", "python"])
    assert result.exit_code == 0, result.output
    assert "3 passed, 0 failed" in result.output


def test_cli_test_exits_1_on_a_failing_case(tmp_path):
    rules_file = tmp_path / "p.yaml"
    rules_file.write_text((EXAMPLES / "policy.yaml").read_text())
    (tmp_path / "p.tests.yaml").write_text(
        "cases:\n  - name: wrong\n    given: {}\n    expect: {fired: [strategic-partners]}\n"
    )
    result = CliRunner().invoke(rules_cli, ["test", str(rules_file), "--engine", "python"])
    assert result.exit_code == 1
    assert "FAIL wrong" in result.output


def test_cli_schema_prints_the_json_schema():
    result = CliRunner().invoke(rules_cli, ["schema"])
    doc = json.loads(result.output)
    assert doc["title"] == "PRM rules file"
    assert {"AssignmentFile", "ApprovalFile", "PolicyFile"} <= set(doc["$defs"])
