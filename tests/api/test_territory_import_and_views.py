"""Territory CSV import (API and CLI), the hierarchy views and the ``prm territories`` commands."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from territory.models import Territory
from tests.api.territory_support import add_reference_data, create_model, small_tree

TERRITORIES = """key,parent_key,name,type,partner
WW,,Worldwide,global,
APAC,WW,Asia Pacific,region,
JP,APAC,Japan,country,
JP-SEC,JP,Japan security,product_line,
JP-A,JP,Partner A Japan,partner,partner-a
"""
COVERAGE = """territory_key,dimension,member,mode
APAC,geography,APAC,include
JP,geography,JP,include
JP-SEC,geography,JP,include
JP-SEC,product,security,include
JP-A,geography,JP,include
JP-A,partner,partner-a,include
JP-A,customer,C-1-1,exclude
"""
MEMBERS = """territory_key,user,role
JP,cam-1,channel_account_manager
JP-SEC,cam-2,channel_account_manager
"""


@pytest.fixture
def admin(world, db):
    add_reference_data(db)
    return world["admin"].headers


def _import(client, headers, model_id, etag, **files):
    return client.post(
        f"/v1/territory-models/{model_id}/import", json=files, headers={**headers, "If-Match": etag}
    )


def _count(db, model_id):
    with db.transaction() as session:
        return session.scalar(select(func.count(Territory.id)).where(Territory.model_id == model_id))


def test_import_replaces_the_model_content(client, admin, db):
    model_id, etag = small_tree(client, admin)
    resp = _import(client, admin, model_id, etag, territories=TERRITORIES, coverage=COVERAGE, members=MEMBERS)
    assert resp.status_code == 200, resp.get_json()
    report = resp.get_json()
    assert (report["territories"], report["coverage_rows"], report["members"]) == (5, 7, 2)
    assert resp.headers["ETag"] == f'"{model_id}.{report["model_version"]}"'
    assert _count(db, model_id) == 5
    tree = client.get(f"/v1/territory-models/{model_id}/tree", headers=admin).get_json()
    jp = tree["root"]["children"][0]["children"][0]
    assert [c["key"] for c in jp["children"]] == ["JP-A", "JP-SEC"]
    assert jp["children"][0]["partner"] == "partner-a"
    assert jp["children"][0]["coverage"]["customer"] == {"include": [], "exclude": ["C-1-1"]}


def test_import_reports_every_error_with_file_row_column_and_writes_nothing(client, admin, db):
    model_id, etag = small_tree(client, admin)
    territories = "key,parent_key,name,type\nWW,,World,global\nJP,APCA,Japan,country\nJP,WW,Again,country\nX,,Second root,region\n"
    coverage = "territory_key,dimension,member,mode\nJP,geografy,JP,include\nJP,product,securty,include\nJPX,geography,JP,both\n"
    members = "territory_key,user,role\nJP,cam-3,channel_account_manager\nJP,integration,sales_rep\n"
    resp = _import(client, admin, model_id, etag, territories=territories, coverage=coverage, members=members)
    assert resp.status_code == 422
    errors = {e["pointer"]: e["detail"] for e in resp.get_json()["errors"]}
    assert all(re.fullmatch(r"(territories|coverage|members)\.csv:\d+:\d+", p) for p in errors)
    assert "unknown territory 'APCA'" in errors["territories.csv:3:2"]
    assert "already on row 3" in errors["territories.csv:4:1"]
    assert "a second root" in errors["territories.csv:5:2"]
    assert "did you mean 'geography'" in errors["coverage.csv:2:2"]
    assert "did you mean 'security'" in errors["coverage.csv:3:3"]
    assert "did you mean 'JP'" in errors["coverage.csv:4:1"]
    assert "include, exclude" in errors["coverage.csv:4:4"]
    assert "unknown internal user 'cam-3'" in errors["members.csv:2:2"]
    assert "does not hold the role 'sales_rep'" in errors["members.csv:3:3"]
    assert len(errors) == 9
    assert _count(db, model_id) == 4
    jp = client.get(f"/v1/territory-models/{model_id}/territories/JP", headers=admin)
    assert jp.headers["ETag"] == etag


def test_import_refuses_a_bad_header(client, admin):
    model_id, etag = create_model(client, admin)
    resp = _import(client, admin, model_id, etag, territories="key,parnt,name\nWW,,World\n")
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0] == {
        "pointer": "territories.csv:1:2",
        "detail": "unknown column 'parnt' (expected key, parent_key, name, type, partner); "
        "did you mean 'partner', 'parent_key'?",
    }


def test_views_show_every_node(client, admin):
    model_id, _ = small_tree(client, admin)
    base = f"/v1/territory-models/{model_id}/tree"
    mermaid = client.get(f"{base}?format=mermaid", headers=admin)
    assert mermaid.status_code == 200 and mermaid.mimetype == "text/plain"
    dot = client.get(f"{base}?format=dot", headers=admin).get_data(as_text=True)
    html_v1 = client.get(f"{base}?format=html", headers=admin)
    page = client.get(f"/territory-models/{model_id}/tree.html", headers=admin)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    # the same page; each response has its own CSP nonce
    nonce = re.search(r"'nonce-([^']+)'", page.headers["Content-Security-Policy"]).group(1)
    v1_nonce = re.search(r"'nonce-([^']+)'", html_v1.headers["Content-Security-Policy"]).group(1)
    assert nonce != v1_nonce
    assert html.replace(nonce, "N") == html_v1.get_data(as_text=True).replace(v1_nonce, "N")
    assert mermaid.get_data(as_text=True).startswith("flowchart TD")
    assert dot.startswith("digraph territories {")
    for key in ("WW", "APAC", "JP", "JP-NET"):
        assert key in mermaid.get_data(as_text=True) and f'"{key}"' in dot and f'id="t-{key}"' in html
    assert "<details" in html and "cam-1" in html and "CAM cam-1 (from JP)" in html
    assert "0 leads" in html
    assert not re.search(r"https?://", html), "the page must reference nothing external"
    # one script of our own, admitted by the response's nonce alone (no src, no inline handlers)
    assert re.findall(r"<script[^>]*>", html) == [f'<script nonce="{nonce}">']
    assert not re.search(r"\son[a-z]+=", html)
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]


def test_tree_page_needs_an_internal_api_key(client, admin, world):
    model_id, _ = small_tree(client, admin)
    assert client.get(f"/territory-models/{model_id}/tree.html").status_code == 401
    assert (
        client.get(f"/territory-models/{model_id}/tree.html", headers=world["cam_1"].headers).status_code
        == 200
    )


def test_empty_model_tree_views(client, admin):
    model_id, _ = create_model(client, admin)
    body = client.get(f"/v1/territory-models/{model_id}/tree", headers=admin).get_json()
    assert body["root"] is None and body["model"]["territory_count"] == 0
    html = client.get(f"/v1/territory-models/{model_id}/tree?format=html", headers=admin).get_data(
        as_text=True
    )
    assert "no territories yet" in html


def test_cli_import_tree_and_activate(app, admin, client, tmp_path):
    model_id, _ = create_model(client, admin)
    files = {}
    for name, text in (("territories", TERRITORIES), ("coverage", COVERAGE), ("members", MEMBERS)):
        files[name] = tmp_path / f"{name}.csv"
        files[name].write_text(text)
    runner = app.test_cli_runner()
    args = ["territories", "import", str(model_id)]
    for name, path in files.items():
        args += [f"--{name}", str(path)]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "5 territories, 7 coverage rows, 2 team members" in result.output

    result = runner.invoke(args=["territories", "activate", str(model_id)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["territories", "tree"])
    assert result.exit_code == 0, result.output
    assert "└── JP-SEC  Japan security" in result.output
    assert "CAM cam-1 (from JP)" in result.output
    result = runner.invoke(args=["territories", "tree", str(model_id), "--format", "dot"])
    assert result.output.startswith("digraph territories")
    result = runner.invoke(args=["territories", "list"])
    assert f"{model_id}\tactive\t5" in result.output


def test_cli_import_errors_list_file_row_column(app, admin, client, tmp_path):
    model_id, _ = create_model(client, admin)
    bad = tmp_path / "t.csv"
    bad.write_text("key,parent_key,name\nWW,,World\nJP,WWW,Japan\n")
    result = app.test_cli_runner().invoke(
        args=["territories", "import", str(model_id), "--territories", str(bad)]
    )
    assert result.exit_code != 0
    assert f"{bad}:3:2: parent_key: unknown territory 'WWW'; did you mean 'WW'?" in result.output


def test_cli_activation_of_an_active_model_fails(app, admin, client):
    model_id, _ = small_tree(client, admin)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["territories", "activate", str(model_id)]).exit_code == 0
    result = runner.invoke(args=["territories", "activate", str(model_id)])
    assert result.exit_code != 0 and "cannot activate a model that is active" in result.output


def test_demo_seed_creates_an_active_five_level_model_once(app, db, tmp_path):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "seed", "--keys-file", str(tmp_path / "keys.txt")])
    assert result.exit_code == 0, result.output
    assert "(active): " in result.output
    again = runner.invoke(args=["demo", "seed", "--keys-file", str(tmp_path / "keys.txt")])
    assert "already present" in again.output
    from territory.repository import active_snapshot

    snap = active_snapshot(db)
    assert max(snap.depth(k) for k in snap) >= 4
    assert not snap.warnings
    lowest = snap.lowest_matches({"geography": "JP", "product": "fw-1", "program": "resell"})
    assert lowest == ("JP-SEC-RESELL",)
    assert snap.cam_for("JP-SEC-RESELL").user == "cam-jp-security"
    assert snap.cam_for("JP").user == "cam-jp"
