"""Incremental realignment without a database: every lead whose lowest territories, CAM or role holders
differ between two model versions carries a member the changed coverage names (so an incremental plan,
which evaluates only those leads, misses none). Hypothesis draws random trees, random small changes and
random leads."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from registration.reassignment.realignment import candidate_members, changed_territories
from territory.dimensions import Dimension, MemberHierarchy
from territory.errors import TreeInvalid
from territory.snapshot import TerritorySnapshot
from territory.tree import Coverage, TeamMember, TerritoryDef

G, P = Dimension.GEOGRAPHY, Dimension.PRODUCT
HIERARCHIES = {
    G: MemberHierarchy({"EMEA": None, "DE": "EMEA", "FR": "EMEA", "APAC": None, "JP": "APAC", "AU": "APAC"}),
    P: MemberHierarchy({"net": None, "sw": "net", "rt": "net", "sec": None, "fw": "sec", "id": "sec"}),
}
MEMBERS = {G: ["EMEA", "DE", "FR", "APAC", "JP", "AU"], P: ["net", "sw", "rt", "sec", "fw", "id"]}
LEAVES = {G: ["DE", "FR", "JP", "AU"], P: ["sw", "rt", "fw", "id"]}
CAMS = ["cam-a", "cam-b", "cam-c", None]

coverages = st.fixed_dictionaries(
    {},
    optional={
        G: st.sampled_from(MEMBERS[G]).map(lambda m: Coverage.of([m])),
        P: st.sampled_from(MEMBERS[P]).map(lambda m: Coverage.of([m])),
    },
)


@st.composite
def models(draw: st.DrawFn) -> list[TerritoryDef]:
    n = draw(st.integers(1, 7))
    defs = [TerritoryDef("T0", None, "root", "global")]
    for i in range(1, n + 1):
        parent = f"T{draw(st.integers(0, i - 1))}"
        cam = draw(st.sampled_from(CAMS))
        team = (TeamMember(cam, "channel_account_manager"),) if cam else ()
        defs.append(TerritoryDef(f"T{i}", parent, f"t{i}", "x", team, coverage=draw(coverages)))
    return defs


@st.composite
def changed(draw: st.DrawFn, defs: list[TerritoryDef]) -> list[TerritoryDef]:
    out = list(defs)
    for _ in range(draw(st.integers(1, 2))):
        i = draw(st.integers(0, len(out) - 1))
        kind = draw(st.sampled_from(["team", "coverage", "add", "remove", "parent"]))
        if kind == "team":
            cam = draw(st.sampled_from(CAMS))
            out[i] = replace(out[i], team=(TeamMember(cam, "channel_account_manager"),) if cam else ())
        elif kind == "coverage" and out[i].parent_key is not None:
            out[i] = replace(out[i], coverage=draw(coverages))
        elif kind == "add":
            out.append(TerritoryDef(f"N{len(out)}", out[i].key, "new", "x", coverage=draw(coverages)))
        elif kind == "remove" and out[i].parent_key is not None and len(out) > 2:
            gone = out.pop(i)
            out = [replace(d, parent_key=gone.parent_key) if d.parent_key == gone.key else d for d in out]
        elif kind == "parent" and out[i].parent_key is not None:
            ancestors_free = [d.key for d in out if d.key != out[i].key]
            out[i] = replace(out[i], parent_key=draw(st.sampled_from(ancestors_free)))
    return out


def _snapshot(defs: list[TerritoryDef]) -> TerritorySnapshot | None:
    try:
        return TerritorySnapshot("v", defs, HIERARCHIES)
    except TreeInvalid:  # a change that made a cycle: not a model anyone can save
        return None


def _assignment(snapshot: TerritorySnapshot, facts: dict[str, str]) -> tuple[object, ...]:
    lowest = snapshot.match(facts).lowest
    return lowest, tuple(snapshot.cam_for(k) for k in lowest), tuple(snapshot.path(k) for k in lowest)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_every_lead_whose_assignment_changes_carries_a_member_of_the_changed_coverage(
    data: st.DataObject,
) -> None:
    old_defs = data.draw(models())
    new_defs = data.draw(changed(old_defs))
    old, new = _snapshot(old_defs), _snapshot(new_defs)
    if old is None or new is None:
        return
    members = candidate_members((old, new), changed_territories(old, new))
    for geography in LEAVES[G]:
        for product in LEAVES[P]:
            facts = {"geography": geography, "product": product}
            if _assignment(old, facts) == _assignment(new, facts):
                continue
            assert members is None or (
                geography in members.get(G, set()) or product in members.get(P, set())
            ), (facts, _assignment(old, facts), _assignment(new, facts), members)


def test_an_unchanged_model_names_no_territory() -> None:
    defs = [
        TerritoryDef("WW", None, "world", "global"),
        TerritoryDef("JP", "WW", "japan", "x", coverage={G: Coverage.of(["JP"])}),
    ]
    snapshot = TerritorySnapshot("v", defs, HIERARCHIES)
    assert changed_territories(snapshot, TerritorySnapshot("w", defs, HIERARCHIES)) == frozenset()
    assert candidate_members((snapshot,), frozenset()) == {}
