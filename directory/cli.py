"""``prm admin``, ``prm keys`` and ``prm import``: bootstrap and bulk reference data."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from common.database import Database
from common.errors import MAX_LISTED_PROBLEMS, PrmError, ValidationFailed
from common.textfile import utf8_problem
from directory import bootstrap, importer


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _fail(exc: PrmError) -> None:
    """One readable line per problem, then a non-zero exit."""
    if isinstance(exc, ValidationFailed):
        for problem in exc.errors[:MAX_LISTED_PROBLEMS]:
            click.echo(f"{problem.pointer}: {problem.message}", err=True)
        if len(exc.errors) > MAX_LISTED_PROBLEMS:
            click.echo(f"... and {len(exc.errors) - MAX_LISTED_PROBLEMS} more problems", err=True)
    raise click.ClickException(exc.detail)


def _read_csv(file: Path) -> str:
    """The file's text; a file that is not UTF-8 is one readable error, not a traceback."""
    raw = file.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = utf8_problem(raw, exc, str(file))
        raise click.ClickException(f"{problem.pointer}: {problem.message}") from None


@click.group("admin")
def admin_group() -> None:
    """Administrators."""


@admin_group.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--key", "user_key", required=True, help="the user's key (login name)")
@click.option("--brand", default="brand-owner", show_default=True, help="key of the brand owner organization")
@with_appcontext
def create_admin(email: str, name: str, user_key: str, brand: str) -> None:
    """Create the first admin (and the brand owner organization if missing); prints an API key once."""
    try:
        key = bootstrap.create_admin(_db(), email=email, name=name, user_key=user_key, brand_key=brand)
    except PrmError as exc:
        _fail(exc)
    click.echo(key)


@click.group("keys")
def keys_group() -> None:
    """API keys."""


@keys_group.command("mint")
@click.argument("user_key")
@click.option("--name", default="cli", show_default=True)
@with_appcontext
def mint(user_key: str, name: str) -> None:
    """Mint an API key for USER_KEY and print it (shown once)."""
    try:
        click.echo(bootstrap.mint_for(_db(), user_key, name))
    except PrmError as exc:
        _fail(exc)


@keys_group.command("revoke")
@click.argument("public_id")
@with_appcontext
def revoke(public_id: str) -> None:
    """Revoke the key whose public id (the part after 'prm_') is PUBLIC_ID."""
    try:
        bootstrap.revoke(_db(), public_id)
    except PrmError as exc:
        _fail(exc)
    click.echo(f"revoked {public_id}")


@click.group("import")
def import_group() -> None:
    """Bulk-import reference data from CSV (all rows or none)."""


@import_group.command("customers")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_customers(file: Path) -> None:
    """Import customers: key,name,parent_key,country,region,industry,size."""
    try:
        report = importer.import_customers(_db(), None, str(file), _read_csv(file))
    except PrmError as exc:
        _fail(exc)
    click.echo(f"{file}: {report.created} created, {report.updated} updated")


@import_group.command("products")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_products(file: Path) -> None:
    """Import products: key,name,level,parent_key."""
    try:
        report = importer.import_products(_db(), None, str(file), _read_csv(file))
    except PrmError as exc:
        _fail(exc)
    click.echo(f"{file}: {report.created} created, {report.updated} updated")


commands = [admin_group, keys_group, import_group]
