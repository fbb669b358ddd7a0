"""The near misses a bounded trace explains are exactly the top of a full ranking, on random models.

``TerritorySnapshot.candidates`` scores one by one only the children the lead's members reach through an
index and takes the others in a precomputed order. The reference here explains every near miss on its
own (``explain``), ranks them all (most dimensions met, fewest failed, depth-first) and counts the rest by
reason: the bounded answer must be its top ``closest``, with the same scores and counts.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory.dimensions import Dimension, MemberHierarchy
from territory.snapshot import Reason, TerritorySnapshot
from territory.tree import Coverage, TerritoryDef

from .test_matching_properties import DIMENSIONS, coverages, hierarchies, leads, models

MATCHED = (Reason.MATCHED, Reason.MATCHED_NOT_LOWEST)


@st.composite
def wide_models(draw: st.DrawFn) -> tuple[list[TerritoryDef], dict[Dimension, MemberHierarchy]]:
    """A root (restricted or not) with many children, some of them with children of their own."""
    dims = {d: draw(hierarchies(d)) for d in DIMENSIONS}

    def coverage() -> dict[str, Coverage]:
        restricted = draw(st.lists(st.sampled_from(DIMENSIONS), max_size=3, unique=True))
        return {d: draw(coverages(sorted(dims[d]))) for d in restricted}

    defs = [TerritoryDef("R", None, "root", "channel", coverage=coverage())]
    n = draw(st.integers(min_value=1, max_value=40))
    for i in range(n):
        defs.append(TerritoryDef(f"C{i:02d}", "R", "child", "channel", coverage=coverage()))
    for j in range(draw(st.integers(min_value=0, max_value=12))):
        parent = f"C{draw(st.integers(min_value=0, max_value=n - 1)):02d}"
        defs.append(TerritoryDef(f"{parent}-{j:02d}", parent, "grandchild", "channel", coverage=coverage()))
    return defs, dims


def _reference(snap: TerritorySnapshot, lead: dict[str, str], closest: int | None):
    """Every near miss explained alone and ranked; the top ``closest`` shown, the rest counted."""
    result = snap.match(lead)
    matched = set(result.matched)
    if matched:
        near = [c for k in result.matched for c in snap.children(k) if c not in matched]
    else:
        near = [snap.root]
    order = {k: i for i, k in enumerate(snap.keys())}
    alone = {k: snap.explain(lead, k) for k in near}
    ranked = sorted(
        near, key=lambda k: (-(alone[k].dimensions_matched or 0), len(alone[k].dimensions_failed), order[k])
    )
    shown = ranked if closest is None else ranked[:closest]
    rest = ranked[len(shown) :]
    reasons = dict(sorted(Counter(str(alone[k].reason) for k in rest).items()))
    explained = sorted(matched | set(shown), key=order.__getitem__)
    return explained, alone, len(rest), reasons


def _check(snap: TerritorySnapshot, lead: dict[str, str], closest: int | None) -> None:
    found = snap.candidates(lead, closest)
    assert snap.candidates(lead, closest, match=snap.match(lead)) == found  # the caller's match, reused
    explained, alone, omitted, reasons = _reference(snap, lead, closest)
    assert [e.territory for e in found.explained] == explained
    assert (found.omitted, found.omitted_reasons) == (omitted, reasons)
    for e in found.explained:
        if e.reason in MATCHED:
            continue
        a = alone[e.territory]
        assert (e.reason, e.dimension, e.dimensions_matched, e.dimensions_failed) == (
            a.reason,
            a.dimension,
            a.dimensions_matched,
            a.dimensions_failed,
        )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), model=wide_models())
def test_the_bounded_near_misses_are_the_top_of_the_full_ranking_on_wide_models(data, model):
    defs, dims = model
    snap = TerritorySnapshot("p", defs, dims)
    for _ in range(4):
        lead = data.draw(leads(dims))
        for closest in (0, 1, 3, 10, None):
            _check(snap, lead, closest)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), model=models())
def test_the_bounded_near_misses_are_the_top_of_the_full_ranking_on_any_tree(data, model):
    defs, dims = model
    snap = TerritorySnapshot("p", defs, dims)
    for _ in range(4):
        lead = data.draw(leads(dims))
        for closest in (0, 2, None):
            _check(snap, lead, closest)
