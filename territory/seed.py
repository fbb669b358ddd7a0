"""Demo territory model over the demo reference data (``directory/seed.py``), created active.

Five levels: worldwide -> region -> country -> segment (named enterprise accounts, a program or a
partner) -> product line. CAMs sit on countries and on a few deeper nodes; regions carry only their
channel sales manager and the root the director, so a lead on a node without a CAM walks up to the
country's CAM (e.g. ``JP-SEC`` is owned by cam-jp-security under ``JP`` owned by cam-jp).

Idempotent: nothing happens when a model with the demo name exists. The model is activated only when
no other model is active, so an admin's own active model is never replaced.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.database import Database
from directory.enums import CustomerSize
from directory.models import Customer
from territory import repository as repo
from territory.dimensions import Dimension
from territory.models import ModelStatus, TerritoryModel
from territory.tree import Coverage, TeamMember, TerritoryDef, check_tree

DEMO_MODEL_NAME = "Demo: worldwide channel territories"

CAM = "channel_account_manager"
MANAGER = "channel_sales_manager"
DIRECTOR = "channel_sales_director"
REP = "sales_rep"

G, C, P, R, PA = (
    Dimension.GEOGRAPHY,
    Dimension.CUSTOMER,
    Dimension.PRODUCT,
    Dimension.PROGRAM,
    Dimension.PARTNER,
)


def _t(
    key: str,
    parent: str | None,
    name: str,
    type_: str,
    team: list[tuple[str, str]] | None = None,
    for_partner: str | None = None,
    **coverage: Coverage,
) -> TerritoryDef:
    return TerritoryDef(
        key,
        parent,
        name,
        type_,
        tuple(TeamMember(u, r) for u, r in team or ()),
        for_partner,
        {Dimension(d): c for d, c in coverage.items()},
    )


def _named_accounts(session: Session, country: str, limit: int = 4) -> list[str]:
    """Top-level enterprise accounts headquartered in ``country`` (subsidiaries follow by hierarchy)."""
    rows = session.scalars(
        select(Customer.key)
        .where(
            Customer.parent_id.is_(None),
            Customer.size == CustomerSize.ENTERPRISE,
            Customer.country == country,
        )
        .order_by(Customer.key)
        .limit(limit)
    )
    return list(rows)


def demo_defs(session: Session) -> list[TerritoryDef]:
    """The demo tree over whatever demo reference data is stored."""
    inc = Coverage.of
    defs = [
        _t("WW", None, "Worldwide", "global", [("dir-global", DIRECTOR)]),
        # Americas
        _t("AMER", "WW", "Americas", "region", [("mgr-amer", MANAGER)], geography=inc(["AMER"])),
        _t(
            "US",
            "AMER",
            "United States",
            "country",
            [("cam-us", CAM), ("rep-us", REP)],
            geography=inc(["US"]),
        ),
        _t("US-REFERRAL", "US", "US referral partners", "program", program=inc(["referral"])),
        _t(
            "US-REFERRAL-FABRIKAM",
            "US-REFERRAL",
            "Fabrikam (referral)",
            "partner",
            for_partner="fabrikam",
            partner=inc(["fabrikam"]),
        ),
        _t(
            "AMER-OTHER",
            "AMER",
            "Canada and Brazil",
            "country",
            [("cam-us", CAM)],
            geography=inc(["CA", "BR"]),
        ),
        # EMEA
        _t(
            "EMEA",
            "WW",
            "Europe, Middle East, Africa",
            "region",
            [("mgr-emea", MANAGER)],
            geography=inc(["EMEA"]),
        ),
        _t("DE", "EMEA", "Germany", "country", [("cam-de", CAM)], geography=inc(["DE"])),
        _t("DE-COSELL", "DE", "Germany co-sell", "program", program=inc(["co-sell"])),
        _t("DE-COSELL-CLOUD", "DE-COSELL", "Germany co-sell cloud", "product_line", product=inc(["cloud"])),
        _t("FR", "EMEA", "France", "country", [("cam-de", CAM)], geography=inc(["FR"])),
        _t("GB", "EMEA", "United Kingdom", "country", [("cam-gb", CAM)], geography=inc(["GB"])),
        _t("GB-RESELL", "GB", "UK resale", "program", program=inc(["resell"])),
        _t(
            "GB-RESELL-NETWORKING",
            "GB-RESELL",
            "UK resale networking",
            "product_line",
            product=inc(["networking"]),
        ),
        # APAC
        _t("APAC", "WW", "Asia Pacific", "region", [("mgr-apac", MANAGER)], geography=inc(["APAC"])),
        _t("JP", "APAC", "Japan", "country", [("cam-jp", CAM)], geography=inc(["JP"])),
        _t(
            "JP-SEC",
            "JP",
            "Japan security",
            "product_line",
            [("cam-jp-security", CAM)],
            product=inc(["security"]),
        ),
        _t("JP-SEC-RESELL", "JP-SEC", "Japan security resale", "program", program=inc(["resell"])),
        _t(
            "JP-SEC-RESELL-IDENTITY",
            "JP-SEC-RESELL",
            "Japan security resale, identity (not edge)",
            "product_line",
            product=inc(["identity"], ["id-edge"]),
        ),
        _t(
            "JP-NORTHWIND",
            "JP",
            "Northwind (reseller)",
            "partner",
            for_partner="northwind",
            partner=inc(["northwind"]),
        ),
        _t(
            "APAC-OTHER",
            "APAC",
            "Australia and India",
            "country",
            [("cam-jp", CAM)],
            geography=inc(["AU", "IN"]),
        ),
    ]
    # Named enterprise accounts per country: a segment level with a product line beneath it.
    for country, parent, product in (
        ("US", "US", "security"),
        ("JP", "JP", "networking"),
        ("DE", "DE", "security"),
    ):
        accounts = _named_accounts(session, country)
        if not accounts:
            continue
        seg = f"{country}-ENT"
        defs.append(
            _t(seg, parent, f"{country} enterprise named accounts", "segment", customer=inc(accounts))
        )
        defs.append(
            _t(
                f"{seg}-{product[:3].upper()}",
                seg,
                f"{country} enterprise {product}",
                "product_line",
                product=inc([product]),
            )
        )
    return _inherit_coverage(defs)


def _inherit_coverage(defs: list[TerritoryDef]) -> list[TerritoryDef]:
    """Give each child its parent's coverage plus its own narrowing (coverage is per territory, not
    inherited; a child that dropped a restriction would cover more than its parent)."""
    done: dict[str, TerritoryDef] = {}
    for d in defs:  # parents are listed before their children
        parent = done.get(d.parent_key) if d.parent_key else None
        coverage = {**parent.coverage, **d.coverage} if parent else dict(d.coverage)
        done[d.key] = replace(d, coverage=coverage)
    return list(done.values())


def seed_territories(db: Database) -> str:
    """Create the demo model (active unless another model is); return a one-line summary."""
    with db.transaction() as session:
        existing = session.scalar(select(TerritoryModel).where(TerritoryModel.name == DEMO_MODEL_NAME))
        if existing is not None:
            return f"territory model {existing.id} ({existing.status}) already present"
        defs = demo_defs(session)
        check_tree(defs, repo.load_dimensions(session))  # the demo must be a valid tree
        model = TerritoryModel(name=DEMO_MODEL_NAME, status=ModelStatus.PLANNING)
        session.add(model)
        session.flush()
        for d in defs:
            repo.add_territory(session, model, d)
        session.flush()
        audit.record(
            session, None, "territory_model", model.id, "created", details={"territories": len(defs)}
        )
        active = session.scalar(select(TerritoryModel.id).where(TerritoryModel.status == ModelStatus.ACTIVE))
        if active is None:
            model.status = ModelStatus.ACTIVE
            model.activated_at = utcnow()
            session.flush()
            audit.record(session, None, "territory_model", model.id, "activated")
        return f"territory model {model.id} ({model.status}): {len(defs)} territories"
