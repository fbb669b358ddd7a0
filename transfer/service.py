"""Outbound transfer: which partners an opportunity can go to, transfer (create), send update, receive
update (query), and the transfer status per opportunity and partner.

Each request writes its outbox message (channel ``partner_crm``) in the same transaction as the status
change, with the document already mapped to the partner's model (so an unmappable value is a 422 now,
not a dead letter later); `transfer.delivery_service` sends it. A send or receive is refused with 409
unless the opportunity was transferred before with that partner, in either direction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common import outbox
from common.clock import utcnow
from common.database import Database
from common.errors import Conflict, NotFound
from common.principal import Principal
from directory.models import Organization
from registration.leads.models import Lead
from registration.opportunities.conversion_service import decision_policy
from registration.opportunities.models import Opportunity
from registration.opportunities.service import visible_opportunity
from transfer import inbound_repository, repository, status_messages
from transfer import schemas as s
from transfer.connection_service import outbound_profile
from transfer.mapping import to_partner
from transfer.models import OpportunityTransfer, PartnerCrmConnection

CHANNEL = "partner_crm"


class NotTransferred(Conflict):
    code, title = "not-transferred", "Opportunity not transferred to this partner"


class TransferNotSetUp(Conflict):
    code, title = "transfer-not-set-up", "Partner not set up for this operation"


class TransferInProgress(Conflict):
    code, title = "transfer-in-progress", "Transfer still in progress"


def transfer_out(session: Session, t: OpportunityTransfer) -> s.TransferOut:
    connection = session.get(PartnerCrmConnection, t.connection_id)
    assert connection is not None
    return s.TransferOut(
        id=t.id,
        connection_id=t.connection_id,
        partner_organization_id=connection.organization_id,
        opportunity_id=t.opportunity_id,
        lead_id=t.lead_id,
        origin=t.origin,
        status=s.TransferState(t.status),
        remote_id=t.remote_id,
        remote_type=t.remote_type,
        last_operation=t.last_operation,
        message=t.message,
        last_error=t.last_error,
        attempts=t.attempts,
        last_synced_at=t.last_synced_at,
        updated_at=t.updated_at,
        correlation_keys=[
            s.CorrelationOut(kind=k.kind, local_id=k.local_id, remote_id=k.remote_id, deleted_at=k.deleted_at)
            for k in repository.all_correlations(session, t)
        ],
    )


def connection_for(session: Session, organization_id: int, operation: s.Operation) -> PartnerCrmConnection:
    c = session.scalar(
        select(PartnerCrmConnection).where(
            PartnerCrmConnection.organization_id == organization_id, PartnerCrmConnection.active.is_(True)
        )
    )
    if c is None:
        if session.get(Organization, organization_id) is None:
            raise NotFound(f"organization {organization_id} not found")
        raise TransferNotSetUp(f"organization {organization_id} has no active CRM connection")
    if operation.value not in c.operations:
        raise TransferNotSetUp(
            f"the CRM connection of organization {organization_id} does not offer {operation}"
        )
    return c


def _transfer_of(session: Session, c: PartnerCrmConnection, opp: Opportunity) -> OpportunityTransfer | None:
    return session.scalar(
        select(OpportunityTransfer)
        .where(OpportunityTransfer.connection_id == c.id, OpportunityTransfer.opportunity_id == opp.id)
        .with_for_update()
    )


def enqueue(
    session: Session, t: OpportunityTransfer, operation: str, payload: dict[str, Any], now: datetime
) -> str:
    key = f"{operation}:{t.connection_id}:{t.id}:{uuid.uuid4().hex}"
    connection = session.get(PartnerCrmConnection, t.connection_id)
    opp = session.get(Opportunity, t.opportunity_id) if t.opportunity_id is not None else None
    # lead and recipient: what `prm outbox list` shows an admin; the deliverer reads the rest
    about = {
        "lead_id": opp.lead_id if opp is not None else t.lead_id,
        "recipient": f"partner-crm:{connection.key}" if connection is not None else None,
    }
    payload = {"transfer_id": t.id, "operation": operation, **about, **payload}
    outbox.enqueue(session, CHANNEL, operation, key, payload, now=now, ordering_key=ordering_key(t))
    return key


def ordering_key(t: OpportunityTransfer) -> str:
    """The calls about one transfer go out one at a time, in the order they were queued (a later update
    never overtakes an earlier one, whatever the retries and however many deliverers run); the key starts
    with the connection, so a connection's waiting calls can be found by prefix."""
    return f"{connection_prefix(t.connection_id)}transfer:{t.id}"


def connection_prefix(connection_id: int) -> str:
    return f"connection:{connection_id}:"


def eligible_partners(db: Database, principal: Principal, opportunity_id: int) -> s.EligiblePartnerList:
    """Partners set up for transfer (an active connection offering create), with any transfer so far."""
    with db.transaction() as session:
        opp = visible_opportunity(session, principal, opportunity_id)
        items = []
        for c in session.scalars(
            select(PartnerCrmConnection)
            .where(PartnerCrmConnection.active.is_(True))
            .order_by(PartnerCrmConnection.id)
        ):
            if s.Operation.CREATE.value not in c.operations:
                continue
            org = session.get(Organization, c.organization_id)
            t = _transfer_of(session, c, opp)
            items.append(
                s.EligiblePartner(
                    organization_id=c.organization_id,
                    connection_id=c.id,
                    name=org.name if org else c.name,
                    operations=[s.Operation(o) for o in c.operations],
                    transfer=transfer_out(session, t) if t else None,
                )
            )
        return s.EligiblePartnerList(items=items)


def list_transfers(db: Database, principal: Principal, opportunity_id: int) -> s.TransferList:
    with db.transaction() as session:
        opp = visible_opportunity(session, principal, opportunity_id)
        rows = session.scalars(
            select(OpportunityTransfer)
            .where(OpportunityTransfer.opportunity_id == opp.id)
            .order_by(OpportunityTransfer.id)
        )
        return s.TransferList(items=[transfer_out(session, t) for t in rows])


def request_transfer(
    session: Session,
    actor: Principal | None,
    opp: Opportunity,
    c: PartnerCrmConnection,
    *,
    now: datetime,
    reason: str,
) -> OpportunityTransfer:
    """Queue a create of `opp` at the partner in the caller's transaction (409 if already transferred)."""
    body = to_partner(outbound_profile(c), repository.opportunity_document(session, opp))
    t = _transfer_of(session, c, opp)
    if t is not None and t.status != s.TransferState.FAILED:
        raise Conflict(
            f"opportunity {opp.id} was already transferred to this partner ({t.status}); send an update instead",
            transfer_id=t.id,
        )
    before = {"status": t.status} if t else None
    if t is None:
        t = OpportunityTransfer(
            connection_id=c.id, opportunity_id=opp.id, origin="outbound", attempts=0, created_at=now
        )
        session.add(t)
    t.status, t.last_operation, t.last_error, t.attempts, t.updated_at = (
        s.TransferState.IN_PROGRESS.value,
        "create",
        None,
        0,
        now,
    )
    t.message = status_messages.queued("create", c.name)
    session.flush()
    # the version sent: a change made while the create is on its way follows it as an update
    key = enqueue(session, t, "create", {"body": body, "version": opp.version}, now)
    repository.record(
        session,
        actor,
        t,
        "transfer_requested",
        now=now,
        before=before,
        details={"reason": reason, "key": key},
    )
    return t


def transfer(db: Database, principal: Principal, opportunity_id: int, data: s.TransferIn) -> s.TransferOut:
    now = utcnow()
    with db.transaction() as session:
        opp = visible_opportunity(session, principal, opportunity_id, for_update=True)
        c = connection_for(session, data.partner_organization_id, s.Operation.CREATE)
        t = request_transfer(session, principal, opp, c, now=now, reason="requested")
        return transfer_out(session, t)


def _previous(session: Session, c: PartnerCrmConnection, opp: Opportunity) -> OpportunityTransfer:
    t = _transfer_of(session, c, opp)
    if t is None:
        raise NotTransferred(
            f"opportunity {opp.id} was never transferred to or from organization {c.organization_id}; "
            "transfer it first"
        )
    if t.remote_id is None:
        raise TransferInProgress(
            f"the transfer of opportunity {opp.id} has not reached the partner yet ({t.status}); try again later"
        )
    return t


def queue_update(
    session: Session,
    actor: Principal | None,
    opp: Opportunity,
    c: PartnerCrmConnection,
    t: OpportunityTransfer,
    *,
    now: datetime,
    automatic: str | None = None,
) -> None:
    """Queue an update of `opp` (as stored now) to the partner, in the caller's transaction: the status
    becomes ``update_pending``. `automatic` names the change that triggered it (None: asked for)."""
    doc = repository.opportunity_document(session, opp)
    doc["id"] = str(opp.id)
    body = to_partner(outbound_profile(c), doc)
    before = {"status": t.status}
    t.status, t.last_operation, t.last_error, t.attempts, t.updated_at = (
        s.TransferState.UPDATE_PENDING.value,
        "update",
        None,
        0,
        now,
    )
    t.message = status_messages.queued("update", c.name, automatic=automatic is not None)
    key = enqueue(session, t, "update", {"body": body}, now)
    details = {"key": key} if automatic is None else {"key": key, "automatic": True, "change": automatic}
    repository.record(session, actor, t, "update_requested", now=now, before=before, details=details)


def send_update(db: Database, principal: Principal, opportunity_id: int, data: s.PartnerIn) -> s.TransferOut:
    now = utcnow()
    with db.transaction() as session:
        opp = visible_opportunity(session, principal, opportunity_id, for_update=True)
        c = connection_for(session, data.partner_organization_id, s.Operation.UPDATE)
        t = _previous(session, c, opp)
        queue_update(session, principal, opp, c, t, now=now)
        return transfer_out(session, t)


def receive_update(
    db: Database, principal: Principal, opportunity_id: int, data: s.PartnerIn
) -> s.TransferOut:
    now = utcnow()
    with db.transaction() as session:
        opp = visible_opportunity(session, principal, opportunity_id, for_update=True)
        c = connection_for(session, data.partner_organization_id, s.Operation.QUERY)
        t = _previous(session, c, opp)
        queue_query(session, principal, c, t, {"local_id": str(opp.id)}, now=now)
        return transfer_out(session, t)


def queue_query(
    session: Session,
    principal: Principal,
    c: PartnerCrmConnection,
    t: OpportunityTransfer,
    payload: dict[str, Any],
    *,
    now: datetime,
) -> None:
    """Queue a query of the partner's version of ``t``'s record (``payload`` names it)."""
    before = {"status": t.status}
    t.status, t.last_operation, t.last_error, t.attempts, t.updated_at = (
        s.TransferState.UPDATE_PENDING.value,
        "query",
        None,
        0,
        now,
    )
    t.message = status_messages.queued("query", c.name)
    key = enqueue(session, t, "query", payload, now)
    repository.record(
        session, principal, t, "receive_requested", now=now, before=before, details={"key": key}
    )


# --- automation ---------------------------------------------------------------------------------------


def on_opportunity_created(
    session: Session,
    actor: Principal | None,
    opp: Opportunity,
    policy: dict[str, Any] | None,
    *,
    now: datetime,
) -> list[int]:
    """Queue the transfers an approval triggers (in the approval's transaction): to the opportunity's
    partner when its connection says "transfer on approval" or the decision's policy says ``transfer:
    on_approval``. Returns the transfer ids queued.

    A partner's transfer kept as the lead that converted goes on with the opportunity first (updates and
    queries reach it, its children keep their pairs), so the opportunity is not sent back as new."""
    for kept in session.scalars(
        select(OpportunityTransfer)
        .where(OpportunityTransfer.lead_id == opp.lead_id, OpportunityTransfer.opportunity_id.is_(None))
        .order_by(OpportunityTransfer.id)
        .with_for_update()
    ):
        inbound_repository.follow_conversion(session, kept, opp)
    if opp.organization_id is None:
        return []
    c = session.scalar(
        select(PartnerCrmConnection).where(
            PartnerCrmConnection.organization_id == opp.organization_id, PartnerCrmConnection.active.is_(True)
        )
    )
    if c is None or s.Operation.CREATE.value not in c.operations:
        return []
    wanted = str((policy or {}).get("transfer") or "never")
    if not (c.transfer_on_approval or wanted == "on_approval"):
        return []
    if _transfer_of(session, c, opp) is not None:
        return []
    t = request_transfer(session, actor, opp, c, now=now, reason="automatic on approval")
    return [t.id]


def updates_automatic(session: Session, c: PartnerCrmConnection, opp: Opportunity) -> bool:
    """Whether changes of `opp` go out to `c` by themselves: the connection says so, or the policy of
    the decision that routed the opportunity's registration says ``transfer_updates: automatic``."""
    if not c.active or s.Operation.UPDATE.value not in c.operations:
        return False
    if c.send_updates_automatically:
        return True
    lead = session.get(Lead, opp.lead_id)
    policy = decision_policy(session, lead) if lead is not None else None
    return (policy or {}).get("transfer_updates") == "automatic"


def on_opportunity_changed(
    session: Session,
    actor: Principal | None,
    opp: Opportunity,
    *,
    now: datetime,
    change: str,
) -> list[int]:
    """After a change through the opportunities API (in its transaction): queue the update to every
    partner that holds the opportunity and takes updates automatically; a deleted child's pair becomes
    a tombstone, which the next document in either direction carries. A transfer not yet at the partner
    (its create still queued) gets it once the create is done (``delivery_service``). Returns the
    transfer ids marked ``update_pending``."""
    queued = []
    for t in session.scalars(
        select(OpportunityTransfer)
        .where(OpportunityTransfer.opportunity_id == opp.id, OpportunityTransfer.remote_id.is_not(None))
        .order_by(OpportunityTransfer.id)
        .with_for_update()
    ):
        if change.endswith("_deleted"):  # a child deleted here: its pair stays, as a tombstone
            repository.bury_deleted_children(session, t, now=now)
        c = session.get(PartnerCrmConnection, t.connection_id)
        if c is not None and updates_automatic(session, c, opp):
            queue_update(session, actor, opp, c, t, now=now, automatic=change)
            queued.append(t.id)
    return queued
