"""`rules` commands: check a rules file, run its tests, print the JSON Schema. No database needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import click
from flask import current_app
from flask.cli import with_appcontext
from pydantic import ValidationError

from common.database import Database
from common.errors import PrmError, ValidationFailed
from rules import service as ruleset_service
from rules.loader import load_ruleset
from rules.schemas import RulesetListQuery, RulesetSummary, RulesetUpload
from rules.spec import schema as rules_schema
from rules.testcases import run_tests, tests_path_for


@click.group("rules")
def rules_cli() -> None:
    """Author and check rules files (assignment, approval, policy)."""


@rules_cli.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(file: Path) -> None:
    """Validate FILE without storing it; print every error with its position."""
    result = load_ruleset(file)
    for diagnostic in result.diagnostics:
        click.echo(str(diagnostic), err=diagnostic in result.errors)
    if result.ruleset is None:
        raise SystemExit(1)
    rs = result.ruleset
    click.echo(
        f"{file}: ok: {rs.kind} ruleset, {len(rs.rules)} rules, hit policy {rs.hit_policy}, "
        f"version {rs.version[:12]}"
    )


@rules_cli.command("test")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--engine",
    type=click.Choice(["durable", "python"]),
    default=None,
    help="evaluator (default: PRM_RULES_ENGINE, else durable)",
)
def test(file: Path, engine: str | None) -> None:
    """Run the cases in FILE's sibling NAME.tests.yaml; exit 1 on any failure."""
    report = run_tests(file, tests_path_for(file), engine)
    click.echo(report.render())
    if not report.passed:
        raise SystemExit(1)


@rules_cli.command("schema")
def schema() -> None:
    """Print the JSON Schema of rules files (for editors)."""
    click.echo(json.dumps(rules_schema(), indent=2, sort_keys=True))


# --- stored versions (need the app: `prm rules upload|activate|rollback|list`) --------------------------


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _fail(exc: PrmError) -> NoReturn:
    """One readable line per problem (``file:line:column: path: message``), then a non-zero exit."""
    if isinstance(exc, ValidationFailed):
        for problem in exc.errors:
            click.echo(f"{problem.pointer}: {problem.message}", err=True)
    raise click.ClickException(exc.detail)


def _describe(out: RulesetSummary) -> str:
    when = f" activated {out.activated_at:%Y-%m-%d %H:%M}" if out.activated_at else ""
    return f"{out.id}  {out.kind:<10} {out.status:<8} {out.version_hash[:12]}  {out.name}{when}"


@rules_cli.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="version name, used in messages (default: the file's name)")
@click.option("--activate", "activate_now", is_flag=True, help="make the version active right away")
@with_appcontext
def upload_command(file: Path, name: str | None, activate_now: bool) -> None:
    """Validate FILE, smoke-evaluate it and store it as a draft version (and activate it if asked)."""
    try:
        data = RulesetUpload(name=name or file.name, source=file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValidationError) as exc:
        raise click.ClickException(f"{file}: cannot read the rules file: {exc}") from None
    try:
        out, created = ruleset_service.upload_ruleset(_db(), None, data)
        for warning in out.warnings:
            click.echo(warning.text, err=True)
        click.echo(f"{'stored' if created else 'already stored'}: {_describe(out)}")
        if activate_now:
            out = ruleset_service.activate_ruleset(_db(), None, out.id, None, require_if_match=False)
            click.echo(f"active: {_describe(out)}")
    except PrmError as exc:
        _fail(exc)


@rules_cli.command("activate")
@click.argument("ruleset_id", metavar="ID", type=click.IntRange(min=1))
@with_appcontext
def activate_command(ruleset_id: int) -> None:
    """Make stored version ID the active one of its kind (the previous one is archived)."""
    try:
        out = ruleset_service.activate_ruleset(_db(), None, ruleset_id, None, require_if_match=False)
    except PrmError as exc:
        _fail(exc)
    click.echo(f"active: {_describe(out)}")


@rules_cli.command("rollback")
@click.argument("kind", type=click.Choice(["assignment", "approval", "policy"]))
@click.option("--to", "target_id", type=click.IntRange(min=1), help="the archived version to re-activate")
@with_appcontext
def rollback_command(kind: str, target_id: int | None) -> None:
    """Re-activate the KIND version that was active before the current one (or --to ID)."""
    try:
        out = ruleset_service.rollback_ruleset(_db(), None, kind, target_id)
    except PrmError as exc:
        _fail(exc)
    click.echo(f"active: {_describe(out)}")


@rules_cli.command("list")
@click.option("--kind", type=click.Choice(["assignment", "approval", "policy"]))
@with_appcontext
def list_command(kind: str | None) -> None:
    """Stored versions, oldest first: id, kind, status, content hash, name."""
    query = RulesetListQuery(kind=kind, limit=500)
    while True:
        page = ruleset_service.list_rulesets(_db(), None, query)
        for item in page.items:
            click.echo(_describe(item))
        if page.next_cursor is None:
            break
        query = query.model_copy(update={"cursor": page.next_cursor})
