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
from common.openapi import IMPORT_OPERATIONS, MULTIPART, RAW_BODIES
from common.pages import FORM_ENDPOINTS, FORM_MEDIA_TYPE
from common.textfile import decode_utf8


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


def _pointer(path: tuple[str | int, ...]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _check_tree(value: Any, max_depth: int) -> None:
    """Refuse nesting deeper than ``max_depth`` and text with NUL characters (PostgreSQL cannot store
    them; SQLite would, so the two databases would disagree), walking without recursion."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict | list) and len(path) + 1 > max_depth:
            raise ValidationFailed(
                "JSON nested too deeply", [FieldProblem("", f"more than {max_depth} levels")]
            )
        if isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    raise ValidationFailed(
                        "Invalid JSON", [FieldProblem(_pointer(path), "a key contains NUL (\\u0000)")]
                    )
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(node))
        elif isinstance(node, str) and "\x00" in node:
            raise ValidationFailed(
                "Invalid JSON", [FieldProblem(_pointer(path), "text may not contain NUL (\\u0000)")]
            )


def parse_strict(raw: bytes | str, max_depth: int) -> Any:
    """Parse JSON, refusing duplicate keys, non-finite numbers, NUL characters in text and nesting deeper
    than ``max_depth``.

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
    _check_tree(value, max_depth)
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """Flask JSON provider whose ``loads`` is strict, so ``request.get_json`` can never be lenient."""

    max_depth = 32

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return parse_strict(s, self.max_depth)


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def check_request_body(
    request: Request, max_bytes: int, max_depth: int, max_import_bytes: int | None = None
) -> None:
    """Refuse an oversized body (413), a non-JSON one (415) or bad JSON (422) before any view runs.

    Endpoints that take files (CSV imports) declare their media type in ``common.openapi.RAW_BODIES``;
    their body must be of that type and UTF-8 (415/422, a byte that is not UTF-8 named by row and
    column). The imports (``common.openapi.IMPORT_OPERATIONS``) take bodies up to ``max_import_bytes``.
    """
    operation = (request.endpoint or "").rpartition(".")[2]
    if max_import_bytes is not None and operation in IMPORT_OPERATIONS:
        max_bytes = max_import_bytes
    if request.routing_exception is not None:
        return  # an unknown route or method answers 404/405 whatever the request carries
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and "\x00" in value:
            raise ValidationFailed("Invalid path", [FieldProblem(f"/{name}", "may not contain NUL (%00)")])
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise ValidationFailed("Invalid query", [FieldProblem(f"/{name}", "may not contain NUL (%00)")])
    if request.method not in BODY_METHODS:
        return
    length = request.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"Body is {length} bytes; the limit is {max_bytes}")
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"Body is larger than the limit of {max_bytes} bytes")
    if not raw:
        return
    mimetype = request.mimetype
    if request.endpoint in FORM_ENDPOINTS:  # the HTML pages' forms (sign-in, sign-out)
        if mimetype != FORM_MEDIA_TYPE:
            raise UnsupportedMediaType(f"Send {FORM_MEDIA_TYPE}, not {mimetype or 'no content type'}")
        return
    # Only the endpoints that declare a raw body (CSV imports) take one, and only that media type.
    raw_media = RAW_BODIES.get(operation)
    if raw_media:
        if mimetype != raw_media:
            raise UnsupportedMediaType(f"Send {raw_media}, not {mimetype or 'no content type'}")
        if raw_media == MULTIPART:
            return  # the parts are files the view checks one by one (their own names and positions)
        text = decode_utf8(raw, request.args.get("filename") or "body")
        if "\x00" in text:
            line = text.count("\n", 0, text.index("\x00")) + 1
            raise ValidationFailed("Invalid file", [FieldProblem("", f"line {line}: NUL character")])
        return
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"Send application/json, not {mimetype or 'no content type'}")
    value = parse_strict(raw, max_depth)
    # the view's validation reads the body through ``request.get_json``: it gets this parse, not a second
    request._cached_json = (value, value)


def install(app: Flask, max_depth: int) -> None:
    """Make the app's JSON provider strict."""
    provider = StrictJSONProvider(app)
    provider.max_depth = max_depth
    app.json = provider
