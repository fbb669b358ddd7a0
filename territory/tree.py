"""Territory definitions and the checks that turn a list of them into one valid tree."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from territory.dimensions import BUILT_IN, MemberHierarchy, ordered
from territory.errors import TreeInvalid, TreeProblem, did_you_mean, hint

#: Role that owns partner leads on a territory (see ``TerritorySnapshot.cam_for``).
CHANNEL_ACCOUNT_MANAGER = "channel_account_manager"

#: Returned by ``coverage_gap`` when the child is unrestricted where its parent is restricted.
ANY_MEMBER = "*"


@dataclass(frozen=True)
class TeamMember:
    """A user holding a role on a territory (``channel_account_manager``, ``channel_sales_manager``...)."""

    user: str
    role: str


@dataclass(frozen=True)
class Coverage:
    """What a territory covers on one dimension.

    Including a member includes its descendants; excluding a member excludes it and its descendants;
    exclusions win. No included member means unrestricted ("any"), minus the exclusions.

    Examples
    --------
    >>> Coverage.of(include=["EMEA"], exclude=["FR"]).restricted
    True
    >>> Coverage().restricted
    False
    """

    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()

    @classmethod
    def of(cls, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> Coverage:
        """Build from any iterables of member keys."""
        return cls(frozenset(include), frozenset(exclude))

    @property
    def restricted(self) -> bool:
        """Whether the territory names members on this dimension (a lead without the fact fails it)."""
        return bool(self.include)

    def covers(self, ancestors_or_self: frozenset[str] | None) -> bool:
        """Decide for a lead member given its ancestors-or-self (``None`` when the lead lacks the fact)."""
        if ancestors_or_self is None:
            return not self.include
        if self.include and self.include.isdisjoint(ancestors_or_self):
            return False
        return self.exclude.isdisjoint(ancestors_or_self)


UNRESTRICTED = Coverage()


@dataclass(frozen=True)
class TerritoryDef:
    """One territory as an admin defines it; ``coverage`` omits unrestricted dimensions."""

    key: str
    parent_key: str | None
    name: str
    type: str
    team: tuple[TeamMember, ...] = ()
    partner: str | None = None
    coverage: Mapping[str, Coverage] = field(default_factory=dict)

    def coverage_on(self, dimension: str) -> Coverage:
        """Return the coverage on ``dimension`` (unrestricted when not given)."""
        return self.coverage.get(dimension, UNRESTRICTED)


@dataclass(frozen=True)
class TreeWarning:
    """Something legal but probably unintended, e.g. a child covering more than its parent.

    ``member`` is a witness: a member the child covers and the parent does not (``"*"`` when the child is
    unrestricted on a dimension the parent restricts).
    """

    code: str
    territory: str
    parent: str
    dimension: str
    member: str
    message: str


def coverage_gap(child: Coverage, parent: Coverage, hierarchy: MemberHierarchy) -> str | None:
    """Return a member ``child`` covers that ``parent`` does not, or ``None`` when parent covers all of it.

    Exact, not a heuristic: ``None`` means every lead passing ``child`` on this dimension passes ``parent``
    too, which lets the matcher skip a child whose parent failed. ``"*"`` (``ANY_MEMBER``) means the child
    is unrestricted where the parent is restricted. Members must belong to ``hierarchy``.

    Examples
    --------
    >>> geo = MemberHierarchy({"world": None, "EMEA": "world", "FR": "EMEA", "DE": "EMEA"})
    >>> coverage_gap(Coverage.of(["FR"]), Coverage.of(["EMEA"]), geo) is None
    True
    >>> coverage_gap(Coverage.of(["EMEA"]), Coverage.of(["EMEA"], exclude=["DE"]), geo)
    'DE'
    """
    anc = hierarchy.ancestor_set
    if not child.include:
        if parent.include:
            return ANY_MEMBER
        for x in sorted(parent.exclude):
            if child.exclude.isdisjoint(anc(x)):
                return x
        return None
    for i in sorted(child.include):
        ai = anc(i)
        if not child.exclude.isdisjoint(ai):
            continue  # the child excludes this whole subtree itself
        if (parent.include and parent.include.isdisjoint(ai)) or not parent.exclude.isdisjoint(ai):
            return i
        for x in sorted(parent.exclude):
            ax = anc(x)
            if i in ax and child.exclude.isdisjoint(ax):
                return x
    return None


@dataclass(frozen=True)
class CheckedTree:
    """Result of ``check_tree``: the parent -> child graph, the root and the warnings."""

    graph: Any  # networkx.DiGraph (untyped library)
    root: str
    warnings: tuple[TreeWarning, ...]


def validate_tree(
    defs: Sequence[TerritoryDef], dimensions: Mapping[str, MemberHierarchy]
) -> list[TreeWarning]:
    """Check that ``defs`` form one tree whose coverage uses known members; return the warnings.

    Raises
    ------
    TreeInvalid
        Carrying every problem found: duplicate keys, unknown parents, no root or several roots, cycles,
        coverage on a dimension without a hierarchy, coverage members unknown to their dimension. Unknown
        names come with "did you mean".

    Examples
    --------
    >>> from territory.dimensions import Dimension
    >>> geo = MemberHierarchy({"world": None, "EMEA": "world"}, name="geography")
    >>> defs = [
    ...     TerritoryDef("WW", None, "Worldwide", "channel"),
    ...     TerritoryDef("EU", "WW", "Europe", "channel", coverage={Dimension.GEOGRAPHY: Coverage.of(["EMEA"])}),
    ... ]
    >>> validate_tree(defs, {Dimension.GEOGRAPHY: geo})
    []
    """
    return list(check_tree(defs, dimensions).warnings)


def check_tree(defs: Sequence[TerritoryDef], dimensions: Mapping[str, MemberHierarchy]) -> CheckedTree:
    """Like ``validate_tree`` but also return the ``networkx.DiGraph`` (parent -> child) and the root."""
    problems: list[TreeProblem] = []
    by_key: dict[str, TerritoryDef] = {}
    for d in defs:
        if d.key in by_key:
            problems.append(TreeProblem("duplicate_key", d.key, f"duplicate territory key {d.key!r}"))
        else:
            by_key[d.key] = d
    problems.extend(_coverage_problems(by_key.values(), dimensions))

    graph = nx.DiGraph()
    graph.add_nodes_from(by_key)
    roots: list[str] = []
    edges: list[tuple[str, str]] = []
    for d in by_key.values():
        if d.parent_key is None:
            roots.append(d.key)
        elif d.parent_key in by_key:
            edges.append((d.parent_key, d.key))
        else:
            suggestions = did_you_mean(d.parent_key, by_key.keys())
            problems.append(
                TreeProblem(
                    "unknown_parent",
                    d.key,
                    f"territory {d.key!r} has unknown parent {d.parent_key!r}{hint(suggestions)}",
                )
            )
    graph.add_edges_from(edges)
    if not roots and by_key:
        problems.append(TreeProblem("no_root", None, "no root territory (one must have no parent)"))
    elif not by_key:
        problems.append(TreeProblem("no_root", None, "no territories"))
    elif len(roots) > 1:
        problems.append(
            TreeProblem("multiple_roots", None, f"more than one root territory: {', '.join(sorted(roots))}")
        )
    problems.extend(_cycle_problems(graph, roots))
    if problems:
        raise TreeInvalid(problems)
    return CheckedTree(graph, roots[0], tuple(_parent_coverage_warnings(by_key, dimensions)))


def _coverage_problems(
    defs: Iterable[TerritoryDef], dimensions: Mapping[str, MemberHierarchy]
) -> list[TreeProblem]:
    problems: list[TreeProblem] = []
    known_good: set[tuple[str, int]] = set()  # (dimension, id of a coverage) found to name known members
    for d in defs:
        for dim, cov in d.coverage.items():
            if (dim, id(cov)) in known_good:  # a coverage many territories share (a product group...)
                continue
            hierarchy = dimensions.get(dim)
            if hierarchy is None:
                if cov.include or cov.exclude:
                    known = ", ".join(sorted(str(k) for k in dimensions)) or "none"
                    problems.append(
                        TreeProblem(
                            "unknown_dimension",
                            d.key,
                            f"territory {d.key!r} covers dimension {str(dim)!r} "
                            f"which has no member hierarchy (known: {known})",
                        )
                    )
                continue
            known_members = hierarchy.ancestor_sets()
            unknown_any = False
            for verb, members in (("includes", cov.include), ("excludes", cov.exclude)):
                unknown = [m for m in members if m not in known_members]
                unknown_any = unknown_any or bool(unknown)
                for m in sorted(unknown) if unknown else ():
                    problems.append(
                        TreeProblem(
                            "unknown_member",
                            d.key,
                            f"territory {d.key!r} {verb} unknown {dim} member {m!r}"
                            f"{hint(hierarchy.suggest(m))}",
                        )
                    )
            if not unknown_any:
                known_good.add((dim, id(cov)))
    return problems


def _cycle_problems(graph: Any, roots: Sequence[str]) -> list[TreeProblem]:
    reachable: set[str] = set(roots)
    for r in roots:
        reachable.update(nx.descendants(graph, r))
    stranded = graph.subgraph(n for n in graph if n not in reachable)
    cycles = []
    # Every node has at most one parent, so each weak component of the stranded part holds one cycle.
    for c in nx.simple_cycles(stranded):
        start = c.index(min(c))
        cycles.append(c[start:] + c[:start])
    problems = []
    for cycle in sorted(cycles):
        problems.append(
            TreeProblem("cycle", cycle[0], f"territories form a cycle: {' -> '.join([*cycle, cycle[0]])}")
        )
    return problems


def _parent_coverage_warnings(
    by_key: Mapping[str, TerritoryDef], dimensions: Mapping[str, MemberHierarchy]
) -> list[TreeWarning]:
    warnings: list[TreeWarning] = []
    # the gap of a pair of coverages, by their ids (coverages are shared by many territories: the
    # same product group under each customer bucket...); the definitions hold them meanwhile
    gaps: dict[tuple[str, int, int], str | None] = {}
    for d in by_key.values():
        if d.parent_key is None:
            continue
        parent = by_key[d.parent_key]
        for dim in ordered([*BUILT_IN, *d.coverage, *parent.coverage]):
            child_cov = d.coverage.get(dim, UNRESTRICTED)
            parent_cov = parent.coverage.get(dim, UNRESTRICTED)
            if child_cov is parent_cov or child_cov == parent_cov:
                continue
            hierarchy = dimensions.get(dim)
            if hierarchy is None:
                continue
            pair = (dim, id(child_cov), id(parent_cov))
            if pair in gaps:
                gap = gaps[pair]
            else:
                gap = gaps[pair] = coverage_gap(child_cov, parent_cov, hierarchy)
            if gap is None:
                continue
            what = f"any {dim}" if gap == ANY_MEMBER else f"{dim} {gap!r}"
            warnings.append(
                TreeWarning(
                    "child_covers_more_than_parent",
                    d.key,
                    parent.key,
                    dim,
                    gap,
                    f"child {d.key!r} covers {what} that its parent {parent.key!r} does not cover",
                )
            )
    return warnings
