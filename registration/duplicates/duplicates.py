"""The duplicate check (pure): which open registrations and opportunities look like the same deal as a
registration, how strongly (a score from 0 to 100) and why (the evidence, in words a reviewer reads).

Two records are compared on four things: the sales account (the same customer, or customers in the same
account hierarchy), the primary product (the same product, or products of the same subgroup or group),
the primary contact (e-mail, name) and the partner. The default rule of a registration's duplicate check
(DESIGN.md 1.1 "duplicates") is *same sales account, including its account hierarchy, and same primary
product or product group*; a search instead asks for every criterion it was given.

Customers and products arrive with their lineage (keys from the top of their hierarchy down to
themselves), so the hierarchy questions need no database here.

>>> acme = Account(1, ("C-0001",))
>>> acme_de = Account(2, ("C-0001", "C-0001-2"))
>>> fw1 = Item(10, ("security", "firewalls", "fw-1"))
>>> fw5 = Item(11, ("security", "firewalls", "fw-5"))
>>> mine = Deal(customer=acme, products=(fw1,))
>>> theirs = Candidate("registration", 7, "REG-000007", "approved", 3, Deal(customer=acme_de, products=(fw5,)))
>>> [(m.candidate.id, m.score, m.evidence) for m in find_duplicates(mine, [theirs])]
[(7, 60, ('customer C-0001-2 is in the same account hierarchy (child of C-0001)', 'same product subgroup firewalls'))]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

# Points per kind of evidence. The strongest account (45) plus the strongest product (35) plus both
# contact points (10 + 5) plus the partner (5) make 100.
SAME_CUSTOMER, RELATED_CUSTOMER, SAME_HIERARCHY = 45, 35, 25
SAME_PRIMARY_PRODUCT, SAME_PRODUCT, SAME_SUBGROUP, SAME_GROUP = 35, 30, 25, 15
SAME_EMAIL, SAME_CONTACT_NAME, SAME_PARTNER = 10, 5, 5
#: A searched contact found exactly (e-mail, or the whole name) or only as part of the name.
CONTACT_FOUND, CONTACT_PART = 10, 5
MAX_SCORE = 100


@dataclass(frozen=True)
class Account:
    """A customer (sales account) and its lineage: keys from the top of its hierarchy down to itself."""

    id: int
    lineage: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.lineage[-1]


@dataclass(frozen=True)
class Item:
    """A product and its lineage in the catalog: group, subgroup, item (as deep as the product sits)."""

    id: int
    lineage: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.lineage[-1]


@dataclass(frozen=True)
class Deal:
    """What a registration or opportunity says about the deal; ``products`` lists the primary first."""

    customer: Account | None = None
    products: tuple[Item, ...] = ()
    contact_name: str | None = None
    contact_email: str | None = None
    partner_id: int | None = None

    @property
    def primary_product(self) -> Item | None:
        return self.products[0] if self.products else None


@dataclass(frozen=True)
class Candidate:
    """A stored record that may be a duplicate: an open registration or an opportunity."""

    kind: str  # "registration" or "opportunity"
    id: int
    number: str | None  # registration number, opportunity number
    status: str
    organization_id: int | None  # the partner organization the record belongs to (None: internal)
    deal: Deal
    name: str = ""


@dataclass(frozen=True)
class Match:
    candidate: Candidate
    score: int
    evidence: tuple[str, ...]


class Strength(IntEnum):
    """How closely one aspect matches (NONE: not at all)."""

    NONE = 0
    WEAK = 1
    STRONG = 2
    SAME = 3


@dataclass(frozen=True)
class Aspect:
    strength: Strength
    points: int = 0
    evidence: str | None = None


NO_MATCH = Aspect(Strength.NONE)


# --- one aspect at a time -----------------------------------------------------------------------------


def compare_accounts(mine: Account | None, theirs: Account | None) -> Aspect:
    """Same customer, parent or child (any depth), or elsewhere in the same account hierarchy.

    >>> compare_accounts(Account(1, ("C-1",)), Account(2, ("C-1", "C-1-3"))).evidence
    'customer C-1-3 is in the same account hierarchy (child of C-1)'
    """
    if mine is None or theirs is None or not mine.lineage or not theirs.lineage:
        return NO_MATCH
    if mine.id == theirs.id:
        return Aspect(Strength.SAME, SAME_CUSTOMER, f"same customer {theirs.key}")
    if mine.lineage[0] != theirs.lineage[0]:
        return NO_MATCH
    if theirs.lineage[: len(mine.lineage)] == mine.lineage:
        what = f"child of {mine.key}"
    elif mine.lineage[: len(theirs.lineage)] == theirs.lineage:
        what = f"parent of {mine.key}"
    else:
        common = _common_prefix(mine.lineage, theirs.lineage)
        return Aspect(
            Strength.WEAK,
            SAME_HIERARCHY,
            f"customer {theirs.key} is in the same account hierarchy (under {common[-1]})",
        )
    return Aspect(
        Strength.STRONG,
        RELATED_CUSTOMER,
        f"customer {theirs.key} is in the same account hierarchy ({what})",
    )


def compare_products(mine: Item | None, theirs: Sequence[Item]) -> Aspect:
    """The registration's primary product against the other record's products (its primary first).

    >>> fw1, id1 = Item(1, ("security", "firewalls", "fw-1")), Item(2, ("security", "identity", "id-1"))
    >>> compare_products(fw1, [id1]).evidence
    'same product group security'
    """
    if mine is None or not theirs:
        return NO_MATCH
    best = NO_MATCH
    for position, other in enumerate(theirs):
        if other.id == mine.id:
            if position == 0:
                return Aspect(Strength.SAME, SAME_PRIMARY_PRODUCT, f"same primary product {mine.key}")
            aspect = Aspect(Strength.SAME, SAME_PRODUCT, f"product {mine.key} is also on it")
        else:
            common = _common_prefix(mine.lineage, other.lineage)
            if not common:
                continue
            if len(common) >= 2:
                aspect = Aspect(Strength.STRONG, SAME_SUBGROUP, f"same product subgroup {common[-1]}")
            else:
                aspect = Aspect(Strength.WEAK, SAME_GROUP, f"same product group {common[0]}")
        if aspect.points > best.points:
            best = aspect
    return best


def _norm(text: str | None) -> str:
    return " ".join((text or "").split()).casefold()


def compare_contacts(mine: Deal, theirs: Deal) -> list[Aspect]:
    """Same contact e-mail and/or the same contact name (case and spacing ignored)."""
    found = []
    if _norm(mine.contact_email) and _norm(mine.contact_email) == _norm(theirs.contact_email):
        found.append(Aspect(Strength.SAME, SAME_EMAIL, "same contact e-mail"))
    if _norm(mine.contact_name) and _norm(mine.contact_name) == _norm(theirs.contact_name):
        found.append(Aspect(Strength.SAME, SAME_CONTACT_NAME, f"same primary contact {theirs.contact_name}"))
    return found


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> tuple[str, ...]:
    common: list[str] = []
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common.append(x)
    return tuple(common)


# --- the whole comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    account: Aspect
    product: Aspect
    contacts: tuple[Aspect, ...]
    partner: Aspect

    @property
    def score(self) -> int:
        aspects = (self.account, self.product, *self.contacts, self.partner)
        return min(MAX_SCORE, sum(a.points for a in aspects))

    @property
    def evidence(self) -> tuple[str, ...]:
        aspects = (self.account, self.product, *self.contacts, self.partner)
        return tuple(a.evidence for a in aspects if a.evidence)


def compare(mine: Deal, theirs: Deal) -> Comparison:
    """Every aspect of two deals, with its points and evidence."""
    partner = (
        Aspect(Strength.SAME, SAME_PARTNER, "same partner")
        if mine.partner_id is not None and mine.partner_id == theirs.partner_id
        else NO_MATCH
    )
    return Comparison(
        compare_accounts(mine.customer, theirs.customer),
        compare_products(mine.primary_product, theirs.products),
        tuple(compare_contacts(mine, theirs)),
        partner,
    )


def ranked(matches: Iterable[Match]) -> list[Match]:
    """Strongest first; ties by kind (opportunities first), then oldest record first."""
    return sorted(matches, key=lambda m: (-m.score, m.candidate.kind != "opportunity", m.candidate.id))


def find_duplicates(mine: Deal, candidates: Iterable[Candidate]) -> list[Match]:
    """The default duplicate rule: same sales account (account hierarchy included) AND the same primary
    product or product group. Strongest first."""
    found = []
    for candidate in candidates:
        c = compare(mine, candidate.deal)
        if c.account.strength and c.product.strength:
            found.append(Match(candidate, c.score, c.evidence))
    return ranked(found)


@dataclass(frozen=True)
class Search:
    """What a reviewer searches by; every criterion given must match."""

    customer: Account | None = None
    contact: str | None = None  # a name or an e-mail address
    product: Item | None = None


def _contact_matches(contact: str, deal: Deal) -> Aspect:
    wanted = _norm(contact)
    if "@" in wanted:
        if wanted == _norm(deal.contact_email):
            return Aspect(Strength.SAME, CONTACT_FOUND, "same contact e-mail")
        return NO_MATCH
    name = _norm(deal.contact_name)
    if name and wanted == name:
        return Aspect(Strength.SAME, CONTACT_FOUND, f"same primary contact {deal.contact_name}")
    if name and wanted in name:
        return Aspect(Strength.WEAK, CONTACT_PART, f"primary contact {deal.contact_name} matches")
    return NO_MATCH


def search_duplicates(search: Search, candidates: Iterable[Candidate]) -> list[Match]:
    """Records matching every given criterion of a search (an empty search matches nothing).

    The score weighs what was asked for: the account and product points as in the duplicate check,
    the contact's as an e-mail match or a name match, scaled so that a record matching every given
    criterion as closely as possible scores 100.
    """
    asked = [search.customer is not None, search.product is not None, bool(search.contact)]
    if not any(asked):
        return []
    possible = (
        (SAME_CUSTOMER if search.customer else 0)
        + (SAME_PRIMARY_PRODUCT if search.product else 0)
        + (CONTACT_FOUND if search.contact else 0)
    )
    found = []
    for candidate in candidates:
        aspects: list[Aspect] = []
        if search.customer is not None:
            aspects.append(compare_accounts(search.customer, candidate.deal.customer))
        if search.product is not None:
            aspects.append(compare_products(search.product, candidate.deal.products))
        if search.contact:
            aspects.append(_contact_matches(search.contact, candidate.deal))
        if all(a.strength for a in aspects):
            score = round(MAX_SCORE * sum(a.points for a in aspects) / possible)
            evidence = tuple(a.evidence for a in aspects if a.evidence)
            found.append(Match(candidate, min(MAX_SCORE, score), evidence))
    return ranked(found)
