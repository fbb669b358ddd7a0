"""Why a territory did or did not get a lead: the explaining half of a territory snapshot.

A decision trace explains every territory that matched and the near misses that came closest (children
of a match that did not match), ranked by how many of the dimensions they restrict the lead meets; the
rest are counted. ``Explaining`` reads the indexes ``TerritorySnapshot`` builds (declared below) and is
mixed into it, so callers ask the snapshot: ``snapshot.explain(facts, key)``, ``snapshot.candidates(...)``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import NamedTuple, Protocol, TypeVar

from territory.dimensions import MemberHierarchy
from territory.matches import Facts, MatchResult
from territory.tree import TerritoryDef

T = TypeVar("T")


class Reason(StrEnum):
    """Why a territory did or did not win a lead (stored in decision traces)."""

    MATCHED = "matched"
    MATCHED_NOT_LOWEST = "matched_not_lowest"
    DIMENSION_NOT_COVERED = "dimension_not_covered"
    EXCLUDED = "excluded"
    FACT_MISSING = "fact_missing"
    UNKNOWN_TERRITORY = "unknown_territory"


#: A near miss ranked: (minus the dimensions met, dimensions failed, id, each failure and its reason).
_Score = tuple[int, int, int, list[tuple[int, Reason]]]


@dataclass(frozen=True)
class Explanation:
    """Why ``territory`` did or did not get a lead; ``message`` says it in one sentence.

    Only the fields relevant to ``reason`` are set: ``dimension`` and ``lead_member`` for the three
    dimension reasons, ``territory_includes`` for ``dimension_not_covered``, ``excluded_member`` (the lead's
    member itself or one of its ancestors) for ``excluded``, ``depth`` and ``lowest_depth`` for the two
    matched reasons.
    """

    territory: str
    reason: Reason
    message: str
    dimension: str | None = None
    lead_member: str | None = None
    territory_includes: tuple[str, ...] = ()
    excluded_member: str | None = None
    depth: int | None = None
    lowest_depth: int | None = None
    #: For a territory that did not match: how many of the dimensions it restricts the lead meets, and
    #: every dimension it fails (the first of them is ``dimension``).
    dimensions_matched: int | None = None
    dimensions_failed: tuple[str, ...] = ()


class Candidates(NamedTuple):
    """The territories a decision trace explains, and how many it leaves out.

    ``explained`` (depth-first order) holds every territory that matched (the winning paths and every
    tie) and the near misses (children of a match that did not match, or the root when nothing matched)
    that came closest, ranked by how many of their dimensions the lead meets; ``omitted`` counts the
    other near misses and ``omitted_reasons`` counts them by ``Reason``.
    """

    explained: tuple[Explanation, ...]
    omitted: int
    omitted_reasons: dict[str, int]


class NearMissIndex(NamedTuple):
    """A territory's children indexed for ranking them as near misses once it matched (``_near_misses``).

    Built once per snapshot for a territory with children, when an explanation first asks
    (``near_miss_index``, ``Explaining._near_index``). Each child is checked
    on the dimensions its parent does not vouch for (``Explaining._unvouched``): ``lookups`` finds, per
    dimension, the children that include or exclude a member of the lead's ancestors-or-self; ``always``
    holds the children restricting some dimension by exclusions only (they meet most leads there);
    ``ranked`` holds the others in the order they rank when they fail every check (most dimensions met,
    fewest failed, depth-first), and ``first_dims`` counts them by their first dimension checked.
    """

    lookups: tuple[tuple[int, dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]], ...]
    always: frozenset[int]
    ranked: tuple[int, ...]
    first_dims: tuple[tuple[int, int], ...]


def near_miss_index(
    children: Sequence[int],
    checks: Sequence[tuple[tuple[int, frozenset[str], frozenset[str]], ...]],
    vouched: Sequence[int],
) -> NearMissIndex:
    """Index ``children`` by the members their ``checks`` (dimension, includes, excludes) name.

    A child without checks matches whenever its parent does: it is never a near miss and is left out.
    """
    includes: dict[int, dict[str, list[int]]] = {}
    excludes: dict[int, dict[str, list[int]]] = {}
    always: set[int] = set()
    ranked: list[int] = []
    first: dict[int, int] = {}
    for c in children:
        if not checks[c]:
            continue
        if any(not inc for _, inc, _ in checks[c]):
            always.add(c)
            continue
        ranked.append(c)
        first[checks[c][0][0]] = first.get(checks[c][0][0], 0) + 1
        for di, inc, exc in checks[c]:
            for m in inc:
                includes.setdefault(di, {}).setdefault(m, []).append(c)
            for m in exc:
                excludes.setdefault(di, {}).setdefault(m, []).append(c)
    ranked.sort(key=lambda c: (-vouched[c], len(checks[c]), c))

    def frozen(table: dict[str, list[int]] | None) -> dict[str, tuple[int, ...]]:
        return {m: tuple(ts) for m, ts in (table or {}).items()}

    lookups = tuple(
        (di, frozen(includes.get(di)), frozen(excludes.get(di))) for di in sorted({*includes, *excludes})
    )
    return NearMissIndex(lookups, frozenset(always), tuple(ranked), tuple(sorted(first.items())))


class Explaining(Protocol):
    """Explanations over a snapshot's indexes; ``TerritorySnapshot`` builds them and the three methods
    declared without a body, and inherits the rest."""

    _model_version: str
    _dims: tuple[str, ...]
    _id: dict[str, int]
    _defs: tuple[TerritoryDef, ...]
    _depth: tuple[int, ...]
    _paths: tuple[tuple[str, ...], ...]
    _children: tuple[tuple[int, ...], ...]
    _hierarchies: tuple[MemberHierarchy, ...]
    _restrictions: tuple[tuple[tuple[int, frozenset[str], frozenset[str]], ...], ...]
    _unvouched: tuple[tuple[tuple[int, frozenset[str], frozenset[str]], ...], ...]
    _vouched: tuple[int, ...]
    _near: dict[int, NearMissIndex]

    def _lead_ancestors(self, facts: Facts) -> list[frozenset[str] | None]: ...

    def match(self, facts: Facts) -> MatchResult: ...

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T: ...

    def explain(self, facts: Facts, key: str) -> Explanation:
        """Say precisely why territory ``key`` did or did not get the lead (first failing dimension)."""
        t = self._id.get(key)
        if t is None:
            return Explanation(
                key, Reason.UNKNOWN_TERRITORY, f"no territory {key!r} in model {self._model_version}"
            )
        fa = self._lead_ancestors(facts)
        e = self._explain(facts, t, fa, self.match(facts))
        if e.reason in (Reason.MATCHED, Reason.MATCHED_NOT_LOWEST):
            return e
        met, failed = self._fit(t, fa)
        return replace(e, dimensions_matched=met, dimensions_failed=tuple(self._dims[di] for di, _ in failed))

    def explain_all(self, facts: Facts) -> tuple[Explanation, ...]:
        """Explain every territory that matched plus every child of a match that did not (near misses).

        In depth-first order; ``candidates(facts, None)`` gives the same with nothing left out.
        """
        return self.candidates(facts, None).explained

    def candidates(
        self, facts: Facts, closest: int | None, *, paths: bool = True, match: MatchResult | None = None
    ) -> Candidates:
        """The matches and the ``closest`` near misses explained, the other near misses counted.

        A near miss is a child of a matching territory that did not match (the root when nothing
        matched). Near misses rank by how many of the dimensions they restrict the lead meets (more
        first), then by how few they fail, then depth-first; ``closest=None`` explains them all. Only
        the explained ones cost an ``Explanation``, and only the children the lead's members reach through
        an index are scored one by one, so a root with hundreds of children stays cheap.
        ``paths=False`` leaves out the matches above the lowest ones (a trace lists those paths apart).
        ``match``: what ``match(facts)`` returns, when the caller has it already.

        >>> from territory.dimensions import Dimension
        >>> from territory.snapshot import TerritorySnapshot
        >>> from territory.tree import Coverage
        >>> geo = MemberHierarchy({"W": None, "FR": "W", "DE": "W", "IT": "W"}, name="geography")
        >>> snap = TerritorySnapshot("v1", [TerritoryDef("WW", None, "Worldwide", "channel")] + [
        ...     TerritoryDef(k, "WW", k, "country", coverage={Dimension.GEOGRAPHY: Coverage.of([k])})
        ...     for k in ("FR", "DE", "IT")], {Dimension.GEOGRAPHY: geo})
        >>> found = snap.candidates({"geography": "FR"}, 1)
        >>> [e.territory for e in found.explained], found.omitted, found.omitted_reasons
        (['WW', 'DE', 'FR'], 1, {'dimension_not_covered': 1})
        """
        result = match if match is not None else self.match(facts)
        fa = self._lead_ancestors(facts)
        matched = [self._id[k] for k in result.matched]
        ids = set(matched)
        if not paths:
            ids.difference_update(
                self._id[k] for low in result.lowest for k in self._paths[self._id[low]][:-1]
            )
        # Near misses are children of a match that did not match (the root when nothing did), each group
        # ranked closest first; the groups are merged lazily, so only the shown ones are ever ranked apart
        # from the rest (see ``_near_misses``).
        groups: list[tuple[Iterable[_Score], int, dict[str, int]]] = []
        if matched:
            groups = [self._near_misses(p, fa) for p in matched if self._children[p]]
        else:
            scored, counts = self._scored((0,), fa, self._restrictions, under_match=False)
            groups = [(scored, len(scored), counts)]
        total = sum(g[1] for g in groups)
        reasons: dict[str, int] = {}
        for _, _, counts in groups:
            for reason, n in counts.items():
                reasons[reason] = reasons.get(reason, 0) + n
        ranked = heapq.merge(*(g[0] for g in groups))
        shown = list(ranked if closest is None else itertools.islice(ranked, closest))
        for *_, failed in shown:
            reasons[str(failed[0][1])] -= 1
        reasons = {k: n for k, n in sorted(reasons.items()) if n}
        rest_count = total - len(shown)
        losers = {t: (-minus_met, failed) for minus_met, _, t, failed in shown}
        explained = []
        for t in sorted(ids.union(losers)):
            e = self._explain(facts, t, fa, result)
            if t in losers:
                met, failed = losers[t]
                failed_dims = tuple(self._dims[di] for di, _ in failed)
                e = replace(e, dimensions_matched=met, dimensions_failed=failed_dims)
            explained.append(e)
        return Candidates(tuple(explained), rest_count, reasons if rest_count else {})

    def _near_index(self, p: int) -> NearMissIndex:
        """The children of ``p`` (which has some) indexed for ranking them as near misses; built once (two
        threads building it at once build the same index, and either is kept)."""
        index = self._near.get(p)
        if index is None:
            index = self._near.setdefault(
                p, near_miss_index(self._children[p], self._unvouched, self._vouched)
            )
        return index

    def _near_misses(
        self, p: int, fa: list[frozenset[str] | None]
    ) -> tuple[Iterator[_Score], int, dict[str, int]]:
        """The children of matched ``p`` that did not match: ranked closest first (lazily), how many
        there are, and how many fail for each reason (of their first failing dimension).

        Only the children the lead's members reach through ``p``'s ``NearMissIndex`` (those meeting or
        excluding the lead on some dimension, and those restricting a dimension by exclusions only) are
        scored one by one. Every other child fails each of its checks, on a dimension the lead lacks
        (``fact_missing``) or does not meet (``dimension_not_covered``): its rank is known in advance,
        so those are taken in their precomputed order, and only as far as the merge asks.
        """
        index = self._near_index(p)
        reached = set(index.always)
        for di, includes, excludes in index.lookups:
            a = fa[di]
            if a is None:
                continue
            for m in a:
                found = includes.get(m)
                if found is not None:
                    reached.update(found)
                found = excludes.get(m)
                if found is not None:
                    reached.update(found)
        checks = self._unvouched
        scored, reasons = self._scored(sorted(reached), fa, checks, under_match=True)
        missing, not_covered = str(Reason.FACT_MISSING), str(Reason.DIMENSION_NOT_COVERED)
        first = dict(index.first_dims)
        for t in reached:
            if checks[t] and t not in index.always:
                first[checks[t][0][0]] -= 1
        rest = 0
        for di, n in first.items():
            if n:
                reason = missing if fa[di] is None else not_covered
                reasons[reason] = reasons.get(reason, 0) + n
                rest += n
        vouched = self._vouched
        missing_r, not_covered_r = Reason.FACT_MISSING, Reason.DIMENSION_NOT_COVERED

        def unreached() -> Iterator[_Score]:
            for t in index.ranked:
                if t not in reached:
                    fails = [(di, missing_r if fa[di] is None else not_covered_r) for di, _, _ in checks[t]]
                    yield (-vouched[t], len(fails), t, fails)

        return heapq.merge(scored, unreached()), len(scored) + rest, reasons

    def _scored(
        self,
        near: Sequence[int],
        fa: list[frozenset[str] | None],
        checks: Sequence[tuple[tuple[int, frozenset[str], frozenset[str]], ...]],
        *,
        under_match: bool,
    ) -> tuple[list[_Score], dict[str, int]]:
        """Score ``near`` (each by ``checks``; those failing nothing matched and are left out), ranked
        closest first: most dimensions met, fewest failed, depth-first. ``under_match``: their parent
        matched, so the dimensions it vouches for count as met and ``checks`` holds the others."""
        vouched = self._vouched
        # enum members looked up once: a class attribute of an Enum costs a descriptor call each time
        missing, excluded, not_covered = Reason.FACT_MISSING, Reason.EXCLUDED, Reason.DIMENSION_NOT_COVERED
        scored: list[_Score] = []
        reasons: dict[Reason, int] = {}
        for t in near:
            met = vouched[t] if under_match else 0
            failed: list[tuple[int, Reason]] = []
            for di, inc, exc in checks[t]:
                a = fa[di]
                if a is None:
                    if inc:
                        failed.append((di, missing))
                    else:
                        met += 1
                elif exc and not exc.isdisjoint(a):
                    failed.append((di, excluded))
                elif inc and inc.isdisjoint(a):
                    failed.append((di, not_covered))
                else:
                    met += 1
            if failed:
                scored.append((-met, len(failed), t, failed))
                reason = failed[0][1]
                reasons[reason] = reasons.get(reason, 0) + 1
        scored.sort()
        return scored, {str(r): n for r, n in reasons.items()}

    def _fit(self, t: int, fa: list[frozenset[str] | None]) -> tuple[int, list[tuple[int, Reason]]]:
        """How many of the dimensions territory ``t`` restricts the lead meets, and each one it fails
        with its reason (in dimension order, as ``_explain`` finds them)."""
        met = 0
        failed: list[tuple[int, Reason]] = []
        for di, inc, exc in self._restrictions[t]:
            a = fa[di]
            if a is None:
                if inc:
                    failed.append((di, Reason.FACT_MISSING))
                else:
                    met += 1
            elif exc and not exc.isdisjoint(a):
                failed.append((di, Reason.EXCLUDED))
            elif inc and inc.isdisjoint(a):
                failed.append((di, Reason.DIMENSION_NOT_COVERED))
            else:
                met += 1
        return met, failed

    def _explain(
        self, facts: Facts, t: int, fa: list[frozenset[str] | None], result: MatchResult
    ) -> Explanation:
        d = self._defs[t]
        for di, dim in enumerate(self._dims):
            cov = d.coverage_on(dim)
            lead = fa[di]
            if lead is None:
                if cov.include:
                    return Explanation(
                        d.key,
                        Reason.FACT_MISSING,
                        f"lead has no {dim}; territory {d.key!r} covers only {_list(cov.include)}",
                        dimension=dim,
                        territory_includes=tuple(sorted(cov.include)),
                    )
                continue
            member = str(facts.get(dim))  # type: ignore[call-overload]  # present: lead is not None
            h = self._hierarchies[di]
            chain = h.ancestors_or_self(member) if member in h else (member,)  # self first, then up
            hit = next((m for m in chain if m in cov.exclude), None)
            if hit is not None:
                via = "" if hit == member else f" (via its ancestor {hit!r})"
                return Explanation(
                    d.key,
                    Reason.EXCLUDED,
                    f"territory {d.key!r} excludes {dim} {member!r}{via}",
                    dimension=dim,
                    lead_member=member,
                    excluded_member=hit,
                )
            if cov.include and cov.include.isdisjoint(lead):
                return Explanation(
                    d.key,
                    Reason.DIMENSION_NOT_COVERED,
                    f"territory {d.key!r} covers {dim} {_list(cov.include)}, not {member!r}",
                    dimension=dim,
                    lead_member=member,
                    territory_includes=tuple(sorted(cov.include)),
                )
        depth = self._depth[t]
        if depth == result.depth:
            return Explanation(
                d.key,
                Reason.MATCHED,
                f"territory {d.key!r} matched at the lowest level ({depth})",
                depth=depth,
                lowest_depth=depth,
            )
        return Explanation(
            d.key,
            Reason.MATCHED_NOT_LOWEST,
            f"territory {d.key!r} matched at depth {depth} but deeper matches exist at depth {result.depth}",
            depth=depth,
            lowest_depth=result.depth,
        )


#: Members an explanation's message names before it says how many more there are.
MESSAGE_MEMBERS = 5


def _list(members: frozenset[str]) -> str:
    """The members for a message, at most ``MESSAGE_MEMBERS`` of them (a territory may list hundreds).

    >>> _list(frozenset("abcdefg"))
    "'a', 'b', 'c', 'd', 'e' and 2 more"
    """
    ordered = sorted(members)
    shown = ", ".join(repr(m) for m in ordered[:MESSAGE_MEMBERS])
    return shown + (f" and {len(ordered) - MESSAGE_MEMBERS} more" if len(ordered) > MESSAGE_MEMBERS else "")
