"""A partner's documents applied to our records: an opportunity updated, or a new opportunity or lead
created, with the correlation keys of what the document named.

Applying a partner's document changes only what a document may carry: the opportunity's name,
description, stage, status (open/won/lost), amount, currency and close date, and its contacts, revenue
lines, notes and activities. A transfer kept as a lead takes the same children, paired the same way (the
lead's products are its revenue lines), and the deal's stage and open/won/lost (``deal_status``). Owner,
organization and the registration (its status, number, expiry) are never touched (RELIABILITY.md, "data
from a partner"); `transfer.canonical` already refuses the owner and the registration number from a
partner. Child records the partner left out are kept; a child deleted on either side (through the
opportunities API) is deleted on the other by the next document in either direction, which carries the
tombstones of its pairs (``deletions``), and is never brought back by a document that still carries it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, Protocol, cast

from sqlalchemy import Table, insert, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from common.clock import utcnow
from common.errors import FieldProblem
from common.ids import parse_id
from directory.models import Customer, Product
from registration.leads.lifecycle import LeadStatus, RegistrationStatus
from registration.leads.models import Lead, LeadActivity, LeadContact, LeadNote, LeadProduct
from registration.opportunities.conversion_service import opportunity_number
from registration.opportunities.models import (
    Opportunity,
    OpportunityActivity,
    OpportunityContact,
    OpportunityNote,
    OpportunityRevenueLine,
)
from transfer.errors import PartnerDataInvalid
from transfer.models import CorrelationKey, OpportunityTransfer, PartnerCrmConnection
from transfer.repository import (
    CHILD_KINDS,
    Correlations,
    all_correlations,
    lead_children,
    on_lead,
    plain_kind,
    remember,
    remember_many,
    stored_kind,
)


def _trim(value: Any, length: int) -> Any:
    return value[:length] if isinstance(value, str) else value


#: Where a transaction keeps the products and customers its documents named (a batch call's items name
#: the same few again and again): {key or name: id}.
_PRODUCTS, _CUSTOMERS = "prm.transfer.products", "prm.transfer.customers"


def _products(session: Session, doc: Mapping[str, Any]) -> dict[str, int]:
    """Product key or name -> id for every product the document names; unknown ones are an error."""
    wanted = {
        line["product"]
        for line in doc.get("revenue_lines") or []
        if isinstance(line.get("product"), str) and line["product"]
    }
    known: dict[str, int] = session.info.setdefault(_PRODUCTS, {})
    found = {name: known[name] for name in wanted if name in known}
    if wanted - found.keys():
        asked = wanted - found.keys()
        rows = session.execute(
            select(Product.id, Product.key, Product.name)
            .where(or_(Product.key.in_(asked), Product.name.in_(asked)))
            .order_by(Product.id)
        )
        by_name = []
        for product_id, product_key, product_name in rows:  # a key names its product before a name does
            if product_key in asked:
                found.setdefault(product_key, product_id)
            by_name.append((product_name, product_id))
        for product_name, product_id in by_name:
            if product_name in asked:
                found.setdefault(product_name, product_id)
        known.update(found)
    problems = [
        FieldProblem(f"/revenue_lines/{i}/product", f"unknown product {line['product']!r}")
        for i, line in enumerate(doc.get("revenue_lines") or [])
        if isinstance(line.get("product"), str) and line["product"] and line["product"] not in found
    ]
    if problems:
        raise PartnerDataInvalid("the partner's document names products we do not have", problems)
    return found


def _close_date(doc: Mapping[str, Any]) -> date | None:
    value = doc.get("close_date")
    return date.fromisoformat(value) if value else None


def _amount(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(Decimal("0.01"))


class _Children(Protocol):
    """The record a document's children go to: its children of one kind by id, and a new child of it;
    the kind of its own key and its id."""

    kind: str

    def record_id(self) -> int: ...

    def own(self, kind: str) -> dict[int, Any]: ...

    def add(self, kind: str, item: Mapping[str, Any]) -> Any: ...

    def remove(self, kind: str, row: Any) -> None: ...


class _OpportunityChildren:
    kind = "opportunity"

    def __init__(self, opp: Opportunity, products: Mapping[str, int], now: datetime) -> None:
        self.opp, self.products, self.now = opp, products, now

    def record_id(self) -> int:
        return self.opp.id

    def own(self, kind: str) -> dict[int, Any]:
        return {r.id: r for r in getattr(self.opp, kind)}

    def add(self, kind: str, item: Mapping[str, Any]) -> Any:
        row = _new_child(kind, item, self.products, self.now)
        getattr(self.opp, kind).append(row)
        return row

    def remove(self, kind: str, row: Any) -> None:
        getattr(self.opp, kind).remove(row)  # delete-orphan


class _LeadChildren:
    """A lead's contacts, products (its revenue lines), notes and activities."""

    kind = "lead"

    def __init__(self, session: Session, lead: Lead, products: Mapping[str, int], now: datetime) -> None:
        self.session, self.lead, self.products, self.now = session, lead, products, now

    def record_id(self) -> int:
        return self.lead.id

    def own(self, kind: str) -> dict[int, Any]:
        return {r.id: r for r in lead_children(self.session, self.lead.id, kind)}

    def add(self, kind: str, item: Mapping[str, Any]) -> Any:
        lead = self.lead
        values = _child_values(kind, item, self.products, self.now)
        row: Any
        if kind == "revenue_lines":
            # one row per product on a lead (as on an opportunity): a second line of it is that row
            same = next((p for p in lead.products if p.product_id == values["product_id"]), None)
            if same is not None:
                _update_child(kind, same, item, self.products)
                return same
            row = LeadProduct(**values, is_primary=not any(p.is_primary for p in lead.products))
            lead.products.append(row)
            return row
        if kind == "contacts":
            contacts = lead_children(self.session, lead.id, "contacts")
            row = LeadContact(lead_id=lead.id, **values, is_primary=not any(c.is_primary for c in contacts))
        elif kind == "notes":
            row = LeadNote(lead_id=lead.id, text=values["text"], created_at=values["written"])
        else:
            row = LeadActivity(lead_id=lead.id, **values)
        self.session.add(row)
        return row

    def remove(self, kind: str, row: Any) -> None:
        if kind == "revenue_lines":
            self.lead.products.remove(row)  # delete-orphan
        else:
            self.session.delete(row)


def _put_fields(
    record: Any, doc: Mapping[str, Any], columns: Mapping[str, str], changes: dict[str, Any]
) -> None:
    """The document's top-level fields onto `record` ({document field: column}); what changed goes to
    `changes` as {field: [before, after]}."""
    converters: dict[str, Any] = {
        "name": lambda v: _trim(v, 200),
        "stage": lambda v: _trim(v, 100),
        "amount": _amount,
        "close_date": lambda v: date.fromisoformat(v) if v else None,
    }
    for field, column in columns.items():
        if field not in doc or (field == "name" and not doc["name"]):
            continue
        value = converters.get(field, lambda v: v)(doc[field])
        before = getattr(record, column)
        if before != value:
            changes[field] = [
                str(before) if before is not None else None,
                str(value) if value is not None else None,
            ]
            setattr(record, column, value)


def _pair_children(
    session: Session,
    transfer: OpportunityTransfer,
    doc: Mapping[str, Any],
    target: _Children,
    products: Mapping[str, int],
    hints: Correlations | None,
    changes: dict[str, Any],
    record_key: str | None = None,
    deletions: Correlations | None = None,
) -> Correlations:
    """Each child the document carries paired with ours (updated) or new here (added), the pairs kept
    as correlation keys; returns them ({kind: {their id: our id}}).

    A child is ours already when a correlation key pairs its id with one of ours, or when `hints` (the
    pairs the partner sent along, {kind: {their id: our id}}) names a child of the record that is not
    paired yet; anything else is new here. `record_key`: the partner's id of the record itself, to be
    paired with it too (a record new here: one statement stores every key).

    A child deleted on either side is never added again: `deletions` (the partner's tombstones, {kind:
    {their id: our id}}) delete our copy and leave a tombstone here; a child whose key is a tombstone
    here is skipped, whatever the document says of it."""
    stored = all_correlations(session, transfer) if record_key is None or deletions else []
    if deletions:
        _delete_children(session, transfer, target, stored, deletions, changes)
    known_of, buried = _correlation_maps(transfer, stored)
    of_doc: dict[str, dict[str, Any]] = {}  # kind -> {their id: our record}, as this document pairs them
    for kind in CHILD_KINDS:
        items = doc.get(kind)
        if not items:
            continue
        known = known_of.get(kind, {})
        dead = buried.get(kind, set()) | set((deletions or {}).get(kind, {}))
        paired = set(known.values())
        offered = (hints or {}).get(kind, {})
        own = target.own(kind)
        pairs = of_doc.setdefault(kind, {})
        added = updated = 0
        for item in items:
            remote_id = item.get("id")
            if remote_id in dead:
                continue  # deleted on one side: not brought back
            local = pairs.get(remote_id) if remote_id else None
            if local is None and remote_id in known:
                local = own.get(known[remote_id])
                if local is None:  # paired, and deleted here since: a tombstone, not a new child
                    _bury(stored, transfer, kind, remote_id)
                    continue
            if local is None and remote_id and remote_id not in known:
                # the partner already pairs its record with one of ours (its copy of ours, or ours of its)
                hinted = parse_id(offered.get(remote_id, ""))
                if hinted is not None and hinted in own and hinted not in paired:
                    local = own[hinted]
            if local is None:
                local = target.add(kind, item)
                added += 1
            elif _update_child(kind, local, item, products):
                updated += 1
            if remote_id:
                pairs.setdefault(remote_id, local)
                if local.id is not None:
                    paired.add(local.id)
        if added or updated:
            changes[kind] = {**changes.get(kind, {}), "added": added, "updated": updated}
    session.flush()  # the new children's ids, for their keys
    keys = [(target.kind, target.record_id(), record_key)] if record_key is not None else []
    keys += [
        (kind, local.id, remote_id) for kind, pairs in of_doc.items() for remote_id, local in pairs.items()
    ]
    remember_many(session, transfer, keys)
    return {
        kind: {remote_id: str(local.id) for remote_id, local in pairs.items()}
        for kind, pairs in of_doc.items()
    }


def _correlation_maps(
    transfer: OpportunityTransfer, keys: list[CorrelationKey]
) -> tuple[dict[str, dict[str, int]], dict[str, set[str]]]:
    """The partner's id -> our id of every child kind of a transfer ({plain kind: {theirs: ours}}) from
    its `keys` (those of the record's own kind: a lead's children while it is kept as a lead), and the
    partner's ids of the tombstones ({plain kind: {theirs}})."""
    out: dict[str, dict[str, int]] = {}
    buried: dict[str, set[str]] = {}
    for key in keys:
        kind = plain_kind(key.kind)
        if kind not in CHILD_KINDS:
            continue
        if key.deleted_at is not None:  # (a lead child's tombstone too, after the lead converted)
            buried.setdefault(kind, set()).add(key.remote_id)
        elif key.kind == stored_kind(transfer, kind):
            out.setdefault(kind, {})[key.remote_id] = key.local_id
    return out, buried


def _bury(stored: list[CorrelationKey], transfer: OpportunityTransfer, kind: str, remote_id: str) -> None:
    for key in stored:
        if key.kind == stored_kind(transfer, kind) and key.remote_id == remote_id and key.deleted_at is None:
            key.deleted_at = utcnow()


def _delete_children(
    session: Session,
    transfer: OpportunityTransfer,
    target: _Children,
    keys: list[CorrelationKey],
    deletions: Correlations,
    changes: dict[str, Any],
) -> None:
    """The partner deleted these children ({kind: {their id: our id}}): our copies go too, and their
    keys stay as tombstones (a pair not stored yet is stored as one)."""
    now = utcnow()
    new_tombstones: list[tuple[str, int, str]] = []
    for kind, pairs in deletions.items():
        if kind not in CHILD_KINDS or not pairs:
            continue
        stored = stored_kind(transfer, kind)
        by_remote = {k.remote_id: k for k in keys if k.kind == stored}
        # a tombstone of a lead child, after the lead converted: its id is no child of the opportunity
        by_remote |= {k.remote_id: k for k in keys if k.deleted_at is not None and plain_kind(k.kind) == kind}
        by_local = {k.local_id: k for k in keys if k.kind == stored}
        own = target.own(kind)
        deleted = 0
        for theirs, ours in pairs.items():
            key = by_remote.get(theirs)
            if key is not None:
                if key.deleted_at is not None:
                    continue  # deleted here already
                local_id: int | None = key.local_id
                key.deleted_at = now
            else:
                local_id = parse_id(ours)
                if local_id is None or local_id not in own:
                    continue  # names nothing of ours
                if local_id in by_local:
                    continue  # ours is paired with another of theirs: not the child they deleted
                new_tombstones.append((kind, local_id, theirs))  # their pair never reached us
            row = own.pop(local_id, None) if local_id is not None else None
            if row is not None:
                target.remove(kind, row)
                deleted += 1
        if deleted:
            changes.setdefault(kind, {"added": 0, "updated": 0})["deleted"] = deleted
    session.flush()
    remember_many(session, transfer, new_tombstones, deleted_at=now)


def apply_document(
    session: Session,
    transfer: OpportunityTransfer,
    opp: Opportunity,
    doc: Mapping[str, Any],
    *,
    now: datetime,
    hints: Correlations | None = None,
    record_key: str | None = None,
    deletions: Correlations | None = None,
) -> tuple[Correlations, dict[str, Any]]:
    """Apply a partner's canonical document (their ids) to `opp`; returns the children's correlations
    ({kind: {their id: our id}}) and what changed ({field: [before, after]}, child counts).
    `record_key`: the partner's id of a new opportunity, stored as its key with its children's."""
    products = _products(session, doc)
    changes: dict[str, Any] = {}
    _put_fields(opp, doc, _OPPORTUNITY_COLUMNS, changes)
    status = doc.get("status")
    if status and status != opp.status:
        changes["status"] = [opp.status, status]
        opp.status = status
        opp.closed_at = now if status in ("won", "lost") else None
        opp.closed_by = None
        opp.activities.append(
            OpportunityActivity(
                kind=f"partner_{status}",
                subject=f"Status set to {status} in the partner's CRM",
                occurred_at=now,
                details={"transfer_id": transfer.id},
            )
        )
    target = _OpportunityChildren(opp, products, now)
    correlations = _pair_children(
        session, transfer, doc, target, products, hints, changes, record_key, deletions
    )
    if changes:
        opp.updated_at = now
    session.flush()
    return correlations, changes


_OPPORTUNITY_COLUMNS = {
    "name": "name",
    "description": "description",
    "stage": "stage",
    "amount": "amount",
    "currency": "currency",
    "close_date": "expected_close_date",
}
#: What a lead holds of a document's own fields (the deal's open/won/lost as its ``deal_status``, beside
#: the registration's status and the lead's own open/converted).
_LEAD_COLUMNS = {
    "name": "name",
    "description": "description",
    "stage": "stage",
    "status": "deal_status",
    "amount": "deal_size",
    "currency": "currency",
    "close_date": "expected_close_date",
}


def apply_lead_document(
    session: Session,
    transfer: OpportunityTransfer,
    lead: Lead,
    doc: Mapping[str, Any],
    *,
    now: datetime,
    hints: Correlations | None = None,
    record_key: str | None = None,
    deletions: Correlations | None = None,
) -> tuple[Correlations, dict[str, Any]]:
    """Apply a partner's canonical document to a lead it is kept as: its fields, and its children
    paired as an opportunity's are (contacts, revenue lines as the lead's products with their amounts,
    notes, activities); the lead's own contact fields follow its primary contact. Returns what
    `apply_document` returns."""
    products = _products(session, doc)
    changes: dict[str, Any] = {}
    _put_fields(lead, doc, _LEAD_COLUMNS, changes)
    target = _LeadChildren(session, lead, products, now)
    correlations = _pair_children(
        session, transfer, doc, target, products, hints, changes, record_key, deletions
    )
    if "contacts" in changes:
        contacts = lead_children(session, lead.id, "contacts")
        primary = next((c for c in contacts if c.is_primary), contacts[0] if contacts else None)
        if primary is not None:
            lead.contact_name, lead.contact_email, lead.contact_phone = (
                primary.name,
                primary.email,
                primary.phone,
            )
    if changes:
        lead.updated_at = now
    session.flush()
    return correlations, changes


def _child_values(
    kind: str, item: Mapping[str, Any], products: Mapping[str, int], now: datetime
) -> dict[str, Any]:
    """The columns of a new child record of `kind` from the partner's `item` (a note's time: ``written``)."""
    if kind == "contacts":
        return {
            "name": _trim(item.get("name"), 200),
            "email": _trim(item.get("email"), 254),
            "phone": _trim(item.get("phone"), 40),
            "role": _trim(item.get("role"), 100),
        }
    if kind == "revenue_lines":
        product = item.get("product")
        if not product:
            raise PartnerDataInvalid(
                "a new revenue line needs its product", [FieldProblem("/revenue_lines", "product missing")]
            )
        return {
            "product_id": products[product],
            "amount": _amount(item.get("amount")),
            "currency": item.get("currency"),
        }
    if kind == "notes":
        written = item.get("created_at")
        return {
            "text": item.get("text") or "",
            "written": datetime.fromisoformat(written) if written else now,
        }
    details = {k: item[k] for k in ("due_date", "done") if item.get(k) is not None}
    return {
        "kind": _trim(item.get("kind") or "activity", 40),
        "subject": _trim(item.get("subject") or "", 300),
        "occurred_at": now,
        "details": details or None,
    }


def _new_child(kind: str, item: Mapping[str, Any], products: Mapping[str, int], now: datetime) -> Any:
    values = _child_values(kind, item, products, now)
    if kind == "notes":
        return OpportunityNote(text=values["text"], written_at=values["written"])
    table = {
        "contacts": OpportunityContact,
        "revenue_lines": OpportunityRevenueLine,
        "activities": OpportunityActivity,
    }[kind]
    return table(**values)


def _update_child(kind: str, record: Any, item: Mapping[str, Any], products: Mapping[str, int]) -> bool:
    values: dict[str, Any] = {}
    if kind == "contacts":
        values = {
            k: _trim(item[k], n)
            for k, n in (("name", 200), ("email", 254), ("phone", 40), ("role", 100))
            if k in item
        }
    elif kind == "revenue_lines":
        if "amount" in item:
            values["amount"] = _amount(item["amount"])
        if "currency" in item:
            values["currency"] = item["currency"]
        if item.get("product"):
            values["product_id"] = products[item["product"]]
    elif kind == "notes":
        if item.get("text"):
            values["text"] = item["text"]
    else:
        if item.get("subject"):
            values["subject"] = _trim(item["subject"], 300)
        extra = {k: item[k] for k in ("due_date", "done") if k in item}
        if extra:
            values["details"] = {**(record.details or {}), **extra}
    changed = False
    for column, value in values.items():
        if getattr(record, column) != value:
            setattr(record, column, value)
            changed = True
    return changed


def _customer_id(session: Session, name: Any) -> int | None:
    if not isinstance(name, str) or not name:
        return None
    known: dict[str, int | None] = session.info.setdefault(_CUSTOMERS, {})
    if name not in known:
        known[name] = session.scalar(
            select(Customer.id)
            .where(or_(Customer.name == name, Customer.key == name))
            .order_by(Customer.id)
            .limit(1)
        )
    return known[name]


def create_opportunity(
    session: Session,
    connection: PartnerCrmConnection,
    transfer: OpportunityTransfer,
    doc: Mapping[str, Any],
    *,
    now: datetime,
    hints: Correlations | None = None,
    message: Callable[[int], str] | None = None,
) -> tuple[int, Correlations]:
    """A new opportunity (under a lead of its own: an opportunity always has one) from a partner's
    document; the connection's organization owns both, and its key pairs it with the document's id. No
    registration: nothing is approved by this. Returns its id and the children's correlations.
    `transfer` (new, or written already) is written with the opportunity's id, and the `message` of it.

    The rows are written by plain INSERTs (the lead, the opportunity, one per kind of child), not by the
    ORM's unit of work: a record new here is nothing but what the document says (`apply_document` on an
    empty opportunity, whose children all are new, and a child id the document names twice is one child
    updated by the later item). `hints` pair nothing yet: no child of a new record is anyone's copy."""
    with session.no_autoflush:  # the transfer, if new, is written once: with the opportunity's id
        products = _products(session, doc)
        name = _trim(doc.get("name") or "Transferred opportunity", 200)
        customer_id = _customer_id(session, doc.get("customer"))
        lead_id = session.execute(
            _insert_returning_id(Lead),
            {
                "organization_id": connection.organization_id,
                "name": name,
                "description": doc.get("description"),
                "customer_id": customer_id,
                "deal_size": _amount(doc.get("amount")),
                "currency": doc.get("currency"),
                "expected_close_date": _close_date(doc),
                "sales_channel": "partner",
                "accepted": True,
                "status": RegistrationStatus.DRAFT.value,
                "lead_status": LeadStatus.CONVERTED.value,
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        opp = _Fields(
            name=name, **dict.fromkeys(("description", "stage", "amount", "currency", "expected_close_date"))
        )
        _put_fields(opp, doc, _OPPORTUNITY_COLUMNS, {})
        status, closed_at = "open", None
        if doc.get("status") and doc["status"] != status:
            status = doc["status"]
            closed_at = now if status in ("won", "lost") else None
        opp_id = session.execute(
            _insert_returning_id(Opportunity),
            {
                "number": opportunity_number(None, lead_id),
                "lead_id": lead_id,
                "organization_id": connection.organization_id,
                "customer_id": customer_id,
                **vars(opp),
                "status": status,
                "closed_at": closed_at,
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
    transfer.opportunity_id = opp_id
    if message is not None:
        transfer.message = message(opp_id)
    session.flush()  # the transfer, whose id its keys and its activity name
    keys: list[tuple[str, int, str]] = [("opportunity", opp_id, str(doc["id"]))]
    activities: list[dict[str, Any]] = []
    if status != "open":
        activities.append(
            {
                "kind": f"partner_{status}",
                "subject": f"Status set to {status} in the partner's CRM",
                "occurred_at": now,
                "details": {"transfer_id": transfer.id},
            }
        )
    correlations: Correlations = {}
    for kind in CHILD_KINDS:
        rows: list[_Fields] = []
        pairs: dict[str, _Fields] = {}  # their id -> the row, as the document names it
        for item in doc.get(kind) or []:
            remote_id = item.get("id")
            if remote_id and remote_id in pairs:  # named twice: one child, as the later item says
                _update_child(kind, pairs[remote_id], item, products)
                continue
            row = _Fields(**_new_child_columns(kind, item, products, now))
            rows.append(row)
            if remote_id:
                pairs[remote_id] = row
        # the activity of a status set by the partner goes first, as `apply_document` adds it
        values = [{**a, "opportunity_id": opp_id} for a in activities] if kind == "activities" else []
        values += [{**vars(row), "opportunity_id": opp_id} for row in rows]
        if not values:
            continue
        ids = list(session.execute(_insert_returning_id(_CHILD_MODELS[kind], many=True), values).scalars())
        new_ids = dict(zip(map(id, rows), ids[len(values) - len(rows) :], strict=True))
        if pairs:
            correlations[kind] = {}
            for remote_id, row in pairs.items():
                keys.append((kind, new_ids[id(row)], remote_id))
                correlations[kind][remote_id] = str(new_ids[id(row)])
    remember_many(session, transfer, keys)
    return opp_id, correlations


class _Fields:
    """A new row's columns as attributes (what `_put_fields` and `_update_child` set)."""

    def __init__(self, **columns: Any) -> None:
        self.__dict__.update(columns)


_CHILD_MODELS: dict[str, Any] = {
    "contacts": OpportunityContact,
    "revenue_lines": OpportunityRevenueLine,
    "notes": OpportunityNote,
    "activities": OpportunityActivity,
}


def _new_child_columns(
    kind: str, item: Mapping[str, Any], products: Mapping[str, int], now: datetime
) -> dict[str, Any]:
    """The columns of a new opportunity child of `kind` (what `_new_child` makes a record of)."""
    values = _child_values(kind, item, products, now)
    if kind == "notes":
        return {"text": values["text"], "written_at": values["written"]}
    return values


@cache
def _insert_statement(model: Any, many: bool) -> Insert:
    table = cast(Table, model.__table__)
    return insert(table).returning(table.c.id, sort_by_parameter_order=many)


def _insert_returning_id(model: Any, *, many: bool = False) -> Insert:
    """INSERT into `model`'s table returning the new ids (`many`: in the order of the rows given), the
    table's defaults applied as the ORM applies them; built once."""
    return _insert_statement(model, many)


def create_lead(
    session: Session,
    connection: PartnerCrmConnection,
    transfer: OpportunityTransfer,
    doc: Mapping[str, Any],
    *,
    now: datetime,
    hints: Correlations | None = None,
) -> tuple[Lead, Correlations]:
    """A new draft lead from a partner's document (lead mode), holding all of it: contacts (the primary
    one also in the lead's contact fields), revenue lines as its products with their amounts, notes and
    activities; its key pairs it with the document's id."""
    lead = Lead(
        organization_id=connection.organization_id,
        name=_trim(doc.get("name") or "Transferred lead", 200),
        description=doc.get("description"),
        customer_id=_customer_id(session, doc.get("customer")),
        deal_size=_amount(doc.get("amount")),
        currency=doc.get("currency"),
        expected_close_date=_close_date(doc),
        sales_channel="partner",
        accepted=False,
        status=RegistrationStatus.DRAFT.value,
        lead_status=LeadStatus.OPEN.value,
        created_at=now,
        updated_at=now,
        products=[],  # a new lead has none: known empty, not loaded by a query
    )
    session.add(lead)
    session.flush()
    transfer.lead_id = lead.id
    correlations, _ = apply_lead_document(
        session, transfer, lead, doc, now=now, hints=hints, record_key=str(doc["id"])
    )
    return lead, correlations


def apply_deletions(
    session: Session, transfer: OpportunityTransfer, deletions: Correlations, *, now: datetime
) -> dict[str, Any]:
    """The partner deleted these children ({kind: {their id: our id}}, as its answer tells): ours go
    too, their keys become tombstones. Returns what changed ({kind: {"deleted": n}}); the record is read
    only when a deletion is news here."""
    keys = all_correlations(session, transfer)
    buried = {(plain_kind(k.kind), k.remote_id) for k in keys if k.deleted_at is not None}
    news = {
        kind: {theirs: ours for theirs, ours in pairs.items() if (kind, theirs) not in buried}
        for kind, pairs in deletions.items()
        if kind in CHILD_KINDS
    }
    if not any(news.values()):
        return {}
    target: _Children
    record: Any
    if on_lead(transfer):
        record = session.get(Lead, transfer.lead_id, with_for_update=True)
        target = _LeadChildren(session, record, {}, now)
    else:
        record = session.get(Opportunity, transfer.opportunity_id, with_for_update=True)
        target = _OpportunityChildren(record, {}, now)
    if record is None:
        return {}
    changes: dict[str, Any] = {}
    _delete_children(session, transfer, target, keys, news, changes)
    if changes:
        record.updated_at = now
        session.flush()
    return changes


def follow_conversion(session: Session, transfer: OpportunityTransfer, opp: Opportunity) -> None:
    """The lead a transfer was kept as converted into `opp`: the transfer goes on with the opportunity,
    and each child key pairs the partner's record with the opportunity's record that the lead's one was
    carried over as (a lead child that was not carried over loses its key)."""
    transfer.opportunity_id = opp.id
    carried: dict[str, dict[int, int]] = {
        "contacts": {c.lead_contact_id: c.id for c in opp.contacts if c.lead_contact_id is not None},
        "notes": {n.lead_note_id: n.id for n in opp.notes if n.lead_note_id is not None},
        "activities": {a.lead_activity_id: a.id for a in opp.activities if a.lead_activity_id is not None},
    }
    if transfer.lead_id is not None:
        lines = {r.product_id: r.id for r in opp.revenue_lines}
        carried["revenue_lines"] = {
            p.id: lines[p.product_id]
            for p in lead_children(session, transfer.lead_id, "revenue_lines")
            if p.product_id in lines
        }
    for key in all_correlations(session, transfer):
        kind = plain_kind(key.kind)
        if key.kind == kind or key.deleted_at is not None:
            # not a lead child's key, or a tombstone: kept as it is (its child is gone, and its id names
            # a lead child, not one of the opportunity's), so the partner's copy never comes back
            continue
        now_id = carried.get(kind, {}).get(key.local_id)
        if now_id is None:
            session.delete(key)
        else:
            key.kind, key.local_id = kind, now_id
    session.flush()
    if transfer.remote_id is not None:
        remember(session, transfer, "opportunity", opp.id, transfer.remote_id)


def converted(session: Session, transfer: OpportunityTransfer) -> Opportunity | None:
    """The opportunity the lead a transfer was kept as converted into, followed (None: still a lead,
    or the transfer is on an opportunity already)."""
    if not on_lead(transfer):
        return None
    opp = session.scalar(select(Opportunity).where(Opportunity.lead_id == transfer.lead_id))
    if opp is not None:
        follow_conversion(session, transfer, opp)
    return opp
