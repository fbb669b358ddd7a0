"""The batch call of the partner CRM protocol: ``POST {base}/batch`` carries up to `MAX_ITEMS` calls
(creates, updates, queries) in one request, applied in one transaction, each answered on its own.

The call itself is signed like any other (a caller without the connection's secret gets 401 and nothing
is read). Each item is still a whole signed call of its own: its ``headers`` (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``) sign its ``body``, the document as a JSON text, exactly as
a single call would send it; its message id goes to the replay store, its ``idempotency_key`` names it in
the audit, and a create is idempotent by the sender's id as always. An item that fails (a bad signature,
an unknown id, invalid data) is answered with its problem and changes nothing, the others are kept: the
items are applied together, and when one fails that transaction is rolled back and the batch applied
again with each item in a savepoint of its own. The answer lists, in order, each item's HTTP status and
body (what the single call would have answered). A partner that does not know the call answers 404, and
the sender falls back to single calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.database import Database, expunge_except
from common.errors import FieldProblem, PrmError, ServiceUnavailable, ValidationFailed
from common.jsonbody import parse_strict
from common.settings import Settings
from transfer import inbound_service
from transfer.inbound_service import Reply
from transfer.models import PartnerCrmConnection

MAX_ITEMS = 100
OPERATIONS = ("create", "update", "query")
RECORDS = ("opportunity", "lead")


class _ItemFailed(Exception):
    """An item failed while the batch was applied without savepoints: it is applied again with them."""


def batch(db: Database, settings: Settings, key: str, headers: Mapping[str, str], body: bytes) -> Reply:
    """Apply each signed call the batch carries, in one transaction; answer each.

    All items together first, without a savepoint each (two statements an item); if one fails, that
    transaction is rolled back whole and the batch is applied again with each item in a savepoint of its
    own, so that it fails alone (the answers are those a batch applied item by item gives)."""
    now = utcnow()
    try:
        with db.transaction() as session, audit.batched(session):  # the items' audit rows: one INSERT
            c = inbound_service.verified(session, settings, key, headers, body, now)
            items = _items(parse_strict(body, settings.max_json_depth))
            if len(items) > 1:
                return Reply(200, {"items": [_together(session, settings, key, i, now, c) for i in items]})
    except _ItemFailed:
        pass  # nothing of it was kept
    with db.transaction() as session, audit.batched(session):
        c = inbound_service.verified(session, settings, key, headers, body, now)
        items = _items(parse_strict(body, settings.max_json_depth))
        answers = [_answer(session, settings, key, item, now, c) for item in items]
    return Reply(200, {"items": answers})


def _together(
    session: Session,
    settings: Settings,
    key: str,
    item: dict[str, Any],
    now: datetime,
    c: PartnerCrmConnection,
) -> dict[str, Any]:
    """One item's answer, without a savepoint: any failure is `_ItemFailed`."""
    try:
        reply = _call(session, settings, key, item, now, c)()
        session.flush()
    except Exception as exc:
        raise _ItemFailed(str(exc)) from exc
    expunge_except(session, {id(c)})  # the connection stays
    return {"status": reply.status, "body": reply.body}


def _answer(
    session: Session,
    settings: Settings,
    key: str,
    item: dict[str, Any],
    now: datetime,
    c: PartnerCrmConnection,
) -> dict[str, Any]:
    """One item's answer, in a savepoint of its own; `c`: the connection the batch call was verified for
    (each item is verified with it, not read again)."""
    call = _call(session, settings, key, item, now, c)
    try:
        # an item that fails changes nothing (its audit rows dropped too); the others stay
        with audit.undone_on_error(session), session.begin_nested():
            reply = call()
        expunge_except(session, {id(c)})  # written (the savepoint flushed it); the connection stays
    except PrmError as exc:
        return {"status": exc.status, "body": exc.to_problem()}
    except IntegrityError:  # a concurrent identical create won the race: the retry reads its result
        busy = ServiceUnavailable("the item could not be stored now; retry")
        return {"status": busy.status, "body": busy.to_problem()}
    return {"status": reply.status, "body": reply.body}


def _call(
    session: Session,
    settings: Settings,
    key: str,
    item: dict[str, Any],
    now: datetime,
    c: PartnerCrmConnection,
) -> Callable[[], Reply]:
    """The item's call (create, update or query) as the single call would make it."""
    content = item["body"].encode()
    headers = {**item["headers"], "Idempotency-Key": item.get("idempotency_key") or ""}
    call: Callable[[], Reply]
    if item["operation"] == "create":

        def call() -> Reply:
            return inbound_service.create_in(session, settings, key, headers, content, now, c)

    elif item["operation"] == "update":

        def call() -> Reply:
            return inbound_service.update_in(
                session,
                settings,
                key,
                headers,
                content,
                now,
                from_lead=item["record"] == "lead",
                connection=c,
            )

    else:

        def call() -> Reply:
            return inbound_service.query_in(
                session,
                settings,
                key,
                headers,
                content,
                item["remote_id"],
                now,
                from_lead=item["record"] == "lead",
                connection=c,
            )

    return call


def _items(payload: Any) -> list[dict[str, Any]]:
    """The batch's items, checked: each an operation, the record it speaks from, the signature headers
    and the document as a JSON text (a query: the id it asks for, and an empty body)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), list):
        raise ValidationFailed("a batch is {items: [...]}", [FieldProblem("/items", "expected an array")])
    items = payload["items"]
    problems = []
    if not 1 <= len(items) <= MAX_ITEMS:
        problems.append(FieldProblem("/items", f"expected 1 to {MAX_ITEMS} items"))
    out = []
    for i, item in enumerate(items[:MAX_ITEMS]):
        where = f"/items/{i}"
        if not isinstance(item, dict):
            problems.append(FieldProblem(where, "expected an object"))
            continue
        item = {"record": "opportunity", "body": "", **item}
        if item.get("operation") not in OPERATIONS:
            problems.append(FieldProblem(f"{where}/operation", f"one of {', '.join(OPERATIONS)}"))
        if item["record"] not in RECORDS:
            problems.append(FieldProblem(f"{where}/record", f"one of {', '.join(RECORDS)}"))
        headers = item.get("headers")
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            problems.append(FieldProblem(f"{where}/headers", "expected the signature headers as strings"))
        if not isinstance(item["body"], str):
            problems.append(FieldProblem(f"{where}/body", "expected the signed document as a JSON text"))
        if not isinstance(item.get("idempotency_key", ""), str):
            problems.append(FieldProblem(f"{where}/idempotency_key", "expected a string"))
        if item.get("operation") == "query":
            remote_id = item.get("remote_id")
            if not isinstance(remote_id, str) or not 1 <= len(remote_id) <= 200:
                problems.append(FieldProblem(f"{where}/remote_id", "the id asked for: 1 to 200 characters"))
        out.append(item)
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in the batch", problems)
    return out


#: The request body of the batch call, for the OpenAPI document.
BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_ITEMS,
            "items": {
                "type": "object",
                "required": ["operation", "headers"],
                "properties": {
                    "operation": {"enum": list(OPERATIONS)},
                    "record": {
                        "enum": list(RECORDS),
                        "default": "opportunity",
                        "description": "lead: the sender speaks from the lead it keeps our transfer as",
                    },
                    "remote_id": {
                        "type": "string",
                        "maxLength": 200,
                        "description": "a query: the sender's id it asks about",
                    },
                    "idempotency_key": {"type": "string", "maxLength": 256},
                    "headers": {
                        "type": "object",
                        "description": "webhook-id, webhook-timestamp and webhook-signature signing `body`",
                        "additionalProperties": {"type": "string"},
                    },
                    "body": {
                        "type": "string",
                        "description": "the document (see CanonicalOpportunity) as the JSON text signed; "
                        "empty for a query",
                    },
                },
            },
        }
    },
}
