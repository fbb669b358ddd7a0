"""Incremental realignment (pure): which territories differ between two model versions, and which
dimension members a lead must carry to possibly be affected.

A lead matches a territory when it satisfies that territory's own coverage, so its matched set, lowest
territories, CAM (inherited downwards) and role holders (nearest on the path) change between two models
only if it satisfies the coverage of a territory that differs, or sits below one that does. ``changed``
is therefore every territory that differs or exists in one model only, plus everything below one in
either model. Of each such territory's restricted dimensions the narrowest is enough as a necessary
condition: a lead whose member on it is not covered cannot match the territory (narrowest: the smallest
share of its dimension's members). A changed territory
restricted on nothing makes every lead a candidate (``None``).

>>> from territory.snapshot import TerritorySnapshot
>>> from territory.tree import Coverage, TeamMember, TerritoryDef
>>> from territory.dimensions import Dimension, MemberHierarchy
>>> geo = {Dimension.GEOGRAPHY: MemberHierarchy({"APAC": None, "JP": "APAC", "DE": None})}
>>> def model(jp_cam):
...     return TerritorySnapshot("v", [
...         TerritoryDef("WW", None, "World", "global"),
...         TerritoryDef("JP", "WW", "Japan", "country", coverage={Dimension.GEOGRAPHY: Coverage.of(["JP"])},
...                      team=(TeamMember(jp_cam, "channel_account_manager"),)),
...     ], geo)
>>> old, new = model("cam-a"), model("cam-b")
>>> sorted(changed_territories(old, new))
['JP']
>>> candidate_members((old, new), changed_territories(old, new))
{<Dimension.GEOGRAPHY: 'geography'>: {'JP'}}
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from territory.dimensions import Dimension, MemberHierarchy, ordered
from territory.tree import TerritoryDef

_EMPTY = MemberHierarchy({})


class Model(Protocol):
    """What comparing two models reads of each: a ``TerritorySnapshot`` or its ``Definitions``."""

    def __contains__(self, key: object) -> bool: ...

    def __iter__(self) -> Iterator[str]: ...

    def keys(self) -> Sequence[str]: ...

    def territory(self, key: str) -> TerritoryDef: ...

    def path(self, key: str) -> tuple[str, ...]: ...

    def hierarchy(self, dimension: str) -> MemberHierarchy: ...

    @property
    def dimensions(self) -> tuple[str, ...]: ...


class Definitions:
    """A model's stored definitions (any order) and dimension hierarchies, answering what ``Model``
    asks without the matching index a snapshot builds: the old model of an incremental plan is only
    compared, never matched against (a tenth of a snapshot's cost at 10,000 territories).

    >>> from territory.tree import Coverage
    >>> d = Definitions([TerritoryDef("EU", "WW", "Europe", "region"), TerritoryDef("WW", None, "World", "global")], {})
    >>> d.path("EU"), len(d.dimensions) >= 5
    (('WW', 'EU'), True)
    """

    def __init__(
        self,
        defs: Sequence[TerritoryDef],
        dimensions: Mapping[str, MemberHierarchy],
        parents: Mapping[str, str | None] | None = None,
    ) -> None:
        """``parents``: every territory's parent key, where ``defs`` are only some of the model's (the
        ones to compare; asking for another's definition is a ``KeyError``)."""
        self._defs = {d.key: d for d in defs}
        self._parents = dict(parents) if parents is not None else {d.key: d.parent_key for d in defs}
        self._dims = ordered([*Dimension, *dimensions])
        self._hierarchies = dict(dimensions)
        self._paths: dict[str, tuple[str, ...]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._parents

    def __iter__(self) -> Iterator[str]:
        return iter(self._parents)

    def keys(self) -> Sequence[str]:
        return tuple(self._parents)

    def territory(self, key: str) -> TerritoryDef:
        return self._defs[key]

    def path(self, key: str) -> tuple[str, ...]:
        found = self._paths.get(key)
        if found is None:
            parent = self._parents[key]
            found = self._paths[key] = (key,) if parent is None else (*self.path(parent), key)
        return found

    def hierarchy(self, dimension: str) -> MemberHierarchy:
        return self._hierarchies.get(dimension, _EMPTY)

    @property
    def dimensions(self) -> tuple[str, ...]:
        return self._dims


def changed_territories(old: Model, new: Model) -> frozenset[str]:
    """Territories that differ (or exist in one model only), with everything below them in either."""
    keys = set(old.keys()) | set(new.keys())
    differing = {k for k in keys if k not in old or k not in new or old.territory(k) != new.territory(k)}
    return with_descendants(differing, old, new)


def with_descendants(keys: Iterable[str], *models: Model) -> frozenset[str]:
    """``keys`` and every territory below one of them in one of ``models``."""
    wanted = set(keys)
    below = {k for model in models for k in model if not wanted.isdisjoint(model.path(k))}
    return frozenset(wanted | below)


def candidate_members(snapshots: Iterable[Model], keys: Iterable[str]) -> dict[str, set[str]] | None:
    """Per dimension, the members a lead must carry (on at least one dimension) to possibly match one of
    ``keys`` in one of ``snapshots``; ``None`` when a territory restricts nothing (every lead may)."""
    out: dict[str, set[str]] = {}
    wanted = set(keys)
    for snapshot in snapshots:
        for key in sorted(wanted & set(snapshot.keys())):
            best: tuple[str, set[str]] | None = None
            best_share = 1.0
            for dimension, coverage in snapshot.territory(key).coverage.items():
                if not coverage.include:
                    continue
                hierarchy = snapshot.hierarchy(dimension)
                members: set[str] = set()
                for member in coverage.include:
                    members.add(member)
                    if member in hierarchy:
                        members |= hierarchy.descendants(member)
                share = len(members) / max(1, len(hierarchy))  # the share of its dimension it covers
                if best is None or share < best_share:
                    best, best_share = (dimension, members), share
            if best is None:
                return None
            out.setdefault(best[0], set()).update(best[1])
    return out
