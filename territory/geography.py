"""The geography dimension: world -> region -> country (ISO 3166-1 alpha-2) -> subdivisions (ISO 3166-2,
every level), with names, from the ``pycountry`` package.

Regions are a layer above the countries that admins may edit per territory model (see
``territory.members``); ``DEFAULT_REGIONS`` places every country in AMER, EMEA or APAC to start with.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pycountry

WORLD = "WORLD"

#: Countries of the Americas and of Asia-Pacific; every other country starts in EMEA.
_AMER = frozenset(
    [
        "AG",
        "AI",
        "AR",
        "AW",
        "BB",
        "BL",
        "BM",
        "BO",
        "BQ",
        "BR",
        "BS",
        "BV",
        "BZ",
        "CA",
        "CL",
        "CO",
        "CR",
        "CU",
        "CW",
        "DM",
        "DO",
        "EC",
        "FK",
        "GD",
        "GF",
        "GL",
        "GP",
        "GS",
        "GT",
        "GY",
        "HN",
        "HT",
        "JM",
        "KN",
        "KY",
        "LC",
        "MF",
        "MQ",
        "MS",
        "MX",
        "NI",
        "PA",
        "PE",
        "PM",
        "PR",
        "PY",
        "SR",
        "SV",
        "SX",
        "TC",
        "TT",
        "UM",
        "US",
        "UY",
        "VC",
        "VE",
        "VG",
        "VI",
    ]
)
_APAC = frozenset(
    [
        "AF",
        "AS",
        "AU",
        "BD",
        "BN",
        "BT",
        "CC",
        "CK",
        "CN",
        "CX",
        "FJ",
        "FM",
        "GU",
        "HK",
        "HM",
        "ID",
        "IN",
        "IO",
        "JP",
        "KG",
        "KH",
        "KI",
        "KP",
        "KR",
        "KZ",
        "LA",
        "LK",
        "MH",
        "MM",
        "MN",
        "MO",
        "MP",
        "MV",
        "MY",
        "NC",
        "NF",
        "NP",
        "NR",
        "NU",
        "NZ",
        "PF",
        "PG",
        "PH",
        "PK",
        "PN",
        "PW",
        "SB",
        "SG",
        "TH",
        "TJ",
        "TK",
        "TL",
        "TM",
        "TO",
        "TV",
        "TW",
        "UZ",
        "VN",
        "VU",
        "WF",
        "WS",
    ]
)
REGION_NAMES: dict[str, str] = {
    "AMER": "Americas",
    "EMEA": "Europe, Middle East and Africa",
    "APAC": "Asia-Pacific",
}


@dataclass(frozen=True)
class GeoMember:
    """One member of the built-in geography: its key, its parent, its name and what it is."""

    key: str
    parent: str | None
    name: str
    kind: str  # "world", "region", "country" or the ISO 3166-2 subdivision type ("State", "Province"...)


def default_region(country: str) -> str:
    """The region a country starts in.

    >>> default_region("BR"), default_region("DE"), default_region("JP")
    ('AMER', 'EMEA', 'APAC')
    """
    if country in _AMER:
        return "AMER"
    if country in _APAC:
        return "APAC"
    return "EMEA"


@cache
def iso_members() -> tuple[GeoMember, ...]:
    """The whole built-in geography, parents before children (computed once per process)."""
    out = [GeoMember(WORLD, None, "World", "world")]
    out += [GeoMember(r, WORLD, n, "region") for r, n in REGION_NAMES.items()]
    countries = sorted(pycountry.countries, key=lambda c: c.alpha_2)
    out += [GeoMember(c.alpha_2, default_region(c.alpha_2), c.name, "country") for c in countries]
    subdivisions = {s.code: s for s in pycountry.subdivisions}
    placed: set[str] = set()

    def place(code: str) -> None:
        if code in placed:
            return
        s = subdivisions[code]
        parent = s.parent_code if s.parent_code in subdivisions else s.country_code
        if parent != s.country_code:
            place(parent)
        out.append(GeoMember(code, parent, s.name, s.type))
        placed.add(code)

    for code in sorted(subdivisions):
        place(code)
    return tuple(out)


@cache
def geography_parents() -> dict[str, str | None]:
    """Member -> parent for the built-in geography hierarchy (do not mutate: shared).

    >>> geography_parents()["JP"], geography_parents()["FR-69"], geography_parents()["FR-ARA"]
    ('APAC', 'FR-ARA', 'FR')
    """
    return {m.key: m.parent for m in iso_members()}


@cache
def geography_names() -> dict[str, str]:
    """Member -> name for the built-in geography (do not mutate: shared).

    >>> geography_names()["FR-ARA"]
    'Auvergne-Rhône-Alpes'
    """
    return {m.key: m.name for m in iso_members()}


@cache
def countries() -> frozenset[str]:
    """Every ISO 3166-1 alpha-2 code."""
    return frozenset(m.key for m in iso_members() if m.kind == "country")


def region_of(country: str) -> str | None:
    """The default region of a country, or None when it is not an ISO 3166-1 code."""
    return default_region(country) if country in countries() else None
