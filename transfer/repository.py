"""Our records as transfer documents (transfer.canonical), the correlation keys that pair our child
records with the partner's, and the audit rows of a transfer. A partner's documents are applied to our
records by ``transfer.inbound_repository``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from common import audit
from common.clock import utcnow
from common.errors import FieldProblem
from common.ids import parse_id
from common.principal import Principal
from directory.models import Customer, Product, User
from registration.leads.models import Lead, LeadActivity, LeadContact, LeadNote, LeadProduct
from registration.opportunities.models import (
    Opportunity,
    OpportunityActivity,
    OpportunityContact,
    OpportunityNote,
    OpportunityRevenueLine,
)
from transfer.canonical import MAX_CHILDREN
from transfer.errors import PartnerDataInvalid
from transfer.models import CorrelationKey, OpportunityTransfer
from transfer.profile import CORRELATIONS_KEY, DELETIONS_KEY

CHILD_KINDS = ("contacts", "revenue_lines", "notes", "activities")
Correlations = dict[str, dict[str, str]]  # kind -> {sender's id: receiver's id}
#: Where a transfer is kept as a lead here, its children's keys are stored under these kinds: a lead's
#: contact and an opportunity's contact are two id spaces (their ids may be equal), as the partner's lead
#: and opportunity are. Documents and answers always say the plain kind.
LEAD_PREFIX = "lead_"
#: The pair of the record itself a document carries beside its children's ({their id: our id}): how a
#: partner whose lead (kept from our transfer) became an opportunity names it to us under its new id.
RECORD_KIND = "record"


# --- correlation keys ---------------------------------------------------------------------------------


def on_lead(transfer: OpportunityTransfer) -> bool:
    """Whether the transfer's record here is a lead (kept as one, and not converted since)."""
    return transfer.opportunity_id is None and transfer.lead_id is not None


def stored_kind(transfer: OpportunityTransfer, kind: str) -> str:
    """The kind a child key of `transfer` is stored under (`kind`: the plain kind of documents)."""
    return LEAD_PREFIX + kind if kind in CHILD_KINDS and on_lead(transfer) else kind


def plain_kind(stored: str) -> str:
    """The kind as documents say it, for a stored kind (``lead_contacts`` -> ``contacts``).

    >>> plain_kind("lead_notes"), plain_kind("notes"), plain_kind("lead")
    ('notes', 'notes', 'lead')
    """
    bare = stored.removeprefix(LEAD_PREFIX)
    return bare if bare in CHILD_KINDS else stored


def correlation_map(session: Session, transfer: OpportunityTransfer, kind: str) -> dict[str, int]:
    """The partner's id -> our id of one record kind of a transfer."""
    rows = session.execute(
        select(CorrelationKey.remote_id, CorrelationKey.local_id).where(
            CorrelationKey.transfer_id == transfer.id, CorrelationKey.kind == stored_kind(transfer, kind)
        )
    )
    return {remote: local for remote, local in rows}


def remember(
    session: Session, transfer: OpportunityTransfer, kind: str, local_id: int, remote_id: str
) -> None:
    """Record our id <-> their id once (the same pair again changes nothing)."""
    remember_many(session, transfer, [(kind, local_id, remote_id)])


def remember_many(
    session: Session,
    transfer: OpportunityTransfer,
    pairs: Iterable[tuple[str, int, str]],
    *,
    deleted_at: datetime | None = None,
) -> None:
    """Record `pairs` of (kind, our id, their id) as `remember` does each, in order, in one statement
    whatever their number: a pair whose id on either side is paired already (by a key of the connection:
    the table's unique keys, ON CONFLICT DO NOTHING; or by an earlier pair of the list) is left out.
    `deleted_at`: the pairs are tombstones (of children deleted here)."""
    wanted = [(stored_kind(transfer, kind), local_id, remote_id) for kind, local_id, remote_id in pairs]
    if not wanted:
        return
    taken_local: set[tuple[str, int]] = set()
    taken_remote: set[tuple[str, str]] = set()
    rows = []
    for kind, local_id, remote_id in wanted:
        if (kind, local_id) in taken_local or (kind, remote_id) in taken_remote:
            continue
        taken_local.add((kind, local_id))
        taken_remote.add((kind, remote_id))
        rows.append(
            {
                "connection_id": transfer.connection_id,
                "transfer_id": transfer.id,
                "kind": kind,
                "local_id": local_id,
                "remote_id": remote_id,
                "created_at": utcnow(),
                "deleted_at": deleted_at,
            }
        )
    if rows:  # one statement (executemany), no ids read back
        session.execute(_insert_keys(session.get_bind().dialect.name), rows)


@cache
def _insert_keys(dialect: str) -> Insert:
    """The INSERT of `remember_many`: a pair either of whose ids the connection pairs already (a unique
    key of the table) is skipped."""
    table = cast(Table, CorrelationKey.__table__)
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def remember_reply(session: Session, transfer: OpportunityTransfer, correlations: Any) -> None:
    """Store the child correlations a partner's reply lists ({kind: {our id: their id}}); a pair naming
    a record that is not a child of the transfer's record here is ignored."""
    remember_many(session, transfer, reply_pairs(session, transfer, correlations))


def reply_pairs(
    session: Session,
    transfer: OpportunityTransfer,
    correlations: Any,
    gone: list[tuple[str, int, str]] | None = None,
    own: dict[str, set[int]] | None = None,
) -> list[tuple[str, int, str]]:
    """The (kind, our id, their id) pairs of a partner's reply ({kind: {our id: their id}}) that name a
    child of the transfer's record here, for `remember_many`. `gone` receives the pairs naming an id
    that is no child here (a child deleted while the document that carried it travelled, or nonsense:
    the caller tells them apart). `own`: the record's child ids, read already in this transaction."""
    if not isinstance(correlations, Mapping):
        return []
    kinds = [k for k, pairs in correlations.items() if k in CHILD_KINDS and isinstance(pairs, Mapping)]
    if not kinds:
        return []
    own = own if own is not None else all_child_ids(session, transfer)
    wanted = []
    for kind in kinds:
        for ours, theirs in correlations[kind].items():
            # our id as the partner echoes it: ASCII digits within the column's range, or it names nothing
            local_id = parse_id(str(ours))
            if local_id is None or not isinstance(theirs, str | int) or not str(theirs):
                continue
            if local_id in own[kind]:
                wanted.append((kind, local_id, str(theirs)[:200]))
            elif gone is not None:
                gone.append((kind, local_id, str(theirs)[:200]))
    return wanted


def record_pair(transfer: OpportunityTransfer) -> Correlations:
    """The record's own pair as a document carries it ({"record": {our id: theirs}}): only for a
    transfer kept as a lead here that converted since, whose new id the partner may not know yet."""
    if transfer.lead_id is None or transfer.opportunity_id is None or transfer.remote_id is None:
        return {}
    return {RECORD_KIND: {str(transfer.opportunity_id): transfer.remote_id}}


def pairs_of(session: Session, transfer: OpportunityTransfer) -> Correlations:
    """Every child pair of a transfer as we send it along: {kind: {our id: their id}}.

    Each document carries the pairs its sender knows, so a pair one side made (a child it created from a
    partner's query answer, a reply that was lost) reaches the other side with the next document, and
    neither side takes the other's copy of a child for a new one.
    """
    return document_pairs(session, transfer)[0]


def document_pairs(session: Session, transfer: OpportunityTransfer) -> tuple[Correlations, Correlations]:
    """The child pairs a document of ours carries (`pairs_of`) and its deletions (`DELETIONS_KEY`: the
    pairs of children deleted on either side, {kind: {our id: their id}}), read by one statement."""
    pairs: Correlations = {}
    deleted: Correlations = {}
    for k in all_correlations(session, transfer):
        kind = plain_kind(k.kind)
        if kind in CHILD_KINDS:
            (pairs if k.deleted_at is None else deleted).setdefault(kind, {})[str(k.local_id)] = k.remote_id
    return pairs, deleted


def documents_pairs(
    session: Session, transfers: Iterable[OpportunityTransfer]
) -> dict[int, tuple[Correlations, Correlations]]:
    """`document_pairs` of several transfers by one statement: {transfer id: (pairs, deletions)}."""
    by_id = {t.id: t for t in transfers}
    out: dict[int, tuple[Correlations, Correlations]] = {i: ({}, {}) for i in by_id}
    if not by_id:
        return out
    rows = session.execute(
        select(
            CorrelationKey.transfer_id,
            CorrelationKey.kind,
            CorrelationKey.local_id,
            CorrelationKey.remote_id,
            CorrelationKey.deleted_at,
        )
        .where(CorrelationKey.transfer_id.in_(by_id))
        .order_by(CorrelationKey.transfer_id, CorrelationKey.kind, CorrelationKey.local_id)
    )
    for transfer_id, stored, local_id, remote_id, deleted_at in rows:
        kind = plain_kind(stored)
        if kind in CHILD_KINDS:
            pairs, deleted = out[transfer_id]
            (pairs if deleted_at is None else deleted).setdefault(kind, {})[str(local_id)] = remote_id
    return out


def replied_pairs(session: Session, transfer: OpportunityTransfer) -> tuple[Correlations, Correlations]:
    """Every child pair of a transfer as we answer a partner ({kind: {their id: our id}}), and the pairs
    of deleted children the same way round (the answer's `DELETIONS_KEY`), by one statement."""
    pairs: Correlations = {}
    deleted: Correlations = {}
    for k in all_correlations(session, transfer):
        kind = plain_kind(k.kind)
        if kind in CHILD_KINDS:
            (pairs if k.deleted_at is None else deleted).setdefault(kind, {})[k.remote_id] = str(k.local_id)
    return pairs, deleted


def bury_deleted_children(session: Session, transfer: OpportunityTransfer, *, now: datetime) -> int:
    """Keys of the transfer's children that no longer exist here (deleted through the API) become
    tombstones: the partner is told with the next document, and its copy is never taken for new.
    Returns how many."""
    own = all_child_ids(session, transfer)
    buried = 0
    for key in all_correlations(session, transfer):
        kind = plain_kind(key.kind)
        if kind in CHILD_KINDS and key.deleted_at is None and key.local_id not in own[kind]:
            key.deleted_at = now
            buried += 1
    if buried:
        session.flush()
    return buried


def adopt_pairs(session: Session, transfer: OpportunityTransfer, pairs: Any) -> None:
    """Follow the partner's renumbering of its children: the record the partner kept our transfer as got
    a new id (the lead it was kept as converted into an opportunity: the same contacts, notes... under
    new ids), and `pairs` is every child pair the partner keeps now ({kind: {our id: their id}}: what a
    document or an update's answer carries). Each of our keys takes the partner's new id for its child;
    a key whose child the partner no longer pairs is left as it is."""
    if not isinstance(pairs, Mapping):
        return
    for kind, theirs_of in pairs.items():
        if kind not in CHILD_KINDS or not isinstance(theirs_of, Mapping):
            continue
        stored = stored_kind(transfer, kind)
        keys = list(
            session.scalars(
                select(CorrelationKey).where(
                    CorrelationKey.transfer_id == transfer.id, CorrelationKey.kind == stored
                )
            )
        )
        moves: dict[int, str] = {}  # key id -> the partner's new id
        for key in keys:
            now_theirs = theirs_of.get(str(key.local_id))
            if isinstance(now_theirs, str | int) and str(now_theirs) not in ("", key.remote_id):
                moves[key.id] = str(now_theirs)[:200]
        if not moves:
            continue
        moving = [k for k in keys if k.id in moves]
        staying = set(
            session.scalars(
                select(CorrelationKey.remote_id).where(
                    CorrelationKey.connection_id == transfer.connection_id,
                    CorrelationKey.kind == stored,
                    CorrelationKey.remote_id.in_(set(moves.values())),
                    CorrelationKey.id.not_in(list(moves)),
                )
            )
        )
        targets = list(moves.values())
        moving = [k for k in moving if moves[k.id] not in staying and targets.count(moves[k.id]) == 1]
        # in two steps, so that ids shifting along (1 -> 2, 2 -> 3) never meet in the unique index
        for key in moving:
            key.remote_id = f"renumbering:{key.id}"
        session.flush()
        for key in moving:
            key.remote_id = moves[key.id]
        session.flush()


def rename_remote(session: Session, transfer: OpportunityTransfer, remote_type: str, remote_id: str) -> bool:
    """The partner keeps the transfer's record under another type and id now (its lead converted into
    its opportunity): the transfer and the record's key say so, unless another transfer of the connection
    names that record already. Returns whether it was renamed."""
    taken = session.scalar(
        select(OpportunityTransfer.id).where(
            OpportunityTransfer.connection_id == transfer.connection_id,
            OpportunityTransfer.remote_type == remote_type,
            OpportunityTransfer.remote_id == remote_id,
            OpportunityTransfer.id != transfer.id,
        )
    )
    if taken is not None:
        return False
    transfer.remote_type, transfer.remote_id = remote_type, remote_id
    key = session.scalar(
        select(CorrelationKey).where(
            CorrelationKey.transfer_id == transfer.id, CorrelationKey.kind == "opportunity"
        )
    )
    if key is not None and key.remote_id != remote_id:
        clash = session.scalar(
            select(CorrelationKey.id).where(
                CorrelationKey.connection_id == transfer.connection_id,
                CorrelationKey.kind == "opportunity",
                CorrelationKey.remote_id == remote_id,
            )
        )
        if clash is None:
            key.remote_id = remote_id
    session.flush()
    return True


def mirrored(hints: Correlations) -> Correlations:
    """A document's child pairs ({kind: {their id: our id}}) the way round `adopt_pairs` takes them."""
    return {
        kind: {ours: theirs for theirs, ours in pairs.items()}
        for kind, pairs in hints.items()
        if kind in CHILD_KINDS
    }


def hints_of(payload: Any) -> Correlations:
    """The pairs a partner's document carries (``correlations``: {kind: {their id: our id}}), checked;
    `PartnerDataInvalid` lists what does not fit."""
    return _pairs_in(payload, CORRELATIONS_KEY, (*CHILD_KINDS, RECORD_KIND))


def deletions_of(payload: Any) -> Correlations:
    """The pairs of children deleted on the partner's side that its document carries (``deletions``:
    {kind: {their id: our id}}), checked like `hints_of`."""
    return _pairs_in(payload, DELETIONS_KEY, CHILD_KINDS)


def _pairs_in(payload: Any, key: str, allowed: tuple[str, ...]) -> Correlations:
    raw = payload.get(key) if isinstance(payload, Mapping) else None
    if raw is None:
        return {}
    problems: list[FieldProblem] = []
    out: Correlations = {}
    if not isinstance(raw, Mapping):
        raise PartnerDataInvalid(
            f"the document's {key} are not pairs of ids",
            [FieldProblem(f"/{key}", "expected an object of {kind: {their id: our id}}")],
        )
    for kind, pairs in raw.items():
        where = f"/{key}/{kind}"
        if kind not in allowed:
            expected = ", ".join(allowed)
            problems.append(FieldProblem(where, f"unknown kind; expected one of: {expected}"))
        elif not isinstance(pairs, Mapping) or len(pairs) > MAX_CHILDREN:
            problems.append(FieldProblem(where, f"expected an object of at most {MAX_CHILDREN} id pairs"))
        else:
            good = {
                str(theirs)[:200]: str(ours)
                for theirs, ours in pairs.items()
                if isinstance(ours, str | int) and not isinstance(ours, bool) and str(theirs)
            }
            if len(good) != len(pairs):
                problems.append(
                    FieldProblem(where, "every pair is a non-empty id and a string or integer id")
                )
            out[kind] = good
    if problems:
        raise PartnerDataInvalid(f"the document's {key} are not pairs of ids", problems)
    return out


def child_ids(session: Session, transfer: OpportunityTransfer, kind: str) -> set[int]:
    """Our ids of the transfer's child records of one kind (of its opportunity, or of its lead)."""
    return all_child_ids(session, transfer)[kind]


def all_child_ids(session: Session, transfer: OpportunityTransfer) -> dict[str, set[int]]:
    """Our ids of the transfer's child records of every kind (of its opportunity, or of its lead), in
    one statement: {kind: ids}."""
    out: dict[str, set[int]] = {kind: set() for kind in CHILD_KINDS}
    if on_lead(transfer):
        tables, column, owner = _LEAD_CHILD_TABLES, "lead_id", transfer.lead_id
    elif transfer.opportunity_id is not None:
        tables, column, owner = _OPPORTUNITY_CHILD_TABLES, "opportunity_id", transfer.opportunity_id
    else:
        return out
    parts = [
        select(literal(kind).label("kind"), table.id).where(getattr(table, column) == owner)
        for kind, table in tables.items()
    ]
    for kind, child_id in session.execute(union_all(*parts)):
        out[kind].add(child_id)
    return out


def opportunities_child_ids(
    session: Session, opportunity_ids: Iterable[int]
) -> dict[int, dict[str, set[int]]]:
    """`all_child_ids` of several opportunities by one statement: {opportunity id: {kind: ids}}."""
    wanted = set(opportunity_ids)
    out: dict[int, dict[str, set[int]]] = {i: {kind: set() for kind in CHILD_KINDS} for i in wanted}
    if not wanted:
        return out
    parts = [
        select(literal(kind).label("kind"), table.opportunity_id, table.id).where(
            table.opportunity_id.in_(wanted)
        )
        for kind, table in _OPPORTUNITY_CHILD_TABLES.items()
    ]
    for kind, opp_id, child_id in session.execute(union_all(*parts)):
        out[opp_id][kind].add(child_id)
    return out


_OPPORTUNITY_CHILD_TABLES: dict[str, Any] = {
    "contacts": OpportunityContact,
    "revenue_lines": OpportunityRevenueLine,
    "notes": OpportunityNote,
    "activities": OpportunityActivity,
}
_LEAD_CHILD_TABLES: dict[str, Any] = {
    "contacts": LeadContact,
    "revenue_lines": LeadProduct,
    "notes": LeadNote,
    "activities": LeadActivity,
}


def lead_children(session: Session, lead_id: int, kind: str) -> list[Any]:
    """A lead's child records of one kind, oldest first (revenue lines: its products)."""
    table = _LEAD_CHILD_TABLES[kind]
    return list(session.scalars(select(table).where(table.lead_id == lead_id).order_by(table.id)))


def all_correlations(session: Session, transfer: OpportunityTransfer) -> list[CorrelationKey]:
    return list(
        session.scalars(
            select(CorrelationKey)
            .where(CorrelationKey.transfer_id == transfer.id)
            .order_by(CorrelationKey.kind, CorrelationKey.local_id)
        )
    )


# --- our records as documents -------------------------------------------------------------------------


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(Decimal(value).quantize(Decimal("0.01")), "f")


def _user_key(session: Session, user_id: int | None) -> str | None:
    return session.scalar(select(User.key).where(User.id == user_id)) if user_id else None


def opportunity_document(session: Session, opp: Opportunity) -> dict[str, Any]:
    """The canonical document of an opportunity and its children, with our ids."""
    customer = session.get(Customer, opp.customer_id) if opp.customer_id else None
    products = {
        p.id: p.key
        for p in session.scalars(
            select(Product).where(Product.id.in_([r.product_id for r in opp.revenue_lines]))
        )
    }
    return {
        "id": str(opp.id),
        "name": opp.name,
        "customer": customer.name if customer else None,
        "status": opp.status,
        "stage": opp.stage,
        "amount": _money(opp.amount),
        "currency": opp.currency,
        "close_date": opp.expected_close_date.isoformat() if opp.expected_close_date else None,
        "description": opp.description,
        "registration_number": opp.registration_number,
        "owner": _user_key(session, opp.owner_user_id),
        "contacts": [
            {"id": str(c.id), "name": c.name, "email": c.email, "phone": c.phone, "role": c.role}
            for c in opp.contacts
        ],
        "revenue_lines": [
            {
                "id": str(r.id),
                "product": products.get(r.product_id),
                "amount": _money(r.amount),
                "currency": r.currency,
            }
            for r in opp.revenue_lines
        ],
        "notes": [
            {
                "id": str(n.id),
                "text": n.text,
                "author": _user_key(session, n.author_user_id),
                "created_at": n.written_at.isoformat(),
            }
            for n in opp.notes
        ],
        "activities": [
            {
                "id": str(a.id),
                "kind": a.kind[:40],
                "subject": a.subject,
                "due_date": (a.details or {}).get("due_date"),
                "done": (a.details or {}).get("done"),
            }
            for a in opp.activities
        ],
    }


def lead_document(session: Session, lead: Lead) -> dict[str, Any]:
    """The canonical document of a lead an inbound transfer created (lead mode), its children with our
    ids: contacts, revenue lines (its products, with their amounts), notes and activities."""
    customer = session.get(Customer, lead.customer_id) if lead.customer_id else None
    lines = lead_children(session, lead.id, "revenue_lines")
    products = {
        p.id: p.key
        for p in session.scalars(select(Product).where(Product.id.in_([lp.product_id for lp in lines])))
    }
    contacts = [
        {"id": str(c.id), "name": c.name, "email": c.email, "phone": c.phone, "role": c.role}
        for c in lead_children(session, lead.id, "contacts")
    ]
    if not contacts and (lead.contact_name or lead.contact_email):
        # a lead kept before leads had contacts of their own: its one contact, under an id of the lead's
        contacts = [
            {
                "id": f"lead-{lead.id}",
                "name": lead.contact_name,
                "email": lead.contact_email,
                "phone": lead.contact_phone,
            }
        ]
    return {
        "id": str(lead.id),
        "name": lead.name,
        "customer": customer.name if customer else None,
        "status": lead.deal_status or "open",
        "stage": lead.stage,
        "amount": _money(lead.deal_size),
        "currency": lead.currency,
        "close_date": lead.expected_close_date.isoformat() if lead.expected_close_date else None,
        "description": lead.description,
        "contacts": contacts,
        "revenue_lines": [
            {
                "id": str(lp.id),
                "product": products.get(lp.product_id),
                "amount": _money(lp.amount),
                "currency": lp.currency or lead.currency,
            }
            for lp in lines
        ],
        "notes": [
            {
                "id": str(n.id),
                "text": n.text,
                "author": _user_key(session, n.author_user_id),
                "created_at": n.created_at.isoformat(),
            }
            for n in lead_children(session, lead.id, "notes")
        ],
        "activities": [
            {
                "id": str(a.id),
                "kind": a.kind[:40],
                "subject": a.subject,
                "due_date": (a.details or {}).get("due_date"),
                "done": (a.details or {}).get("done"),
            }
            for a in lead_children(session, lead.id, "activities")
        ],
    }


# --- audit ------------------------------------------------------------------------------------------


def record(
    session: Session,
    actor: Principal | None,
    transfer: OpportunityTransfer,
    action: str,
    *,
    now: datetime,
    before: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """One audit row about a transfer (entity ``opportunity_transfer``)."""
    audit.record(
        session,
        actor,
        "opportunity_transfer",
        transfer.id,
        action,
        before=before,
        after={"status": transfer.status, "attempts": transfer.attempts},
        details={
            "connection_id": transfer.connection_id,
            "opportunity_id": transfer.opportunity_id,
            "lead_id": transfer.lead_id,
            "remote_id": transfer.remote_id,
            **(details or {}),
        },
        now=now,
    )
