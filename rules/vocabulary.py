"""The declared lead-fact vocabulary and the fixed names rules files may use.

This is the one place that says which facts a rule may test and of which type; the loader, the checks
and both evaluators read it from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from rules.errors import FactsInvalid


class FactType(StrEnum):
    """Type of a lead fact: free text, a number, or one of a closed set of values."""

    STRING = "string"
    NUMBER = "number"
    ENUM = "enum"


@dataclass(frozen=True)
class FactSpec:
    """One declared fact: its type, the allowed values of an enum, and what it means."""

    type: FactType
    description: str
    values: tuple[str, ...] = ()


FACTS: Mapping[str, FactSpec] = {
    "customer": FactSpec(FactType.STRING, "customer (sales account) key"),
    "customer_country": FactSpec(FactType.STRING, "customer's ISO 3166 country code"),
    "customer_subdivision": FactSpec(FactType.STRING, "customer's ISO 3166-2 subdivision code"),
    "customer_postal_code": FactSpec(FactType.STRING, "customer's postal code"),
    "customer_industry": FactSpec(FactType.STRING, "customer's industry"),
    "customer_size": FactSpec(
        FactType.ENUM, "customer size band", ("small", "medium", "large", "enterprise")
    ),
    "program": FactSpec(FactType.STRING, "partner program key"),
    "program_tier": FactSpec(FactType.STRING, "partner's tier in the program (gold, silver...)"),
    "product": FactSpec(FactType.STRING, "primary product key"),
    "product_group": FactSpec(FactType.STRING, "product group of the primary product"),
    "geography": FactSpec(FactType.STRING, "geography dimension member"),
    "region": FactSpec(FactType.STRING, "sales region"),
    "partner": FactSpec(FactType.STRING, "primary partner key"),
    "partner_type": FactSpec(FactType.STRING, "partner type (reseller, distributor, referral...)"),
    "registration_type": FactSpec(FactType.ENUM, "kind of registration", ("co_sell", "referral", "resale")),
    "deal_size": FactSpec(FactType.NUMBER, "expected deal amount"),
    "currency": FactSpec(FactType.STRING, "ISO 4217 currency of deal_size"),
    "sales_channel": FactSpec(FactType.ENUM, "sales channel of the lead", ("partner", "direct")),
    "lead_source": FactSpec(FactType.STRING, "where the lead came from (partner, campaign, cam...)"),
}

#: Roles known without any context: the channel resources that approve and the lead's own parties.
ROLES: frozenset[str] = frozenset(
    {
        "channel_account_manager",
        "channel_sales_manager",
        "channel_sales_director",
        "partner_owner",
        "partner_admin",
        "submitter",
        "lead_owner",
        "sales_rep",
    }
)

#: Lead fields a policy rule may require at submit time.
LEAD_FIELDS: frozenset[str] = frozenset(
    {
        "customer",
        "primary_product",
        "partner_type",
        "partner_program",
        "primary_partner",
        "registration_type",
        "primary_contact",
        "deal_size",
        "currency",
        "close_date",
        "description",
        "name",
    }
)

DEFAULT_REQUIRED_FIELDS: tuple[str, ...] = (
    "customer",
    "primary_product",
    "partner_type",
    "partner_program",
    "primary_partner",
    "registration_type",
)
DEFAULT_EXPIRY_DAYS = 90

#: Lifecycle events a policy rule may ask to notify on: each is sent by the service (a test holds this list
#: and registration/notifications.py's events equal, and sends each through the API).
EVENTS: frozenset[str] = frozenset(
    {
        "submitted",
        "approved",
        "rejected",
        "info_requested",
        "info_submitted",
        "withdrawn",
        "expiring",
        "expired",
        "extended",
        "extension_requested",
        "extension_rejected",
        "accepted",
        "transferred",
    }
)

#: Largest magnitude a number may have. Beyond it, and below 1/10,000, durable_rules' JSON reader fails
#: (exponent notation gives error 204), so both evaluators compare numbers rounded to 4 decimals.
MAX_NUMBER = 10**15
NUMBER_DECIMALS = 4


def normalize_number(value: int | float) -> int | float:
    """Return the number as both evaluators compare it: 4 decimals, integral values as int."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"number {value!r} is not finite")
    if abs(value) > MAX_NUMBER:
        raise ValueError(f"number {value!r} is outside the supported range ±{MAX_NUMBER:.0e}")
    if isinstance(value, float):
        value = round(value, NUMBER_DECIMALS)
        if value == int(value):
            value = int(value)
    return value


#: Fact name -> its type and, for an enum, the allowed values (looked up once per fact, not per field).
_CHECKS: Mapping[str, tuple[FactType, frozenset[str]]] = {
    name: (spec.type, frozenset(spec.values)) for name, spec in FACTS.items()
}
_STRING, _NUMBER = FactType.STRING, FactType.NUMBER


class NormalizedFacts(dict[str, str | int | float]):
    """Facts `normalize_facts` has checked: normalizing them again returns them as they are."""


def normalize_facts(facts: Mapping[str, object]) -> NormalizedFacts:
    """Validate lead facts against the vocabulary and return the normalized mapping.

    Unknown names are dropped (a lead carries more than rules may test); a `None` value means the fact
    is missing. A value of the wrong type raises `FactsInvalid`, because durable_rules would compare it
    anyway and give a wrong answer.

    >>> normalize_facts({"deal_size": 1500.0, "region": "EMEA", "notes": "x", "product": None})
    {'deal_size': 1500, 'region': 'EMEA'}
    """
    if type(facts) is NormalizedFacts:
        return facts
    out = NormalizedFacts()
    problems: list[str] = []
    for name, value in facts.items():
        check = _CHECKS.get(name)
        if check is None or value is None:
            continue
        kind, allowed = check
        if kind is _STRING and type(value) is str:  # the hot path: plain text facts
            out[name] = value
        elif kind is _NUMBER:
            try:
                out[name] = normalize_number(value)  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                problems.append(f"{name}: {exc}")
        elif not isinstance(value, str):
            problems.append(f"{name}: expected a string, got {type(value).__name__}")
        elif allowed and value not in allowed:
            problems.append(f"{name}: {value!r} is not one of {', '.join(FACTS[name].values)}")
        else:
            out[name] = value
    if problems:
        raise FactsInvalid(problems)
    return out
