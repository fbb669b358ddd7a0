"""Alembic environment: batch mode so ALTERs work on SQLite; the URL comes from ``common.migrate``."""

from __future__ import annotations

from alembic import context

from common.database import Base, make_engine
from common.migrate import import_all_models

import_all_models()
config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.attributes["url"],
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(config.attributes["url"])
    with engine.connect() as connection:
        # On SQLite a batch migration rebuilds a table (copy, drop, rename): with foreign keys enforced,
        # dropping one that other tables' rows reference fails. They are off while the migrations run
        # (the pragma takes only outside a transaction: on the driver's connection, before SQLAlchemy
        # begins one) and checked after.
        raw = connection.connection.driver_connection if connection.dialect.name == "sqlite" else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        if raw is not None:
            broken = raw.execute("PRAGMA foreign_key_check").fetchall()
            raw.execute("PRAGMA foreign_keys=ON")
            if broken:
                raise RuntimeError(f"the migrations left rows whose foreign keys name nothing: {broken[:5]}")
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
