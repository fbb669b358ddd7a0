"""``prm registrations ...``: the expiry sweep (for cron and other schedulers)."""

from __future__ import annotations

from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from common.database import Database
from registration.expiry import service as expiry_service


@click.group("registrations")
def registrations_group() -> None:
    """Lead registrations."""


@registrations_group.command("expire")
@click.option(
    "--now",
    "now",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]),
    default=None,
    help="Expire as of this time (ISO 8601 with offset); default: the current time.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    help="Registrations per chunk, one transaction each (default: PRM_BATCH_CHUNK_SIZE or 1,000).",
)
@with_appcontext
def expire(now: datetime | None, chunk_size: int | None) -> None:
    """Move approved registrations past their expiry date to expired (idempotent; one transaction per
    chunk, so a sweep stopped part-way keeps what it did and a second run completes it)."""
    db: Database = current_app.extensions["prm.db"]
    if now is not None and now.tzinfo is None:
        raise click.BadParameter("give a UTC offset, e.g. 2027-01-31T00:00:00+00:00", param_hint="--now")
    out = expiry_service.expire_registrations(db, None, now, chunk_size=chunk_size)
    more = out.expired - len(out.registration_numbers)
    click.echo(
        f"expired {out.expired} registration(s)"
        + (f": {', '.join(out.registration_numbers)}" if out.registration_numbers else "")
        + (f" and {more} more" if more > 0 else "")
        + f"; {out.approved_remaining} approved still protected, {out.expired_total} expired in total"
    )


commands = [registrations_group]
