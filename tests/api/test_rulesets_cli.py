"""``prm rules upload|activate|rollback|list``: the stored-version commands, on both databases."""

from __future__ import annotations

import pytest

from tests.api import rulesets_files as files


@pytest.fixture
def run(app):
    runner = app.test_cli_runner()

    def invoke(*args: str):
        return runner.invoke(args=["rules", *args])

    return invoke


@pytest.fixture
def write(tmp_path):
    def write_file(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write_file


def listing(run, *args: str) -> list[list[str]]:
    result = run("list", *args)
    assert result.exit_code == 0, result.output
    return [line.split()[:3] for line in result.output.splitlines()]


def test_upload_stores_a_draft_and_list_shows_it(run, write, world):
    result = run("upload", write("policy.yaml", files.POLICY))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("stored: 1  policy")
    again = run("upload", write("same.yaml", files.POLICY_REFORMATTED))
    assert again.exit_code == 0
    assert again.output.startswith("already stored: 1  policy")
    assert listing(run) == [["1", "policy", "draft"]]


def test_upload_with_activate_then_activate_and_rollback(run, write, world):
    assert run("upload", "--activate", write("v1.yaml", files.POLICY)).exit_code == 0
    assert run("upload", write("v2.yaml", files.POLICY_V2)).exit_code == 0
    assert run("upload", write("approval.yaml", files.APPROVAL)).exit_code == 0
    assert listing(run, "--kind", "policy") == [["1", "policy", "active"], ["2", "policy", "draft"]]
    result = run("activate", "2")
    assert result.exit_code == 0, result.output
    assert listing(run, "--kind", "policy") == [["1", "policy", "archived"], ["2", "policy", "active"]]
    result = run("rollback", "policy")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("active: 1  policy")
    assert run("rollback", "policy", "--to", "2").exit_code == 0
    assert listing(run) == [
        ["1", "policy", "archived"],
        ["2", "policy", "active"],
        ["3", "approval", "draft"],
    ]


def test_bad_file_exits_non_zero_with_one_line_per_problem(run, write, world):
    path = write("assignment.yaml", files.BAD_ASSIGNMENT)
    result = run("upload", "--activate", path)
    assert result.exit_code != 0
    lines = result.output.splitlines()
    assert "assignment.yaml:5:18: rules[0].when.fact: unknown fact 'regoin' (did you mean 'region'?)" in lines
    assert "assignment.yaml:7:30: rules[0].then.add_resources[0].user: unknown user 'nobody'" in lines
    assert any(line.startswith("assignment.yaml:11:7: rules[1].then.add_resourcez: ") for line in lines)
    assert "nothing was stored" in result.output
    assert listing(run) == []


def test_commands_on_missing_versions_fail_readably(run, world):
    result = run("activate", "42")
    assert result.exit_code != 0
    assert "ruleset 42 not found" in result.output
    result = run("rollback", "approval")
    assert result.exit_code != 0
    assert "no earlier approval ruleset" in result.output
    assert run("rollback", "nonsense").exit_code != 0
