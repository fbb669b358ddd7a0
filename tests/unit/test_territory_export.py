"""Tree views (pure): JSON, Mermaid, DOT, terminal text and HTML show every node, escape names, and
never reference anything external."""

from __future__ import annotations

import re

from territory import export
from territory.dimensions import Dimension, MemberHierarchy
from territory.geography import geography_parents
from territory.snapshot import TerritorySnapshot
from territory.tree import Coverage, TeamMember, TerritoryDef

CAM = "channel_account_manager"
DIMS = {Dimension.GEOGRAPHY: MemberHierarchy(geography_parents(), name="geography")}


def _snapshot() -> TerritorySnapshot:
    geo = Dimension.GEOGRAPHY
    return TerritorySnapshot(
        "7.3",
        [
            TerritoryDef("WW", None, "Worldwide", "global"),
            TerritoryDef(
                "APAC", "WW", 'Asia <Pacific> & "Co"', "region", coverage={geo: Coverage.of(["APAC"])}
            ),
            TerritoryDef(
                "JP",
                "APAC",
                "Japan",
                "country",
                (TeamMember("cam-jp", CAM),),
                coverage={geo: Coverage.of(["JP"])},
            ),
            TerritoryDef("JP-E", "JP", "Japan east", "area", coverage={geo: Coverage.of(["JP"])}),
            TerritoryDef("AU", "APAC", "Australia", "country", coverage={geo: Coverage.of(["AU"])}),
        ],
        DIMS,
    )


def test_json_tree_nests_children_with_inherited_cam_and_lead_counts():
    root = export.tree_json(_snapshot(), {"JP-E": 3})
    assert root is not None and root["key"] == "WW"
    apac = root["children"][0]
    assert [c["key"] for c in apac["children"]] == ["AU", "JP"]
    jp_e = apac["children"][1]["children"][0]
    assert jp_e["cam"] == {"user": "cam-jp", "territory": "JP", "inherited": True}
    assert jp_e["lead_count"] == 3 and jp_e["depth"] == 3
    assert apac["coverage"] == {"geography": {"include": ["APAC"], "exclude": []}}
    assert export.tree_json(None, {}) is None


def test_mermaid_and_dot_hold_every_node_and_escape_labels():
    snap = _snapshot()
    mermaid = export.to_mermaid(snap)
    dot = export.to_dot(snap)
    assert mermaid.count(" --> ") == 4 and dot.count(" -> ") == 4
    assert "Asia #lt;Pacific#gt; #amp; #quot;Co#quot;" in mermaid
    assert 'Asia <Pacific> & \\"Co\\"' in dot
    for key in ("WW", "APAC", "JP", "JP-E", "AU"):
        assert f"{key}: " in mermaid and f'"{key}" [label=' in dot


def test_text_tree_draws_branches_and_says_where_the_cam_comes_from():
    text = export.to_text(_snapshot())
    lines = text.splitlines()
    assert lines[0].startswith("WW  Worldwide [global]")
    assert lines[2].startswith("    ├── AU  Australia")
    assert "no CAM" in lines[2]
    assert lines[3].startswith("    └── JP  Japan")
    assert lines[4].startswith("        └── JP-E  Japan east") and "CAM cam-jp (from JP)" in lines[4]
    assert export.to_text(None) == "(no territories)\n"


def test_html_is_collapsible_escaped_and_self_contained():
    html = export.to_html(
        _snapshot(), {}, model_id=7, model_name="Plan <b>", model_status="planning", model_version=3
    )
    assert html.count("<details") == 5 and html.count("</details>") == 5
    assert "Plan &lt;b&gt;" in html and "Asia &lt;Pacific&gt;" in html
    assert not re.search(r"https?://", html)
    assert "@import" not in html and "url(" not in html
    # the page's own script, inline (nothing loaded): without a nonce it carries none
    assert re.findall(r"<script[^>]*>", html) == ["<script>"] and "src=" not in html
    nonced = export.to_html(
        _snapshot(), {}, model_id=7, model_name="m", model_status="planning", model_version=3, nonce="abc"
    )
    assert '<script nonce="abc">' in nonced and '<style nonce="abc">' in nonced


def test_deep_tree_renders_without_recursion():
    defs = [TerritoryDef("T0", None, "root", "level")]
    defs += [TerritoryDef(f"T{i}", f"T{i - 1}", f"level {i}", "level") for i in range(1, 3000)]
    snap = TerritorySnapshot("1.1", defs, DIMS)
    assert export.to_text(snap).count("\n") == 3000
    node = export.tree_json(snap, {})
    depth = 0
    while node and node["children"]:
        node, depth = node["children"][0], depth + 1
    assert depth == 2999
    html = export.to_html(snap, {}, model_id=1, model_name="deep", model_status="planning", model_version=1)
    assert html.count("</details>") == 3000
