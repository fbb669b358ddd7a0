"""The assignment benchmark (``make bench``): territory matching, full decisions, rules compilation.

Run ``python -m bench.assignment`` (about 5 minutes) or ``--quick`` for a smoke run.

What it measures, per generated territory model (1,000, 10,000 and 100,000 territories, depth 6, over
customer, program, product and geography; ``territory.synthetic``):

- ``match``: ``TerritorySnapshot.match`` alone on 100,000 leads (best of three passes), plus the snapshot
  build time and how many territories a lead matches;
- ``decide``: the full assignment decision (``rules.decision.decide``: matching, a 50-rule policy
  ruleset with hit policy ``first``, a small ``collect`` approval ruleset, approver resolution) with the
  durable_rules evaluator, on 100,000 leads; the decision's trace is built when read, so
  ``traced_leads_per_s`` reports decide + reading the trace on a sample of 5,000 leads;
- ``decide_reference``: the same with the pure-Python reference evaluator;
- ``brute_force``: the naive matcher the tests use as reference (every territory, every dimension) on a
  sample of 1,000 leads (fewer on the largest model, see ``Config.brute_force_checks``), checked to
  agree with the snapshot on every lead of the sample;

and once: ``compile_500_rules``, validating and compiling a generated 500-rule policy file
(``load_ruleset`` + building the durable rulesets, sharding included); ``decide_breakdown``, where the time
of one full decision goes (10,000 territories, 5,000 leads).

Throughput is CPU time of one core (``time.process_time``), recorded as ``clock`` in every entry. Each
phase runs in a fresh process, one at a time by default (``--jobs``): two phases side by side share the
cache and memory bandwidth, which cost the memory-bound 100,000-territory match a third of its speed. So
a phase's ``peak_rss_mb`` (``ru_maxrss``) is its own: interpreter, imports, the generated model and
leads, and the work itself.
``--jobs 0`` runs everything in this process (``rss_scope: "process"``: the peak of the run so far).
Results go to ``bench/results/assignment.json`` (a list of objects, one per phase and size), with a
readable table and one line per target on stdout.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.workload import APPROVAL_YAML, BruteForceMatcher, lead_facts, policy_yaml
from rules import ast
from rules.decision import LeadFacts, decide, territory_facts
from rules.evaluator import Evaluator, get_evaluator
from rules.loader import load_ruleset
from rules.reference import explain
from rules.vocabulary import normalize_facts
from territory.dimensions import MemberHierarchy
from territory.snapshot import TerritorySnapshot
from territory.synthetic import generate_dimensions, generate_leads, generate_model
from territory.tree import Coverage, TerritoryDef

CLOCK = "process_time"
RESULTS = Path(__file__).resolve().parent / "results" / "assignment.json"
#: Phase names, in the order the table lists them.
PHASES = ("match", "decide", "decide_reference", "brute_force", "compile_500_rules", "decide_breakdown")

Result = dict[str, Any]


@dataclass(frozen=True)
class Config:
    """Sizes of one run (``FULL`` for ``make bench``, ``QUICK`` for ``--quick``)."""

    territories: tuple[int, ...] = (1_000, 10_000, 100_000)
    depth: int = 6
    leads: int = 100_000
    match_passes: int = 3
    brute_force_leads: int = 1_000
    #: Territory checks the brute-force sample may cost (leads x territories); the sample shrinks to fit
    #: on larger models (100 leads at 100,000 territories), never below 100 leads.
    brute_force_checks: int = 10_000_000
    policy_rules: int = 50
    compile_rules: int = 500
    breakdown_territories: int = 10_000
    breakdown_leads: int = 5_000
    #: Leads whose decision trace is also built and read (``traced_leads_per_s`` of ``decide``).
    traced_leads: int = 5_000
    seed: int = 1


FULL = Config()
QUICK = Config(
    territories=(1_000, 10_000),
    leads=1_000,
    match_passes=1,
    brute_force_leads=200,
    breakdown_territories=1_000,
    breakdown_leads=500,
    traced_leads=500,
)


# -- helpers ----------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _clocked(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


@dataclass
class _Model:
    defs: list[TerritoryDef]
    dims: dict[str, MemberHierarchy]
    snapshot: TerritorySnapshot
    generate_seconds: float
    build_seconds: float


#: A declared dimension beside the built-in ones (as an admin would declare "industry"): 8 groups of 5.
INDUSTRY = "industry"


def _with_industry(
    defs: list[TerritoryDef], dims: dict[str, MemberHierarchy], seed: int
) -> list[TerritoryDef]:
    """Add the declared ``industry`` dimension: every seventh leaf territory is restricted to one group
    (leaves only, so a child never covers more than its parent)."""
    parents: dict[str, str | None] = {}
    for g in range(8):
        parents[f"IND-{g}"] = None
        parents.update({f"IND-{g}-{i}": f"IND-{g}" for i in range(5)})
    dims[INDUSTRY] = MemberHierarchy(parents, name=INDUSTRY)
    has_children = {d.parent_key for d in defs}
    rng = random.Random(seed)
    out = []
    for i, d in enumerate(defs):
        if d.key not in has_children and i % 7 == 0:
            d = replace(d, coverage={**d.coverage, INDUSTRY: Coverage.of([f"IND-{rng.randrange(8)}"])})
        out.append(d)
    return out


def _model(cfg: Config, n: int) -> _Model:
    start = time.process_time()
    defs, dims = generate_model(n, depth=cfg.depth, seed=cfg.seed)
    defs = _with_industry(defs, dims, cfg.seed)
    generated = time.process_time()
    snapshot = TerritorySnapshot(f"bench-{n}", defs, dims)
    built = time.process_time()
    return _Model(defs, dims, snapshot, round(generated - start, 3), round(built - generated, 3))


def _entry(name: str, n: int | None, leads: int, seconds: float, **extra: Any) -> Result:
    out: Result = {"name": name, "territories": n, "leads": leads, "seconds": round(seconds, 4)}
    if leads:
        out["leads_per_s"] = round(leads / seconds) if seconds > 0 else None
        out["us_per_lead"] = round(seconds / leads * 1e6, 2)
    out.update(extra)
    out["clock"] = CLOCK
    return out


def _rulesets(dims: dict[str, MemberHierarchy], cfg: Config) -> dict[ast.Kind, ast.Ruleset]:
    return {
        ast.Kind.POLICY: load_ruleset(policy_yaml(cfg.policy_rules, dims, seed=cfg.seed)).unwrap(),
        ast.Kind.APPROVAL: load_ruleset(APPROVAL_YAML).unwrap(),
    }


def _evaluator(name: str, rulesets: Iterable[ast.Ruleset]) -> Evaluator:
    evaluator = get_evaluator(name)
    if name == "durable":
        from rules.engine import preload  # loading into durable is setup, not per-lead work

        for ruleset in rulesets:
            preload(ruleset)
    return evaluator


# -- phases -----------------------------------------------------------------------------------------


def phase_match(cfg: Config, n: int) -> Result:
    """``TerritorySnapshot.match`` alone: best of ``match_passes`` passes over the leads."""
    m = _model(cfg, n)
    leads = generate_leads(m.dims, cfg.leads, seed=cfg.seed + 1)
    match = m.snapshot.match
    for lead in leads[:1_000]:  # warm up
        match(lead)
    best = float("inf")
    for _ in range(cfg.match_passes):
        start = time.process_time()
        for lead in leads:
            match(lead)
        best = min(best, time.process_time() - start)
    sample = [match(lead) for lead in leads[:5_000]]
    return _entry(
        "match",
        n,
        len(leads),
        best,
        depth=max(m.snapshot.depth(k) for k in m.snapshot),
        passes=cfg.match_passes,
        build_seconds=m.build_seconds,
        generate_seconds=m.generate_seconds,
        matched_per_lead=round(sum(len(r.matched) for r in sample) / len(sample), 2),
        lowest_per_lead=round(sum(len(r.lowest) for r in sample) / len(sample), 2),
        lowest_depth_per_lead=round(sum(r.depth or 0 for r in sample) / len(sample), 2),
    )


def phase_decide(cfg: Config, n: int, engine: str) -> Result:
    """The full decision for every lead (one pass; results dropped as a service would store them)."""
    m = _model(cfg, n)
    rulesets = _rulesets(m.dims, cfg)
    evaluator = _evaluator(engine, rulesets.values())
    facts = lead_facts(m.dims, cfg.leads, seed=cfg.seed + 1)
    snapshot = m.snapshot
    check = LeadFacts.check  # each decision checks its facts once, as the service's edge does
    for f in facts[:100]:  # warm up: first-use caches, durable's first post
        decide(check(f), snapshot, rulesets, evaluator)
    start = time.process_time()
    for f in facts:
        decide(check(f), snapshot, rulesets, evaluator)
    seconds = time.process_time() - start
    # The trace is built when read (stored decisions, what-if): its cost, on a sample
    traced = facts[: cfg.traced_leads]
    start = time.process_time()
    for f in traced:
        _ = decide(check(f), snapshot, rulesets, evaluator).trace
    traced_seconds = time.process_time() - start
    extra: Result = {"traced_leads_per_s": round(len(traced) / traced_seconds) if traced_seconds else None}
    if engine == "durable":  # outside the clock: durable and the reference decide alike
        reference = get_evaluator("python")
        sample = [check(f) for f in facts[:200]]
        extra["agrees_with_reference"] = all(
            decide(f, snapshot, rulesets, evaluator) == decide(f, snapshot, rulesets, reference)
            for f in sample
        )
    fired = {
        decide(check(f), snapshot, rulesets, evaluator).trace["rules"]["policy"]["fired"][0]
        for f in facts[:2_000]
    }
    return _entry(
        "decide" if engine == "durable" else "decide_reference",
        n,
        len(facts),
        seconds,
        evaluator=engine,
        build_seconds=m.build_seconds,
        policy_rules=len(rulesets[ast.Kind.POLICY].rules),
        approval_rules=len(rulesets[ast.Kind.APPROVAL].rules),
        distinct_policy_rules_fired=len(fired),
        **extra,
    )


def _brute_force_sample(cfg: Config, n: int) -> int:
    return max(min(cfg.brute_force_leads, 100), min(cfg.brute_force_leads, cfg.brute_force_checks // n))


def phase_brute_force(cfg: Config, n: int) -> Result:
    """The naive matcher on a sample of the ``match`` leads, and the snapshot on the same sample."""
    m = _model(cfg, n)
    leads = generate_leads(m.dims, _brute_force_sample(cfg, n), seed=cfg.seed + 1)  # a prefix of match's
    naive = BruteForceMatcher(m.defs, m.dims)
    answers: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    seconds = _clocked(lambda: answers.extend(naive.match(lead) for lead in leads))
    snapshot_seconds = _clocked(lambda: [m.snapshot.match(lead) for lead in leads])
    agrees = all(
        (r.matched, r.lowest) == a for r, a in zip((m.snapshot.match(x) for x in leads), answers, strict=True)
    )
    return _entry(
        "brute_force",
        n,
        len(leads),
        seconds,
        build_seconds=m.build_seconds,
        snapshot_leads_per_s_same_sample=round(len(leads) / snapshot_seconds) if snapshot_seconds else None,
        agrees_with_snapshot=agrees,
    )


def phase_compile(cfg: Config) -> Result:
    """Validate (``load_ruleset``) and compile (durable rulesets, sharded) a generated policy file."""
    from rules.engine import SHARD_SIZE, preload, shard_definitions

    dims = generate_dimensions(seed=cfg.seed)
    text = policy_yaml(cfg.compile_rules, dims, seed=cfg.seed + 2)
    wall = time.perf_counter()
    start = time.process_time()
    result = load_ruleset(text)
    ruleset = result.unwrap()
    validated = time.process_time()
    preload(ruleset)  # shard_definitions + register every shard with the durable host
    done = time.process_time()
    wall = time.perf_counter() - wall
    shards = shard_definitions(ruleset)
    return _entry(
        "compile_500_rules",
        None,
        0,
        done - start,
        rules=len(ruleset.rules),
        yaml_bytes=len(text.encode()),
        validate_seconds=round(validated - start, 4),
        durable_build_seconds=round(done - validated, 4),
        wall_seconds=round(wall, 4),
        shards=len(shards),
        shard_size=SHARD_SIZE,
        durable_rules=sum(len(s.definition) for s in shards),
        warnings=len(result.warnings),
    )


def phase_decide_breakdown(cfg: Config) -> Result:
    """Where one full decision's time goes: each part timed alone on the same leads (µs per lead)."""
    n = cfg.breakdown_territories
    m = _model(cfg, n)
    rulesets = _rulesets(m.dims, cfg)
    policy, approval = rulesets[ast.Kind.POLICY], rulesets[ast.Kind.APPROVAL]
    durable = _evaluator("durable", rulesets.values())
    facts = lead_facts(m.dims, cfg.breakdown_leads, seed=cfg.seed + 1)
    tfacts = [territory_facts(f, m.snapshot) for f in facts]
    normalized = [normalize_facts(f) for f in facts]
    snap = m.snapshot
    parts: dict[str, Callable[[], object]] = {
        "match": lambda: [snap.match(f) for f in tfacts],
        "candidate_explanations (snapshot.explain_all)": lambda: [snap.explain_all(f) for f in tfacts],
        "durable policy, no trace": lambda: [durable.evaluate(policy, f, trace=False) for f in facts],
        "durable approval, no trace": lambda: [durable.evaluate(approval, f, trace=False) for f in facts],
        "rule explanations, policy (reference.explain)": lambda: [explain(policy, f) for f in normalized],
        "rule explanations, approval (reference.explain)": lambda: [explain(approval, f) for f in normalized],
        "decide (total)": lambda: [decide(LeadFacts.check(f), snap, rulesets, durable) for f in facts],
        "trace, built when read (not part of decide)": lambda: [
            decide(LeadFacts.check(f), snap, rulesets, durable).trace for f in facts
        ],
    }
    for f in facts[:50]:
        decide(LeadFacts.check(f), snap, rulesets, durable)
    us = {name: round(_clocked(fn) / len(facts) * 1e6, 1) for name, fn in parts.items()}
    total = us["decide (total)"]
    us["rest of decide (facts checks, approvers, merging actions)"] = round(
        total - sum(us[k] for k in ("match", "durable policy, no trace", "durable approval, no trace")), 1
    )
    return _entry(
        "decide_breakdown",
        n,
        len(facts),
        total * len(facts) / 1e6,
        evaluator="durable",
        us_per_lead_by_part=us,
    )


# -- running ----------------------------------------------------------------------------------------

Task = tuple[str, int | None]


def _tasks(cfg: Config) -> list[Task]:
    """Every phase of a run, longest first (so two workers finish together)."""
    tasks: list[Task] = []
    for n in sorted(cfg.territories, reverse=True):
        tasks += [("decide", n), ("decide_reference", n)]
    for n in sorted(cfg.territories, reverse=True):
        tasks += [("brute_force", n), ("match", n)]
    tasks += [("decide_breakdown", None), ("compile_500_rules", None)]
    return tasks


def run_task(cfg: Config, task: Task, rss_scope: str = "phase") -> Result:
    """Run one phase and stamp it with this process's peak RSS."""
    name, n = task
    if name == "match" and n is not None:
        out = phase_match(cfg, n)
    elif name == "decide" and n is not None:
        out = phase_decide(cfg, n, "durable")
    elif name == "decide_reference" and n is not None:
        out = phase_decide(cfg, n, "python")
    elif name == "brute_force" and n is not None:
        out = phase_brute_force(cfg, n)
    elif name == "compile_500_rules":
        out = phase_compile(cfg)
    elif name == "decide_breakdown":
        out = phase_decide_breakdown(cfg)
    else:
        raise ValueError(f"unknown phase {task!r}")
    out["peak_rss_mb"] = _peak_rss_mb()
    out["rss_scope"] = rss_scope
    return out


def _run_task_in_child(args: tuple[Config, Task]) -> Result:
    cfg, task = args
    try:
        return run_task(cfg, task)
    except Exception as exc:  # some exceptions do not survive pickling back to the parent
        raise RuntimeError(f"phase {task[0]} {task[1] or ''} failed:\n{traceback.format_exc()}") from exc


def _order(r: Result) -> tuple[int, int]:
    return PHASES.index(r["name"]), r["territories"] or 0


def run(
    cfg: Config,
    out: Path | None = RESULTS,
    jobs: int = 2,
    echo: bool = True,
    only: Sequence[str] = (),
) -> list[Result]:
    """Run every phase (``jobs`` fresh processes at a time; 0: in this process), write and return results.

    ``only`` (``NAME`` or ``NAME:TERRITORIES``) reruns just those phases and replaces their entries in the
    results already in ``out``.
    """
    tasks = [t for t in _tasks(cfg) if not only or t[0] in only or f"{t[0]}:{t[1]}" in only]
    kept: list[Result] = []
    if only and out is not None and out.exists():
        rerun = {(name, n) for name, n in tasks}
        previous = json.loads(out.read_text(encoding="utf-8"))
        kept = [r for r in previous if (r["name"], r["territories"]) not in rerun]
    results: list[Result] = list(kept)
    started = time.perf_counter()
    if jobs <= 0:
        for task in tasks:
            results.append(run_task(cfg, task, rss_scope="process"))
            if echo:
                print(
                    f"  {time.perf_counter() - started:6.0f}s  done {task[0]} {task[1] or ''}",
                    file=sys.stderr,
                    flush=True,
                )
    else:
        context = multiprocessing.get_context("spawn")  # a clean process per phase: its own peak RSS
        with context.Pool(processes=jobs, maxtasksperchild=1) as pool:
            for result in pool.imap_unordered(_run_task_in_child, [(cfg, t) for t in tasks]):
                results.append(result)
                if echo:
                    done = f"{result['name']} {result['territories'] or ''}"
                    print(
                        f"  {time.perf_counter() - started:6.0f}s  done {done}", file=sys.stderr, flush=True
                    )
    results.sort(key=_order)
    check_targets(results, cfg)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


# -- targets and report -----------------------------------------------------------------------------


def _find(results: Sequence[Result], name: str, n: int | None) -> Result | None:
    return next((r for r in results if r["name"] == name and r["territories"] == n), None)


def check_targets(results: Sequence[Result], cfg: Config) -> list[str]:
    """Mark the entries the targets apply to (``target``, ``target_met``) and return one line per target."""
    lines: list[str] = []

    def verdict(entry: Result | None, target: str, measured: str, met: bool) -> None:
        if entry is not None:
            entry["target"] = target
            entry["target_met"] = met
        lines.append(f"[{'PASS' if met else 'FAIL'}] {target}: {measured}")

    def missing(target: str, why: str) -> None:
        lines.append(f"[ -- ] {target}: not measured in this run ({why})")

    t = "full decisions (durable) >= 10,000 leads/s on one core at 10,000 territories"
    d10 = _find(results, "decide", 10_000)
    if d10:
        verdict(d10, t, f"{d10['leads_per_s']:,} leads/s", d10["leads_per_s"] >= 10_000)
    else:
        missing(t, "no 10,000-territory model")

    t = "matching alone >= 100,000 leads/s at 100,000 territories"
    m100 = _find(results, "match", 100_000)
    if m100:
        verdict(m100, t, f"{m100['leads_per_s']:,} leads/s", m100["leads_per_s"] >= 100_000)
    else:
        missing(t, "no 100,000-territory model")

    t = "matching >= 100x faster than brute force at 10,000 territories"
    m10, b10 = _find(results, "match", 10_000), _find(results, "brute_force", 10_000)
    if m10 and b10:
        speedup = m10["leads_per_s"] / b10["leads_per_s"]
        same = b10["snapshot_leads_per_s_same_sample"] / b10["leads_per_s"]
        b10["speedup"] = round(speedup, 1)
        b10["speedup_same_sample"] = round(same, 1)
        verdict(b10, t, f"{speedup:,.0f}x ({same:,.0f}x on the brute-force sample itself)", speedup >= 100)
    else:
        missing(t, "no 10,000-territory model")

    t = "full-decision time per lead grows < 2x from 1,000 to 100,000 territories"
    small, big = min(cfg.territories), max(cfg.territories)
    d_small, d_big = _find(results, "decide", small), _find(results, "decide", big)
    if d_small and d_big and small < big:
        growth = d_big["us_per_lead"] / d_small["us_per_lead"]
        d_big["us_per_lead_vs_smallest"] = round(growth, 2)
        span = f"{small:,} -> {big:,} territories"
        label = t if (small, big) == (1_000, 100_000) else f"{t} (here {span})"
        verdict(
            d_big,
            label,
            f"{d_small['us_per_lead']:,} -> {d_big['us_per_lead']:,} us/lead = {growth:.2f}x",
            growth < 2,
        )
    else:
        missing(t, "needs two model sizes")

    t = f"a {cfg.compile_rules}-rule ruleset validates and compiles < 2 s"
    c = _find(results, "compile_500_rules", None)
    if c:
        verdict(
            c,
            t,
            f"{c['seconds']:.2f} s (validate {c['validate_seconds']:.2f} s, durable {c['durable_build_seconds']:.2f} s, "
            f"{c['shards']} shards)",
            c["seconds"] < 2,
        )
    return lines


def _fmt(value: Any, spec: str = ",") -> str:
    if value is None or value == "":
        return "-"
    return format(value, spec)


def table(results: Sequence[Result]) -> str:
    """The results as an aligned text table."""
    head = (
        "phase",
        "territories",
        "leads",
        "leads/s",
        "us/lead",
        "seconds",
        "build s",
        "peak RSS MB",
        "notes",
    )
    rows = [head]
    for r in results:
        notes = []
        if r["name"] == "match":
            notes.append(
                f"depth {r['depth']}, {r['matched_per_lead']} matched, {r['lowest_per_lead']} lowest/lead"
            )
        if "speedup" in r:
            notes.append(f"match is {r['speedup']:,.0f}x faster")
        if "agrees_with_snapshot" in r:
            notes.append("agrees" if r["agrees_with_snapshot"] else "DISAGREES with snapshot")
        if "agrees_with_reference" in r:
            notes.append("= reference" if r["agrees_with_reference"] else "DIFFERS from reference")
        if "us_per_lead_vs_smallest" in r:
            notes.append(f"{r['us_per_lead_vs_smallest']}x the smallest model's us/lead")
        if r["name"] == "compile_500_rules":
            notes.append(f"{r['rules']} rules -> {r['shards']} durable shards")
        rows.append(
            (
                r["name"],
                _fmt(r["territories"]),
                _fmt(r["leads"] or None),
                _fmt(r.get("leads_per_s")),
                _fmt(r.get("us_per_lead"), ",.1f"),
                _fmt(r["seconds"], ".2f"),
                _fmt(r.get("build_seconds"), ".2f"),
                _fmt(r["peak_rss_mb"], ",.0f"),
                "; ".join(notes),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for k, row in enumerate(rows):
        cells = [
            c.ljust(w) if i in (0, len(head) - 1) else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    for r in results:
        if r["name"] == "decide_breakdown":
            lines.append("")
            lines.append(f"decide_breakdown ({r['territories']:,} territories, durable), us per lead:")
            lines.extend(f"  {v:>8,.1f}  {k}" for k, v in r["us_per_lead_by_part"].items())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.assignment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (1,000 leads), a smoke run")
    parser.add_argument(
        "--jobs", type=int, default=1, help="phases run at once, each in its own process (0: here)"
    )
    parser.add_argument("--out", type=Path, default=None, help=f"results file (default {RESULTS})")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PHASE[:TERRITORIES]",
        help="rerun only this phase (repeatable), replacing its entries in the results file",
    )
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    # A quick run never overwrites the committed results.
    out = args.out or (
        Path(tempfile.gettempdir()) / "prm-bench-assignment-quick.json" if args.quick else RESULTS
    )
    print(
        f"assignment benchmark: {'quick' if args.quick else 'full'} run, clock {CLOCK}, {args.jobs or 'in-process'} "
        f"job(s), {os.cpu_count()} CPUs, Python {platform.python_version()}",
        file=sys.stderr,
    )
    started = time.perf_counter()
    results = run(cfg, out, jobs=args.jobs, only=args.only)
    print(table(results))
    print()
    for line in check_targets(results, cfg):
        print(line)
    print(f"\nwrote {out} in {time.perf_counter() - started:,.0f} s wall")
    return 0


__all__ = ["FULL", "QUICK", "Config", "check_targets", "run", "table"]

if __name__ == "__main__":
    raise SystemExit(main())
