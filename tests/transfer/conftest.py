"""The two instances most transfer tests need: the brand owner's demo data on the test's database, and a
partner instance of its own (``pair_support``). A test module that needs them otherwise defines its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.leads_support import Demo, load_demo
from tests.transfer.pair_support import Partner, partner_instance


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    brand = tmp_path / "brand"
    brand.mkdir()
    return load_demo(db, brand)


@pytest.fixture
def partner(settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Partner]:
    with partner_instance(settings, tmp_path, request) as instance:
        yield instance
