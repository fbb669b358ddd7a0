"""A YAML reader with bounds, for every YAML the service reads from people (rules files, their tests
files, transfer mapping profiles).

ruamel.yaml on its own recurses once per nesting level (``[`` 400 deep is a ``RecursionError``),
constructs tagged nodes (``!foo``) into objects nothing downstream expects, and lets aliases share one
node many times over, so a few hundred bytes of nested ``*refs`` expand into millions of values for
whoever walks the result (RELIABILITY.md, "Traps already found"). The composer below checks each event
before it is used: nesting depth, explicit tags and the number of values with every alias expanded.
Each refusal is a ``MarkedYAMLError``, so it carries the line and column of the node at fault.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent, ScalarEvent

#: Characters in one document. The API's body limit is about the same; this holds for files and the CLI.
MAX_CHARS = 1_000_000
#: Nesting levels of mappings and lists; the deepest real rules are a dozen levels deep.
MAX_DEPTH = 64
#: Values (scalars, lists, mappings) in a document with every alias expanded in place: three times
#: the 500-rule file of the benchmark, a few seconds of work at most.
MAX_VALUES = 50_000


class YamlLimitExceeded(MarkedYAMLError):
    """A document beyond one of the bounds, or with something it may not use (a tag)."""


class BoundedComposer(Composer):
    """ruamel's composer, refusing documents too deep, tagged nodes and alias expansion beyond bounds."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # legal YAML: a later anchor of the same name wins
        self.values = 0
        self.nesting = 0  # mappings and lists open around the current node
        self.expanded_size: dict[int, int] = {}  # id(anchored node) -> values with aliases expanded

    def _count(self, n: int, event: Any) -> None:
        self.values += n
        if self.values > MAX_VALUES:
            raise YamlLimitExceeded(
                None,
                None,
                f"more than {MAX_VALUES:,} values with aliases (*name) expanded; "
                "write the values out or use fewer aliases",
                event.start_mark,
            )

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            anchored = self.anchors.get(event.anchor)
            if anchored is not None and id(anchored) not in self.expanded_size:
                raise YamlLimitExceeded(
                    None,
                    None,
                    f"alias *{event.anchor} is used inside the value it names",
                    event.start_mark,
                )
            if anchored is not None:
                self._count(self.expanded_size[id(anchored)], event)
            return super().compose_node(parent, index)
        if event.ctag is not None:
            raise YamlLimitExceeded(
                None,
                None,
                f"YAML tags ({_as_written(event.ctag)}) are not supported; quote the value to make it text",
                event.start_mark,
            )
        if self.nesting >= MAX_DEPTH and not isinstance(event, ScalarEvent):
            raise YamlLimitExceeded(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        before = self.values
        self._count(1, event)
        self.nesting += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.nesting -= 1
        if event.anchor is not None:
            self.expanded_size[id(node)] = self.values - before
        return node


def _as_written(tag: Any) -> str:
    handle, suffix = getattr(tag, "handle", None), getattr(tag, "suffix", None)
    return f"{handle or ''}{suffix or ''}" if handle or suffix else str(tag)


def bounded_yaml() -> YAML:
    """A round-trip (position-keeping) loader with the bounds above."""
    yaml = YAML(typ="rt")
    yaml.Composer = BoundedComposer
    return yaml


def too_long(text: str) -> tuple[int, int] | None:
    """The 1-based (line, column) where `text` passes `MAX_CHARS`, or None if it does not."""
    if len(text) <= MAX_CHARS:
        return None
    line = text.count("\n", 0, MAX_CHARS) + 1
    return line, MAX_CHARS - text.rfind("\n", 0, MAX_CHARS)
