"""A partner's documents applied to our records: an opportunity updated, or a new opportunity or lead
created, with the correlation keys of what the document named.

Applying a partner's document changes only what a document may carry: the opportunity's name,
description, stage, status (open/won/lost), amount, currency and close date, and its contacts, revenue lines,
notes and activities. Owner, organization and the registration (its status, number, expiry) are never
touched (RELIABILITY.md, "data from a partner"); `transfer.canonical` already refuses the owner and the
registration number from a partner. Child records the partner left out are kept (no deletes by transfer).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from common.errors import FieldProblem
from common.ids import parse_id
from directory.models import Customer, Product
from registration.leads.lifecycle import LeadStatus, RegistrationStatus
from registration.leads.models import Lead, LeadNote, LeadProduct
from registration.opportunities.conversion_service import opportunity_number
from registration.opportunities.models import (
    Opportunity,
    OpportunityActivity,
    OpportunityContact,
    OpportunityNote,
    OpportunityRevenueLine,
)
from transfer.errors import PartnerDataInvalid
from transfer.models import OpportunityTransfer, PartnerCrmConnection
from transfer.repository import CHILD_KINDS, Correlations, correlation_map, remember


def _trim(value: Any, length: int) -> Any:
    return value[:length] if isinstance(value, str) else value


def _products(session: Session, doc: Mapping[str, Any]) -> dict[str, int]:
    """Product key or name -> id for every product the document names; unknown ones are an error."""
    wanted = {
        line["product"]
        for line in doc.get("revenue_lines") or []
        if isinstance(line.get("product"), str) and line["product"]
    }
    found: dict[str, int] = {}
    if wanted:
        for p in session.scalars(
            select(Product).where(or_(Product.key.in_(wanted), Product.name.in_(wanted)))
        ):
            found.setdefault(p.key, p.id)
            found.setdefault(p.name, p.id)
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


def apply_document(
    session: Session,
    transfer: OpportunityTransfer,
    opp: Opportunity,
    doc: Mapping[str, Any],
    *,
    now: datetime,
    hints: Correlations | None = None,
) -> tuple[Correlations, dict[str, Any]]:
    """Apply a partner's canonical document (their ids) to `opp`; returns the children's correlations
    ({kind: {their id: our id}}) and what changed ({field: [before, after]}, child counts).

    A child is ours already when a correlation key pairs its id with one of ours, or when `hints` (the
    pairs the partner sent along, {kind: {their id: our id}}) names a child of `opp` that is not paired
    yet; anything else is new here."""
    products = _products(session, doc)
    changes: dict[str, Any] = {}

    def put(field: str, column: str, value: Any) -> None:
        before = getattr(opp, column)
        if before != value:
            changes[field] = [
                str(before) if before is not None else None,
                str(value) if value is not None else None,
            ]
            setattr(opp, column, value)

    if doc.get("name"):
        put("name", "name", _trim(doc["name"], 200))
    if "description" in doc:
        put("description", "description", doc["description"])
    if "stage" in doc:
        put("stage", "stage", _trim(doc["stage"], 100))
    if "amount" in doc:
        put("amount", "amount", _amount(doc["amount"]))
    if "currency" in doc:
        put("currency", "currency", doc["currency"])
    if "close_date" in doc:
        put("close_date", "expected_close_date", _close_date(doc))
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
    correlations: Correlations = {}
    for kind in CHILD_KINDS:
        items = doc.get(kind)
        if not items:
            continue
        known = correlation_map(session, transfer, kind)
        paired = set(known.values())
        offered = (hints or {}).get(kind, {})
        own = {r.id: r for r in getattr(opp, kind)}
        pairs: dict[str, str] = {}
        added = updated = 0
        for item in items:
            remote_id = item.get("id")
            local = own.get(known[remote_id]) if remote_id in known else None
            if local is None and remote_id and remote_id not in known:
                # the partner already pairs its record with one of ours (its copy of ours, or ours of its)
                hinted = parse_id(offered.get(remote_id, ""))
                if hinted is not None and hinted in own and hinted not in paired:
                    local = own[hinted]
            if local is None:
                local = _new_child(kind, item, products, now)
                getattr(opp, kind).append(local)
                added += 1
            elif _update_child(kind, local, item, products):
                updated += 1
            session.flush()
            if remote_id:
                remember(session, transfer, kind, local.id, remote_id)
                known.setdefault(remote_id, local.id)
                paired.add(local.id)
                pairs[remote_id] = str(local.id)
        correlations[kind] = pairs
        if added or updated:
            changes[kind] = {"added": added, "updated": updated}
    if changes:
        opp.updated_at = now
    session.flush()
    return correlations, changes


def _new_child(kind: str, item: Mapping[str, Any], products: Mapping[str, int], now: datetime) -> Any:
    if kind == "contacts":
        return OpportunityContact(
            name=_trim(item.get("name"), 200),
            email=_trim(item.get("email"), 254),
            phone=_trim(item.get("phone"), 40),
            role=_trim(item.get("role"), 100),
        )
    if kind == "revenue_lines":
        product = item.get("product")
        if not product:
            raise PartnerDataInvalid(
                "a new revenue line needs its product", [FieldProblem("/revenue_lines", "product missing")]
            )
        return OpportunityRevenueLine(
            product_id=products[product], amount=_amount(item.get("amount")), currency=item.get("currency")
        )
    if kind == "notes":
        written = item.get("created_at")
        return OpportunityNote(
            text=item.get("text") or "", written_at=datetime.fromisoformat(written) if written else now
        )
    details = {k: item[k] for k in ("due_date", "done") if item.get(k) is not None}
    return OpportunityActivity(
        kind=_trim(item.get("kind") or "activity", 40),
        subject=_trim(item.get("subject") or "", 300),
        occurred_at=now,
        details=details or None,
    )


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
    return session.scalar(
        select(Customer.id)
        .where(or_(Customer.name == name, Customer.key == name))
        .order_by(Customer.id)
        .limit(1)
    )


def create_opportunity(
    session: Session,
    connection: PartnerCrmConnection,
    transfer: OpportunityTransfer,
    doc: Mapping[str, Any],
    *,
    now: datetime,
    hints: Correlations | None = None,
) -> tuple[Opportunity, Correlations]:
    """A new opportunity (under a lead of its own: an opportunity always has one) from a partner's
    document; the connection's organization owns both. No registration: nothing is approved by this."""
    lead = Lead(
        organization_id=connection.organization_id,
        name=_trim(doc.get("name") or "Transferred opportunity", 200),
        description=doc.get("description"),
        customer_id=_customer_id(session, doc.get("customer")),
        deal_size=_amount(doc.get("amount")),
        currency=doc.get("currency"),
        expected_close_date=_close_date(doc),
        sales_channel="partner",
        accepted=True,
        status=RegistrationStatus.DRAFT.value,
        lead_status=LeadStatus.CONVERTED.value,
        created_at=now,
        updated_at=now,
    )
    session.add(lead)
    session.flush()
    opp = Opportunity(
        number=opportunity_number(None, lead.id),
        lead_id=lead.id,
        organization_id=connection.organization_id,
        customer_id=lead.customer_id,
        name=lead.name,
        status="open",
        created_at=now,
        updated_at=now,
    )
    session.add(opp)
    session.flush()
    transfer.opportunity_id = opp.id
    correlations, _ = apply_document(session, transfer, opp, doc, now=now, hints=hints)
    return opp, correlations


def create_lead(
    session: Session,
    connection: PartnerCrmConnection,
    transfer: OpportunityTransfer,
    doc: Mapping[str, Any],
    *,
    now: datetime,
) -> tuple[Lead, Correlations]:
    """A new draft lead from a partner's document (lead mode): the first contact, the products, the
    notes; activities have no place on a lead and are not kept."""
    products = _products(session, doc)
    contacts = doc.get("contacts") or []
    first = contacts[0] if contacts else {}
    lead = Lead(
        organization_id=connection.organization_id,
        name=_trim(doc.get("name") or "Transferred lead", 200),
        description=doc.get("description"),
        customer_id=_customer_id(session, doc.get("customer")),
        contact_name=_trim(first.get("name"), 200),
        contact_email=_trim(first.get("email"), 254),
        contact_phone=_trim(first.get("phone"), 40),
        deal_size=_amount(doc.get("amount")),
        currency=doc.get("currency"),
        expected_close_date=_close_date(doc),
        sales_channel="partner",
        accepted=False,
        status=RegistrationStatus.DRAFT.value,
        lead_status=LeadStatus.OPEN.value,
        created_at=now,
        updated_at=now,
    )
    seen: set[int] = set()
    for i, line in enumerate(doc.get("revenue_lines") or []):
        product_id = products.get(line.get("product") or "")
        if product_id is not None and product_id not in seen:
            seen.add(product_id)
            lead.products.append(LeadProduct(product_id=product_id, is_primary=i == 0))
    session.add(lead)
    session.flush()
    transfer.lead_id = lead.id
    correlations: Correlations = {"notes": {}}
    for note in doc.get("notes") or []:
        row = LeadNote(lead_id=lead.id, text=note.get("text") or "", created_at=now)
        session.add(row)
        session.flush()
        if note.get("id"):
            remember(session, transfer, "notes", row.id, note["id"])
            correlations["notes"][note["id"]] = str(row.id)
    return lead, correlations
