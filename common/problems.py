"""Rendering errors as RFC 9457 ``application/problem+json``: one handler for our errors, werkzeug's HTTP
errors (404, 405, 413...) and anything unhandled (a generic 500 with no stack trace, SQL or path)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

from common.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, PrmError

log = logging.getLogger(__name__)


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """Render a problem body as ``application/problem+json``."""
    # a URI reference (RFC 9457): the path as it travels, percent-encoded, never raw control characters
    body.setdefault("instance", quote(request.path, safe="/-._~!$&'()*+,;=:@"))
    resp = Response(json.dumps(body), status=int(body["status"]), mimetype=PROBLEM_MEDIA_TYPE)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _http_problem(exc: HTTPException) -> Response:
    status = exc.code or 500
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (exc.name or "error").lower().replace(" ", "-"),
        "title": exc.name,
        "status": status,
        "detail": exc.description,
    }
    headers = {}
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    return problem_response(body, headers)


def register_error_handlers(app: Flask) -> None:
    """Make every error the app emits an RFC 9457 problem, including 404/405/413 and unhandled 500."""

    @app.errorhandler(PrmError)
    def _prm(exc: PrmError) -> Response:
        return problem_response(exc.to_problem())

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        # flask-openapi3 aborts with a ready response for validation errors: keep it.
        if isinstance(exc.response, Response):
            return exc.response
        return _http_problem(exc)

    @app.errorhandler(Exception)
    def _unhandled(exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.path})
        return problem_response(
            {
                "type": PROBLEM_BASE + "internal-error",
                "title": "Internal server error",
                "status": 500,
                "detail": "The service failed to handle this request; it has been logged.",
            }
        )
