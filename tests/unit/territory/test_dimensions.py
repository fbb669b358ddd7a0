from __future__ import annotations

import pytest

from territory.dimensions import Dimension, MemberHierarchy
from territory.errors import HierarchyInvalid, UnknownMember


def geo() -> MemberHierarchy:
    return MemberHierarchy(
        {"WORLD": None, "EMEA": "WORLD", "FR": "EMEA", "DE": "EMEA", "X": None}, name="geo"
    )


def test_dimension_values_are_what_the_database_stores():
    assert [d.value for d in Dimension] == ["customer", "program", "product", "geography", "partner"]


def test_ancestors_or_self_run_from_member_to_top():
    assert geo().ancestors_or_self("FR") == ("FR", "EMEA", "WORLD")
    assert geo().ancestor_set("FR") == frozenset({"FR", "EMEA", "WORLD"})
    assert geo().depth("FR") == 2


def test_descendants_are_every_member_below():
    h = geo()
    assert h.descendants("WORLD") == {"EMEA", "FR", "DE"}
    assert h.descendants("FR") == frozenset()
    assert h.children("EMEA") == ("DE", "FR")
    assert h.roots == ("WORLD", "X")


def test_unknown_parent_is_reported_with_did_you_mean():
    with pytest.raises(HierarchyInvalid) as err:
        MemberHierarchy({"WORLD": None, "EMEA": "WROLD", "FR": "EMAE"}, name="geography")
    members = [p.member for p in err.value.problems]
    assert members == ["EMEA", "FR"]
    assert "did you mean 'WORLD'" in str(err.value)


def test_cycles_list_every_member_on_them():
    with pytest.raises(HierarchyInvalid) as err:
        MemberHierarchy({"A": "B", "B": "C", "C": "A", "D": "A", "S": "S", "OK": None})
    assert sorted(p.member for p in err.value.problems) == ["A", "B", "C", "S"]
    assert "A -> B -> C -> A" in str(err.value)


def test_unknown_member_lookup_suggests_close_names():
    with pytest.raises(UnknownMember, match="did you mean 'EMEA'"):
        geo().ancestors_or_self("EMAE")
