"""``POST /v1/rulesets/{id}/test``: a tests file's given/expect cases against a stored version."""

from __future__ import annotations

from tests.api import rulesets_files as files


def stored_policy(client, world) -> int:
    resp = client.post(
        "/v1/rulesets", json={"name": "policy.yaml", "source": files.POLICY}, headers=world["admin"].headers
    )
    assert resp.status_code == 201
    return int(resp.get_json()["id"])


def run_tests(client, world, ruleset_id, source, actor="admin"):
    return client.post(
        f"/v1/rulesets/{ruleset_id}/test",
        json={"name": "policy.tests.yaml", "source": source},
        headers=world[actor].headers,
    )


def test_passing_cases_are_reported_per_case(client, world):
    ruleset_id = stored_policy(client, world)
    resp = run_tests(client, world, ruleset_id, files.POLICY_TESTS)
    assert resp.status_code == 200, resp.get_json()
    report = resp.get_json()
    assert (report["ruleset_id"], report["passed"], report["failed"]) == (ruleset_id, 2, 0)
    assert [(c["name"], c["passed"], c["fired"]) for c in report["cases"]] == [
        ("big deal expires in 30 days", True, ["big-deals"]),
        ("small deal falls through", True, ["default"]),
    ]


def test_failing_cases_say_what_differed(client, world):
    ruleset_id = stored_policy(client, world)
    report = run_tests(client, world, ruleset_id, files.POLICY_TESTS_FAILING).get_json()
    assert (report["passed"], report["failed"]) == (1, 3)
    by_name = {c["name"]: c for c in report["cases"]}
    assert by_name["big deal expires in 30 days"]["passed"] is True
    wrong = by_name["wrong expectation"]
    assert (wrong["passed"], wrong["fired"]) == (False, ["default"])
    assert '+  "default"' in wrong["failures"][0]
    assert '-  "expiry_days": 14\n+  "expiry_days": 90' in by_name["wrong action"]["failures"][0]
    assert by_name["facts of the wrong type"]["failures"][0].startswith("invalid facts: deal_size")


def test_a_broken_tests_file_is_422_with_positions(client, world):
    ruleset_id = stored_policy(client, world)
    resp = run_tests(client, world, ruleset_id, files.BAD_TESTS)
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["type"].endswith("/ruleset-invalid")
    lines = [f"{e['pointer']}: {e['detail']}" for e in body["errors"]]
    assert lines == [
        "policy.tests.yaml:2:5: cases[0].expect: missing required field 'expect'",
        "policy.tests.yaml:5:5: cases[1].givn: unknown field 'givn' (did you mean 'given'?); "
        "allowed: name, given, expect",
    ]
    syntax = run_tests(client, world, ruleset_id, "cases: [\n")
    assert syntax.status_code == 422
    assert syntax.get_json()["errors"][0]["pointer"].startswith("policy.tests.yaml:2:")


def test_only_admins_run_tests_and_missing_versions_are_404(client, world):
    ruleset_id = stored_policy(client, world)
    assert run_tests(client, world, ruleset_id, files.POLICY_TESTS, actor="cam_1").status_code == 403
    assert run_tests(client, world, ruleset_id, files.POLICY_TESTS, actor="partner_user_a").status_code == 403
    assert run_tests(client, world, 999, files.POLICY_TESTS).status_code == 404


def test_control_characters_in_a_tests_file_are_a_positioned_error(client, world):
    ruleset_id = stored_policy(client, world)
    resp = run_tests(client, world, ruleset_id, "cases:\n  - name: a\x07b\n")
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["pointer"] == "policy.tests.yaml:2:12"
