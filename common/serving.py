"""The development server (``prm run``): Werkzeug's, with errors it answers itself in problem+json.

Werkzeug's server refuses some requests before the app sees them (a request line over 64 KiB: 414; a
header line over 64 KiB or more than 100 headers: 431; a malformed request line: 400) and answers those
with the standard library's HTML page. :class:`ProblemRequestHandler` answers them as the app answers
everything else (RFC 9457); the app itself refuses long URLs and large headers well below those limits
(``common.http.check_request_size``), so behind any server they get the app's answer.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import click
from flask.cli import ScriptInfo, pass_script_info
from werkzeug.serving import WSGIRequestHandler, run_simple

from common.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE


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
            problem = {
                "type": PROBLEM_BASE + title.lower().replace(" ", "-"),
                "title": title,
                "status": code,
                "detail": message or explain or description,
            }
            body = json.dumps(problem).encode()
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
