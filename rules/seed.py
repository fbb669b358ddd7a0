"""Demo rulesets (rules/demo/*.yaml): uploaded and activated by ``prm demo seed``; idempotent, because the
same content is the same stored version."""

from __future__ import annotations

from pathlib import Path

from common.database import Database
from rules import service
from rules.schemas import RulesetUpload

DEMO = Path(__file__).resolve().parent / "demo"
KINDS = ("assignment", "approval", "policy")


def seed_rulesets(db: Database) -> str:
    """Upload and activate the demo rulesets; return a one-line summary."""
    activated = []
    for kind in KINDS:
        path = DEMO / f"{kind}.yaml"
        out, _created = service.upload_ruleset(
            db,
            None,
            RulesetUpload(name=f"demo/{path.name}", source=path.read_text(encoding="utf-8"), kind=kind),
        )
        if out.status != "active":
            service.activate_ruleset(db, None, out.id, None, require_if_match=False)
            activated.append(kind)
    return f"demo rulesets active ({', '.join(activated) or 'unchanged'})"
