"""Runtime settings, read once from the environment (``PRM_*`` variables)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath

from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite:///var/prm.sqlite3"
DEFAULT_DEMO_KEYS_FILE = "var/demo-keys.txt"


def demo_keys_file_for(database_url: str) -> str:
    """Where ``prm demo seed`` writes the demo users' API keys when ``PRM_DEMO_KEYS_FILE`` does not say:
    beside the database, named after it, so two instances seeded from one checkout keep their own keys.
    The default database keeps ``var/demo-keys.txt``.

    >>> demo_keys_file_for("sqlite:///var/prm.sqlite3")
    'var/demo-keys.txt'
    >>> demo_keys_file_for("sqlite:///var/partner.sqlite3")
    'var/partner-demo-keys.txt'
    >>> demo_keys_file_for("postgresql+psycopg://prm@db.example:5432/prm_partner")
    'var/demo-keys-db.example-prm_partner.txt'
    """
    if database_url == DEFAULT_DATABASE_URL:
        return DEFAULT_DEMO_KEYS_FILE
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return DEFAULT_DEMO_KEYS_FILE
        path = PurePath(url.database)
        return str(path.with_name(f"{path.stem}-demo-keys.txt"))
    name = "-".join(p for p in (url.host, url.database) if p) or "database"
    return f"var/demo-keys-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.txt"


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, with the embedded defaults."""

    database_url: str = DEFAULT_DATABASE_URL
    max_body_bytes: int = 1_048_576
    # The import endpoints only (CSV files of a whole model or catalog): 20,000,000 characters a file.
    max_import_bytes: int = 64 * 1_048_576
    max_json_depth: int = 32
    max_url_bytes: int = 8192
    max_header_bytes: int = 32768
    page_size_default: int = 50
    page_size_max: int = 500
    log_json: bool = True
    # One log line per request from the app (off under gunicorn, whose JSON access line carries the same).
    request_log: bool = True
    rules_engine: str = "durable"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "prm@localhost"
    # Encrypts stored partner CRM signing secrets (Fernet key derived from it); set it in production.
    secret_key: str = "dev-only-secret-key"
    # ... and signs the HTML pages' session cookie; a session ends this many hours after sign-in.
    session_hours: float = 8.0
    # Partner CRM URLs may point at loopback/private addresses (two local instances in tests only).
    transfer_allow_private_urls: bool = False
    # Delivering partner CRM calls (``prm transfer deliver``): calls in flight at once per deliverer, and
    # the retry backoff (full jitter, base doubling up to the cap; dead after max attempts).
    # The demo users' API keys (``prm demo seed``): PRM_DEMO_KEYS_FILE, default beside the database.
    demo_keys_file: str = DEFAULT_DEMO_KEYS_FILE
    transfer_concurrency: int = 8
    # Calls to one partner sent together in one batch request (1: one request per call).
    transfer_batch_calls: int = 20
    transfer_retry_base_seconds: float = 2.0
    transfer_retry_cap_seconds: float = 300.0
    transfer_max_attempts: int = 20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``PRM_*`` variables; unset ones keep their defaults."""
        env = os.environ if env is None else env
        database_url = env.get("PRM_DATABASE_URL", DEFAULT_DATABASE_URL)
        return cls(
            database_url=database_url,
            demo_keys_file=env.get("PRM_DEMO_KEYS_FILE") or demo_keys_file_for(database_url),
            max_body_bytes=int(env.get("PRM_MAX_BODY_BYTES", cls.max_body_bytes)),
            max_import_bytes=int(env.get("PRM_MAX_IMPORT_BYTES", cls.max_import_bytes)),
            max_json_depth=int(env.get("PRM_MAX_JSON_DEPTH", cls.max_json_depth)),
            max_url_bytes=int(env.get("PRM_MAX_URL_BYTES", cls.max_url_bytes)),
            max_header_bytes=int(env.get("PRM_MAX_HEADER_BYTES", cls.max_header_bytes)),
            log_json=env.get("PRM_LOG_FORMAT", "json") == "json",
            request_log=env.get("PRM_REQUEST_LOG", "1") != "0",
            rules_engine=env.get("PRM_RULES_ENGINE", "durable"),
            smtp_host=env.get("PRM_SMTP_HOST", cls.smtp_host),
            smtp_port=int(env.get("PRM_SMTP_PORT", cls.smtp_port)),
            smtp_timeout_seconds=float(env.get("PRM_SMTP_TIMEOUT", cls.smtp_timeout_seconds)),
            mail_from=env.get("PRM_MAIL_FROM", cls.mail_from),
            secret_key=env.get("PRM_SECRET_KEY", cls.secret_key),
            session_hours=float(env.get("PRM_SESSION_HOURS", cls.session_hours)),
            transfer_allow_private_urls=env.get("PRM_TRANSFER_ALLOW_PRIVATE_URLS") == "1",
            transfer_concurrency=int(env.get("PRM_TRANSFER_CONCURRENCY", cls.transfer_concurrency)),
            transfer_batch_calls=max(1, int(env.get("PRM_TRANSFER_BATCH_CALLS", cls.transfer_batch_calls))),
            transfer_retry_base_seconds=float(
                env.get("PRM_TRANSFER_RETRY_BASE", cls.transfer_retry_base_seconds)
            ),
            transfer_retry_cap_seconds=float(
                env.get("PRM_TRANSFER_RETRY_CAP", cls.transfer_retry_cap_seconds)
            ),
            transfer_max_attempts=int(env.get("PRM_TRANSFER_MAX_ATTEMPTS", cls.transfer_max_attempts)),
        )
