"""A trace explains the matches and the closest losers; the others are counted, whatever the model's size."""

from __future__ import annotations

from territory.dimensions import Dimension, MemberHierarchy
from territory.snapshot import Reason, TerritorySnapshot
from territory.tree import Coverage, TerritoryDef

COUNTRIES = [f"C{i:03d}" for i in range(300)]


def _wide() -> TerritorySnapshot:
    """WW with 300 country children; C007 is split by product line (P1, P2) and by program (gold)."""
    geo = MemberHierarchy({"W": None, **dict.fromkeys(COUNTRIES, "W")}, name="geography")
    product = MemberHierarchy({"ALL": None, "P1": "ALL", "P2": "ALL", "P1-A": "P1"}, name="product")
    program = MemberHierarchy({"gold": None, "silver": None}, name="program")
    defs = [TerritoryDef("WW", None, "Worldwide", "global")]
    for c in COUNTRIES:
        cov = {Dimension.GEOGRAPHY: Coverage.of([c])}
        if c == "C100":  # meets the lead's product and program: the closest loser
            cov = {**cov, Dimension.PRODUCT: Coverage.of(["P1"]), Dimension.PROGRAM: Coverage.of(["gold"])}
        defs.append(TerritoryDef(c, "WW", c, "country", coverage=cov))
    g7 = Coverage.of(["C007"])
    defs += [
        TerritoryDef(
            "C007-P1",
            "C007",
            "P1",
            "line",
            coverage={Dimension.GEOGRAPHY: g7, Dimension.PRODUCT: Coverage.of(["P1"])},
        ),
        TerritoryDef(
            "C007-P2",
            "C007",
            "P2",
            "line",
            coverage={Dimension.GEOGRAPHY: g7, Dimension.PRODUCT: Coverage.of(["P2"])},
        ),
        TerritoryDef(
            "C007-GOLD",
            "C007",
            "gold",
            "tier",
            coverage={Dimension.GEOGRAPHY: g7, Dimension.PROGRAM: Coverage.of(["gold"])},
        ),
        TerritoryDef(
            "C007-NOT-A",
            "C007",
            "not P1-A",
            "line",
            coverage={Dimension.GEOGRAPHY: g7, Dimension.PRODUCT: Coverage.of(["ALL"], ["P1-A"])},
        ),
    ]
    return TerritorySnapshot(
        "v1", defs, {Dimension.GEOGRAPHY: geo, Dimension.PRODUCT: product, Dimension.PROGRAM: program}
    )


LEAD = {"geography": "C007", "product": "P1-A", "program": "gold"}


def test_the_bounded_candidates_keep_every_match_and_the_closest_losers_only():
    snap = _wide()
    found = snap.candidates(LEAD, 3)
    by_key = {e.territory: e for e in found.explained}
    # Every match: the path and both ties at the lowest level.
    assert snap.match(LEAD).lowest == ("C007-GOLD", "C007-P1")
    assert {k for k, e in by_key.items() if e.reason in (Reason.MATCHED, Reason.MATCHED_NOT_LOWEST)} == {
        "WW",
        "C007",
        "C007-GOLD",
        "C007-P1",
    }
    losers = [e for e in found.explained if e.reason not in (Reason.MATCHED, Reason.MATCHED_NOT_LOWEST)]
    assert len(losers) == 3
    # C100 meets two of its three dimensions; the two C007 lines meet geography and fail product.
    assert by_key["C100"].dimensions_matched == 2
    assert by_key["C100"].dimensions_failed == (Dimension.GEOGRAPHY,)
    assert {"C007-P2", "C007-NOT-A"} <= set(by_key)
    assert by_key["C007-NOT-A"].reason == Reason.EXCLUDED
    # 299 other countries did not match: 298 left out, counted by reason.
    assert found.omitted == 298
    assert found.omitted_reasons == {"dimension_not_covered": 298}
    assert [e.territory for e in found.explained] == sorted(by_key, key=snap.keys().index)


def test_closest_none_explains_every_loser_like_explain_all():
    snap = _wide()
    full = snap.candidates(LEAD, None)
    assert full.omitted == 0 and full.omitted_reasons == {}
    assert len(full.explained) == 4 + 299 + 2
    assert [e.territory for e in full.explained] == [e.territory for e in snap.explain_all(LEAD)]


def test_when_nothing_matches_the_root_is_the_candidate():
    snap = TerritorySnapshot(
        "v1",
        [TerritoryDef("EU", None, "Europe", "region", coverage={Dimension.GEOGRAPHY: Coverage.of(["FR"])})],
        {Dimension.GEOGRAPHY: MemberHierarchy({"FR": None, "DE": None}, name="geography")},
    )
    found = snap.candidates({"geography": "DE"}, 5)
    assert [(e.territory, e.reason) for e in found.explained] == [("EU", Reason.DIMENSION_NOT_COVERED)]


def test_explain_counts_the_dimensions_a_losing_territory_meets():
    e = _wide().explain(LEAD, "C100")
    assert (e.reason, e.dimensions_matched, e.dimensions_failed) == (
        Reason.DIMENSION_NOT_COVERED,
        2,
        (Dimension.GEOGRAPHY,),
    )


def test_the_scores_of_near_misses_agree_with_explaining_each_territory_alone():
    from territory.synthetic import generate_leads, generate_model

    defs, dims = generate_model(400, depth=5, seed=3, exclusion_rate=0.3)
    snap = TerritorySnapshot("v1", defs, dims)
    checked = 0
    for lead in generate_leads(dims, 60, seed=4):
        for e in snap.candidates(lead, None).explained:
            alone = snap.explain(lead, e.territory)
            assert (e.reason, e.dimension) == (alone.reason, alone.dimension)
            if e.reason not in (Reason.MATCHED, Reason.MATCHED_NOT_LOWEST):
                assert (e.dimensions_matched, e.dimensions_failed) == (
                    alone.dimensions_matched,
                    alone.dimensions_failed,
                )
                checked += 1
    assert checked > 100
