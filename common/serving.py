"""The servers: production (``prm serve``, gunicorn) and development (``prm run``, Werkzeug's), both
answering the errors they raise themselves in problem+json.

``prm serve`` replaces itself with gunicorn configured by ``common.gunicorn_conf`` (workers, threads,
timeouts, graceful reload, a JSON access log). gunicorn refuses some requests before the app sees them
(a request line or header over its limit, a malformed request line or header) and writes those answers
with ``gunicorn.util.write_error``, an HTML page: :class:`ProblemThreadWorker`, gunicorn's threaded
worker, swaps that function for :func:`write_problem` in its process.

Werkzeug's server refuses some requests before the app sees them (a request line over 64 KiB: 414; a
header line over 64 KiB or more than 100 headers: 431; a malformed request line: 400) and answers those
with the standard library's HTML page. :class:`ProblemRequestHandler` answers them as the app answers
everything else (RFC 9457); the app itself refuses long URLs and large headers well below those limits
(``common.http.check_request_size``), so behind any server they get the app's answer.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import click
from flask.cli import ScriptInfo, pass_script_info
from gunicorn import util as gunicorn_util
from gunicorn.glogging import Logger as GunicornLogger
from gunicorn.workers.gthread import ThreadWorker
from pythonjsonlogger.orjson import OrjsonFormatter
from werkzeug.serving import WSGIRequestHandler, run_simple

from common.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from common.settings import Settings

#: ``app.extensions`` key of the function that warms a new worker (loads rulesets and snapshots).
WARM_UP = "prm.warm_up"
LOG_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _problem_body(status: int, title: str, detail: str) -> bytes:
    problem = {
        "type": PROBLEM_BASE + title.lower().replace(" ", "-"),
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    return json.dumps(problem).encode()


class ProblemRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler, answering the errors the server raises itself as problem+json."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        title, description = self.responses.get(code, ("Error", ""))
        self.log_error("code %d, message %s", code, message)
        if getattr(self, "request_version", "") not in ("HTTP/1.0", "HTTP/1.1"):
            # an unreadable request line leaves HTTP/0.9, which would send the body without a status line
            self.request_version = "HTTP/1.0"
        # the reason phrase is the standard one: ``message`` may quote the request, which goes in the body
        self.send_response(code, title)
        self.send_header("Connection", "close")
        body = b""
        if code >= 200 and code not in (
            HTTPStatus.NO_CONTENT,
            HTTPStatus.RESET_CONTENT,
            HTTPStatus.NOT_MODIFIED,
        ):
            body = _problem_body(code, title, message or explain or description)
            self.send_header("Content-Type", PROBLEM_MEDIA_TYPE)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if getattr(self, "command", None) != "HEAD" and body:
            self.wfile.write(body)


@click.command("run")
@click.option("--host", "-h", default="127.0.0.1", show_default=True, help="interface to listen on")
@click.option("--port", "-p", default=5000, show_default=True, type=int, help="port to listen on")
@click.option("--reload/--no-reload", default=False, help="restart when a source file changes")
@pass_script_info
def run_command(info: ScriptInfo, host: str, port: int, reload: bool) -> None:
    """Run the development server (threaded; server-raised errors answered in problem+json)."""
    app: Any = info.load_app()
    run_simple(host, port, app, use_reloader=reload, threaded=True, request_handler=ProblemRequestHandler)


# -- production: gunicorn ----------------------------------------------------------------------------


def write_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error`` with an RFC 9457 body instead of an HTML page."""
    if status_int >= 500:
        mesg = "The server failed to handle this request; it has been logged."
    body = _problem_body(status_int, reason, mesg)
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_MEDIA_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


class ProblemThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker; the errors it answers itself are problem+json."""

    def init_process(self) -> None:
        gunicorn_util.write_error = write_problem
        super().init_process()


class JsonGunicornLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's logs in the service's format (``PRM_LOG_FORMAT``: JSON unless ``text``): the error log,
    and one access line per request with the fields of the service's own request line."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        json_logs = self.json_logs = Settings.from_env().log_json
        # one access line per request: written by orjson, as the service's own lines
        formatter = OrjsonFormatter(LOG_FIELDS) if json_logs else logging.Formatter(LOG_FIELDS)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)
        self.access_log.name = "prm.access"

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        request_id = next((v for k, v in resp.headers if k.lower() == "x-request-id"), "-")
        fields = {
            "request_id": request_id,
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(status) if str(status).isdigit() else status,
            "ms": round(request_time.total_seconds() * 1000, 2),
            "bytes": getattr(resp, "sent", None),
            "remote": environ.get("REMOTE_ADDR"),
        }
        if self.json_logs:
            self.access_log.info("request", extra=fields)
        else:
            self.access_log.info("%(request_id)s %(method)s %(path)s %(status)s %(ms)s ms", fields)


def default_worker_count() -> int:
    """One worker process per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def prepare_worker(worker: Any) -> None:
    """gunicorn ``post_worker_init``: give the database pool a fresh start in this process and warm the
    app (a failure here is logged, never fatal: the first request tries again)."""
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", {})
    db = extensions.get("prm.db")
    if db is not None:
        db.engine.dispose(close=False)
    warm_up: Callable[[], None] | None = extensions.get(WARM_UP)
    if warm_up is None:
        return
    try:
        warm_up()
    except Exception as exc:  # a database not up yet must not stop the worker
        worker.log.warning("worker warm-up failed: %s: %s", type(exc).__name__, exc)


@click.command("serve", context_settings={"ignore_unknown_options": True})
@click.option("--bind", "-b", default=None, help="address to listen on [PRM_WEB_BIND, 127.0.0.1:8000]")
@click.option("--workers", "-w", type=int, default=None, help="worker processes [PRM_WEB_WORKERS, cores]")
@click.option("--threads", type=int, default=None, help="threads per worker [PRM_WEB_THREADS, 4]")
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve_command(
    bind: str | None, workers: int | None, threads: int | None, gunicorn_args: tuple[str, ...]
) -> None:
    """Run the production server: gunicorn with common/gunicorn_conf.py (further arguments go to gunicorn)."""
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:common.gunicorn_conf"]
    if bind:
        argv += ["--bind", bind]
    if workers is not None:
        argv += ["--workers", str(workers)]
    if threads is not None:
        argv += ["--threads", str(threads)]
    argv += [*gunicorn_args, "server:create_app()"]
    sys.stdout.flush()
    sys.stderr.flush()
    # the same process becomes gunicorn's master, so a service manager keeps its pid
    os.execv(sys.executable, argv)
