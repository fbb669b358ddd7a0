"""What a transfer's status says, in plain words, for every outcome (pure: no I/O).

An admin reads ``message`` on ``GET /v1/opportunities/{id}/transfers``: what is queued, what the partner
created ("Created as opportunity 12 on Northwind CRM"), what an update or a query did, and why a call
failed. Failures are described from what we know about them (the HTTP status, the kind of failure, the
class of the exception), never with an exception's own text: that, and the partner's raw answer, go to
the log.

>>> created("create", "Northwind CRM", "opportunity", "12")
'Created as opportunity 12 on Northwind CRM'
>>> failure(classify(404).explained(detail="no opportunity was transferred with id 7"), "Northwind CRM")
'Northwind CRM does not know this record or address (HTTP 404): no opportunity was transferred with id 7'
>>> cause_of(ConnectionRefusedError(111, "Connection refused"))
'the connection was refused (is the service running at that address?)'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transfer.retry import Failure, Outcome, classify

__all__ = ["cause_of", "classify", "created", "failed", "failure", "kept", "queued", "received", "retrying"]

#: Exception class name (anywhere in its MRO) -> what happened, in plain words. Matched by name so this
#: module needs neither httpx nor SQLAlchemy; the first class of the MRO found here wins.
CAUSES: Mapping[str, str] = {
    "ConnectTimeout": "the connection could not be opened in time",
    "ReadTimeout": "it did not answer in time",
    "WriteTimeout": "our request could not be sent in time",
    "PoolTimeout": "no connection was free in time",
    "TimeoutException": "it did not answer in time",
    "TimeoutError": "it did not answer in time",
    "ConnectionRefusedError": "the connection was refused (is the service running at that address?)",
    "ConnectionResetError": "the connection was reset before it answered",
    "RemoteProtocolError": "it closed the connection without a valid answer",
    "LocalProtocolError": "our request could not be sent",
    "ProxyError": "a proxy refused the connection",
    "UnsupportedProtocol": "its address does not use http or https",
    "ConnectError": "no connection could be opened",
    "ReadError": "the connection broke off while reading its answer",
    "WriteError": "the connection broke off while sending our request",
    "NetworkError": "the network failed",
    "SSLError": "the secure connection (TLS) could not be set up; check its certificate",
    "PartnerHostUnresolvable": "its host name does not resolve right now",
    "PartnerUrlRefused": "its address is refused by our URL policy",
    "gaierror": "its host name does not resolve right now",
    "IntegrityError": "our records could not store the result: it conflicts with a record stored before",
    "OperationalError": "our database could not be reached",
    "StaleDataError": "the record was changed at the same time; it is retried",
    "PartnerDataInvalid": "its answer does not fit our records",
    "OSError": "the network failed",
    "Exception": "an unexpected error on our side (the details are in the service log)",
}

_GENERIC = frozenset({"ConnectError", "NetworkError", "TransportError", "OSError", "Exception"})
_CONNECT_WORDS = (
    ("refused", "ConnectionRefusedError"),
    ("certificate", "SSLError"),
    ("ssl", "SSLError"),
    ("name or service not known", "gaierror"),
    ("nodename nor servname", "gaierror"),
    ("temporary failure in name resolution", "gaierror"),
    ("reset by peer", "ConnectionResetError"),
)


def cause_of(exc: BaseException) -> str:
    """What an exception means, in plain words (by its class, never its text).

    A generic connection error (httpx wraps the operating system's) is narrowed by the error it wraps,
    or, failing that, by a few well-known words of the system's message.

    >>> cause_of(KeyError("x"))
    'an unexpected error on our side (the details are in the service log)'
    """
    for inner in _chain(exc):
        for klass in type(inner).__mro__:
            if klass.__name__ in _GENERIC:
                break  # generic: look further down the chain first
            if klass.__name__ in CAUSES:
                return CAUSES[klass.__name__]
    text = str(exc).lower()
    for words, name in _CONNECT_WORDS:
        if words in text:
            return CAUSES[name]
    for klass in type(exc).__mro__:
        if klass.__name__ in CAUSES:
            return CAUSES[klass.__name__]
    return CAUSES["Exception"]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


_STATUS_WORDS: Mapping[int, str] = {
    400: "refused the request as malformed",
    401: "did not accept our signature",
    403: "refused access",
    404: "does not know this record or address",
    405: "does not offer this operation at this address",
    408: "gave up waiting for our request",
    409: "reported a conflict with its own records",
    410: "no longer has this record",
    413: "found the opportunity too large",
    415: "did not accept JSON",
    422: "refused the data",
    425: "asked us to try again later",
    429: "asked us to slow down",
    500: "had an internal error",
    501: "does not support this operation",
    502: "is unavailable right now (a gateway could not reach it)",
    503: "is unavailable right now",
    504: "is unavailable right now (a gateway timed out)",
}


_ADVICE: Mapping[int, str] = {
    401: "Check that both sides hold the same signing secret and that their clocks agree",
    405: "Check the connection's base URL",
}


def _status_words(status: int) -> str:
    if status in _STATUS_WORDS:
        return _STATUS_WORDS[status]
    if 300 <= status <= 399:
        return "answered with a redirect, which is not followed; check the connection's base URL"
    if status < 200:
        return "sent an interim answer instead of an answer"
    if status >= 500:
        return "failed to answer"
    return "refused the request"


def failure(outcome: Outcome, partner: str, *, timeout_seconds: float | None = None) -> str:
    """One sentence saying why a call to `partner` (the connection's name) failed.

    >>> failure(classify(Failure.TIMEOUT), "Northwind CRM", timeout_seconds=10)
    'Northwind CRM did not answer within 10 seconds'
    >>> failure(classify(503), "Northwind CRM")
    'Northwind CRM is unavailable right now (HTTP 503)'
    """
    detail = f": {_clip(outcome.detail)}" if outcome.detail else ""
    if outcome.status is not None and outcome.failure is None:
        advice = f". {_ADVICE[outcome.status]}" if outcome.status in _ADVICE else ""
        return f"{partner} {_status_words(outcome.status)} (HTTP {outcome.status}){detail}{advice}"
    kind = outcome.failure
    if kind is Failure.TIMEOUT:
        within = f" within {timeout_seconds:g} seconds" if timeout_seconds else " in time"
        return f"{partner} did not answer{within}"
    if kind is Failure.CONNECTION:
        return f"{partner} could not be reached: {outcome.cause or 'the network failed'}"
    if kind is Failure.URL_REFUSED:
        return f"{partner} was not called: its address is refused by our URL policy{detail}"
    if kind is Failure.INVALID_RESPONSE:
        why = outcome.cause or "not an answer of the transfer protocol"
        return f"{partner} answered with something we cannot use: {why}{detail}"
    # no HTTP failure: the answer arrived, and applying it here failed
    return f"The answer of {partner} could not be applied: {outcome.cause or CAUSES['Exception']}{detail}"


def _clip(text: str, limit: int = 300) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


_QUEUED = {
    "create": "Queued: the opportunity will be created on {partner}",
    "update": "Queued: the changes will be sent to {partner}",
    "query": "Queued: {partner} will be asked for its version of the opportunity",
}


def queued(operation: str, partner: str, *, automatic: bool = False) -> str:
    """
    >>> queued("update", "Northwind CRM", automatic=True)
    'Queued: the changes will be sent to Northwind CRM (automatic, after a change here)'
    """
    text = _QUEUED.get(operation, "Queued for {partner}").format(partner=partner)
    return f"{text} (automatic, after a change here)" if automatic else text


def _record(remote_type: str | None, remote_id: str | None) -> str:
    return " ".join(part for part in (remote_type or "record", remote_id) if part)


def created(operation: str, partner: str, remote_type: str | None, remote_id: str | None) -> str:
    """What a successful create or update did at the partner.

    >>> created("update", "Northwind CRM", "Lead", "L-9")
    'Update sent: Lead L-9 on Northwind CRM is up to date'
    """
    if operation == "create":
        return f"Created as {_record(remote_type, remote_id)} on {partner}"
    return f"Update sent: {_record(remote_type, remote_id)} on {partner} is up to date"


def received(
    partner: str,
    remote_type: str | None,
    remote_id: str | None,
    changes: Mapping[str, Any] | None,
    *,
    inbound: bool = False,
) -> str:
    """What applying the partner's version (a query's answer, or an update it sent) changed here.

    >>> received("Northwind CRM", "Lead", "L-9", {"name": ["a", "b"], "notes": {"added": 1}})
    "Received Northwind CRM's version of Lead L-9: changed name, notes"
    >>> received("Northwind CRM", "opportunity", "4", {}, inbound=True)
    'Update received from Northwind CRM (opportunity 4): nothing changed'
    """
    what = f"changed {', '.join(sorted(changes))}" if changes else "nothing changed"
    if inbound:
        return f"Update received from {partner} ({_record(remote_type, remote_id)}): {what}"
    return f"Received {partner}'s version of {_record(remote_type, remote_id)}: {what}"


def kept(partner: str, remote_type: str | None, remote_id: str, local_type: str, local_id: str) -> str:
    """What an inbound transfer created here.

    >>> kept("Brand CRM", "Opportunity", "12", "lead", "7")
    'Received from Brand CRM (Opportunity 12); kept here as lead 7'
    """
    return (
        f"Received from {partner} ({_record(remote_type, remote_id)}); kept here as {local_type} {local_id}"
    )


def retrying(attempt: int, reason: str) -> str:
    """
    >>> retrying(2, "Northwind CRM is unavailable right now (HTTP 503)")
    'Attempt 2 failed, trying again later: Northwind CRM is unavailable right now (HTTP 503)'
    """
    return f"Attempt {attempt} failed, trying again later: {reason}"


def failed(attempts: int, reason: str) -> str:
    """
    >>> failed(1, "Northwind CRM refused the data (HTTP 422)")
    'Failed: Northwind CRM refused the data (HTTP 422)'
    >>> failed(5, "Northwind CRM could not be reached: no connection could be opened")
    'Failed after 5 attempts: Northwind CRM could not be reached: no connection could be opened'
    """
    return f"Failed after {attempts} attempts: {reason}" if attempts > 1 else f"Failed: {reason}"
