"""Edge helpers shared by every API module: JSON responses with ETags, the request's If-Match, and
validation errors as problem+json with JSON pointers."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, json, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import NotFound, RequestHeaderFieldsTooLarge, RequestURITooLarge
from werkzeug.routing import IntegerConverter

from common.concurrency import etag_for
from common.errors import PROBLEM_BASE
from common.ids import MAX_ID, parse_id
from common.problems import problem_response


class IdConverter(IntegerConverter):
    """``<int:...>`` in every URL rule: ASCII digits naming an id the columns can hold (1 to ``MAX_ID``).

    Werkzeug's own reads non-ASCII digits (a fullwidth or Arabic-Indic one reached lead 1) and any size
    (an id past 2^31-1 reached PostgreSQL as a 500). A number no record can have answers 404, as any id
    that names nothing does.
    """

    regex = r"[0-9]+"

    def to_python(self, value: str) -> int:
        # NotFound rather than werkzeug's ValidationError, which turns into a 405 when the URL has a rule
        # for another method.
        parsed = parse_id(value)
        if parsed is None:
            raise NotFound(f"Nothing has the id {value}: ids are whole numbers from 1 to {MAX_ID}")
        return parsed


def check_request_size(max_url_bytes: int, max_header_bytes: int) -> None:
    """Refuse a URL (414) or headers (431) larger than the limits, as problem+json like every error.

    Servers have limits of their own (Werkzeug's 64 KiB request line, gunicorn's 4 KiB), answered in
    their own format; these lower ones make the app's answer the one a client gets.
    """
    environ = request.environ
    url = environ.get("REQUEST_URI") or environ.get("RAW_URI") or request.full_path
    if len(url) > max_url_bytes:
        raise RequestURITooLarge(f"The URL is {len(url)} bytes long; the limit is {max_url_bytes}")
    header_bytes = sum(len(k) + len(v) + 4 for k, v in request.headers.items())
    if header_bytes > max_header_bytes:
        raise RequestHeaderFieldsTooLarge(
            f"The request headers are {header_bytes} bytes; the limit is {max_header_bytes}"
        )


def install_id_converter(app: Flask) -> None:
    """Make ``<int:...>`` the :class:`IdConverter`; call before any rule is registered."""
    app.url_map.converters["int"] = IdConverter


def if_match() -> str | None:
    """The request's ``If-Match`` header, for services that change a stored record."""
    return request.headers.get("If-Match")


def json_response(
    payload: BaseModel | dict[str, Any], status: int = 200, etag: tuple[int, int] | None = None
) -> Response:
    """Serialise a model (or dict) as JSON, with the record's ETag when given."""
    # compact: a what-if answer or a page of records is read by programs, and every byte is sent; a model
    # by pydantic's own serializer, in one pass (dumping it to Python and encoding that with the standard
    # library's encoder was a tenth of the CPU of a page of 20 leads)
    text = (
        payload.model_dump_json()
        if isinstance(payload, BaseModel)
        else json.dumps(payload, separators=(",", ":"))
    )
    resp = Response(text, status=status, mimetype="application/json")
    if etag is not None:
        resp.headers["ETag"] = etag_for(*etag)
    return resp


def _pointer(loc: tuple[int | str, ...], section: str) -> str:
    parts = [section] if section != "body" else []
    parts += [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "/" + "/".join(parts) if parts else ""


def validation_error_response(exc: ValidationError) -> Response:
    """flask-openapi3's validation callback: every pydantic error becomes a problem with a JSON pointer.

    Query and path models are named ``...Query`` / ``...Path``, which is how the section is told apart.
    """
    title = exc.title.lower()
    section = next((s for s in ("query", "path", "header") if title.endswith(s)), "body")
    errors: list[dict[str, Any]] = [
        {"pointer": _pointer(tuple(err["loc"]), section), "detail": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return problem_response(
        {
            "type": PROBLEM_BASE + "validation-failed",
            "title": "Validation failed",
            "status": 422,
            "detail": f"{len(errors)} problem(s) in the request",
            "errors": errors,
        }
    )
