"""Cursor pagination: opaque cursors naming the last id seen; lists are ordered by id."""

from __future__ import annotations

import base64
import binascii
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from common.errors import FieldProblem, ValidationFailed
from common.ids import parse_id
from common.query import QueryModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[T]
    next_cursor: str | None = None


class PageQuery(QueryModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """Return the id after which the next page starts (0 for the first page).

    A cursor is user input: anything but ``id:`` and an id as :func:`encode_cursor` writes it (ASCII
    digits, 0 to the id columns' largest value) is refused with 422, never compared with a column.
    """
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
        raw = ""
    prefix, _, value = raw.partition(":")
    last_id = (0 if value == "0" else parse_id(value)) if prefix == "id" else None
    if last_id is None:
        raise ValidationFailed(
            "Invalid cursor", [FieldProblem("/query/cursor", "not a cursor this API issued")]
        )
    return last_id
