"""The transfer benchmark (``make bench``): deliveries per second between two running instances.

Run ``python -m bench.transfer`` (about a minute) or ``--quick`` (100 opportunities) for a smoke run.

Two instances of the service as real processes on loopback, each served as in production (``prm serve``:
gunicorn, a worker per core, 4 threads each) on its own PostgreSQL database (``PRM_BENCH_POSTGRES_URL``,
default the local server as user postgres), connected to each other as in the README. The brand owner
holds ``--opportunities`` approved opportunities with four children each (a contact, a revenue line, a
note, an activity); ``prm transfer deliver`` runs as an operator starts it. Then every transfer is queued
in one transaction, and the clock runs from that commit until every transfer is ``successful`` on the
brand owner's side (the partner's answer applied: its ids stored as correlation keys) and the partner
holds every opportunity with its children: deliveries/s end to end.

The run then checks what the fault tests check: exactly one record per transfer on the partner's side,
every child there once, every correlation key stored. Results go to ``bench/results/transfer.json``
(one object per run), with the machine's core count and load average: on a shared machine the figure
moves with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from common.clock import utcnow
from common.outbox import OutboxMessage
from directory.models import Customer, Product
from registration.leads.models import Lead
from registration.opportunities.models import (
    Opportunity,
    OpportunityActivity,
    OpportunityContact,
    OpportunityNote,
    OpportunityRevenueLine,
)
from tests.integration.transfer_support import ROOT, Instance, postgres_databases, two_instances, wait_for
from transfer import service
from transfer.models import CorrelationKey, OpportunityTransfer, PartnerCrmConnection

RESULTS = Path(__file__).parent / "results" / "transfer.json"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGET_PER_S = 200.0
CHILDREN = 4


class ServedInstance(Instance):
    """An instance served by ``prm serve`` (gunicorn) instead of the tests' threaded server."""

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        env = {**self.env(), "PRM_WEB_BIND": f"127.0.0.1:{port}", "PRM_WEB_ACCESS_LOG": ""}
        self.process = subprocess.Popen(
            [str(brand_prm()), "serve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        wait_for(self._alive, f"{self.name} to answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def seed_opportunities(instance: Instance, n: int) -> list[int]:
    """``n`` approved opportunities of the partner organization, each with one child of every kind."""
    db = instance.db()
    try:
        with db.transaction() as session:
            product = session.scalars(select(Product).where(Product.key == "suite")).one()
            customer = session.scalars(select(Customer).where(Customer.key == "acme")).one()
            now = utcnow()
            opps = []
            for i in range(n):
                lead = Lead(
                    organization_id=instance.ids["other_org"],
                    name=f"Bench deal {i}",
                    status="approved",
                    lead_status="converted",
                    registration_number=f"REG-B{i:07d}",
                    owner_user_id=instance.ids["admin"],
                    created_at=now,
                    updated_at=now,
                )
                opp = Opportunity(
                    number=f"OPP-B{i:07d}",
                    registration_number=lead.registration_number,
                    organization_id=instance.ids["other_org"],
                    customer_id=customer.id,
                    name=lead.name,
                    description="Firewall refresh",
                    status="open",
                    owner_user_id=instance.ids["admin"],
                    amount=Decimal("10000.00"),
                    currency="EUR",
                    expected_close_date=date(2027, 3, 31),
                    created_at=now,
                    updated_at=now,
                )
                opp.contacts = [OpportunityContact(name=f"Contact {i}", email=f"c{i}@acme.example")]
                opp.revenue_lines = [
                    OpportunityRevenueLine(
                        product_id=product.id, is_primary=True, amount=Decimal("10000.00"), currency="EUR"
                    )
                ]
                opp.notes = [
                    OpportunityNote(text="PoC first", author_user_id=instance.ids["admin"], written_at=now)
                ]
                opp.activities = [
                    OpportunityActivity(kind="call", subject="Kick-off", occurred_at=now, details={})
                ]
                opps.append((lead, opp))
            session.add_all([lead for lead, _ in opps])
            session.flush()
            for lead, opp in opps:
                opp.lead_id = lead.id
            session.add_all([opp for _, opp in opps])
            session.flush()
            return [opp.id for _, opp in opps]
    finally:
        db.dispose()


def queue_transfers(instance: Instance, ids: list[int]) -> None:
    db = instance.db()
    try:
        with db.transaction() as session:
            connection = session.scalars(select(PartnerCrmConnection)).one()
            for opp in session.scalars(select(Opportunity).where(Opportunity.id.in_(ids))):
                service.request_transfer(session, None, opp, connection, now=utcnow(), reason="bench")
    finally:
        db.dispose()


def _count(instance: Instance, model: Any, *where: Any) -> int:
    db = instance.db()
    try:
        with db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    finally:
        db.dispose()


def _successful(instance: Instance) -> int:
    return _count(instance, OpportunityTransfer, OpportunityTransfer.status == "successful")


@contextmanager
def served_pair(pg_url: str) -> Iterator[tuple[Instance, Instance]]:
    """The brand owner and the partner under ``prm serve``, each on a PostgreSQL database of its own,
    connected to each other as in the README (the brand owner's calls time out after 30 s)."""
    with (
        tempfile.TemporaryDirectory(prefix="prm-bench-transfer-") as tmp,
        postgres_databases(pg_url, ("brand", "partner")) as urls,
        two_instances(Path(tmp), database_urls=(urls[0], urls[1]), instance_type=ServedInstance) as (
            brand,
            partner,
        ),
    ):
        [connection] = brand.get("/v1/partner-crm-connections")["items"]
        brand.call(  # the tests' 2 s (made for their stalling proxy) is no timeout for a loaded machine
            "PATCH",
            f"/v1/partner-crm-connections/{connection['id']}",
            200,
            json={"timeout_seconds": 30},
            headers={"If-Match": f'"{connection["id"]}.{connection["version"]}"'},
        )
        yield brand, partner


def run(opportunities: int, deliverers: int, deliver_args: list[str], pg_url: str) -> dict[str, Any]:
    with served_pair(pg_url) as (brand, partner):
        ids = seed_opportunities(brand, opportunities)
        workers = [
            subprocess.Popen(
                [str(brand_prm()), "transfer", "deliver", *deliver_args],
                cwd=ROOT,
                env=brand.env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(deliverers)
        ]
        try:
            for w in workers:  # started and idle: its first line says so
                assert w.stderr is not None
                w.stderr.readline()
            load_before = os.getloadavg()
            queue_started = time.monotonic()
            queue_transfers(brand, ids)
            # the clock and the CPU count start at the commit that queued them all (queue_seconds: how
            # long queueing took, before it: the service's transfer requests, not deliveries)
            started = time.monotonic()
            cpu_before = _children_cpu(workers, brand, partner)
            while _successful(brand) < opportunities:
                if any(w.poll() is not None for w in workers):
                    raise SystemExit("a deliverer stopped")
                if time.monotonic() - started > 1800:
                    raise SystemExit("gave up after 30 minutes")
                time.sleep(0.05)
            seconds = time.monotonic() - started
            cpu = {k: v - cpu_before.get(k, 0.0) for k, v in _children_cpu(workers, brand, partner).items()}
            load_after = os.getloadavg()
        finally:
            for w in workers:
                w.terminate()
                w.wait(timeout=60)
        retried = _count(brand, OutboxMessage, OutboxMessage.attempts > 1)
        checks = {
            "partner_opportunities": _count(partner, Opportunity),
            "partner_children": sum(
                _count(partner, m)
                for m in (OpportunityContact, OpportunityRevenueLine, OpportunityNote, OpportunityActivity)
            ),
            "partner_transfers": _count(partner, OpportunityTransfer),
            "brand_child_correlations": _count(brand, CorrelationKey, CorrelationKey.kind != "opportunity"),
        }
        expected = {
            "partner_opportunities": opportunities,
            "partner_children": CHILDREN * opportunities,
            "partner_transfers": opportunities,
            "brand_child_correlations": CHILDREN * opportunities,
        }
        if checks != expected:
            raise SystemExit(f"the partner's side is not what was sent: {checks} != {expected}")
    return {
        "name": "transfer_create",
        "database": "postgresql",
        "opportunities": opportunities,
        "children_per_opportunity": CHILDREN,
        "deliverers": deliverers,
        "deliver_args": deliver_args,
        "queue_seconds": round(started - queue_started, 3),
        "seconds": round(seconds, 3),
        "deliveries_per_s": round(opportunities / seconds, 1),
        "target_per_s": TARGET_PER_S,
        "met": opportunities / seconds >= TARGET_PER_S,
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_ms_per_delivery": round(sum(cpu.values()) / opportunities * 1000, 1),
        "calls_retried": retried,
        "checks": checks,
        "server": "prm serve (gunicorn: a worker per core, 4 threads each) per instance",
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "python": platform.python_version(),
    }


def brand_prm() -> Path:
    return Path(sys.executable).parent / "prm"


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    """``root`` and its live descendants (gunicorn's master and workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [root], [root]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        found.extend(frontier)
    return found


def _backends(instance: Instance) -> list[int]:
    """The PostgreSQL server processes serving ``instance``'s database (its pools)."""
    db = instance.db()
    try:
        with db.transaction() as session:
            rows = session.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return [int(pid) for (pid,) in rows]
    finally:
        db.dispose()


def _children_cpu(
    workers: list[subprocess.Popen[str]], brand: Instance, partner: Instance
) -> dict[str, float]:
    """CPU seconds (user + system) so far of the deliverers, the two servers (every worker) and the
    database server processes of the two databases (Linux /proc; PostgreSQL on this machine)."""
    out = {"deliverers": sum(_cpu(w.pid) for w in workers)}
    for name, instance in (("brand", brand), ("partner", partner)):
        if instance.process is not None:
            out[f"{name}_server"] = sum(_cpu(p) for p in _tree(instance.process.pid))
        out[f"{name}_postgres"] = sum(_cpu(p) for p in _backends(instance))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opportunities", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 opportunities, results not written")
    parser.add_argument("--deliverers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1, help="repeat and keep every run")
    parser.add_argument(
        "--deliver-arg", action="append", default=[], help="extra option for prm transfer deliver"
    )
    args = parser.parse_args(argv)
    n = 100 if args.quick else args.opportunities
    deliver_args = ["--poll", "0.05", *args.deliver_arg]
    pg_url = os.environ.get("PRM_BENCH_POSTGRES_URL", DEFAULT_PG)
    results = []
    for i in range(args.runs):
        result = run(n, args.deliverers, deliver_args, pg_url)
        results.append(result)
        print(
            f"run {i + 1}: {n} transfers x {CHILDREN} children in {result['seconds']:.2f} s: "
            f"{result['deliveries_per_s']:.0f} deliveries/s (target {TARGET_PER_S:.0f}/s: "
            f"{'met' if result['met'] else 'NOT met'}); cpu {result['cpu_seconds']} "
            f"({result['cpu_ms_per_delivery']} ms per delivery); {result['calls_retried']} retried; "
            f"load {result['load_average_before']} -> {result['load_average_after']}"
        )
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
