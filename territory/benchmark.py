"""Measure snapshot build time and ``match`` throughput on generated models.

Run ``python -m territory.benchmark 1000 10000 100000 [--depth 7] [--leads 50000]``. Times are CPU time
of this process (``time.process_time``), so other work on a shared machine skews them less.
"""

from __future__ import annotations

import argparse
import time

from territory.snapshot import TerritorySnapshot
from territory.synthetic import generate_leads, generate_model


def measure(n_territories: int, depth: int, n_leads: int, seed: int = 1) -> dict[str, float]:
    """Return build seconds, leads per second (best of three passes) and average matches per lead."""
    defs, dims = generate_model(n_territories, depth=depth, seed=seed)
    start = time.process_time()
    snap = TerritorySnapshot("bench", defs, dims)
    build = time.process_time() - start
    leads = generate_leads(dims, n_leads, seed=seed + 1)
    match = snap.match
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for lead in leads:
            match(lead)
        best = min(best, time.process_time() - start)
    sample = [match(lead) for lead in leads[:5_000]]
    return {
        "territories": n_territories,
        "depth": max(snap.depth(k) for k in snap),
        "build_s": build,
        "leads_per_s": len(leads) / best,
        "matched_per_lead": sum(len(r.matched) for r in sample) / len(sample),
        "lowest_per_lead": sum(len(r.lowest) for r in sample) / len(sample),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", nargs="*", type=int, default=[1_000, 10_000, 100_000])
    parser.add_argument("--depth", type=int, default=7)
    parser.add_argument("--leads", type=int, default=50_000)
    args = parser.parse_args()
    for n in args.sizes:
        r = measure(n, args.depth, args.leads)
        print(
            f"{int(r['territories']):>7} territories, depth {int(r['depth'])}: build {r['build_s']:.2f}s, "
            f"match {r['leads_per_s']:,.0f} leads/s "
            f"({r['matched_per_lead']:.2f} matches, {r['lowest_per_lead']:.2f} lowest per lead)"
        )


if __name__ == "__main__":
    main()
