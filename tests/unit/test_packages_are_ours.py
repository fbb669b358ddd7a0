"""PyPI has packages called ``rules``, ``territory``, ``common``, ``demo``...: ours must be the ones imported."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
OUR_PACKAGES = ["rules", "territory", "registration", "transfer", "common", "directory"]
OUR_MODULES = ["server", "demo"]


@pytest.mark.parametrize("name", OUR_PACKAGES)
def test_package_is_imported_from_this_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None, f"{name} is a namespace package, not ours"
    location = Path(module.__file__).resolve()
    assert location.is_relative_to(REPO_ROOT), f"{name} comes from {location}, not from {REPO_ROOT}"
    assert location == REPO_ROOT / name / "__init__.py"


@pytest.mark.parametrize("name", OUR_MODULES)
def test_top_level_module_is_imported_from_this_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve() == REPO_ROOT / f"{name}.py"
