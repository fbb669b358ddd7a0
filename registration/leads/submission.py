"""What submitting a registration checks and produces, without I/O (pure): the required fields the
policy names, reported all at once, the registration number's format, and why each approver approves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from common.errors import FieldProblem

#: Policy field name (rules vocabulary ``LEAD_FIELDS``) -> where it sits in a lead's JSON.
FIELD_POINTERS: Mapping[str, str] = {
    "customer": "/customer_id",
    "primary_product": "/products",
    "partner_type": "/partner_type",
    "partner_program": "/program",
    "primary_partner": "/primary_partner_id",
    "registration_type": "/registration_type",
    "primary_contact": "/contact_name",
    "deal_size": "/deal_size",
    "currency": "/currency",
    "close_date": "/expected_close_date",
    "description": "/description",
    "name": "/name",
}

NUMBER_PREFIX = "REG-"


def missing_fields(values: Mapping[str, Any], required: Sequence[str]) -> list[str]:
    """Every required field that has no value, in the policy's order.

    >>> missing_fields({"customer": 1, "name": ""}, ["customer", "name"])
    ['name']
    """
    return [name for name in dict.fromkeys(required) if values.get(name) in (None, "")]


def missing_problems(names: Sequence[str]) -> list[FieldProblem]:
    """The missing fields as validation problems, each with its JSON pointer."""
    return [
        FieldProblem(
            FIELD_POINTERS.get(name, f"/{name}"),
            f"{'primary product' if name == 'primary_product' else name.replace('_', ' ')} is required to submit",
        )
        for name in names
    ]


def registration_number(value: int) -> str:
    """The registration number for the counter's value: ``REG-000123``.

    >>> registration_number(123)
    'REG-000123'
    """
    return f"{NUMBER_PREFIX}{value:06d}"


def approver_reason(role: str, source: str, lowest: Sequence[str]) -> str:
    """Why an approver of a decision approves, in words a partner understands.

    >>> approver_reason("channel_account_manager", "territory:JP-SEC", ["JP-SEC-RESELL"])
    'channel account manager of territory JP-SEC, the nearest above the lowest match JP-SEC-RESELL holding that role'
    """
    what = role.replace("_", " ")
    if source.startswith("territory:"):
        territory = source.split(":", 1)[1]
        if territory in lowest:
            return f"{what} of territory {territory}, the lowest matching the lead"
        below = ", ".join(lowest)
        return (
            f"{what} of territory {territory}, the nearest above the lowest match {below} holding that role"
        )
    if source == "fallback":
        return "fallback approver: no territory role resolved this step"
    return "named by an approval rule"
