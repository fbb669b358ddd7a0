"""Two instances seeded from one checkout (the same working directory, different databases) keep their
own demo keys: the keys file follows the database unless PRM_DEMO_KEYS_FILE says otherwise."""

from __future__ import annotations

from pathlib import Path

from common.database import Database
from common.principal import split_key
from directory.services.users import principal_for_key
from tests.integration.test_cli import ok, prm


def _keys(path: Path) -> dict[str, str]:
    return dict(line.split() for line in path.read_text().splitlines())


def test_two_databases_seeded_from_one_directory_keep_their_own_keys(tmp_path):
    brand, partner = (f"sqlite:///{tmp_path / 'var' / name}.sqlite3" for name in ("brand", "partner"))
    for url in (brand, partner):
        ok(prm(url, tmp_path, "db", "upgrade"))
        out = ok(prm(url, tmp_path, "demo", "seed"))
        assert "-demo-keys.txt" in out
    brand_keys = _keys(tmp_path / "var" / "brand-demo-keys.txt")
    partner_keys = _keys(tmp_path / "var" / "partner-demo-keys.txt")
    assert brand_keys["admin"] != partner_keys["admin"]
    for url, keys in ((brand, brand_keys), (partner, partner_keys)):
        db = Database(url)
        try:
            parts = split_key(keys["admin"])
            assert parts is not None and principal_for_key(db, *parts) is not None, url
        finally:
            db.dispose()
    # seeding the brand again keeps its keys (and does not touch the partner's)
    ok(prm(brand, tmp_path, "demo", "seed"))
    assert _keys(tmp_path / "var" / "brand-demo-keys.txt") == brand_keys
    assert _keys(tmp_path / "var" / "partner-demo-keys.txt") == partner_keys
