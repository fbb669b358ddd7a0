"""A deliberately naive matcher: every territory, every dimension, straight from the definitions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from territory.dimensions import Dimension, MemberHierarchy
from territory.tree import TerritoryDef


def _ancestors_or_self(hierarchy: MemberHierarchy | None, member: str) -> set[str]:
    if hierarchy is None or member not in hierarchy:
        return {member}
    found: set[str] = set()
    cur: str | None = member
    while cur is not None:
        found.add(cur)
        cur = hierarchy.parent(cur)
    return found


def territory_matches(
    d: TerritoryDef, facts: Mapping[str, str], dimensions: Mapping[str, MemberHierarchy]
) -> bool:
    for dim in [*Dimension, *sorted(set(d.coverage) - set(Dimension))]:  # declared dimensions too
        cov = d.coverage.get(dim)
        if cov is None:
            continue
        member = facts.get(dim)
        if member is None:
            if cov.include:
                return False
            continue
        up = _ancestors_or_self(dimensions.get(dim), member)
        if cov.include and not (up & cov.include):
            return False
        if up & cov.exclude:
            return False
    return True


def depth_first_keys(defs: Sequence[TerritoryDef]) -> list[str]:
    kids: dict[str | None, list[str]] = {}
    for d in defs:
        kids.setdefault(d.parent_key, []).append(d.key)
    out: list[str] = []

    def visit(key: str) -> None:
        out.append(key)
        for k in sorted(kids.get(key, [])):
            visit(k)

    for root in sorted(kids.get(None, [])):
        visit(root)
    return out


def brute_force_match(
    defs: Sequence[TerritoryDef], facts: Mapping[str, str], dimensions: Mapping[str, MemberHierarchy]
) -> tuple[list[str], list[str]]:
    """Return (all matches, lowest-level matches), both in depth-first order (children sorted by key)."""
    by_key = {d.key: d for d in defs}

    def depth(key: str) -> int:
        parent = by_key[key].parent_key
        return 0 if parent is None else 1 + depth(parent)

    matched = [k for k in depth_first_keys(defs) if territory_matches(by_key[k], facts, dimensions)]
    if not matched:
        return [], []
    deepest = max(depth(k) for k in matched)
    return matched, [k for k in matched if depth(k) == deepest]
