"""Random sequences of registration actions by random callers (hypothesis stateful), on SQLite and
PostgreSQL. After every step:

- every lead is in a status of the machine, and a 2xx answer moved it exactly as the transition table
  says (submit routes on to ``pending_approval``); any other answer changed nothing, not even the version;
- the other partner's user never sees the lead (404 on read, absent from its list);
- a registration waiting for a decision (submitted, pending approval, information requested) changes only
  through the workflow's own actions: an edit is refused and a note leaves the lead as it was;
- replaying the lead's history from draft rebuilds its status;
- no request ever answers 5xx.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from registration.leads.lifecycle import Event, RegistrationStatus, next_status
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo

S = RegistrationStatus
WAITING = {S.SUBMITTED, S.PENDING_APPROVAL, S.INFO_REQUESTED}
#: Callers: partner A's user (the submitter), partner B's user, the approving CAM, a CAM who is not the
#: approver, and an admin.
OWNER, OTHER_PARTNER, APPROVER, OTHER_CAM, ADMIN = (
    "northwind-user",
    "contoso-user",
    "cam-jp-security",
    "cam-jp",
    "admin",
)
CALLERS = st.sampled_from([OWNER, OTHER_PARTNER, APPROVER, OTHER_CAM, ADMIN])
#: action -> (event of the transition table, request body)
ACTIONS: dict[str, tuple[Event, dict[str, Any]]] = {
    "submit": (Event.SUBMIT, {}),
    "approve": (Event.APPROVE, {"comment": "fine"}),
    "reject": (Event.REJECT, {"comment": "duplicate of an existing deal"}),
    "request-info": (Event.REQUEST_INFO, {"question": "Which sites?"}),
    "submit-info": (Event.SUBMIT_INFO, {"text": "Two sites in Osaka"}),
    "withdraw": (Event.WITHDRAW, {}),
}
VOLATILE = {"updated_at"}


class RegistrationMachine(RuleBasedStateMachine):
    client: Any
    cli: Any
    demo: Demo

    leads = Bundle("leads")

    def __init__(self) -> None:
        super().__init__()
        self.status: dict[int, RegistrationStatus] = {}

    # -- helpers ------------------------------------------------------------------------------------

    def _h(self, caller: str) -> dict[str, str]:
        return self.demo[caller]

    def _read(self, lead_id: int) -> tuple[dict[str, Any], str]:
        resp = self.client.get(f"/v1/leads/{lead_id}", headers=self._h(ADMIN))
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return resp.get_json(), resp.headers["ETag"]

    def _expect_unchanged(self, lead_id: int, before: dict[str, Any], resp: Any) -> None:
        after, _ = self._read(lead_id)
        assert after["version"] == before["version"], (resp.status_code, resp.get_data(as_text=True))
        assert after["status"] == before["status"]

    # -- rules --------------------------------------------------------------------------------------

    @initialize(target=leads)
    def a_draft(self) -> int:
        return self._new_lead()

    @initialize(target=leads)
    def a_pending_registration(self) -> int:
        return self._new_lead("submit")

    @initialize(target=leads)
    def an_approved_registration(self) -> int:
        return self._new_lead("submit", "approve")

    @rule(target=leads)
    def another_lead(self) -> int:
        return self._new_lead()

    def _new_lead(self, *actions: str) -> int:
        """A new lead of partner A, taken through ``actions`` by the caller meant to take each."""
        body = created(self.client, self._h(OWNER), jp_security_lead(self.demo)).get_json()
        assert body["status"] == S.DRAFT
        lead = int(body["id"])
        self.status[lead] = S.DRAFT
        for action in actions:
            self.act(lead, OWNER if action == "submit" else APPROVER, action, False)
        return lead

    @rule(lead=leads, action=st.sampled_from(sorted(ACTIONS)), admin=st.booleans())
    def act_as_the_workflow_expects(self, lead: int, action: str, admin: bool) -> None:
        """The action by the caller meant to take it (the submitter, or the approver or an admin), so
        sequences get deep into the machine; whether it applies still depends on the status."""
        caller = OWNER if action in {"submit", "submit-info", "withdraw"} else ADMIN if admin else APPROVER
        self.act(lead, caller, action, False)

    @rule(lead=leads, caller=CALLERS, action=st.sampled_from(sorted(ACTIONS)), stale=st.booleans())
    def act(self, lead: int, caller: str, action: str, stale: bool) -> None:
        before, etag = self._read(lead)
        event, body = ACTIONS[action]
        if_match = '"stale-0"' if stale else etag
        resp = self.client.post(
            f"/v1/leads/{lead}/{action}", json=body, headers={**self._h(caller), "If-Match": if_match}
        )
        assert resp.status_code < 500, resp.get_data(as_text=True)
        if caller == OTHER_PARTNER:
            assert resp.status_code == 404, resp.get_data(as_text=True)
        if resp.status_code != 200:
            if resp.status_code == 409 and not stale:
                assert resp.get_json()["current_status"] == before["status"]
            self._expect_unchanged(lead, before, resp)
            return
        assert not stale, "a stale ETag was accepted"
        expected = next_status(self.status[lead], event)
        if expected is S.SUBMITTED:
            expected = next_status(expected, Event.ROUTE)  # routed in the same request
        after = resp.get_json()
        assert after["status"] == expected, (self.status[lead], action, after["status"])
        self.status[lead] = expected

    @rule(lead=leads, caller=CALLERS, name=st.text(min_size=1, max_size=30).filter(str.strip))
    def edit(self, lead: int, caller: str, name: str) -> None:
        before, etag = self._read(lead)
        resp = self.client.patch(
            f"/v1/leads/{lead}", json={"name": name}, headers={**self._h(caller), "If-Match": etag}
        )
        assert resp.status_code < 500, resp.get_data(as_text=True)
        if self.status[lead] in WAITING or self.status[lead] in {S.APPROVED, S.EXPIRED}:
            assert resp.status_code in (403, 404, 409, 422), resp.get_data(as_text=True)
        if caller == OTHER_PARTNER:
            # the answer a lead that does not exist gets: 404, or 422 when the body itself is invalid
            # (a name with NUL is refused before any lead is looked up)
            missing = self.client.patch(
                "/v1/leads/999999999", json={"name": name}, headers={**self._h(caller), "If-Match": etag}
            )
            assert resp.status_code == missing.status_code, resp.get_data(as_text=True)
            assert resp.status_code in (404, 422)
        if resp.status_code != 200:
            self._expect_unchanged(lead, before, resp)
        else:
            assert resp.get_json()["status"] == before["status"]

    @rule(lead=leads, caller=CALLERS)
    def add_note(self, lead: int, caller: str) -> None:
        before, _ = self._read(lead)
        resp = self.client.post(f"/v1/leads/{lead}/notes", json={"text": "a note"}, headers=self._h(caller))
        assert resp.status_code < 500, resp.get_data(as_text=True)
        if caller == OTHER_PARTNER:
            assert resp.status_code == 404
        if self.status[lead] in WAITING:
            after, _ = self._read(lead)
            assert {k: v for k, v in after.items() if k not in VOLATILE} == {
                k: v for k, v in before.items() if k not in VOLATILE
            }, "a note changed a registration waiting for a decision"

    @rule()
    def expiry_sweep(self) -> None:
        """The nightly sweep, run as if 100 days had passed: every approved registration expires, once."""
        later = (datetime.now(UTC) + timedelta(days=100)).strftime("%Y-%m-%dT%H:%M:%S%z")
        for _ in range(2):  # the second run finds nothing left to do
            result = self.cli.invoke(args=["registrations", "expire", "--now", later])
            assert result.exit_code == 0, result.output
        for lead_id, status in self.status.items():
            if status is S.APPROVED:
                self.status[lead_id] = next_status(status, Event.EXPIRE)

    # -- invariants ---------------------------------------------------------------------------------

    @invariant()
    def statuses_are_the_machines(self) -> None:
        for lead_id, expected in self.status.items():
            body, _ = self._read(lead_id)
            assert body["status"] in set(S)
            assert body["status"] == expected, (lead_id, body["status"], expected)

    @invariant()
    def replaying_the_history_rebuilds_the_status(self) -> None:
        """The history's status changes, chained from draft, end at the current status (none lost, none
        written by a refused request, each one starting where the previous one ended)."""
        for lead_id, expected in self.status.items():
            resp = self.client.get(f"/v1/leads/{lead_id}/history", headers=self._h(ADMIN))
            assert resp.status_code == 200, resp.get_data(as_text=True)
            status = S.DRAFT.value
            for item in resp.get_json()["items"]:
                if item["to_status"] is not None and item["to_status"] != item["from_status"]:
                    assert item["from_status"] in (status, None), (lead_id, item["action"], status)
                    status = item["to_status"]
            assert status == expected, (lead_id, status, expected)

    @invariant()
    def the_other_partner_sees_nothing(self) -> None:
        other = self._h(OTHER_PARTNER)
        for lead_id in self.status:
            assert self.client.get(f"/v1/leads/{lead_id}", headers=other).status_code == 404
        listed = {
            item["id"] for item in self.client.get("/v1/leads?limit=200", headers=other).get_json()["items"]
        }
        assert not listed & set(self.status)


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def test_random_action_sequences_stay_inside_the_machine(app, client, demo):
    RegistrationMachine.client = client
    RegistrationMachine.cli = app.test_cli_runner()
    RegistrationMachine.demo = demo
    run_state_machine_as_test(
        RegistrationMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
