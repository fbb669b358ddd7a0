"""``prm territories ...``: list, create, import, show and activate territory models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

from common.database import Database
from common.errors import MAX_LISTED_PROBLEMS, PrmError, ValidationFailed
from common.textfile import utf8_problem
from territory import csv_import, dimension_service, export, import_service, service
from territory import schemas as s

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _fail(exc: PrmError) -> None:
    """One readable line per problem, then a non-zero exit."""
    errors = exc.errors if isinstance(exc, ValidationFailed) else exc.extra.get("errors", [])
    if len(errors) > MAX_LISTED_PROBLEMS:
        click.echo(f"{len(errors)} problems; the first {MAX_LISTED_PROBLEMS}:", err=True)
    for problem in errors[:MAX_LISTED_PROBLEMS]:
        pointer, message = (
            (problem.pointer, problem.message)
            if not isinstance(problem, dict)
            else (problem["pointer"], problem["detail"])
        )
        click.echo(f"{pointer}: {message}", err=True)
    raise click.ClickException(exc.detail)


def _read(file: Path, advance: Callable[[int], object] = lambda n: None) -> str:
    """The file's text, read in chunks (``advance`` hears how many bytes each); a file that is not
    UTF-8 is one readable error naming its row and column, not a traceback."""
    chunks = []
    with file.open("rb") as f:
        while chunk := f.read(1 << 20):
            chunks.append(chunk)
            advance(len(chunk))
    raw = b"".join(chunks)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = utf8_problem(raw, exc, str(file))
        raise click.ClickException(f"{problem.pointer}: {problem.message}") from None


def _progress() -> Progress:
    """A progress display on standard error (left out when it is not a terminal)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _warn(warnings: list[s.TreeWarningOut]) -> None:
    for w in warnings:
        click.echo(f"warning: {w.message}", err=True)


@click.group("territories")
def territories_group() -> None:
    """Territory models: planning, active, archived."""


@territories_group.command("list")
@with_appcontext
def list_models() -> None:
    """List territory models (id, status, territories, version, name)."""
    cursor = None
    while True:
        page = service.list_models(_db(), None, s.ModelListQuery(limit=500, cursor=cursor))
        for m in page.items:
            click.echo(f"{m.id}\t{m.status}\t{m.territory_count}\tv{m.version}\t{m.name}")
        if not page.next_cursor:
            break
        cursor = page.next_cursor


@territories_group.command("create")
@click.argument("name")
@click.option("--clone-active", is_flag=True, help="copy the active model's territories")
@with_appcontext
def create_model(name: str, clone_active: bool) -> None:
    """Create a planning model called NAME (empty, or a clone of the active one); prints its id."""
    try:
        out = service.create_model(_db(), None, s.ModelCreate(name=name, clone_active=clone_active))
    except PrmError as exc:
        _fail(exc)
    click.echo(f"{out.id}")


@territories_group.command("import")
@click.argument("model_id", type=int)
@click.option(
    "--territories", "territories_file", type=_FILE, required=True, help="key,parent_key,name,type[,partner]"
)
@click.option("--coverage", "coverage_file", type=_FILE, help="territory_key,dimension,member,mode")
@click.option("--members", "members_file", type=_FILE, help="territory_key,user,role")
@with_appcontext
def import_model(
    model_id: int, territories_file: Path, coverage_file: Path | None, members_file: Path | None
) -> None:
    """Replace planning model MODEL_ID's content with the CSV files (all rows or none).

    Progress goes to standard error: the bytes read, then the check and the write."""
    given = [f for f in (territories_file, coverage_file, members_file) if f is not None]
    with _progress() as progress:
        reading = progress.add_task("reading", total=sum(f.stat().st_size for f in given))
        texts = {f: _read(f, lambda n: progress.advance(reading, n)) for f in given}
        progress.add_task("checking and writing", total=None)
        defaults = csv_import.ModelFiles("")
        files = csv_import.ModelFiles(
            texts[territories_file],
            texts[coverage_file] if coverage_file else defaults.coverage,
            texts[members_file] if members_file else defaults.members,
            (
                str(territories_file),
                str(coverage_file or "coverage.csv"),
                str(members_file or "members.csv"),
            ),
        )
        try:
            db = _db()
            report = import_service.import_model(
                db, None, model_id, service.current_version(db, model_id), files
            )
        except PrmError as exc:
            progress.stop()
            _fail(exc)
    _warn(report.warnings)
    click.echo(
        f"model {report.model_id}: {report.territories} territories, {report.coverage_rows} coverage rows, "
        f"{report.members} team members (version {report.model_version})"
    )


@territories_group.command("tree")
@click.argument("model_id", type=int, required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in s.TreeFormat]),
    default=s.TreeFormat.TEXT.value,
    show_default=True,
)
@with_appcontext
def tree(model_id: int | None, fmt: str) -> None:
    """Print the tree of MODEL_ID (default: the active model)."""
    try:
        view = service.model_tree(_db(), None, model_id)
    except PrmError as exc:
        _fail(exc)
    counts = view.lead_counts
    m = view.model
    if fmt == s.TreeFormat.TEXT:
        click.echo(f"model {m.id} ({m.status}, version {m.version}): {m.name}", err=True)
        click.echo(export.to_text(view.snapshot, counts), nl=False)
    elif fmt == s.TreeFormat.MERMAID:
        click.echo(export.to_mermaid(view.snapshot, counts), nl=False)
    elif fmt == s.TreeFormat.DOT:
        click.echo(export.to_dot(view.snapshot, counts), nl=False)
    elif fmt == s.TreeFormat.HTML:
        html = export.to_html(
            view.snapshot,
            counts,
            model_id=m.id,
            model_name=m.name,
            model_status=m.status.value,
            model_version=m.version,
        )
        click.echo(html, nl=False)
    else:
        body = {"model": m.model_dump(mode="json"), "root": export.tree_json(view.snapshot, counts)}
        click.echo(json.dumps(body, indent=2))
    _warn(m.warnings)


@territories_group.command("activate")
@click.argument("model_id", type=int)
@with_appcontext
def activate(model_id: int) -> None:
    """Activate planning model MODEL_ID; the active model is archived."""
    try:
        db = _db()
        out = service.activate_model(db, None, model_id, service.current_version(db, model_id))
    except PrmError as exc:
        _fail(exc)
    _warn(out.warnings)
    click.echo(f"model {out.id} is active ({out.territory_count} territories)")


@territories_group.command("dimensions")
@click.argument("model_id", type=int)
@with_appcontext
def list_dimensions(model_id: int) -> None:
    """The dimensions of model MODEL_ID: name, built-in or declared, source fact, members, imported."""
    try:
        out = dimension_service.list_dimensions(_db(), None, model_id)
    except PrmError as exc:
        _fail(exc)
    for d in out.items:
        kind = "built-in" if d.built_in else f"declared (from {d.source})"
        click.echo(f"{d.name}\t{kind}\t{d.members} members\t{d.imported_members} imported")


@territories_group.command("declare-dimension")
@click.argument("model_id", type=int)
@click.argument("name")
@click.option("--source", help="the lead fact feeding it (default: NAME), e.g. customer_industry")
@click.option("--description")
@with_appcontext
def declare_dimension(model_id: int, name: str, source: str | None, description: str | None) -> None:
    """Declare dimension NAME on planning model MODEL_ID."""
    try:
        data = s.DimensionCreate(name=name, source=source, description=description)
    except ValueError as exc:
        raise click.ClickException(str(exc).replace("\n", " ")) from None
    try:
        db = _db()
        out = dimension_service.declare_dimension(
            db, None, model_id, service.current_version(db, model_id), data
        )
    except PrmError as exc:
        _fail(exc)
    click.echo(f"model {model_id}: dimension {out.dimension.name} declared (version {out.model_version})")


@territories_group.command("import-members")
@click.argument("model_id", type=int)
@click.argument("dimension")
@click.argument("file", type=_FILE)
@with_appcontext
def import_members(model_id: int, dimension: str, file: Path) -> None:
    """Replace the members imported for DIMENSION of planning model MODEL_ID with FILE (key,parent,name)."""
    data = s.MembersImport(members=_read(file), filename=str(file))
    try:
        db = _db()
        report = dimension_service.import_members(
            db, None, model_id, dimension, service.current_version(db, model_id), data
        )
    except PrmError as exc:
        _fail(exc)
    click.echo(
        f"model {report.model_id}: {report.members} {report.dimension} members ({report.moved} moved), "
        f"version {report.model_version}"
    )


commands = [territories_group]
