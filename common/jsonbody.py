"""Strict JSON for request bodies.

Flask's defaults accept duplicate keys (last wins), ``NaN``/``Infinity``, ``1e400`` (becomes ``inf``) and
fail with a 500 on deep nesting (RELIABILITY.md, "Traps already found"). Every body goes through
``parse_strict`` before a view sees it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Flask, Request
from flask.json.provider import DefaultJSONProvider

from common.errors import FieldProblem, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from common.openapi import RAW_BODIES


class _BadJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _BadJson(f"{name} is not allowed in JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadJson(f"number {text[:40]} is out of range")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _BadJson(f"duplicate key {key!r}")
        result[key] = value
    return result


def _depth(value: Any) -> int:
    """Nesting depth of a parsed document, computed without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in node)
    return deepest


def parse_strict(raw: bytes | str, max_depth: int) -> Any:
    """Parse JSON, refusing duplicate keys, non-finite numbers and nesting deeper than ``max_depth``.

    Raises ``ValidationFailed`` (422) with the position of the problem.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_no_duplicates,
        )
    except UnicodeDecodeError as exc:
        raise ValidationFailed("Body is not UTF-8", [FieldProblem("", str(exc))]) from None
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            "Malformed JSON", [FieldProblem("", f"line {exc.lineno} column {exc.colno}: {exc.msg}")]
        ) from None
    except RecursionError:
        raise ValidationFailed(
            "JSON nested too deeply", [FieldProblem("", f"more than {max_depth} levels")]
        ) from None
    except (_BadJson, ValueError) as exc:
        raise ValidationFailed("Invalid JSON", [FieldProblem("", str(exc))]) from None
    if _depth(value) > max_depth:
        raise ValidationFailed("JSON nested too deeply", [FieldProblem("", f"more than {max_depth} levels")])
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """Flask JSON provider whose ``loads`` is strict, so ``request.get_json`` can never be lenient."""

    max_depth = 32

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return parse_strict(s, self.max_depth)


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def check_request_body(request: Request, max_bytes: int, max_depth: int) -> None:
    """Refuse an oversized body (413), a non-JSON one (415) or bad JSON (422) before any view runs.

    Endpoints that take files (CSV imports) declare their media type in ``common.openapi.RAW_BODIES``;
    their body must be of that type and UTF-8 (415/422).
    """
    if request.method not in BODY_METHODS or request.routing_exception is not None:
        return  # an unknown route or method answers 404/405 whatever the body
    length = request.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"Body is {length} bytes; the limit is {max_bytes}")
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"Body is larger than the limit of {max_bytes} bytes")
    if not raw:
        return
    mimetype = request.mimetype
    # Only the endpoints that declare a raw body (CSV imports) take one, and only that media type.
    raw_media = RAW_BODIES.get((request.endpoint or "").rpartition(".")[2])
    if raw_media:
        if mimetype != raw_media:
            raise UnsupportedMediaType(f"Send {raw_media}, not {mimetype or 'no content type'}")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed("Body is not UTF-8", [FieldProblem("", str(exc))]) from None
        return
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"Send application/json, not {mimetype or 'no content type'}")
    parse_strict(raw, max_depth)


def install(app: Flask, max_depth: int) -> None:
    """Make the app's JSON provider strict."""
    provider = StrictJSONProvider(app)
    provider.max_depth = max_depth
    app.json = provider
