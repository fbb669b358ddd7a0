"""Tree views of part of a large tree (root= and depth=) and Mermaid's text limit."""

from __future__ import annotations

import pytest

from territory import export
from territory.snapshot import TerritorySnapshot
from territory.synthetic import generate_model


@pytest.fixture(scope="module")
def snap() -> TerritorySnapshot:
    defs, dims = generate_model(1_500, depth=5, seed=2)
    return TerritorySnapshot("v1", defs, dims)


def test_a_mermaid_diagram_over_the_default_limit_says_so_and_suggests_a_subtree(snap):
    text = export.to_mermaid(snap, {})
    assert len(text) > export.MERMAID_MAX_TEXT
    first = text.splitlines()[0]
    assert first.startswith("%% This diagram is") and "root=" in first and "depth=" in first
    suggested = first.split("(e.g. root=")[1].split(")")[0]
    assert suggested in snap.children(snap.root)

    part = export.to_mermaid(snap, {}, export.View(root=suggested, depth=1))
    assert len(part) < export.MERMAID_MAX_TEXT
    assert part.startswith("flowchart TD")
    assert part.count(" --> ") == len(snap.children(suggested))


def test_root_and_depth_cut_the_json_tree_and_say_what_is_left_out(snap):
    child = snap.children(snap.root)[0]
    tree = export.tree_json(snap, {}, export.View(root=child, depth=1))
    assert tree is not None and tree["key"] == child
    assert [c["key"] for c in tree["children"]] == list(snap.children(child))
    grandchild = tree["children"][0]
    assert grandchild["children"] == []
    assert grandchild["children_not_shown"] == len(snap.children(grandchild["key"])) > 0
    whole = export.tree_json(snap, {})
    assert whole is not None and "children_not_shown" not in whole


def test_the_text_tree_of_a_subtree_starts_at_its_root(snap):
    child = snap.children(snap.root)[1]
    lines = export.to_text(snap, {}, export.View(root=child, depth=0)).splitlines()
    assert len(lines) == 1 and lines[0].startswith(child)
    assert f"{len(snap.children(child))} more below" in lines[0]
