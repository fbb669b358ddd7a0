"""``prm territories tree`` reads the outline stored for the model's version instead of rebuilding the
model in every new process (territory/repository.py ``tree_for_view``); an edit of the model, or of the
reference data, is never shown stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from territory import repository
from tests.api.approvals_support import ok
from tests.api.leads_support import Demo, load_demo
from tests.api.test_statement_counts import counted


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _tree_in_a_new_process(app, db, *args: str) -> tuple[str, list[str]]:
    """The command's output and its SQL, with nothing held in memory (as in a process of its own)."""
    repository.clear_caches()
    with counted(db) as c:
        result = app.test_cli_runner().invoke(args=["territories", "tree", *args])
    assert result.exit_code == 0, result.output
    return result.stdout, c.statements


def _builds(statements: list[str]) -> bool:
    """Whether the model was loaded to build a snapshot (its coverage rows were read)."""
    return any("FROM territory_coverage" in s for s in statements)


def test_the_cli_tree_reads_the_stored_outline_and_never_shows_it_stale(app, db, client, demo):
    first, statements = _tree_in_a_new_process(app, db)
    assert _builds(statements) and "JP-SEC-RESELL" in first
    again, statements = _tree_in_a_new_process(app, db)
    assert again == first and not _builds(statements)
    # every format reads it
    mermaid, statements = _tree_in_a_new_process(app, db, "--format", "mermaid")
    assert mermaid.startswith("flowchart TD") and not _builds(statements)

    # an edited planning model: the next call shows the edit (and stores it)
    admin = demo["admin"]
    created = client.post("/v1/territory-models", json={"name": "FY27", "clone_active": True}, headers=admin)
    model_id = str(created.get_json()["id"])
    before, _ = _tree_in_a_new_process(app, db, model_id)
    assert "Japan security resale " in before
    edited = client.patch(
        f"/v1/territory-models/{model_id}/territories/JP-SEC-RESELL",
        json={"name": "Japan security resale, renamed"},
        headers={**admin, "If-Match": created.headers["ETag"]},
    )
    ok(edited)
    after, statements = _tree_in_a_new_process(app, db, model_id)
    assert "Japan security resale, renamed" in after and _builds(statements)
    again, statements = _tree_in_a_new_process(app, db, model_id)
    assert again == after and not _builds(statements)

    # new reference data (a customer) may change what the tree warns about: built again
    customer = {"key": "C-NEW-1", "name": "New Co", "country": "JP"}
    assert client.post("/v1/customers", json=customer, headers=admin).status_code == 201
    again, statements = _tree_in_a_new_process(app, db, model_id)
    assert again == after and _builds(statements)


def test_the_api_tree_uses_the_stored_outline_after_a_restart(app, db, client, demo):
    admin = demo["admin"]
    first = client.get("/v1/territory-models/1/tree?format=text", headers=admin).get_data(as_text=True)
    repository.clear_caches()  # a restarted server holds no snapshot
    with counted(db) as c:
        again = client.get("/v1/territory-models/1/tree?format=text", headers=admin).get_data(as_text=True)
    assert again == first and not _builds(c.statements)
