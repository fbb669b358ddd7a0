"""Lead services: create (idempotent), read, list, update, notes and history. Each function owns one
transaction, checks who may see what and writes its audit rows in that transaction. Another
organization's lead answers exactly like a missing one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC
from functools import cache
from typing import Any, NamedTuple
from typing import cast as typed

from sqlalchemy import (
    JSON,
    Boolean,
    Integer,
    Numeric,
    Row,
    Select,
    String,
    Table,
    any_,
    bindparam,
    case,
    cast,
    column,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, lazyload, make_transient_to_detached, raiseload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.dml import Insert, ReturningInsert

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database, UtcDateTime, plain_rows
from common.errors import FieldProblem, Forbidden, NotFound, ValidationFailed
from common.pagination import Page, decode_cursor, encode_cursor
from common.principal import Principal
from directory.enums import OrganizationKind
from directory.models import Customer, Organization, PartnerProgram, Product
from directory.services.customers import Visibility, customer_visible
from registration.acceptance.team_service import ensure_accepted, is_offered, offered_to
from registration.leads import schemas as s
from registration.leads.errors import ReadOnly
from registration.leads.lifecycle import LeadStatus, RegistrationStatus, editable
from registration.leads.models import (
    IdempotencyKey,
    Lead,
    LeadActivity,
    LeadContact,
    LeadNote,
    LeadProduct,
    LeadTerritory,
    SalesTeamMember,
)
from registration.opportunities.models import Opportunity

LEAD_OWNER = "lead_owner"


# --- reading ------------------------------------------------------------------------------------------


#: Options that read a lead without its collections (they come as rows: `_references` with teams);
#: touching one of them then is a mistake, so it raises.
_WITHOUT_COLLECTIONS = (raiseload(Lead.products), raiseload(Lead.sales_team), raiseload(Lead.territory_team))


#: Options that read a lead without its collections, loaded on access when nothing set them (a refresh
#: of the lead expires them).
_COLLECTIONS_ON_ACCESS = (lazyload(Lead.products), lazyload(Lead.sales_team), lazyload(Lead.territory_team))


@cache
def _visible_statement(collections: bool) -> Select[Any]:
    """The statement of `visible_lead`'s plain read, built once per ``collections`` (``lead_id`` and
    ``org`` its parameters): building it cost as much as a tenth of reading one lead."""
    org = bindparam("org", type_=Integer())
    stmt = select(Lead, offered_to(Lead.id, org).label("offered")).where(
        Lead.id == bindparam("lead_id", type_=Integer())
    )
    return stmt if collections else stmt.options(*_WITHOUT_COLLECTIONS)


@cache
def _locked_statement() -> Select[Lead]:
    """The locking read of `locked_lead`, built once (``lead_id`` its parameter)."""
    return (
        select(Lead)
        .where(Lead.id == bindparam("lead_id", type_=Integer()))
        .with_for_update()
        .options(*_COLLECTIONS_ON_ACCESS)
    )


def visible_lead(
    session: Session,
    principal: Principal,
    lead_id: int,
    *,
    for_update: bool = False,
    collections: bool = True,
) -> Lead:
    """The lead, if the caller may see it (internal users: all; partners: their organization's and those
    offered to it); another's answers 404 like a missing one.

    A partner's view is decided on one consistent state of the lead and its offers. Read one after the
    other, a partner's accept committing in between shows the lead as neither the partner's own (not yet)
    nor offered to it (no longer: accepting ends the offers), and the partner's own request loses the lead
    it just took. So a plain read takes both in one statement (one snapshot); a locking read looks at
    the offers after the lock, when no other change of the lead can be under way (offers and accepts
    change only under the lead's lock), rather than in the locking statement, whose re-check of a
    concurrently changed row would see the new lead beside the offers of the old snapshot.

    ``collections=False`` (a plain read that only shows the lead): its products and teams are not
    loaded; `_references` with teams reads them as rows, cheaper than three loads of objects.
    """
    org = principal.organization_id
    if for_update:
        locked, _ = locked_lead(session, principal, lead_id)
        return locked
    row = session.execute(_visible_statement(collections), {"lead_id": lead_id, "org": org}).first()
    lead: Lead | None = row[0] if row is not None else None
    offered = bool(row[1]) if row is not None else False
    if lead is None or not (principal.internal or lead.organization_id == org or offered):
        raise NotFound(f"lead {lead_id} not found")
    return lead


class Children(NamedTuple):
    """A lead's contacts and activities, as the API shows them (read with its products and teams)."""

    contacts: list[s.LeadContactOut]
    activities: list[s.LeadActivityOut]


def locked_lead(session: Session, principal: Principal, lead_id: int) -> tuple[Lead, Children]:
    """`visible_lead` locked (``FOR UPDATE``), with its collections and its contacts and activities read
    by one statement of rows after the lock (not three loads of objects): the products and teams become
    the lead's collections as if loaded, so the unit of work changes them as usual; the contacts and
    activities answer the action when it does not change them (`lead_out`'s ``children``)."""
    org = principal.organization_id
    lead = session.scalar(_locked_statement(), {"lead_id": lead_id})
    offered = (
        lead is not None
        and not principal.internal
        and lead.organization_id != org  # its own lead: whether it is offered too does not matter
        and is_offered(session, lead.id, org)
    )
    if lead is None or not (principal.internal or lead.organization_id == org or offered):
        raise NotFound(f"lead {lead_id} not found")
    return lead, _load_collections(session, lead)


def _load_collections(session: Session, lead: Lead) -> Children:
    """Read the lead's products, teams, contacts and activities in one statement; the first three become
    its collections, persistent and unchanged (a collection already loaded in this session stays)."""
    products: list[LeadProduct] = []
    sales_team: list[SalesTeamMember] = []
    territory_team: list[LeadTerritory] = []
    contacts: list[s.LeadContactOut] = []
    activities: list[s.LeadActivityOut] = []
    # plain rows on the session's connection (the lock was just taken: nothing to flush first), not the
    # ORM's execution of a statement of plain rows; the columns unpacked by position. On PostgreSQL as
    # the driver reads them (`plain_rows`: the statement's cache key alone was a sixth of its CPU)
    connection = session.connection()
    statement = _children_statement(True, connection.dialect.name)
    row: Any
    for row in plain_rows(connection, statement, {"lead_ids": [lead.id]}):
        what, _, id_, i, a, b, _, _, flag, _, _, amount = row
        record: LeadProduct | SalesTeamMember | LeadTerritory
        if what == "product":
            record = LeadProduct(
                id=id_, lead_id=lead.id, product_id=i, is_primary=bool(flag), amount=amount, currency=a
            )
            products.append(record)
        elif what == "sales":
            record = SalesTeamMember(id=id_, lead_id=lead.id, user_id=i, role=a, source=b)
            sales_team.append(record)
        elif what == "territory":
            record = LeadTerritory(id=id_, lead_id=lead.id, territory_key=a, territory_model_id=i)
            territory_team.append(record)
        else:
            if what == "contact":
                contacts.append(_contact_out(row))
            else:
                activities.append(_activity_out(row))
            continue
        make_transient_to_detached(record)
        session.add(record)
    loaded = lead.__dict__
    for name, records in (
        ("products", products),
        ("sales_team", sales_team),
        ("territory_team", territory_team),
    ):
        if name not in loaded:
            set_committed_value(lead, name, records)
    return Children(contacts, activities)


def _contact_out(row: Any) -> s.LeadContactOut:
    return s.LeadContactOut(
        id=row.id, name=row.a, email=row.b, phone=row.c, role=row.d, primary=bool(row.flag)
    )


def _activity_out(row: Any) -> s.LeadActivityOut:
    details = row.details or {}
    return s.LeadActivityOut(
        id=row.id,
        kind=row.a,
        subject=row.b,
        # in UTC (`UtcDateTime`) also when the driver read it, in the connection's time zone
        occurred_at=row.at.astimezone(UTC),
        due_date=details.get("due_date"),
        done=details.get("done"),
    )


class _Teams(NamedTuple):
    """The products, sales teams and territory teams of a page's leads, read with their contacts and
    activities (the page's leads are read without their collections)."""

    products: dict[int, list[s.LeadProductOut]]
    sales_team: dict[int, list[s.SalesTeamMemberOut]]
    territory_team: dict[int, list[s.LeadTerritoryOut]]


class _References(NamedTuple):
    """What the leads of a page refer to, read in a few statements (not a few per lead)."""

    programs: dict[int, str]  # program id -> key
    opportunities: dict[int, int]  # lead id -> the opportunity it converted into
    contacts: dict[int, list[s.LeadContactOut]]  # lead id -> its own contacts (a transfer kept as a lead)
    activities: dict[int, list[s.LeadActivityOut]]  # lead id -> its activities
    teams: _Teams | None = None  # None: the leads' own collections are loaded


@cache
def _reference_statements() -> tuple[Select[int, str], Select[int, int]]:
    """The statements of `_references`, built once (``ids`` their parameter): the keys of programs by id,
    the opportunities of converted leads by lead id."""
    ids = bindparam("ids", type_=Integer(), expanding=True)
    return (
        select(PartnerProgram.id, PartnerProgram.key).where(PartnerProgram.id.in_(ids)),
        select(Opportunity.lead_id, Opportunity.id).where(Opportunity.lead_id.in_(ids)),
    )


def _references(
    session: Session,
    leads: Sequence[Lead | Row[Any]],
    *,
    with_teams: bool = False,
    children: Children | None = None,
    programs: Mapping[int, str] | None = None,
) -> _References:
    """The program keys, opportunity ids, contacts and activities of several leads (``with_teams``: also
    their products, sales and territory teams, the leads having been read without them; ``children``:
    the contacts and activities of the one lead, already read; ``programs``: keys of programs already
    read)."""
    keys: dict[int, str] = {}
    for program_id in {lead.program_id for lead in leads if lead.program_id}:
        if programs is not None and program_id in programs:  # read by the action (submitting reads it)
            keys[program_id] = programs[program_id]
            continue
        held = session.identity_map.get(identity_key(PartnerProgram, program_id))
        if isinstance(held, PartnerProgram):  # already read in this transaction
            keys[program_id] = held.key
    unknown = {lead.program_id for lead in leads if lead.program_id and lead.program_id not in keys}
    program_keys, opportunity_ids = _reference_statements()
    if unknown:
        rows = session.execute(program_keys, {"ids": sorted(unknown)})
        keys.update((program_id, key) for program_id, key in rows)
    converted = [lead.id for lead in leads if lead.lead_status == LeadStatus.CONVERTED]
    opportunities: dict[int, int] = (
        dict(session.execute(opportunity_ids, {"ids": converted}).all()) if converted else {}
    )
    if children is not None and not with_teams and len(leads) == 1:
        lead_id = leads[0].id
        return _References(keys, opportunities, {lead_id: children.contacts}, {lead_id: children.activities})
    return _children(session, [lead.id for lead in leads], keys, opportunities, with_teams)


#: The columns every part of `_children_statement` has, with their types (a part leaves out what its
#: table lacks: NULL of that type).
_CHILD_COLUMNS: dict[str, Any] = {
    "i": Integer(),  # an id: product, user, territory model
    "a": String(),
    "b": String(),
    "c": String(),
    "d": String(),
    "flag": Boolean(),
    "at": UtcDateTime(),
    "details": JSON(),
    "amount": Numeric(17, 2),
}


def _child_rows(what: str, model: Any, of_leads: Any, **columns: Any) -> Select[Any]:
    """One part of `_children_statement`: ``model``'s rows of the leads ``lead_ids``, as ``what``."""
    return select(
        literal(what).label("what"),
        model.lead_id.label("lead_id"),
        model.id.label("id"),
        *(columns.get(name, cast(null(), type_)).label(name) for name, type_ in _CHILD_COLUMNS.items()),
    ).where(of_leads(model.lead_id))


@cache
def _children_statement(with_teams: bool, dialect: str) -> Select[Any]:
    """One statement reading the contacts and activities (and the teams) of the leads ``lead_ids``,
    built once per process; its rows are told apart by ``what`` and ordered by id within each.

    On PostgreSQL the ids are one array parameter (``= ANY``): the statement's text is the same for
    every page, so the driver parses it once and the server prepares it; elsewhere an expanding IN.
    """
    if dialect == "postgresql":
        ids = bindparam("lead_ids", type_=postgresql.ARRAY(Integer()))

        def of_leads(column: Any) -> Any:
            return column == any_(ids)
    else:

        def of_leads(column: Any) -> Any:
            return column.in_(bindparam("lead_ids", expanding=True))

    parts = [
        _child_rows(
            "activity",
            LeadActivity,
            of_leads,
            a=LeadActivity.kind,
            b=LeadActivity.subject,
            at=LeadActivity.occurred_at,
            details=LeadActivity.details,
        ),
        _child_rows(
            "contact",
            LeadContact,
            of_leads,
            a=LeadContact.name,
            b=LeadContact.email,
            c=LeadContact.phone,
            d=LeadContact.role,
            flag=LeadContact.is_primary,
        ),
    ]
    if with_teams:
        parts += [
            _child_rows(
                "product",
                LeadProduct,
                of_leads,
                i=LeadProduct.product_id,
                a=LeadProduct.currency,
                flag=LeadProduct.is_primary,
                amount=LeadProduct.amount,
            ),
            _child_rows(
                "sales",
                SalesTeamMember,
                of_leads,
                i=SalesTeamMember.user_id,
                a=SalesTeamMember.role,
                b=SalesTeamMember.source,
            ),
            _child_rows(
                "territory",
                LeadTerritory,
                of_leads,
                i=LeadTerritory.territory_model_id,
                a=LeadTerritory.territory_key,
            ),
        ]
    both = union_all(*parts).subquery()
    return select(both).order_by(both.c.what, both.c.id)


def _children(
    session: Session | Connection,
    lead_ids: Sequence[int],
    programs: dict[int, str],
    opportunities: dict[int, int],
    with_teams: bool,
) -> _References:
    """The contacts and activities (and teams) of several leads, in one statement whatever their number
    (``session``: a connection where nothing is to be flushed first, as on a page)."""
    contacts: dict[int, list[s.LeadContactOut]] = {}
    activities: dict[int, list[s.LeadActivityOut]] = {}
    teams = _Teams({}, {}, {}) if with_teams else None
    dialect = session.dialect.name if isinstance(session, Connection) else session.get_bind().dialect.name
    # all rows at once and the columns unpacked by position: a page has a few per lead (on a page's
    # connection as the driver reads them, `plain_rows`)
    statement, params = _children_statement(with_teams, dialect), {"lead_ids": list(lead_ids)}
    rows: Sequence[Any] = (
        plain_rows(session, statement, params)
        if isinstance(session, Connection)
        else session.execute(statement, params).all()
    )
    for row in rows:
        what, lead_id, _, i, a, b, _, _, flag, _, _, amount = row
        if what == "contact":
            contacts.setdefault(lead_id, []).append(_contact_out(row))
        elif what == "activity":
            activities.setdefault(lead_id, []).append(_activity_out(row))
        elif teams is None:
            continue
        elif what == "product":
            teams.products.setdefault(lead_id, []).append(
                s.LeadProductOut(product_id=i, primary=bool(flag), amount=amount, currency=a)
            )
        elif what == "sales":
            teams.sales_team.setdefault(lead_id, []).append(s.SalesTeamMemberOut(user_id=i, role=a, source=b))
        else:
            teams.territory_team.setdefault(lead_id, []).append(
                s.LeadTerritoryOut(territory=a, territory_model_id=i)
            )
    return _References(programs, opportunities, contacts, activities, teams)


def lead_out(
    session: Session,
    lead: Lead,
    references: _References | None = None,
    *,
    children: Children | None = None,
    programs: Mapping[int, str] | None = None,
) -> s.LeadOut:
    """The lead as the API shows it (``references``: `_references` of a page the lead is on;
    ``children``: its contacts and activities as `locked_lead` read them, when the action kept them;
    ``programs``: program id -> key of programs the action read already)."""
    if references is None:
        references = _references(session, [lead], children=children, programs=programs)
    return _shown(lead, references)


def _shown(lead: Lead, refs: _References) -> s.LeadOut:
    """The lead as the API shows it with its references (a row of a page: `_shown_row`)."""
    programs, opportunities = refs.programs, refs.opportunities
    if refs.teams is not None:
        products = refs.teams.products.get(lead.id, [])
        sales_team = refs.teams.sales_team.get(lead.id, [])
        territory_team = refs.teams.territory_team.get(lead.id, [])
    else:
        products = [
            s.LeadProductOut(
                product_id=p.product_id, primary=p.is_primary, amount=p.amount, currency=p.currency
            )
            for p in lead.products
        ]
        sales_team = [
            s.SalesTeamMemberOut(user_id=m.user_id, role=m.role, source=m.source) for m in lead.sales_team
        ]
        territory_team = [
            s.LeadTerritoryOut(territory=t.territory_key, territory_model_id=t.territory_model_id)
            for t in lead.territory_team
        ]
    return s.LeadOut(
        id=lead.id,
        organization_id=lead.organization_id,
        name=lead.name,
        description=lead.description,
        customer_id=lead.customer_id,
        contact_name=lead.contact_name,
        contact_email=lead.contact_email,
        contact_phone=lead.contact_phone,
        registration_type=s.RegistrationType(lead.registration_type) if lead.registration_type else None,
        partner_type=lead.partner_type,
        program=programs.get(lead.program_id) if lead.program_id else None,
        primary_partner_id=lead.primary_partner_id,
        deal_size=lead.deal_size,
        currency=lead.currency,
        expected_close_date=lead.expected_close_date,
        stage=lead.stage,
        deal_status=s.DealStatus(lead.deal_status) if lead.deal_status else None,
        products=products,
        contacts=refs.contacts.get(lead.id, []),
        activities=refs.activities.get(lead.id, []),
        sales_channel=lead.sales_channel,
        accepted=lead.accepted,
        owner_user_id=lead.owner_user_id,
        created_by=lead.created_by,
        status=RegistrationStatus(lead.status),
        lead_status=LeadStatus(lead.lead_status),
        opportunity_id=opportunities.get(lead.id),
        registration_number=lead.registration_number,
        submitted_at=lead.submitted_at,
        decision_id=lead.decision_id,
        expires_at=lead.expires_at,
        sales_team=sales_team,
        territory_team=territory_team,
        created_at=lead.created_at,
        updated_at=lead.updated_at,
        version=lead.version,
    )


def _shown_row(row: Any, refs: _References) -> s.LeadOut:
    """A row of `_page_statement` as the API shows it: its columns, named as the fields, and its
    references validated in one call (half the CPU of `_shown`'s keywords and enums on a page)."""
    assert refs.teams is not None  # a page reads its teams with the other children
    fields = row._asdict()
    lead_id = fields["id"]
    fields["program"] = fields["program_key"]
    fields["products"] = refs.teams.products.get(lead_id, [])
    fields["sales_team"] = refs.teams.sales_team.get(lead_id, [])
    fields["territory_team"] = refs.teams.territory_team.get(lead_id, [])
    fields["contacts"] = refs.contacts.get(lead_id, [])
    fields["activities"] = refs.activities.get(lead_id, [])
    return s.LeadOut.model_validate(fields)


def get_lead(db: Database, principal: Principal, lead_id: int) -> s.LeadOut:
    with db.read() as session:
        lead = visible_lead(session, principal, lead_id, collections=False)
        return lead_out(session, lead, _references(session, [lead], with_teams=True))


@cache
def _page_statement(internal: bool, by_status: bool) -> Select[Any]:
    """The leads of a page as rows (no ORM objects: a page only shows them), each with its program's key
    and the opportunity it converted into, built once per kind of caller and filter; parameters
    ``after``, ``limit``, and ``org`` (partners) and ``status`` (filtered)."""
    leads = Lead.__table__.c
    program_key = select(PartnerProgram.key).where(PartnerProgram.id == Lead.program_id).scalar_subquery()
    opportunity_id = case(
        (
            Lead.lead_status == LeadStatus.CONVERTED.value,
            select(Opportunity.id).where(Opportunity.lead_id == Lead.id).scalar_subquery(),
        ),
        else_=null(),
    )
    stmt = select(*leads, program_key.label("program_key"), opportunity_id.label("opportunity_id")).where(
        Lead.id > bindparam("after", type_=Integer())
    )
    if not internal:
        org = bindparam("org", type_=Integer())
        stmt = stmt.where(or_(Lead.organization_id == org, offered_to(Lead.id, org)))
    if by_status:
        stmt = stmt.where(Lead.status == bindparam("status", type_=String()))
    return stmt.order_by(Lead.id).limit(bindparam("limit", type_=Integer()))


def list_leads(db: Database, principal: Principal, query: s.LeadListQuery) -> Page[s.LeadOut]:
    """A page of the leads the caller sees, in two statements whatever its size: the leads with their
    program keys and opportunity ids, then their children (products, teams, contacts, activities)."""
    params: dict[str, Any] = {"after": decode_cursor(query.cursor), "limit": query.limit + 1}
    if not principal.internal:
        params["org"] = principal.organization_id
    if query.status is not None:
        params["status"] = query.status.value
    with db.read_rows() as connection:  # plain rows (`plain_rows`): no session, no ORM objects
        rows: Sequence[Any] = plain_rows(
            connection, _page_statement(principal.internal, query.status is not None), params
        )
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        # the rows carry their program keys and opportunity ids (`_shown_row`)
        references = _children(connection, [row.id for row in rows], {}, {}, True)
    return Page[s.LeadOut](
        items=[_shown_row(row, references) for row in rows],
        next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
    )


# --- references in a request body ---------------------------------------------------------------------


class _Partner(NamedTuple):
    """The organization a new lead is for, as `_named` reads it."""

    id: int
    kind: str
    partner_type: str | None
    can_register_leads: bool


class _Customer(NamedTuple):
    """What `customer_visible` needs of the customer a body names."""

    active: bool
    proposed_by_organization_id: int | None


class _Program(NamedTuple):
    """The partner program a body names."""

    id: int
    key: str


class _Named(NamedTuple):
    """What a new lead's body names (and the partner it is for), read by `_named`."""

    partner: _Partner | None
    customer: _Customer | None
    program: _Program | None
    all_products_known: bool


@cache
def _named_statement() -> Select[Any]:
    """The statement of `_named`, built once (``partner_id``, ``customer_id``, ``program`` and
    ``product_ids`` are its parameters): building it cost a tenth of a create. It reads only the
    columns a create looks at, as a plain row (three ORM objects cost a third of a create's service)."""
    wanted = bindparam("product_ids", type_=Integer(), expanding=True)
    products = select(func.count(Product.id)).where(Product.id.in_(wanted)).scalar_subquery()
    one = select(literal(1).label("one")).subquery()
    return (
        select(
            Organization.id,
            Organization.kind,
            Organization.partner_type,
            Organization.can_register_leads,
            Customer.id,
            Customer.active,
            Customer.proposed_by_organization_id,
            PartnerProgram.id,
            PartnerProgram.key,
            products,
        )
        .select_from(one)
        .outerjoin(Organization, Organization.id == bindparam("partner_id", type_=Integer()))
        .outerjoin(Customer, Customer.id == bindparam("customer_id", type_=Integer()))
        .outerjoin(PartnerProgram, PartnerProgram.key == bindparam("program", type_=String()))
    )


def _named(session: Session | Connection, partner_id: int | None, data: s.LeadCreate) -> _Named:
    """The partner organization ``partner_id``, and the customer, program and products the body names, by
    one statement (each left join finds its row or none; the products are counted)."""
    wanted = sorted({item.product_id for item in data.products})
    row = (
        (session.connection() if isinstance(session, Session) else session)
        .execute(
            _named_statement(),
            {
                "partner_id": partner_id,
                "customer_id": data.customer_id,
                "program": data.program,
                "product_ids": wanted,
            },
        )
        .one()
    )
    return _Named(
        _Partner(row[0], row[1], row[2], bool(row[3])) if row[0] is not None else None,
        _Customer(bool(row[5]), row[6]) if row[4] is not None else None,
        _Program(row[7], row[8]) if row[7] is not None else None,
        row[9] == len(wanted),
    )


def _orm(session: Session | Connection) -> Session:
    """The session of a check that reads records one by one (an update's; a create's `_named` read
    them before, on a session or a connection)."""
    assert isinstance(session, Session)
    return session


def _check_references(
    session: Session | Connection,
    principal: Principal,
    data: s.LeadFields,
    products: Sequence[s.LeadProductIn] | None,
    named: _Named | None = None,
) -> _Program | None:
    """Every id and key the body names must exist (all problems reported at once); returns the program
    the body names, if any (``named``: what `_named` read; ``session`` may then be a connection).

    A partner names only its own organization as primary partner: any other id gets that one answer,
    whether it exists or not, so the answer tells nothing about other organizations. A customer the
    caller may not see (another partner's proposal) is named like a missing one.
    """
    problems: list[FieldProblem] = []
    customer: Visibility | None
    if named is not None:
        customer = named.customer
    else:
        customer = _orm(session).get(Customer, data.customer_id) if data.customer_id is not None else None
    if data.customer_id is not None and (customer is None or not customer_visible(principal, customer)):
        problems.append(FieldProblem("/customer_id", f"no customer {data.customer_id}"))
    program = named.program if named is not None else _program(_orm(session), data.program)
    if data.program is not None and program is None:
        problems.append(FieldProblem("/program", f"no partner program {data.program!r}"))
    if not principal.internal:
        if data.primary_partner_id not in (None, principal.organization_id):
            problems.append(FieldProblem("/primary_partner_id", "must be your own organization or left out"))
    elif data.primary_partner_id is not None:
        org = named.partner if named is not None else _orm(session).get(Organization, data.primary_partner_id)
        if org is None or org.kind != OrganizationKind.PARTNER:
            problems.append(
                FieldProblem("/primary_partner_id", f"no partner organization {data.primary_partner_id}")
            )
    wanted = {item.product_id for item in products or ()}
    if named is not None and named.all_products_known:
        known = wanted
    else:
        known = set(session.scalars(select(Product.id).where(Product.id.in_(wanted)))) if wanted else set()
    for i, item in enumerate(products or ()):
        if item.product_id not in known:
            problems.append(FieldProblem(f"/products/{i}/product_id", f"no product {item.product_id}"))
    if problems:
        raise ValidationFailed("The lead names records it cannot refer to", problems)
    return program


def _program(session: Session, key: str | None) -> _Program | None:
    if key is None:
        return None
    row = session.execute(
        select(PartnerProgram.id, PartnerProgram.key).where(PartnerProgram.key == key)
    ).first()
    return _Program(row[0], row[1]) if row is not None else None


def _field_values(changes: dict[str, Any], program: _Program | None) -> dict[str, Any]:
    """Request fields -> column values (the program key becomes the id of ``program``, the one it names)."""
    values = {k: v for k, v in changes.items() if k not in ("products", "program")}
    if "program" in changes:
        values["program_id"] = program.id if program is not None else None
    for name in ("registration_type", "partner_type"):
        if values.get(name) is not None:
            values[name] = str(values[name])
    return values


def _set_products(session: Session, lead: Lead, products: Sequence[s.LeadProductIn]) -> None:
    """Replace the lead's products; two flushes so the unique keys never see two rows at once."""
    wanted = {p.product_id: p.primary for p in products}
    for row in list(lead.products):
        row.is_primary = False
        if row.product_id not in wanted:
            lead.products.remove(row)
    session.flush()
    existing = {row.product_id: row for row in lead.products}
    for product_id, primary in wanted.items():
        if product_id in existing:
            existing[product_id].is_primary = primary
        else:
            lead.products.append(LeadProduct(product_id=product_id, is_primary=primary))
    session.flush()


def _sync_primary_contact(session: Session, lead: Lead, values: dict[str, Any]) -> None:
    """A lead with contacts of its own (a transfer kept as a lead) keeps its primary one equal to the
    lead's contact fields, which the edit just changed."""
    columns = {"contact_name": "name", "contact_email": "email", "contact_phone": "phone"}
    if not columns.keys() & values.keys():
        return
    primary = session.scalar(
        select(LeadContact).where(LeadContact.lead_id == lead.id, LeadContact.is_primary.is_(True))
    )
    if primary is not None:
        for field, column in columns.items():
            if field in values:
                setattr(primary, column, values[field])


# --- create (idempotent) ------------------------------------------------------------------------------


def _request_hash(data: s.LeadCreate) -> str:
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _claim_key(session: Session, organization_id: int, key: str, request_hash: str) -> IdempotencyKey | None:
    """Claim the key for this request, or return the earlier request's stored row.

    ``INSERT ... ON CONFLICT DO NOTHING``: on PostgreSQL a concurrent request with the same key waits for
    the first one's transaction and then finds its row and reply; on SQLite ``BEGIN IMMEDIATE`` already
    serialises them.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(IdempotencyKey)
        .values(organization_id=organization_id, key=key, request_hash=request_hash, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["organization_id", "key"])
        .returning(IdempotencyKey.id)
    )
    if session.execute(stmt).scalar() is not None:
        return None
    row = session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.organization_id == organization_id, IdempotencyKey.key == key
        )
    )
    assert row is not None  # the conflicting row is committed: the insert waited for it
    if row.request_hash != request_hash or row.response_body is None:
        raise ValidationFailed(
            "This Idempotency-Key was already used with a different request body",
            [FieldProblem("/header/Idempotency-Key", "reuse a key only to retry the identical request")],
        )
    return row


@cache
def _lead_inserts() -> tuple[ReturningInsert[tuple[int]], Insert, Insert]:
    """The INSERTs of a new lead (of the tables, not through the unit of work), built once: the lead
    (returning its id), its products, its sales team."""
    leads = typed(Table, Lead.__table__)
    return (
        insert(leads).returning(leads.c.id),
        insert(typed(Table, LeadProduct.__table__)),
        insert(typed(Table, SalesTeamMember.__table__)),
    )


@cache
def _lead_insert_pg(columns: tuple[str, ...]) -> Select[tuple[int]]:
    """PostgreSQL: the three INSERTs of `_lead_inserts` as one statement (of a lead given ``columns``),
    built once: the lead, then its products (a JSON array of ``product_id``, ``is_primary``, in their
    order), its creator on its sales team (``user_id``, ``role``, ``source``) under its new id,
    and its audit row (``created``, the values of `audit.record` as ``audit_*``); returning the id."""
    leads = typed(Table, Lead.__table__)
    products = typed(Table, LeadProduct.__table__)
    team = typed(Table, SalesTeamMember.__table__)
    new_lead = (
        insert(leads)
        .values({name: bindparam(name, type_=leads.c[name].type) for name in columns})
        .returning(leads.c.id)
        .cte("new_lead")
    )
    given = (
        func.jsonb_to_recordset(bindparam("products", type_=postgresql.JSONB()))
        .table_valued(column("n", Integer), column("product_id", Integer), column("is_primary", Boolean))
        .render_derived("given", with_types=True)
    )
    new_products = (
        insert(products)
        .from_select(
            ["lead_id", "product_id", "is_primary"],
            select(new_lead.c.id, given.c.product_id, given.c.is_primary)
            .select_from(new_lead.join(given, true()))
            .order_by(given.c.n),
        )
        .cte("new_products")
    )
    creator = (
        insert(team)
        .from_select(
            ["lead_id", "user_id", "role", "source"],
            select(
                new_lead.c.id,
                bindparam("creator_user_id", type_=Integer()),
                bindparam("creator_role", type_=String()),
                bindparam("creator_source", type_=String()),
            ),
        )
        .cte("creator")
    )
    events = typed(Table, audit.AuditEvent.__table__)
    created = (
        insert(events)
        .from_select(
            [*_CREATED_COLUMNS, "entity_type", "entity_id", "action"],
            select(
                *(bindparam(f"audit_{name}", type_=events.c[name].type) for name in _CREATED_COLUMNS),
                literal("lead", String()),
                new_lead.c.id,
                literal("created", String()),
            ),
        )
        .cte("created")
    )
    return select(new_lead.c.id).add_cte(new_products, creator, created)


#: The columns of a new lead's audit row (``created``) its INSERT on PostgreSQL binds.
_CREATED_COLUMNS = (
    "occurred_at",
    "actor_user_id",
    "actor_organization_id",
    "before",
    "after",
    "reason",
    "details",
)


def _new_lead(
    session: Session | Connection,
    principal: Principal,
    data: s.LeadCreate,
    program: _Program | None,
    partner: _Partner | None,
) -> Lead:
    """The new lead, written; ``partner``: the organization of its primary partner, read already.

    The lead, its products, its creator on its sales team and its audit row (``created``) are written
    by INSERTs of their values, not through the unit of work (its flush was near half of a create): one
    statement on PostgreSQL (``session`` may then be a connection: `Database.statements`), three and the
    audit batch's on SQLite (no INSERT in a WITH there); the lead returned holds what was written,
    outside the session (nothing in the creating transaction changes it).
    """
    values = _field_values(data.model_dump(exclude={"products"}), program)
    if principal.internal:
        # An internal user's lead is not accepted; it belongs to the partner it is for, if any.
        organization_id = data.primary_partner_id
        accepted = False
    else:
        organization_id = principal.organization_id
        values["primary_partner_id"] = organization_id
        accepted = True
    if partner is None or partner.id != values.get("primary_partner_id"):
        partner = None
    if values.get("partner_type") is None and partner is not None and partner.partner_type is not None:
        values["partner_type"] = str(partner.partner_type)
    now = utcnow()
    values.update(
        organization_id=organization_id,
        accepted=accepted,
        sales_channel=s.SalesChannel.PARTNER.value,
        owner_user_id=principal.user_id,
        created_by=principal.user_id,
        status=RegistrationStatus.DRAFT.value,
        lead_status=LeadStatus.OPEN.value,
        created_at=now,
        updated_at=now,
        version=1,
    )
    creator = {"user_id": principal.user_id, "role": LEAD_OWNER, "source": "creator"}
    after = {"status": values["status"], "accepted": accepted, "owner_user_id": principal.user_id}
    products = [
        {"product_id": p.product_id, "is_primary": p.primary, "amount": None, "currency": None}
        for p in data.products
    ]
    if isinstance(session, Connection) or session.get_bind().dialect.name == "postgresql":
        created = {
            "occurred_at": utcnow(),
            "actor_user_id": principal.user_id,
            "actor_organization_id": principal.organization_id,
            "before": None,
            "after": after,
            "reason": None,
            "details": None,
        }
        params = {
            **values,
            "products": [{"n": n, **p} for n, p in enumerate(products)],
            **{f"creator_{k}": v for k, v in creator.items()},
            **{f"audit_{k}": v for k, v in created.items()},
        }
        lead_id = typed(int, session.execute(_lead_insert_pg(tuple(values)), params).scalar_one())
    else:
        assert isinstance(session, Session)
        insert_lead, insert_products, insert_team = _lead_inserts()
        lead_id = typed(int, session.execute(insert_lead, values).scalar_one())
        if products:
            session.execute(insert_products, [{"lead_id": lead_id, **p} for p in products])
        session.execute(insert_team, {"lead_id": lead_id, **creator})
        audit.record(session, principal, "lead", lead_id, "created", after=after)
    lead = Lead(id=lead_id, **values)
    lead.products = [LeadProduct(lead_id=lead_id, **p) for p in products]
    lead.sales_team = [SalesTeamMember(lead_id=lead_id, **creator)]
    lead.territory_team = []
    return lead


def create_lead(
    db: Database, principal: Principal, data: s.LeadCreate, idempotency_key: str | None = None
) -> tuple[s.LeadOut, bool]:
    """Create a draft lead; returns (the lead, whether this is the stored reply to an earlier request).

    On PostgreSQL a create without an ``Idempotency-Key`` is a read of what the body names and one
    statement writing the lead, its children and its audit row: each commits on its own
    (`Database.statements`), with no transaction around them.
    """
    if idempotency_key is None and db.is_postgresql:
        with db.statements() as connection:
            return _create(connection, principal, data), False
    with db.transaction() as session, audit.batched(session):
        claimed: IdempotencyKey | None = None
        if idempotency_key is not None:
            request_hash = _request_hash(data)
            stored = _claim_key(session, principal.organization_id, idempotency_key, request_hash)
            if stored is not None:
                assert stored.response_body is not None
                return s.LeadOut.model_validate(stored.response_body), True
            claimed = session.scalar(
                select(IdempotencyKey).where(
                    IdempotencyKey.organization_id == principal.organization_id,
                    IdempotencyKey.key == idempotency_key,
                )
            )
        out = _create(session, principal, data)
        if claimed is not None:
            claimed.response_status = 201
            claimed.response_body = out.model_dump(mode="json")
        return out, False


def _create(session: Session | Connection, principal: Principal, data: s.LeadCreate) -> s.LeadOut:
    """`create_lead`'s checks and writes, in ``session`` (on PostgreSQL: or a connection)."""
    # the partner the lead is for: a partner's own organization, or the one an internal user names
    named = _named(
        session,
        data.primary_partner_id if principal.internal else principal.organization_id,
        data,
    )
    if not principal.internal:  # refused before the body's references are looked at
        org = named.partner
        if org is None or not org.can_register_leads:
            raise Forbidden("Your organization's partner agreement does not allow registering leads")
    program = _check_references(session, principal, data, data.products, named)
    lead = _new_lead(session, principal, data, program, named.partner)
    # a new lead: its program is the one named, no opportunity, contacts or activities yet
    programs = {program.id: program.key} if program is not None else {}
    return _shown(lead, _References(programs, {}, {}, {}))


# --- update -------------------------------------------------------------------------------------------


def _snapshot(out: s.LeadOut) -> dict[str, Any]:
    return out.model_dump(
        mode="json", exclude={"sales_team", "territory_team", "created_at", "updated_at", "version"}
    )


def update_lead(
    db: Database, principal: Principal, lead_id: int, if_match: str | None, data: s.LeadUpdate
) -> s.LeadOut:
    """Change a lead's fields while it is editable (draft, rejected, withdrawn)."""
    with db.transaction() as session:
        lead, children = locked_lead(session, principal, lead_id)
        check_if_match(if_match, lead.id, lead.version)
        if not editable(lead.status):
            raise ReadOnly(
                f"A registration in status {lead.status!r} is read-only; only notes may be added",
                current_status=lead.status,
            )
        ensure_accepted(session, lead, principal, "update")
        changes = data.model_dump(exclude_unset=True)
        program = _check_references(session, principal, data, data.products)
        if not principal.internal and changes.get("primary_partner_id", lead.primary_partner_id) != (
            lead.primary_partner_id
        ):
            raise ValidationFailed(
                "A partner cannot hand its lead to another partner",
                [FieldProblem("/primary_partner_id", "must stay your own organization")],
            )
        before = _snapshot(lead_out(session, lead, children=children))
        values = _field_values(changes, program)
        if principal.internal and "primary_partner_id" in values:
            lead.organization_id = values["primary_partner_id"]
        for name, value in values.items():
            setattr(lead, name, value)
        _sync_primary_contact(session, lead, values)
        if data.products is not None:
            _set_products(session, lead, data.products)
        lead.updated_at = utcnow()  # a new version even when only the products changed
        session.flush()
        # the lead and its collections are as stored after the flush (no read back); its contacts too,
        # unless the edit changed the primary contact of a lead that has contacts
        kept = not (children.contacts and {"contact_name", "contact_email", "contact_phone"} & values.keys())
        out = lead_out(session, lead, children=children if kept else None)
        audit.record(session, principal, "lead", lead.id, "updated", before=before, after=_snapshot(out))
        return out


# --- notes and history --------------------------------------------------------------------------------


def add_note(db: Database, principal: Principal, lead_id: int, data: s.NoteIn) -> s.NoteOut:
    """Add a note; allowed in every status (the one change a pending registration accepts)."""
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id)
        ensure_accepted(session, lead, principal, "note")
        note = LeadNote(
            lead_id=lead.id, author_user_id=principal.user_id, text=data.text, created_at=utcnow()
        )
        session.add(note)
        session.flush()
        audit.record(
            session,
            principal,
            "lead",
            lead.id,
            "note_added",
            details={"note_id": note.id, "status": lead.status},
        )
        return s.NoteOut.model_validate(note)


def list_notes(db: Database, principal: Principal, lead_id: int) -> s.NoteList:
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id)
        notes = session.scalars(select(LeadNote).where(LeadNote.lead_id == lead.id).order_by(LeadNote.id))
        return s.NoteList(items=[s.NoteOut.model_validate(n) for n in notes])


def _moved(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(from, to) status of an audit row; (None, None) when the status did not change."""
    old, new = (before or {}).get("status"), (after or {}).get("status")
    return (None, None) if old == new else (old, new)


def lead_history(db: Database, principal: Principal, lead_id: int) -> s.HistoryOut:
    """The lead's audit rows, oldest first: who, when, what, from -> to, reason."""
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id)
        rows = audit.history(session, "lead", lead.id)
        return s.HistoryOut(
            items=[
                s.HistoryEntry(
                    id=r.id,
                    occurred_at=r.occurred_at,
                    actor_user_id=r.actor_user_id,
                    actor_organization_id=r.actor_organization_id,
                    action=r.action,
                    from_status=_moved(r.before, r.after)[0],
                    to_status=_moved(r.before, r.after)[1],
                    reason=r.reason,
                    details=r.details,
                )
                for r in rows
            ]
        )
