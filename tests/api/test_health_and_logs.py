"""Operations can tell whether the service is alive and ready, count its requests, and follow one request
through the logs by its id."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from common.migrate import head_revision
from common.settings import Settings


def test_livez_answers_200_without_credentials(client):
    resp = client.get("/livez")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_readyz_answers_200_when_the_schema_is_at_head(client):
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ready", "schema": head_revision()}


@pytest.mark.parametrize(
    "url_of",
    [
        pytest.param(lambda tmp: f"sqlite:///{tmp / 'empty.sqlite3'}", id="empty-unmigrated-sqlite"),
        pytest.param(
            lambda tmp: "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", id="unreachable"
        ),
    ],
)
def test_readyz_answers_503_problem_when_the_database_is_not_ready(tmp_path: Path, url_of):
    from server import create_app

    app = create_app(Settings(database_url=url_of(tmp_path), log_json=False), TESTING=True)
    try:
        resp = app.test_client().get("/readyz")
        assert resp.status_code == 503
        assert resp.mimetype == "application/problem+json"
        body = resp.get_json()
        assert body["status"] == 503 and body["title"] == "Not ready" and body["type"]
        assert "127.0.0.1" not in body["detail"] and "nobody" not in body["detail"]
        # Still alive: a process that cannot reach its database is not a process to restart.
        assert app.test_client().get("/livez").status_code == 200
    finally:
        app.extensions["prm.db"].dispose()


def test_metrics_count_requests_by_endpoint_and_status(client, world):
    client.get("/v1/users", headers=world["admin"].headers)
    client.get("/v1/users")  # 401
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    text = resp.get_data(as_text=True)
    assert "# TYPE prm_http_requests_total counter" in text
    assert 'prm_http_requests_total{endpoint="directory.list_users",method="GET",status="200"} 1.0' in text
    assert 'prm_http_requests_total{endpoint="directory.list_users",method="GET",status="401"} 1.0' in text
    assert "prm_http_request_seconds_bucket" in text


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/livez", 200),
        ("GET", "/metrics", 200),
        ("GET", "/v1/users", 401),
        ("GET", "/nope", 404),
        ("PUT", "/v1/users", 405),
        ("POST", "/v1/programs", 401),
    ],
)
def test_every_response_carries_a_request_id(client, method, path, status):
    resp = client.open(path, method=method, data="x", headers={"Content-Type": "text/plain"})
    assert resp.status_code == status
    generated = resp.headers.get("X-Request-Id", "")
    assert len(generated) >= 16
    again = client.open(path, method=method, data="x", headers={"Content-Type": "text/plain"})
    assert again.headers["X-Request-Id"] != generated, "each request gets its own id"


def test_a_request_id_sent_by_the_caller_is_echoed(client, world):
    resp = client.get("/v1/users", headers={**world["admin"].headers, "X-Request-Id": "trace-42"})
    assert resp.headers["X-Request-Id"] == "trace-42"
    resp = client.get("/v1/nope", headers={"X-Request-Id": "trace-43"})
    assert resp.headers["X-Request-Id"] == "trace-43"


@pytest.mark.parametrize("bad", ["x" * 65, "new\tline"])
def test_an_unusable_request_id_is_replaced(client, bad):
    resp = client.get("/livez", headers={"X-Request-Id": bad})
    assert resp.headers["X-Request-Id"] not in ("", bad)


def test_the_request_log_line_carries_the_request_id(db_url):
    from server import create_app

    app = create_app(Settings(database_url=db_url, log_json=True), TESTING=True)
    stream = io.StringIO()
    handler = logging.getLogger("prm").handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        app.test_client().get("/nope", headers={"X-Request-Id": "trace-44"})
    finally:
        app.extensions["prm.db"].dispose()
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    mine = [r for r in records if r.get("request_id") == "trace-44"]
    assert mine, stream.getvalue()
    assert mine[-1]["status"] == 404 and mine[-1]["path"] == "/nope" and mine[-1]["method"] == "GET"
