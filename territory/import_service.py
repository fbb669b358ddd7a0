"""Replace a planning model's content with three CSV files (territories, coverage, team)."""

from __future__ import annotations

from common import audit
from common.database import Database
from common.principal import Principal
from territory import csv_import
from territory import repository as repo
from territory import schemas as s
from territory.planning_service import ENTITY, check_defs, editable_model, touch_model, warning_out


def import_model(
    db: Database,
    principal: Principal | None,
    model_id: int,
    if_match: str | None,
    files: csv_import.ModelFiles,
) -> s.ModelImportReport:
    """Replace a planning model's content with three CSV files, all rows checked before anything is written."""
    with db.transaction() as session:
        model = editable_model(session, model_id, if_match)
        dims = repo.load_dimensions(session, model=model)
        defs = csv_import.parse_model(files, dims, repo.internal_users(session))
        warnings = check_defs(
            session, model, defs
        )  # the same checks as every other change (reports by territory)
        repo.replace_content(session, model, defs)
        touch_model(model)
        session.flush()
        report = s.ModelImportReport(
            model_id=model.id,
            territories=len(defs),
            coverage_rows=sum(len(c.include) + len(c.exclude) for d in defs for c in d.coverage.values()),
            members=sum(len(d.team) for d in defs),
            model_version=model.version,
            warnings=[warning_out(w) for w in warnings],
        )
        audit.record(
            session,
            principal,
            ENTITY,
            model.id,
            "imported",
            details={**report.model_dump(mode="json", exclude={"warnings"}), "files": list(files.names)},
        )
        return report
