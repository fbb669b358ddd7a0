"""The stored outline of a tree (territory/outline.py) shows exactly what the snapshot shows, in every
view, after a round trip through its stored JSON form."""

from __future__ import annotations

import json

import pytest

from territory import export
from territory.outline import FORMAT, TreeOutline, from_document, outline_of, to_document
from territory.snapshot import TerritorySnapshot
from territory.synthetic import generate_model


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_stored_outline_renders_every_view_as_the_snapshot_does(seed):
    defs, dims = generate_model(400, depth=6, seed=seed, loose_rate=0.05)
    snapshot = TerritorySnapshot("1.1", defs, dims)
    stored = from_document(json.loads(json.dumps(to_document(outline_of(snapshot)))))
    assert isinstance(stored, TreeOutline) and stored.keys() == snapshot.keys()
    assert stored.warnings == snapshot.warnings and snapshot.warnings  # loose_rate makes some
    counts = {k: i % 3 for i, k in enumerate(snapshot.keys())}
    some = snapshot.keys()[len(snapshot) // 3]
    for view in (
        export.View(),
        export.View(depth=2),
        export.View(root=some),
        export.View(root=some, depth=1),
    ):
        assert export.to_text(stored, counts, view) == export.to_text(snapshot, counts, view)
        assert export.to_mermaid(stored, counts, view) == export.to_mermaid(snapshot, counts, view)
        assert export.to_dot(stored, counts, view) == export.to_dot(snapshot, counts, view)
        assert export.tree_json(stored, counts, view) == export.tree_json(snapshot, counts, view)
        page = {"model_id": 1, "model_name": "m", "model_status": "active", "model_version": 1, "view": view}
        assert export.to_html(stored, counts, **page) == export.to_html(snapshot, counts, **page)
    for key in snapshot:
        assert stored.cam_for(key) == snapshot.cam_for(key)
        assert stored.territory(key) == snapshot.territory(key)


def test_an_outline_of_another_format_is_refused_not_misread():
    defs, dims = generate_model(20, depth=3, seed=1)
    doc = to_document(outline_of(TerritorySnapshot("1.1", defs, dims)))
    doc["format"] = FORMAT + 1
    with pytest.raises(ValueError, match="format"):
        from_document(doc)
