"""The duplicate scorer (pure): account hierarchy, product group, contacts, evidence text, ordering,
and what does not match."""

from __future__ import annotations

import doctest

from registration.duplicates import duplicates
from registration.duplicates.duplicates import (
    Account,
    Candidate,
    Deal,
    Item,
    Search,
    find_duplicates,
    search_duplicates,
)

GLOBAL = Account(1, ("C-0001",))
GLOBAL_US = Account(2, ("C-0001", "C-0001-1"))
GLOBAL_DE = Account(3, ("C-0001", "C-0001-2"))
OTHER = Account(9, ("C-0009",))

FW1 = Item(10, ("security", "firewalls", "fw-1"))
FW5 = Item(11, ("security", "firewalls", "fw-5"))
ID_CLOUD = Item(12, ("security", "identity", "id-cloud"))
SW100 = Item(20, ("networking", "switches", "sw-100"))


def candidate(id_: int, deal: Deal, kind: str = "registration", org: int | None = 7) -> Candidate:
    return Candidate(kind, id_, f"REG-{id_:06d}", "pending_approval", org, deal, name=f"deal {id_}")


def test_the_module_examples_hold():
    assert doctest.testmod(duplicates).failed == 0


def test_same_customer_and_same_primary_product_is_a_strong_duplicate():
    mine = Deal(GLOBAL_US, (FW1,))
    [match] = find_duplicates(mine, [candidate(1, Deal(GLOBAL_US, (FW1, SW100)))])
    assert match.score == 80
    assert match.evidence == ("same customer C-0001-1", "same primary product fw-1")


def test_a_parent_account_and_a_sibling_account_count_as_the_same_sales_account():
    mine = Deal(GLOBAL_US, (FW1,))
    parent, sibling = candidate(1, Deal(GLOBAL, (FW1,))), candidate(2, Deal(GLOBAL_DE, (FW1,)))
    matches = {m.candidate.id: m for m in find_duplicates(mine, [parent, sibling])}
    assert matches[1].evidence[0] == "customer C-0001 is in the same account hierarchy (parent of C-0001-1)"
    assert matches[2].evidence[0] == "customer C-0001-2 is in the same account hierarchy (under C-0001)"
    assert matches[1].score > matches[2].score  # a direct line is closer than a cousin


def test_a_child_account_names_its_parent():
    [match] = find_duplicates(Deal(GLOBAL, (FW1,)), [candidate(1, Deal(GLOBAL_DE, (FW1,)))])
    assert match.evidence[0] == "customer C-0001-2 is in the same account hierarchy (child of C-0001)"


def test_products_of_the_same_group_match_and_say_how_close():
    mine = Deal(GLOBAL, (FW1,))
    subgroup = candidate(1, Deal(GLOBAL, (FW5,)))
    group = candidate(2, Deal(GLOBAL, (ID_CLOUD,)))
    also = candidate(3, Deal(GLOBAL, (SW100, FW1)))
    matches = {m.candidate.id: m.evidence[1] for m in find_duplicates(mine, [subgroup, group, also])}
    assert matches == {
        1: "same product subgroup firewalls",
        2: "same product group security",
        3: "product fw-1 is also on it",
    }


def test_contacts_and_partner_add_evidence_and_points_up_to_100():
    mine = Deal(GLOBAL, (FW1,), contact_name="Aiko  Tanaka", contact_email="Aiko@Example.jp", partner_id=5)
    theirs = Deal(GLOBAL, (FW1,), contact_name="aiko tanaka", contact_email="aiko@example.jp", partner_id=5)
    [match] = find_duplicates(mine, [candidate(1, theirs)])
    assert match.score == 100
    assert match.evidence == (
        "same customer C-0001",
        "same primary product fw-1",
        "same contact e-mail",
        "same primary contact aiko tanaka",
        "same partner",
    )


def test_the_default_rule_needs_both_account_and_product():
    mine = Deal(GLOBAL, (FW1,), contact_email="a@example.jp")
    other_account = candidate(1, Deal(OTHER, (FW1,), contact_email="a@example.jp"))
    other_group = candidate(2, Deal(GLOBAL, (SW100,), contact_email="a@example.jp"))
    no_product = candidate(3, Deal(GLOBAL, ()))
    no_customer = candidate(4, Deal(None, (FW1,)))
    assert find_duplicates(mine, [other_account, other_group, no_product, no_customer]) == []
    assert find_duplicates(Deal(None, (FW1,)), [candidate(5, Deal(GLOBAL, (FW1,)))]) == []
    assert find_duplicates(Deal(GLOBAL, ()), [candidate(6, Deal(GLOBAL, (FW1,)))]) == []


def test_matches_are_ordered_by_score_then_opportunities_first_then_oldest():
    mine = Deal(GLOBAL, (FW1,))
    weak = candidate(1, Deal(GLOBAL_DE, (ID_CLOUD,)))
    strong = candidate(2, Deal(GLOBAL, (FW1,)))
    tie_registration = candidate(3, Deal(GLOBAL, (FW5,)))
    tie_opportunity = candidate(4, Deal(GLOBAL, (FW5,)), kind="opportunity")
    tie_older = candidate(0, Deal(GLOBAL, (FW5,)))
    order = [
        m.candidate.id
        for m in find_duplicates(mine, [weak, tie_registration, strong, tie_opportunity, tie_older])
    ]
    assert order == [2, 4, 0, 3, 1]
    scores = [m.score for m in find_duplicates(mine, [weak, strong])]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 100 for s in scores)


def test_a_search_matches_every_given_criterion():
    records = [
        candidate(1, Deal(GLOBAL_DE, (FW5,), contact_name="Aiko Tanaka", contact_email="aiko@example.jp")),
        candidate(2, Deal(GLOBAL, (SW100,), contact_name="Ken Sato", contact_email="ken@example.jp")),
        candidate(3, Deal(OTHER, (FW1,), contact_name="Aiko Tanaka", contact_email="aiko@example.jp")),
    ]
    by_customer = search_duplicates(Search(customer=GLOBAL), records)
    assert [m.candidate.id for m in by_customer] == [2, 1]  # the same customer before its child
    both = search_duplicates(Search(customer=GLOBAL, product=FW1), records)
    assert [(m.candidate.id, m.evidence) for m in both] == [
        (
            1,
            (
                "customer C-0001-2 is in the same account hierarchy (child of C-0001)",
                "same product subgroup firewalls",
            ),
        )
    ]
    by_email = search_duplicates(Search(contact="AIKO@example.jp"), records)
    assert [(m.candidate.id, m.score, m.evidence) for m in by_email] == [
        (1, 100, ("same contact e-mail",)),
        (3, 100, ("same contact e-mail",)),
    ]
    by_part_of_name = search_duplicates(Search(contact="tanaka"), records)
    assert [(m.candidate.id, m.score) for m in by_part_of_name] == [(1, 50), (3, 50)]
    assert by_part_of_name[0].evidence == ("primary contact Aiko Tanaka matches",)
    exact = search_duplicates(Search(contact="ken sato", product=SW100), records)
    assert [(m.candidate.id, m.score) for m in exact] == [(2, 100)]


def test_an_empty_search_or_one_nothing_matches_finds_nothing():
    records = [candidate(1, Deal(GLOBAL, (FW1,), contact_name="Aiko Tanaka"))]
    assert search_duplicates(Search(), records) == []
    assert search_duplicates(Search(customer=OTHER), records) == []
    assert search_duplicates(Search(contact="nobody@example.jp"), records) == []
    assert search_duplicates(Search(customer=GLOBAL, product=SW100), records) == []
