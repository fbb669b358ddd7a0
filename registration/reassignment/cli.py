"""``prm reassign ...``: plan, show, apply, resume, cancel and revert batch reassignment runs.

``plan`` prints what would move (counts per territory and per CAM, before -> after) and exits 0 when
nothing would change, 2 when something would, like ``terraform plan -detailed-exitcode``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from common.database import Database
from common.errors import PrmError, ValidationFailed
from registration.reassignment import schemas as s
from registration.reassignment import service
from registration.reassignment.planning import ItemOutcome

#: ``plan`` exit status when the plan moves leads.
CHANGES_EXIT_CODE = 2


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _fail(exc: PrmError) -> None:
    problems = exc.errors if isinstance(exc, ValidationFailed) else []
    for problem in problems:
        click.echo(f"{problem.pointer}: {problem.message}", err=True)
    raise click.ClickException(exc.detail)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar over chunks, shown on a terminal when a run has more than one chunk."""
    console = Console(stderr=True)
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None, visible=total > 1)

        yield update


def parse_where(text: str | None) -> s.PlanScope:
    """``status=pending_approval|draft,partner=KEY,territory=KEY,updated-since=ISO`` -> a scope."""
    data: dict[str, Any] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not value.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {part!r}", param_hint="--where")
        data[name] = value.strip().split("|") if name == "status" else value.strip()
    try:
        return s.PlanScope.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise click.BadParameter(problems, param_hint="--where") from None


def _table(title: str, key: str, counts: dict[str, s.CountChange]) -> Table:
    table = Table(title=title)
    table.add_column(key)
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_column("change", justify="right")
    for key, c in counts.items():
        delta = c.after - c.before
        table.add_row(key, str(c.before), str(c.after), f"{delta:+d}")
    return table


def _print_summary(run: s.RunSummary) -> None:
    console = Console()
    console.print(
        f"Run {run.id} ({run.kind}, {run.status}): {run.moved} to move, {run.kept} kept; "
        f"evaluated {run.evaluated} of {run.total_leads} lead(s)"
        + (" (incremental)" if run.incremental else "")
        + f"; content hash {run.content_hash}"
    )
    if run.applied or run.skipped:
        console.print(f"Applied {run.applied}, skipped {run.skipped}")
    if run.by_territory:
        console.print(_table("Moved leads per territory", "territory", run.by_territory))
    if run.by_cam:
        console.print(_table("Moved leads per CAM", "CAM", run.by_cam))
    for reason, n in run.kept_by_reason.items():
        console.print(f"kept ({reason}): {n}")


def _emit(run: s.RunSummary, as_json: bool) -> None:
    if as_json:
        click.echo(run.model_dump_json(indent=2))
    else:
        _print_summary(run)


@click.group("reassign")
def reassign_group() -> None:
    """Batch reassignment: plan a run, review it, apply exactly that plan."""


@reassign_group.command("plan")
@click.option(
    "--model", "model_id", type=click.IntRange(1, 2**31 - 1), help="territory model (default: active)"
)
@click.option(
    "--ruleset", "ruleset_ids", type=click.IntRange(1, 2**31 - 1), multiple=True, help="ruleset version"
)
@click.option("--where", "where", help="status=A|B,partner=KEY,territory=KEY,updated-since=ISO")
@click.option("--chunk-size", type=click.IntRange(1, 100_000), default=None, help="leads per chunk")
@click.option("--full", is_flag=True, help="evaluate every lead even when only a few territories changed")
@click.option("--json", "as_json", is_flag=True, help="print the run as JSON")
@with_appcontext
def plan(
    model_id: int | None,
    ruleset_ids: tuple[int, ...],
    where: str | None,
    chunk_size: int | None,
    full: bool,
    as_json: bool,
) -> None:
    """Plan a run; exit 0 when nothing would change, 2 when something would."""
    data = s.RunCreate(
        territory_model_id=model_id,
        ruleset_ids=list(ruleset_ids),
        where=parse_where(where),
        chunk_size=chunk_size,
        full=full,
    )
    try:
        with _progress("planning") as progress:
            run = service.create_run(_db(), None, data, progress=progress)
    except PrmError as exc:
        _fail(exc)
    _emit(run, as_json)
    raise SystemExit(CHANGES_EXIT_CODE if run.moved else 0)


@reassign_group.command("show")
@click.argument("run_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--moved", "outcome", flag_value=ItemOutcome.MOVE.value, help="only leads that move")
@click.option("--kept", "outcome", flag_value=ItemOutcome.KEEP.value, help="only leads that are kept")
@click.option("--territory", help="only leads with this lowest territory before or after")
@click.option("--json", "as_json", is_flag=True, help="print the run and its items as JSON")
@with_appcontext
def show(run_id: int, outcome: str | None, territory: str | None, as_json: bool) -> None:
    """Show a run: its counts, then each lead it moves or keeps, with why."""
    try:
        run = service.get_run(_db(), None, run_id)
        items: list[s.ItemOut] = []
        cursor = None
        while True:
            query = s.ItemQuery(
                outcome=ItemOutcome(outcome) if outcome else None,
                territory=territory,
                limit=500,
                cursor=cursor,
            )
            page = service.list_items(_db(), None, run_id, query)
            items.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    except PrmError as exc:
        _fail(exc)
    if as_json:
        click.echo(
            json.dumps(
                {"run": run.model_dump(mode="json"), "items": [i.model_dump(mode="json") for i in items]},
                indent=2,
            )
        )
        return
    _print_summary(run)
    table = Table(title=f"Leads of run {run.id}")
    for column in ("lead", "status", "outcome", "territory", "CAM", "reason", "result"):
        table.add_column(column)
    for i in items:
        table.add_row(
            str(i.lead_id),
            i.lead_status,
            i.outcome.value,
            f"{', '.join(i.before.get('lowest_territories', [])) or '-'} -> "
            f"{', '.join(i.after.get('lowest_territories', [])) or '-'}",
            f"{i.before.get('cam') or '-'} -> {i.after.get('cam') or '-'}",
            i.reason,
            (i.result.value if i.result else "") + (f" ({i.result_reason})" if i.result_reason else ""),
        )
    Console().print(table)


def _run_command(action: Callable[..., s.RunSummary], run_id: int, label: str, as_json: bool) -> None:
    try:
        with _progress(label) as progress:
            run = action(_db(), None, run_id, progress=progress)
    except PrmError as exc:
        _fail(exc)
    _emit(run, as_json)


@reassign_group.command("apply")
@click.argument("run_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def apply(run_id: int, as_json: bool) -> None:
    """Apply exactly the run's plan (leads changed since are skipped)."""
    _run_command(service.apply_run, run_id, "applying", as_json)


@reassign_group.command("resume")
@click.argument("run_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def resume(run_id: int, as_json: bool) -> None:
    """Continue a run that stopped while planning or applying."""
    _run_command(service.resume_run, run_id, "resuming", as_json)


@reassign_group.command("revert")
@click.argument("run_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def revert(run_id: int, as_json: bool) -> None:
    """Plan the inverse of an applied run (apply it with ``prm reassign apply``)."""
    _run_command(service.revert_run, run_id, "planning the revert", as_json)


@reassign_group.command("cancel")
@click.argument("run_id", type=click.IntRange(1, 2**31 - 1))
@with_appcontext
def cancel(run_id: int) -> None:
    """Cancel a planned run, or stop an applying one after its running chunks."""
    try:
        run = service.cancel_run(_db(), None, run_id)
    except PrmError as exc:
        _fail(exc)
    click.echo(
        f"run {run.id}: {run.status}"
        + (" (stopping)" if run.cancel_requested and run.status == "applying" else "")
    )


commands = [reassign_group]
