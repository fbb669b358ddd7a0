"""The built-in geography is the whole of ISO 3166-1 and 3166-2 (pycountry), and a territory model over
subdivisions matches every lead exactly like the brute-force matcher."""

from __future__ import annotations

import csv
import io
import random
import re

import pycountry
import pytest

from territory.csv_import import ModelFiles, parse_members, parse_model
from territory.dimensions import Dimension, MemberHierarchy
from territory.geography import WORLD, geography_names, geography_parents, iso_members
from territory.snapshot import TerritorySnapshot
from territory.tree import Coverage, TerritoryDef
from tests.unit.territory.brute_force import brute_force_match


def test_every_iso_country_and_subdivision_is_a_named_member_under_its_parent():
    parents, names = geography_parents(), geography_names()
    assert len(parents) == 1 + 3 + len(pycountry.countries) + len(pycountry.subdivisions)
    for c in pycountry.countries:
        assert parents[parents[c.alpha_2]] == WORLD
        assert names[c.alpha_2] == c.name
    for s in pycountry.subdivisions:
        assert parents[s.code] == (s.parent_code or s.country_code)
        assert names[s.code] == s.name
    geo = MemberHierarchy(parents, name="geography")
    assert geo.ancestors_or_self("FR-69") == ("FR-69", "FR-ARA", "FR", "EMEA", WORLD)
    # the countries the demo data and earlier models used keep their regions
    assert [parents[c] for c in ("US", "BR", "DE", "ZA", "AE", "JP", "IN", "AU")] == [
        "AMER", "AMER", "EMEA", "EMEA", "EMEA", "APAC", "APAC", "APAC"
    ]  # fmt: skip


def _type(kind: str) -> str:
    return ("t_" + re.sub(r"[^a-z0-9]+", "_", kind.lower()))[:40]


def _subdivision_model(rng: random.Random) -> list[TerritoryDef]:
    """WW > region > every country > every subdivision (each level), with some product splits and
    exclusions, so ties and exclusions occur."""
    defs = [TerritoryDef("WW", None, "World", "global")]
    for m in iso_members():
        if m.parent is None:
            continue
        parent = "WW" if m.parent == WORLD else f"T-{m.parent}"
        exclude: list[str] = []
        kids = [k.key for k in iso_members() if k.parent == m.key]
        if kids and rng.random() < 0.1:
            exclude = [rng.choice(kids)]
        cov: dict[str, Coverage] = {Dimension.GEOGRAPHY: Coverage.of([m.key], exclude)}
        defs.append(TerritoryDef(f"T-{m.key}", parent, m.name, _type(m.kind), coverage=cov))
        if m.kind not in ("region", "country") and rng.random() < 0.05:
            for product in ("networking", "security"):
                defs.append(
                    TerritoryDef(
                        f"T-{m.key}-{product}",
                        f"T-{m.key}",
                        product,
                        "product",
                        coverage={**cov, Dimension.PRODUCT: Coverage.of([product])},
                    )
                )
    return defs


def test_lowest_matches_over_every_subdivision_agree_with_brute_force():
    rng = random.Random(3166)
    dims = {
        Dimension.GEOGRAPHY: MemberHierarchy(geography_parents(), name="geography"),
        Dimension.PRODUCT: MemberHierarchy({"networking": None, "security": None, "switches": "networking"}),
    }
    generated = _subdivision_model(rng)
    assert len(generated) > 5_000
    # through the import, as an admin loads such a model: CSV text, every row checked against the
    # geography as shipped
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["key", "parent_key", "name", "type"])
    writer.writerows([d.key, d.parent_key or "", d.name, d.type] for d in generated)
    territories = out.getvalue()
    coverage = "territory_key,dimension,member,mode\n" + "".join(
        f"{d.key},{dim},{m},{mode}\n"
        for d in generated
        for dim, cov in d.coverage.items()
        for mode, members in (("include", cov.include), ("exclude", cov.exclude))
        for m in sorted(members)
    )
    defs = parse_model(ModelFiles(territories, coverage), dims, {})
    assert {d.key: d.coverage for d in defs} == {d.key: d.coverage for d in generated}
    snapshot = TerritorySnapshot("iso", defs, dims)
    subdivisions = [s.code for s in pycountry.subdivisions]
    products = ["networking", "security", "switches", None]
    deepest = 0
    for _ in range(200):
        facts = {"geography": rng.choice(subdivisions)}
        product = rng.choice(products)
        if product:
            facts["product"] = product
        got = snapshot.match(facts)
        matched, lowest = brute_force_match(defs, facts, dims)
        assert (list(got.matched), list(got.lowest)) == (matched, lowest), facts
        deepest = max(deepest, got.depth or 0)
    assert deepest >= 4  # WW > region > country > subdivision > sub-subdivision (or a product split)


def test_a_member_file_adds_postal_codes_and_moves_a_country_to_a_new_region():
    base = MemberHierarchy(geography_parents(), name="geography")
    text = "key,parent,name\nLATAM,WORLD,Latin America\nBR,LATAM,\nFR-75001,FR-75C,Paris 1er\n"
    rows = parse_members("m.csv", text, "geography", base, movable={"BR", "FR"}, moves_under=WORLD)
    assert [(r.key, r.parent) for r in rows] == [("LATAM", "WORLD"), ("BR", "LATAM"), ("FR-75001", "FR-75C")]


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("key,parent,name\nFR-ARA,FR,x\n", "m.csv:2:1", "exists already and cannot be moved"),
        ("key,parent,name\nZ1,FR-XXX,x\n", "m.csv:2:2", "unknown geography member 'FR-XXX'"),
        ("key,parent,name\nDE,FR,x\n", "m.csv:2:2", "can move only to a member under 'WORLD'"),
        ("key,parnt,name\nZ1,FR,x\n", "m.csv:1:2", "did you mean 'parent'"),
        ("key,parent,name\nA1,B1,\nB1,A1,\n", "m.csv:2:2", "cycle"),
    ],
)
def test_member_file_problems_are_positioned(text, position, words):
    from common.errors import ValidationFailed

    base = MemberHierarchy(geography_parents(), name="geography")
    with pytest.raises(ValidationFailed) as exc:
        parse_members("m.csv", text, "geography", base, movable={"DE"}, moves_under=WORLD)
    problems = [(p.pointer, p.message) for p in exc.value.errors]
    assert any(p == position and words in m for p, m in problems), problems
