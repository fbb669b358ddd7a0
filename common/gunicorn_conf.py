"""The production server's configuration: a gunicorn config file (``prm serve`` runs gunicorn with it).

    gunicorn -c python:common.gunicorn_conf 'server:create_app()'

is the same server as ``prm serve``. Every value can be changed with a ``PRM_WEB_*`` variable or a
gunicorn command-line option (which wins over this file):

- ``PRM_WEB_BIND`` (``127.0.0.1:8000``), ``PRM_WEB_WORKERS`` (one process per core the process may
  run on), ``PRM_WEB_THREADS`` (4 request threads per worker), ``PRM_WEB_TIMEOUT`` (30 s: a worker
  silent that long is killed and replaced), ``PRM_WEB_GRACEFUL_TIMEOUT`` (30 s to finish running
  requests on stop or reload), ``PRM_WEB_KEEPALIVE`` (5 s), ``PRM_WEB_MAX_REQUESTS`` (0: never
  recycle a worker), ``PRM_WEB_ACCESS_LOG`` (``-``: standard output; empty: no access log).
- ``kill -HUP`` on the master reloads gracefully: new workers start (each with a fresh database pool
  and durable_rules host, and the configuration read again) while the old ones finish their requests
  and exit. New code: ``kill -USR2`` starts a new master on it beside the old one, then ``kill -TERM``
  the old master (gunicorn's zero-downtime upgrade), or restart the service.
- The request-line and header limits sit just above the app's own (``PRM_MAX_URL_BYTES``,
  ``PRM_MAX_HEADER_BYTES``), so the app answers most oversized requests itself; what gunicorn refuses
  before the app sees it is answered in problem+json too (``common.serving.ProblemThreadWorker``).
"""

from __future__ import annotations

import os
from typing import Any

from common.serving import (
    JsonGunicornLogger,
    default_worker_count,
    prepare_worker,
)
from common.settings import Settings

_settings = Settings.from_env()

bind = os.environ.get("PRM_WEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("PRM_WEB_WORKERS", default_worker_count()))
threads = int(os.environ.get("PRM_WEB_THREADS", 4))
worker_class = "common.serving.ProblemThreadWorker"
timeout = int(os.environ.get("PRM_WEB_TIMEOUT", 30))
graceful_timeout = int(os.environ.get("PRM_WEB_GRACEFUL_TIMEOUT", 30))
keepalive = int(os.environ.get("PRM_WEB_KEEPALIVE", 5))
max_requests = int(os.environ.get("PRM_WEB_MAX_REQUESTS", 0))
max_requests_jitter = max_requests // 10
# The master builds the app once (it connects to nothing); each worker forked from it starts its own
# connection pool and durable_rules host (``post_worker_init``), so a worker (re)starts in well under a
# second and a HUP has no gap in which nobody accepts.
preload_app = True
# A request line of PRM_MAX_URL_BYTES plus method and protocol (gunicorn allows at most 8190), one
# header up to the app's total.
limit_request_line = min(_settings.max_url_bytes + 64, 8190)
limit_request_fields = 100
limit_request_field_size = _settings.max_header_bytes
logger_class = JsonGunicornLogger
accesslog = os.environ.get("PRM_WEB_ACCESS_LOG", "-") or None
errorlog = "-"
# gunicorn's control socket (one fixed path per user) is not used: signals manage the master.
control_socket_disable = True
# The service's own request log line would repeat the access line.
raw_env = ["PRM_REQUEST_LOG=0"]


def post_worker_init(worker: Any) -> None:
    """Warm the new worker: load the active rulesets into its durable_rules host, build the snapshot."""
    prepare_worker(worker)
