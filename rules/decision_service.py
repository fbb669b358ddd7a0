"""Decision services: enrich a lead's facts from reference data, decide with the active (or a planning /
draft) configuration, store decisions, answer "why not territory X / user Y", preview a planning model."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import CompoundSelect, Connection, Table, and_, func, insert, select, union_all
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.sql.dml import ReturningInsert

from common import audit
from common.clock import utcnow
from common.database import Database, ReadOnlySession, driver_rows
from common.errors import FieldProblem, NotFound, ValidationFailed
from common.principal import Principal
from directory.models import Customer, Organization, Product
from rules import ast, repository
from rules import decision_schemas as s
from rules.decision import (
    DEFERRED,
    AssignmentDecisionResult,
    LeadFacts,
    candidates_json,
    completed_trace,
    decide,
    explanation_json,
    territory_facts,
)
from rules.errors import FactsInvalid
from rules.evaluator import get_evaluator
from rules.models import DECISIONS_IN_FORCE, StoredDecision
from rules.service import active_rulesets, active_rulesets_in, rulesets_named, rulesets_of_versions
from territory.dimensions import Dimension, MemberHierarchy
from territory.geography import WORLD, region_of
from territory.repository import (
    REQUESTED_MODEL_PARAM,
    STATE_TAGS_FREE,
    SnapshotState,
    active_snapshot,
    active_snapshot_at,
    model_id_of,
    snapshot_at,
    snapshot_for,
    state_selects,
)
from territory.snapshot import TerritorySnapshot


def _product_group(session: Session, key: str) -> str | None:
    """The top-level catalog group a product sits under (itself for a group)."""
    record = session.scalar(select(Product).where(Product.key == key))
    seen = 0
    while record is not None and record.parent_id is not None and seen < 100:
        record = session.get(Product, record.parent_id)
        seen += 1
    return record.key if record is not None else None


def customer_geography(customer: Customer, geography: MemberHierarchy | None) -> str:
    """The deepest of the customer's postal code, subdivision and country that the geography knows
    (postal-code members are keyed ``CC-CODE`` or by the code alone); the country when none is known.

    >>> from territory.geography import geography_parents
    >>> geo = MemberHierarchy({**geography_parents(), "FR-75001": "FR-75C"})
    >>> customer_geography(Customer(country="FR", subdivision="FR-75C", postal_code="75001"), geo)
    'FR-75001'
    >>> customer_geography(Customer(country="FR", subdivision="FR-75C", postal_code="99999"), geo)
    'FR-75C'
    """
    candidates = []
    if customer.postal_code:
        candidates += [f"{customer.country}-{customer.postal_code}", customer.postal_code]
    if customer.subdivision:
        candidates.append(customer.subdivision)
    if geography is not None:
        for c in candidates:
            if c in geography:
                return c
    return customer.country


def region_in(geography: MemberHierarchy | None, member: str) -> str | None:
    """The region (the child of ``WORLD``) above a geography member, when the geography knows it."""
    if geography is None or member not in geography:
        return region_of(member)
    chain = geography.ancestors_or_self(member)
    return chain[-2] if len(chain) >= 2 and chain[-1] == WORLD else None


def enrich_facts(
    session: Session, facts: Mapping[str, Any], snapshot: TerritorySnapshot | None = None
) -> dict[str, Any]:
    """Add what reference data knows about the lead's customer, product and partner (given facts win).

    The geography is the deepest of the customer's postal code, subdivision and country that the
    snapshot's geography knows; the region is the one above it there.
    The product's group comes from the snapshot's product hierarchy (the same catalog) when it
    knows the product, saving a walk up the catalog row by row.

    With a snapshot, what was read about a customer, product or partner is remembered on it: a snapshot
    is held for one reference-data fingerprint (``territory.repository``), which any change to those
    records moves, so a snapshot read as current holds current reference data too.
    """
    out: dict[str, Any] = {k: v for k, v in facts.items() if v is not None}
    geography = snapshot.hierarchy(Dimension.GEOGRAPHY) if snapshot is not None else None

    def read(key: tuple[str, str], compute: Callable[[], Any]) -> Any:
        return snapshot.derived(("reference facts", *key), compute) if snapshot is not None else compute()

    customer_key = out.get("customer")
    if isinstance(customer_key, str):
        found = read(("customer", customer_key), lambda: _customer_facts(session, customer_key, geography))
        for name, value in found:
            out.setdefault(name, value)
    product_key = out.get("product")
    products = snapshot.hierarchy(Dimension.PRODUCT) if snapshot is not None else None
    if isinstance(product_key, str):
        if products is not None and product_key in products:
            group: str | None = products.ancestors_or_self(product_key)[-1]
        else:
            group = read(("product group", product_key), lambda: _product_group(session, product_key))
        if group is not None:
            out.setdefault("product_group", group)
    partner_key = out.get("partner")
    if isinstance(partner_key, str):
        partner_type = read(("partner type", partner_key), lambda: _partner_type(session, partner_key))
        if partner_type is not None:
            out.setdefault("partner_type", partner_type)
    return out


def _customer_facts(
    session: Session, key: str, geography: MemberHierarchy | None
) -> tuple[tuple[str, str], ...]:
    """The facts a customer record gives a lead (none for an unknown customer)."""
    customer = session.scalar(select(Customer).where(Customer.key == key))
    if customer is None:
        return ()
    where = customer_geography(customer, geography)
    derived = {
        "customer_country": customer.country,
        "customer_subdivision": customer.subdivision,
        "customer_postal_code": customer.postal_code,
        "customer_industry": customer.industry,
        "customer_size": customer.size,
        "geography": where,
        "region": region_in(geography, where),
    }
    return tuple((name, str(value)) for name, value in derived.items() if value is not None)


def _partner_type(session: Session, key: str) -> str | None:
    partner_type = session.scalar(select(Organization.partner_type).where(Organization.key == key))
    return str(partner_type) if partner_type is not None else None


def _validated(facts: Mapping[str, Any]) -> LeadFacts:
    """The facts a caller sent, checked once for the whole decision (422 with every problem)."""
    try:
        return LeadFacts.check(facts)
    except FactsInvalid as exc:
        raise ValidationFailed(
            "Facts do not fit the vocabulary",
            [FieldProblem(f"/facts/{p.split(':', 1)[0]}", p) for p in exc.problems],
        ) from None


def _rulesets_with(db: Database, ruleset_ids: Sequence[int]) -> dict[ast.Kind, ast.Ruleset]:
    """The active rulesets, with the given versions (drafts too) standing in for their kinds."""
    with db.transaction() as session:
        return _rulesets_in(session, db.url, ruleset_ids)


def _rulesets_in(session: Session, url: str, ruleset_ids: Sequence[int]) -> dict[ast.Kind, ast.Ruleset]:
    return _with_drafts(session, active_rulesets_in(session, url), ruleset_ids)


def _with_drafts(
    session: Session, active: Mapping[ast.Kind, ast.Ruleset], ruleset_ids: Sequence[int]
) -> dict[ast.Kind, ast.Ruleset]:
    rulesets = dict(active)
    for i, ruleset_id in enumerate(ruleset_ids):
        row = repository.get(session, ruleset_id)
        if row is None:
            raise ValidationFailed(
                "Unknown ruleset", [FieldProblem(f"/ruleset_ids/{i}", f"no ruleset {ruleset_id}")]
            )
        ruleset = ast.ruleset_from_json(row.ast)
        rulesets[ruleset.kind] = ruleset
    return rulesets


def decide_facts(
    db: Database,
    facts: Mapping[str, Any],
    snapshot: TerritorySnapshot | None,
    rulesets: Mapping[ast.Kind, ast.Ruleset],
    *,
    territory_team: Sequence[str] | None = None,
) -> tuple[dict[str, Any], AssignmentDecisionResult]:
    """Enrich and check the facts, then decide (on ``territory_team`` instead of a match if given)."""
    with db.transaction() as session:
        return decide_facts_in(session, facts, snapshot, rulesets, territory_team=territory_team)


def decide_facts_in(
    session: Session,
    facts: Mapping[str, Any],
    snapshot: TerritorySnapshot | None,
    rulesets: Mapping[ast.Kind, ast.Ruleset],
    *,
    territory_team: Sequence[str] | None = None,
) -> tuple[dict[str, Any], AssignmentDecisionResult]:
    """``decide_facts`` inside the caller's transaction (the facts enriched from it)."""
    checked = _validated(enrich_facts(session, facts, snapshot))
    evaluator = get_evaluator()
    return dict(checked.given), decide(checked, snapshot, rulesets, evaluator, territory_team=territory_team)


#: The tag of the active rulesets' rows in ``_state_statement`` (the territory's come first).
_RULESETS_TAG = STATE_TAGS_FREE


@functools.cache
def _state_statement(requested: bool = False) -> CompoundSelect[Any]:
    """Built once: the reference fingerprint, the active territory model and the active rulesets' versions,
    everything that tells whether what this process holds is current, in one statement; ``requested``:
    the version of the model bound as ``REQUESTED_MODEL_PARAM`` as well."""
    return union_all(*state_selects(requested=requested), repository.active_versions_select(_RULESETS_TAG))


def current_configuration(
    session: Session, url: str, model_id: int | None = None
) -> tuple[TerritorySnapshot | None, dict[ast.Kind, ast.Ruleset]]:
    """The territory snapshot (the active model's, or model ``model_id``'s) and the active rulesets, as
    the database has them now, checked with one statement; snapshots and compiled rulesets this process
    holds are used as they are (``url``: the database's, ``Database.url``).

    Each call asks the database, so an activation or a change of reference data made by any process is
    seen by the next call.
    """
    return configuration_of(session, url, _state_rows(session.connection(), model_id), model_id)


def _state_rows(connection: Connection, model_id: int | None) -> Sequence[Sequence[Any]]:
    """The rows of ``_state_statement`` (naming model ``model_id``, if given) as the driver reads them:
    the statement runs on every what-if and submission, and its rows are plain values."""
    if model_id:
        return driver_rows(connection, _state_statement(True), {REQUESTED_MODEL_PARAM: model_id})
    return driver_rows(connection, _state_statement())


def configuration_of(
    session: Session, url: str, rows: Sequence[Sequence[Any]], model_id: int | None = None
) -> tuple[TerritorySnapshot | None, dict[ast.Kind, ast.Ruleset]]:
    """`current_configuration` from the rows of ``_state_statement`` read a moment ago; ``session``
    reads only what this process does not hold."""
    state = SnapshotState.of(rows)
    snapshot = snapshot_at(session, model_id, state) if model_id else active_snapshot_at(session, state)
    return snapshot, rulesets_of_versions(session, url, repository.versions_of(rows, _RULESETS_TAG))


def what_if(
    db: Database, principal: Principal, data: s.WhatIfRequest, detail: s.Detail = s.Detail.SUMMARY
) -> dict[str, Any]:
    """Decide without storing anything, against the active or a planning model and draft rulesets; the
    answer is ``s.DecisionOut``'s JSON (its fields, in its order), made of plain values for the view to
    write as they are: what was decided is already checked, and validating it again into the model cost
    more than writing it.

    Everything read comes from one read-only unit of work (the model, the rulesets, the reference data),
    a session on a Core connection of its own: what-if reads one statement when what this process holds
    is current, and a session's own transaction to open and close cost more CPU than its statement. That
    statement runs on the connection itself, so the session begins nothing when nothing else is read.
    """
    with db.read_rows() as connection, ReadOnlySession(bind=connection) as session:
        rows = _state_rows(connection, data.territory_model_id)
        snapshot, active = configuration_of(session, db.url, rows, data.territory_model_id)
        rulesets = _with_drafts(session, active, data.ruleset_ids)
        checked = _validated(enrich_facts(session, data.facts, snapshot))
    result = decide(checked, snapshot, rulesets, get_evaluator())
    return {
        "id": None,  # not stored
        "created_at": None,
        "territory_model_id": model_id_of(snapshot) if snapshot else None,
        "facts": dict(checked.given),
        "result": result.to_json(),
        "trace": result.full_trace if detail == s.Detail.FULL else result.trace,
        "warnings": result.warnings,
    }


@functools.cache
def _insert_decision() -> ReturningInsert[tuple[int]]:
    """The INSERT of `record_decision` (of the table: no ORM bulk insert), built once."""
    table = cast(Table, StoredDecision.__table__)
    return insert(table).returning(table.c.id)


def insert_decision(session: Session, values: Mapping[str, Any]) -> int:
    """Write a decision's ``values`` (`decision_values`) by one INSERT; its id."""
    return cast(int, session.execute(_insert_decision(), values).scalar_one())


def decision_values(
    subject_type: str,
    subject_id: int | None,
    organization_id: int | None,
    snapshot: TerritorySnapshot | None,
    facts: Mapping[str, Any],
    result: AssignmentDecisionResult,
    *,
    explain_on_read: bool = False,
) -> dict[str, Any]:
    """The columns of a stored decision (`record_decision`), for a caller that writes them by a statement
    of its own and then hands them to `recorded_decision`."""
    return {
        "created_at": utcnow(),
        "subject_type": subject_type,
        "subject_id": subject_id,
        "organization_id": organization_id,
        "territory_model_id": model_id_of(snapshot) if snapshot else None,
        "facts": dict(facts),
        "result": result.to_json(),
        "trace": result.deferred_trace() if explain_on_read else result.trace,
    }


def recorded_decision(
    session: Session,
    principal: Principal | None,
    decision_id: int,
    values: Mapping[str, Any],
    result: AssignmentDecisionResult,
) -> StoredDecision:
    """The decision written as ``values`` (`decision_values`) under ``decision_id``, put in the session as
    if read back (``session.get`` finds it without a statement), and its audit row."""
    row = StoredDecision(id=decision_id, **values)
    make_transient_to_detached(row)
    session.add(row)
    audit.record(
        session,
        principal,
        "decision",
        row.id,
        "decided",
        after={"lowest_territories": list(result.lowest), "approvers": list(result.approvers)},
        details={
            "subject_type": values["subject_type"],
            "subject_id": values["subject_id"],
            "rulesets": result.ruleset_versions,
        },
    )
    return row


def record_decision(
    session: Session,
    principal: Principal | None,
    subject_type: str,
    subject_id: int | None,
    organization_id: int | None,
    snapshot: TerritorySnapshot | None,
    facts: Mapping[str, Any],
    result: AssignmentDecisionResult,
    *,
    explain_on_read: bool = False,
) -> StoredDecision:
    """Store one decision and its audit row in the caller's transaction (``explain_on_read``: its trace
    without the explanations, built when the decision is read: `completed_trace`).

    The row is written by one INSERT of its values, not through the unit of work; the object returned
    is in the session as if read back (``session.get`` finds it without a statement).
    """
    values = decision_values(
        subject_type, subject_id, organization_id, snapshot, facts, result, explain_on_read=explain_on_read
    )
    return recorded_decision(session, principal, insert_decision(session, values), values, result)


def decision_out(row: StoredDecision) -> s.DecisionOut:
    return s.DecisionOut(
        id=row.id,
        created_at=row.created_at,
        territory_model_id=row.territory_model_id,
        facts=row.facts,
        result=row.result,
        trace=row.trace,
        warnings=row.result.get("warnings", []),
    )


def create_decision(db: Database, principal: Principal, data: s.DecideRequest) -> s.DecisionOut:
    """Decide with the active configuration and store the decision (a CRM asking "who gets this?")."""
    snapshot = active_snapshot(db)
    facts, result = decide_facts(db, data.facts, snapshot, active_rulesets(db))
    with db.transaction() as session:
        row = record_decision(session, principal, "request", None, None, snapshot, facts, result)
        return decision_out(row)


def _decision(session: Session, decision_id: int) -> StoredDecision:
    row = session.get(StoredDecision, decision_id)
    if row is None:
        raise NotFound(f"decision {decision_id} not found")
    return row


def get_decision(
    db: Database, principal: Principal, decision_id: int, detail: s.Detail = s.Detail.SUMMARY
) -> s.DecisionOut:
    """A stored decision; with ``detail=full`` every losing territory is explained again from the stored
    facts on the territory model the decision used (its content cannot change once it was active)."""
    with db.transaction() as session:
        out = decision_out(_decision(session, decision_id))
        deferred = DEFERRED in out.trace
        rulesets = rulesets_named(session, out.trace.get("rulesets") or {}) if deferred else {}
    needs_model = deferred or detail == s.Detail.FULL
    snapshot = snapshot_for(db, out.territory_model_id) if needs_model and out.territory_model_id else None
    if deferred:  # stored without its explanations: built now, as they were when it was decided
        out.trace = completed_trace(out.trace, out.facts, snapshot, rulesets)
    if detail == s.Detail.FULL and snapshot is not None:
        full = candidates_json(snapshot, territory_facts(out.facts, snapshot), None)
        out.trace = {**out.trace, "detail": "full", "facts": out.facts, **full}
    return out


def _territories_of(snapshot: TerritorySnapshot, user: str) -> tuple[str, ...]:
    """The territories whose team holds ``user`` (an index built once per snapshot)."""
    index: dict[str, tuple[str, ...]] = snapshot.derived(
        "territories by user", lambda: _teams_index(snapshot)
    )
    return index.get(user, ())


def _teams_index(snapshot: TerritorySnapshot) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for key in snapshot:
        for member in snapshot.team(key):
            keys = found.setdefault(member.user, [])
            if not keys or keys[-1] != key:
                keys.append(key)
    return {user: tuple(keys) for user, keys in found.items()}


#: Territories of one user a why-not answer explains one by one (the rest are counted).
WHY_NOT_USER_TERRITORIES = 20


def _why_not_user(snapshot: TerritorySnapshot, row: StoredDecision, user: str) -> dict[str, Any]:
    approvers = [a for step in row.result.get("approval_steps", []) for a in step.get("approvers", [])]
    mine = [a for a in approvers if a["user"] == user]
    if mine:
        return {"user": user, "approver": True, "message": f"{user} is an approver ({mine[0]['source']})"}
    on_team = _territories_of(snapshot, user)
    if not on_team:
        return {
            "user": user,
            "approver": False,
            "message": f"{user} is on no territory team of the model this decision used",
        }
    tfacts = territory_facts(row.facts, snapshot)
    explanations = [snapshot.explain(tfacts, key) for key in on_team[:WHY_NOT_USER_TERRITORIES]]
    lowest = row.result.get("lowest_territories", [])
    details = []
    for e in explanations:
        roles = sorted(m.role for m in snapshot.team(e.territory) if m.user == user)
        details.append({**explanation_json(e), "roles": roles})
    shown = ", ".join(on_team[:WHY_NOT_USER_TERRITORIES])
    more = len(on_team) - len(explanations)
    message = (
        f"{user} sits on {shown}{f' and {more} more' if more else ''}; "
        f"the lead went to {', '.join(lowest) or 'no territory'}"
        + (f": {details[0]['message']}" if details else "")
    )
    out: dict[str, Any] = {"user": user, "approver": False, "message": message, "territories": details}
    if more:
        out["territories_omitted"] = more
    return out


def why_not(db: Database, principal: Principal, decision_id: int, query: s.WhyNotQuery) -> s.WhyNotOut:
    """Explain, for a stored decision, why a territory or a user did not get the lead: from the facts
    the decision stored, on the territory model it used (whose content cannot change once active)."""
    if query.territory is None and query.user is None:
        raise ValidationFailed(
            "Ask about a territory or a user", [FieldProblem("/query", "give territory or user")]
        )
    with db.transaction() as session:
        row = _decision(session, decision_id)
    out = s.WhyNotOut(
        decision_id=decision_id, territory_model_version=row.trace.get("territory_model_version")
    )
    if row.territory_model_id is None:
        message = "no territory model was active when this decision was made"
        if query.territory is not None:
            out.territory = {"territory": query.territory, "reason": "no_model", "message": message}
        if query.user is not None:
            out.user = {"user": query.user, "approver": False, "message": message}
        return out
    snapshot = snapshot_for(db, row.territory_model_id)
    if query.territory is not None:
        out.territory = explanation_json(
            snapshot.explain(territory_facts(row.facts, snapshot), query.territory)
        )
    if query.user is not None:
        out.user = _why_not_user(snapshot, row, query.user)
    return out


def preview(db: Database, principal: Principal, model_id: int, data: s.PreviewRequest) -> s.PreviewOut:
    """Re-decide every subject's decision in force (``DECISIONS_IN_FORCE``; else its latest stored
    decision) with a planning model (and draft rulesets) and report what would move; nothing is
    stored."""
    snapshot = snapshot_for(db, model_id)
    rulesets = _rulesets_with(db, data.ruleset_ids)
    evaluator = get_evaluator()
    with db.transaction() as session:
        named = [
            (subject_type, query().subquery()) for subject_type, query in sorted(DECISIONS_IN_FORCE.items())
        ]
        latest = (
            select(func.max(StoredDecision.id))
            .where(
                StoredDecision.subject_id.is_not(None),
                *(
                    ~and_(
                        StoredDecision.subject_type == subject_type,
                        StoredDecision.subject_id.in_(select(query.c[0]).where(query.c[1].is_not(None))),
                    )
                    for subject_type, query in named
                ),
            )
            .group_by(StoredDecision.subject_type, StoredDecision.subject_id)
        )
        in_force = union_all(latest, *(select(query.c[1]) for _, query in named))
        rows = list(
            session.scalars(
                select(StoredDecision).where(StoredDecision.id.in_(in_force)).order_by(StoredDecision.id)
            )
        )
    before_t: Counter[str] = Counter()
    after_t: Counter[str] = Counter()
    before_c: Counter[str] = Counter()
    after_c: Counter[str] = Counter()
    moved: list[s.MovedLead] = []
    moved_count = 0
    for row in rows:
        result = decide(LeadFacts.check(row.facts), snapshot, rulesets, evaluator).to_json()
        old_lowest, new_lowest = row.result.get("lowest_territories", []), result["lowest_territories"]
        before_t.update(old_lowest)
        after_t.update(new_lowest)
        if row.result.get("cam"):
            before_c[row.result["cam"]] += 1
        if result["cam"]:
            after_c[result["cam"]] += 1
        if old_lowest != new_lowest or row.result.get("cam") != result["cam"]:
            moved_count += 1
            if len(moved) < data.sample:
                moved.append(
                    s.MovedLead(
                        decision_id=row.id,
                        subject_type=row.subject_type,
                        subject_id=row.subject_id,
                        before={"lowest_territories": old_lowest, "cam": row.result.get("cam")},
                        after={"lowest_territories": new_lowest, "cam": result["cam"]},
                    )
                )

    def table(before: Counter[str], after: Counter[str]) -> dict[str, dict[str, int]]:
        return {k: {"before": before[k], "after": after[k]} for k in sorted(set(before) | set(after))}

    return s.PreviewOut(
        territory_model_id=model_id,
        evaluated=len(rows),
        moved=moved_count,
        by_territory=table(before_t, after_t),
        by_cam=table(before_c, after_c),
        sample=moved,
    )
