"""The assignment benchmark runs end to end (tiny sizes, in this process) and writes well-formed results."""

from __future__ import annotations

import json

from bench.assignment import PHASES, Config, check_targets, run, table

TINY = Config(
    territories=(60, 300),
    leads=40,
    match_passes=1,
    brute_force_leads=20,
    policy_rules=50,
    compile_rules=120,
    breakdown_territories=60,
    breakdown_leads=20,
)


def test_quick_benchmark_writes_every_phase_with_positive_figures(tmp_path):
    out = tmp_path / "assignment.json"
    results = run(TINY, out, jobs=0, echo=False)

    written = json.loads(out.read_text(encoding="utf-8"))
    assert written == results
    assert {r["name"] for r in written} == set(PHASES)
    for name in ("match", "decide", "decide_reference", "brute_force"):
        assert sorted(r["territories"] for r in written if r["name"] == name) == [60, 300]
    for r in written:
        assert r["clock"] == "process_time"
        assert r["peak_rss_mb"] > 0
        assert r["seconds"] > 0
        if r["name"] == "compile_500_rules":
            assert r["rules"] == 120 and r["shards"] >= 2
            continue
        assert r["leads"] > 0 and r["leads_per_s"] > 0 and r["us_per_lead"] > 0
        if r["name"] != "decide_breakdown":
            assert r["build_seconds"] >= 0
    by = {(r["name"], r["territories"]): r for r in written}
    assert by[("match", 300)]["depth"] >= 5
    assert by[("brute_force", 300)]["agrees_with_snapshot"] is True
    assert by[("decide", 300)]["agrees_with_reference"] is True
    assert by[("decide", 300)]["us_per_lead_vs_smallest"] > 0
    assert "compile_500_rules" in table(results)
    assert len(check_targets(results, TINY)) == 5
