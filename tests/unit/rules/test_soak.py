"""One million durable evaluations keep memory flat (DESIGN.md 2.1, rule 2)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rules.engine import DurableEvaluator
from rules.loader import load_ruleset

EXAMPLES = Path(__file__).resolve().parents[3] / "rules" / "examples"
EVALUATIONS = 1_000_000
WARM_UP = 50_000
#: RSS growth allowed after warm-up (allocator noise, not a leak: a leak of even 16 bytes per
#: evaluation would show as ~15 MB).
TOLERANCE_KB = 8 * 1024


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_million_durable_evaluations_keep_memory_flat():
    collect = load_ruleset(EXAMPLES / "approval.yaml").unwrap()  # collect: assert + retract a fact
    first = load_ruleset(EXAMPLES / "policy.yaml").unwrap()  # priority: post an event
    leads = [
        {"registration_type": "co_sell", "deal_size": 250_000, "program": "standard", "region": "EMEA"},
        {"registration_type": "referral", "deal_size": 10, "partner": "P-ACME"},
        {"registration_type": "resale", "program_tier": "platinum"},
        {},
    ]
    durable = DurableEvaluator()
    started = time.monotonic()
    baseline = 0
    for i in range(EVALUATIONS):
        ruleset = collect if i % 2 else first
        durable.evaluate(ruleset, leads[i % len(leads)], trace=False)
        if i == WARM_UP:
            baseline = rss_kb()
    growth = rss_kb() - baseline
    seconds = time.monotonic() - started
    print(f"\nsoak: {EVALUATIONS} evaluations in {seconds:.0f} s, RSS growth after warm-up {growth} kB")
    assert growth < TOLERANCE_KB
