"""Views of a territory tree (pure): nested JSON, Mermaid, Graphviz DOT, a terminal tree, an HTML page.

Each view shows every territory with its coverage, its team and its channel account manager (inherited
from the nearest ancestor when the territory has none of its own), plus a lead count per territory.
Every function takes the snapshot (``None`` for an empty model) and walks it without recursion, so a
deep tree cannot exhaust the stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from territory.dimensions import ordered
from territory.outline import TreeShape
from territory.tree import TerritoryDef

ROLE_LABELS = {
    "channel_account_manager": "CAM",
    "channel_sales_manager": "manager",
    "channel_sales_director": "director",
    "sales_rep": "rep",
}

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def coverage_summary(d: TerritoryDef) -> str:
    """One line saying what a territory covers, e.g. ``geography: JP; product: security (not fw-1)``.

    >>> from territory.dimensions import Dimension
    >>> from territory.tree import Coverage
    >>> coverage_summary(TerritoryDef("JP", "WW", "Japan", "country",
    ...     coverage={Dimension.GEOGRAPHY: Coverage.of(["JP"], ["JP-13"])}))
    'geography: JP (not JP-13)'
    """
    parts = []
    for dim in ordered(d.coverage):
        cov = d.coverage.get(dim)
        if cov is None or not (cov.include or cov.exclude):
            continue
        text = ", ".join(sorted(cov.include)) if cov.include else "any"
        if cov.exclude:
            text += f" (not {', '.join(sorted(cov.exclude))})"
        parts.append(f"{dim}: {text}")
    return "; ".join(parts) or "everything"


def team_summary(d: TerritoryDef) -> str:
    """The team as ``user (CAM), user (manager)``."""
    return ", ".join(f"{m.user} ({ROLE_LABELS.get(m.role, m.role)})" for m in d.team)


#: Mermaid's default ``maxTextSize``: a larger diagram is refused by the renderer.
MERMAID_MAX_TEXT = 50_000


@dataclass(frozen=True)
class View:
    """The part of the tree a view shows: the subtree under ``root`` (default: the whole tree), at most
    ``depth`` levels below it (default: all)."""

    root: str | None = None
    depth: int | None = None


_ALL = View()


def _order(snapshot: TreeShape, view: View = _ALL) -> tuple[str, ...]:
    """The keys in view in depth-first order, parents before children (a subtree is contiguous)."""
    keys = snapshot.keys()
    if view.root is None and view.depth is None:
        return keys
    root = view.root or snapshot.root
    top = snapshot.depth(root)
    limit = top + view.depth if view.depth is not None else None
    start = keys.index(root)
    out = [root]
    for key in keys[start + 1 :]:
        d = snapshot.depth(key)
        if d <= top:
            break
        if limit is None or d <= limit:
            out.append(key)
    return tuple(out)


def _children(snapshot: TreeShape, key: str, view: View, shown: set[str] | None) -> tuple[str, ...]:
    children = snapshot.children(key)
    return children if shown is None else tuple(c for c in children if c in shown)


def _hidden(snapshot: TreeShape, key: str, shown: set[str] | None) -> int:
    """How many children of ``key`` the view leaves out (below its depth)."""
    return 0 if shown is None else sum(1 for c in snapshot.children(key) if c not in shown)


def _cam(snapshot: TreeShape, key: str) -> dict[str, Any] | None:
    cam = snapshot.cam_for(key)
    return None if cam is None else {"user": cam.user, "territory": cam.territory, "inherited": cam.inherited}


def tree_json(
    snapshot: TreeShape | None, lead_counts: Mapping[str, int], view: View = _ALL
) -> dict[str, Any] | None:
    """The tree (or the view's part of it) as nested dicts (``None`` when the model is empty); children
    sorted by key; a node whose children the view leaves out says how many in ``children_not_shown``."""
    if snapshot is None:
        return None
    nodes: dict[str, dict[str, Any]] = {}
    order = _order(snapshot, view)
    shown = None if view == _ALL else set(order)
    for key in order:  # depth-first: a parent is always built before its children
        d = snapshot.territory(key)
        node: dict[str, Any] = {
            "key": d.key,
            "name": d.name,
            "type": d.type,
            "partner": d.partner,
            "depth": snapshot.depth(key),
            "coverage": {
                str(dim): {"include": sorted(cov.include), "exclude": sorted(cov.exclude)}
                for dim in ordered(d.coverage)
                if (cov := d.coverage.get(dim)) is not None and (cov.include or cov.exclude)
            },
            "team": [{"user": m.user, "role": m.role} for m in d.team],
            "cam": _cam(snapshot, key),
            "lead_count": lead_counts.get(key, 0),
            "children": [],
        }
        if hidden := _hidden(snapshot, key, shown):
            node["children_not_shown"] = hidden
        nodes[key] = node
        parent = snapshot.parent(key)
        if parent is not None and parent in nodes:
            nodes[parent]["children"].append(node)
    return nodes[order[0]]


def _node_lines(snapshot: TreeShape, key: str, lead_counts: Mapping[str, int]) -> list[str]:
    d = snapshot.territory(key)
    lines = [f"{d.key}: {d.name}", f"[{d.type}{', partner ' + d.partner if d.partner else ''}]"]
    lines.append(coverage_summary(d))
    cam = snapshot.cam_for(key)
    if d.team:
        lines.append(team_summary(d))
    if cam is not None and cam.inherited:
        lines.append(f"CAM {cam.user} (from {cam.territory})")
    elif cam is None:
        lines.append("no CAM")
    lines.append(f"leads: {lead_counts.get(key, 0)}")
    return lines


def _mermaid_text(text: str) -> str:
    return text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(
    snapshot: TreeShape | None, lead_counts: Mapping[str, int] | None = None, view: View = _ALL
) -> str:
    """A Mermaid ``flowchart`` of the tree (node ids are positions, labels carry the details).

    A diagram longer than Mermaid's default text limit (``MERMAID_MAX_TEXT``) starts with a comment
    saying so and suggesting a subtree (``root=``) or fewer levels (``depth=``).
    """
    counts = lead_counts or {}
    out = ["flowchart TD"]
    if snapshot is None:
        out.append('  empty["(no territories)"]')
        return "\n".join(out) + "\n"
    order = _order(snapshot, view)
    shown = None if view == _ALL else set(order)
    ids = {k: f"t{i}" for i, k in enumerate(order)}
    for key in order:
        lines = _node_lines(snapshot, key, counts)
        if hidden := _hidden(snapshot, key, shown):
            lines.append(f"{hidden} more below (depth=)")
        label = "<br/>".join(_mermaid_text(line) for line in lines)
        out.append(f'  {ids[key]}["{label}"]')
    for key in order:
        for child in _children(snapshot, key, view, shown):
            out.append(f"  {ids[key]} --> {ids[child]}")
    text = "\n".join(out) + "\n"
    if len(text) > MERMAID_MAX_TEXT:
        biggest = max(
            snapshot.children(order[0]) or (order[0],), key=lambda k: len(_order(snapshot, View(k)))
        )
        note = (
            f"%% This diagram is {len(text):,} characters, more than Mermaid renders by default "
            f"(maxTextSize {MERMAID_MAX_TEXT:,}): ask for a subtree with root=KEY (e.g. root={biggest}) "
            "or fewer levels with depth=N.\n"
        )
        text = note + text
    return text


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def to_dot(
    snapshot: TreeShape | None, lead_counts: Mapping[str, int] | None = None, view: View = _ALL
) -> str:
    """A Graphviz ``digraph`` of the tree (``dot -Tsvg`` renders it)."""
    counts = lead_counts or {}
    out = ["digraph territories {", "  rankdir=TB;", '  node [shape=box, fontname="Helvetica"];']
    if snapshot is not None:
        order = _order(snapshot, view)
        shown = None if view == _ALL else set(order)
        for key in order:
            lines = _node_lines(snapshot, key, counts)
            if hidden := _hidden(snapshot, key, shown):
                lines.append(f"{hidden} more below")
            label = "\\n".join(_dot_text(line) for line in lines)
            out.append(f'  "{_dot_text(key)}" [label="{label}"];')
        for key in order:
            for child in _children(snapshot, key, view, shown):
                out.append(f'  "{_dot_text(key)}" -> "{_dot_text(child)}";')
    out.append("}")
    return "\n".join(out) + "\n"


def to_text(
    snapshot: TreeShape | None, lead_counts: Mapping[str, int] | None = None, view: View = _ALL
) -> str:
    """The tree for a terminal, one territory per line with box-drawing branches."""
    counts = lead_counts or {}
    if snapshot is None:
        return "(no territories)\n"
    lines: list[str] = []
    order = _order(snapshot, view)
    shown = None if view == _ALL else set(order)
    # (key, prefix for this line, prefix for its children)
    stack: list[tuple[str, str, str]] = [(order[0], "", "")]
    while stack:
        key, prefix, child_prefix = stack.pop()
        d = snapshot.territory(key)
        cam = snapshot.cam_for(key)
        details = [coverage_summary(d)]
        if d.team:
            details.append(f"team: {team_summary(d)}")
        if cam is None:
            details.append("no CAM")
        elif cam.inherited:
            details.append(f"CAM {cam.user} (from {cam.territory})")
        if counts.get(key):
            details.append(f"leads: {counts[key]}")
        if hidden := _hidden(snapshot, key, shown):
            details.append(f"{hidden} more below")
        partner = f", partner {d.partner}" if d.partner else ""
        lines.append(f"{prefix}{d.key}  {d.name} [{d.type}{partner}]  {' | '.join(details)}")
        children = _children(snapshot, key, view, shown)
        for i, child in reversed(list(enumerate(children))):
            last = i == len(children) - 1
            stack.append(
                (
                    child,
                    child_prefix + ("└── " if last else "├── "),
                    child_prefix + ("    " if last else "│   "),
                )
            )
    return "\n".join(lines) + "\n"


def to_html(
    snapshot: TreeShape | None,
    lead_counts: Mapping[str, int],
    *,
    model_id: int,
    model_name: str,
    model_status: str,
    model_version: int,
    view: View = _ALL,
    nonce: str | None = None,
    user: str | None = None,
    csrf_token: str | None = None,
) -> str:
    """A self-contained HTML page: the tree as nested ``<details>``, open two levels below the root shown
    and collapsed below, with a search box and expand / collapse-all buttons (a small inline script of
    our own); no fonts, libraries or external URLs.

    ``nonce`` marks the inline style and script for the response's Content-Security-Policy; ``user`` and
    ``csrf_token`` add who is signed in and a sign-out button. Links to subtrees (``?root=KEY``) point
    at the page ``/territory-models/{model_id}/tree.html``.
    """
    rows: list[dict[str, Any]] = []
    crumbs: list[str] = []
    if snapshot is not None:
        order = _order(snapshot, view)
        shown = None if view == _ALL else set(order)
        for key in order:
            d = snapshot.territory(key)
            rows.append(
                {
                    "key": key,
                    "name": d.name,
                    "type": d.type,
                    "partner": d.partner,
                    "depth": snapshot.depth(key),
                    "coverage": coverage_summary(d),
                    "team": [(m.user, ROLE_LABELS.get(m.role, m.role)) for m in d.team],
                    "cam": snapshot.cam_for(key),
                    "lead_count": lead_counts.get(key, 0),
                    "leaf": not _children(snapshot, key, view, shown),
                    "hidden": _hidden(snapshot, key, shown),
                    "subtree": key != order[0] and bool(snapshot.children(key)),
                }
            )
        if view.root is not None and view.root != snapshot.root:
            parent = snapshot.parent(view.root)
            while parent is not None:
                crumbs.append(parent)
                parent = snapshot.parent(parent)
            crumbs.reverse()
            crumbs.append(view.root)
        elif view.depth is not None:
            crumbs.append(snapshot.root)
    # Turn the depth-first list into open/close events so the template needs no recursion.
    events: list[tuple[str, dict[str, Any] | None]] = []
    open_depths: list[int] = []
    for row in rows:
        while open_depths and open_depths[-1] >= row["depth"]:
            open_depths.pop()
            events.append(("close", None))
        events.append(("open", row))
        open_depths.append(row["depth"])
    events.extend(("close", None) for _ in open_depths)
    return _env.get_template("territory_tree.html").render(
        events=events,
        model_id=model_id,
        model_name=model_name,
        model_status=model_status,
        model_version=model_version,
        count=len(rows),
        total=len(snapshot.keys()) if snapshot is not None else 0,
        # collapsed below two levels under the root shown: a 10,000-territory tree opens readable
        top_depth=rows[0]["depth"] if rows else 0,
        warnings=snapshot.warnings if snapshot is not None else (),
        crumbs=crumbs,
        page_url=f"/territory-models/{model_id}/tree.html",
        nonce=nonce,
        user=user,
        csrf_token=csrf_token,
    )
