"""The tree views count the open leads on each territory (one grouped query, territory/repository.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.approvals_support import act, ok
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo, submit


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _counts(client, demo: Demo) -> dict[str, int]:
    tree = ok(client.get("/v1/territory-models/1/tree", headers=demo["admin"]))
    counts: dict[str, int] = {}
    stack = [tree["root"]]
    while stack:
        node = stack.pop()
        counts[node["key"]] = node["lead_count"]
        stack.extend(node["children"])
    return counts


def test_a_pending_registration_counts_on_its_territory_until_it_is_withdrawn(client, demo):
    h = demo["northwind-user"]
    assert set(_counts(client, demo).values()) == {0}
    leads = [created(client, h, jp_security_lead(demo, name=f"Deal {i}")).get_json()["id"] for i in range(2)]
    for lead_id in leads:
        assert submit(client, h, lead_id).status_code == 200
    counts = _counts(client, demo)
    assert counts["JP-SEC-RESELL"] == 2
    assert {k: v for k, v in counts.items() if v} == {"JP-SEC-RESELL": 2}
    text = client.get("/v1/territory-models/1/tree?format=text", headers=demo["admin"]).get_data(as_text=True)
    assert "leads: 2" in text

    ok(act(client, h, leads[0], "withdraw", {"comment": "later"}))
    assert _counts(client, demo)["JP-SEC-RESELL"] == 1


def test_the_tree_endpoint_shows_a_subtree_to_a_depth_and_names_an_unknown_root(client, demo):
    admin = demo["admin"]
    body = ok(client.get("/v1/territory-models/1/tree?root=APAC&depth=1", headers=admin))
    assert body["root"]["key"] == "APAC"
    assert {c["key"] for c in body["root"]["children"]} >= {"JP"}
    jp = next(c for c in body["root"]["children"] if c["key"] == "JP")
    assert jp["children"] == [] and jp["children_not_shown"] > 0
    text = client.get("/v1/territory-models/1/tree?format=text&root=JP", headers=admin).get_data(as_text=True)
    assert text.splitlines()[0].startswith("JP ")
    missing = client.get("/v1/territory-models/1/tree?root=JPN", headers=admin)
    assert missing.status_code == 404
    assert "did you mean" in missing.get_json()["detail"] and "'JP'" in missing.get_json()["detail"]


def test_the_html_tree_opens_two_levels_and_takes_a_subtree(client, demo):
    import re

    admin = demo["admin"]
    page = client.get("/territory-models/1/tree.html", headers=admin)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    opened = set(re.findall(r'<details open[^>]*id="t-([^"]+)"', html))
    closed = set(re.findall(r'<details(?! open)[^>]*id="t-([^"]+)"', html))
    # the root and the regions open: the countries show, collapsed, and nothing deeper shows
    assert opened == {"WW", "AMER", "APAC", "EMEA"}
    assert {"JP", "JP-SEC-RESELL"} <= closed

    sub = client.get("/territory-models/1/tree.html?root=JP&depth=1", headers=admin).get_data(as_text=True)
    keys = re.findall(r'id="t-([^"]+)"', sub)
    assert keys[0] == "JP" and "WW" not in keys and "JP-SEC-RESELL" not in keys
    assert client.get("/territory-models/1/tree.html?depth=deep", headers=admin).status_code == 422
