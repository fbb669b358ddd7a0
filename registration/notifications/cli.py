"""``prm notifications ...`` (send queued e-mail, queue expiry reminders) and ``prm outbox ...`` (list
messages, retry dead ones)."""

from __future__ import annotations

import threading

import click
from flask import current_app
from flask.cli import with_appcontext

from common import delivery, outbox
from common.database import Database
from common.mail import CHANNEL, SmtpSender
from common.settings import Settings
from registration.notifications import service as notifications_service


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _echo_report(report: delivery.DeliveryReport) -> None:
    click.echo(
        f"claimed {report.claimed}, sent {report.sent}, retrying {report.retrying}, dead {report.dead}, "
        f"lease lost {report.lease_lost}"
    )


@click.group("notifications")
def notifications_group() -> None:
    """E-mail notifications of registration events."""


@notifications_group.command("deliver")
@click.option("--once", is_flag=True, help="Send what is due now and exit (default: keep running).")
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Most e-mails per pass."
)
@click.option(
    "--poll", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="Seconds between polls."
)
@with_appcontext
def deliver(once: bool, limit: int, poll: float) -> None:
    """Send queued notification e-mails over SMTP (PRM_SMTP_HOST, PRM_SMTP_PORT, PRM_MAIL_FROM)."""
    settings: Settings = current_app.extensions["prm.settings"]
    sender = SmtpSender.from_settings(settings)
    if once:
        _echo_report(notifications_service.deliver_mail(_db(), sender, limit=limit))
        return
    stop = threading.Event()
    click.echo(f"delivering e-mail via {sender.host}:{sender.port}; Ctrl-C stops")
    try:
        report = delivery.run_worker(_db(), CHANNEL, sender, stop=stop, poll_seconds=poll, limit=limit)
    except KeyboardInterrupt:
        stop.set()
        return
    _echo_report(report)


@notifications_group.command("expiring")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=notifications_service.EXPIRY_REMINDER_DAYS,
    show_default=True,
    help="Remind about registrations expiring within this many days.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    help="Registrations per chunk, one transaction each (default: PRM_BATCH_CHUNK_SIZE or 1,000).",
)
@with_appcontext
def expiring(days: int, chunk_size: int | None) -> None:
    """Queue reminders for approved registrations about to expire (safe to run repeatedly; one
    transaction per chunk of registrations)."""
    queued = notifications_service.queue_expiry_reminders(_db(), within_days=days, chunk_size=chunk_size)
    click.echo(f"queued {queued} reminder(s)")


@click.group("outbox")
def outbox_group() -> None:
    """Messages waiting for other systems (e-mail, partner CRMs): inspect, retry dead ones."""


@outbox_group.command("list")
@click.option("--channel", help="Only this channel (email, partner_crm...).")
@click.option("--status", type=click.Choice([s.value for s in outbox.OutboxStatus]), help="Only this status.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@with_appcontext
def list_messages(channel: str | None, status: str | None, limit: int) -> None:
    """The newest messages, one a line: id, channel, topic, status, attempts, next attempt, lead,
    recipient, last error ("-" where a message names no lead or recipient)."""
    for (chan, state), n in sorted(outbox.counts(_db()).items()):
        click.echo(f"# {chan} {state}: {n}")
    click.echo("# id\tchannel\ttopic\tstatus\tattempts\tnext attempt\tlead\trecipient\tlast error")
    for m in outbox.list_messages(_db(), channel=channel, status=status, limit=limit):
        error = (m.last_error or "").replace("\n", " ")[:120]
        lead_id, recipient = outbox.lead_and_recipient(m)
        click.echo(
            f"{m.id}\t{m.channel}\t{m.topic}\t{m.status}\t{m.attempts}\t{m.next_attempt_at.isoformat()}"
            f"\t{lead_id if lead_id is not None else '-'}\t{recipient or '-'}\t{error}"
        )


@outbox_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="Retry every dead message (of --channel, if given).")
@click.option("--channel", help="With --all-dead: only this channel.")
@with_appcontext
def retry(ids: tuple[int, ...], all_dead: bool, channel: str | None) -> None:
    """Put dead messages back in the queue with fresh attempts (audited)."""
    if not ids and not all_dead:
        raise click.UsageError("name message ids, or --all-dead")
    if ids and all_dead:
        raise click.UsageError("either message ids or --all-dead, not both")
    retried = outbox.retry_dead(_db(), None, ids=list(ids) if ids else None, channel=channel)
    click.echo(f"retried {len(retried)} message(s){': ' if retried else ''}{' '.join(map(str, retried))}")
    missed = sorted(set(ids) - set(retried))
    if missed:
        click.echo(f"not dead (left alone): {' '.join(map(str, missed))}", err=True)


commands = [notifications_group, outbox_group]
