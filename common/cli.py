"""``prm db ...``: schema migrations; ``prm worker`` (``common.batch_cli``)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from common import migrate
from common.batch_cli import worker
from common.database import Database


@click.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@with_appcontext
def upgrade() -> None:
    """Migrate the database to the newest schema."""
    db: Database = current_app.extensions["prm.db"]
    migrate.upgrade(db.url)
    click.echo(f"database at {migrate.current_revision(db.engine)} ({db.engine.url.render_as_string()})")


@db_group.command("current")
@with_appcontext
def current() -> None:
    """Print the schema revision the database is at."""
    db: Database = current_app.extensions["prm.db"]
    click.echo(migrate.current_revision(db.engine) or "empty")


commands = [db_group, worker]
