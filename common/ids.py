"""Record ids as they arrive from outside (path, query, body, cursor): ASCII digits, within the range of
the columns they are compared with. Pure: no Flask here.

Every id column is a PostgreSQL ``integer`` (32-bit). A larger number reaches the database as
``integer out of range`` (a 500) on PostgreSQL while SQLite never complains, and Python's ``int()``
also reads non-ASCII digits (fullwidth, Arabic-Indic...) and signs, underscores and spaces: so every id from outside
is checked here, or declared with :data:`Id`, which pydantic enforces and the OpenAPI document shows.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

#: The largest id a PostgreSQL ``integer`` column holds.
MAX_ID = 2**31 - 1

_DIGITS = re.compile(r"[0-9]{1,10}")


def _digits_only(value: Any) -> Any:
    """An id sent as text (a query parameter) is ASCII digits: no sign, space, ``_`` or other script."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("an id is written in ASCII digits 0-9")
    return value


#: A record id in a request (path, query or body): 1 to ``MAX_ID``, digits only when sent as text.
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_digits_only)]


def parse_id(text: str) -> int | None:
    """The id ``text`` names, or ``None`` if it names none: ASCII digits only, 1 to ``MAX_ID``.

    >>> parse_id("42"), parse_id("2147483648"), parse_id("\uff11"), parse_id("+1"), parse_id("0")
    (42, None, None, None, None)
    """
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None
