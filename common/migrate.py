"""Schema migrations (Alembic) run from code: ``prm db upgrade``, ``/readyz`` and the tests use these."""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

# Every module that defines tables; Alembic's autogenerate and the test schema need them all imported.
MODEL_MODULES = (
    "common.audit",
    "common.outbox",
    "directory.models",
    "territory.models",
    "rules.models",
    "registration.leads.models",
    "registration.approval.models",
    "registration.opportunities.models",
    "registration.acceptance.models",
    "registration.reassignment.models",
    "registration.extensions.models",
    "transfer.models",
)


def import_all_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
