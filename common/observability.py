"""Structured JSON logs with a request id, Prometheus metrics, and the health endpoints."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from typing import Any

from flask import Flask, Response, g, has_request_context, json, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pythonjsonlogger.orjson import OrjsonFormatter
from sqlalchemy import text

from common.auth import public
from common.database import Database
from common.migrate import current_revision, head_revision
from common.problems import problem_response

log = logging.getLogger("prm.request")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(json_logs: bool) -> None:
    # JSON lines written by orjson (a dependency already): a request's line cost about half as much as
    # with the standard library's encoder
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"
    handler.setFormatter(OrjsonFormatter(fmt) if json_logs else logging.Formatter(fmt))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger("prm")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    for name in ("common", "directory", "rules", "territory", "registration", "transfer"):
        logging.getLogger(name).handlers[:] = [handler]
        logging.getLogger(name).propagate = False


def init_app(app: Flask, db: Database, *, request_log: bool = True) -> None:
    registry = CollectorRegistry()
    requests_total = Counter(
        "prm_http_requests", "HTTP requests", ["method", "endpoint", "status"], registry=registry
    )
    latency = Histogram("prm_http_request_seconds", "HTTP request latency", ["endpoint"], registry=registry)
    app.extensions["prm.metrics"] = registry
    # labelled children looked up once: ``labels()`` checks and locks on every call
    counted: dict[tuple[str, str, int], Any] = {}
    timed: dict[str, Any] = {}

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(resp: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.endpoint or "unmatched"
        key = (request.method, endpoint, resp.status_code)
        child = counted.get(key)
        if child is None:
            child = counted[key] = requests_total.labels(key[0], endpoint, str(key[2]))
        child.inc()
        timer = timed.get(endpoint)
        if timer is None:
            timer = timed[endpoint] = latency.labels(endpoint)
        timer.observe(elapsed)
        resp.headers["X-Request-Id"] = g.get("request_id", "")
        if request_log:
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": resp.status_code,
                    "ms": round(elapsed * 1000, 2),
                },
            )
        return resp

    @public
    def livez() -> Response:
        return Response('{"status":"ok"}', mimetype="application/json")

    @public
    def readyz() -> Response:
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            current = current_revision(db.engine)
        except Exception as exc:  # any failure to reach the database means "not ready"
            log.warning("database not reachable: %s", type(exc).__name__)
            return problem_response(
                {"type": "about:blank", "title": "Not ready", "status": 503, "detail": "database unreachable"}
            )
        head = head_revision()
        if current != head:
            return problem_response(
                {
                    "type": "about:blank",
                    "title": "Not ready",
                    "status": 503,
                    "detail": f"database schema at {current}, code expects {head}; run 'prm db upgrade'",
                }
            )
        return Response(json.dumps({"status": "ready", "schema": head}), mimetype="application/json")

    @public
    def metrics() -> Response:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/livez", "livez", livez)
    app.add_url_rule("/readyz", "readyz", readyz)
    app.add_url_rule("/metrics", "metrics", metrics)
