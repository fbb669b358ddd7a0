"""PyPI has packages called ``rules``, ``territory``, ``common``...: ours must be the ones imported."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
OUR_PACKAGES = ["rules", "territory", "registration", "transfer", "common", "directory"]


@pytest.mark.parametrize("name", OUR_PACKAGES)
def test_package_is_imported_from_this_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None, f"{name} is a namespace package, not ours"
    location = Path(module.__file__).resolve()
    assert location.is_relative_to(REPO_ROOT), f"{name} comes from {location}, not from {REPO_ROOT}"
    assert location == REPO_ROOT / name / "__init__.py"
