"""Delivering the ``partner_crm`` outbox: call the partner (transfer.client), apply the answer (their ids
become correlation keys, a query's document is applied to the opportunity), and keep the transfer status
(attempts, last error, ``failed`` once the message is dead) and the audit log up to date.

Delivery is at least once: a deliverer that dies after the partner answered leaves the message to be sent
again with the same ``Idempotency-Key``; the partner answers with the same ids, and applying them again
changes nothing.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import httpx
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from common import audit, delivery, outbox
from common.clock import utcnow
from common.database import Database, expunge_except
from common.delivery import DeliveryFailed, DeliveryReport, LeaseLost
from common.ids import parse_id
from common.outbox import OutboxItem
from common.retry import RetryPolicy
from common.settings import Settings
from directory.models import Organization, User
from registration.approval.staff_service import territory_channel_roles
from registration.leads.models import Lead
from registration.notifications import service as notifications_service
from registration.notifications.notifications import NotificationEvent
from registration.opportunities.models import Opportunity
from transfer import inbound_repository, repository, status_messages
from transfer import schemas as s
from transfer import service as transfer_service
from transfer.client import BatchCall, CallResult, PartnerCrmClient, batch_results, new_pool
from transfer.connection_service import outbound_profile, secrets_of
from transfer.errors import PartnerDataInvalid
from transfer.mapping import from_partner
from transfer.models import OpportunityTransfer, PartnerCrmConnection
from transfer.profile import CORRELATIONS_KEY, DELETIONS_KEY
from transfer.retry import Failure, Outcome, Verdict, classify
from transfer.service import CHANNEL, connection_prefix

ClientFactory = Callable[[PartnerCrmConnection, str], PartnerCrmClient]


@dataclass(frozen=True)
class _Prepared:
    """A claimed message ready to go: its transfer, operation, connection, client and call."""

    item: OutboxItem
    transfer_id: int
    operation: str
    connection_id: int
    client: PartnerCrmClient
    call: BatchCall


@dataclass
class _Loaded:
    """What applying a batch of answers reads once for all of them, in its transaction: the transfers
    (locked), their connections, and of each opportunity a create was about, its version and lead (the
    lead and its organization read too, for the ``transferred`` mail); `keep`: those objects (by id),
    which stay in the session from one answer to the next."""

    facts: dict[int, tuple[int, int | None]]
    # the child ids of the opportunities created ({opportunity id: {kind: ids}})
    children: dict[int, dict[str, set[int]]]
    # the people the ``transferred`` mail of each lead may go to, read at once ({lead id: People})
    people: dict[int, notifications_service.People]
    keep: set[int]
    # held here: the session holds what it read only as long as something else does
    objects: list[Any]


def _no_items() -> CallResult:
    cause = "a batch answer without one answer per call"
    return CallResult(classify(Failure.INVALID_RESPONSE).explained(cause=cause), None)


logger = logging.getLogger(__name__)


class PartnerCrmSender:
    """The outbox sender of the ``partner_crm`` channel; thread-safe, so that ``concurrency`` calls can be
    in flight at once over one pool of kept-alive HTTP connections (``close`` it when done)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        policy: RetryPolicy,
        *,
        client_factory: ClientFactory | None = None,
        clock: Callable[[], datetime] = utcnow,
        connections: int = 1,
    ) -> None:
        self.db, self.settings, self.policy, self.clock = db, settings, policy, clock
        self.client_factory = client_factory or self._client
        self._pool: httpx.Client | None = None
        self._connections = connections
        self._lock = threading.Lock()
        self._no_batch: set[int] = set()  # connections whose partner answered 404 to a batch

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._pool is None:
                self._pool = new_pool(connections=self._connections)
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def _client(self, c: PartnerCrmConnection, secret: str) -> PartnerCrmClient:
        return PartnerCrmClient(
            c.base_url,
            secret,
            c.timeout_seconds,
            allow_private=self.settings.transfer_allow_private_urls,
            http=self._http(),
        )

    def _prepare(
        self,
        session: Session,
        item: OutboxItem,
        known: dict[int, tuple[repository.Correlations, repository.Correlations]] | None = None,
    ) -> _Prepared:
        """The call `item` makes: its client, and what it sends (the child pairs we know now, not when
        the message was queued, go along with a create or update, and the tombstones of deleted
        children). `known`: the pairs of the batch's transfers, read at once (`_read_batch`)."""
        transfer_id = int(item.payload["transfer_id"])
        operation = str(item.payload["operation"])
        t = session.get(OpportunityTransfer, transfer_id)
        c = session.get(PartnerCrmConnection, t.connection_id) if t else None
        if t is None or c is None:
            raise DeliveryFailed(f"transfer {transfer_id} no longer exists", retryable=False)
        if operation not in ("create", "update", "query"):
            raise DeliveryFailed(f"unknown operation {operation!r}", retryable=False)
        secret, _ = secrets_of(self.settings, c)
        client = self.client_factory(c, secret)
        msg_id = f"{item.dedupe_key}:a{item.attempts}"[-256:]
        lead = item.payload.get("record") == "lead"  # from a lead we keep the partner's transfer as
        if operation == "query":
            call = BatchCall(
                operation, msg_id, item.dedupe_key, remote_id=str(item.payload["local_id"]), lead=lead
            )
        else:
            mine, deleted = known[t.id] if known and t.id in known else repository.document_pairs(session, t)
            pairs: dict[str, Any] = {CORRELATIONS_KEY: {**mine, **repository.record_pair(t)}}
            if deleted:
                pairs[DELETIONS_KEY] = deleted
            call = BatchCall(operation, msg_id, item.dedupe_key, {**item.payload["body"], **pairs}, lead=lead)
        return _Prepared(item, transfer_id, operation, c.id, client, call)

    def __call__(self, item: OutboxItem) -> bool:
        with self.db.transaction() as session:
            p = self._prepare(session, item)
        call = p.call
        if call.operation == "create":
            result = p.client.create(call.msg_id, call.idempotency_key, call.body, self.clock)
        elif call.operation == "update":
            result = p.client.update(call.msg_id, call.idempotency_key, call.body, self.clock, lead=call.lead)
        else:
            assert call.remote_id is not None
            result = p.client.query(
                call.msg_id, call.idempotency_key, call.remote_id, self.clock, lead=call.lead
            )
        if result.outcome.verdict is Verdict.DELIVERED:
            if item.attempts > 1:
                # The partner answers again after failing: what waits out a backoff for it goes now.
                outbox.expedite(self.db, CHANNEL, connection_prefix(p.connection_id), now=self.clock())
            try:
                self._apply(p.transfer_id, p.operation, item, result)
                return True  # the message was marked sent with the answer applied
            except LeaseLost:
                raise
            except Exception as exc:
                result = self._not_applied(p.transfer_id, exc, result)
        self._failed(p.transfer_id, p.operation, item, result.outcome)

    def _not_applied(self, transfer_id: int, exc: Exception, result: CallResult) -> CallResult:
        """The result of a call whose answer could not be applied (`exc`): the partner's data is
        invalid (permanent), or our own bookkeeping failed (said on the status, the rest logged)."""
        if isinstance(exc, PartnerDataInvalid):
            problems = "; ".join(f"{e.pointer}: {e.message}" for e in exc.errors[:10])
            reason = f"{exc.detail}: {problems}" if problems else exc.detail
            cause = status_messages.cause_of(exc)
            return CallResult(Outcome(Verdict.PERMANENT, reason, cause=cause, detail=reason), result.status)
        logger.exception("transfer %s: applying the partner's answer failed", transfer_id, exc_info=exc)
        verdict = Verdict.PERMANENT if isinstance(exc, IntegrityError) else Verdict.RETRY
        reason = f"applying the answer failed: {type(exc).__name__}: {exc}"[:2000]
        return CallResult(Outcome(verdict, reason, cause=status_messages.cause_of(exc)), result.status)

    def send_batch(self, items: list[OutboxItem]) -> list[bool | BaseException | None]:
        """Send `items` (calls to one partner) as one batch call, apply the answers in one transaction
        (with their messages marked sent; `_apply_all`), and record the failures; returns each
        item's outcome as `common.delivery` takes it. A partner without the batch call (404) gets
        single calls, from then on."""
        if len(items) == 1:
            return [self._single(items[0])]
        outcomes: dict[int, bool | BaseException | None] = {}
        prepared: list[_Prepared] = []
        with self.db.transaction() as session:
            _held, known = _read_batch(session, items)
            for item in items:
                try:
                    prepared.append(self._prepare(session, item, known))
                except DeliveryFailed as exc:
                    outcomes[item.id] = exc
        by_connection = {p.connection_id for p in prepared}
        if len(prepared) < 2 or len(by_connection) > 1 or by_connection & self._no_batch:
            for p in prepared:
                outcomes[p.item.id] = self._single(p.item)
            return [outcomes[item.id] for item in items]
        [connection_id] = by_connection
        result = prepared[0].client.batch(f"batch:{uuid.uuid4().hex}", [p.call for p in prepared], self.clock)
        if result.status in (404, 405):  # the partner does not take batches
            logger.info("partner CRM connection %s has no batch call: single calls", connection_id)
            self._no_batch.add(connection_id)
            for p in prepared:
                outcomes[p.item.id] = self._single(p.item)
            return [outcomes[item.id] for item in items]
        results = batch_results(result, len(prepared), self.clock())
        if results is None:  # the batch as a whole failed: each call failed so
            results = [result if result.outcome.verdict is not Verdict.DELIVERED else _no_items()] * len(
                prepared
            )
        failed: list[tuple[_Prepared, CallResult]] = []
        delivered = [
            (p, r) for p, r in zip(prepared, results, strict=True) if r.outcome.verdict is Verdict.DELIVERED
        ]
        failed += [
            (p, r)
            for p, r in zip(prepared, results, strict=True)
            if r.outcome.verdict is not Verdict.DELIVERED
        ]
        if delivered:
            if any(p.item.attempts > 1 for p, _ in delivered):
                outbox.expedite(self.db, CHANNEL, connection_prefix(connection_id), now=self.clock())
            try:
                applied = self._apply_all(delivered, outcomes, failed)
            except Exception as exc:  # the transaction itself failed: nothing of it was kept
                logger.exception("applying a batch of %s answers failed", len(delivered))
                for p, r in delivered:
                    if outcomes.get(p.item.id) is True:
                        del outcomes[p.item.id]
                    if p.item.id not in outcomes:
                        failed.append((p, self._not_applied(p.transfer_id, exc, r)))
            else:
                for item_id in applied:
                    outcomes[item_id] = True
        for p, r in failed:
            try:
                self._failed(p.transfer_id, p.operation, p.item, r.outcome)
            except DeliveryFailed as exc:
                outcomes[p.item.id] = exc
        return [outcomes.get(item.id) for item in items]

    def _apply_all(
        self,
        delivered: list[tuple[_Prepared, CallResult]],
        outcomes: dict[int, bool | BaseException | None],
        failed: list[tuple[_Prepared, CallResult]],
    ) -> list[int]:
        """Apply each delivered answer in one transaction; returns the ids of the messages applied (and
        marked sent) once it committed. A lost lease goes to `outcomes`, an answer that cannot be
        applied to `failed`.

        All together first, without a savepoint each (two statements an answer); if one fails, that
        transaction is rolled back whole and each answer is applied again in a savepoint of its own, so
        that it fails alone."""
        if len(delivered) > 1:
            try:
                return self._apply_together(delivered)
            except Exception as exc:  # nothing of it was kept
                logger.info("a batch of %s answers: one failed (%s); each on its own", len(delivered), exc)
        return self._apply_each(delivered, outcomes, failed)

    def _apply_together(self, delivered: list[tuple[_Prepared, CallResult]]) -> list[int]:
        now = self.clock()
        with self.db.transaction() as session, audit.batched(session):
            loaded = _load(session, [(p.transfer_id, p.operation) for p, _ in delivered])
            for p, r in delivered:
                self._apply_in(session, p.transfer_id, p.operation, p.item, r, now, loaded, settle=False)
                session.flush()
                expunge_except(session, loaded.keep)
            items = [p.item for p, _ in delivered]
            if outbox.mark_all_sent_in(session, items, now=now) != len(items):
                raise LeaseLost("a lease was lost before the answers were applied")  # rolled back
        return [item.id for item in items]

    def _apply_each(
        self,
        delivered: list[tuple[_Prepared, CallResult]],
        outcomes: dict[int, bool | BaseException | None],
        failed: list[tuple[_Prepared, CallResult]],
    ) -> list[int]:
        """`_apply_all`, each answer in a savepoint of its own."""
        applied = []
        now = self.clock()
        with self.db.transaction() as session, audit.batched(session):
            loaded = _load(session, [(p.transfer_id, p.operation) for p, _ in delivered])
            for p, r in delivered:
                try:
                    with audit.undone_on_error(session), session.begin_nested():
                        self._apply_in(session, p.transfer_id, p.operation, p.item, r, now, loaded)
                    applied.append(p.item.id)
                    expunge_except(session, loaded.keep)  # written: the savepoint flushed it
                except LeaseLost as exc:
                    outcomes[p.item.id] = exc
                except Exception as exc:
                    failed.append((p, self._not_applied(p.transfer_id, exc, r)))
        return applied

    def _single(self, item: OutboxItem) -> bool | BaseException | None:
        try:
            return self(item)
        except Exception as exc:
            return exc

    def _apply(self, transfer_id: int, operation: str, item: OutboxItem, result: CallResult) -> None:
        with self.db.transaction() as session:
            loaded = _load(session, [(transfer_id, operation)])
            self._apply_in(session, transfer_id, operation, item, result, self.clock(), loaded)

    def _apply_in(
        self,
        session: Session,
        transfer_id: int,
        operation: str,
        item: OutboxItem,
        result: CallResult,
        now: datetime,
        loaded: _Loaded,
        *,
        settle: bool = True,
    ) -> None:
        """Apply the partner's answer to `item` and mark it sent (unless not `settle`: the caller marks
        it), in `session`'s transaction (whose `_load` read and locked the transfer)."""
        body: dict[str, Any] = result.body
        t = session.get(OpportunityTransfer, transfer_id)
        assert t is not None
        c = session.get(PartnerCrmConnection, t.connection_id)
        assert c is not None
        before = {"status": t.status}
        details: dict[str, Any] = {
            "operation": operation,
            "http_status": result.status,
            "key": item.dedupe_key,
        }
        if operation in ("create", "update"):
            # the transfer's changes are written once, with its status below (not also before the reads)
            with session.no_autoflush:
                remote_id = body.get("id")
                pairs: list[tuple[str, int, str]] = []
                if operation == "create" and isinstance(remote_id, str | int) and str(remote_id):
                    t.remote_id = str(remote_id)[:200]
                    t.remote_type = _remote_type(body, c)
                    if t.opportunity_id is not None:
                        pairs.append(("opportunity", t.opportunity_id, t.remote_id))
                if operation == "update" and _follow_remote(session, t, c, body):
                    repository.adopt_pairs(session, t, body.get("correlations"))  # every pair it keeps
                gone: list[tuple[str, int, str]] = []
                # a create's record is the opportunity it was read for (an update's may have moved on)
                own = (
                    loaded.children.get(t.opportunity_id)
                    if operation == "create" and t.opportunity_id
                    else None
                )
                pairs += repository.reply_pairs(session, t, body.get("correlations"), gone, own)
                repository.remember_many(session, t, pairs)
                if gone:  # children of ours deleted while the document that carried them travelled
                    sent = _sent_child_ids(c, item)
                    buried = [
                        (kind, ours, theirs) for kind, ours, theirs in gone if ours in sent.get(kind, ())
                    ]
                    repository.remember_many(session, t, buried, deleted_at=now)
                theirs_deleted = repository.deletions_of({DELETIONS_KEY: body.get(DELETIONS_KEY)})
                if theirs_deleted:  # children the partner deleted: ours go too
                    deleted_here = inbound_repository.apply_deletions(
                        session, t, repository.mirrored(theirs_deleted), now=now
                    )
                    if deleted_here:
                        details["changes"] = deleted_here
                action = "transferred" if operation == "create" else "update_sent"
                t.message = status_messages.created(operation, c.name, t.remote_type, t.remote_id)
        else:
            doc = from_partner(outbound_profile(c), body)
            hints, deletions = repository.hints_of(body), repository.deletions_of(body)
            if t.remote_type == s.RemoteType.LEAD.value and doc.get("id") not in (None, t.remote_id):
                # the partner's lead answers under another id: it became the partner's opportunity
                renamed = {"type": s.RemoteType.OPPORTUNITY.value, "id": doc["id"]}
                if _follow_remote(session, t, c, renamed):
                    repository.adopt_pairs(session, t, repository.mirrored(hints))
            inbound_repository.converted(session, t)  # kept as a lead here that converted since
            opp = (
                session.get(Opportunity, t.opportunity_id, with_for_update=True) if t.opportunity_id else None
            )
            lead = session.get(Lead, t.lead_id, with_for_update=True) if opp is None and t.lead_id else None
            if opp is not None:
                _, changes = inbound_repository.apply_document(
                    session, t, opp, doc, now=now, hints=hints, deletions=deletions
                )
            elif lead is not None:
                _, changes = inbound_repository.apply_lead_document(
                    session, t, lead, doc, now=now, hints=hints, deletions=deletions
                )
            else:
                raise PartnerDataInvalid("the transfer has no opportunity to apply the answer to")
            details["changes"] = changes
            action = "update_received"
            t.message = status_messages.received(c.name, t.remote_type, t.remote_id, changes)
        t.status, t.last_error, t.attempts = s.TransferState.SUCCESSFUL.value, None, item.attempts
        t.last_synced_at = t.updated_at = now
        repository.record(session, None, t, action, now=now, before=before, details=details)
        facts = loaded.facts.get(t.opportunity_id) if t.opportunity_id is not None else None
        if operation == "create":
            self._follow_up(session, t, c, item, now, facts[0] if facts else None)
        if action == "transferred":
            _tell_transferred(session, t, c, now, facts[1] if facts else None, loaded.people)
        if settle and not outbox.mark_sent_in(session, item, now=now):
            # another deliverer took the message over: it applies the same answer (rolled back here)
            raise LeaseLost(f"outbox message {item.id}: lease lost before the answer was applied")

    def _follow_up(
        self,
        session: Session,
        t: OpportunityTransfer,
        c: PartnerCrmConnection,
        item: OutboxItem,
        now: datetime,
        version: int | None,
    ) -> None:
        """The opportunity changed while its create was on the way (its `version` now moved past the
        one sent) and updates go out automatically: the change follows as an update now."""
        sent = item.payload.get("version")
        if t.opportunity_id is None or not isinstance(sent, int):
            return
        if version is None or version <= sent:
            return  # unchanged in transit (the usual case): the opportunity and its children stay unread
        opp = session.get(Opportunity, t.opportunity_id)
        assert opp is not None
        if transfer_service.updates_automatic(session, c, opp):
            created = t.message
            transfer_service.queue_update(session, None, opp, c, t, now=now, automatic="changed_in_transit")
            t.message = f"{created}. {t.message}"

    def _failed(self, transfer_id: int, operation: str, item: OutboxItem, outcome: Outcome) -> NoReturn:
        now = self.clock()
        dead = not outcome.retryable or item.attempts >= self.policy.max_attempts
        logger.warning(
            "transfer %s: %s attempt %s failed (%s): %s",
            transfer_id,
            operation,
            item.attempts,
            "dead" if dead else "will retry",
            outcome.reason,
        )
        with self.db.transaction() as session:
            t = session.get(OpportunityTransfer, transfer_id, with_for_update=True)
            c = session.get(PartnerCrmConnection, t.connection_id) if t is not None else None
            if t is not None:
                before = {"status": t.status}
                partner = c.name if c is not None else "the partner"
                timeout = c.timeout_seconds if c is not None else None
                plain = status_messages.failure(outcome, partner, timeout_seconds=timeout)
                t.attempts, t.last_error, t.updated_at = item.attempts, plain[:2000], now
                if dead:
                    t.status = s.TransferState.FAILED.value
                    t.message = status_messages.failed(item.attempts, plain)[:2000]
                else:
                    t.message = status_messages.retrying(item.attempts, plain)[:2000]
                repository.record(
                    session,
                    None,
                    t,
                    "failed" if dead else "retry_scheduled",
                    now=now,
                    before=before,
                    details={
                        "operation": operation,
                        "error": plain[:500],
                        "detail": outcome.reason[:500],
                        "key": item.dedupe_key,
                    },
                )
        raise DeliveryFailed(
            outcome.reason, retryable=outcome.retryable, retry_after_seconds=outcome.retry_after_seconds
        )


def _read_batch(
    session: Session, items: list[OutboxItem]
) -> tuple[list[Any], dict[int, tuple[repository.Correlations, repository.Correlations]]]:
    """The transfers of a batch's messages and their connections, read into the session at once (each
    message's `_prepare` finds its own there while the caller holds them), and the child pairs of those
    with a document to send, by one statement."""
    ids, sending = set(), set()
    for item in items:
        transfer_id = parse_id(str(item.payload.get("transfer_id")))
        if transfer_id is not None:
            ids.add(transfer_id)
            if item.payload.get("operation") in ("create", "update"):
                sending.add(transfer_id)
    if not ids:
        return [], {}
    transfers = list(session.scalars(select(OpportunityTransfer).where(OpportunityTransfer.id.in_(ids))))
    connections = session.scalars(
        select(PartnerCrmConnection).where(PartnerCrmConnection.id.in_({t.connection_id for t in transfers}))
    )
    return [*transfers, *connections], repository.documents_pairs(
        session, [t for t in transfers if t.id in sending]
    )


def _load(session: Session, answers: list[tuple[int, str]]) -> _Loaded:
    """What applying these answers ((transfer id, operation) each) reads once for all (`_Loaded`): the
    transfers locked (in the order of their ids), their connections, and for a create, its
    opportunity's version and lead, the lead and its organization."""
    ids = sorted({transfer_id for transfer_id, _ in answers})
    transfers = list(
        session.scalars(
            select(OpportunityTransfer)
            .where(OpportunityTransfer.id.in_(ids))
            .order_by(OpportunityTransfer.id)
            .with_for_update()
        )
    )
    connections = list(
        session.scalars(
            select(PartnerCrmConnection).where(
                PartnerCrmConnection.id.in_({t.connection_id for t in transfers})
            )
        )
    )
    creates = {transfer_id for transfer_id, operation in answers if operation == "create"}
    opportunity_ids = {t.opportunity_id for t in transfers if t.id in creates and t.opportunity_id}
    facts: dict[int, tuple[int, int | None]] = {}
    if opportunity_ids:
        rows = session.execute(
            select(Opportunity.id, Opportunity.version, Opportunity.lead_id).where(
                Opportunity.id.in_(opportunity_ids)
            )
        )
        facts = {opp_id: (version, lead_id) for opp_id, version, lead_id in rows}
    children = repository.opportunities_child_ids(session, facts)
    lead_ids = {lead_id for _, lead_id in facts.values() if lead_id is not None}
    people: dict[int, notifications_service.People] = {}
    if lead_ids:
        organizations = {c.organization_id for c in connections}
        leads: list[Any] = list(session.scalars(select(Lead).where(Lead.id.in_(lead_ids))))
        people = _people(session, leads)
        leads += session.scalars(select(Organization).where(Organization.id.in_(organizations)))
    objects = list(session.identity_map.values())  # with the leads' children and the users
    return _Loaded(facts, children, people, {id(obj) for obj in objects}, objects)


def _people(session: Session, leads: list[Lead]) -> dict[int, notifications_service.People]:
    """Whom each lead's ``transferred`` mail may go to (its owner, submitter and sales team, and the
    channel roles on its territories), their users read by one statement for all: `notify`'s `People`.
    A lead whose decision's policy names people is left to `notify`, which reads them."""
    named: dict[int, tuple[set[int], list[tuple[str, str, str]]]] = {}
    for lead in leads:
        if lead.decision_id is None:
            ids = {m.user_id for m in lead.sales_team}
            ids |= {i for i in (lead.owner_user_id, lead.submitted_by) if i is not None}
            named[lead.id] = (ids, territory_channel_roles(session, lead))
    all_ids = {i for ids, _ in named.values() for i in ids}
    all_keys = {k for _, roles in named.values() for k, _, _ in roles}
    users = (
        list(
            session.scalars(
                select(User)
                .where(or_(User.id.in_(all_ids), User.key.in_(all_keys)))
                .options(lazyload(User.organization))
            )
        )
        if all_ids or all_keys
        else []
    )
    return {
        lead_id: notifications_service.People(frozenset(k for k, _, _ in roles), frozenset(ids), users, roles)
        for lead_id, (ids, roles) in named.items()
    }


def retry_policy(settings: Settings) -> RetryPolicy:
    """The backoff of partner CRM calls (``PRM_TRANSFER_RETRY_BASE``, ``_CAP``, ``_MAX_ATTEMPTS``): by
    default the first retries come within seconds, so a partner back after a short outage is caught up
    at once, and no wait is longer than five minutes."""
    base = settings.transfer_retry_base_seconds
    return RetryPolicy(
        base_seconds=base,
        cap_seconds=max(base, settings.transfer_retry_cap_seconds),
        max_attempts=settings.transfer_max_attempts,
    )


def deliver(
    db: Database,
    settings: Settings,
    *,
    limit: int = 100,
    batch_size: int | None = None,
    concurrency: int | None = None,
    policy: RetryPolicy | None = None,
    client_factory: ClientFactory | None = None,
    batch_calls: int | None = None,
) -> DeliveryReport:
    """Send what is due on the ``partner_crm`` channel once, ``concurrency`` requests at a time (default
    ``PRM_TRANSFER_CONCURRENCY``): the calls to one partner ``batch_calls`` to a request (default
    ``PRM_TRANSFER_BATCH_CALLS``; 1: single calls, claimed ``batch_size`` at a time, default twice the
    concurrency)."""
    policy = policy or retry_policy(settings)
    concurrency = concurrency or settings.transfer_concurrency
    sender = PartnerCrmSender(db, settings, policy, client_factory=client_factory, connections=concurrency)
    try:
        return deliver_with(
            db,
            sender,
            settings,
            limit=limit,
            batch_size=batch_size,
            concurrency=concurrency,
            policy=policy,
            batch_calls=batch_calls,
        )
    finally:
        sender.close()


def deliver_with(
    db: Database,
    sender: PartnerCrmSender,
    settings: Settings,
    *,
    limit: int,
    concurrency: int,
    policy: RetryPolicy,
    batch_size: int | None = None,
    batch_calls: int | None = None,
    lease_seconds: float | None = None,
) -> DeliveryReport:
    """One pass of `deliver` with `sender` (which the caller keeps, and closes)."""
    batch_calls = batch_calls or settings.transfer_batch_calls
    if batch_calls > 1:
        return delivery.deliver_batches(
            db,
            CHANNEL,
            sender.send_batch,
            group_of=_recipient,
            group_size=batch_calls,
            limit=limit,
            lease_seconds=lease_seconds or lease_for(settings, 2, concurrency),
            policy=policy,
            rand=random.random,
            concurrency=concurrency,
        )
    batch_size = batch_size or 2 * concurrency
    return delivery.deliver(
        db,
        CHANNEL,
        sender,
        limit=limit,
        batch_size=batch_size,
        lease_seconds=lease_seconds or lease_for(settings, batch_size, concurrency),
        policy=policy,
        rand=random.random,
        concurrency=concurrency,
    )


def _recipient(item: OutboxItem) -> object:
    """The partner a message goes to (its calls may share a batch request)."""
    return item.payload.get("recipient") or f"transfer:{item.payload.get('transfer_id')}"


def lease_for(settings: Settings, batch_size: int, concurrency: int = 1) -> float:
    """A lease that outlasts a message's wait behind the others claimed with it and its own call, at the
    longest timeout we allow (120 s): one after the other, a whole batch; concurrently, the window of
    ``delivery.deliver`` (twice the concurrency) takes two rounds."""
    rounds = batch_size if concurrency == 1 else 2
    return float(rounds * 125 + 30)


def _sent_child_ids(c: PartnerCrmConnection, item: OutboxItem) -> dict[str, set[int]]:
    """Our ids of the children the message's document carried ({kind: ids}; none if it cannot be read
    back): an id the partner's answer pairs that is no child of ours any more was deleted while the
    document travelled, and only such ids become tombstones (never an id the partner made up)."""
    body = item.payload.get("body")
    if not isinstance(body, dict):
        return {}
    try:
        doc = from_partner(outbound_profile(c), body)
    except Exception:  # a profile changed since: no tombstones rather than wrong ones
        return {}
    out: dict[str, set[int]] = {}
    for kind in repository.CHILD_KINDS:
        for child in doc.get(kind) or []:
            local_id = parse_id(str(child.get("id", ""))) if isinstance(child, dict) else None
            if local_id is not None:
                out.setdefault(kind, set()).add(local_id)
    return out


def _remote_type(answer: dict[str, Any], c: PartnerCrmConnection) -> str:
    """What the partner keeps our opportunity as: the ``type`` its answer names (this service answers
    ``lead`` or ``opportunity``), else the object its profile says it speaks of (e.g. ``Lead``)."""
    named = answer.get("type")
    if isinstance(named, str) and named.strip():
        return named.strip()[:100]
    return outbound_profile(c).object_name[:100]


def _follow_remote(
    session: Session, t: OpportunityTransfer, c: PartnerCrmConnection, answer: dict[str, Any]
) -> bool:
    """The partner's answer names the record it keeps ours as: when that changed (the lead it kept
    converted into an opportunity), the transfer says so from now on. Returns whether it changed."""
    named_type, named_id = answer.get("type"), answer.get("id")
    if named_type not in (s.RemoteType.LEAD.value, s.RemoteType.OPPORTUNITY.value):
        return False
    if not isinstance(named_id, str | int) or not str(named_id):
        return False
    remote_id = str(named_id)[:200]
    if (t.remote_type, t.remote_id) == (named_type, remote_id):
        return False
    return repository.rename_remote(session, t, named_type, remote_id)


def _tell_transferred(
    session: Session,
    t: OpportunityTransfer,
    c: PartnerCrmConnection,
    now: datetime,
    lead_id: int | None,
    people: dict[int, notifications_service.People],
) -> None:
    """The partner's CRM took the opportunity: its registration's people (of its lead `lead_id`, read
    ahead in `people`) are told (the policy's ``transferred`` event), once per transfer."""
    lead = session.get(Lead, lead_id) if lead_id is not None else None
    if lead is None:
        return
    partner = session.get(Organization, c.organization_id)
    notifications_service.notify(
        session,
        lead,
        NotificationEvent.TRANSFERRED,
        None,
        now=now,
        occurrence=f"transfer:{t.id}",
        people=people.get(lead.id),
        partner=partner.name if partner else None,
    )
