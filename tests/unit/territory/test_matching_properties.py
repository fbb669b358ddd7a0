"""The snapshot agrees with a brute-force matcher on random hierarchies, models and leads."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory.dimensions import Dimension, MemberHierarchy
from territory.snapshot import TerritorySnapshot
from territory.synthetic import generate_leads, generate_model
from territory.tree import Coverage, TerritoryDef

from .brute_force import brute_force_match

DIMENSIONS = list(Dimension)


@st.composite
def hierarchies(draw: st.DrawFn, dim: Dimension) -> MemberHierarchy:
    size = draw(st.integers(min_value=1, max_value=7))
    names = [f"{dim.value[:2]}{i}" for i in range(size)]
    parents: dict[str, str | None] = {}
    for i, name in enumerate(names):
        parents[name] = draw(st.none() | st.sampled_from(names[:i])) if i else None
    return MemberHierarchy(parents, name=dim.value)


@st.composite
def coverages(draw: st.DrawFn, members: list[str]) -> Coverage:
    pick = st.lists(st.sampled_from(members), max_size=3, unique=True)
    include = draw(st.one_of(st.just([]), pick))
    exclude = draw(st.one_of(st.just([]), st.just([]), pick))
    return Coverage.of(include, exclude)


@st.composite
def models(draw: st.DrawFn) -> tuple[list[TerritoryDef], dict[Dimension, MemberHierarchy]]:
    dims = {d: draw(hierarchies(d)) for d in DIMENSIONS}
    n = draw(st.integers(min_value=1, max_value=14))
    keys = draw(st.permutations([f"T{i:02d}" for i in range(n)]))  # key order differs from tree order
    defs = []
    for i, key in enumerate(keys):
        parent = draw(st.sampled_from(keys[:i])) if i else None
        restricted = draw(st.lists(st.sampled_from(DIMENSIONS), max_size=3, unique=True))
        coverage = {d: draw(coverages(sorted(dims[d]))) for d in restricted}
        defs.append(TerritoryDef(key, parent, key, "channel", coverage=coverage))
    return defs, dims


@st.composite
def leads(draw: st.DrawFn, dims: dict[Dimension, MemberHierarchy]) -> dict[str, str]:
    lead = {}
    for d, h in dims.items():
        choice = draw(st.sampled_from(["member", "member", "member", "missing", "unknown"]))
        if choice == "member":
            lead[d.value] = draw(st.sampled_from(sorted(h)))
        elif choice == "unknown":
            lead[d.value] = "zz-unknown"
    return lead


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), model=models())
def test_snapshot_agrees_with_brute_force_on_random_models(data, model):
    defs, dims = model
    snap = TerritorySnapshot("p", defs, dims)
    for _ in range(5):
        lead = data.draw(leads(dims))
        matched, lowest = brute_force_match(defs, lead, dims)
        result = snap.match(lead)
        assert list(result.matched) == matched
        assert list(result.lowest) == lowest


@settings(max_examples=40, deadline=None)
@given(data=st.data(), model=models())
def test_every_lowest_match_is_at_the_deepest_depth_of_all_matches(data, model):
    defs, dims = model
    snap = TerritorySnapshot("p", defs, dims)
    result = snap.match(data.draw(leads(dims)))
    if not result.matched:
        assert result.lowest == () and result.depth is None
        return
    depths = [snap.depth(k) for k in result.matched]
    assert result.depth == max(depths)
    assert result.lowest == tuple(k for k in result.matched if snap.depth(k) == max(depths))
    assert set(result.lowest) <= set(result.matched)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), model=models())
def test_explain_says_matched_exactly_for_matches(data, model):
    defs, dims = model
    snap = TerritorySnapshot("p", defs, dims)
    lead = data.draw(leads(dims))
    result = snap.match(lead)
    for d in defs:
        reason = snap.explain(lead, d.key).reason
        assert (reason in ("matched", "matched_not_lowest")) == (d.key in result.matched)
        assert (reason == "matched") == (d.key in result.lowest)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    n=st.integers(min_value=1, max_value=300),
    depth=st.integers(min_value=0, max_value=9),
    loose=st.sampled_from([0.0, 0.3]),
)
def test_snapshot_agrees_with_brute_force_on_generated_models(seed, n, depth, loose):
    defs, dims = generate_model(n, depth=depth, seed=seed, n_customers=30, loose_rate=loose)
    snap = TerritorySnapshot("g", defs, dims)
    for lead in generate_leads(dims, 40, seed=seed, missing_rate=0.1, unknown_rate=0.05):
        matched, lowest = brute_force_match(defs, lead, dims)
        result = snap.match(lead)
        assert (list(result.matched), list(result.lowest)) == (matched, lowest)
