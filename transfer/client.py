"""The one module that calls partner CRMs over HTTP (httpx).

Every call: the URL policy checked again at connect time (the host may resolve elsewhere by now),
connect/read/write deadlines plus a total deadline over the whole exchange, no redirects followed, a
capped response size, Standard Webhooks signature headers (a fresh ``webhook-id`` and timestamp per
attempt, so a captured request cannot be replayed, while the ``Idempotency-Key`` stays the same on every
retry so the partner creates one record however often we retry).

The protocol, relative to the connection's base URL:

- ``POST {base}/opportunities`` (create) and ``POST {base}/opportunities/update`` (update): the body is
  the opportunity in the partner's model; the answer ``{"id": their id, "correlations": {kind: {our id:
  their id}}}``.
- ``GET {base}/opportunities/{our id}`` (query): the answer is the opportunity in the partner's model.
- ``POST {base}/leads/update`` and ``GET {base}/leads/{our id}``: the same, from a lead we keep the
  partner's transfer as (our leads and opportunities are two id spaces).
- ``POST {base}/batch``: several of these calls in one request, each signed on its own
  (``transfer.batch_service``); a partner that answers 404 takes single calls.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from common.errors import ValidationFailed
from common.jsonbody import parse_strict
from transfer.retry import Failure, Outcome, Verdict, classify
from transfer.signing import signature_headers
from transfer.status_messages import cause_of
from transfer.urls import Resolver, check_partner_url, resolve_host

MAX_RESPONSE_BYTES = 5 * 1024 * 1024
MAX_RESPONSE_DEPTH = 32
CONNECT_TIMEOUT_CAP = 5.0


def new_pool(
    transport: httpx.BaseTransport | None = None, *, connections: int = 1, verify: Any = True
) -> httpx.Client:
    """An HTTP client for partner calls: no redirects followed, no proxy or netrc from the environment,
    up to ``connections`` kept alive per partner host. Its TLS context is built once, here: building one
    per call costs more than the call. Each call still brings its own deadlines."""
    return httpx.Client(
        follow_redirects=False,
        trust_env=False,
        transport=transport,
        verify=verify,
        timeout=httpx.Timeout(10.0, connect=CONNECT_TIMEOUT_CAP),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


@dataclass(frozen=True)
class CallResult:
    """What one call produced: the verdict, and the JSON answer when there was one."""

    outcome: Outcome
    status: int | None
    body: Any = None


@dataclass(frozen=True)
class PartnerCrmClient:
    base_url: str
    signing_secret: str
    timeout_seconds: float
    allow_private: bool = False
    resolve: Resolver = resolve_host
    transport: httpx.BaseTransport | None = None  # tests may pass httpx.MockTransport
    # A shared pool of connections (kept alive between calls); None: one connection per call.
    http: httpx.Client | None = None

    def create(self, msg_id: str, idempotency_key: str, body: Any, now: Callable[[], datetime]) -> CallResult:
        return self._call("POST", "/opportunities", msg_id, idempotency_key, body, now)

    def update(
        self,
        msg_id: str,
        idempotency_key: str,
        body: Any,
        now: Callable[[], datetime],
        *,
        lead: bool = False,
    ) -> CallResult:
        """``lead``: the document is of a lead we keep the partner's transfer as (``/leads/update``)."""
        path = "/leads/update" if lead else "/opportunities/update"
        return self._call("POST", path, msg_id, idempotency_key, body, now)

    def query(
        self,
        msg_id: str,
        idempotency_key: str,
        local_id: str,
        now: Callable[[], datetime],
        *,
        lead: bool = False,
    ) -> CallResult:
        """``lead``: `local_id` is a lead we keep the partner's transfer as (``/leads/{id}``)."""
        collection = "leads" if lead else "opportunities"
        return self._call(
            "GET", f"/{collection}/{quote(local_id, safe='')}", msg_id, idempotency_key, None, now
        )

    def batch(self, msg_id: str, calls: list[BatchCall], now: Callable[[], datetime]) -> CallResult:
        """Several calls in one request (``POST {base}/batch``), each signed on its own; the answer's
        ``items`` hold each call's status and body, in order (`batch_results` reads them)."""
        timestamp = int(now().timestamp())
        items = []
        for call in calls:
            content = (
                "" if call.body is None else json.dumps(call.body, separators=(",", ":"), ensure_ascii=False)
            )
            item: dict[str, Any] = {
                "operation": call.operation,
                "record": "lead" if call.lead else "opportunity",
                "idempotency_key": call.idempotency_key,
                "headers": signature_headers(self.signing_secret, call.msg_id, timestamp, content),
                "body": content,
            }
            if call.remote_id is not None:
                item["remote_id"] = call.remote_id
            items.append(item)
        return self._call("POST", "/batch", msg_id, msg_id, {"items": items}, now)

    def _call(
        self,
        method: str,
        path: str,
        msg_id: str,
        idempotency_key: str,
        body: Any,
        now: Callable[[], datetime],
    ) -> CallResult:
        url = self.base_url.rstrip("/") + path
        try:
            check_partner_url(url, allow_private=self.allow_private, resolve=self.resolve)
        except Exception as exc:  # refused, or unresolvable right now
            retry = type(exc).__name__ == "PartnerHostUnresolvable"
            outcome = classify(Failure.CONNECTION if retry else Failure.URL_REFUSED)
            explained = (
                outcome.explained(cause=cause_of(exc)) if retry else outcome.explained(detail=str(exc))
            )
            return CallResult(replace(explained, reason=f"{outcome.reason}: {exc}"), None)
        content = (
            b"" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        )
        headers = {
            **signature_headers(self.signing_secret, msg_id, int(now().timestamp()), content),
            "Idempotency-Key": idempotency_key,
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        timeout = httpx.Timeout(self.timeout_seconds, connect=min(self.timeout_seconds, CONNECT_TIMEOUT_CAP))
        deadline = time.monotonic() + self.timeout_seconds
        try:
            with (
                contextlib.nullcontext(self.http)
                if self.http is not None
                else new_pool(self.transport) as client,
                client.stream(
                    method,
                    url,
                    content=content or None,
                    headers=headers,
                    timeout=timeout,
                    follow_redirects=False,
                ) as resp,
            ):
                data = bytearray()
                for chunk in resp.iter_bytes():
                    data.extend(chunk)
                    if len(data) > MAX_RESPONSE_BYTES:
                        too_large = f"an answer larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MB"
                        return CallResult(
                            classify(Failure.INVALID_RESPONSE).explained(cause=too_large), resp.status_code
                        )
                    if time.monotonic() > deadline:
                        return CallResult(classify(Failure.TIMEOUT), resp.status_code)
                status = resp.status_code
                retry_after = resp.headers.get("Retry-After")
                media = resp.headers.get("Content-Type", "")
        except httpx.TimeoutException as exc:
            timed_out = classify(Failure.TIMEOUT).explained(cause=cause_of(exc))
            return CallResult(replace(timed_out, reason=f"timeout: {exc!r}"), None)
        except (httpx.TransportError, OSError) as exc:
            unreachable = classify(Failure.CONNECTION).explained(cause=cause_of(exc))
            return CallResult(replace(unreachable, reason=f"connection: {exc!r}"), None)
        outcome = classify(status, retry_after=retry_after, now=now())
        parsed: Any = None
        if data and ("json" in media):
            try:  # strict and bounded like our own request bodies: a deep answer is no RecursionError
                parsed = parse_strict(bytes(data), MAX_RESPONSE_DEPTH)
            except ValidationFailed:
                parsed = None
        if outcome.retryable or outcome.verdict.value == "permanent":
            detail = ""
            if isinstance(parsed, dict) and parsed.get("detail"):
                detail = str(parsed["detail"])[:300]
            told = outcome.explained(detail=detail or None)
            return CallResult(
                replace(told, reason=outcome.reason + (f": {detail}" if detail else "")), status, parsed
            )
        if not isinstance(parsed, dict):
            invalid = classify(Failure.INVALID_RESPONSE).explained(
                cause=f"HTTP {status} without a JSON object"
            )
            return CallResult(replace(invalid, reason=f"HTTP {status} without a JSON object"), status)
        return CallResult(outcome, status, parsed)


@dataclass(frozen=True)
class BatchCall:
    """One call of a batch: what the single call would send (its own message id and idempotency key)."""

    operation: str  # create, update, query
    msg_id: str
    idempotency_key: str
    body: Any = None  # the document (create, update)
    remote_id: str | None = None  # a query: our id asked about
    lead: bool = False  # from a lead we keep the partner's transfer as


def batch_results(result: CallResult, count: int, now: datetime) -> list[CallResult] | None:
    """Each call's result from a batch's answer (None: the answer is no list of `count` items, or the
    batch itself failed: the caller treats every call alike)."""
    if result.outcome.verdict is not Verdict.DELIVERED or not isinstance(result.body, dict):
        return None
    items = result.body.get("items")
    if not isinstance(items, list) or len(items) != count:
        return None
    out = []
    for item in items:
        status = item.get("status") if isinstance(item, dict) else None
        body = item.get("body") if isinstance(item, dict) else None
        if not isinstance(status, int) or isinstance(status, bool):
            invalid = classify(Failure.INVALID_RESPONSE).explained(cause="a batch answer without a status")
            out.append(CallResult(invalid, None))
            continue
        outcome = classify(status, now=now)
        if outcome.retryable or outcome.verdict is Verdict.PERMANENT:
            detail = str(body.get("detail"))[:300] if isinstance(body, dict) and body.get("detail") else ""
            told = outcome.explained(detail=detail or None)
            out.append(
                CallResult(
                    replace(told, reason=outcome.reason + (f": {detail}" if detail else "")), status, body
                )
            )
        elif not isinstance(body, dict):
            cause = f"HTTP {status} without a JSON object"
            out.append(CallResult(classify(Failure.INVALID_RESPONSE).explained(cause=cause), status))
        else:
            out.append(CallResult(outcome, status, body))
    return out


class AdminApiError(Exception):
    """A call to another instance's admin API failed: one readable line (and the problem's details)."""


@dataclass(frozen=True)
class AdminApi:
    """Another instance of this service, through its admin API (``prm transfer connect``): JSON in and
    out with the admin's API key; any answer but a 2xx becomes an `AdminApiError` naming the instance,
    the call and the problem the instance reported."""

    url: str
    admin_key: str
    timeout_seconds: float = 30.0
    transport: httpx.BaseTransport | None = None

    def call(
        self, method: str, path: str, body: Any = None, *, if_match: str | None = None
    ) -> tuple[Any, str]:
        """The JSON answer of ``method path`` and its ETag ("" without one)."""
        headers = {"Authorization": f"Bearer {self.admin_key}", "Accept": "application/json"}
        if if_match is not None:
            headers["If-Match"] = if_match
        url = self.url.rstrip("/") + path
        try:
            with httpx.Client(
                timeout=self.timeout_seconds,
                follow_redirects=False,
                trust_env=False,
                transport=self.transport,
            ) as client:
                resp = client.request(method, url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise AdminApiError(f"{self.url}: {method} {path}: cannot reach the instance ({exc})") from None
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            data = None
        if not 200 <= resp.status_code < 300:
            detail = ""
            if isinstance(data, dict):
                detail = str(data.get("detail") or data.get("title") or "")
                for e in data.get("errors") or []:
                    if isinstance(e, dict):
                        detail += f"\n  {e.get('pointer', '')}: {e.get('detail', e.get('message', ''))}"
            raise AdminApiError(
                f"{self.url}: {method} {path}: HTTP {resp.status_code}: {detail}".rstrip(": ")
            )
        return data, resp.headers.get("ETag", "")
