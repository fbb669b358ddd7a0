"""What converting an approved registration into an opportunity produces, and who may close it, without
I/O (pure): revenue lines, the partner's role on the sales team by registration type, the expiry date,
and the refusals after the registration expired.

>>> revenue_lines([(3, False), (5, True)], Decimal("1000"), "EUR")
[RevenueLine(product_id=5, primary=True, amount=Decimal('1000'), currency='EUR'), RevenueLine(product_id=3, primary=False, amount=None, currency='EUR')]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from common.errors import Conflict, Forbidden

DEFAULT_EXPIRY_DAYS = 90
OWNER_ROLE = "opportunity_owner"

#: Registration type -> the role the partner's resources take on the opportunity's sales team. A
#: reseller sells the deal itself, a co-seller works it with the brand's team, a referral partner is
#: credited but does not work (or close) the deal.
PARTNER_TEAM_ROLES: Mapping[str, str] = {
    "resale": "partner_reseller",
    "co_sell": "partner_co_seller",
    "referral": "partner_referrer",
}
#: Registration types whose partner team may close the opportunity (while the registration protects it).
PARTNER_MAY_CLOSE: frozenset[str] = frozenset({"resale", "co_sell"})


class OpportunityStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class RegistrationExpired(Forbidden):
    """The registration protecting the opportunity expired: the partner's team may no longer close it."""

    code, title = "registration-expired", "Registration expired"


class PartnerMayNotClose(Forbidden):
    code, title = "partner-may-not-close", "The partner's team may not close or change this opportunity"


class OpportunityClosed(Conflict):
    code, title = "opportunity-closed", "Opportunity already closed"


@dataclass(frozen=True)
class RevenueLine:
    product_id: int
    primary: bool
    amount: Decimal | None
    currency: str | None


def revenue_lines(
    products: Sequence[tuple[int, bool]],
    deal_size: Decimal | None,
    currency: str | None,
    prices: Mapping[int, tuple[Decimal | None, str | None]] | None = None,
) -> list[RevenueLine]:
    """One line per lead product, the primary first; the primary's amount is the deal size (the others
    are left for the seller to price). A lead that priced its lines itself (`prices`: product id ->
    amount, currency; a transfer kept as a lead carries them) keeps each line's own price instead.

    >>> revenue_lines([(3, True), (5, False)], Decimal("900"), "EUR", {3: (Decimal("600"), None), 5: (Decimal("300"), "USD")})
    [RevenueLine(product_id=3, primary=True, amount=Decimal('600'), currency='EUR'), RevenueLine(product_id=5, primary=False, amount=Decimal('300'), currency='USD')]
    """
    ordered = sorted(products, key=lambda p: (not p[1], p[0]))
    priced = {pid: price for pid, price in (prices or {}).items() if price[0] is not None}
    if priced:
        return [
            RevenueLine(
                pid,
                primary,
                priced.get(pid, (None, None))[0],
                priced.get(pid, (None, None))[1] or currency,
            )
            for pid, primary in ordered
        ]
    return [RevenueLine(pid, primary, deal_size if primary else None, currency) for pid, primary in ordered]


def expiry_days(policy: Mapping[str, Any] | None) -> int:
    """The policy's expiry in days (the decision's ``policy.expiry_days``), 90 by default.

    >>> expiry_days({"expiry_days": 60}), expiry_days(None)
    (60, 90)
    """
    days = (policy or {}).get("expiry_days")
    return int(days) if isinstance(days, int) and days > 0 else DEFAULT_EXPIRY_DAYS


def expires_at(approved_at: datetime, policy: Mapping[str, Any] | None) -> datetime:
    return approved_at + timedelta(days=expiry_days(policy))


def partner_team_role(registration_type: str | None) -> str:
    return PARTNER_TEAM_ROLES.get(registration_type or "", "partner_resource")


def has_expired(status: str, expires: datetime | None, now: datetime) -> bool:
    """Whether the registration no longer protects the deal (swept to expired, or past its date)."""
    return status == "expired" or (expires is not None and expires <= now)


def check_partner_may_close(
    registration_type: str | None,
    registration_number: str | None,
    status: str,
    expires: datetime | None,
    now: datetime,
    *,
    lead_id: int,
    action: str = "close the opportunity",
) -> None:
    """Raise unless the partner's team may close the opportunity now (or, naming another ``action``,
    change it the way closing does: the same rules protect its revenue lines).

    The expiry refusal names what the partner can do about it: request an extension of the registration,
    which its channel account manager grants or refuses."""
    if has_expired(status, expires, now):
        when = expires.isoformat() if expires else "an earlier date"
        requests = f"/v1/leads/{lead_id}/extension-requests"
        raise RegistrationExpired(
            f"Registration {registration_number} expired on {when}; the partner's team can no longer "
            f"{action} under it. Ask for an extension (POST {requests}); the registration's channel "
            "account manager grants or refuses it",
            registration_number=registration_number,
            expires_at=expires.isoformat() if expires else None,
            extension_requests=requests,
        )
    if registration_type not in PARTNER_MAY_CLOSE:
        raise PartnerMayNotClose(
            f"A {registration_type or 'untyped'} registration credits the partner but does not let its "
            f"team {action}"
        )
