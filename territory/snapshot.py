"""The immutable territory snapshot of one model version, and lowest-level matching of leads.

How matching stays cheap
------------------------
Territories are numbered in depth-first order (root first, children sorted by key); that number is
the deterministic order of every result.

A child whose coverage lies inside its parent's on every dimension (``tree.coverage_gap`` is ``None``)
can only match a lead its parent matches. Matching therefore descends the tree from the *entry points*
(the root plus every territory that covers something its parent does not, i.e. the ones
``validate_tree`` warns about) and only visits the children of territories that matched. At each
visited territory the children are indexed by the dimension that tells them apart best: a dict from
each member a child includes directly to that child. Looking children up by the ancestors-or-self of
the lead's member costs the member's hierarchy depth; each child found is then checked only on the
dimensions where it differs from its parent, with precomputed sets. A child with nothing to index by
(unrestricted where its parent is, differing only by exclusions) sits in a short list checked every
time. The entry points hang under a virtual root indexed the same way, which is also where
territories unrestricted on every dimension live.

So a match costs about (hierarchy depth + children found) per matched territory: it grows with the
tree depth and the number of matches, not with the number of territories.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar, cast

import networkx as nx

from territory.dimensions import BUILT_IN, Dimension, MemberHierarchy, ordered
from territory.errors import UnknownTerritory, did_you_mean, hint
from territory.explanations import (
    Candidates,
    Explaining,
    Explanation,
    NearMissIndex,
    Reason,
)
from territory.matches import Facts, MatchResult
from territory.tree import CHANNEL_ACCOUNT_MANAGER, TeamMember, TerritoryDef, check_tree
from territory.tree import TreeWarning as TreeWarning

T = TypeVar("T")
#: Values a snapshot remembers for its callers (``TerritorySnapshot.derived``) before starting afresh.
DERIVED_CAP = 50_000

_EMPTY_HIERARCHY = MemberHierarchy({})

# (dimension index, includes to meet or None, excludes to avoid or None)
_Check = tuple[int, frozenset[str] | None, frozenset[str] | None]
# (child id, checks, whether the child has children worth descending into)
_Entry = tuple[int, tuple[_Check, ...], bool]
# (dimension index, shallowest and deepest member depth among the keys, member -> children including it)
_Level = tuple[int, int, int, dict[str, tuple[_Entry, ...]]]


_NO_MATCH = MatchResult((), (), None)


class UnknownValue(NamedTuple):
    """A lead fact naming a member its dimension does not know (it matches only unrestricted territories).

    Close spellings come from ``TerritorySnapshot.suggestions`` when someone reads them: a decision that
    nobody reports on (batch work) does not pay for the search."""

    dimension: str
    value: str


class CamAssignment(NamedTuple):
    """The channel account manager found for a territory, and the territory that holds the role."""

    user: str
    territory: str
    inherited: bool


class TerritorySnapshot(Explaining):
    """One territory model version, validated and indexed for matching; immutable once built.

    Parameters
    ----------
    model_version : str
        Recorded in decision traces.
    defs : Sequence[TerritoryDef]
        Must form one tree (see ``territory.tree.validate_tree``; ``TreeInvalid`` otherwise).
    dimensions : Mapping[str, MemberHierarchy]
        Member hierarchies; a built-in dimension left out has no members, so no territory may restrict it.
        Any other name is a declared dimension, matched exactly like the built-in ones.
    sources : Mapping[str, str]
        For declared dimensions: the lead fact that feeds it when the facts do not name the dimension
        itself (``territory_facts``).

    Examples
    --------
    >>> from territory.tree import Coverage
    >>> geo = MemberHierarchy({"world": None, "EMEA": "world", "FR": "EMEA"}, name="geography")
    >>> snap = TerritorySnapshot("v1", [
    ...     TerritoryDef("WW", None, "Worldwide", "channel"),
    ...     TerritoryDef("EU", "WW", "Europe", "channel", coverage={Dimension.GEOGRAPHY: Coverage.of(["EMEA"])}),
    ... ], {Dimension.GEOGRAPHY: geo})
    >>> snap.match({"geography": "FR"})
    MatchResult(matched=('WW', 'EU'), lowest=('EU',), depth=1)
    >>> snap.path("EU")
    ('WW', 'EU')
    """

    def __init__(
        self,
        model_version: str,
        defs: Sequence[TerritoryDef],
        dimensions: Mapping[str, MemberHierarchy],
        sources: Mapping[str, str] | None = None,
    ) -> None:
        checked = check_tree(defs, dimensions)
        self._model_version = model_version
        self._graph: Any = nx.freeze(checked.graph)
        self._warnings = checked.warnings
        self._dims: tuple[str, ...] = ordered([*Dimension, *dimensions])
        self._dim_index: dict[str, int] = {d: i for i, d in enumerate(self._dims)}
        self._sources: dict[str, str] = {d: (sources or {}).get(d, d) for d in self._dims}
        # (dimension, the other fact feeding it or None) for ``territory_facts``
        self._fact_sources = tuple((d, s if s != d else None) for d, s in self._sources.items())
        self._hierarchies = tuple(dimensions.get(d, _EMPTY_HIERARCHY) for d in self._dims)
        self._anc = tuple(h.ancestor_sets() for h in self._hierarchies)
        # Per member: its ancestors-or-self as a set, and top-down (index = depth in the hierarchy).
        self._lead_info = tuple(
            (name, {m: (a, tuple(reversed(h.ancestors_or_self(m)))) for m, a in h.ancestor_sets().items()})
            for name, h in zip(self._dims, self._hierarchies, strict=True)
        )
        by_key = {d.key: d for d in defs}

        # Depth-first order, children sorted by key: ids are positions in this order.
        children_keys: dict[str, list[str]] = {k: [] for k in by_key}
        for d in by_key.values():
            if d.parent_key is not None:
                children_keys[d.parent_key].append(d.key)
        order: list[str] = []
        stack = [checked.root]
        while stack:
            k = stack.pop()
            order.append(k)
            stack.extend(sorted(children_keys[k], reverse=True))
        self._keys: tuple[str, ...] = tuple(order)
        self._id: dict[str, int] = {k: i for i, k in enumerate(order)}
        self._defs: tuple[TerritoryDef, ...] = tuple(by_key[k] for k in order)
        n = len(order)
        parent = [-1] * n
        depth = [0] * n
        paths: list[tuple[str, ...]] = [()] * n
        children: list[list[int]] = [[] for _ in range(n)]
        for i, d in enumerate(self._defs):  # parents come before children in depth-first order
            if d.parent_key is None:
                paths[i] = (d.key,)
                continue
            p = self._id[d.parent_key]
            parent[i], depth[i], paths[i] = p, depth[p] + 1, (*paths[p], d.key)
            children[p].append(i)
        self._parent = tuple(parent)
        self._depth = tuple(depth)
        self._paths = tuple(paths)
        self._children = tuple(tuple(c) for c in children)

        # Coverage per dimension per territory; includes reduced to those without an included ancestor,
        # so a lead member's ancestor chain meets at most one include of each territory.
        empty: frozenset[str] = frozenset()
        inc = [[empty] * n for _ in self._dims]
        exc = [[empty] * n for _ in self._dims]
        for t, d in enumerate(self._defs):
            for dim, cov in d.coverage.items():
                di = self._dim_index[dim]
                inc[di][t] = self._normal_includes(cov.include, di)
                exc[di][t] = cov.exclude
        self._inc = tuple(tuple(x) for x in inc)
        self._exc = tuple(tuple(x) for x in exc)
        # Per territory: (dimension, includes, excludes) of each dimension it restricts (explanations),
        # and split in two for when its parent matched: the dimensions the parent vouches for (the same
        # includes, no exclusion the parent lacks) and the checks left.
        restricted = [[di for di in range(len(self._dims)) if inc[di][t] or exc[di][t]] for t in range(n)]
        self._restrictions = tuple(
            tuple((di, inc[di][t], exc[di][t]) for di in ds) for t, ds in enumerate(restricted)
        )
        vouched = [
            {di for di in ds if p >= 0 and inc[di][t] == inc[di][p] and exc[di][t] <= exc[di][p]}
            for t, (ds, p) in enumerate(zip(restricted, self._parent, strict=True))
        ]
        self._vouched = tuple(len(v) for v in vouched)
        self._unvouched: tuple[tuple[tuple[int, frozenset[str], frozenset[str]], ...], ...] = tuple(
            tuple((di, inc[di][t], exc[di][t]) for di in ds if di not in v)
            for t, (ds, v) in enumerate(zip(restricted, vouched, strict=True))
        )
        # Per territory with children: its children indexed for ranking them as near misses, built the
        # first time an explanation asks (`_near_index`; every one up front cost ~0.02 s of a
        # 10,000-territory snapshot's 0.4 s build, which a plan or a decision without explanations
        # never uses).
        self._near: dict[int, NearMissIndex] = {}
        self._build_inverted_indexes()
        self._build_cams()

        entries = {0} | {self._id[w.territory] for w in self._warnings}
        self._virtual = n
        self._levels: list[tuple[_Level, ...]] = [()] * (n + 1)
        self._scans: list[tuple[_Entry, ...]] = [()] * (n + 1)
        for p in range(n):
            kids = [c for c in self._children[p] if c not in entries]
            if kids:
                self._index_children(p, kids)
        self._index_children(self._virtual, sorted(entries))

    # ----------------------------------------------------------------- build helpers

    def _normal_includes(self, include: frozenset[str], di: int) -> frozenset[str]:
        if len(include) < 2:
            return include
        anc = self._anc[di]
        return frozenset(m for m in include if include.isdisjoint(anc[m] - {m}))

    def _build_inverted_indexes(self) -> None:
        """Member -> territories including / excluding it directly, and territories unrestricted, per dimension."""
        includers: list[dict[str, list[int]]] = [{} for _ in self._dims]
        excluders: list[dict[str, list[int]]] = [{} for _ in self._dims]
        for t, d in enumerate(self._defs):
            for dim, cov in d.coverage.items():
                di = self._dim_index[dim]
                for m in cov.include:
                    includers[di].setdefault(m, []).append(t)
                for m in cov.exclude:
                    excluders[di].setdefault(m, []).append(t)
        self._includers = tuple({m: tuple(ts) for m, ts in x.items()} for x in includers)
        self._excluders = tuple({m: tuple(ts) for m, ts in x.items()} for x in excluders)
        self._unrestricted = tuple(
            tuple(t for t, members in enumerate(self._inc[di]) if not members)
            for di in range(len(self._dims))
        )

    def _build_cams(self) -> None:
        cams: list[CamAssignment | None] = []
        for t, d in enumerate(self._defs):
            own = sorted(m.user for m in d.team if m.role == CHANNEL_ACCOUNT_MANAGER)
            if own:
                cams.append(CamAssignment(own[0], d.key, False))
                continue
            above = cams[self._parent[t]] if self._parent[t] >= 0 else None
            cams.append(above._replace(inherited=True) if above is not None else None)
        self._cams = tuple(cams)
        self._derived: dict[Hashable, Any] = {}

    def _index_children(self, p: int, kids: list[int]) -> None:
        """Build the lookup levels and the scan list for ``kids`` under ``p`` (or the virtual root)."""
        virtual = p == self._virtual
        ndim = len(self._dims)
        need_inc: dict[int, list[int]] = {}
        exc_left: dict[int, list[frozenset[str]]] = {}
        for c in kids:
            # A matched parent already vouches for a dimension where the child includes the same members,
            # and for the exclusions they share.
            need_inc[c] = [
                di
                for di in range(ndim)
                if self._inc[di][c] and (virtual or self._inc[di][c] != self._inc[di][p])
            ]
            exc_left[c] = [
                self._exc[di][c] if virtual else self._exc[di][c] - self._exc[di][p] for di in range(ndim)
            ]

        def entry(c: int, split: int | None) -> _Entry:
            checks: list[_Check] = []
            for di in range(ndim):
                inc = self._inc[di][c] if di != split and di in need_inc[c] else None
                exc = exc_left[c][di] or None
                if inc is not None or exc is not None:
                    checks.append((di, inc, exc))
            return (c, tuple(checks), bool(self._children[c]))

        levels: list[_Level] = []
        rest = list(kids)
        free = set(range(ndim))
        while rest and free:
            counts = {di: sum(1 for c in rest if di in need_inc[c]) for di in free}
            best = max(free, key=lambda di: (counts[di], -di))
            if counts[best] == 0:
                break
            table: dict[str, list[_Entry]] = {}
            keep = []
            for c in rest:
                if best in need_inc[c]:
                    e = entry(c, best)
                    for m in self._inc[best][c]:
                        table.setdefault(m, []).append(e)
                else:
                    keep.append(c)
            depths = [self._hierarchies[best].depth(m) for m in table]
            levels.append((best, min(depths), max(depths), {m: tuple(es) for m, es in table.items()}))
            rest = keep
            free.discard(best)
        self._levels[p] = tuple(levels)
        self._scans[p] = tuple(entry(c, None) for c in rest)

    # ----------------------------------------------------------------- matching

    def _lead_ancestors(self, facts: Facts) -> list[frozenset[str] | None]:
        out: list[frozenset[str] | None] = []
        for name, anc in zip(self._dims, self._anc, strict=True):
            m = facts.get(name)  # type: ignore[call-overload]  # str-valued enum or str keys
            if m is None:
                out.append(None)
            else:
                s = anc.get(m)
                out.append(s if s is not None else frozenset((m,)))
        return out

    def match(self, facts: Facts) -> MatchResult:
        """Return every territory matching the lead, and the lowest-level (deepest) ones.

        A member unknown to its dimension's hierarchy is treated as a new top-level member: territories
        restricted on that dimension do not cover it, unrestricted ones do.
        """
        # Hot path: locals only, no helper calls (see the module docstring for the algorithm).
        sets: list[frozenset[str] | None] = []
        chains: list[tuple[str, ...]] = []
        for name, info in self._lead_info:
            m = facts.get(name)  # type: ignore[call-overload]  # str-valued enum or str keys
            if m is None:
                sets.append(None)
                chains.append(())
            else:
                pair = info.get(m)
                if pair is None:
                    sets.append(frozenset((m,)))
                    chains.append((m,))
                else:
                    sets.append(pair[0])
                    chains.append(pair[1])
        found: list[int] = []
        stack = [self._virtual]
        levels = self._levels
        scans = self._scans
        while stack:
            p = stack.pop()
            for di, lo, hi, table in levels[p]:
                for m in chains[di][lo : hi + 1]:
                    bucket = table.get(m)
                    if bucket is None:
                        continue
                    for c, checks, kids in bucket:
                        for d2, inc, exc in checks:
                            a = sets[d2]
                            if a is None:
                                if inc is not None:
                                    break
                            elif (inc is not None and inc.isdisjoint(a)) or (
                                exc is not None and not exc.isdisjoint(a)
                            ):
                                break
                        else:
                            found.append(c)
                            if kids:
                                stack.append(c)
            for c, checks, kids in scans[p]:
                for d2, inc, exc in checks:
                    a = sets[d2]
                    if a is None:
                        if inc is not None:
                            break
                    elif (inc is not None and inc.isdisjoint(a)) or (
                        exc is not None and not exc.isdisjoint(a)
                    ):
                        break
                else:
                    found.append(c)
                    if kids:
                        stack.append(c)
        if not found:
            return _NO_MATCH
        found.sort()
        keys = self._keys
        depth = self._depth
        deepest = max(map(depth.__getitem__, found))
        return MatchResult(
            tuple(map(keys.__getitem__, found)),
            tuple([keys[i] for i in found if depth[i] == deepest]),
            deepest,
        )

    def lowest_matches(self, facts: Facts) -> tuple[str, ...]:
        """Return only the lowest-level matching territories (depth-first order)."""
        return self.match(facts).lowest

    # ----------------------------------------------------------------- lookups

    def _tid(self, key: str) -> int:
        t = self._id.get(key)
        if t is None:
            raise UnknownTerritory(key, did_you_mean(key, self._id.keys()))
        return t

    @property
    def model_version(self) -> str:
        """The territory model version this snapshot was built from."""
        return self._model_version

    @property
    def graph(self) -> Any:
        """The frozen ``networkx.DiGraph`` of the tree (edges parent -> child)."""
        return self._graph

    @property
    def root(self) -> str:
        """The root territory's key."""
        return self._keys[0]

    @property
    def warnings(self) -> tuple[TreeWarning, ...]:
        """What ``validate_tree`` warned about (children covering more than their parent)."""
        return self._warnings

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._id

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def keys(self) -> tuple[str, ...]:
        """Every territory key in depth-first order (children sorted by key)."""
        return self._keys

    def territory(self, key: str) -> TerritoryDef:
        """Return the definition of ``key``."""
        return self._defs[self._tid(key)]

    def depth(self, key: str) -> int:
        """Return the territory's depth (root = 0)."""
        return self._depth[self._tid(key)]

    def parent(self, key: str) -> str | None:
        """Return the parent's key (``None`` for the root)."""
        p = self._parent[self._tid(key)]
        return self._keys[p] if p >= 0 else None

    def children(self, key: str) -> tuple[str, ...]:
        """Return the children's keys, sorted."""
        return tuple(self._keys[c] for c in self._children[self._tid(key)])

    def path(self, key: str) -> tuple[str, ...]:
        """Return the keys from the root down to ``key`` (inclusive)."""
        return self._paths[self._tid(key)]

    def team(self, key: str) -> tuple[TeamMember, ...]:
        """Return the team defined on the territory itself (not inherited)."""
        return self._defs[self._tid(key)].team

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T:
        """A value computed once from this immutable snapshot and remembered under ``key`` (callers
        use keys of their own, e.g. an approval step and the lowest territories it resolves on)."""
        try:
            return cast(T, self._derived[key])
        except KeyError:
            if len(self._derived) >= DERIVED_CAP:
                self._derived.clear()
            value = self._derived[key] = compute()
            return value

    def cam_for(self, key: str) -> CamAssignment | None:
        """Return the channel account manager for ``key``, walking up towards the root if it has none.

        When one territory has several, the smallest user key wins. ``None`` when no territory on the
        path has one.
        """
        return self._cams[self._tid(key)]

    def _di(self, dimension: str) -> int:
        try:
            return self._dim_index[dimension]
        except KeyError:
            raise KeyError(
                f"unknown dimension {dimension!r}{hint(did_you_mean(dimension, self._dims))}"
            ) from None

    def includers(self, dimension: str, member: str) -> tuple[str, ...]:
        """Territories that include ``member`` directly (not through an ancestor), depth-first order."""
        return tuple(self._keys[t] for t in self._includers[self._di(dimension)].get(member, ()))

    def excluders(self, dimension: str, member: str) -> tuple[str, ...]:
        """Territories that exclude ``member`` directly, depth-first order."""
        return tuple(self._keys[t] for t in self._excluders[self._di(dimension)].get(member, ()))

    def unrestricted(self, dimension: str) -> tuple[str, ...]:
        """Territories that include nothing on ``dimension`` (cover any member but their exclusions)."""
        return tuple(self._keys[t] for t in self._unrestricted[self._di(dimension)])

    def hierarchy(self, dimension: str) -> MemberHierarchy:
        """The member hierarchy of ``dimension`` (empty when none was given)."""
        return self._hierarchies[self._di(dimension)]

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Every dimension of the snapshot: the built-in ones, then the declared ones by name."""
        return self._dims

    @property
    def declared_dimensions(self) -> tuple[str, ...]:
        """The dimensions beyond the built-in ones, by name."""
        return self._dims[len(BUILT_IN) :]

    def source_of(self, dimension: str) -> str:
        """The lead fact feeding ``dimension`` when the facts do not name the dimension itself."""
        return self._sources[dimension]

    def territory_facts(self, facts: Mapping[str, Any]) -> dict[str, str]:
        """The facts the matcher reads: one member per dimension, from the fact named like the dimension
        or else from the declared dimension's source fact; empty values are left out."""
        out: dict[str, str] = {}
        for name, source in self._fact_sources:
            value = facts.get(name)
            if (value is None or value == "") and source is not None:
                value = facts.get(source)
            if value is not None and value != "":
                out[name] = value if type(value) is str else str(value)
        return out

    def unknown_values(self, facts: Facts) -> tuple[UnknownValue, ...]:
        """The facts naming members their dimension does not know (``suggestions`` gives close spellings).

        A dimension without any member (nothing to know) is not reported.
        """
        out: list[UnknownValue] = []
        for name, anc in zip(self._dims, self._anc, strict=True):
            value = facts.get(name)  # type: ignore[call-overload]  # str-valued enum or str keys
            if value is None or value in anc or not anc:
                continue
            out.append(UnknownValue(name, str(value)))
        return tuple(out) if out else ()

    def suggestions(self, unknown: UnknownValue) -> tuple[str, ...]:
        """Close spellings of an unknown value among its dimension's members (remembered per snapshot)."""
        h = self.hierarchy(unknown.dimension)
        return self.derived(("suggestions", *unknown), lambda: h.suggest(unknown.value))


__all__ = [
    "CamAssignment",
    "Candidates",
    "Explanation",
    "Facts",
    "MatchResult",
    "Reason",
    "TerritorySnapshot",
    "TreeWarning",
    "UnknownValue",
]
