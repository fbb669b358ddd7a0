"""Planning a reassignment run: which leads are in scope (streamed by id, never all loaded), which of
them an incremental plan must evaluate, and the chunk task that re-decides a range of leads and stores
one item per lead that would move or be kept."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    Text,
    and_,
    cast,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    union,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from common.batch import Chunk, database_for
from common.clock import utcnow
from common.collector import collector_paused
from common.database import Database, among, copy_rows, json_loads
from common.errors import NotFound
from directory.models import Customer, Organization, PartnerProgram, Product
from registration.leads.models import Lead, LeadProduct, LeadTerritory
from registration.opportunities.models import Opportunity
from registration.reassignment.lock_service import frozen_hit, frozen_territories
from registration.reassignment.models import (
    AssignmentLock,
    ReassignmentChunk,
    ReassignmentItem,
    ReassignmentRun,
)
from registration.reassignment.planning import Assignment, ItemOutcome, LeadState, RunStatus, Verdict, verdict
from registration.reassignment.realignment import (
    Definitions,
    Model,
    candidate_members,
    with_descendants,
)
from rules import ast, repository
from rules.decision import LeadFacts, decide
from rules.errors import FactsInvalid
from rules.evaluator import get_evaluator
from rules.models import StoredDecision
from rules.service import active_rulesets
from territory.dimensions import Dimension
from territory.models import TerritoryModel
from territory.repository import differing_keys, load_defs, load_dimensions, parent_keys, snapshot_for
from territory.snapshot import TerritorySnapshot

PLAN_TASK = "registration.reassignment.plan_service:plan_chunk"
PHASE = "plan"


ITEMS = typing.cast(Table, ReassignmentItem.__table__)
DECISIONS = typing.cast(Table, StoredDecision.__table__)
_NEXT_DECISION_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('decisions', 'id')) FROM generate_series(1, :n)"
)


def insert_for(session: Session) -> Any:
    """The dialect's INSERT (for ``ON CONFLICT DO NOTHING``)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


# --- scope ----------------------------------------------------------------------------------------------


def scope_conditions(session: Session, scope: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a plan's scope: leads that were assigned once, narrowed by ``scope``."""
    conditions: list[ColumnElement[bool]] = [Lead.decision_id.is_not(None)]
    if scope.get("status"):
        conditions.append(Lead.status.in_(list(scope["status"])))
    if scope.get("partner"):
        conditions.append(
            Lead.primary_partner_id.in_(select(Organization.id).where(Organization.key == scope["partner"]))
        )
    if scope.get("territory"):
        conditions.append(
            exists().where(
                LeadTerritory.lead_id == Lead.id, LeadTerritory.territory_key == scope["territory"]
            )
        )
    since = scope.get("updated_since")
    if since:
        conditions.append(
            Lead.updated_at >= (datetime.fromisoformat(since) if isinstance(since, str) else since)
        )
    return conditions


#: The dimensions whose members SQL reads from a lead (declared ones are fed by facts it does not see).
SQL_DIMENSIONS = frozenset(
    {Dimension.CUSTOMER, Dimension.GEOGRAPHY, Dimension.PROGRAM, Dimension.PARTNER, Dimension.PRODUCT}
)


def _member_condition(dimension: str, members: set[str]) -> ColumnElement[bool]:
    keys = sorted(members)
    if dimension == Dimension.CUSTOMER:
        return Lead.customer_id.in_(select(Customer.id).where(Customer.key.in_(keys)))
    if dimension == Dimension.GEOGRAPHY:  # the deepest of postal code, subdivision, country is the fact
        where = or_(
            Customer.country.in_(keys),
            Customer.subdivision.in_(keys),
            Customer.postal_code.in_(keys),
            (Customer.country + "-" + Customer.postal_code).in_(keys),
        )
        return Lead.customer_id.in_(select(Customer.id).where(where))
    if dimension == Dimension.PROGRAM:
        return Lead.program_id.in_(select(PartnerProgram.id).where(PartnerProgram.key.in_(keys)))
    if dimension == Dimension.PARTNER:
        return Lead.primary_partner_id.in_(select(Organization.id).where(Organization.key.in_(keys)))
    assert dimension == Dimension.PRODUCT, dimension  # (see SQL_DIMENSIONS)
    return exists().where(
        LeadProduct.lead_id == Lead.id,
        LeadProduct.is_primary.is_(True),
        LeadProduct.product_id.in_(select(Product.id).where(Product.key.in_(keys))),
    )


def changed_members(base: Model, target: Model, changed: frozenset[str]) -> dict[str, set[str]] | None:
    """Per dimension, the members a lead must carry to fall in the coverage that changed between the two
    models (``changed``: the territories that differ, with those below them); ``None``: every lead
    may (members moved, a country to another region...: territories left alike may match otherwise)."""
    if base.dimensions != target.dimensions or any(
        base.hierarchy(d).parents() != target.hierarchy(d).parents() for d in base.dimensions
    ):
        return None
    return candidate_members((base, target), changed)


def incremental_members(base: Model, target: Model, changed: frozenset[str]) -> dict[str, list[str]] | None:
    """What a run stores of ``changed_members`` (JSON: sorted lists)."""
    members = changed_members(base, target, changed)
    return None if members is None else {d: sorted(m) for d, m in members.items()}


def coverage_reads(db: Database, base_model_id: int, model_id: int) -> tuple[dict[str, str | None], set[str]]:
    """What `changed_coverage` asks the database alone: the base model's tree shape and the keys of the
    territories that differ between the two models (`differing_keys`, ~0.13 s of the database's time
    over two 10,000-territory models). Nothing here needs the planned model's snapshot, so the caller
    reads it on a thread while it builds that snapshot (~0.4 s of CPU)."""
    with db.read() as session:
        return parent_keys(session, base_model_id), differing_keys(session, base_model_id, model_id)


def changed_coverage(
    db: Database,
    base_model_id: int,
    model_id: int,
    rulesets: Mapping[ast.Kind, ast.Ruleset],
    reads: tuple[dict[str, str | None], set[str]],
) -> dict[str, list[str]] | None:
    """What an incremental plan from ``base_model_id`` to ``model_id`` stores as its
    ``incremental_members``; ``None``: a full plan (members moved between parents, or a rule adds a
    changed territory, so every lead may match otherwise). The active model is only compared, never
    matched against: the database finds the territories that differ (`differing_keys`), and of the
    active model only its tree's shape and the definitions of the changed territories are read (all of
    its 10,000 territories' definitions cost 0.2 s to read and compare). ``reads``: `coverage_reads`
    (read by the caller while it built the planned model's snapshot). The collector stays off
    throughout (the definitions are dropped on return)."""
    with collector_paused():
        target = snapshot_for(db, model_id)
        parents, differing = reads
        with db.transaction() as session:
            model = session.get(TerritoryModel, base_model_id)
            if model is None:
                raise NotFound(f"territory model {base_model_id} not found")
            dimensions = load_dimensions(session, None, model)
            changed = with_descendants(differing, Definitions((), {}, parents), target)
            base = Definitions(
                load_defs(session, base_model_id, changed & parents.keys()), dimensions, parents
            )
        if rules_name_territories(rulesets, changed):
            return None
        return incremental_members(base, target, changed)


#: Lead conditions: a lead is in a run when it meets every condition of one branch (see ``run_branches``).
Branches = list[list[ColumnElement[bool]]]


def incremental_branches(members: Mapping[str, Iterable[str]], base_model_id: int) -> Branches | None:
    """Leads an incremental plan must evaluate: those whose facts fall in the coverage that changed
    between the two models (``members``, see ``changed_members``), and those last decided with another
    model; one branch each, every branch an index's to read (``None``: every lead, a dimension SQL does
    not see changed)."""
    other_model_ranges = _other_than(StoredDecision.territory_model_id, base_model_id)
    other_model: list[ColumnElement[bool]] = [
        Lead.id.in_(
            union(
                # a decision of its own made with another model outside runs (the decisions' index:
                # one range of it each, as one condition of three ORed PostgreSQL read the whole
                # index with, filtering a million rows, where a plan's decisions of another model
                # made it guess that many), ...
                *(
                    select(StoredDecision.subject_id).where(
                        StoredDecision.subject_type == "lead",
                        StoredDecision.planned_by_run_id.is_(None),
                        in_range,
                    )
                    for in_range in other_model_ranges
                ),
                # ... or moved by a run of another model (its decision made by the run's plan)
                select(ReassignmentItem.lead_id)
                .join(ReassignmentRun, ReassignmentRun.id == ReassignmentItem.run_id)
                .where(
                    # (a run that applied chunks: applying, applied, cancelled or failed since)
                    ReassignmentRun.status.not_in([RunStatus.PLANNING.value, RunStatus.PLANNED.value]),
                    or_(*_other_than(ReassignmentRun.territory_model_id, base_model_id)),
                    ReassignmentItem.outcome == ItemOutcome.MOVE.value,
                ),
            )
        ),
        # ... and the decision it has now was made with another model
        exists().where(StoredDecision.id == Lead.decision_id, or_(*other_model_ranges)),
    ]
    branches: Branches = [other_model]
    for dimension, keys in members.items():
        if keys:
            if dimension not in SQL_DIMENSIONS:  # a declared dimension: fed by facts SQL does not see
                return None
            branches.append([_member_condition(dimension, set(keys))])
    return branches


def _other_than(model: InstrumentedAttribute[int | None], model_id: int) -> list[ColumnElement[bool]]:
    """``model`` is none, or another model than ``model_id``: three ranges of an index on it (a ``!=``
    is no range)."""
    return [model.is_(None), model < model_id, model > model_id]


def rules_name_territories(rulesets: Mapping[ast.Kind, ast.Ruleset], keys: frozenset[str]) -> bool:
    """Whether an assignment rule adds one of ``keys`` (its team then reaches leads anywhere)."""
    assignment = rulesets.get(ast.Kind.ASSIGNMENT)
    if assignment is None:
        return False
    return any(
        isinstance(rule.actions, ast.AssignmentActions) and set(rule.actions.add_territories) & keys
        for rule in assignment.rules
    )


def branch_ids(branches: Branches, *where: ColumnElement[bool], limit: int | None = None) -> Select[Any]:
    """The ids of the leads of ``branches`` that also meet ``where``, ascending (at most ``limit``, one
    branch only): one query per branch, so that each reads its own index, then their union."""
    if len(branches) == 1:
        return select(Lead.id).where(*where, *branches[0]).order_by(Lead.id).limit(limit)
    assert limit is None  # (a limit per branch would have it read in id order, not by its index)
    ids = union(*(select(Lead.id).where(*where, *conditions) for conditions in branches)).subquery()
    return select(ids.c.id).order_by(ids.c.id)


def lead_ids(session: Session, branches: Branches, batch: int) -> Iterator[int]:
    """Every lead id of ``branches``, ascending, read ``batch`` at a time: by keyset for one branch (a
    plan's scope), streamed from one query for several (an incremental plan's candidates)."""
    if len(branches) > 1:
        if session.get_bind().dialect.name == "postgresql":
            # each branch by its index, as meant: priced with the default random_page_cost (disks that
            # seek), the ~10,000 leads of 72 customers looked dearer to PostgreSQL than scanning all
            # 1,000,000, which took 0.21 s where their index takes 0.013 s (tables held in memory)
            session.execute(text("SET LOCAL enable_seqscan = off"))
        yield from session.scalars(branch_ids(branches).execution_options(yield_per=batch))
        return
    last = 0
    while True:
        ids = list(session.scalars(branch_ids(branches, Lead.id > last, limit=batch)))
        yield from ids
        if len(ids) < batch:
            return
        last = ids[-1]


def count_leads(session: Session, conditions: list[ColumnElement[bool]]) -> int:
    return int(session.scalar(select(func.count()).select_from(Lead).where(*conditions)) or 0)


#: An incremental plan's leads are spread over at least this many chunks (of at least `SPREAD_MIN_SIZE`
#: leads) where ``chunk_size`` would cut fewer: its ~10,000 leads of a 1% change cut by 2,000 made five
#: chunks, three for one of two workers and two for the other, which then waited a chunk's time.
SPREAD_CHUNKS = 8
SPREAD_MIN_SIZE = 250


def create_chunks(session: Session, run: ReassignmentRun, branches: Branches) -> int:
    """Cut the leads of ``branches`` into chunks of at most ``run.chunk_size`` ids (an incremental
    plan's, whose chunks name their leads, into chunks of even size: `SPREAD_CHUNKS`); returns how many
    leads (the count an incremental plan reports as evaluated: counting them again at the end would
    scan every lead once more)."""
    number = 0

    def cut(ids: list[int]) -> None:
        nonlocal number
        number += 1
        session.add(
            ReassignmentChunk(
                run_id=run.id,
                phase=PHASE,
                number=number,
                first_id=ids[0],
                last_id=ids[-1],
                # an incremental plan's chunk names its leads: a few of a wide range, not found again
                lead_ids=ids if run.incremental else None,
            )
        )

    found = lead_ids(session, branches, max(run.chunk_size, 1000))
    if run.incremental:  # few leads, named by their chunks anyway: all read first, then cut evenly
        every = list(found)
        count = -(-len(every) // SPREAD_CHUNKS)  # leads per chunk to make SPREAD_CHUNKS of them
        size = min(run.chunk_size, max(count, SPREAD_MIN_SIZE))
        for start in range(0, len(every), size):
            cut(every[start : start + size])
        return len(every)
    leads = 0
    ids: list[int] = []
    for lead_id in found:
        leads += 1
        ids.append(lead_id)
        if len(ids) == run.chunk_size:
            cut(ids)
            ids = []
    if ids:
        cut(ids)
    return leads


# --- the chunk task -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanContext:
    """What every chunk of one run decides with (built once per process and run)."""

    snapshot: TerritorySnapshot | None
    model_id: int | None
    rulesets: Mapping[ast.Kind, ast.Ruleset]
    #: territories frozen in the run's model or its base model (with those below them)
    frozen: Mapping[str, tuple[str, str]]


_CONTEXTS: dict[tuple[Any, ...], PlanContext] = {}


def rulesets_for(db: Database, ruleset_ids: list[int]) -> dict[ast.Kind, ast.Ruleset]:
    """The active rulesets, with the given versions standing in for their kinds."""
    rulesets = dict(active_rulesets(db))
    with db.transaction() as session:
        for ruleset_id in ruleset_ids:
            row = repository.get(session, ruleset_id)
            if row is not None:
                ruleset = ast.ruleset_from_json(row.ast)
                rulesets[ruleset.kind] = ruleset
    return rulesets


def context_for(db: Database, url: str, run: ReassignmentRun) -> PlanContext:
    key = (url, run.id, run.created_at, run.territory_model_id, tuple(run.ruleset_ids))
    context = _CONTEXTS.get(key)
    if context is None:
        snapshot = snapshot_for(db, run.territory_model_id) if run.territory_model_id else None
        if len(_CONTEXTS) > 16:
            _CONTEXTS.clear()
        context = _CONTEXTS[key] = PlanContext(
            snapshot,
            run.territory_model_id,
            rulesets_for(db, list(run.ruleset_ids)),
            frozen_territories(db, (run.territory_model_id, run.base_model_id)),
        )
    return context


def run_branches(session: Session, run: ReassignmentRun) -> Branches:
    """The leads of ``run``: its scope, narrowed to the changed coverage when the run is incremental."""
    scope = scope_conditions(session, run.scope)
    if run.incremental and run.incremental_members is not None and run.base_model_id is not None:
        branches = incremental_branches(run.incremental_members, run.base_model_id)
        if branches is not None:
            return [[*scope, *conditions] for conditions in branches]
    return [scope]


@dataclass(frozen=True)
class _Row:
    lead_id: int
    version: int
    status: str
    organization_id: int | None
    decision_id: int
    territory_model_id: int | None
    facts: dict[str, Any]
    result: dict[str, Any]


def _rows(session: Session, where: list[ColumnElement[bool]]) -> list[_Row]:
    """The leads ``where`` selects, with their decisions, in id order."""
    return [
        _Row(lead_id, version, status, org, decision_id, model_id, json_loads(facts), json_loads(result))
        for lead_id, version, status, org, decision_id, model_id, facts, result in session.execute(
            select(
                Lead.id,
                Lead.version,
                Lead.status,
                Lead.organization_id,
                StoredDecision.id,
                StoredDecision.territory_model_id,
                cast(StoredDecision.facts, Text),
                cast(StoredDecision.result, Text),
            )
            .join(StoredDecision, StoredDecision.id == Lead.decision_id)
            .where(*where)
            .order_by(Lead.id)
        )
    ]


@dataclass(frozen=True)
class _Holds:
    """What may keep a chunk's leads where they are, read by the chunk's id range (a few rows beyond its
    scope do no harm) where its leads are most of their range, else by their ids: lead locks, and each
    lead's opportunity (status, owner, lock)."""

    locks: Mapping[int, str]
    opportunities: Mapping[int, tuple[str, int | None, str | None]]

    def state(self, lead: _Row) -> LeadState:
        opp = self.opportunities.get(lead.lead_id)
        return LeadState(
            lead.lead_id,
            lead.version,
            lead.status,
            lock_reason=self.locks.get(lead.lead_id),
            opportunity_status=opp[0] if opp else None,
            opportunity_lock_reason=opp[2] if opp else None,
        )

    def owner(self, lead_id: int) -> tuple[bool, int | None]:
        """Whether the lead has an opportunity, and its owner."""
        opp = self.opportunities.get(lead_id)
        return (opp is not None, opp[1] if opp else None)


def _holds(session: Session, chunk: Chunk, named: list[int] | None) -> _Holds:
    """What may keep the chunk's leads (``named``: an incremental plan's few leads of a range as wide as
    the table, read by their ids, not every lock and opportunity of the range)."""

    def of_chunk(column: InstrumentedAttribute[int]) -> ColumnElement[bool]:
        if named is not None:
            return among(session, column, named)
        return column.between(chunk.first_id, chunk.last_id)

    locks = dict(
        session.execute(
            select(AssignmentLock.subject_id, AssignmentLock.reason).where(
                AssignmentLock.subject_type == "lead", of_chunk(AssignmentLock.subject_id)
            )
        ).all()
    )
    opportunities = {
        lead_id: (status, owner, lock)
        for lead_id, status, owner, lock in session.execute(
            select(Opportunity.lead_id, Opportunity.status, Opportunity.owner_user_id, AssignmentLock.reason)
            .outerjoin(
                AssignmentLock,
                and_(
                    AssignmentLock.subject_type == "opportunity", AssignmentLock.subject_id == Opportunity.id
                ),
            )
            .where(of_chunk(Opportunity.lead_id))
        )
    }
    return _Holds(locks, opportunities)


def _read_rows(db: Database, where: list[ColumnElement[bool]]) -> list[_Row]:
    with db.read() as session:
        return _rows(session, where)


#: Leads read by one statement of an incremental plan's chunk: the next slice is read while the
#: previous one is decided.
SLICE = 500


def _item(
    chunk: Chunk, context: PlanContext, evaluator: Any, holds: _Holds, lead: _Row
) -> dict[str, Any] | None:
    """The plan's item of one lead re-decided (``None``: the lead stays as it is)."""
    before = Assignment.from_result(lead.result)
    found: Verdict | None
    try:
        facts = LeadFacts.check(lead.facts)
    except FactsInvalid as exc:  # the vocabulary changed since the lead was decided: say so
        found, after, result = Verdict(ItemOutcome.KEEP, f"facts invalid: {exc}"), before, None
    else:
        result = decide(facts, context.snapshot, context.rulesets, evaluator)
        after = Assignment.of(result)
        state = holds.state(lead)
        if context.frozen:
            hit = frozen_hit(context.frozen, (*before.lowest, *after.lowest))
            state = replace(state, frozen=hit) if hit else state
        found = verdict(
            state,
            before,
            after,
            pending_approvals=result.policy.reassignment_pending,
            approved=result.policy.reassignment_approved,
        )
    if found is None:
        return None
    has_opportunity, owner = holds.owner(lead.lead_id)
    return {
        "run_id": chunk.run_id,
        "lead_id": lead.lead_id,
        "lead_version": lead.version,
        "lead_status": lead.status,
        "outcome": found.outcome.value,
        "reason": found.reason,
        "action": found.action.value if found.action else None,
        "territory_before": before.lowest[0] if before.lowest else None,
        "territory_after": after.lowest[0] if after.lowest else None,
        "cam_before": before.cam,
        "cam_after": after.cam,
        "before": {
            **before.to_json(),
            "decision_id": lead.decision_id,
            "territory_model_id": lead.territory_model_id,
            **({"opportunity_owner_id": owner} if has_opportunity else {}),
        },
        "after": {**after.to_json(), "territory_model_id": context.model_id},
        # the decision the plan made, stored with the items (``_store_decisions``)
        "decision": _decision(chunk, context, lead, result, found.reason)
        if result and found.outcome is ItemOutcome.MOVE
        else None,
    }


def _decision(chunk: Chunk, context: PlanContext, lead: _Row, result: Any, reason: str) -> dict[str, Any]:
    """The stored decision of a lead the plan re-decided and moves: made of the facts of the lead's
    decision at the planned version, which the apply checks it still is."""
    return {
        "subject_type": "lead",
        "subject_id": lead.lead_id,
        "organization_id": lead.organization_id,
        "territory_model_id": context.model_id,
        "facts": lead.facts,
        "result": result.to_json(),
        # (the facts are the decision's own column: not copied into its trace)
        "trace": {"reassignment_run_id": chunk.run_id, "reason": reason},
        "planned_by_run_id": chunk.run_id,
    }


def _store_decisions(session: Session, items: list[dict[str, Any]], now: datetime) -> None:
    """Store the decisions the plan made (``decision`` of an item) and name each in its item's
    ``decision_id``. A plan that is never applied leaves them unreferenced: a lead's decision is the
    one it names (``Lead.decision_id``), and the apply gives the lead this one only if the lead is still
    as planned."""
    made = [item for item in items if item.get("decision")]
    decisions = [{**item["decision"], "created_at": now} for item in made]
    for item in items:
        item.setdefault("decision_id", None)
        item.pop("decision", None)
    if not decisions:
        return
    if session.get_bind().dialect.name == "postgresql":
        # ids from the table's sequence, then the rows by COPY: an INSERT ... RETURNING of a chunk's
        # decisions (wide JSON) cost an incremental plan of 9,600 moves about a second
        ids = list(session.scalars(_NEXT_DECISION_IDS, {"n": len(decisions)}))
        copy_rows(session, DECISIONS, [{"id": i, **d} for i, d in zip(ids, decisions, strict=True)])
    else:
        ids = list(
            session.scalars(
                insert(StoredDecision).returning(StoredDecision.id, sort_by_parameter_order=True), decisions
            )
        )
    for item, decision_id in zip(made, ids, strict=True):
        item["decision_id"] = decision_id


def plan_chunk(database_url: str, chunk: Chunk) -> dict[str, int]:
    """Re-decide the leads of one chunk and store their items (idempotent per run and lead)."""
    with collector_paused():
        return _plan_chunk(database_url, chunk)


def _plan_chunk(database_url: str, chunk: Chunk) -> dict[str, int]:
    db = database_for(database_url)
    with db.transaction() as session:
        run = session.get(ReassignmentRun, chunk.run_id)
        assert run is not None
    context = context_for(db, database_url, run)
    evaluator = get_evaluator()
    with db.read() as session:  # read, then decide outside any transaction
        done, named = session.execute(
            select(ReassignmentChunk.done_at, ReassignmentChunk.lead_ids).where(
                ReassignmentChunk.run_id == chunk.run_id,
                ReassignmentChunk.phase == PHASE,
                ReassignmentChunk.number == chunk.number,
            )
        ).one()
        if done is not None:
            return {}
        run = session.get(ReassignmentRun, chunk.run_id)
        assert run is not None
        in_range = [Lead.id >= chunk.first_id, Lead.id <= chunk.last_id]
        slices: list[list[ColumnElement[bool]]]
        ids: list[int] | None = None
        if run.incremental:  # the few leads of a wide id range first, then their decisions by id
            ids = (
                named
                if named is not None
                else list(session.scalars(branch_ids(run_branches(session, run), *in_range)))
            )
            slices = [[Lead.id.in_(ids[i : i + SLICE])] for i in range(0, len(ids), SLICE)]
        else:
            slices = [[*in_range, *conditions] for conditions in run_branches(session, run)]
        holds = _holds(session, chunk, ids)
    items: list[dict[str, Any]] = []
    evaluated = 0
    # each slice read on a thread (its own unit of work; every statement reads what was committed
    # before it began, as in one transaction at READ COMMITTED), the next while this one is decided:
    # the reads of a chunk by its leads' ids wait on the database about a third of the chunk's time
    with ThreadPoolExecutor(1, thread_name_prefix="plan-chunk-reader") as reader:
        for rows in [reader.submit(_read_rows, db, where) for where in slices]:
            for lead in rows.result():
                evaluated += 1
                item = _item(chunk, context, evaluator, holds, lead)
                if item is not None:
                    items.append(item)
    with db.transaction() as session:
        row = session.scalar(
            select(ReassignmentChunk)
            .where(
                ReassignmentChunk.run_id == chunk.run_id,
                ReassignmentChunk.phase == PHASE,
                ReassignmentChunk.number == chunk.number,
            )
            .with_for_update()
        )
        if row is None or row.done_at is not None:  # another worker finished it meanwhile
            return {}
        # new rows all: the chunk is not done, and its items are written with its done_at, in this
        # transaction (the chunk's row locked)
        now = utcnow()
        _store_decisions(session, items, now)
        copy_rows(session, ITEMS, items)
        row.done_at = now
    moved = sum(1 for i in items if i["outcome"] == ItemOutcome.MOVE.value)
    return {"evaluated": evaluated, "moved": moved, "kept": len(items) - moved}
