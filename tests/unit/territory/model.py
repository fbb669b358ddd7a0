"""A small hand-built territory model shared by the unit tests."""

from __future__ import annotations

from territory.dimensions import Dimension, MemberHierarchy
from territory.tree import CHANNEL_ACCOUNT_MANAGER, Coverage, TeamMember, TerritoryDef

GEO, PRODUCT, PROGRAM, CUSTOMER = (
    Dimension.GEOGRAPHY,
    Dimension.PRODUCT,
    Dimension.PROGRAM,
    Dimension.CUSTOMER,
)


def dimensions() -> dict[Dimension, MemberHierarchy]:
    return {
        GEO: MemberHierarchy(
            {
                "WORLD": None,
                "EMEA": "WORLD",
                "FR": "EMEA",
                "FR-PARIS": "FR",
                "DE": "EMEA",
                "APAC": "WORLD",
                "JP": "APAC",
            },
            name="geography",
        ),
        PRODUCT: MemberHierarchy(
            {"HW": None, "HW-SRV": "HW", "SRV-1": "HW-SRV", "HW-STO": "HW", "STO-9": "HW-STO", "SW": None},
            name="product",
        ),
        PROGRAM: MemberHierarchy({"gold": None, "silver": None}, name="program"),
        CUSTOMER: MemberHierarchy({"ENT": None, "C-1": "ENT", "C-1-A": "C-1", "SMB": None}, name="customer"),
    }


def cam(user: str) -> TeamMember:
    return TeamMember(user, CHANNEL_ACCOUNT_MANAGER)


def territory(
    key: str,
    parent: str | None,
    team: tuple[TeamMember, ...] = (),
    **coverage: Coverage,
) -> TerritoryDef:
    return TerritoryDef(
        key,
        parent,
        name=key.title(),
        type="channel",
        team=team,
        coverage={Dimension(d): c for d, c in coverage.items()},
    )


def defs() -> list[TerritoryDef]:
    """WW > EU > EU-FR > (EU-FR-GOLD, EU-FR-HW); EU > EU-NOFR; WW > APAC > JP."""
    return [
        territory("WW", None, (TeamMember("dir-1", "channel_sales_director"),)),
        territory("EU", "WW", (cam("cam-eu"),), geography=Coverage.of(["EMEA"])),
        territory(
            "EU-FR", "EU", (TeamMember("csm-fr", "channel_sales_manager"),), geography=Coverage.of(["FR"])
        ),
        territory(
            "EU-FR-HW",
            "EU-FR",
            (cam("cam-z"), cam("cam-a")),
            geography=Coverage.of(["FR"]),
            product=Coverage.of(["HW"], exclude=["HW-STO"]),
        ),
        territory(
            "EU-FR-GOLD",
            "EU-FR",
            (cam("cam-gold"),),
            geography=Coverage.of(["FR"]),
            program=Coverage.of(["gold"]),
        ),
        territory("EU-NOFR", "EU", geography=Coverage.of(["EMEA"], exclude=["FR"])),
        territory("APAC", "WW", geography=Coverage.of(["APAC"])),
        territory("JP", "APAC", geography=Coverage.of(["JP"]), customer=Coverage.of(["ENT"])),
    ]
