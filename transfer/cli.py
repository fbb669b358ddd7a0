"""``prm transfer ...``: partner CRM connections (list, show, create, update) and the deliverer of the
``partner_crm`` outbox (``prm transfer deliver``, one pass or as a long-running worker)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from common import outbox
from common.database import Database
from common.errors import PrmError
from common.retry import RetryPolicy
from common.settings import Settings
from transfer import connection_service, delivery_service
from transfer import schemas as s
from transfer.service import CHANNEL
from transfer.signing import new_secret


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _settings() -> Settings:
    settings: Settings = current_app.extensions["prm.settings"]
    return settings


def _fail(exc: PrmError) -> None:
    errors = getattr(exc, "errors", [])
    lines = [f"error: {exc.detail}", *(f"  {e.pointer}: {e.message}" for e in errors)]
    raise click.ClickException("\n".join(lines))


@click.group("transfer")
def transfer_group() -> None:
    """Opportunity transfer to and from partners' CRM systems."""


@transfer_group.group("connections")
def connections_group() -> None:
    """Partner CRM connections."""


def _echo(out: s.ConnectionOut) -> None:
    click.echo(json.dumps(out.model_dump(mode="json", exclude={"profile", "inbound_profile"}), indent=2))


@connections_group.command("list")
@with_appcontext
def list_connections() -> None:
    """One line per connection: id, organization, key, URL, operations, profile."""
    for c in connection_service.list_connections(_db()).items:
        ops = ",".join(c.operations)
        click.echo(
            f"{c.id}\t{c.organization_id}\t{c.key}\t{c.base_url}\t{ops}\t{c.profile_name}\tactive={c.active}"
        )


@connections_group.command("show")
@click.argument("connection_id", type=int)
@with_appcontext
def show_connection(connection_id: int) -> None:
    try:
        _echo(connection_service.get_connection(_db(), connection_id))
    except PrmError as exc:
        _fail(exc)


@connections_group.command("create")
@click.option("--organization-id", type=int, required=True)
@click.option("--key", required=True, help="Names the connection in the partner's inbound path.")
@click.option("--name", required=True)
@click.option("--url", "base_url", required=True, help="The partner's endpoint base URL.")
@click.option("--operations", default="create,update,query", show_default=True)
@click.option("--signing-secret", help="whsec_... (default: a new one, printed once).")
@click.option("--inbound-secret", help="whsec_... the partner signs with (default: a new one, printed once).")
@click.option("--timeout", type=float, default=10.0, show_default=True)
@click.option(
    "--profile", "profile_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option(
    "--inbound-profile", "inbound_file", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--inbound-creates", type=click.Choice([m.value for m in s.InboundCreates]), default="opportunity"
)
@click.option("--transfer-on-approval", is_flag=True)
@click.option("--send-updates-automatically", is_flag=True, help="queue an update after each change")
@with_appcontext
def create_connection(
    organization_id: int,
    key: str,
    name: str,
    base_url: str,
    operations: str,
    signing_secret: str | None,
    inbound_secret: str | None,
    timeout: float,
    profile_file: Path,
    inbound_file: Path | None,
    inbound_creates: str,
    transfer_on_approval: bool,
    send_updates_automatically: bool,
) -> None:
    """Connect a partner organization's CRM (the profile file is checked; errors name file:line:column)."""
    generated = []
    if signing_secret is None:
        signing_secret = new_secret()
        generated.append(f"signing secret: {signing_secret}")
    if inbound_secret is None:
        inbound_secret = new_secret()
        generated.append(f"inbound secret: {inbound_secret}")
    try:
        data = s.ConnectionIn(
            organization_id=organization_id,
            key=key,
            name=name,
            base_url=base_url,
            operations=[s.Operation(o.strip()) for o in operations.split(",") if o.strip()],
            signing_secret=signing_secret,
            inbound_secret=inbound_secret,
            timeout_seconds=timeout,
            profile=profile_file.read_text(encoding="utf-8"),
            inbound_profile=inbound_file.read_text(encoding="utf-8") if inbound_file else None,
            inbound_creates=s.InboundCreates(inbound_creates),
            transfer_on_approval=transfer_on_approval,
            send_updates_automatically=send_updates_automatically,
        )
        out = connection_service.create_connection(_db(), _settings(), None, data)
    except PrmError as exc:
        _fail(exc)
        return
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _echo(out)
    for line in generated:
        click.echo(line)


@connections_group.command("update")
@click.argument("connection_id", type=int)
@click.option("--url", "base_url")
@click.option("--timeout", type=float)
@click.option("--profile", "profile_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--active/--inactive", default=None)
@click.option("--transfer-on-approval/--no-transfer-on-approval", default=None)
@click.option("--send-updates-automatically/--no-send-updates-automatically", default=None)
@with_appcontext
def update_connection(
    connection_id: int,
    base_url: str | None,
    timeout: float | None,
    profile_file: Path | None,
    active: bool | None,
    transfer_on_approval: bool | None,
    send_updates_automatically: bool | None,
) -> None:
    """Change a connection (audited)."""
    fields: dict[str, object] = {}
    if base_url is not None:
        fields["base_url"] = base_url
    if timeout is not None:
        fields["timeout_seconds"] = timeout
    if profile_file is not None:
        fields["profile"] = profile_file.read_text(encoding="utf-8")
    if active is not None:
        fields["active"] = active
    if transfer_on_approval is not None:
        fields["transfer_on_approval"] = transfer_on_approval
    if send_updates_automatically is not None:
        fields["send_updates_automatically"] = send_updates_automatically
    try:
        current = connection_service.get_connection(_db(), connection_id)
        out = connection_service.update_connection(
            _db(),
            _settings(),
            None,
            connection_id,
            f'"{current.id}.{current.version}"',
            s.ConnectionPatch.model_validate(fields),
        )
    except PrmError as exc:
        _fail(exc)
        return
    _echo(out)


@transfer_group.command("deliver")
@click.option("--once", is_flag=True, help="Send what is due now and exit (default: keep running).")
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Most calls per pass."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--poll", type=click.FloatRange(min=0.05), default=5.0, show_default=True)
@click.option("--lease", type=click.FloatRange(min=1), help="Lease seconds (default: outlasts a batch).")
@click.option("--retry-base", type=click.FloatRange(min=0.01), default=30.0, show_default=True)
@click.option("--retry-cap", type=click.FloatRange(min=0.01), default=3600.0, show_default=True)
@click.option("--max-attempts", type=click.IntRange(min=1), default=8, show_default=True)
@with_appcontext
def deliver(
    once: bool,
    limit: int,
    batch_size: int,
    poll: float,
    lease: float | None,
    retry_base: float,
    retry_cap: float,
    max_attempts: int,
) -> None:
    """Send queued calls to partners' CRMs, with retries, backoff and dead letters (`prm outbox`)."""
    policy = RetryPolicy(
        base_seconds=retry_base, cap_seconds=max(retry_cap, retry_base), max_attempts=max_attempts
    )
    sender = delivery_service.PartnerCrmSender(_db(), _settings(), policy)
    options = {
        "limit": limit,
        "batch_size": batch_size,
        "lease_seconds": lease or delivery_service.lease_for(_settings(), batch_size),
        "policy": policy,
    }
    if once:
        report = outbox.deliver(_db(), CHANNEL, sender, **options)  # type: ignore[arg-type]
        click.echo(
            f"claimed {report.claimed}, sent {report.sent}, retrying {report.retrying}, dead {report.dead}, "
            f"lease lost {report.lease_lost}"
        )
        return
    stop = threading.Event()
    click.echo("delivering partner CRM calls; Ctrl-C stops", err=True)
    try:
        outbox.run_worker(_db(), CHANNEL, sender, stop=stop, poll_seconds=poll, **options)
    except KeyboardInterrupt:
        stop.set()


commands = [transfer_group]
