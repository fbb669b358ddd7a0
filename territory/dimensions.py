"""Coverage dimensions and their member hierarchies (a forest per dimension)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum

from territory.errors import HierarchyInvalid, HierarchyProblem, UnknownMember, did_you_mean, hint


class Dimension(StrEnum):
    """A built-in coverage dimension; the value is what the database stores and the API returns.

    Admins declare further dimensions per territory model (``territory.models.TerritoryDimension``);
    everywhere a dimension is named, it is a plain string, and these five are strings too.
    """

    CUSTOMER = "customer"
    PROGRAM = "program"
    PRODUCT = "product"
    GEOGRAPHY = "geography"
    PARTNER = "partner"


#: The built-in dimensions' names, in the order matching and explanations consider them.
BUILT_IN: tuple[str, ...] = tuple(d.value for d in Dimension)


def ordered(names: Iterable[str]) -> tuple[str, ...]:
    """Dimension names in their canonical order: the built-in ones first, then declared ones by name.

    >>> ordered(["industry", "geography", "customer"])
    ('customer', 'geography', 'industry')
    """
    return _ordered(frozenset(map(str, names)))


_BUILT_IN_SET = frozenset(BUILT_IN)


@functools.lru_cache(maxsize=4096)
def _ordered(given: frozenset[str]) -> tuple[str, ...]:
    return tuple(n for n in BUILT_IN if n in given) + tuple(sorted(given - _BUILT_IN_SET))


class MemberHierarchy:
    """An immutable forest of dimension members (member -> parent), validated on construction.

    Every member's ancestors are computed once, so lookups cost a dict access.

    Parameters
    ----------
    parents : Mapping[str, str | None]
        Each member and its parent (``None`` for a top-level member). Parents must be members too.
    name : str
        Used in error messages (normally the dimension's value).

    Raises
    ------
    HierarchyInvalid
        Listing every member whose parent is unknown and every member on a cycle.

    Examples
    --------
    >>> geo = MemberHierarchy({"world": None, "EMEA": "world", "FR": "EMEA"}, name="geography")
    >>> geo.ancestors_or_self("FR")
    ('FR', 'EMEA', 'world')
    >>> sorted(geo.descendants("world"))
    ['EMEA', 'FR']
    """

    __slots__ = ("_ancestors", "_children", "_descendants", "_labels", "_name", "_parents", "_sets")

    def __init__(
        self,
        parents: Mapping[str, str | None],
        name: str = "dimension",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._name = name
        self._labels: Mapping[str, str] = labels if labels is not None else {}
        self._parents: dict[str, str | None] = dict(parents)
        problems = self._problems()
        if problems:
            raise HierarchyInvalid(name, problems)
        self._ancestors: dict[str, tuple[str, ...]] = {}
        for member in self._parents:
            self._path_of(member)
        self._sets: dict[str, frozenset[str]] = {m: frozenset(a) for m, a in self._ancestors.items()}
        children: dict[str, list[str]] = {m: [] for m in self._parents}
        for member, parent in self._parents.items():
            if parent is not None:
                children[parent].append(member)
        self._children = {m: tuple(sorted(c)) for m, c in children.items()}
        self._descendants: dict[str, frozenset[str]] = {}

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str | None]], name: str = "dimension") -> MemberHierarchy:
        """Build from ``(member, parent)`` pairs."""
        return cls(dict(pairs), name=name)

    def _problems(self) -> list[HierarchyProblem]:
        problems: list[HierarchyProblem] = []
        for member, parent in self._parents.items():
            if parent is not None and parent not in self._parents:
                suggestions = did_you_mean(parent, self._parents.keys())
                problems.append(HierarchyProblem(member, f"unknown parent {parent!r}{hint(suggestions)}"))
        # Follow parent links; a walk that comes back to a member of its own chain found a cycle.
        done: set[str] = set()
        for start in self._parents:
            chain: dict[str, None] = {}
            cur: str | None = start
            while cur is not None and cur in self._parents and cur not in done and cur not in chain:
                chain[cur] = None
                cur = self._parents[cur]
            if cur is not None and cur in chain:
                members = list(chain)
                cycle = [*members[members.index(cur) :], cur]
                problems.extend(
                    HierarchyProblem(m, f"is on a cycle: {' -> '.join(cycle)}") for m in cycle[:-1]
                )
            done.update(chain)
        return problems

    def _path_of(self, member: str) -> tuple[str, ...]:
        chain: list[str] = []
        cur: str | None = member
        while cur is not None and cur not in self._ancestors:
            chain.append(cur)
            cur = self._parents[cur]
        tail = self._ancestors[cur] if cur is not None else ()
        for m in reversed(chain):
            tail = (m, *tail)
            self._ancestors[m] = tail
        return self._ancestors[member]

    @property
    def name(self) -> str:
        """The name used in messages (normally the dimension)."""
        return self._name

    def label(self, member: str) -> str | None:
        """The member's display name, when one was given."""
        return self._labels.get(member)

    def parents(self) -> Mapping[str, str | None]:
        """Every member and its parent (read-only view)."""
        return self._parents

    def __contains__(self, member: object) -> bool:
        return member in self._parents

    def __iter__(self) -> Iterator[str]:
        return iter(self._parents)

    def __len__(self) -> int:
        return len(self._parents)

    def __repr__(self) -> str:
        return f"MemberHierarchy(name={self._name!r}, members={len(self._parents)})"

    def _unknown(self, member: str) -> UnknownMember:
        return UnknownMember(self._name, member, did_you_mean(member, self._parents.keys()))

    def parent(self, member: str) -> str | None:
        """Return the member's parent (``None`` for a top-level member)."""
        try:
            return self._parents[member]
        except KeyError:
            raise self._unknown(member) from None

    def children(self, member: str) -> tuple[str, ...]:
        """Return the member's direct children, sorted."""
        try:
            return self._children[member]
        except KeyError:
            raise self._unknown(member) from None

    @property
    def roots(self) -> tuple[str, ...]:
        """Top-level members, sorted."""
        return tuple(sorted(m for m, p in self._parents.items() if p is None))

    def ancestors_or_self(self, member: str) -> tuple[str, ...]:
        """Return ``(member, parent, grandparent, ..., top)``; precomputed."""
        try:
            return self._ancestors[member]
        except KeyError:
            raise self._unknown(member) from None

    def ancestor_set(self, member: str) -> frozenset[str]:
        """Return the ancestors-or-self of ``member`` as a frozenset; precomputed."""
        try:
            return self._sets[member]
        except KeyError:
            raise self._unknown(member) from None

    def ancestor_sets(self) -> Mapping[str, frozenset[str]]:
        """Every member's ancestors-or-self set (read-only view, for fast matching)."""
        return self._sets

    def depth(self, member: str) -> int:
        """Return 0 for a top-level member, 1 for its children, and so on."""
        return len(self.ancestors_or_self(member)) - 1

    def descendants(self, member: str) -> frozenset[str]:
        """Return every strict descendant of ``member`` (cached after the first call)."""
        cached = self._descendants.get(member)
        if cached is not None:
            return cached
        found: list[str] = []
        stack = list(self.children(member))
        while stack:
            m = stack.pop()
            found.append(m)
            stack.extend(self._children[m])
        result = frozenset(found)
        self._descendants[member] = result
        return result

    def is_ancestor_or_self(self, ancestor: str, member: str) -> bool:
        """Return whether ``ancestor`` is ``member`` or one of its ancestors."""
        return ancestor in self.ancestor_set(member)

    def suggest(self, member: str) -> tuple[str, ...]:
        """Return close spellings of an unknown member (for "did you mean")."""
        return did_you_mean(member, self._parents.keys())
