"""``prm transfer ...``: partner CRM connections (list, show, create, update) and the deliverer of the
``partner_crm`` outbox (``prm transfer deliver``, one pass or as a long-running worker)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from common import delivery
from common.database import Database
from common.errors import PrmError
from common.retry import RetryPolicy
from common.settings import Settings
from transfer import connection_service, delivery_service, pairing
from transfer import schemas as s
from transfer.client import AdminApiError
from transfer.profile import PROFILES_DIR
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


def _side(
    label: str,
    url: str,
    public_url: str | None,
    admin_key: str,
    org: str,
    key: str | None,
    profile: Path | None,
    inbound: Path | None,
    inbound_creates: str,
) -> pairing.Side:
    profile_path = profile or PROFILES_DIR / "brand_owner.yaml"
    return pairing.Side(
        label=label,
        api_url=url,
        public_url=public_url or url,
        admin_key=admin_key,
        organization=org,
        key=key,
        profile=profile_path.read_text(encoding="utf-8"),
        profile_file=str(profile_path),
        inbound_profile=inbound.read_text(encoding="utf-8") if inbound else None,
        inbound_profile_file=str(inbound) if inbound else None,
        inbound_creates=inbound_creates,
    )


_YAML_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@transfer_group.command("connect")
@click.option(
    "--url-a", required=True, help="Instance A's base URL (its admin API), e.g. http://127.0.0.1:8000"
)
@click.option(
    "--admin-key-a", required=True, envvar="PRM_CONNECT_ADMIN_KEY_A", help="An admin's API key on A."
)
@click.option("--org-a", required=True, help="Id or key of the organization on A that B is.")
@click.option("--url-b", required=True, help="Instance B's base URL.")
@click.option(
    "--admin-key-b", required=True, envvar="PRM_CONNECT_ADMIN_KEY_B", help="An admin's API key on B."
)
@click.option("--org-b", required=True, help="Id or key of the organization on B that A is.")
@click.option("--public-url-a", help="Where B reaches A, if not --url-a.")
@click.option("--public-url-b", help="Where A reaches B, if not --url-b.")
@click.option("--key-a", help="The connection's key on A, in A's inbound path (default: the org's key).")
@click.option("--key-b", help="The connection's key on B (default: the organization's key).")
@click.option("--profile-a", type=_YAML_FILE, help="YAML: B's model, as A sends it (default: our own names).")
@click.option("--inbound-profile-a", type=_YAML_FILE, help="YAML: the model B speaks to A in.")
@click.option("--profile-b", type=_YAML_FILE, help="YAML: A's model, as B sends it (default: our own names).")
@click.option("--inbound-profile-b", type=_YAML_FILE, help="YAML: the model A speaks to B in.")
@click.option(
    "--inbound-creates-a", type=click.Choice([m.value for m in s.InboundCreates]), default="opportunity"
)
@click.option(
    "--inbound-creates-b", type=click.Choice([m.value for m in s.InboundCreates]), default="opportunity"
)
@click.option("--operations", default="create,update,query", show_default=True)
@click.option("--timeout", type=click.FloatRange(0.5, 120), default=10.0, show_default=True)
def connect(
    url_a: str,
    admin_key_a: str,
    org_a: str,
    url_b: str,
    admin_key_b: str,
    org_b: str,
    public_url_a: str | None,
    public_url_b: str | None,
    key_a: str | None,
    key_b: str | None,
    profile_a: Path | None,
    inbound_profile_a: Path | None,
    profile_b: Path | None,
    inbound_profile_b: Path | None,
    inbound_creates_a: str,
    inbound_creates_b: str,
    operations: str,
    timeout: float,
) -> None:
    """Pair two running instances in one step: each gets a connection to the other (base URL ending in
    /v1/partner-crm/{the other's key}, signing secrets crossed), through their admin APIs; prints what it
    did. Running it again re-pairs (updates both connections with fresh secrets)."""
    a = _side(
        "A", url_a, public_url_a, admin_key_a, org_a, key_a, profile_a, inbound_profile_a, inbound_creates_a
    )
    b = _side(
        "B", url_b, public_url_b, admin_key_b, org_b, key_b, profile_b, inbound_profile_b, inbound_creates_b
    )
    ops = [o.strip() for o in operations.split(",") if o.strip()]
    try:
        for line in pairing.connect(a, b, operations=ops, timeout_seconds=timeout):
            click.echo(line)
    except PrmError as exc:
        _fail(exc)
    except AdminApiError as exc:
        raise click.ClickException(str(exc)) from None


@transfer_group.command("deliver")
@click.option("--once", is_flag=True, help="Send what is due now and exit (default: keep running).")
@click.option(
    "--limit", type=click.IntRange(min=1), default=1000, show_default=True, help="Most calls per pass."
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=64),
    help="Requests in flight at once (default: PRM_TRANSFER_CONCURRENCY, 8).",
)
@click.option(
    "--batch-calls",
    type=click.IntRange(min=1, max=100),
    help="Calls to one partner per request (default: PRM_TRANSFER_BATCH_CALLS, 20; 1: single calls).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="With single calls: calls claimed at a time (default: twice the concurrency).",
)
@click.option("--poll", type=click.FloatRange(min=0.05), default=1.0, show_default=True)
@click.option("--lease", type=click.FloatRange(min=1), help="Lease seconds (default: outlasts a batch).")
@click.option(
    "--retry-base", type=click.FloatRange(min=0.01), help="Backoff base seconds (PRM_TRANSFER_RETRY_BASE, 2)."
)
@click.option(
    "--retry-cap", type=click.FloatRange(min=0.01), help="Longest wait seconds (PRM_TRANSFER_RETRY_CAP, 300)."
)
@click.option(
    "--max-attempts", type=click.IntRange(min=1), help="Attempts before dead (PRM_TRANSFER_MAX_ATTEMPTS, 20)."
)
@with_appcontext
def deliver(
    once: bool,
    limit: int,
    concurrency: int | None,
    batch_calls: int | None,
    batch_size: int | None,
    poll: float,
    lease: float | None,
    retry_base: float | None,
    retry_cap: float | None,
    max_attempts: int | None,
) -> None:
    """Send queued calls to partners' CRMs, several at once over kept-alive connections, with retries,
    backoff and dead letters (`prm outbox`). The calls about one opportunity go out one at a time, in
    the order they were queued."""
    settings = _settings()
    defaults = delivery_service.retry_policy(settings)
    base = retry_base if retry_base is not None else defaults.base_seconds
    policy = RetryPolicy(
        base_seconds=base,
        cap_seconds=max(retry_cap if retry_cap is not None else defaults.cap_seconds, base),
        max_attempts=max_attempts if max_attempts is not None else defaults.max_attempts,
    )
    concurrency = concurrency or settings.transfer_concurrency
    sender = delivery_service.PartnerCrmSender(_db(), settings, policy, connections=concurrency)

    def one_pass() -> delivery.DeliveryReport:
        return delivery_service.deliver_with(
            _db(),
            sender,
            settings,
            limit=limit,
            concurrency=concurrency,
            policy=policy,
            batch_size=batch_size,
            batch_calls=batch_calls,
            lease_seconds=lease,
        )

    try:
        if once:
            report = one_pass()
            click.echo(
                f"claimed {report.claimed}, sent {report.sent}, retrying {report.retrying}, "
                f"dead {report.dead}, lease lost {report.lease_lost}"
            )
            return
        stop = threading.Event()
        click.echo(f"delivering partner CRM calls, {concurrency} at a time; Ctrl-C stops", err=True)
        try:
            delivery.run_worker(_db(), CHANNEL, sender, stop=stop, poll_seconds=poll, once=one_pass)
        except KeyboardInterrupt:
            stop.set()
    finally:
        sender.close()


commands = [transfer_group]
