"""The partner-facing side of the protocol: a partner (or another instance of this service) transfers an
opportunity to us, sends us updates and queries ours.

The caller is the connection named in the path, proven by the Standard Webhooks signature over the raw
body with the connection's inbound secret; nothing of the body is read before that. The message id is
remembered in the transaction that applies the request, so a replayed id is refused (401) and changes
nothing. Creates are idempotent by the sender's id of the opportunity: the same transfer again answers
with the same ids and creates nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from common.clock import utcnow
from common.database import Database
from common.errors import FieldProblem, NotFound, ValidationFailed
from common.ids import parse_id
from common.settings import Settings
from registration.leads.models import Lead
from registration.opportunities.models import Opportunity
from transfer import inbound_repository, repository, status_messages
from transfer import schemas as s
from transfer.connection_service import inbound_profile, secrets_of
from transfer.errors import PartnerDataInvalid, SignatureMismatch
from transfer.mapping import from_partner, to_partner
from transfer.models import InboundMessageId, OpportunityTransfer, PartnerCrmConnection
from transfer.profile import CORRELATIONS_KEY, DELETIONS_KEY
from transfer.signing import verify


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


class _SeenIds:
    """The replay store: an insert under a unique key in the request's transaction (one that finds the
    id there already inserts nothing and answers False)."""

    def __init__(self, session: Session, connection_id: int, now: datetime) -> None:
        self.session, self.connection_id, self.now = session, connection_id, now

    def remember(self, msg_id: str, timestamp: int) -> bool:
        inserted = self.session.execute(
            _remember_statement(self.session.get_bind().dialect.name),
            {
                "connection_id": self.connection_id,
                "msg_id": msg_id,
                "signed_at": timestamp,
                "received_at": self.now,
            },
        ).scalar()
        return inserted is not None


@cache
def _remember_statement(dialect: str) -> Insert:
    """The replay store's INSERT (built once per dialect: it runs for every call and batch item)."""
    table = cast(Table, InboundMessageId.__table__)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(table).on_conflict_do_nothing(index_elements=["connection_id", "msg_id"]).returning(table.c.id)
    )


def verified(
    session: Session,
    settings: Settings,
    key: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    connection: PartnerCrmConnection | None = None,
) -> PartnerCrmConnection:
    """The connection whose inbound secret signed this request; every failure is a 401. `connection`:
    the connection `key` names, read already in this transaction (an item of a batch call)."""
    c = connection
    if c is None or c.key != key:
        c = session.scalar(
            select(PartnerCrmConnection).where(
                PartnerCrmConnection.key == key, PartnerCrmConnection.active.is_(True)
            )
        )
    if c is None:
        # The same answer as a bad signature: an unknown key tells a prober nothing.
        raise SignatureMismatch("no signature matches the body")
    _, inbound_secret = secrets_of(settings, c)
    verify(inbound_secret, headers, body, now, seen=_SeenIds(session, c.id, now))
    return c


def _document(
    c: PartnerCrmConnection, body: bytes
) -> tuple[dict[str, Any], repository.Correlations, repository.Correlations]:
    """The partner's document in our names, the child pairs it carries ({kind: {their id: our id}}), and
    the pairs of children deleted on either side (the same way round)."""
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        raise ValidationFailed("the body is not JSON", [FieldProblem("", "expected a JSON object")]) from None
    doc = from_partner(inbound_profile(c), payload)
    if not isinstance(doc.get("id"), str) or not doc["id"]:
        raise PartnerDataInvalid("the document carries no id of yours", [FieldProblem("/id", "required")])
    return doc, repository.hints_of(payload), repository.deletions_of(payload)


def _by_remote(session: Session, c: PartnerCrmConnection, remote_id: str) -> OpportunityTransfer | None:
    """The transfer of the partner's opportunity `remote_id` (a partner only ever sends us opportunities;
    a lead of theirs with the same id is another record)."""
    return session.scalar(_BY_REMOTE, {"connection_id": c.id, "remote_id": remote_id})


#: `_by_remote`'s query, built once (it runs for every create and update).
_BY_REMOTE = (
    select(OpportunityTransfer)
    .where(
        OpportunityTransfer.connection_id == bindparam("connection_id"),
        # not the partner's lead (a transfer it keeps as a lead has its own ids)
        or_(
            OpportunityTransfer.remote_type.is_(None),
            OpportunityTransfer.remote_type != s.RemoteType.LEAD.value,
        ),
        OpportunityTransfer.remote_id == bindparam("remote_id"),
    )
    .with_for_update()
)


def _by_remote_lead(session: Session, c: PartnerCrmConnection, remote_id: str) -> OpportunityTransfer | None:
    """The transfer the partner keeps as its lead `remote_id` (it speaks from that lead)."""
    return session.scalar(
        select(OpportunityTransfer)
        .where(
            OpportunityTransfer.connection_id == c.id,
            OpportunityTransfer.remote_type == s.RemoteType.LEAD.value,
            OpportunityTransfer.remote_id == remote_id,
        )
        .with_for_update()
    )


def _renamed(
    session: Session, c: PartnerCrmConnection, remote_id: str, hints: repository.Correlations
) -> OpportunityTransfer | None:
    """The transfer the partner kept as a lead, when the document says (its record pair) that the lead
    became the partner's opportunity `remote_id`: from now on the transfer names that opportunity."""
    ours = parse_id(hints.get(repository.RECORD_KIND, {}).get(remote_id, ""))
    if ours is None:
        return None
    t = session.scalar(
        select(OpportunityTransfer)
        .where(
            OpportunityTransfer.connection_id == c.id,
            OpportunityTransfer.opportunity_id == ours,
            OpportunityTransfer.remote_type == s.RemoteType.LEAD.value,
        )
        .with_for_update()
    )
    if t is None or not repository.rename_remote(session, t, s.RemoteType.OPPORTUNITY.value, remote_id[:200]):
        return None
    return t


def _local_id(t: OpportunityTransfer) -> str:
    return str(t.opportunity_id if t.opportunity_id is not None else t.lead_id)


def _local_type(t: OpportunityTransfer) -> str:
    """What we keep the partner's record as (told in our answers, so the partner's status can say it)."""
    return "opportunity" if t.opportunity_id is not None else "lead"


def _answer(session: Session, t: OpportunityTransfer) -> dict[str, Any]:
    """What an answer to a create or update says: our record, every pair we know (not only this
    document's: the sender learns what it may have missed) and the tombstones."""
    pairs, deleted = repository.replied_pairs(session, t)
    answer = {"id": _local_id(t), "type": _local_type(t), "correlations": pairs}
    if deleted:
        answer[DELETIONS_KEY] = deleted
    return answer


def create(db: Database, settings: Settings, key: str, headers: Mapping[str, str], body: bytes) -> Reply:
    """A partner transfers an opportunity to us: a new lead or opportunity (per the connection), or, for
    one it transferred before, the same answer again."""
    now = utcnow()
    for _ in range(3):  # a concurrent identical create loses the unique race: read its result instead
        try:
            with db.transaction() as session:
                return create_in(session, settings, key, headers, body, now)
        except IntegrityError:
            continue
    raise ValidationFailed("the transfer could not be stored; retry")


def create_in(
    session: Session,
    settings: Settings,
    key: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    connection: PartnerCrmConnection | None = None,
) -> Reply:
    c = verified(session, settings, key, headers, body, now, connection)
    doc, hints, _ = _document(c, body)
    existing = _by_remote(session, c, doc["id"])
    if existing is not None:
        return Reply(200, _answer(session, existing))
    t = OpportunityTransfer(
        connection_id=c.id,
        remote_id=doc["id"],
        remote_type=inbound_profile(c).object_name[:100],
        origin="inbound",
        status=s.TransferState.SUCCESSFUL.value,
        last_operation="create",
        attempts=1,
        last_synced_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(t)
    if c.inbound_creates == s.InboundCreates.LEAD:
        session.flush()
        lead, correlations = inbound_repository.create_lead(session, c, t, doc, now=now, hints=hints)
        local = str(lead.id)
        t.message = status_messages.kept(c.name, t.remote_type, doc["id"], _local_type(t), local)
    else:  # the transfer is written once, with its opportunity and message (its children after it)

        def kept(opp_id: int) -> str:
            return status_messages.kept(c.name, t.remote_type, doc["id"], "opportunity", str(opp_id))

        opp_id, correlations = inbound_repository.create_opportunity(
            session, c, t, doc, now=now, hints=hints, message=kept
        )
        local = str(opp_id)
    repository.record(
        session,
        None,
        t,
        "received_transfer",
        now=now,
        details={"creates": c.inbound_creates, "idempotency_key": headers.get("Idempotency-Key")},
    )
    return Reply(201, {"id": local, "type": _local_type(t), "correlations": correlations})


def update(
    db: Database,
    settings: Settings,
    key: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    from_lead: bool = False,
) -> Reply:
    """A partner sends changes to an opportunity transferred before (in either direction), to the
    opportunity or the lead we keep it as (the opportunity a lead converted into, once it did).
    `from_lead`: the partner speaks from the lead it keeps our transfer as (the document's id is its
    lead's)."""
    now = utcnow()
    with db.transaction() as session:
        return update_in(session, settings, key, headers, body, now, from_lead=from_lead)


def update_in(
    session: Session,
    settings: Settings,
    key: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    *,
    from_lead: bool = False,
    connection: PartnerCrmConnection | None = None,
) -> Reply:
    c = verified(session, settings, key, headers, body, now, connection)
    doc, hints, deletions = _document(c, body)
    if from_lead:
        t = _by_remote_lead(session, c, doc["id"])
        if t is None:
            raise NotFound(f"no transfer is kept as a lead with id {doc['id']}")
    else:
        t = _by_remote(session, c, doc["id"])
        if t is None:
            t = _renamed(session, c, doc["id"], hints)
            if t is not None:  # and so did its children: their ids as the partner numbers them now
                repository.adopt_pairs(session, t, repository.mirrored(hints))
        if t is None:
            raise NotFound(f"no opportunity was transferred with id {doc['id']}")
    inbound_repository.converted(session, t)  # a lead converted since: the update goes to its opportunity
    if t.opportunity_id is not None:
        opp = session.get(Opportunity, t.opportunity_id, with_for_update=True)
        assert opp is not None
        _, changes = inbound_repository.apply_document(
            session, t, opp, doc, now=now, hints=hints, deletions=deletions
        )
    else:
        lead = session.get(Lead, t.lead_id, with_for_update=True)
        assert lead is not None
        _, changes = inbound_repository.apply_lead_document(
            session, t, lead, doc, now=now, hints=hints, deletions=deletions
        )
    t.last_operation, t.last_synced_at, t.updated_at = "update", now, now
    t.status = s.TransferState.SUCCESSFUL.value
    t.message = status_messages.received(c.name, t.remote_type, t.remote_id, changes, inbound=True)
    repository.record(
        session, None, t, "update_received", now=now, details={"changes": changes, "inbound": True}
    )
    return Reply(200, _answer(session, t))


def query(
    db: Database,
    settings: Settings,
    key: str,
    headers: Mapping[str, str],
    body: bytes,
    remote_id: str,
    *,
    from_lead: bool = False,
) -> Reply:
    """A partner reads an opportunity transferred before, in its own model (the connection's inbound
    profile), with our ids. `from_lead`: `remote_id` is the partner's lead it keeps our transfer as."""
    now = utcnow()
    with db.transaction() as session:
        return query_in(session, settings, key, headers, body, remote_id, now, from_lead=from_lead)


def query_in(
    session: Session,
    settings: Settings,
    key: str,
    headers: Mapping[str, str],
    body: bytes,
    remote_id: str,
    now: datetime,
    *,
    from_lead: bool = False,
    connection: PartnerCrmConnection | None = None,
) -> Reply:
    c = verified(session, settings, key, headers, body, now, connection)
    t = (_by_remote_lead if from_lead else _by_remote)(session, c, remote_id)
    if t is None:
        what = "no transfer is kept as a lead" if from_lead else "no opportunity was transferred"
        raise NotFound(f"{what} with id {remote_id}")
    inbound_repository.converted(session, t)
    if t.opportunity_id is not None:
        opp = session.get(Opportunity, t.opportunity_id)
        assert opp is not None
        doc = repository.opportunity_document(session, opp)
    else:
        lead = session.get(Lead, t.lead_id)
        assert lead is not None
        doc = repository.lead_document(session, lead)
    answer = to_partner(inbound_profile(c), doc)
    pairs, deleted = repository.document_pairs(session, t)
    answer[CORRELATIONS_KEY] = pairs  # {kind: {our id: theirs}}
    if deleted:
        answer[DELETIONS_KEY] = deleted
    return Reply(200, answer)
