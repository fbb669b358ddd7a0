"""Rules files the rulesets tests upload; they name only what `tests.support.build_world` creates."""

from __future__ import annotations

POLICY = """\
# registration policy: short expiry and automatic transfer for big deals
kind: policy
hit_policy: first
rules:
  - id: big-deals
    when: {fact: deal_size, op: gte, value: 100000}
    then:
      expiry_days: 30
      transfer: on_approval
      notify:
        approved: {users: [cam-1]}
  - id: default
    when: always
    then:
      expiry_days: 90
"""

# The same rules as POLICY, written differently: same content hash.
POLICY_REFORMATTED = """\
{"kind": "policy", "hit_policy": "first", "rules": [
  {"id": "big-deals", "when": {"fact": "deal_size", "op": "gte", "value": 100000},
   "then": {"expiry_days": 30, "transfer": "on_approval", "notify": {"approved": {"users": ["cam-1"]}}}},
  {"id": "default", "when": "always", "then": {"expiry_days": 90}}]}
"""

POLICY_V2 = """\
kind: policy
hit_policy: first
rules:
  - id: big-deals
    when: {fact: deal_size, op: gte, value: 250000}
    then:
      expiry_days: 45
  - id: default
    when: always
    then:
      expiry_days: 60
"""

POLICY_V3 = POLICY_V2.replace("expiry_days: 60", "expiry_days: 120")

APPROVAL = """\
kind: approval
hit_policy: collect
fallback_approver: admin
rules:
  - id: cam
    when: always
    then:
      steps:
        - roles: [channel_account_manager]
  - id: director-for-big-deals
    when:
      all:
        - {fact: deal_size, op: gt, value: 500000}
        - {fact: registration_type, op: in, value: [resale, co_sell]}
    then:
      steps:
        - {name: director, roles: [channel_sales_director]}
"""

ASSIGNMENT = """\
kind: assignment
hit_policy: priority
rules:
  - id: japan-resellers
    priority: 10
    when:
      all:
        - {fact: customer_country, op: eq, value: JP}
        - {fact: partner, op: eq, value: partner-a}
    then:
      add_resources: [{user: cam-2, role: channel_account_manager}]
  - id: nobody-else
    when: always
"""

# Two schema errors and two reference errors, on known lines.
BAD_ASSIGNMENT = """\
kind: assignment
hit_policy: first
rules:
  - id: r1
    when: {fact: regoin, op: eq, value: EMEA}
    then:
      add_resources: [{user: nobody, role: channel_account_manager}]
  - id: r2
    when: {fact: partner, op: eq, value: partner-z}
    then:
      add_resourcez: []
  - id: r3
    when: always
"""

BAD_POLICY_SYNTAX = "kind: policy\nhit_policy: first\nrules:\n  - id: a\n    when: [unclosed\n"

POLICY_TESTS = """\
cases:
  - name: big deal expires in 30 days
    given: {deal_size: 150000}
    expect:
      fired: [big-deals]
  - name: small deal falls through
    given: {deal_size: 10}
    expect:
      fired: [default]
"""

POLICY_TESTS_FAILING = """\
cases:
  - name: big deal expires in 30 days
    given: {deal_size: 150000}
    expect:
      fired: [big-deals]
      actions: {expiry_days: 30, transfer: on_approval}
  - name: wrong expectation
    given: {deal_size: 99999}
    expect:
      fired: [big-deals]
  - name: wrong action
    given: {}
    expect:
      actions: {expiry_days: 14}
  - name: facts of the wrong type
    given: {deal_size: lots}
    expect:
      fired: [default]
"""

BAD_TESTS = """\
cases:
  - name: no expect
    given: {deal_size: 1}
  - name: typo
    givn: {deal_size: 1}
    expect: {fired: [default]}
"""
