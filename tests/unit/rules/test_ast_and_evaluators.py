"""The AST round-trips through JSON with a stable version; evaluator selection; subprocess checks."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from rules import ast, reference
from rules.engine import SHARD_SIZE, DurableEvaluator, shard_definitions, verify_in_subprocess
from rules.errors import FactsInvalid, VerificationFailed
from rules.evaluator import get_evaluator
from rules.loader import load_ruleset

EXAMPLES = Path(__file__).resolve().parents[3] / "rules" / "examples"


def test_ruleset_round_trips_through_json_with_the_same_version():
    ruleset = load_ruleset(EXAMPLES / "approval.yaml").unwrap()
    again = ast.ruleset_from_json(ast.ruleset_to_json(ruleset))
    assert again == ruleset and again.version == ruleset.version


def test_version_ignores_comments_and_layout_but_not_content():
    a = load_ruleset("kind: policy\nhit_policy: first\nrules:\n  - {id: x, when: always}\n").unwrap()
    b = load_ruleset("# c\nkind: policy\nhit_policy: first\nrules:\n\n  - id: x\n    when: always\n").unwrap()
    c = load_ruleset("kind: policy\nhit_policy: first\nrules:\n  - {id: y, when: always}\n").unwrap()
    assert a.version == b.version != c.version
    assert len(a.version) == 64


def test_a_policy_may_ask_resubmissions_to_be_assigned_afresh_and_files_without_it_keep_their_version():
    source = "kind: policy\nhit_policy: first\nrules:\n  - {id: x, when: always, then: {expiry_days: 30}}\n"
    before = load_ruleset(source).unwrap()
    assert "reassign_on_resubmit" not in ast.ruleset_to_json(before)["rules"][0]["then"]
    assert reference.evaluate(before, {}).actions.reassign_on_resubmit is False
    asked = load_ruleset(source.replace("30}", "30, reassign_on_resubmit: true}")).unwrap()
    again = ast.ruleset_from_json(ast.ruleset_to_json(asked))
    assert again == asked and asked.version != before.version
    assert reference.evaluate(asked, {}).actions.reassign_on_resubmit is True


def test_tampered_stored_ruleset_is_refused():
    doc = ast.ruleset_to_json(load_ruleset(EXAMPLES / "policy.yaml").unwrap())
    doc["rules"][0]["priority"] = 1
    with pytest.raises(ValueError, match="does not match its version"):
        ast.ruleset_from_json(doc)


def test_trace_says_why_a_rule_did_not_match():
    ruleset = load_ruleset(EXAMPLES / "approval.yaml").unwrap()
    outcome = reference.evaluate(ruleset, {"deal_size": 500, "registration_type": "resale"})
    reasons = {r.rule_id: r.reason for r in outcome.results}
    assert reasons["director-above-100k"] == "condition false (deal_size 500 >= 100000)"
    assert reasons["manager-for-co-sell"] == "condition false (registration_type 'resale' = 'co_sell')"


def test_engine_variable_selects_the_evaluator(monkeypatch):
    monkeypatch.setenv("PRM_RULES_ENGINE", "python")
    assert get_evaluator().name == "python"
    monkeypatch.setenv("PRM_RULES_ENGINE", "durable")
    assert get_evaluator().name == "durable"
    monkeypatch.setenv("PRM_RULES_ENGINE", "drools")
    with pytest.raises(ValueError):
        get_evaluator()


@pytest.mark.parametrize("evaluator", [DurableEvaluator(), reference.ReferenceEvaluator()])
def test_facts_of_the_wrong_type_are_refused(evaluator):
    ruleset = load_ruleset(EXAMPLES / "policy.yaml").unwrap()
    with pytest.raises(FactsInvalid, match="deal_size"):
        evaluator.evaluate(ruleset, {"deal_size": "7"})
    with pytest.raises(FactsInvalid, match="registration_type"):
        evaluator.evaluate(ruleset, {"registration_type": "barter"})


def test_verify_in_subprocess_accepts_a_good_ruleset():
    ruleset = load_ruleset(EXAMPLES / "policy.yaml").unwrap()
    report = verify_in_subprocess(ruleset, [{"registration_type": "referral"}, {}], timeout_s=60)
    assert report["ok"] and report["evaluations"] == 2


def test_verify_in_subprocess_reports_a_timeout():
    ruleset = load_ruleset(EXAMPLES / "policy.yaml").unwrap()
    started = time.monotonic()
    with pytest.raises(VerificationFailed, match="did not load and evaluate within"):
        verify_in_subprocess(ruleset, [{}], timeout_s=0.01)
    assert time.monotonic() - started < 10


def test_verify_in_subprocess_reports_a_ruleset_durable_cannot_load():
    bad = ast.make_ruleset(
        ast.Kind.POLICY,
        ast.HitPolicy.FIRST,
        (ast.Rule("huge", 0, ast.Compare("deal_size", ast.Op.LT, 1e300), ast.PolicyActions()),),
    )
    with pytest.raises(VerificationFailed, match="failed verification"):
        verify_in_subprocess(bad, [{"deal_size": 1}], timeout_s=60)


def _big_ruleset_text(n: int) -> str:
    lines = ["kind: policy", "hit_policy: first", "rules:"]
    for i in range(n):
        lines += [
            f"  - id: r{i}",
            "    when:",
            "      all:",
            f"        - {{fact: product, op: eq, value: P-{i}}}",
            f"        - {{fact: deal_size, op: gte, value: {i * 10}}}",
            f"    then: {{expiry_days: {1 + i % 300}}}",
        ]
    lines += ["  - id: default", "    when: always"]
    return "\n".join(lines) + "\n"


def test_500_rule_ruleset_validates_compiles_into_shards_and_agrees():
    ruleset = load_ruleset(_big_ruleset_text(500)).unwrap()
    shards = shard_definitions(ruleset)
    assert len(shards) == math.ceil(501 / (SHARD_SIZE - 1))
    assert all(len(s.definition) <= SHARD_SIZE for s in shards)
    durable = DurableEvaluator()
    for i in [*range(0, 500, 7), 58, 59, 117, 118, 499]:  # a rule in every shard, at the shard edges
        facts = {"product": f"P-{i}", "deal_size": i * 10}
        assert durable.evaluate(ruleset, facts, trace=False).fired == (f"r{i}",)
    for facts in ({"product": "P-499", "deal_size": 0}, {}):
        assert durable.evaluate(ruleset, facts) == reference.evaluate(ruleset, facts)


def test_500_rule_collect_ruleset_fires_rules_from_every_shard():
    text = _big_ruleset_text(500).replace("hit_policy: first", "hit_policy: collect")
    text = text.replace("op: eq, value: P-", "op: ne, value: P-")
    ruleset = load_ruleset(text).unwrap()
    facts = {"product": "P-3", "deal_size": 100_000}
    got = DurableEvaluator().evaluate(ruleset, facts, trace=False)
    assert got == reference.evaluate(ruleset, facts, trace=False)
    assert len(got.fired) == 500  # 499 rules (all but r3) and the catch-all
