"""The assignment decision on a hand-built hierarchy, with both rule evaluators."""

from __future__ import annotations

import pytest

from rules import ast
from rules.decision import LeadFacts, decide, why_not_territory
from rules.errors import FactsInvalid
from rules.evaluator import get_evaluator
from rules.loader import load_ruleset
from territory.dimensions import Dimension, MemberHierarchy
from territory.snapshot import TerritorySnapshot
from territory.tree import Coverage, TeamMember, TerritoryDef

D = Dimension


def _snapshot() -> TerritorySnapshot:
    dims = {
        D.GEOGRAPHY: MemberHierarchy(
            {"WORLD": None, "APAC": "WORLD", "JP": "APAC", "EMEA": "WORLD", "DE": "EMEA"}
        ),
        D.PRODUCT: MemberHierarchy(
            {"security": None, "fw-1": "security", "network": None, "sw-1": "network"}
        ),
        D.PROGRAM: MemberHierarchy({"resell": None, "co-sell": None}),
        D.CUSTOMER: MemberHierarchy({}),
        D.PARTNER: MemberHierarchy({}),
    }
    defs = [
        TerritoryDef("ww", None, "Worldwide", "channel", (TeamMember("director", "channel_sales_director"),)),
        TerritoryDef(
            "apac",
            "ww",
            "APAC",
            "channel",
            (TeamMember("mgr-apac", "channel_sales_manager"),),
            coverage={D.GEOGRAPHY: Coverage.of(["APAC"])},
        ),
        TerritoryDef(
            "jp",
            "apac",
            "Japan",
            "channel",
            (TeamMember("cam-jp", "channel_account_manager"),),
            coverage={D.GEOGRAPHY: Coverage.of(["JP"])},
        ),
        # No CAM here: approvals walk up to cam-jp.
        TerritoryDef(
            "jp-security",
            "jp",
            "Japan security",
            "channel",
            (),
            coverage={D.GEOGRAPHY: Coverage.of(["JP"]), D.PRODUCT: Coverage.of(["security"])},
        ),
        TerritoryDef(
            "jp-network",
            "jp",
            "Japan networking",
            "channel",
            (TeamMember("cam-jp-net", "channel_account_manager"),),
            coverage={D.GEOGRAPHY: Coverage.of(["JP"]), D.PRODUCT: Coverage.of(["network"])},
        ),
        TerritoryDef(
            "emea",
            "ww",
            "EMEA",
            "channel",
            (TeamMember("cam-emea", "channel_account_manager"),),
            coverage={D.GEOGRAPHY: Coverage.of(["EMEA"])},
        ),
    ]
    return TerritorySnapshot("model-1", defs, dims)


APPROVAL = """
kind: approval
hit_policy: collect
fallback_approver: ops-desk
rules:
  - id: cam-first
    when: always
    then:
      steps:
        - name: cam
          roles: [channel_account_manager]
  - id: big-deals-go-to-the-director
    when: {fact: deal_size, op: gte, value: 100000}
    then:
      steps:
        - name: director
          roles: [channel_sales_director]
"""


@pytest.fixture(params=["python", "durable"])
def evaluator(request):
    return get_evaluator(request.param)


def _rulesets() -> dict[ast.Kind, ast.Ruleset]:
    return {ast.Kind.APPROVAL: load_ruleset(APPROVAL).unwrap()}


def test_the_cam_of_the_deepest_territory_approves(evaluator):
    facts = LeadFacts.check({"geography": "JP", "product": "sw-1", "deal_size": 10})
    result = decide(facts, _snapshot(), _rulesets(), evaluator)
    assert result.lowest == ("jp-network",)
    assert result.cam == "cam-jp-net"
    assert result.approvers == ("cam-jp-net",)
    assert result.trace["paths"] == {"jp-network": ["ww", "apac", "jp", "jp-network"]}


def test_a_territory_without_a_cam_walks_up_to_its_parents_cam(evaluator):
    facts = LeadFacts.check({"geography": "JP", "product": "fw-1", "deal_size": 10})
    result = decide(facts, _snapshot(), _rulesets(), evaluator)
    assert result.lowest == ("jp-security",)
    assert result.cam == "cam-jp"
    assert result.cam_territory == "jp"
    assert result.steps[0].approvers[0].source == "territory:jp"


def test_a_big_deal_adds_the_director_as_a_second_serial_step(evaluator):
    facts = LeadFacts.check({"geography": "JP", "product": "fw-1", "deal_size": 250000})
    result = decide(facts, _snapshot(), _rulesets(), evaluator)
    assert [s.name for s in result.steps] == ["cam", "director"]
    assert result.approvers == ("cam-jp", "director")
    fired = result.trace["rules"]["approval"]["fired"]
    assert fired == ["cam-first", "big-deals-go-to-the-director"]


def test_the_fallback_approver_takes_a_lead_no_territory_covers(evaluator):
    snapshot = _snapshot()
    result = decide(LeadFacts.check({"geography": "BR", "deal_size": 10}), snapshot, _rulesets(), evaluator)
    # BR is unknown to the geography hierarchy's territories: only the unrestricted root matches,
    # and the root has no CAM, so the fallback approver takes the step.
    assert result.lowest == ("ww",)
    assert result.cam is None
    assert result.approvers == ("ops-desk",)
    assert result.steps[0].unresolved_roles == ("channel_account_manager",)


def test_without_an_approval_ruleset_the_cam_approves_alone(evaluator):
    result = decide(LeadFacts.check({"geography": "DE"}), _snapshot(), {}, evaluator)
    assert result.approvers == ("cam-emea",)
    assert result.policy.expiry_days == 90


def test_the_trace_says_why_a_losing_territory_lost(evaluator):
    facts = {"geography": "JP", "product": "fw-1"}
    result = decide(LeadFacts.check(facts), _snapshot(), {}, evaluator)
    reasons = {c["territory"]: c for c in result.trace["candidates"]}
    assert reasons["jp-network"]["reason"] == "dimension_not_covered"
    assert reasons["jp-network"]["dimension"] == "product"
    # The bounded trace names the winning path's ancestors in ``paths``; the full one explains them.
    assert "jp" not in reasons and "jp" in result.trace["paths"][result.lowest[0]]
    full = {c["territory"]: c for c in result.full_trace["candidates"]}
    assert full["jp"]["reason"] == "matched_not_lowest"
    why = why_not_territory(_snapshot(), facts, "emea")
    assert why["reason"] == "dimension_not_covered"
    assert why["dimension"] == "geography"


def test_bounded_traces_on_one_snapshot_explain_each_lead_as_a_fresh_snapshot_does(evaluator):
    # a snapshot remembers the candidates of the territory facts it explained: leads with other facts
    # get their own, and a caller changing one answer's trace changes no later answer
    snapshot = _snapshot()
    leads = [
        {"geography": "JP", "product": "fw-1"},
        {"geography": "JP", "product": "sw-1"},
        {"geography": "DE"},
        {"geography": "JP", "product": "fw-1"},
    ]
    for facts in leads:
        trace = decide(LeadFacts.check(facts), snapshot, {}, evaluator).trace
        fresh = decide(LeadFacts.check(facts), _snapshot(), {}, evaluator).trace
        assert trace == fresh
        trace["candidates_omitted"]["reasons"]["changed"] = 1
        trace["candidates"].clear()
    again = decide(LeadFacts.check(leads[0]), snapshot, {}, evaluator).trace
    assert again == decide(LeadFacts.check(leads[0]), _snapshot(), {}, evaluator).trace


def test_the_rules_compare_the_checked_facts_and_the_trace_shows_them_as_given(evaluator):
    given = {"geography": "JP", "product": "fw-1", "deal_size": 250000.0, "crm_note": "from the CRM"}
    facts = LeadFacts.check(given)
    assert facts.normalized == {"geography": "JP", "product": "fw-1", "deal_size": 250000}
    result = decide(facts, _snapshot(), _rulesets(), evaluator)
    assert result.approvers == ("cam-jp", "director")
    assert result.full_trace["facts"] == given


def test_facts_that_do_not_fit_the_vocabulary_are_refused_with_every_problem():
    with pytest.raises(FactsInvalid) as refused:
        LeadFacts.check({"deal_size": "big", "registration_type": "gift", "geography": "JP"})
    assert [p.split(":")[0] for p in refused.value.problems] == ["deal_size", "registration_type"]


def test_a_subject_keeping_its_team_is_decided_on_it_and_a_fresh_one_on_the_match(evaluator):
    facts = LeadFacts.check({"geography": "DE"})
    fresh = decide(facts, _snapshot(), {}, evaluator)
    assert not fresh.kept_team and "territories_from" not in fresh.to_json()
    assert fresh.approvers == ("cam-emea",)
    # the team's deepest territory (jp-security) takes the lowest match's part; its CAM is up at jp
    kept = decide(facts, _snapshot(), {}, evaluator, territory_team=["jp", "jp-security", "gone"])
    assert kept.kept_team and kept.to_json()["territories_from"] == "territory_team"
    assert kept.lowest == ("jp-security",) and kept.approvers == ("cam-jp",)
    assert kept.territory_team == ("jp-security",)
