"""A tree's outline: what the tree views show of a snapshot (every territory's definition, its place in the
tree, its channel account manager, the tree's warnings) without the matching indexes, and its stored
form: plain JSON, versioned, so a process that did not build the snapshot (``prm territories tree``)
reads it instead of rebuilding the model.

Examples
--------
>>> from territory.tree import TeamMember
>>> outline = TreeOutline([
...     TerritoryDef("WW", None, "Worldwide", "global"),
...     TerritoryDef("JP", "WW", "Japan", "country", team=(TeamMember("cam-jp", "channel_account_manager"),)),
...     TerritoryDef("JP-E", "JP", "Japan east", "area"),
... ])
>>> outline.keys(), outline.depth("JP-E"), outline.cam_for("JP-E")
(('WW', 'JP', 'JP-E'), 2, CamAssignment(user='cam-jp', territory='JP', inherited=True))
>>> from_document(to_document(outline)).keys() == outline.keys()
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from territory.snapshot import CamAssignment
from territory.tree import CHANNEL_ACCOUNT_MANAGER, Coverage, TeamMember, TerritoryDef, TreeWarning

#: The stored document's format; a stored outline of another format is rebuilt, never misread.
FORMAT = 1


class TreeShape(Protocol):
    """What the views read of a tree: a ``TerritorySnapshot`` or a ``TreeOutline``."""

    @property
    def root(self) -> str: ...

    @property
    def warnings(self) -> tuple[TreeWarning, ...]: ...

    def __contains__(self, key: object) -> bool: ...

    def __iter__(self) -> Iterator[str]: ...

    def keys(self) -> tuple[str, ...]: ...

    def territory(self, key: str) -> TerritoryDef: ...

    def depth(self, key: str) -> int: ...

    def parent(self, key: str) -> str | None: ...

    def children(self, key: str) -> tuple[str, ...]: ...

    def cam_for(self, key: str) -> CamAssignment | None: ...


class TreeOutline:
    """A checked tree's definitions in depth-first order (children sorted by key, as in a snapshot).

    ``defs`` must already form one tree in that order, as ``outline_of`` and ``from_document`` give them.
    """

    def __init__(self, defs: Sequence[TerritoryDef], warnings: Sequence[TreeWarning] = ()) -> None:
        self._defs = tuple(defs)
        self._keys = tuple(d.key for d in self._defs)
        self._id = {k: i for i, k in enumerate(self._keys)}
        self._warnings = tuple(warnings)
        self._children: dict[str, list[str]] = {k: [] for k in self._keys}
        self._depth: dict[str, int] = {}
        self._cams: dict[str, CamAssignment | None] = {}
        for d in self._defs:  # parents come before their children
            parent = d.parent_key
            self._depth[d.key] = 0 if parent is None else self._depth[parent] + 1
            if parent is not None:
                self._children[parent].append(d.key)
            own = sorted(m.user for m in d.team if m.role == CHANNEL_ACCOUNT_MANAGER)
            if own:
                self._cams[d.key] = CamAssignment(own[0], d.key, False)
            else:
                above = self._cams.get(parent) if parent is not None else None
                self._cams[d.key] = None if above is None else above._replace(inherited=True)

    @property
    def root(self) -> str:
        return self._keys[0]

    @property
    def warnings(self) -> tuple[TreeWarning, ...]:
        return self._warnings

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._id

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def keys(self) -> tuple[str, ...]:
        return self._keys

    def territory(self, key: str) -> TerritoryDef:
        return self._defs[self._id[key]]

    def depth(self, key: str) -> int:
        return self._depth[key]

    def parent(self, key: str) -> str | None:
        return self._defs[self._id[key]].parent_key

    def children(self, key: str) -> tuple[str, ...]:
        return tuple(self._children[key])

    def cam_for(self, key: str) -> CamAssignment | None:
        return self._cams[key]


def outline_of(snapshot: TreeShape) -> TreeOutline:
    """The outline of a snapshot (its definitions in the snapshot's order, its warnings)."""
    return TreeOutline([snapshot.territory(k) for k in snapshot], snapshot.warnings)


def to_document(outline: TreeOutline) -> dict[str, Any]:
    """The outline as JSON-ready data (what is stored)."""
    return {
        "format": FORMAT,
        "territories": [
            {
                "key": d.key,
                "parent": d.parent_key,
                "name": d.name,
                "type": d.type,
                "partner": d.partner,
                "team": [[m.user, m.role] for m in d.team],
                "coverage": {
                    str(dim): [sorted(cov.include), sorted(cov.exclude)] for dim, cov in d.coverage.items()
                },
            }
            for d in (outline.territory(k) for k in outline)
        ],
        "warnings": [
            [w.code, w.territory, w.parent, w.dimension, w.member, w.message] for w in outline.warnings
        ],
    }


def from_document(doc: dict[str, Any]) -> TreeOutline:
    """Read what ``to_document`` wrote (``ValueError`` for another format)."""
    if doc.get("format") != FORMAT:
        raise ValueError(f"stored tree outline has format {doc.get('format')!r}, expected {FORMAT}")
    defs = [
        TerritoryDef(
            t["key"],
            t["parent"],
            t["name"],
            t["type"],
            team=tuple(TeamMember(user, role) for user, role in t["team"]),
            partner=t["partner"],
            coverage={dim: Coverage.of(inc, exc) for dim, (inc, exc) in t["coverage"].items()},
        )
        for t in doc["territories"]
    ]
    return TreeOutline(defs, [TreeWarning(*w) for w in doc["warnings"]])
