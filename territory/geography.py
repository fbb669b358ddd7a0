"""The geography dimension: world -> region -> country (ISO 3166-1 alpha-2), built in."""

from __future__ import annotations

WORLD = "WORLD"

REGIONS: dict[str, tuple[str, ...]] = {
    "AMER": ("US", "CA", "MX", "BR", "AR", "CL", "CO"),
    "EMEA": ("GB", "DE", "FR", "IT", "ES", "NL", "SE", "CH", "PL", "AE", "SA", "ZA"),
    "APAC": ("JP", "CN", "KR", "IN", "AU", "NZ", "SG", "ID", "TH", "VN", "PH", "MY"),
}


def geography_parents() -> dict[str, str | None]:
    """Member -> parent for the geography hierarchy.

    >>> geography_parents()["JP"]
    'APAC'
    """
    parents: dict[str, str | None] = {WORLD: None}
    for region, countries in REGIONS.items():
        parents[region] = WORLD
        parents.update(dict.fromkeys(countries, region))
    return parents


def region_of(country: str) -> str | None:
    """The region a country belongs to, or None when it is not in the built-in list."""
    parent = geography_parents().get(country)
    return parent if parent != WORLD else None
