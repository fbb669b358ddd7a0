"""The what-if benchmark (``make bench``): answer size and server time of ``POST /v1/what-if`` on a
10,000-territory model.

Run ``python -m bench.whatif`` (about a minute) or ``--quick`` for a smoke run.

The model is shaped like a real channel organisation's, over the geography the service ships: a root
with every country as a child (the root matches every lead, so every country but one is a losing
candidate), each country's subdivisions under it (every level the geography has), and product-line
territories under a third of the geography territories until the model holds 10,000 territories (a
product catalog of as many lines as a host needs is added for them). It is imported through the public
CSV import into a fresh SQLite database with the demo data (its users, customers and rulesets, active)
and activated.

Then ``POST /v1/what-if`` runs through the Flask application (the WSGI stack, the real database, the
durable_rules evaluator) for generated leads: a random geography territory's member, one of its product
lines (or a demo product), a demo program, partner and customer. Per answer it records the response's
size in bytes and the server time in microseconds: the CPU time of this process inside the WSGI call,
the response body included (the application, SQLite and all; no network), which a loaded machine
stretches far less than the wall clock (also recorded), for the default bounded trace and for
``?detail=full``. Beside it, ``client_us_*`` is the CPU time around the test client's call, which adds
building the request's environ and reading the response (what a real server's HTTP parsing replaces).
Results go to ``bench/results/whatif.json`` with one line per target on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from common import migrate
from common.principal import Role
from common.settings import Settings
from demo import seed_demo
from directory.enums import ProductLevel
from directory.models import Customer, Organization, PartnerProgram, Product
from territory import csv_import, import_service, service
from territory import schemas as territory_schemas
from territory.dimensions import Dimension
from territory.repository import internal_users, load_dimensions

RESULTS = Path(__file__).resolve().parent / "results" / "whatif.json"
#: The targets of the bounded trace (issue: what-if on the 10,000-territory model).
TARGET_US = 2_000
TARGET_BYTES = 4 * 1024


@dataclass(frozen=True)
class Config:
    territories: int = 10_000
    answers: int = 2_000
    full_answers: int = 200
    warmup: int = 50
    seed: int = 1


FULL = Config()
QUICK = Config(territories=2_000, answers=200, full_answers=20, warmup=10)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class _Model:
    territories: list[tuple[str, str | None, str, str]]  # key, parent, name, type
    coverage: list[tuple[str, str, str]]  # territory, dimension, member (include)
    members: list[tuple[str, str]]  # territory, CAM user
    lines: dict[str, list[str]]  # geography member -> its product lines' products
    geo_members: list[str]


def _countries(parents: dict[str, str | None]) -> list[str]:
    """Members whose key is an ISO 3166-1 alpha-2 code (the level a channel organisation splits first)."""
    return sorted(m for m in parents if len(m) == 2 and m.isalpha() and m.isupper())


def build_model(parents: dict[str, str | None], size: int, cam: str) -> _Model:
    """Root -> countries -> their subdivisions (every level) -> product lines under a third of them."""
    children: dict[str, list[str]] = {}
    for m, p in parents.items():
        if p is not None:
            children.setdefault(p, []).append(m)
    territories: list[tuple[str, str | None, str, str]] = [("WW", None, "Worldwide", "global")]
    coverage: list[tuple[str, str, str]] = []
    members: list[tuple[str, str]] = []
    geo: list[str] = []
    stack = [(c, "WW", "country") for c in reversed(_countries(parents))]
    while stack and len(territories) < size * 3 // 5:
        member, parent, kind = stack.pop()
        key = f"G-{member}"
        territories.append((key, parent, member, kind))
        coverage.append((key, "geography", member))
        if kind == "country":
            members.append((key, cam))
        geo.append(member)
        stack.extend((c, key, "subdivision") for c in sorted(children.get(member, ()), reverse=True))
    hosts = geo[::3]
    per_host = -(-(size - len(territories)) // len(hosts))
    lines: dict[str, list[str]] = {}
    for member in hosts:
        for i in range(per_host):
            if len(territories) >= size:
                break
            product = f"BL-{i:04d}"
            key = f"L-{member}-{i:04d}"
            territories.append((key, f"G-{member}", f"{member} line {i}", "product_line"))
            coverage += [(key, "geography", member), (key, "product", product)]
            lines.setdefault(member, []).append(product)
    return _Model(territories, coverage, members, lines, geo)


def _csv(header: str, rows: Sequence[Sequence[str | None]]) -> str:
    return header + "\n" + "".join(",".join(v or "" for v in row) + "\n" for row in rows)


#: Where the request logs go: one sink for the process, never closed (a handler may keep it).
_NOWHERE = open(os.devnull, "w")  # noqa: SIM115


def setup(cfg: Config, workdir: Path) -> tuple[Any, dict[str, str], _Model, dict[str, list[str]]]:
    """A migrated SQLite database with the demo data and the generated model active; the app, the
    admin's headers, the model and the demo's customers, programs and partners."""
    from server import create_app

    url = f"sqlite:///{workdir / 'whatif.sqlite3'}"
    migrate.upgrade(url)
    app = create_app(Settings(database_url=url, log_json=False))
    db = app.extensions["prm.db"]
    # Request logs are written as a server writes them, to nowhere (not to this benchmark's output).
    for handler in logging.getLogger("prm").handlers + logging.getLogger("prm.request").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(_NOWHERE)
    keys_file = workdir / "keys.txt"
    seed_demo(db, keys_file)
    keys = dict(line.split(" ", 1) for line in keys_file.read_text().splitlines())
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    with db.transaction() as session:
        cams = sorted(
            u for u, roles in internal_users(session).items() if Role.CHANNEL_ACCOUNT_MANAGER in roles
        )
        geography = load_dimensions(session)[Dimension.GEOGRAPHY]
        parents = {m: geography.parent(m) for m in geography}
    model = build_model(parents, cfg.territories, cams[0])
    with db.transaction() as session:  # the product lines the model carves by
        group = Product(key="BL", name="Bench lines", level=ProductLevel.GROUP)
        session.add(group)
        session.flush()
        wanted = sorted({p for ps in model.lines.values() for p in ps})
        session.add_all(
            Product(key=p, name=p, level=ProductLevel.SUBGROUP, parent_id=group.id) for p in wanted
        )
    created = service.create_model(db, None, territory_schemas.ModelCreate(name="what-if bench"))
    files = csv_import.ModelFiles(
        _csv("key,parent_key,name,type", model.territories),
        _csv("territory_key,dimension,member,mode", [(*row, "include") for row in model.coverage]),
        _csv("territory_key,user,role", [(t, u, "channel_account_manager") for t, u in model.members]),
    )
    report = import_service.import_model(db, None, created.id, f'"{created.id}.{created.version}"', files)
    service.activate_model(db, None, created.id, f'"{created.id}.{report.model_version}"')
    with db.transaction() as session:
        reference = {
            "customer": list(session.scalars(select(Customer.key))),
            "program": list(session.scalars(select(PartnerProgram.key))),
            "partner": list(
                session.scalars(select(Organization.key).where(Organization.partner_type.is_not(None)))
            ),
        }
    return app, headers, model, reference


def leads(
    cfg: Config, model: _Model, reference: dict[str, list[str]], n: int, seed: int
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        geo = rng.choice(model.geo_members)
        products = model.lines.get(geo) or ["fw-1", "sw-100"]
        out.append(
            {
                "customer": rng.choice(reference["customer"]),
                "geography": geo,
                "product": rng.choice(products),
                "program": rng.choice(reference["program"]),
                "partner": rng.choice(reference["partner"]),
                "registration_type": rng.choice(["resale", "referral", "co_sell"]),
                "deal_size": rng.randrange(1_000, 1_000_000),
            }
        )
    return out


class ServerClock:
    """WSGI middleware: the CPU time this process spent inside the application on its last request,
    producing the response body included (``app.wsgi_app = ServerClock(app.wsgi_app)``)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.last = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start = time.process_time()
        body = self.app(environ, start_response)
        try:
            data = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            self.last = time.process_time() - start
        return [data]


def _measure(
    client: Any, clock: ServerClock, headers: dict[str, str], facts: Sequence[dict[str, Any]], url: str
) -> dict[str, Any]:
    micros: list[float] = []
    client_micros: list[float] = []
    sizes: list[int] = []
    candidates: list[int] = []
    walls: list[float] = []
    for f in facts:
        start, wall = time.process_time(), time.perf_counter()
        resp = client.post(url, json={"facts": f}, headers=headers)
        client_micros.append((time.process_time() - start) * 1e6)
        walls.append((time.perf_counter() - wall) * 1e6)
        micros.append(clock.last * 1e6)
        if resp.status_code != 200:
            raise RuntimeError(f"what-if answered {resp.status_code}: {resp.get_data(as_text=True)[:500]}")
        sizes.append(len(resp.get_data()))
        candidates.append(len(resp.get_json()["trace"]["candidates"]))
    return {
        "answers": len(facts),
        "us_median": round(statistics.median(micros)),
        "us_p95": round(_percentile(micros, 0.95)),
        "us_mean": round(statistics.fmean(micros)),
        "client_us_median": round(statistics.median(client_micros)),
        "client_us_p95": round(_percentile(client_micros, 0.95)),
        "wall_us_median": round(statistics.median(walls)),
        "wall_us_p95": round(_percentile(walls, 0.95)),
        "bytes_median": round(statistics.median(sizes)),
        "bytes_p95": _percentile(sizes, 0.95),
        "bytes_max": max(sizes),
        "candidates_median": round(statistics.median(candidates)),
        "candidates_max": max(candidates),
    }


def run(cfg: Config, out: Path | None, *, echo: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="prm-bench-whatif-") as tmp:
        started = time.perf_counter()
        app, headers, model, reference = setup(cfg, Path(tmp))
        setup_seconds = time.perf_counter() - started
        clock = ServerClock(app.wsgi_app)
        app.wsgi_app = clock
        client = app.test_client()
        warm = leads(cfg, model, reference, cfg.warmup, cfg.seed)
        _measure(client, clock, headers, warm, "/v1/what-if")
        sample = leads(cfg, model, reference, cfg.answers, cfg.seed + 1)
        summary = _measure(client, clock, headers, sample, "/v1/what-if")
        full = _measure(client, clock, headers, sample[: cfg.full_answers], "/v1/what-if?detail=full")
        app.extensions["prm.db"].dispose()
    result = {
        "name": "what_if",
        "territories": len(model.territories),
        "countries": sum(1 for t in model.territories if t[3] == "country"),
        "geography_territories": len(model.geo_members),
        "setup_seconds": round(setup_seconds, 1),
        "clock": "process_time inside the WSGI call (the application, SQLite and all); client_us_*: around "
        "the test client's call; wall_us_*: wall clock around it",
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "summary": summary,
        "full": full,
        "targets": {"us_median_under": TARGET_US, "bytes_max_under": TARGET_BYTES},
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if echo:
        for line in report(result):
            print(line)
    return result


def report(result: dict[str, Any]) -> list[str]:
    s, f = result["summary"], result["full"]
    return [
        f"what-if on {result['territories']:,} territories ({result['countries']} countries under the root):",
        f"  summary trace: {s['us_median']:,} us median, {s['us_p95']:,} us p95 "
        f"({s['client_us_median']:,} us median with the test client); "
        f"{s['bytes_median']:,} B median, {s['bytes_max']:,} B max; {s['candidates_max']} candidates max",
        f"  detail=full:   {f['us_median']:,} us median, {f['us_p95']:,} us p95; "
        f"{f['bytes_median']:,} B median, {f['bytes_max']:,} B max; {f['candidates_max']} candidates max",
        f"  target what-if under {TARGET_US:,} us server time: "
        f"{'met' if s['us_median'] < TARGET_US else 'NOT MET'} (median {s['us_median']:,} us)",
        f"  target answer under {TARGET_BYTES:,} B: "
        f"{'met' if s['bytes_max'] < TARGET_BYTES else 'NOT MET'} (max {s['bytes_max']:,} B)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 2,000-territory smoke run")
    parser.add_argument("--out", type=Path, default=None, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    out = args.out or (Path(tempfile.gettempdir()) / "prm-bench-whatif-quick.json" if args.quick else RESULTS)
    print(f"what-if benchmark: {'quick' if args.quick else 'full'} run", file=sys.stderr)
    run(cfg, out)
    print(f"wrote {out}")
    return 0


__all__ = ["FULL", "QUICK", "Config", "ServerClock", "build_model", "run"]

if __name__ == "__main__":
    raise SystemExit(main())
