"""The one place that reads the wall clock; pure code takes ``now`` as a parameter instead."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)
