"""``prm run``, the real process over a real socket: the errors the server raises before the app sees the
request (414, 431, 400) and the app's own size limits answer problem+json, never an HTML page."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.errors import PROBLEM_MEDIA_TYPE

PRM = Path(sys.executable).parent / "prm"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` as it is and read the whole answer (the server closes the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    database = tmp_path_factory.mktemp("devserver") / "prm.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRM_", "FLASK_"))}
    env.update(PRM_DATABASE_URL=f"sqlite:///{database}", PRM_LOG_FORMAT="text")
    subprocess.run([str(PRM), "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    proc = subprocess.Popen(
        [str(PRM), "run", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _exchange(port, b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, "prm run exited"
            assert time.monotonic() < deadline, "prm run did not start listening"
            time.sleep(0.2)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _problem(answer: tuple[int, dict[str, str], bytes], status: int) -> dict[str, Any]:
    got, headers, body = answer
    assert got == status, body[:300]
    assert headers["content-type"] == PROBLEM_MEDIA_TYPE, body[:300]
    assert b"<html" not in body.lower() and b"<!doctype" not in body.lower()
    problem: dict[str, Any] = json.loads(body)
    assert problem["status"] == status and problem["type"] and problem["title"] and problem["detail"]
    return problem


def test_a_url_past_the_servers_limit_is_a_414_problem(server: int) -> None:
    raw = b"GET /v1/leads?q=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    _problem(_exchange(server, raw), 414)


def test_a_url_past_the_apps_limit_is_a_414_problem(server: int) -> None:
    raw = b"GET /v1/leads?q=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert "8192" in _problem(_exchange(server, raw), 414)["detail"]


def test_a_header_line_past_the_servers_limit_is_a_431_problem(server: int) -> None:
    raw = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    _problem(_exchange(server, raw), 431)


def test_too_many_headers_is_a_431_problem(server: int) -> None:
    lines = b"".join(b"X-H%d: 1\r\n" % i for i in range(120))
    _problem(_exchange(server, b"GET /livez HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n"), 431)


def test_headers_past_the_apps_limit_are_a_431_problem(server: int) -> None:
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 2000) for i in range(20))
    raw = b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + lines + b"\r\n"
    assert "32768" in _problem(_exchange(server, raw), 431)["detail"]


def test_a_malformed_request_line_is_a_400_problem(server: int) -> None:
    _problem(_exchange(server, b"GARBAGE\r\n\r\n"), 400)
    _problem(_exchange(server, b'GET / HTTP/9"x\r\n\r\n'), 400)


def test_ordinary_requests_still_work(server: int) -> None:
    status, headers, _ = _exchange(server, b"GET /v1/leads HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 401 and headers["content-type"] == PROBLEM_MEDIA_TYPE
