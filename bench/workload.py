"""What the assignment benchmark feeds the code: lead facts, rules files, and a naive matcher to beat.

Everything is deterministic per seed. Territory models and their leads come from
``territory.synthetic``; this module adds the facts the policy rules read (region, country, product
group, program tier, deal size, registration type...), generates the rules files as YAML text (so
loading them exercises the whole loader), and wraps the brute-force reference matcher of the tests.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from territory.dimensions import Dimension, MemberHierarchy
from territory.synthetic import generate_leads
from territory.tree import TerritoryDef
from tests.unit.territory.brute_force import depth_first_keys, territory_matches

REGISTRATION_TYPES = ("co_sell", "referral", "resale")
CUSTOMER_SIZES = ("small", "medium", "large", "enterprise")
DEAL_THRESHOLDS = (10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000)
#: Deals at or above this need the channel sales director's approval too (the approval ruleset).
DIRECTOR_ABOVE = 250_000

_EXPIRY = (30, 45, 60, 90, 120, 180)
_REQUIRED = ("customer", "primary_product", "registration_type", "deal_size", "close_date", "description")
_EVENTS = ("submitted", "approved", "expired", "transferred")


# -- lead facts -------------------------------------------------------------------------------------


def _top_down(h: MemberHierarchy, member: str | None) -> tuple[str, ...]:
    if member is None or member not in h:
        return ()
    return tuple(reversed(h.ancestors_or_self(member)))


def lead_facts(
    dimensions: Mapping[str, MemberHierarchy], n: int, seed: int = 0
) -> list[dict[str, str | int]]:
    """``n`` leads as the assignment decision receives them: the territory dimensions' members plus the
    facts policy rules test (derived from those members where a real lead would derive them)."""
    rng = random.Random(seed)
    geo = dimensions[Dimension.GEOGRAPHY]
    product = dimensions[Dimension.PRODUCT]
    out: list[dict[str, str | int]] = []
    for lead in generate_leads(dimensions, n, seed=seed):
        facts: dict[str, str | int] = dict(lead)
        geo_path = _top_down(geo, lead.get("geography"))  # WORLD, region, country, area, ...
        if len(geo_path) > 1:
            facts["region"] = geo_path[1]
        if len(geo_path) > 2:
            facts["customer_country"] = geo_path[2]
        product_path = _top_down(product, lead.get("product"))
        if len(product_path) > 1:
            facts["product_group"] = product_path[1]
        program = lead.get("program")
        if program and "-" in program:
            facts["partner_type"], facts["program_tier"] = program.split("-", 1)
        facts["deal_size"] = round(rng.lognormvariate(10.5, 1.3))  # median about 36,000
        facts["currency"] = "USD"
        facts["registration_type"] = rng.choice(REGISTRATION_TYPES)
        facts["customer_size"] = rng.choice(CUSTOMER_SIZES)
        out.append(facts)
    return out


# -- rules files ------------------------------------------------------------------------------------


def _vocabulary(dimensions: Mapping[str, MemberHierarchy]) -> dict[str, list[str]]:
    geo = dimensions[Dimension.GEOGRAPHY]
    product = dimensions[Dimension.PRODUCT]
    program = dimensions[Dimension.PROGRAM]
    regions = [r for root in geo.roots for r in geo.children(root)]
    return {
        "region": regions,
        "customer_country": [c for r in regions for c in geo.children(r)],
        "product_group": [g for root in product.roots for g in product.children(root)],
        "partner_type": [t for root in program.roots for t in program.children(root)],
        "program": [m for m in program if not program.children(m)],
        "program_tier": sorted({m.split("-", 1)[1] for m in program if "-" in m}),
    }


def _atom(rng: random.Random, vocab: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    kind = rng.choice(
        (
            "region",
            "country",
            "product_group",
            "program",
            "partner_type",
            "tier",
            "registration",
            "deal",
            "size",
        )
    )
    if kind == "region":
        return {"fact": "region", "op": "eq", "value": rng.choice(vocab["region"])}
    if kind == "country":
        return {
            "fact": "customer_country",
            "op": "in",
            "value": sorted(rng.sample(vocab["customer_country"], 3)),
        }
    if kind == "product_group":
        return {"fact": "product_group", "op": "in", "value": sorted(rng.sample(vocab["product_group"], 2))}
    if kind == "program":
        return {"fact": "program", "op": "in", "value": sorted(rng.sample(vocab["program"], 4))}
    if kind == "partner_type":
        return {"fact": "partner_type", "op": "eq", "value": rng.choice(vocab["partner_type"])}
    if kind == "tier":
        return {
            "fact": "program_tier",
            "op": rng.choice(("eq", "ne")),
            "value": rng.choice(vocab["program_tier"]),
        }
    if kind == "registration":
        return {"fact": "registration_type", "op": "eq", "value": rng.choice(REGISTRATION_TYPES)}
    if kind == "size":
        return {"fact": "customer_size", "op": "in", "value": sorted(rng.sample(CUSTOMER_SIZES, 2))}
    return {"fact": "deal_size", "op": rng.choice(("gte", "lt")), "value": rng.choice(DEAL_THRESHOLDS)}


def _condition(rng: random.Random, vocab: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    atoms: list[dict[str, Any]] = []
    for _ in range(rng.choice((1, 2, 2, 3, 3))):
        atom = _atom(rng, vocab)
        if all(a["fact"] != atom["fact"] for a in atoms):  # one comparison per fact
            atoms.append(atom)
    shape = rng.random()
    if len(atoms) == 3 and shape < 0.2:  # a or b, and c
        return {"all": [{"any": atoms[:2]}, atoms[2]]}
    if len(atoms) >= 2 and shape < 0.3:  # a and not b
        return {"all": [*atoms[:-1], {"not": atoms[-1]}]}
    return atoms[0] if len(atoms) == 1 else {"all": atoms}


def _policy_then(rng: random.Random) -> dict[str, Any]:
    then: dict[str, Any] = {"expiry_days": rng.choice(_EXPIRY)}
    if rng.random() < 0.5:
        then["required_fields"] = sorted(rng.sample(_REQUIRED, rng.randint(2, 4)))
    if rng.random() < 0.4:
        then["transfer"] = rng.choice(("on_approval", "never"))
    if rng.random() < 0.3:
        then["notify"] = {rng.choice(_EVENTS): {"roles": ["channel_account_manager"]}}
    if rng.random() < 0.2:
        then["block_overlapping_registrations"] = True
    return then


def policy_yaml(n_rules: int, dimensions: Mapping[str, MemberHierarchy], seed: int = 0) -> str:
    """A policy rules file (hit policy ``first``) of ``n_rules`` rules, the last a catch-all.

    Conditions combine one to three comparisons over region, country, product group, program, partner
    type and tier, registration type, customer size and deal size, some under ``any`` or ``not``; no two
    rules have the same condition (the loader rejects a rule shadowed by an identical one).
    """
    rng = random.Random(seed)
    vocab = _vocabulary(dimensions)
    seen: set[str] = set()
    rules: list[dict[str, Any]] = []
    while len(rules) < n_rules - 1:
        when = _condition(rng, vocab)
        key = json.dumps(when, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        rules.append({"id": f"policy-{len(rules) + 1:04d}", "when": when, "then": _policy_then(rng)})
    rules.append({"id": "default", "when": "always", "then": {"expiry_days": 90}})
    lines = ["kind: policy", "hit_policy: first", "description: generated by bench.workload", "rules:"]
    for rule in rules:
        lines.extend(_block(rule, 2, item=True))
    return "\n".join(lines) + "\n"


_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
_RESERVED = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})


def _flow(value: object) -> str:
    """One-line YAML: plain scalars where unambiguous, ``[a, b]`` lists, ``{k: v}`` mappings."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, str) and _PLAIN.match(value) and value.lower() not in _RESERVED:
        return value
    return json.dumps(value)


def _flat(value: object) -> bool:
    """Written on one line: scalars, lists of scalars, and comparisons (``{fact, op, value}``)."""
    if isinstance(value, dict):
        return "fact" in value
    if isinstance(value, list):
        return all(not isinstance(v, dict | list) for v in value)
    return True


def _block(value: object, indent: int, *, item: bool = False) -> list[str]:
    """Block-style YAML as admins write it, with one-line flow style for flat values."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, v in value.items():
            if _flat(v):
                lines.append(f"{pad}{key}: {_flow(v)}")
            else:
                lines.append(f"{pad}{key}:")
                lines.extend(_block(v, indent + 2))
    elif isinstance(value, list):
        for v in value:
            lines.extend(_block(v, indent, item=True) if not _flat(v) else [f"{pad}- {_flow(v)}"])
        return lines
    else:
        lines.append(f"{pad}{_flow(value)}")
    if item:  # "- " replaces the first line's indentation
        lines[0] = f"{pad}- {lines[0].lstrip()}"
        lines[1:] = [f"  {line}" for line in lines[1:]]
    return lines


APPROVAL_YAML = f"""\
kind: approval
hit_policy: collect
description: the CAM approves every lead; large deals also need the channel sales director
fallback_approver: channel-ops
rules:
  - id: cam
    when: always
    then:
      steps:
        - name: channel account manager
          roles: [channel_account_manager]
  - id: director-for-large-deals
    when: {{fact: deal_size, op: gte, value: {DIRECTOR_ABOVE}}}
    then:
      steps:
        - name: channel sales director
          roles: [channel_sales_director]
"""


# -- the naive matcher ------------------------------------------------------------------------------


class BruteForceMatcher:
    """Check every territory on every dimension, straight from the definitions (the tests' reference).

    The depth-first order and the depths are computed once per model, so the figure is the per-lead
    cost of the scan itself (``tests.unit.territory.brute_force.brute_force_match`` recomputes them on
    every call, which would flatter the snapshot).
    """

    def __init__(self, defs: Sequence[TerritoryDef], dimensions: Mapping[str, MemberHierarchy]) -> None:
        by_key = {d.key: d for d in defs}
        self._dimensions = dimensions
        self._order = [by_key[k] for k in depth_first_keys(defs)]
        depth: dict[str, int] = {}
        for d in self._order:  # parents come first
            depth[d.key] = 0 if d.parent_key is None else depth[d.parent_key] + 1
        self._depth = depth

    def match(self, facts: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(all matches, lowest matches), depth-first order, as ``TerritorySnapshot.match`` gives them."""
        dims = self._dimensions
        matched = tuple(d.key for d in self._order if territory_matches(d, facts, dims))
        if not matched:
            return (), ()
        deepest = max(self._depth[k] for k in matched)
        return matched, tuple(k for k in matched if self._depth[k] == deepest)
