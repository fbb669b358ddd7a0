from __future__ import annotations

import pytest

from territory.dimensions import Dimension
from territory.errors import TreeInvalid
from territory.tree import ANY_MEMBER, Coverage, coverage_gap, validate_tree

from .model import defs, dimensions, territory


def problems_of(model) -> list[tuple[str, str | None]]:
    with pytest.raises(TreeInvalid) as err:
        validate_tree(model, dimensions())
    return [(p.code, p.territory) for p in err.value.problems]


def test_valid_model_has_no_warnings():
    assert validate_tree(defs(), dimensions()) == []


def test_duplicate_key_is_a_problem():
    assert problems_of([*defs(), territory("EU", "WW")]) == [("duplicate_key", "EU")]


def test_unknown_parent_suggests_a_close_key():
    with pytest.raises(TreeInvalid, match="unknown parent 'EU-RF'; did you mean 'EU-FR'"):
        validate_tree([*defs(), territory("LYON", "EU-RF")], dimensions())


def test_several_roots_are_a_problem():
    assert problems_of([*defs(), territory("OTHER", None)]) == [("multiple_roots", None)]


def test_no_root_is_a_problem():
    assert ("no_root", None) in problems_of([territory("A", "B"), territory("B", "A")])
    assert problems_of([]) == [("no_root", None)]


def test_a_cycle_is_reported_in_order():
    model = [*defs(), territory("A", "C"), territory("B", "A"), territory("C", "B"), territory("D", "A")]
    with pytest.raises(TreeInvalid, match="cycle: A -> B -> C -> A") as err:
        validate_tree(model, dimensions())
    assert [p.code for p in err.value.problems] == ["cycle"]


def test_unknown_coverage_member_suggests_a_close_member():
    model = [
        *defs(),
        territory("X", "WW", geography=Coverage.of(["FRR"]), product=Coverage.of(exclude=["SW2"])),
    ]
    with pytest.raises(TreeInvalid) as err:
        validate_tree(model, dimensions())
    assert [p.message for p in err.value.problems] == [
        "territory 'X' includes unknown geography member 'FRR'; did you mean 'FR'?",
        "territory 'X' excludes unknown product member 'SW2'; did you mean 'SW'?",
    ]


def test_coverage_on_a_dimension_without_hierarchy_is_a_problem():
    assert problems_of([*defs(), territory("X", "WW", partner=Coverage.of(["P-1"]))]) == [
        ("unknown_dimension", "X")
    ]


def test_every_problem_is_reported_at_once():
    model = [
        *defs(),
        territory("EU", "WW"),
        territory("ORPHAN", "NOPE"),
        territory("ROOT2", None),
        territory("BAD", "WW", geography=Coverage.of(["MARS"])),
    ]
    codes = sorted(code for code, _ in problems_of(model))
    assert codes == ["duplicate_key", "multiple_roots", "unknown_member", "unknown_parent"]


def test_child_covering_a_member_its_parent_does_not_is_a_warning():
    model = [*defs(), territory("EU-JP", "EU", geography=Coverage.of(["JP"]))]
    [warning] = validate_tree(model, dimensions())
    assert (warning.territory, warning.parent, warning.dimension, warning.member) == (
        "EU-JP",
        "EU",
        Dimension.GEOGRAPHY,
        "JP",
    )
    assert warning.message == "child 'EU-JP' covers geography 'JP' that its parent 'EU' does not cover"


def test_child_unrestricted_under_a_restricted_parent_is_a_warning():
    [warning] = validate_tree([*defs(), territory("ANY", "EU")], dimensions())
    assert warning.member == ANY_MEMBER
    assert "covers any geography" in warning.message


def test_child_including_what_its_parent_excludes_is_a_warning():
    model = [*defs(), territory("NOFR-FR", "EU-NOFR", geography=Coverage.of(["FR-PARIS"]))]
    assert [w.member for w in validate_tree(model, dimensions())] == ["FR-PARIS"]


def test_coverage_gap_is_none_when_the_child_nests_inside_the_parent():
    geo = dimensions()[Dimension.GEOGRAPHY]
    assert coverage_gap(Coverage.of(["FR"]), Coverage.of(["EMEA"]), geo) is None
    assert coverage_gap(Coverage.of(["EMEA"], ["FR"]), Coverage.of(["EMEA"], ["FR-PARIS"]), geo) is None
    assert coverage_gap(Coverage.of(exclude=["EMEA"]), Coverage.of(exclude=["FR"]), geo) is None
    assert coverage_gap(Coverage.of(exclude=["FR"]), Coverage.of(exclude=["EMEA"]), geo) == "EMEA"
    assert coverage_gap(Coverage.of(["EMEA"], ["FR"]), Coverage.of(["EMEA"], ["EMEA"]), geo) == "EMEA"
