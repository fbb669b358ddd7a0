"""Submitting a registration: required fields, the partner's agreement and program membership, the
registration number, assignment (stored decision, territory and sales teams) and routing to the
approvers, all in one transaction; and the approver preview, which decides without storing."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    BindParameter,
    Integer,
    Select,
    Sequence,
    Table,
    Text,
    TextClause,
    bindparam,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate, Update

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import FieldProblem, ValidationFailed
from common.principal import Principal
from directory.models import Customer, Product
from registration.acceptance.team_service import ensure_accepted
from registration.approval.rounds_service import (
    RoundRows,
    round_bindparams_pg,
    round_ctes_pg,
    round_rows,
    round_started,
    write_round,
)
from registration.duplicates.service import refuse_overlapping_registration
from registration.leads import schemas as s
from registration.leads.eligibility_service import Eligibility, eligibility
from registration.leads.errors import RegistrationNotAllowed
from registration.leads.lifecycle import Event, next_status
from registration.leads.models import Lead, LeadTerritory, RegistrationCounter, SalesTeamMember
from registration.leads.service import lead_out, locked_lead, visible_lead
from registration.leads.submission import (
    NUMBER_PREFIX,
    approver_reason,
    missing_fields,
    missing_problems,
    registration_number,
)
from registration.notifications import service as notifications_service
from rules.decision import AssignmentDecisionResult
from rules.decision_schemas import FactWarning
from rules.decision_service import (
    current_configuration,
    decide_facts_in,
    decision_values,
    insert_decision,
    recorded_decision,
)
from rules.models import StoredDecision
from territory.repository import model_id_of
from territory.snapshot import TerritorySnapshot

COUNTER = "registration"
#: PostgreSQL's registration numbers (`next_registration_value`); SQLite takes them from the counter row.
REGISTRATION_NUMBERS = Sequence("registration_numbers")


# --- what the lead says -------------------------------------------------------------------------------


def _primary_product(lead: Lead) -> int | None:
    return next((p.product_id for p in lead.products if p.is_primary), None)


def field_values(lead: Lead) -> dict[str, Any]:
    """The lead's values under the policy's field names (``LEAD_FIELDS`` of the rules vocabulary)."""
    return {
        "customer": lead.customer_id,
        "primary_product": _primary_product(lead),
        "partner_type": lead.partner_type,
        "partner_program": lead.program_id,
        "primary_partner": lead.primary_partner_id,
        "registration_type": lead.registration_type,
        "primary_contact": lead.contact_name,
        "deal_size": lead.deal_size,
        "currency": lead.currency,
        "close_date": lead.expected_close_date,
        "description": lead.description,
        "name": lead.name,
    }


def lead_facts(session: Session, lead: Lead, allowed: Eligibility) -> dict[str, Any]:
    """The facts the assignment decides on (keys, as the rules vocabulary names them); the partner, the
    program and the membership come from the lead's `eligibility` (read once for both), and so do the
    customer's and primary product's keys when it read them."""
    facts: dict[str, Any] = {
        "registration_type": lead.registration_type,
        "partner_type": lead.partner_type,
        "currency": lead.currency,
        "sales_channel": lead.sales_channel,
        "deal_size": float(lead.deal_size) if lead.deal_size is not None else None,
    }
    product_id = _primary_product(lead)
    if allowed.keys is not None:  # read with the partner, program and membership
        facts["customer"], facts["product"] = allowed.keys
    elif lead.customer_id is not None or product_id is not None:  # both keys in one statement
        customer = select(Customer.key).where(Customer.id == lead.customer_id).scalar_subquery()
        product = select(Product.key).where(Product.id == product_id).scalar_subquery()
        row = session.execute(select(customer, product)).one()
        facts["customer"], facts["product"] = row[0], row[1]
    if allowed.program is not None:
        facts["program"] = allowed.program.key
    if allowed.partner is not None:
        facts["partner"] = allowed.partner.key
        if allowed.program is not None:
            facts["program_tier"] = allowed.membership.tier if allowed.membership else None
    return {k: v for k, v in facts.items() if v is not None}


# --- the number, the teams ----------------------------------------------------------------------------


@functools.cache
def _counter_bump() -> ReturningUpdate[int]:
    """The UPDATE of `next_registration_value` (of the table), built once."""
    counters = cast(Table, RegistrationCounter.__table__)
    return (
        update(counters)
        .where(counters.c.name == COUNTER)
        .values(last_value=counters.c.last_value + 1)
        .returning(counters.c.last_value)
    )


def next_registration_value(session: Session) -> int:
    """The next registration number's value: on PostgreSQL from the sequence (no lock: concurrent
    submissions never wait for each other's commit), on SQLite from the counter row in the caller's
    transaction (row-locked until commit; SQLite has one writer at a time anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        return int(session.execute(select(REGISTRATION_NUMBERS.next_value())).scalar_one())
    bump = _counter_bump()
    value = session.execute(bump).scalar()
    if value is None:  # a database whose counter row was never created (or was emptied)
        session.execute(
            sqlite.insert(RegistrationCounter).values(name=COUNTER, last_value=0).on_conflict_do_nothing()
        )
        value = session.execute(bump).scalar()
    assert value is not None
    return int(value)


_Record = TypeVar("_Record", LeadTerritory, SalesTeamMember)


@functools.cache
def _team_inserts() -> tuple[ReturningInsert[Any], ReturningInsert[Any]]:
    """The INSERTs of an assignment (of the tables, not through the unit of work), built once: the
    territory team, the sales team; each returning its ids in the order of its rows."""
    territories, members = cast(Table, LeadTerritory.__table__), cast(Table, SalesTeamMember.__table__)
    return (
        insert(territories).returning(territories.c.id, sort_by_parameter_order=True),
        insert(members).returning(members.c.id, sort_by_parameter_order=True),
    )


#: PostgreSQL: the common table expressions that write the two teams of `_team_inserts` (the territory
#: team and the sales team: JSON arrays of rows numbered ``n`` in their order, `_team_bindparams_pg`),
#: each returning its ids. A table's ids come from its sequence in the order of its rows.
_TEAM_CTES_PG = """
    new_territories AS (
        INSERT INTO lead_territories (lead_id, territory_key, territory_model_id)
        SELECT :lead_id, t.territory_key, :territory_model_id
        FROM jsonb_to_recordset(:territories) AS t(n integer, territory_key varchar)
        ORDER BY t.n
        RETURNING id
    ), new_members AS (
        INSERT INTO lead_sales_team (lead_id, user_id, role, source)
        SELECT :lead_id, m.user_id, m.role, m.source
        FROM jsonb_to_recordset(:members) AS m(n integer, user_id integer, role varchar, source varchar)
        ORDER BY m.n
        RETURNING id
    )
"""


def _team_bindparams_pg() -> tuple[BindParameter[Any], ...]:
    return (
        bindparam("lead_id", type_=Integer()),
        bindparam("territory_model_id", type_=Integer()),
        bindparam("territories", type_=postgresql.JSONB()),
        bindparam("members", type_=postgresql.JSONB()),
    )


@functools.cache
def _team_insert_pg() -> TextClause:
    """PostgreSQL: the two INSERTs of `_team_inserts` as one statement, built once, returning (0 for a
    territory, 1 for a member; the id) of each row."""
    return text(
        f"WITH {_TEAM_CTES_PG} SELECT 0, id, NULL FROM new_territories"
        " UNION ALL SELECT 1, id, NULL FROM new_members"
    ).bindparams(*_team_bindparams_pg())


@functools.cache
def _team_and_round_insert_pg() -> TextClause:
    """PostgreSQL: `_team_insert_pg` and the approval round (`round_ctes_pg`) by one statement, built
    once, returning (0, the id) of each territory, (1, the id) of each member and (2, the id, the
    number) of the round."""
    return text(
        f"WITH {_TEAM_CTES_PG}, {round_ctes_pg()}"
        " SELECT 0, id, NULL::integer FROM new_territories"
        " UNION ALL SELECT 1, id, NULL FROM new_members"
        " UNION ALL SELECT 2, id, number FROM new_round"
    ).bindparams(*_team_bindparams_pg(), *round_bindparams_pg())


def _inserted(
    session: Session, statement: ReturningInsert[Any], rows: list[dict[str, Any]]
) -> list[tuple[int, dict[str, Any]]]:
    """(id, row) of each row ``statement`` inserted."""
    ids = [int(row[0]) for row in session.execute(statement, rows)]
    return list(zip(ids, rows, strict=True))


def _inserted_pg(
    session: Session,
    lead_id: int,
    territories: list[dict[str, Any]],
    members: list[dict[str, Any]],
    new_round: RoundRows | None,
) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, dict[str, Any]]], tuple[int, int] | None]:
    """`_inserted` of both teams by one statement (PostgreSQL), with ``new_round`` if given (then its id
    and number as well)."""
    ids: tuple[list[int], list[int]] = ([], [])
    written: tuple[int, int] | None = None
    params = {
        "lead_id": lead_id,
        "territory_model_id": territories[0]["territory_model_id"] if territories else None,
        "territories": [{"n": n, "territory_key": t["territory_key"]} for n, t in enumerate(territories)],
        "members": [{"n": n, **m} for n, m in enumerate(members)],
    }
    if new_round is None:
        rows = session.execute(_team_insert_pg(), params)
    else:
        rows = session.execute(_team_and_round_insert_pg(), {**params, **new_round.params_pg()})
    for kind, id_, number in rows:
        if kind == 2:
            written = (int(id_), int(number))
        else:
            ids[kind].append(int(id_))
    return (
        list(zip(sorted(ids[0]), territories, strict=True)),
        list(zip(sorted(ids[1]), members, strict=True)),
        written,
    )


def _attached(session: Session, records: list[_Record]) -> list[_Record]:
    """Records just inserted, put in the session as if read back."""
    for record in records:
        make_transient_to_detached(record)
        session.add(record)
    return records


def _assign(
    session: Session,
    lead: Lead,
    snapshot: TerritorySnapshot | None,
    result: AssignmentDecisionResult,
    users: Mapping[str, int],
    new_round: RoundRows | None = None,
) -> tuple[dict[str, Any], tuple[int, int] | None]:
    """Put the decided territories on the territory team and the resources on the sales team (``users``:
    user key -> id of the directory's users the decision names), one INSERT per table (both by one
    statement on PostgreSQL, with ``new_round`` if given): the rows become the lead's collections as if
    loaded. Returns what the audit row says, and the round's id and number if it was written."""
    model_id = model_id_of(snapshot) if snapshot else None
    territories = [
        {"lead_id": lead.id, "territory_key": key, "territory_model_id": model_id}
        for key in result.territory_team
    ]
    keys = sorted({r.user for r in result.resources})
    present = {(m.user_id, m.role) for m in lead.sales_team}
    members = []
    added = []
    for resource in result.resources:
        user_id = users.get(resource.user)
        if user_id is None or (user_id, resource.role) in present:
            continue
        present.add((user_id, resource.role))
        members.append(
            {"lead_id": lead.id, "user_id": user_id, "role": resource.role, "source": "assignment"}
        )
        added.append({"user": resource.user, "role": resource.role})
    insert_territories, insert_members = _team_inserts()
    written: tuple[int, int] | None = None
    if territories and members and session.get_bind().dialect.name == "postgresql":
        new_territories, new_members, written = _inserted_pg(
            session, lead.id, territories, members, new_round
        )
    else:  # SQLite (no INSERT in a WITH), or one team only: one statement each
        new_territories = _inserted(session, insert_territories, territories) if territories else []
        new_members = _inserted(session, insert_members, members) if members else []
    if new_territories:
        new = [LeadTerritory(id=i, **row) for i, row in new_territories]
        set_committed_value(lead, "territory_team", [*lead.territory_team, *_attached(session, new)])
    if new_members:
        added_members = [SalesTeamMember(id=i, **row) for i, row in new_members]
        set_committed_value(lead, "sales_team", [*lead.sales_team, *_attached(session, added_members)])
    assigned = {
        "territories": list(result.territory_team),
        "territory_model_id": model_id,
        "resources": added,
        "unknown_users": [k for k in keys if k not in users],
    }
    return assigned, written


def _people(
    session: Session,
    principal: Principal,
    lead: Lead,
    snapshot: TerritorySnapshot | None,
    result: AssignmentDecisionResult,
) -> tuple[dict[str, int], notifications_service.People]:
    """User key -> id of every user the decision names (its resources and approvers), and everyone the
    submission's mail names, read together: the channel roles on the territory team the submission
    leaves, then one statement of users."""
    keys = {r.user for r in result.resources} | {a.user for step in result.steps for a in step.approvers}
    if result.kept_team:
        team = [(t.territory_model_id, t.territory_key) for t in lead.territory_team]
    else:
        model_id = model_id_of(snapshot) if snapshot else None
        team = [(model_id, key) for key in result.territory_team]
    named = {user for n in result.policy.notify for user in n.users}
    people = notifications_service.read_people(
        session, lead, territories=team, keys=keys | named, ids={principal.user_id}
    )
    return {u.key: u.id for u in people.users if u.key in keys}, people


def _unassign(lead: Lead) -> dict[str, Any]:
    """Take the territory team and the sales-team members an earlier assignment added off the lead (a
    fresh assignment replaces them)."""
    territories = [t.territory_key for t in lead.territory_team]
    members = [m for m in lead.sales_team if m.source == "assignment"]
    lead.territory_team.clear()
    for member in members:
        lead.sales_team.remove(member)
    return {
        "replaced_territories": territories,
        "replaced_resources": [{"user_id": m.user_id, "role": m.role} for m in members],
    }


def _decide(
    session: Session, url: str, facts: dict[str, Any], team: list[str] | None = None
) -> tuple[TerritorySnapshot | None, dict[str, Any], AssignmentDecisionResult]:
    """Decide on the lead's facts, in the caller's transaction. A lead that has a territory team keeps it
    and is decided on it (its approvers are the channel roles on the lead), unless the policy asks
    resubmitted registrations to be assigned afresh: then the decision is a fresh match, and submitting
    replaces the team with it."""
    snapshot, rulesets = current_configuration(session, url)  # one statement says what is current
    enriched, result = decide_facts_in(session, facts, snapshot, rulesets, territory_team=team or None)
    if team and result.policy.reassign_on_resubmit:  # policy rules read facts only: the same either way
        enriched, result = decide_facts_in(session, facts, snapshot, rulesets)
    return snapshot, enriched, result


@functools.cache
def _lead_update() -> Update:
    """The UPDATE of `write_lead` (of the table; its SET names the columns a call gives), built once."""
    leads = cast(Table, Lead.__table__)
    return update(leads).where(
        leads.c.id == bindparam("lead_id", type_=Integer()),
        leads.c.version == bindparam("lead_version", type_=Integer()),
    )


def write_lead(session: Session, lead: Lead, values: dict[str, Any], now: datetime) -> None:
    """Give the lead ``values`` and its next version by one UPDATE of the table (the unit of work's
    flush of it cost as much as the statement), then hold them on the lead as if read back. A lead the
    request changed already (an implicit acceptance) takes them as changes instead, so one UPDATE of
    the unit of work writes everything under one new version."""
    if inspect(lead).modified:
        for name, value in values.items():
            setattr(lead, name, value)
        return
    values = {**values, "updated_at": now, "version": lead.version + 1}
    params = {**values, "lead_id": lead.id, "lead_version": lead.version}
    written = cast(CursorResult[Any], session.execute(_lead_update(), params))
    if written.rowcount != 1:  # the lead is locked: cannot happen
        raise StaleDataError(f"lead {lead.id} changed under its lock (version {lead.version})")
    for name, value in values.items():
        set_committed_value(lead, name, value)


#: The columns of a submitted lead's UPDATE on PostgreSQL (`_submission_write_pg`) bound as given.
_SUBMITTED_COLUMNS = ("status", "submitted_at", "submitted_by", "updated_at", "version")


@functools.cache
def _submission_write_pg(decision_columns: tuple[str, ...]) -> Select[int, str | None]:
    """PostgreSQL: the next registration number, the decision (``decision_columns`` bound as
    ``decision_*``) and the submitted lead's UPDATE as one statement, built once: INSERTs and UPDATEs
    chained in one WITH. The number is the sequence's next value (`next_registration_value`), taken
    once; the lead takes it (`registration.leads.submission.registration_number`'s format: six digits
    at least), the decision's id and the values of ``_SUBMITTED_COLUMNS`` where its version is
    ``lead_version``. Returns the decision's id and the number written (None: the lead was not
    written)."""
    decisions = cast(Table, StoredDecision.__table__)
    leads = cast(Table, Lead.__table__)
    # a CTE calling a volatile function is evaluated once, not inlined where its value is used twice
    counter = select(REGISTRATION_NUMBERS.next_value().label("last_value")).cte("counter")
    decision = (
        insert(decisions)
        .values(
            {name: bindparam(f"decision_{name}", type_=decisions.c[name].type) for name in decision_columns}
        )
        .returning(decisions.c.id)
        .cte("decision")
    )
    digits = sql_cast(counter.c.last_value, Text())
    number = literal(NUMBER_PREFIX) + func.lpad(digits, func.greatest(6, func.length(digits)), "0")
    written = (
        update(leads)
        .where(
            leads.c.id == bindparam("lead_id", type_=Integer()),
            leads.c.version == bindparam("lead_version", type_=Integer()),
        )
        .values(
            {
                **{name: bindparam(name, type_=leads.c[name].type) for name in _SUBMITTED_COLUMNS},
                "registration_number": select(number).scalar_subquery(),
                "decision_id": select(decision.c.id).scalar_subquery(),
            }
        )
        .returning(leads.c.registration_number)
        .cte("written")
    )
    return select(decision.c.id, select(written.c.registration_number).scalar_subquery())


def _write_submission_pg(
    session: Session, lead: Lead, decided: dict[str, Any], values: dict[str, Any], now: datetime
) -> tuple[int, str]:
    """`_submission_write_pg` for a lead taking its first number: the decision written as ``decided``
    (`decision_values`), the lead given ``values``, the number, the decision and its next version, and
    holding them as if read back; (the decision's id, the number)."""
    values = {**values, "updated_at": now, "version": lead.version + 1}
    params = {
        **{f"decision_{name}": value for name, value in decided.items()},
        **values,
        "lead_id": lead.id,
        "lead_version": lead.version,
    }
    decision_id, number = session.execute(_submission_write_pg(tuple(decided)), params).one()
    if number is None:  # the lead is locked: cannot happen
        raise StaleDataError(f"lead {lead.id} changed under its lock (version {lead.version})")
    values = {**values, "registration_number": number, "decision_id": decision_id}
    for name, value in values.items():
        set_committed_value(lead, name, value)
    return int(decision_id), str(number)


# --- submit -------------------------------------------------------------------------------------------


def submit_lead(db: Database, principal: Principal, lead_id: int, if_match: str | None) -> s.LeadOut:
    """Submit a registration: checked, numbered, assigned and routed to its approvers in one transaction.

    The lead is read once, locked, and decided on as the submission's implicit acceptance leaves it;
    its status, number and decision are written in one UPDATE and the audit rows in one INSERT. On
    PostgreSQL a first submission takes its number, writes its decision and that UPDATE by one statement.
    """
    now = utcnow()
    today = now.date()
    with db.transaction() as session, audit.batched(session):
        lead, children = locked_lead(session, principal, lead_id)
        check_if_match(if_match, lead.id, lead.version)
        previous = lead.status
        submitted = next_status(previous, Event.SUBMIT)
        ensure_accepted(session, lead, principal, "submit")
        allowed = eligibility(session, lead, today, with_keys=True)
        # Submitted again, the lead keeps the team its first submission assigned (the approvers are
        # the channel roles on the lead) unless the policy says to assign it afresh.
        team = [t.territory_key for t in lead.territory_team]
        snapshot, enriched, result = _decide(session, db.url, lead_facts(session, lead, allowed), team)
        if result.unknown_values and result.policy.unknown_values == "refuse":
            raise ValidationFailed(
                f"{len(result.unknown_values)} fact(s) name members the territory model does not know; "
                "the policy refuses such registrations (correct them, or ask an admin to add the members)",
                [FieldProblem(f"/facts/{w['field']}", w["message"]) for w in result.warnings],
                warnings=result.warnings,
            )
        missing = missing_fields(field_values(lead), result.policy.required_fields)
        if missing:
            raise ValidationFailed(
                f"{len(missing)} required field(s) missing; the registration was not submitted",
                missing_problems(missing),
            )
        if allowed.blockers:
            raise RegistrationNotAllowed("; ".join(allowed.blockers), reasons=allowed.blockers)
        refuse_overlapping_registration(session, lead, result.policy, now)
        rulesets = result.ruleset_versions
        routed = next_status(submitted, Event.ROUTE)
        decided = decision_values(
            "lead",
            lead.id,
            lead.organization_id,
            snapshot,
            enriched,
            result,
            explain_on_read=True,  # GET /v1/decisions/{id} explains it
        )
        # submitted and routed at once: one new version of the lead, written by one UPDATE
        routed_values = {"status": routed.value, "submitted_at": now, "submitted_by": principal.user_id}
        if (
            lead.registration_number is None
            and not inspect(lead).modified
            and session.get_bind().dialect.name == "postgresql"
        ):  # its number, its decision and the lead by one statement
            decision_id, number = _write_submission_pg(session, lead, decided, routed_values, now)
        else:  # SQLite, a resubmission or a lead this request changed: three statements
            number = lead.registration_number or registration_number(next_registration_value(session))
            decision_id = insert_decision(session, decided)
            numbered = {**routed_values, "registration_number": number, "decision_id": decision_id}
            write_lead(session, lead, numbered, now)
        audit.record(
            session,
            principal,
            "lead",
            lead.id,
            "submitted",
            before={"status": previous},
            after={"status": submitted.value},
            details={"registration_number": number, "rulesets": rulesets},
            now=now,
        )
        decision = recorded_decision(session, principal, decision_id, decided, result)
        users, people = _people(session, principal, lead, snapshot, result)
        # this submission's round: on PostgreSQL written with the teams an assignment adds, if it adds
        # both and replaces none
        new_round = round_rows(session, principal, lead, now=now, user_ids=users)
        written: tuple[int, int] | None = None
        if not result.kept_team:  # first submission, or the policy's fresh assignment: never a mix
            replaced = _unassign(lead) if lead.territory_team else {}
            if replaced:
                session.flush()  # the replaced rows go before the new ones arrive (same unique keys)
            fields, written = _assign(session, lead, snapshot, result, users, None if replaced else new_round)
            assigned = {**fields, **replaced}
            audit.record(
                session,
                principal,
                "lead",
                lead.id,
                "assigned",
                details={**assigned, "decision_id": decision.id, "rulesets": rulesets},
                now=now,
            )
        session.flush()
        audit.record(
            session,
            principal,
            "lead",
            lead.id,
            "routed",
            before={"status": submitted.value},
            after={"status": routed.value},
            details={
                "decision_id": decision.id,
                "approvers": list(result.approvers),
                "approval_steps": result.to_json()["approval_steps"],
                "rulesets": rulesets,
                "territory_model_version": result.territory_model_version,
            },
            now=now,
        )
        round_started(session, principal, lead, new_round, *(written or write_round(session, new_round)))
        notifications_service.notify(session, lead, "submitted", principal, now=now, people=people)
        # submitting changes no contact or activity; the answer names the program eligibility read
        out = lead_out(session, lead, children=children, programs=allowed.program_keys)
        out.warnings = [FactWarning.model_validate(w) for w in result.warnings]
        return out


# --- approver preview ---------------------------------------------------------------------------------


def preview_approvers(db: Database, principal: Principal, lead_id: int) -> s.ApproverPreviewOut:
    """Who would approve the lead if it were submitted now, and why (nothing is stored)."""
    today = utcnow().date()
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id)
        allowed = eligibility(session, lead, today)
        values = field_values(lead)
        blockers = allowed.blockers
        team = [t.territory_key for t in lead.territory_team]
        _, _, result = _decide(session, db.url, lead_facts(session, lead, allowed), team)
    refused = bool(result.unknown_values) and result.policy.unknown_values == "refuse"
    missing = missing_fields(values, result.policy.required_fields)
    problems = missing_problems(missing)
    decision = result.to_json()
    return s.ApproverPreviewOut(
        lead_id=lead_id,
        submittable=not missing and not blockers and not refused,
        missing_fields=[
            s.MissingField(field=name, pointer=p.pointer) for name, p in zip(missing, problems, strict=True)
        ],
        blockers=blockers,
        approvers=[
            s.PreviewApprover(
                step=step.name,
                mode=step.mode,
                user=a.user,
                role=a.role,
                why=approver_reason(a.role, a.source, result.lowest),
            )
            for step in result.steps
            for a in step.approvers
        ],
        lowest_territories=list(result.lowest),
        result=decision,
        rulesets=result.ruleset_versions,
        trace=result.trace if principal.internal else None,
        warnings=[FactWarning.model_validate(w) for w in result.warnings],
    )
