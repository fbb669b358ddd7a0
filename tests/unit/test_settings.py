"""Settings read from the environment: where the demo keys go, the transfer deliverer's defaults."""

from __future__ import annotations

import pytest

from common.settings import Settings, demo_keys_file_for


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/prm.sqlite3", "var/demo-keys.txt"),
        ("sqlite:///var/partner.sqlite3", "var/partner-demo-keys.txt"),
        ("sqlite:////srv/prm/brand.db", "/srv/prm/brand-demo-keys.txt"),
        ("sqlite://", "var/demo-keys.txt"),
        ("postgresql+psycopg://prm@127.0.0.1/prm_brand", "var/demo-keys-127.0.0.1-prm_brand.txt"),
        ("postgresql+psycopg://prm@127.0.0.1/prm_partner", "var/demo-keys-127.0.0.1-prm_partner.txt"),
    ],
)
def test_the_demo_keys_file_follows_the_database(url, expected):
    assert demo_keys_file_for(url) == expected
    assert Settings.from_env({"PRM_DATABASE_URL": url}).demo_keys_file == expected


def test_the_demo_keys_file_setting_wins():
    env = {"PRM_DATABASE_URL": "sqlite:///var/b.sqlite3", "PRM_DEMO_KEYS_FILE": "/tmp/k.txt"}
    assert Settings.from_env(env).demo_keys_file == "/tmp/k.txt"


def test_transfer_delivery_defaults_heal_quickly_and_are_configurable():
    default = Settings.from_env({})
    assert default.transfer_retry_base_seconds == 2.0 and default.transfer_retry_cap_seconds == 300.0
    assert default.transfer_concurrency == 8 and default.transfer_max_attempts == 20
    tuned = Settings.from_env(
        {
            "PRM_TRANSFER_RETRY_BASE": "0.5",
            "PRM_TRANSFER_RETRY_CAP": "60",
            "PRM_TRANSFER_MAX_ATTEMPTS": "5",
            "PRM_TRANSFER_CONCURRENCY": "3",
        }
    )
    assert (tuned.transfer_retry_base_seconds, tuned.transfer_retry_cap_seconds) == (0.5, 60.0)
    assert (tuned.transfer_max_attempts, tuned.transfer_concurrency) == (5, 3)
