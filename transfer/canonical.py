"""Our side of a transfer: the opportunity and its child records as they travel, field by field.

This is the one place that lists what an opportunity document may hold. Mapping profiles name these fields
(and are checked against them), ``to_partner`` reads them, ``from_partner`` produces them and checks every
value a partner sends before anything is applied.

A canonical document is plain JSON data: the opportunity's fields at the top level, and each child kind
(``contacts``, ``revenue_lines``, ``notes``, ``activities``) as a list of records. Money and quantities are
decimal strings, dates ``YYYY-MM-DD``, timestamps ISO 8601 with an offset. Every field may be absent (not
sent, not changed) or ``null`` (cleared).

``id`` is the record's id *in the system that sent the document*: ours in what we send, the partner's in
what ``from_partner`` returns. The service keeps the pairs as correlation keys.

Fields marked ``from_partner=False`` travel only outwards: a partner may see them, but nothing a partner
sends ever sets them (RELIABILITY.md: partner data never changes the owner; registration numbers are ours).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class FieldKind(StrEnum):
    TEXT = "text"
    CHOICE = "choice"
    DECIMAL = "decimal"
    DATE = "date"
    TIMESTAMP = "timestamp"
    BOOLEAN = "boolean"


class OpportunityStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True)
class CanonicalField:
    """One field of a record on our side."""

    name: str
    kind: FieldKind
    choices: tuple[str, ...] = ()
    max_length: int = 500
    from_partner: bool = True

    @property
    def maps_values(self) -> bool:
        """Whether a value map may translate this field (only text and choice values are words)."""
        return self.kind in (FieldKind.TEXT, FieldKind.CHOICE)


@dataclass(frozen=True)
class CanonicalRecord:
    """A record kind on our side: the opportunity or one kind of child record."""

    name: str
    fields: tuple[CanonicalField, ...]

    def field(self, name: str) -> CanonicalField | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


def _f(name: str, kind: FieldKind = FieldKind.TEXT, **options: Any) -> CanonicalField:
    return CanonicalField(name, kind, **options)


_ID = _f("id", max_length=200)

OPPORTUNITY = CanonicalRecord(
    "opportunity",
    (
        _ID,
        _f("name", max_length=300),
        _f("customer", max_length=300),
        _f("status", FieldKind.CHOICE, choices=tuple(OpportunityStatus)),
        _f("stage", max_length=100),
        _f("amount", FieldKind.DECIMAL),
        _f("currency", max_length=3),
        _f("close_date", FieldKind.DATE),
        _f("description", max_length=20_000),
        _f("registration_number", max_length=100, from_partner=False),
        _f("owner", max_length=200, from_partner=False),
    ),
)

CHILDREN: dict[str, CanonicalRecord] = {
    "contacts": CanonicalRecord(
        "contact",
        (
            _ID,
            _f("name", max_length=300),
            _f("email", max_length=320),
            _f("phone", max_length=50),
            _f("role", max_length=100),
        ),
    ),
    "revenue_lines": CanonicalRecord(
        "revenue_line",
        (
            _ID,
            _f("product", max_length=200),
            _f("amount", FieldKind.DECIMAL),
            _f("currency", max_length=3),
            _f("quantity", FieldKind.DECIMAL),
        ),
    ),
    "notes": CanonicalRecord(
        "note",
        (
            _ID,
            _f("text", max_length=20_000),
            _f("author", max_length=200),
            _f("created_at", FieldKind.TIMESTAMP),
        ),
    ),
    "activities": CanonicalRecord(
        "activity",
        (
            _ID,
            _f("kind", max_length=40),
            _f("subject", max_length=500),
            _f("due_date", FieldKind.DATE),
            _f("done", FieldKind.BOOLEAN),
        ),
    ),
}

MAX_CHILDREN = 1000
_DECIMAL = re.compile(r"-?\d{1,18}(\.\d{1,8})?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


class ValueRejected(ValueError):
    """A value that does not fit its canonical field; the message says why."""


def accept_value(spec: CanonicalField, value: Any) -> Any:
    """`value` as our side stores it, or `ValueRejected` saying why it does not fit `spec`.

    Strings are checked, never rewritten, so a document we produced comes back unchanged. A partner may send
    a decimal as a JSON number; it becomes the decimal string of the same value.

    >>> accept_value(OPPORTUNITY.field("amount"), 1250.5)
    '1250.5'
    >>> accept_value(OPPORTUNITY.field("status"), "closed")
    Traceback (most recent call last):
    ...
    transfer.canonical.ValueRejected: 'closed' is not one of: open, won, lost
    """
    if value is None:
        return None
    kind = spec.kind
    if kind is FieldKind.BOOLEAN:
        if isinstance(value, bool):
            return value
        raise ValueRejected(f"expected true or false, got {_kind_of(value)}")
    if kind is FieldKind.DECIMAL and isinstance(value, int | float) and not isinstance(value, bool):
        value = _decimal_text(value)
    if not isinstance(value, str):
        raise ValueRejected(f"expected a string, got {_kind_of(value)}")
    if kind is FieldKind.TEXT:
        if len(value) > spec.max_length:
            raise ValueRejected(f"longer than {spec.max_length} characters")
    elif kind is FieldKind.CHOICE:
        if value not in spec.choices:
            raise ValueRejected(f"{value!r} is not one of: {', '.join(spec.choices)}")
    elif kind is FieldKind.DECIMAL:
        if not _DECIMAL.fullmatch(value):
            raise ValueRejected(f"{_short(value)} is not a decimal number like '1250.00'")
    elif kind is FieldKind.DATE:
        if not _is_date(value):
            raise ValueRejected(f"{_short(value)} is not a date (YYYY-MM-DD)")
    elif not _is_timestamp(value):
        raise ValueRejected(f"{_short(value)} is not a timestamp with an offset (ISO 8601)")
    return value


def _decimal_text(number: int | float) -> str:
    """A JSON number as a plain decimal string (``1e3`` -> ``'1000'``); non-finite stays unparseable."""
    try:
        exact = Decimal(repr(number)) if isinstance(number, float) else Decimal(number)
    except InvalidOperation:  # pragma: no cover - repr of a float is always a valid Decimal
        return repr(number)
    if not exact.is_finite():
        return repr(number)
    return format(exact, "f")


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_timestamp(text: str) -> bool:
    if not _TIMESTAMP.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _short(value: str) -> str:
    return repr(value) if len(value) <= 40 else repr(value[:37] + "...")


_KIND_SCHEMAS: dict[FieldKind, dict[str, Any]] = {
    FieldKind.TEXT: {"type": "string"},
    FieldKind.CHOICE: {"type": "string"},
    FieldKind.DECIMAL: {"type": ["string", "number"], "pattern": _DECIMAL.pattern},
    FieldKind.DATE: {"type": "string", "format": "date"},
    FieldKind.TIMESTAMP: {"type": "string", "format": "date-time"},
    FieldKind.BOOLEAN: {"type": "boolean"},
}


def _field_schema(spec: CanonicalField) -> dict[str, Any]:
    schema = dict(_KIND_SCHEMAS[spec.kind])
    if spec.kind in (FieldKind.TEXT, FieldKind.CHOICE):
        schema["maxLength"] = spec.max_length
    if spec.choices:
        schema["enum"] = list(spec.choices)
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    schema["type"] = [*types, "null"]
    if spec.choices:
        schema["enum"] = [*schema["enum"], None]
    return schema


def record_schema(record: CanonicalRecord, description: str) -> dict[str, Any]:
    """The JSON Schema of one record kind in our own names (every field optional, ``null`` clears)."""
    return {
        "type": "object",
        "description": description,
        "properties": {f.name: _field_schema(f) for f in record.fields},
    }


def document_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the canonical document as the partner CRM protocol carries it by default (a
    connection without an inbound profile: our own names), by name; ``CanonicalOpportunity`` refers to
    the child records' schemas as ``#/components/schemas/{name}``."""
    names = {"contacts": "CanonicalContact", "revenue_lines": "CanonicalRevenueLine"}
    names |= {"notes": "CanonicalNote", "activities": "CanonicalActivity"}
    schemas = {
        names[kind]: record_schema(record, f"a {record.name.replace('_', ' ')}; id: the sender's")
        for kind, record in CHILDREN.items()
    }
    top = record_schema(
        OPPORTUNITY,
        "An opportunity as the partner CRM protocol carries it, in this service's own names (a "
        "connection's inbound profile may name the fields otherwise). id: the sender's id of the "
        "opportunity (required); money and quantities decimal strings, dates YYYY-MM-DD, timestamps ISO "
        "8601 with an offset; an absent field is not changed, null clears it. registration_number and "
        "owner are never taken from a partner.",
    )
    top["required"] = ["id"]
    for kind in CHILDREN:
        top["properties"][kind] = {
            "type": ["array", "null"],
            "maxItems": MAX_CHILDREN,
            "items": {"$ref": f"#/components/schemas/{names[kind]}"},
        }
    pairs = {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "additionalProperties": {  # an id as text, or as a 64-bit integer (kept as its text)
                "type": ["string", "integer"],
                **{"minLength": 1, "maxLength": 200, "minimum": -(2**63), "maximum": 2**63 - 1},
            },
        },
    }
    top["properties"]["correlations"] = {
        **pairs,
        "description": "the child pairs the sender knows: {kind: {sender's id: receiver's id}} (kinds: "
        "contacts, revenue_lines, notes, activities; record: the record's own pair after a lead converted)",
    }
    top["properties"]["deletions"] = {
        **pairs,
        "description": "children deleted on either side (tombstones), the same way round: the receiver "
        "deletes its copy and never takes the child for new again",
    }
    schemas["CanonicalOpportunity"] = top
    return schemas
