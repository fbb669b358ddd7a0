"""Run one instance of the service on loopback for the integration tests (a real process, threaded
werkzeug server): ``python -m tests.integration.serve_instance``; prints ``PORT <n>`` once listening.
Settings come from the environment (PRM_DATABASE_URL...), as in production."""

from __future__ import annotations

import sys

from werkzeug.serving import make_server

from common.serving import ProblemRequestHandler
from server import create_app


def main() -> None:
    app = create_app()
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=ProblemRequestHandler)
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
