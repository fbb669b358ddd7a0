"""Accepting a lead (pure rules): owner, previous owner, primary partner, pruning, accepting twice."""

from __future__ import annotations

import doctest

import pytest

from registration.acceptance import acceptance
from registration.acceptance.acceptance import Actor, AlreadyAccepted, Member, Territory, plan_acceptance

BRAND, NORTHWIND, CONTOSO = 1, 2, 3
CAM = Member(10, "lead_owner", BRAND, False)
CAM_SECURITY = Member(11, "channel_account_manager", BRAND, False)
NORTHWIND_REP = Member(20, "partner_sales_rep", NORTHWIND, True)
CONTOSO_REP = Member(30, "partner_sales_rep", CONTOSO, True)
JP = Territory("JP", 1, None)
JP_NORTHWIND = Territory("JP-NORTHWIND", 1, NORTHWIND)
JP_CONTOSO = Territory("JP-CONTOSO", 1, CONTOSO)
TEAM = [CAM, CAM_SECURITY, NORTHWIND_REP, CONTOSO_REP]
TERRITORIES = [JP, JP_NORTHWIND, JP_CONTOSO]


def test_the_module_examples_hold():
    assert doctest.testmod(acceptance).failed == 0


def test_a_partner_accepting_becomes_owner_and_primary_partner_and_other_partners_leave():
    plan = plan_acceptance(
        accepted=False,
        owner_user_id=CAM.user_id,
        members=TEAM,
        territories=TERRITORIES,
        actor=Actor(21, NORTHWIND, True),
    )
    assert plan.owner_user_id == 21 and plan.previous_owner_id == CAM.user_id
    assert plan.primary_partner_id == NORTHWIND
    assert plan.former_owners == (CAM,)
    assert plan.removed_members == (CONTOSO_REP,)
    assert plan.removed_territories == (JP_CONTOSO,)


def test_an_internal_user_accepting_takes_ownership_and_prunes_nothing():
    plan = plan_acceptance(
        accepted=False,
        owner_user_id=CAM.user_id,
        members=TEAM,
        territories=TERRITORIES,
        actor=Actor(CAM_SECURITY.user_id, BRAND, False),
    )
    assert plan.owner_user_id == CAM_SECURITY.user_id and plan.primary_partner_id is None
    assert plan.former_owners == (CAM,)
    assert plan.removed_members == () and plan.removed_territories == ()


def test_the_owner_accepting_its_own_lead_keeps_its_role():
    plan = plan_acceptance(
        accepted=False,
        owner_user_id=CAM.user_id,
        members=TEAM,
        territories=(),
        actor=Actor(CAM.user_id, BRAND, False),
    )
    assert plan.previous_owner_id is None and plan.former_owners == ()


def test_a_previous_owner_from_another_partner_leaves_with_its_partner():
    other_owner = Member(31, "lead_owner", CONTOSO, True)
    plan = plan_acceptance(
        accepted=False,
        owner_user_id=31,
        members=[other_owner],
        territories=(),
        actor=Actor(21, NORTHWIND, True),
    )
    assert plan.removed_members == (other_owner,) and plan.former_owners == ()


def test_an_accepted_lead_cannot_be_accepted_again():
    with pytest.raises(AlreadyAccepted) as caught:
        plan_acceptance(
            accepted=True, owner_user_id=1, members=(), territories=(), actor=Actor(2, NORTHWIND, True)
        )
    assert caught.value.status == 409
