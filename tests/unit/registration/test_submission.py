"""Submit-time checks without a database: missing required fields, the number format, approver reasons."""

from __future__ import annotations

from registration.leads.submission import (
    FIELD_POINTERS,
    approver_reason,
    missing_fields,
    missing_problems,
    registration_number,
)
from rules.vocabulary import DEFAULT_REQUIRED_FIELDS, LEAD_FIELDS


def test_every_missing_field_is_reported_once_in_policy_order():
    values = {"customer": 7, "registration_type": "", "partner_type": None}
    required = ["registration_type", "customer", "partner_type", "registration_type"]
    assert missing_fields(values, required) == ["registration_type", "partner_type"]


def test_missing_fields_point_at_the_lead_json():
    problems = missing_problems(list(DEFAULT_REQUIRED_FIELDS))
    assert [p.pointer for p in problems] == [
        "/customer_id",
        "/products",
        "/partner_type",
        "/program",
        "/primary_partner_id",
        "/registration_type",
    ]
    assert problems[1].message == "primary product is required to submit"


def test_every_field_a_policy_may_require_has_a_pointer():
    assert set(LEAD_FIELDS) <= set(FIELD_POINTERS)


def test_registration_numbers_are_zero_padded_and_grow_past_six_digits():
    assert registration_number(1) == "REG-000001"
    assert registration_number(1234567) == "REG-1234567"


def test_approver_reasons_name_the_territory_and_why():
    assert "the lowest matching" in approver_reason("channel_account_manager", "territory:JP", ["JP"])
    assert "nearest above" in approver_reason("channel_account_manager", "territory:JP", ["JP-SEC"])
    assert approver_reason("fallback", "fallback", []).startswith("fallback approver")
    assert approver_reason("named", "rule", []) == "named by an approval rule"
