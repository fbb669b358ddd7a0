"""The application factory and the ``prm`` command line; nothing else lives here.

``create_app()`` wires settings, database, error handling, authentication, strict JSON and the API
blueprints. ``prm`` (also ``flask --app server``) carries the admin commands of every package and
``prm demo seed``, which loads the demo data of every layer (``demo.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask import current_app, request
from flask.cli import FlaskGroup, with_appcontext
from flask_openapi3.models.info import Info

from common import jsonbody, observability, pages
from common.auth import authenticate_request
from common.cli import commands as common_commands
from common.database import Database
from common.http import check_request_size, install_id_converter, validation_error_response
from common.openapi import PrmOpenAPI, view_operation_id
from common.problems import register_error_handlers
from common.serving import WARM_UP, run_command, serve_command
from common.settings import Settings
from demo import seed_demo
from directory.api import api as directory_api
from directory.cli import commands as directory_commands
from directory.pages import pages as directory_pages
from directory.services.users import principal_for_key
from registration.acceptance.api import api as acceptance_api
from registration.approval.api import api as approval_api
from registration.duplicates.api import api as duplicates_api
from registration.expiry.cli import commands as registration_commands
from registration.extensions.api import api as extension_api
from registration.leads.api import api as registration_api
from registration.notifications.cli import commands as notification_commands
from registration.opportunities.api import api as opportunity_api
from registration.opportunities.conversion_service import OpportunityCreated
from registration.opportunities.service import OpportunityChanged
from registration.reassignment.api import api as reassignment_api
from registration.reassignment.cli import commands as reassignment_commands
from rules.api import api as rules_api
from rules.cli import rules_cli
from rules.decision_api import api as decisions_api
from rules.service import warm_up as warm_rules
from territory.api import api as territory_api
from territory.cli import commands as territory_commands
from territory.pages import pages as territory_pages
from territory.repository import active_snapshot
from transfer import service as transfer_service
from transfer.api import api as transfer_api
from transfer.cli import commands as transfer_commands
from transfer.inbound_api import api as transfer_inbound_api

API_TITLE = "Partner assignment and approval service"


@click.group("demo")
def demo_group() -> None:
    """Demo data."""


@demo_group.command("seed")
@click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Default: PRM_DEMO_KEYS_FILE, else beside the database (var/demo-keys.txt for the default one).",
)
@with_appcontext
def seed_demo_command(keys_file: Path | None) -> None:
    """Load the demo data (idempotent) and write one API key per demo user to --keys-file."""
    settings: Settings = current_app.extensions["prm.settings"]
    keys_file = keys_file or Path(settings.demo_keys_file)
    for line in seed_demo(current_app.extensions["prm.db"], keys_file):
        click.echo(line)


def create_app(settings: Settings | None = None, **config: Any) -> PrmOpenAPI:
    """Build the WSGI app; connects to nothing until the first request or command."""
    settings = settings or Settings.from_env()
    app = PrmOpenAPI(
        __name__,
        info=Info(title=API_TITLE, version="1.0.0"),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer", "description": "prm_... API key"}},
        validation_error_status=422,
        validation_error_callback=validation_error_response,
        operation_id_callback=view_operation_id,
        doc_prefix="/docs",
        doc_url="/openapi.json",
    )
    install_id_converter(app)
    # the largest body any endpoint takes (the imports'); each endpoint's own limit is checked in _guard
    app.config.update(MAX_CONTENT_LENGTH=max(settings.max_body_bytes, settings.max_import_bytes), **config)
    app.extensions["prm.settings"] = settings
    db = Database(settings.database_url)
    app.extensions["prm.db"] = db
    # An approval that creates an opportunity may queue its transfer (registration cannot import transfer).
    on_opportunity_created: OpportunityCreated = transfer_service.on_opportunity_created
    app.extensions["prm.on_opportunity_created"] = on_opportunity_created
    # ... and a change through the opportunities API may queue its update to the partner's CRM.
    on_opportunity_changed: OpportunityChanged = transfer_service.on_opportunity_changed
    app.extensions["prm.on_opportunity_changed"] = on_opportunity_changed

    observability.configure_logging(settings.log_json)
    observability.init_app(app, db, request_log=settings.request_log)
    register_error_handlers(app)
    pages.init_app(app, settings)
    jsonbody.install(app, settings.max_json_depth)

    def principal_loader(public_id: str, secret: str) -> Any:
        return principal_for_key(db, public_id, secret)

    @app.before_request
    def _guard() -> None:
        check_request_size(settings.max_url_bytes, settings.max_header_bytes)
        authenticate_request(principal_loader)
        jsonbody.check_request_body(
            request,
            max_bytes=settings.max_body_bytes,
            max_depth=settings.max_json_depth,
            max_import_bytes=settings.max_import_bytes,
        )

    app.register_api(directory_api)
    app.register_api(rules_api)
    app.register_api(territory_api)
    app.register_api(decisions_api)
    app.register_api(registration_api)
    app.register_api(approval_api)
    app.register_api(opportunity_api)
    app.register_api(duplicates_api)
    app.register_api(acceptance_api)
    app.register_api(reassignment_api)
    app.register_api(extension_api)
    app.register_api(transfer_api)
    app.register_api(transfer_inbound_api)
    app.register_blueprint(directory_pages)
    app.register_blueprint(territory_pages)
    for group in (
        *common_commands,
        *directory_commands,
        *territory_commands,
        *notification_commands,
        *registration_commands,
        *reassignment_commands,
        *transfer_commands,
        demo_group,
    ):
        app.cli.add_command(group)
    app.cli.add_command(rules_cli)

    def warm_up() -> None:
        """Load the active rulesets into this process's rules engine and build the active snapshot."""
        warm_rules(db)
        active_snapshot(db)

    app.extensions[WARM_UP] = warm_up
    return app


@click.group(cls=FlaskGroup, create_app=create_app, add_version_option=False)
def cli() -> None:
    """prm: administer the partner assignment and approval service."""


# Flask's own ``run`` uses Werkzeug's default handler, which answers 414/431/400 in HTML.
cli.add_command(run_command)
cli.add_command(serve_command)
