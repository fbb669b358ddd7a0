"""What one REST request costs the server, measured in process: CPU time and SQL statements per request
of create + submit a lead, create and submit alone, approve, a page of 20 leads, one lead, what-if on
the demo model and on a 10,000-territory model (``bench/rest.py``'s), and ``GET /livez`` as the
yardstick.

Run ``python -m bench.request_cost`` (a minute or two) or ``--quick``. The requests go through the Flask
application (WSGI stack, authentication, validation, logging, the real database and evaluator) with its
test client, on PostgreSQL (``PRM_BENCH_POSTGRES_URL``, default the local server; a database is
created and dropped) or ``--sqlite``. Lead bodies are those of ``bench/rest.py``: varied customers and
partners of the demo data, each submitting cleanly and routed to an approver who has a key.

CPU is this process's ``time.process_time`` over each case, which counts the application, the driver
and the client, not the database server, and which a loaded machine stretches far less than the wall
clock; each case runs in blocks and reports the lowest block's mean (the least disturbed) and the mean
of all. ``--profile DIR`` also writes each case's cProfile statistics (CPU clock) to ``DIR/<case>.prof``
(read them with ``python -m pstats``); the profiler's own cost inflates the figures of that run. Statements are counted with SQLAlchemy's ``before_cursor_execute`` (SQLite's ``BEGIN
IMMEDIATE`` included: on SQLite every transaction costs one more). Where ``bench/rest.py``
measures throughput and latency from outside, this isolates the request path's own work, so a change
to it can be compared on a shared machine: run it before and after. Results go to
``bench/results/request_cost.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from bench.rest import WHAT_IF_FACTS, _ten_thousand_territories
from common import migrate
from common.settings import Settings
from demo import seed_demo

RESULTS = Path(__file__).resolve().parent / "results" / "request_cost.json"
ADMIN_URL = os.environ.get("PRM_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
#: partner user, program, registration type (the demo partners allowed to register leads), as bench/rest.py
PARTNERS = (
    ("northwind-user", "resell", "resale"),
    ("contoso-user", "co-sell", "co_sell"),
    ("fabrikam-user", "referral", "referral"),
)


@dataclass(frozen=True)
class Combo:
    user: str
    body: dict[str, Any]
    approver: str


class Bench:
    """The app over a seeded database, a test client and a statement counter."""

    def __init__(self, url: str, folder: Path) -> None:
        from server import create_app

        migrate.upgrade(url)
        self.app = create_app(Settings(database_url=url, log_json=True))
        self.db = self.app.extensions["prm.db"]
        seed_demo(self.db, folder / "keys.txt")
        self.keys = dict(line.split(" ", 1) for line in (folder / "keys.txt").read_text().splitlines())
        self.client = self.app.test_client()
        self.statements = 0
        event.listen(self.db.engine, "before_cursor_execute", self._count)
        self.pending: list[tuple[int, str, str]] = []  # submitted: lead id, ETag, approver
        self.drafts: list[tuple[str, int, str, str]] = []  # created: user, lead id, ETag, approver
        self.model_10k: int | None = None

    def _count(self, *_: Any) -> None:
        self.statements += 1

    def h(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[user]}"}

    def call(self, method: str, path: str, user: str | None, body: Any = None, **headers: str) -> Any:
        resp = self.client.open(
            path, method=method, json=body, headers={**(self.h(user) if user else {}), **headers}
        )
        if resp.status_code >= 400:
            raise SystemExit(f"{method} {path} answered {resp.status_code}: {resp.get_data(as_text=True)}")
        return resp

    def combos(self, wanted: int) -> list[Combo]:
        """Lead bodies of varied partners and customers that submit cleanly, with who approves each."""
        customers = [
            c
            for c in self.call("GET", "/v1/customers?limit=500", "admin").get_json()["items"]
            if c.get("active", True)
        ]
        items = self.call("GET", "/v1/products?limit=500", "admin").get_json()["items"]
        parents = {p.get("parent_id") for p in items}
        leaves = [p["id"] for p in items if p["id"] not in parents]
        rng = random.Random(7)
        rng.shuffle(customers)
        found: list[Combo] = []
        for tried, customer in enumerate(customers, start=1):
            if len(found) >= wanted or tried > wanted * 6:
                break
            user, program, rtype = PARTNERS[(tried - 1) % len(PARTNERS)]
            body = {
                "name": f"Deal {tried}",
                "customer_id": customer["id"],
                "registration_type": rtype,
                "program": program,
                "deal_size": rng.randrange(5_000, 900_000),
                "currency": "USD",
                "products": [{"product_id": rng.choice(leaves), "primary": True}],
            }
            created = self.client.post("/v1/leads", json=body, headers=self.h(user))
            if created.status_code != 201:
                continue
            lead_id = created.get_json()["id"]
            submitted = self.client.post(
                f"/v1/leads/{lead_id}/submit", headers={**self.h(user), "If-Match": created.headers["ETag"]}
            )
            if submitted.status_code != 200:
                continue
            rounds = self.call("GET", f"/v1/leads/{lead_id}/approval-rounds", "admin").get_json()["items"]
            approvers = (
                [a["user"] for step in rounds[-1]["steps"][:1] for a in step["approvers"]] if rounds else []
            )
            approvers = [a for a in approvers if a in self.keys]
            if approvers:
                found.append(Combo(user, body, approvers[0]))
        return found


def cases(b: Bench, combos: list[Combo]) -> list[tuple[str, Callable[[int], None]]]:
    def create(i: int) -> tuple[str, int, str]:
        combo = combos[i % len(combos)]
        resp = b.call("POST", "/v1/leads", combo.user, combo.body)
        return combo.user, resp.get_json()["id"], resp.headers["ETag"]

    def submit(user: str, lead_id: int, etag: str, approver: str) -> None:
        resp = b.call("POST", f"/v1/leads/{lead_id}/submit", user, **{"If-Match": etag})
        b.pending.append((lead_id, resp.headers["ETag"], approver))

    def create_submit(i: int) -> None:
        submit(*create(i), combos[i % len(combos)].approver)

    def create_only(i: int) -> None:
        b.drafts.append((*create(i), combos[i % len(combos)].approver))

    def submit_only(i: int) -> None:
        submit(*b.drafts.pop(0))

    def approve(i: int) -> None:
        lead_id, etag, approver = b.pending.pop(0)
        b.call("POST", f"/v1/leads/{lead_id}/approve", approver, {"comment": "ok"}, **{"If-Match": etag})

    def page(i: int) -> None:
        b.call("GET", "/v1/leads?limit=20", "northwind-user")

    def one(i: int) -> None:
        b.call("GET", f"/v1/leads/{b.pending[i % len(b.pending)][0]}", "admin")

    def livez(i: int) -> None:
        b.call("GET", "/livez", None)

    def what_if(i: int) -> None:
        b.call("POST", "/v1/what-if", "cam-jp", {"facts": WHAT_IF_FACTS})

    def what_if_10k(i: int) -> None:
        b.call("POST", "/v1/what-if", "cam-jp", {"facts": WHAT_IF_FACTS, "territory_model_id": b.model_10k})

    return [
        ("livez", livez),
        ("create_submit", create_submit),
        ("create", create_only),
        ("submit", submit_only),
        ("leads_page_20", page),
        ("lead", one),
        ("approve", approve),
        ("what_if_demo", what_if),
        *([("what_if_10k_territories", what_if_10k)] if b.model_10k is not None else []),
    ]


def measure(
    b: Bench, fn: Callable[[int], None], n: int, blocks: int, profile: Path | None = None
) -> dict[str, float]:
    per_block = max(1, n // blocks)
    means = []
    b.statements = 0
    profiler = cProfile.Profile(time.process_time) if profile is not None else None
    for k in range(blocks):
        start = time.process_time()
        if profiler is not None:
            profiler.enable()
        for i in range(k * per_block, (k + 1) * per_block):
            fn(i)
        if profiler is not None:
            profiler.disable()
        means.append((time.process_time() - start) * 1000 / per_block)
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    return {
        "cpu_ms": round(min(means), 2),
        "cpu_ms_mean": round(sum(means) / len(means), 2),
        "statements": round(b.statements / (per_block * blocks), 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="requests per case")
    parser.add_argument("--blocks", type=int, default=5, help="blocks per case (the lowest counts)")
    parser.add_argument("--quick", action="store_true", help="20 requests per case in 2 blocks")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    parser.add_argument("--no-10k", action="store_true", help="no 10,000-territory model (its what-if)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="write each case's cProfile stats here")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n, blocks = (20, 2) if args.quick else (args.requests, args.blocks)
    folder = Path(tempfile.mkdtemp(prefix="prm-bench-request-cost-"))
    admin = None
    name = f"prm_bench_request_cost_{os.getpid()}"
    if args.sqlite:
        url = f"sqlite:///{folder / 'prm.sqlite3'}"
    else:
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    b: Bench | None = None
    try:
        b = Bench(url, folder)
        if not args.no_10k:
            b.model_10k = _ten_thousand_territories(url)
        quiet = open(os.devnull, "w")  # noqa: SIM115 (the request log, for the whole run)
        for handler in logging.getLogger("prm").handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(quiet)
        combos = b.combos(12)
        if not combos:
            raise SystemExit("no lead of the demo data submits cleanly: nothing to measure")
        steps = cases(b, combos)
        # warm: keys verified, the snapshots and rulesets held, statements cached
        for _, fn in (*steps[:2], *steps[7:]):
            for i in range(5):
                fn(i)
        results: dict[str, dict[str, float]] = {}
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
        for case, fn in steps:
            results[case] = measure(
                b, fn, n, blocks, args.profile / f"{case}.prof" if args.profile is not None else None
            )
            r = results[case]
            print(
                f"  {case:<15} cpu {r['cpu_ms']:7.2f} ms (mean {r['cpu_ms_mean']:7.2f})  "
                f"statements {r['statements']:5.1f}",
                flush=True,
            )
        load = os.getloadavg() if hasattr(os, "getloadavg") else None
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "benchmark": "request_cost",
                    "database": "sqlite" if args.sqlite else "postgresql",
                    "requests_per_case": n,
                    "blocks": blocks,
                    "machine": {
                        "python": platform.python_version(),
                        "cpus": os.cpu_count(),
                        "loadavg_1m": round(load[0], 2) if load else None,
                    },
                    "cases": results,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"results: {args.out}")
    finally:
        if b is not None:
            b.db.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
