"""``registration/`` is a house of rooms: one sub-package per concept, no module loose at its top, and no
module named with a concept's prefix (``approval_service.py``) where a folder should say it."""

from __future__ import annotations

from pathlib import Path

REGISTRATION = Path(__file__).resolve().parents[3] / "registration"


def _concepts() -> list[Path]:
    return sorted(p for p in REGISTRATION.iterdir() if p.is_dir() and p.name != "__pycache__")


def _prefixes(concept: str) -> set[str]:
    """The names a module would start with if it belonged to `concept` (``opportunities``: also
    ``opportunity``; ``leads``: also ``lead``)."""
    names = {concept, concept.removesuffix("s")}
    if concept.endswith("ies"):
        names.add(concept.removesuffix("ies") + "y")
    return names


def test_registration_holds_only_sub_packages():
    loose = sorted(p.name for p in REGISTRATION.glob("*.py") if p.name != "__init__.py")
    assert not loose, f"modules loose in registration/ (give each a sub-package): {loose}"
    missing = [p.name for p in _concepts() if not (p / "__init__.py").is_file()]
    assert not missing, f"sub-packages without __init__.py: {missing}"


def test_no_module_is_named_with_a_concept_prefix():
    prefixes = {name for concept in _concepts() for name in _prefixes(concept.name)}
    named = sorted(
        str(module.relative_to(REGISTRATION))
        for concept in _concepts()
        for module in concept.glob("*.py")
        if module.stem.partition("_")[0] in prefixes and "_" in module.stem
    )
    assert not named, f"a concept's prefix standing in for its folder: {named}"
