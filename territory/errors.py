"""Exceptions raised by the pure territory core.

They do not derive from ``common.errors.PrmError`` because that module imports Flask, which pure modules
must not do; the territory service maps them (``code`` says which HTTP problem each one becomes).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import ClassVar

#: Above this many candidates a "did you mean" search would dominate error reporting; skip it.
_MAX_SUGGESTION_POOL = 50_000


def did_you_mean(word: str, candidates: Collection[str], n: int = 3) -> tuple[str, ...]:
    """Return up to ``n`` close spellings of ``word`` among ``candidates`` (difflib ratio >= 0.6).

    Examples
    --------
    >>> did_you_mean("EMAE", ["EMEA", "APAC", "AMER"])
    ('EMEA',)
    """
    if len(candidates) > _MAX_SUGGESTION_POOL:
        return ()
    return tuple(difflib.get_close_matches(word, candidates, n=n))


def hint(suggestions: Sequence[str]) -> str:
    """Render suggestions as ``"; did you mean 'a', 'b'?"`` (empty when there are none)."""
    return f"; did you mean {', '.join(map(repr, suggestions))}?" if suggestions else ""


class TerritoryError(Exception):
    """Root of the territory core's exceptions; ``code`` is short and stable."""

    code: ClassVar[str] = "territory-error"


@dataclass(frozen=True)
class HierarchyProblem:
    """One bad member of a dimension hierarchy."""

    member: str
    message: str


class HierarchyInvalid(TerritoryError):
    """A dimension's member hierarchy has unknown parents or cycles; ``problems`` lists every one."""

    code = "hierarchy-invalid"

    def __init__(self, name: str, problems: Sequence[HierarchyProblem]) -> None:
        self.name = name
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p.member}: {p.message}" for p in self.problems)
        super().__init__(f"member hierarchy {name!r} is invalid ({len(self.problems)} problems):\n{lines}")


@dataclass(frozen=True)
class TreeProblem:
    """One reason a territory tree is invalid.

    ``code`` is one of ``duplicate_key``, ``unknown_parent``, ``no_root``, ``multiple_roots``, ``cycle``,
    ``unknown_dimension``, ``unknown_member``.
    """

    code: str
    territory: str | None
    message: str


class TreeInvalid(TerritoryError):
    """The territory definitions do not form one valid tree; ``problems`` lists every problem found."""

    code = "territory-tree-invalid"

    def __init__(self, problems: Sequence[TreeProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p.message}" for p in self.problems)
        super().__init__(f"territory tree is invalid ({len(self.problems)} problems):\n{lines}")


class UnknownTerritory(TerritoryError, KeyError):
    """No territory with this key exists in the snapshot."""

    code = "territory-not-found"

    def __init__(self, key: str, suggestions: Sequence[str] = ()) -> None:
        self.key = key
        self.suggestions = tuple(suggestions)
        super().__init__(f"unknown territory {key!r}{hint(self.suggestions)}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnknownMember(TerritoryError, KeyError):
    """A member is not part of a dimension hierarchy."""

    code = "member-not-found"

    def __init__(self, name: str, member: str, suggestions: Sequence[str] = ()) -> None:
        self.name = name
        self.member = member
        self.suggestions = tuple(suggestions)
        super().__init__(f"unknown {name} member {member!r}{hint(self.suggestions)}")

    def __str__(self) -> str:
        return str(self.args[0])
