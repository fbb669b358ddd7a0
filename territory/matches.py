"""What matching takes and gives: a lead's facts, and the territories that matched."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from territory.dimensions import Dimension

#: A lead's facts: dimension -> member key. Names that are no dimension of the snapshot are ignored.
Facts = Mapping[str, str] | Mapping[Dimension, str]


class MatchResult(NamedTuple):
    """Territories matching a lead, in depth-first order.

    ``lowest`` holds the matches at the greatest depth (``depth``; ``None`` when nothing matched).
    """

    matched: tuple[str, ...]
    lowest: tuple[str, ...]
    depth: int | None
