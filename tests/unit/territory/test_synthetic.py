from __future__ import annotations

from territory.dimensions import Dimension
from territory.snapshot import TerritorySnapshot
from territory.synthetic import generate_leads, generate_model
from territory.tree import CHANNEL_ACCOUNT_MANAGER, validate_tree


def test_generated_model_is_one_valid_tree_without_warnings():
    defs, dims = generate_model(500, depth=6, seed=3)
    assert len(defs) == 500
    assert validate_tree(defs, dims) == []
    assert set(dims) == {Dimension.CUSTOMER, Dimension.PROGRAM, Dimension.PRODUCT, Dimension.GEOGRAPHY}


def test_generated_model_reaches_the_requested_depth():
    defs, dims = generate_model(2_000, depth=7, seed=1)
    snap = TerritorySnapshot("g", defs, dims)
    assert max(snap.depth(k) for k in snap) == 7


def test_generated_model_is_the_same_for_the_same_seed():
    assert generate_model(200, seed=9)[0] == generate_model(200, seed=9)[0]
    assert generate_model(200, seed=9)[0] != generate_model(200, seed=10)[0]


def test_most_but_not_all_territories_have_a_cam_and_some_exclude():
    defs, _ = generate_model(1_000, depth=6, seed=5)
    with_cam = sum(any(m.role == CHANNEL_ACCOUNT_MANAGER for m in d.team) for d in defs)
    assert 0.7 * len(defs) < with_cam < len(defs)
    assert any(c.exclude for d in defs for c in d.coverage.values())


def test_loose_models_warn_about_children_covering_more_than_parents():
    defs, dims = generate_model(300, depth=5, seed=2, loose_rate=0.2)
    assert validate_tree(defs, dims)


def test_generated_leads_mostly_reach_below_the_root():
    defs, dims = generate_model(1_000, depth=6, seed=4)
    snap = TerritorySnapshot("g", defs, dims)
    leads = generate_leads(dims, 200, seed=4)
    assert sum(snap.match(lead).depth or 0 for lead in leads) > 200
