"""The demo data ``prm demo seed`` loads: each package seeds its own part (``directory/seed.py``,
``territory/seed.py``, ``rules/seed.py``), lowest layer first, since each part builds on the ones below.
Idempotent: a second run changes nothing and keeps the working API keys."""

from __future__ import annotations

from pathlib import Path

from common.database import Database
from directory import seed as directory_seed
from rules import seed as rules_seed
from territory import seed as territory_seed


def seed_demo(db: Database, keys_file: Path) -> list[str]:
    """Load the demo organizations, users, customers and products (one API key per demo user written to
    `keys_file`), the demo territory model and the demo rulesets; return one summary line per part."""
    return [
        directory_seed.seed(db, keys_file),
        territory_seed.seed_territories(db),
        rules_seed.seed_rulesets(db),
    ]
