"""Every example in a docstring of ours runs and prints what it says: an example that no longer holds
misleads the next reader more than none at all."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGES = ("common", "directory", "territory", "rules", "registration", "transfer")


def _modules_with_examples() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>>" in path.read_text(encoding="utf-8"):
                found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


MODULES = _modules_with_examples()


def test_the_examples_are_found():
    assert len(MODULES) >= 10, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_of_a_module_hold(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted, f"{name} has '>>>' but no example doctest can run"
    assert result.failed == 0, (
        f"{result.failed} example(s) of {name} failed (run pytest --doctest-modules {name.replace('.', '/')}.py)"
    )
