"""Transfer operations on a lead we keep a partner's transfer as (its connection's ``inbound_creates:
lead``): its transfer status, send update and receive update, with the rights and protocol of an
opportunity's (`transfer.service`), so the lead and the partner's opportunity stay in step before the lead
is approved here.

The calls name the lead to the partner as a lead (``POST {base}/leads/update``, ``GET {base}/leads/{our
id}``): our leads and opportunities are two id spaces. Once the lead converted, its transfer goes on with
the opportunity (`transfer.service.on_opportunity_created`), and these operations act on that.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.clock import utcnow
from common.database import Database
from common.principal import Principal
from registration.leads.models import Lead
from registration.leads.service import visible_lead
from registration.opportunities.models import Opportunity
from transfer import repository, status_messages
from transfer import schemas as s
from transfer.connection_service import outbound_profile
from transfer.mapping import to_partner
from transfer.models import OpportunityTransfer, PartnerCrmConnection
from transfer.service import (
    NotTransferred,
    TransferInProgress,
    connection_for,
    enqueue,
    queue_query,
    queue_update,
    transfer_out,
)

#: The outbox payload's ``record`` of a call about a lead (an opportunity's calls carry none).
LEAD_RECORD = "lead"


def _transfer_of_lead(session: Session, c: PartnerCrmConnection, lead: Lead) -> OpportunityTransfer:
    t = session.scalar(
        select(OpportunityTransfer)
        .where(OpportunityTransfer.connection_id == c.id, OpportunityTransfer.lead_id == lead.id)
        .with_for_update()
    )
    if t is None:
        raise NotTransferred(
            f"lead {lead.id} was not transferred to or from organization {c.organization_id}; "
            "only a lead kept from a partner's transfer takes its updates"
        )
    if t.remote_id is None:
        raise TransferInProgress(f"the transfer of lead {lead.id} has no partner record yet ({t.status})")
    return t


def list_lead_transfers(db: Database, principal: Principal, lead_id: int) -> s.TransferList:
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id, collections=False)
        rows = session.scalars(
            select(OpportunityTransfer)
            .where(OpportunityTransfer.lead_id == lead.id)
            .order_by(OpportunityTransfer.id)
        )
        return s.TransferList(items=[transfer_out(session, t) for t in rows])


def queue_lead_update(
    session: Session,
    actor: Principal | None,
    lead: Lead,
    c: PartnerCrmConnection,
    t: OpportunityTransfer,
    *,
    now: datetime,
) -> None:
    """Queue an update of `lead` (as stored now: its fields, the deal's stage and status, its children)
    to the partner, in the caller's transaction; the status becomes ``update_pending``."""
    body = to_partner(outbound_profile(c), repository.lead_document(session, lead))
    before = {"status": t.status}
    t.status, t.last_operation, t.last_error, t.attempts, t.updated_at = (
        s.TransferState.UPDATE_PENDING.value,
        "update",
        None,
        0,
        now,
    )
    t.message = status_messages.queued("update", c.name)
    key = enqueue(session, t, "update", {"body": body, "record": LEAD_RECORD}, now)
    repository.record(
        session, actor, t, "update_requested", now=now, before=before, details={"key": key, "lead": True}
    )


def _converted_opportunity(session: Session, t: OpportunityTransfer) -> Opportunity | None:
    if t.opportunity_id is None:
        return None
    return session.get(Opportunity, t.opportunity_id, with_for_update=True)


def send_lead_update(db: Database, principal: Principal, lead_id: int, data: s.PartnerIn) -> s.TransferOut:
    """Push the lead's current state to the partner whose transfer it was kept from."""
    now = utcnow()
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id, for_update=True)
        c = connection_for(session, data.partner_organization_id, s.Operation.UPDATE)
        t = _transfer_of_lead(session, c, lead)
        opp = _converted_opportunity(session, t)
        if opp is not None:  # approved since: the opportunity speaks for it
            queue_update(session, principal, opp, c, t, now=now)
        else:
            queue_lead_update(session, principal, lead, c, t, now=now)
        return transfer_out(session, t)


def receive_lead_update(db: Database, principal: Principal, lead_id: int, data: s.PartnerIn) -> s.TransferOut:
    """Query the partner's CRM for its version and apply what changed to the lead."""
    now = utcnow()
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id, for_update=True)
        c = connection_for(session, data.partner_organization_id, s.Operation.QUERY)
        t = _transfer_of_lead(session, c, lead)
        if t.opportunity_id is not None:
            payload = {"local_id": str(t.opportunity_id)}
        else:
            payload = {"local_id": str(lead.id), "record": LEAD_RECORD}
        queue_query(session, principal, c, t, payload, now=now)
        return transfer_out(session, t)
