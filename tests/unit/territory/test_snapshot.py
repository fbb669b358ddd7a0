from __future__ import annotations

import pytest

from territory.dimensions import Dimension
from territory.errors import UnknownTerritory
from territory.snapshot import CamAssignment, MatchResult, Reason, TerritorySnapshot
from territory.tree import Coverage

from .model import cam, defs, dimensions, territory


@pytest.fixture(scope="module")
def snap() -> TerritorySnapshot:
    return TerritorySnapshot("v1", defs(), dimensions())


def lead(**facts: str) -> dict[str, str]:
    return facts


def test_lowest_level_match_wins(snap):
    result = snap.match(lead(geography="FR", product="SRV-1", program="silver"))
    assert result == MatchResult(("WW", "EU", "EU-FR", "EU-FR-HW"), ("EU-FR-HW",), 3)


def test_ties_at_the_same_depth_are_all_kept_in_key_order(snap):
    result = snap.match(lead(geography="FR", product="SRV-1", program="gold"))
    assert result.lowest == ("EU-FR-GOLD", "EU-FR-HW")
    assert result.depth == 3


def test_facts_keyed_by_dimension_enum_match_like_strings(snap):
    by_enum = {Dimension.GEOGRAPHY: "FR", Dimension.PROGRAM: "gold"}
    assert snap.match(by_enum) == snap.match(lead(geography="FR", program="gold"))


def test_including_a_member_includes_its_descendants(snap):
    assert snap.match(lead(geography="FR-PARIS", program="gold")).lowest == ("EU-FR-GOLD",)


def test_exclusion_wins_over_inclusion(snap):
    result = snap.match(lead(geography="FR", product="HW-STO", program="silver"))
    assert "EU-FR-HW" not in result.matched
    assert result.lowest == ("EU-FR",)


def test_excluding_an_ancestor_member_excludes_the_lead_member(snap):
    assert "EU-FR-HW" not in snap.match(lead(geography="FR", product="STO-9")).matched
    result = snap.match(lead(geography="FR-PARIS"))
    assert "EU-NOFR" not in result.matched
    assert snap.match(lead(geography="DE")).lowest == ("EU-NOFR",)


def test_unrestricted_dimension_covers_any_member(snap):
    assert snap.match(lead(geography="JP", customer="C-1-A", product="SW", program="silver")).lowest == (
        "JP",
    )
    assert snap.match(lead(program="gold")).matched == ("WW",)


def test_missing_fact_fails_territories_restricting_that_dimension(snap):
    result = snap.match(lead(product="SRV-1", program="gold"))
    assert result == MatchResult(("WW",), ("WW",), 0)
    assert snap.match(lead(geography="JP")).lowest == ("APAC",)


def test_unknown_member_is_covered_only_by_unrestricted_territories(snap):
    assert snap.match(lead(geography="XX")).matched == ("WW",)
    assert snap.match(lead(geography="FR", product="NEW")).lowest == ("EU-FR",)


def test_a_child_can_match_where_its_parent_does_not():
    model = [
        territory("WW", None),
        territory("EU", "WW", geography=Coverage.of(["EMEA"])),
        territory("JP-UNDER-EU", "EU", geography=Coverage.of(["JP"])),
    ]
    snap = TerritorySnapshot("v1", model, dimensions())
    assert [w.territory for w in snap.warnings] == ["JP-UNDER-EU"]
    assert snap.match(lead(geography="JP")) == MatchResult(("WW", "JP-UNDER-EU"), ("JP-UNDER-EU",), 2)


def test_a_lead_matching_nothing_gets_an_empty_result():
    model = [territory("EU", None, geography=Coverage.of(["EMEA"]))]
    snap = TerritorySnapshot("v1", model, dimensions())
    assert snap.match(lead(geography="JP")) == MatchResult((), (), None)


def test_path_runs_from_root_to_territory(snap):
    assert snap.path("EU-FR-HW") == ("WW", "EU", "EU-FR", "EU-FR-HW")
    assert snap.path("WW") == ("WW",)
    assert snap.depth("EU-FR-HW") == 3
    assert snap.parent("EU") == "WW"
    assert snap.children("EU") == ("EU-FR", "EU-NOFR")


def test_territories_are_listed_depth_first_with_children_sorted_by_key(snap):
    assert snap.keys() == ("WW", "APAC", "JP", "EU", "EU-FR", "EU-FR-GOLD", "EU-FR-HW", "EU-NOFR")


def test_cam_is_taken_from_the_territory_itself(snap):
    assert snap.cam_for("EU") == CamAssignment("cam-eu", "EU", inherited=False)


def test_cam_walks_up_to_the_nearest_territory_having_one(snap):
    assert snap.cam_for("EU-FR") == CamAssignment("cam-eu", "EU", inherited=True)
    assert snap.cam_for("EU-NOFR") == CamAssignment("cam-eu", "EU", inherited=True)


def test_several_cams_on_one_territory_pick_the_smallest_user_key(snap):
    assert snap.cam_for("EU-FR-HW") == CamAssignment("cam-a", "EU-FR-HW", inherited=False)


def test_no_cam_up_to_the_root_gives_none(snap):
    assert snap.cam_for("JP") is None


def test_team_lists_the_territory_own_members(snap):
    assert snap.team("EU-FR-HW") == (cam("cam-z"), cam("cam-a"))
    assert snap.team("EU-FR")[0].role == "channel_sales_manager"


def test_lookups_of_an_unknown_territory_suggest_close_keys(snap):
    with pytest.raises(UnknownTerritory, match="did you mean 'EU-FR'"):
        snap.path("EU-RF")
    with pytest.raises(UnknownTerritory):
        snap.cam_for("nope")


def test_inverted_indexes_list_direct_includers_excluders_and_unrestricted(snap):
    assert snap.includers(Dimension.GEOGRAPHY, "FR") == ("EU-FR", "EU-FR-GOLD", "EU-FR-HW")
    assert snap.excluders(Dimension.PRODUCT, "HW-STO") == ("EU-FR-HW",)
    assert snap.unrestricted(Dimension.GEOGRAPHY) == ("WW",)
    assert snap.includers(Dimension.GEOGRAPHY, "DE") == ()


def test_snapshot_keeps_version_graph_and_root(snap):
    assert snap.model_version == "v1"
    assert snap.root == "WW"
    assert len(snap) == 8 and "JP" in snap
    assert set(snap.graph.successors("EU")) == {"EU-FR", "EU-NOFR"}
    assert snap.territory("JP").coverage[Dimension.CUSTOMER] == Coverage.of(["ENT"])


# --------------------------------------------------------------------------- explain


def test_explain_matched_at_the_lowest_level(snap):
    e = snap.explain(lead(geography="FR", product="SRV-1"), "EU-FR-HW")
    assert (e.reason, e.depth, e.lowest_depth) == (Reason.MATCHED, 3, 3)


def test_explain_matched_but_not_lowest(snap):
    e = snap.explain(lead(geography="FR", product="SRV-1"), "EU")
    assert (e.reason, e.depth, e.lowest_depth) == (Reason.MATCHED_NOT_LOWEST, 1, 3)
    assert "deeper matches exist at depth 3" in e.message


def test_explain_dimension_not_covered(snap):
    e = snap.explain(lead(geography="FR", program="silver"), "EU-FR-GOLD")
    assert e.reason == Reason.DIMENSION_NOT_COVERED
    assert (e.dimension, e.lead_member, e.territory_includes) == (Dimension.PROGRAM, "silver", ("gold",))


def test_explain_excluded_member_itself(snap):
    e = snap.explain(lead(geography="FR", product="HW-STO"), "EU-FR-HW")
    assert (e.reason, e.dimension, e.lead_member, e.excluded_member) == (
        Reason.EXCLUDED,
        Dimension.PRODUCT,
        "HW-STO",
        "HW-STO",
    )


def test_explain_excluded_through_an_ancestor(snap):
    e = snap.explain(lead(geography="FR-PARIS"), "EU-NOFR")
    assert (e.reason, e.lead_member, e.excluded_member) == (Reason.EXCLUDED, "FR-PARIS", "FR")
    assert "via its ancestor 'FR'" in e.message


def test_explain_fact_missing(snap):
    e = snap.explain(lead(geography="FR"), "EU-FR-HW")
    assert (e.reason, e.dimension, e.territory_includes) == (Reason.FACT_MISSING, Dimension.PRODUCT, ("HW",))


def test_explain_unknown_territory(snap):
    assert snap.explain(lead(geography="FR"), "MARS").reason == Reason.UNKNOWN_TERRITORY


def test_explain_all_covers_matches_and_their_children_that_missed(snap):
    explained = snap.explain_all(lead(geography="FR", program="silver", product="HW-STO"))
    assert [(e.territory, e.reason) for e in explained] == [
        ("WW", Reason.MATCHED_NOT_LOWEST),
        ("APAC", Reason.DIMENSION_NOT_COVERED),
        ("EU", Reason.MATCHED_NOT_LOWEST),
        ("EU-FR", Reason.MATCHED),
        ("EU-FR-GOLD", Reason.DIMENSION_NOT_COVERED),
        ("EU-FR-HW", Reason.EXCLUDED),
        ("EU-NOFR", Reason.EXCLUDED),
    ]
