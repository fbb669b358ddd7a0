"""Where a transfer's CPU goes: ``python -m bench.transfer_profile [--opportunities 100] [--profile FILE]``.

The brand owner's deliverer and the partner's app in one process and one thread, both on PostgreSQL
(``PRM_BENCH_POSTGRES_URL``), the partner reached through httpx's WSGI transport: the CPU time
(``time.process_time``) per delivery of each side and the SQL statements each side runs per delivery,
without the noise of servers and threads on a shared machine. ``--profile`` also writes a cProfile of the
deliveries (CPU-time clock) for ``python -m pstats``. ``--batch-calls 1`` sends one call per request (as
before the batch call), the default 20 to a request. What ``bench.transfer`` measures end to end is the
figure that counts; this one says where to look.

``--served``: the partner served as in production instead (``prm serve``: gunicorn), the deliverer in this
process as ``prm transfer deliver`` runs it (``--concurrency`` batches in flight over real HTTP): the CPU
per delivery of the deliverer, of the partner's server (every worker) and of each side's PostgreSQL
server processes, and the deliveries/s this process saw (a lighter look at what ``bench.transfer``
measures, with the brand owner's server idle).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from bench.transfer import DEFAULT_PG, queue_transfers, seed_opportunities
from common import delivery
from common.settings import Settings
from server import create_app
from tests.integration.transfer_support import postgres_databases, two_instances
from transfer import delivery_service
from transfer.client import PartnerCrmClient
from transfer.models import PartnerCrmConnection
from transfer.service import CHANNEL


class _Metered:
    """The partner's WSGI app, with the CPU time its requests took (they run on the caller's thread)."""

    def __init__(self, app: Any) -> None:
        self.app, self.cpu = app, 0.0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        started = time.thread_time()
        try:
            return list(self.app(environ, start_response))
        finally:
            self.cpu += time.thread_time() - started


class _Statements:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1


def run_served(opportunities: int, pg_url: str, batch_calls: int, concurrency: int) -> dict[str, float]:
    """`--served`: the partner under ``prm serve``, the deliverer here; CPU ms per delivery of each."""
    from bench.transfer import _backends, _cpu, _tree, served_pair

    with served_pair(pg_url) as (brand, partner):
        queue_transfers(brand, seed_opportunities(brand, opportunities + 1))
        settings = Settings.from_env(brand.env())
        brand_app = create_app(settings)
        assert partner.process is not None

        def others() -> tuple[float, float, float]:
            assert partner.process is not None
            return (
                sum(_cpu(p) for p in _tree(partner.process.pid)),
                sum(_cpu(p) for p in _backends(partner)),
                sum(_cpu(p) for p in _backends(brand)),
            )

        with brand_app.app_context():
            db = brand_app.extensions["prm.db"]
            policy = delivery_service.retry_policy(settings)
            sender = delivery_service.PartnerCrmSender(db, settings, policy, connections=concurrency)
            try:
                options: dict[str, Any] = {"policy": policy, "batch_calls": batch_calls}
                delivery_service.deliver_with(db, sender, settings, limit=1, concurrency=1, **options)
                before, cpu, wall = others(), time.process_time(), time.monotonic()
                report = delivery_service.deliver_with(
                    db, sender, settings, limit=opportunities, concurrency=concurrency, **options
                )
                cpu, wall, after = time.process_time() - cpu, time.monotonic() - wall, others()
            finally:
                sender.close()
        if report.sent != opportunities:
            raise SystemExit(f"sent {report.sent} of {opportunities}: {report.errors[:3]}")
        n = report.sent
        server, partner_pg, brand_pg = (
            round((b - a) / n * 1000, 1) for a, b in zip(before, after, strict=True)
        )
        return {
            "deliveries_per_s": round(n / wall, 1),
            "deliverer_cpu_ms": round(cpu / n * 1000, 1),
            "partner_server_cpu_ms": server,
            "partner_postgres_cpu_ms": partner_pg,
            "brand_postgres_cpu_ms": brand_pg,
        }


def run(opportunities: int, pg_url: str, profile: Path | None, batch_calls: int = 1) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix="prm-bench-transfer-profile-") as tmp,
        postgres_databases(pg_url, ("brand", "partner")) as urls,
        two_instances(Path(tmp), database_urls=(urls[0], urls[1])) as (brand, partner),
    ):
        # one more than measured: the first delivery fills the caches (statements compiled, profiles read)
        queue_transfers(brand, seed_opportunities(brand, opportunities + 1))
        brand_settings, partner_settings = Settings.from_env(brand.env()), Settings.from_env(partner.env())
        partner_app = create_app(partner_settings)
        metered = _Metered(partner_app)
        http = httpx.Client(transport=httpx.WSGITransport(app=metered), trust_env=False)

        def client(c: PartnerCrmConnection, secret: str) -> PartnerCrmClient:
            return PartnerCrmClient(c.base_url, secret, 30.0, allow_private=True, http=http)

        brand_app = create_app(brand_settings)
        with brand_app.app_context(), _counting(brand_app, partner_app) as (ours, theirs):
            db = brand_app.extensions["prm.db"]
            policy = delivery_service.retry_policy(brand_settings)
            sender = delivery_service.PartnerCrmSender(db, brand_settings, policy, client_factory=client)
            delivery.deliver(db, CHANNEL, sender, limit=1, policy=policy)
            ours.count = theirs.count = 0
            profiler = cProfile.Profile(time.process_time) if profile else None
            cpu, partner_cpu = time.process_time(), metered.cpu
            if profiler:
                profiler.enable()
            if batch_calls > 1:  # the calls to the partner batch_calls to a request, one after another
                report = delivery.deliver_batches(
                    db,
                    CHANNEL,
                    sender.send_batch,
                    group_of=lambda item: item.payload.get("recipient"),
                    group_size=batch_calls,
                    limit=opportunities,
                    policy=policy,
                    lease_seconds=600,
                )
            else:
                report = delivery.deliver(
                    db, CHANNEL, sender, limit=opportunities, batch_size=20, policy=policy, lease_seconds=600
                )
            if profiler:
                profiler.disable()
            cpu, partner_cpu = time.process_time() - cpu, metered.cpu - partner_cpu
            if profiler and profile:
                profiler.dump_stats(profile)
        if report.sent != opportunities:
            raise SystemExit(f"sent {report.sent} of {opportunities}: {report.errors[:3]}")
        n = report.sent
        return {
            "deliverer_cpu_ms": round((cpu - partner_cpu) / n * 1000, 1),
            "partner_app_cpu_ms": round(partner_cpu / n * 1000, 1),
            "deliverer_statements": round(ours.count / n, 1),
            "partner_statements": round(theirs.count / n, 1),
        }


@contextmanager
def _counting(brand_app: Any, partner_app: Any) -> Iterator[tuple[_Statements, _Statements]]:
    """The statements each side's engine runs while inside."""
    engines = (brand_app.extensions["prm.db"].engine, partner_app.extensions["prm.db"].engine)
    counters = (_Statements(), _Statements())
    for engine, counter in zip(engines, counters, strict=True):
        event.listen(engine, "before_cursor_execute", counter)
    try:
        yield counters
    finally:
        for engine, counter in zip(engines, counters, strict=True):
            event.remove(engine, "before_cursor_execute", counter)


def _lines(result: dict[str, float]) -> Iterator[str]:
    yield f"deliverer: {result['deliverer_cpu_ms']} ms CPU, {result['deliverer_statements']} statements per delivery"
    yield f"partner app: {result['partner_app_cpu_ms']} ms CPU, {result['partner_statements']} statements per delivery"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opportunities", type=int, default=100)
    parser.add_argument("--profile", type=Path, help="write a cProfile (CPU time) of the deliveries here")
    parser.add_argument(
        "--batch-calls",
        type=int,
        default=20,
        help="calls per request (the batch call); 1: single calls, as before the batch call",
    )
    parser.add_argument("--served", action="store_true", help="the partner under prm serve (see above)")
    parser.add_argument("--concurrency", type=int, default=8, help="with --served: batches in flight")
    args = parser.parse_args(argv)
    pg_url = os.environ.get("PRM_BENCH_POSTGRES_URL", DEFAULT_PG)
    if args.served:
        result = run_served(args.opportunities, pg_url, args.batch_calls, args.concurrency)
        print(
            f"{result['deliveries_per_s']} deliveries/s; CPU ms per delivery: deliverer "
            f"{result['deliverer_cpu_ms']}, partner server {result['partner_server_cpu_ms']}, partner "
            f"PostgreSQL {result['partner_postgres_cpu_ms']}, brand PostgreSQL {result['brand_postgres_cpu_ms']}"
        )
        return
    for line in _lines(run(args.opportunities, pg_url, args.profile, args.batch_calls)):
        print(line)


if __name__ == "__main__":
    main()
