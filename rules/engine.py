"""The durable_rules evaluator of the rule AST: the only module that imports durable.

DESIGN.md 2.1 lists how durable_rules 2.0.28 crashed, hung or answered wrongly when probed; this module
is built around those findings:

- durable's C core (``durable_rules_engine``) is driven directly, without its Python ``Host``: no
  dispatch or timer thread, no Python action ever runs; a ruleset's rules have no actions of ours, and
  the core's list of due actions, each named after the rule that fired, is the outcome (the Python
  layer cost ~100 µs of JSON state round trips per evaluation, eight times the core's own work);
- the rulesets live in a per-process runtime created lazily (so after a fork) and dropped in a forked
  child; one lock around every evaluation;
- one fixed session (``sid``) per durable ruleset whose state is never written; no timers, statecharts,
  batches or per-lead sessions;
- every durable ruleset ends with a catch-all at the lowest priority, so every message is consumed; an
  unexpected answer of the core raises ``EngineFailure``;
- no regex, no negative ``pri``, at most ``SHARD_SIZE`` (60) rules per durable ruleset (larger rulesets
  are split and the results combined per hit policy), ``in`` sets as ``$or`` groups of at most
  ``SET_GROUP`` members;
- ``first``/``priority`` assert an event (one rule fires; the order is encoded in ``pri``); ``collect``
  asserts a fact, completes every due action, and retracts the fact in the same evaluation, so every
  matching rule fires once and nothing stays behind;
- facts a ruleset cannot tell apart (``FactClasses``: a number by where it falls among the constants it
  is compared with, a text by which constant it equals, if any) are evaluated once: the rules that fired
  are remembered per class (a batch re-deciding a million leads asks the same question many times);
- a new ruleset version is smoke-evaluated in a subprocess with a timeout (``verify_in_subprocess``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring as quote
from pathlib import Path
from typing import Any

import durable_rules_engine

from rules import ast
from rules.compiler import MARK, MAX_EQUALITIES, compile_condition, equalities
from rules.errors import EngineFailure, VerificationFailed
from rules.outcome import Outcome, merge_actions
from rules.reference import ReferenceEvaluator, explain, select
from rules.vocabulary import normalize_facts

#: durable rules per durable ruleset, our internal catch-all included. DESIGN.md says at most ~100
#: (error 107 and crashes past that); measured here, an event or fact matching more than ~65 rules of one
#: ruleset fails with error 303 (ERR_MAX_STACK_SIZE), so shards stay below that.
SHARD_SIZE = 60
#: The one session each durable ruleset uses.
SESSION = "prm"
CATCH_ALL = "catch_all"


@dataclass(frozen=True)
class Shard:
    """One durable ruleset: a slice of the ranked rules plus the internal catch-all.

    `rule_ids` maps each durable rule name to the rule id it records (several pieces of one rule may
    share an id, see `rules.compiler`).
    """

    name: str
    rule_ids: dict[str, str]
    definition: dict[str, Any]


def shard_definitions(ruleset: ast.Ruleset) -> list[Shard]:
    """The durable ruleset definitions (without actions) for a ruleset, in rank order.

    Within a shard `pri` is the rank (1 fires first) and the catch-all comes last; the pieces of one
    rule stay together in one shard.
    """
    shards: list[Shard] = []
    definition: dict[str, Any] = {}
    rule_ids: dict[str, str] = {}
    tests: set[tuple[str, str]] = set()

    def close() -> None:
        lowest = max((rule["pri"] for rule in definition.values()), default=0)
        definition[CATCH_ALL] = {"all": [{"m": {MARK: 1}}], "pri": lowest + 1}
        name = f"prm_{ruleset.kind.value}_{ruleset.version[:24]}_{len(shards)}"
        shards.append(Shard(name, dict(rule_ids), dict(definition)))
        definition.clear()
        rule_ids.clear()
        tests.clear()

    for rank, rule in enumerate(ruleset.ranked()):
        # pieces of one rule may spread over consecutive shards: shard order keeps the rank order
        for p, expr in enumerate(compile_condition(rule.condition)):
            piece_tests = equalities(expr)
            if len(piece_tests) > MAX_EQUALITIES:  # the checks reject this; never hang on it
                raise EngineFailure(f"rule {rule.id!r} tests too many values for durable_rules")
            if definition and (
                len(definition) >= SHARD_SIZE - 1 or len(tests | piece_tests) > MAX_EQUALITIES
            ):
                close()
            name = f"r{rank}_{p}"
            definition[name] = {"all": [{"m": expr}], "pri": rank + 1}
            rule_ids[name] = rule.id
            tests.update(piece_tests)
    close()
    return shards


def fact_names(shards: Iterable[Shard]) -> frozenset[str]:
    """The fact names the shards' conditions read (every key of a condition that is no operator, nor
    ``MARK``, which every message carries and no lead fact is)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not key.startswith("$") and key != MARK:
                    names.add(key)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for shard in shards:
        for rule in shard.definition.values():
            for term in rule["all"]:
                walk(term["m"])
    return frozenset(names)


class FactClasses:
    """The classes of facts a ruleset cannot tell apart, so one evaluation answers for a whole class.

    Every condition compares a fact with constants (``eq``, ``ne``, ``lt``... ``in``, ``not_in``,
    ``exists``). A number is told apart from others only by where it falls among the numbers its fact
    is compared with (below, equal to, or between two of them); a text only by which of its fact's
    constants it equals, if any; a missing fact by its absence. The class of a lead's facts is that,
    fact by fact; facts compared in any other way (text with ``lt``, a fact compared with numbers and
    texts alike, a value of an unexpected type) keep their value in the class.

    >>> c = FactClasses.of(ast.make_ruleset(ast.Kind.POLICY, ast.HitPolicy.FIRST, (ast.Rule("big", 0,
    ...     ast.Compare("deal_size", ast.Op.GTE, 100000), ast.PolicyActions(expiry_days=30)),)))
    >>> c.key({"deal_size": 150000}) == c.key({"deal_size": 900000}) != c.key({"deal_size": 99999})
    True
    """

    def __init__(
        self,
        names: Iterable[str],
        numbers: Mapping[str, Iterable[float]],
        texts: Mapping[str, Iterable[str]],
        raw: Iterable[str] = (),
    ) -> None:
        self.names = tuple(sorted(names))
        self.numbers = {name: tuple(sorted(set(values))) for name, values in numbers.items()}
        self.texts = {name: frozenset(values) for name, values in texts.items()}
        #: facts compared in ways the classes do not cover: their values are their classes
        self.raw = frozenset(raw)

    @classmethod
    def of(cls, ruleset: ast.Ruleset) -> FactClasses:
        names: set[str] = set()
        numbers: dict[str, list[float]] = {}
        texts: dict[str, set[str]] = {}
        raw: set[str] = set()

        def walk(node: ast.Condition) -> None:
            if isinstance(node, ast.Compare):
                names.add(node.fact)
                if node.op is ast.Op.EXISTS:
                    return
                for value in node.value if isinstance(node.value, tuple) else (node.value,):
                    if isinstance(value, bool) or not isinstance(value, int | float | str):
                        raw.add(node.fact)
                    elif isinstance(value, str):
                        texts.setdefault(node.fact, set()).add(value)
                        if node.op in ast.NUMBER_OPS:
                            raw.add(node.fact)
                    else:
                        numbers.setdefault(node.fact, []).append(value)
            elif isinstance(node, ast.AllOf | ast.AnyOf):
                for item in node.items:
                    walk(item)
            elif isinstance(node, ast.Not):
                walk(node.item)

        for rule in ruleset.rules:
            walk(rule.condition)
        raw |= set(numbers) & set(texts)
        return cls(
            names,
            {k: v for k, v in numbers.items() if k not in raw},
            {k: v for k, v in texts.items() if k not in raw},
            raw,
        )

    def key(self, facts: Mapping[str, Any]) -> tuple[Any, ...]:
        """The class of ``facts`` (normalized: text or numbers)."""
        out: list[Any] = []
        for name in self.names:
            value = facts.get(name, _MISSING)
            if value is _MISSING:
                out.append(_MISSING)
                continue
            kind = type(value)
            texts = self.texts.get(name)
            if texts is not None and kind is str:
                out.append(value if value in texts else _OTHER)
                continue
            numbers = self.numbers.get(name)
            if numbers is not None and (kind is int or kind is float):
                at = bisect_left(numbers, value)
                out.append((at, at < len(numbers) and numbers[at] == value))
                continue
            if texts is None and numbers is None and name not in self.raw:  # only ``exists`` reads it
                out.append(_OTHER)
                continue
            out.append((_RAW, kind.__name__, value))
        return tuple(out)


_MISSING, _OTHER, _RAW = object(), object(), object()  # no fact value is any of them
#: Classes remembered per ruleset (a dict of fired rules, ~250 bytes each; forgotten past this many: a
#: million leads of the reassignment benchmark fall in ~200,000 classes of its 50-rule policy).
CLASSES_KEPT = 262_144


_TAIL = f'"{MARK}":1,"sid":"{SESSION}"}}'


def _message(facts: Mapping[str, Any], names: frozenset[str]) -> str:
    """The JSON message of normalized facts (text or numbers, see `normalize_facts`), keeping only the
    facts some condition reads (the core parses and indexes less). Written by hand: it is the same text
    ``json.dumps(..., ensure_ascii=False)`` gives, in half its time; names are vocabulary identifiers."""
    parts = [
        f'"{name}":{quote(value) if type(value) is str else repr(value)},'
        for name, value in facts.items()
        if name in names
    ]
    parts.append(_TAIL)
    return "{" + "".join(parts)


# -- the runtime ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    """A ruleset loaded into the runtime."""

    shards: list[Shard]
    names: frozenset[str]
    classes: FactClasses | None
    #: the rules that fired, per class of facts (``FactClasses.key``)
    fired: dict[tuple[Any, ...], tuple[str, ...]]


class _Runtime:
    """The durable rulesets loaded in this process, driven through durable's C core.

    durable's Python layer (``Host``/``Ruleset``/``Closure``) costs ~100 µs per evaluation: a JSON round
    trip of the session state per fired action, a state reset, and a closure object per action. We need
    none of it: no Python action ever runs. An evaluation asserts the message, then asks the core which
    actions are due (``start_action_for_state``, each naming the rule that fired) and completes them one
    by one; the rule names are the outcome. The session state is never written, so nothing needs a reset.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.handles: dict[str, int] = {}
        self.loaded: dict[str, _Loaded] = {}

    def load(self, ruleset: ast.Ruleset) -> _Loaded:
        """The ruleset's durable shards (created on first use), the facts their conditions read, and the
        rules that fired per class of facts seen (none when the ruleset has no content-hash version)."""
        key = f"{ruleset.kind.value}:{ruleset.version}"
        loaded = self.loaded.get(key)
        if loaded is None:
            shards = shard_definitions(ruleset)
            for shard in shards:
                try:
                    handle = durable_rules_engine.create_ruleset(
                        shard.name, json.dumps(shard.definition, ensure_ascii=False)
                    )
                except durable_rules_engine.error as exc:
                    raise EngineFailure(f"durable_rules refused {shard.name}: {exc}") from exc
                self.handles[shard.name] = handle
            names = fact_names(shards)
            classes = FactClasses.of(ruleset) if ruleset.version else None
            if classes is not None and not names <= set(classes.names):
                classes = None  # (the compiled conditions read what the rules do: never expected)
            loaded = self.loaded[key] = _Loaded(shards, names, classes, {})
        return loaded

    def close(self) -> None:
        """Free every durable ruleset of this runtime (called under the evaluation lock)."""
        for handle in self.handles.values():
            durable_rules_engine.delete_ruleset(handle)
        self.handles.clear()
        self.loaded.clear()

    def _run_shard(self, shard: Shard, message: str, as_fact: bool) -> list[str]:
        handle = self.handles[shard.name]
        fired: list[str] = []
        try:
            result = (durable_rules_engine.assert_fact if as_fact else durable_rules_engine.assert_event)(
                handle, message
            )
            try:
                if result[0] not in (0, 1):  # 1: nothing matched (the catch-all makes that impossible)
                    raise EngineFailure(f"durable_rules answered {result[0]} to a message on {shard.name}")
                if result[0] == 0:
                    state = result[1]
                    action = durable_rules_engine.start_action_for_state(handle, state)
                    while action:
                        due = action[1]
                        name = due[2 : due.index('"', 2)]  # '{"RULE_NAME": ...}': the rule that fired
                        rule_id = shard.rule_ids.get(name)
                        if rule_id is not None:  # the internal catch-all records nothing
                            fired.append(rule_id)
                        following = durable_rules_engine.complete_and_start_action(handle, state)
                        action = (None, following) if following else None
            finally:
                if as_fact:
                    durable_rules_engine.retract_fact(handle, message)
        except durable_rules_engine.error as exc:
            raise EngineFailure(f"durable_rules failed on {shard.name}: {exc}") from exc
        return fired

    def fired(self, ruleset: ast.Ruleset, facts: Mapping[str, Any]) -> tuple[str, ...]:
        loaded = self.load(ruleset)
        if loaded.classes is None:
            return self._fired(ruleset, loaded, facts)
        key = loaded.classes.key(facts)
        known = loaded.fired.get(key)
        if known is None:
            known = self._fired(ruleset, loaded, facts)
            if len(loaded.fired) >= CLASSES_KEPT:
                loaded.fired.clear()
            loaded.fired[key] = known
        return known

    def _fired(self, ruleset: ast.Ruleset, loaded: _Loaded, facts: Mapping[str, Any]) -> tuple[str, ...]:
        shards, names = loaded.shards, loaded.names
        collect = ruleset.hit_policy is ast.HitPolicy.COLLECT
        text = _message(facts, names)
        matched: set[str] = set()
        for shard in shards:
            ids = self._run_shard(shard, text, as_fact=collect)
            if not collect and len(set(ids)) > 1:
                raise EngineFailure(f"durable_rules fired {len(ids)} rules for one event on {shard.name}")
            matched.update(ids)
            if ids and not collect:
                break  # shards are in rank order: the first rule to fire wins
        return select(ruleset, matched)


_LOCK = threading.Lock()
_RUNTIME: _Runtime | None = None


def _forget_runtime_in_child() -> None:
    global _LOCK, _RUNTIME
    _LOCK = threading.Lock()
    _RUNTIME = None


os.register_at_fork(after_in_child=_forget_runtime_in_child)


def _runtime() -> _Runtime:
    global _RUNTIME
    if _RUNTIME is None or _RUNTIME.pid != os.getpid():
        _RUNTIME = _Runtime()
    return _RUNTIME


def reload_host() -> None:
    """Free the loaded rulesets and start afresh on next use (how a running process picks up new
    ruleset versions without old ones piling up)."""
    global _RUNTIME
    with _LOCK:
        if _RUNTIME is not None and _RUNTIME.pid == os.getpid():
            _RUNTIME.close()
        _RUNTIME = None


def preload(ruleset: ast.Ruleset) -> None:
    """Load a ruleset into this process's durable runtime now, so the first evaluation does not pay for it."""
    with _LOCK:
        _runtime().load(ruleset)


class DurableEvaluator:
    """Evaluates rulesets with durable_rules (the production default)."""

    name = "durable"

    def evaluate(self, ruleset: ast.Ruleset, facts: Mapping[str, object], *, trace: bool = True) -> Outcome:
        """Same contract as `rules.reference.evaluate`; raises `EngineFailure` if durable misbehaves."""
        normalized = normalize_facts(facts)
        with _LOCK:
            fired = _runtime().fired(ruleset, normalized)
        return Outcome(
            ruleset.version,
            ruleset.kind,
            ruleset.hit_policy,
            fired,
            merge_actions(ruleset, fired),
            explain(ruleset, normalized) if trace else (),
            "durable",
        )


def evaluate(ruleset: ast.Ruleset, facts: Mapping[str, object], *, trace: bool = True) -> Outcome:
    """Evaluate with durable_rules in this process."""
    return DurableEvaluator().evaluate(ruleset, facts, trace=trace)


# -- verification in a subprocess -------------------------------------------------------------------

_REPO_ROOT = Path(__file__).resolve().parents[1]


def verify_in_subprocess(
    ruleset: ast.Ruleset, sample_facts: Iterable[Mapping[str, object]], timeout_s: float = 30.0
) -> dict[str, Any]:
    """Load and smoke-evaluate `ruleset` with durable_rules in a child process, before accepting it.

    A bad shape can hang durable's loader or crash the process; the child takes that risk, with a
    timeout. The child also checks that durable and the reference evaluator agree on every sample.
    Returns the child's report (``{"ok": True, "evaluations": n, "seconds": s}``); raises
    `VerificationFailed` with the reason on error, crash, disagreement or timeout.
    """
    payload = json.dumps({"ruleset": ast.ruleset_to_json(ruleset), "facts": [dict(f) for f in sample_facts]})
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-c", "from rules.engine import _verify_child; _verify_child()"]
    try:
        done = subprocess.run(
            command, input=payload, capture_output=True, text=True, timeout=timeout_s, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise VerificationFailed(
            f"ruleset {ruleset.version[:12]} did not load and evaluate within {timeout_s:g} s"
        ) from exc
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise VerificationFailed(f"ruleset {ruleset.version[:12]} failed verification: {detail}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _verify_child() -> None:
    """Entry point of the verification subprocess: JSON on stdin, one JSON report line on stdout."""
    data = json.loads(sys.stdin.read())
    ruleset = ast.ruleset_from_json(data["ruleset"])
    durable, reference = DurableEvaluator(), ReferenceEvaluator()
    started = time.perf_counter()
    preload(ruleset)
    for facts in data["facts"]:
        got = durable.evaluate(ruleset, facts, trace=False)
        want = reference.evaluate(ruleset, facts, trace=False)
        if got != want:
            sys.stderr.write(f"durable and reference disagree on {facts}: {got.fired} != {want.fired}\n")
            sys.exit(2)
    seconds = time.perf_counter() - started
    print(json.dumps({"ok": True, "evaluations": len(data["facts"]), "seconds": round(seconds, 4)}))
