"""Enumerations of the reference data; values are what the database stores and the API returns."""

from __future__ import annotations

from enum import StrEnum


class OrganizationKind(StrEnum):
    BRAND_OWNER = "brand_owner"
    PARTNER = "partner"


class PartnerType(StrEnum):
    RESELLER = "reseller"
    DISTRIBUTOR = "distributor"
    REFERRAL = "referral"
    SYSTEM_INTEGRATOR = "system_integrator"
    ISV = "isv"
    CO_SELL = "co_sell"


class CustomerSize(StrEnum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
    ENTERPRISE = "enterprise"


class ProductLevel(StrEnum):
    GROUP = "group"
    SUBGROUP = "subgroup"
    ITEM = "item"
