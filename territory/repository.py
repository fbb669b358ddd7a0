"""Loading territory models and dimension hierarchies from the database, and the per-process snapshot cache.

``snapshot_for`` and ``active_snapshot`` are what the rest of the service calls to match leads. A snapshot
is immutable and cached per process under (database, model id, model version, reference-data fingerprint):
activating another model changes which key ``active_snapshot`` looks up, so the swap is atomic, and a
request that already holds a snapshot keeps using it undisturbed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    String,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    null,
    select,
    table,
    union,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, object_session

from common.clock import utcnow
from common.collector import collector_paused, release_kept
from common.database import Database, driver_rows
from common.errors import Conflict, FieldProblem, NotFound
from directory.enums import OrganizationKind
from directory.models import Customer, Organization, PartnerProgram, Product, User
from territory.dimensions import Dimension, MemberHierarchy, ordered
from territory.errors import TreeInvalid
from territory.geography import geography_names, geography_parents
from territory.models import (
    CoverageMode,
    DimensionMember,
    ModelStatus,
    StoredTreeOutline,
    Territory,
    TerritoryCoverage,
    TerritoryDimension,
    TerritoryMember,
    TerritoryModel,
)
from territory.outline import FORMAT as OUTLINE_FORMAT
from territory.outline import TreeOutline, TreeShape, from_document, outline_of, to_document
from territory.snapshot import TerritorySnapshot
from territory.tree import Coverage, TeamMember, TerritoryDef

Dimensions = dict[str, MemberHierarchy]
#: A row of the statement that tells whether held snapshots are current (``state_selects``):
#: (tag, number, number, time, text).
StateSelect = Select[int, Any, Any, Any, Any]
V = TypeVar("V")

_CACHE_SIZE = 16


class _LruCache:
    """A small thread-safe LRU map; values are immutable, so handing them out is safe. ``on_drop`` is
    called after a value was evicted or the map cleared."""

    def __init__(self, size: int, on_drop: Callable[[], None] | None = None) -> None:
        self._size = size
        self._on_drop = on_drop
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, key: Hashable, build: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                found: V = self._items[key]
                return found
        value = build()  # outside the lock: a slow build must not stall other readers
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            dropped = len(self._items) > self._size
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        if dropped and self._on_drop is not None:
            self._on_drop()
        return value

    def get(self, key: Hashable) -> Any:
        """The value held under ``key`` (``None`` when there is none), now the most recently used;
        builds nothing."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
        if self._on_drop is not None:
            self._on_drop()


#: snapshots are built with the collector paused and kept frozen (``common.collector``)
_snapshots = _LruCache(_CACHE_SIZE, on_drop=release_kept)
_dimensions = _LruCache(16)


def clear_caches() -> None:
    """Forget every cached snapshot and hierarchy (tests; after restoring a database)."""
    _snapshots.clear()
    _dimensions.clear()


# --- reference data -----------------------------------------------------------------------------------


def reference_fingerprint(session: Session) -> tuple[Any, ...]:
    """A cheap value that changes whenever customers, products, programs or partners change.

    Highest id and latest update per table, each read from an index (whatever the number of records):
    adding a record moves the first, changing or re-parenting one the second. Records are deactivated,
    never deleted, so a count would add nothing but a scan.
    """
    # one statement (one round trip) for the four tables, its rows as the driver reads them, as the
    # freshness statement's (``state_selects``): the fingerprints of both compare equal
    return _fingerprint_of(driver_rows(session.connection(), _fingerprint_statement()))


def _fingerprint_of(rows: Iterable[Sequence[Any]]) -> tuple[Any, ...]:
    """The fingerprint of the rows of ``_fingerprint_selects`` as the driver reads them (a time is text
    on SQLite, a ``datetime`` on PostgreSQL: either way a text that changes when the time does)."""
    parts: list[Any] = []
    for row in sorted(rows, key=lambda r: int(r[0])):
        parts.extend((row[1], str(row[3]) if row[3] is not None else None))
    return tuple(parts)


@functools.cache
def _fingerprint_statement() -> CompoundSelect[Any]:
    """Built once: every decision asks for the fingerprint, and building a statement costs more than
    SQLite running it."""
    return union_all(*_fingerprint_selects())


def state_tag(tag: int) -> ColumnElement[int]:
    """A row's tag in the freshness statement, written into it (not bound: each bound value is
    processed on every execution, and the statement runs on every what-if and submission)."""
    return literal_column(str(int(tag)), Integer)


def _fingerprint_selects() -> tuple[StateSelect, ...]:
    tables: tuple[type[Customer] | type[Product] | type[PartnerProgram] | type[Organization], ...] = (
        Customer,
        Product,
        PartnerProgram,
        Organization,
    )
    # One aggregate per subquery: SQLite answers max() from an index only when it is the query's only one.
    selects: list[StateSelect] = [
        select(
            state_tag(i).label("i"),
            select(func.max(m.id)).scalar_subquery(),
            cast(null(), Integer),  # typed: PostgreSQL takes an untyped NULL column for text
            select(func.max(m.updated_at)).scalar_subquery(),
            null(),
        )
        for i, m in enumerate(tables)
    ]
    return tuple(selects)


# --- what makes a held snapshot current, read in one statement -----------------------------------------

#: ``'active'`` written into the statement, not bound: SQLite uses a partial index (``WHERE status =
#: 'active'``) for a bound value only by preparing the statement again on every execution, which costs
#: more than running the whole freshness statement.
ACTIVE_LITERAL: ColumnElement[str] = literal_column("'active'", String)
#: The tag of the active model's row among ``state_selects``' (the reference tables' rows are 0 to 3).
_ACTIVE_MODEL_TAG = 4
#: The tag of the row of the model a caller names (``state_selects(requested=True)``).
_REQUESTED_MODEL_TAG = 5
#: The first tag left for the layers above, whose own rows ride in the same statement.
STATE_TAGS_FREE = 6
#: The parameter that names the requested model in ``state_selects(requested=True)``.
REQUESTED_MODEL_PARAM = "requested_model_id"


def state_selects(*, requested: bool = False) -> tuple[StateSelect, ...]:
    """What decides whether a held snapshot is current: the reference fingerprint and the active model,
    and with ``requested`` the version of the model bound as ``REQUESTED_MODEL_PARAM`` (a what-if on a
    planning model finds its held snapshot without loading the model).

    As rows of one shape, ``(tag, number, number, time, text)``, for a caller to run in one statement
    (``union_all``) with rows of its own (tags from ``STATE_TAGS_FREE``); ``SnapshotState.of`` reads
    the answer. One round trip per request, however many things it checks.
    """
    active = select(
        state_tag(_ACTIVE_MODEL_TAG), TerritoryModel.id, TerritoryModel.version, null(), null()
    ).where(TerritoryModel.status == ACTIVE_LITERAL)
    if not requested:
        return (*_fingerprint_selects(), active)
    named = select(
        state_tag(_REQUESTED_MODEL_TAG), TerritoryModel.id, TerritoryModel.version, null(), null()
    ).where(TerritoryModel.id == bindparam(REQUESTED_MODEL_PARAM, type_=Integer))
    return (*_fingerprint_selects(), active, named)


class SnapshotState(NamedTuple):
    """The reference fingerprint, the active model's (id, version) and the requested one's, as
    ``state_selects`` read them."""

    fingerprint: tuple[Any, ...]
    active_model: tuple[int, int] | None
    requested_model: tuple[int, int] | None = None

    @classmethod
    def of(cls, rows: Sequence[Sequence[Any]]) -> SnapshotState:
        """Read the rows of ``state_selects`` (rows with other tags are left for their callers)."""
        active = next(((int(r[1]), int(r[2])) for r in rows if r[0] == _ACTIVE_MODEL_TAG), None)
        named = next(((int(r[1]), int(r[2])) for r in rows if r[0] == _REQUESTED_MODEL_TAG), None)
        return cls(_fingerprint_of(r for r in rows if r[0] < _ACTIVE_MODEL_TAG), active, named)


def active_snapshot_at(session: Session, state: SnapshotState) -> TerritorySnapshot | None:
    """The active model's snapshot as ``state`` (read in this transaction) describes it, or ``None``.

    A snapshot this process holds for that model version and reference data costs no statement;
    otherwise the model is read and its snapshot built.
    """
    if state.active_model is None:
        return None
    model_id, version = state.active_model
    held: TerritorySnapshot | None = _snapshots.get((_url_key(session), model_id, version, state.fingerprint))
    if held is not None:
        return held
    model = session.get(TerritoryModel, model_id)
    if model is None or model.status != ModelStatus.ACTIVE:  # changed since: read it again
        return active_snapshot_in(session)
    return _checked_snapshot(session, model, state.fingerprint)


def snapshot_at(session: Session, model_id: int, state: SnapshotState) -> TerritorySnapshot:
    """``snapshot_in`` under the reference data ``state`` read in this transaction; a snapshot this
    process holds for the model's version (``state.requested_model``) costs no statement."""
    if state.requested_model is not None and state.requested_model[0] == model_id:
        key = (_url_key(session), model_id, state.requested_model[1], state.fingerprint)
        held: TerritorySnapshot | None = _snapshots.get(key)
        if held is not None:
            return held
    model = session.get(TerritoryModel, model_id)
    if model is None:
        raise NotFound(f"territory model {model_id} not found")
    return _checked_snapshot(session, model, state.fingerprint)


@functools.lru_cache(maxsize=64)
def _rendered(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _url_key(session: Session) -> str:
    """The database's URL (without its password) as the caches' keys name it."""
    return _rendered(session.get_bind().engine.url)


def _keyed_parents(session: Session, model: type[Customer] | type[Product]) -> dict[str, str | None]:
    rows = session.execute(select(model.id, model.key, model.parent_id)).all()
    key_of = {r[0]: r[1] for r in rows}
    return {r[1]: key_of.get(r[2]) if r[2] is not None else None for r in rows}


def load_dimensions(
    session: Session, fingerprint: tuple[Any, ...] | None = None, model: TerritoryModel | None = None
) -> Dimensions:
    """Every dimension's member hierarchy: customers and products by parent, programs and partners flat,
    geography from ISO 3166 (``territory.geography``). Cached per reference-data fingerprint.

    With ``model``: plus the model's declared dimensions and the members its admins imported (regions,
    countries moved to another region, postal-code areas...), cached per model version as well.
    """
    fp = fingerprint if fingerprint is not None else reference_fingerprint(session)
    url = _url_key(session)

    def build() -> Dimensions:
        programs = session.scalars(select(PartnerProgram.key)).all()
        partners = session.scalars(
            select(Organization.key).where(Organization.kind == OrganizationKind.PARTNER)
        ).all()
        return {
            Dimension.CUSTOMER: MemberHierarchy(_keyed_parents(session, Customer), name="customer"),
            Dimension.PRODUCT: MemberHierarchy(_keyed_parents(session, Product), name="product"),
            Dimension.PROGRAM: MemberHierarchy(dict.fromkeys(programs), name="program"),
            Dimension.PARTNER: MemberHierarchy(dict.fromkeys(partners), name="partner"),
            Dimension.GEOGRAPHY: _built_in_geography(),
        }

    base: Dimensions = _dimensions.get_or_build((url, fp), build)
    if model is None:
        return base
    return _dimensions.get_or_build(
        (url, fp, model.id, model.version), lambda: _with_model_layer(session, model.id, base)
    )


@functools.cache
def _built_in_geography() -> MemberHierarchy:
    return MemberHierarchy(geography_parents(), name="geography", labels=geography_names())


def _with_model_layer(session: Session, model_id: int, base: Dimensions) -> Dimensions:
    out: Dimensions = dict(base)
    for d in declared_dimensions(session, model_id):
        out.setdefault(d.name, MemberHierarchy({}, name=d.name))
    rows = session.scalars(
        select(DimensionMember).where(DimensionMember.model_id == model_id).order_by(DimensionMember.id)
    ).all()
    by_dim: dict[str, list[DimensionMember]] = defaultdict(list)
    for r in rows:
        by_dim[r.dimension].append(r)
    for dim, members in by_dim.items():
        below = out.get(dim, MemberHierarchy({}, name=dim))
        parents = dict(below.parents())
        parents.update({r.key: r.parent_key for r in members})
        labels = {m: below.label(m) or "" for m in below if below.label(m)}
        labels.update({r.key: r.name for r in members if r.name})
        out[dim] = MemberHierarchy(parents, name=dim, labels=labels)
    return out


def declared_dimensions(session: Session, model_id: int) -> list[TerritoryDimension]:
    """The dimensions declared on a model, by name."""
    return list(
        session.scalars(
            select(TerritoryDimension)
            .where(TerritoryDimension.model_id == model_id)
            .order_by(TerritoryDimension.name)
        )
    )


def dimension_sources(session: Session, model_id: int) -> dict[str, str]:
    """Declared dimension -> the lead fact that feeds it."""
    return {d.name: d.source or d.name for d in declared_dimensions(session, model_id)}


def copy_dimension_layer(session: Session, source_id: int, target_id: int) -> None:
    """Copy a model's declared dimensions and imported members to another (cloning a model)."""
    for d in declared_dimensions(session, source_id):
        session.add(
            TerritoryDimension(model_id=target_id, name=d.name, source=d.source, description=d.description)
        )
    for m in session.scalars(select(DimensionMember).where(DimensionMember.model_id == source_id)):
        session.add(
            DimensionMember(
                model_id=target_id, dimension=m.dimension, key=m.key, parent_key=m.parent_key, name=m.name
            )
        )


def internal_users(session: Session) -> dict[str, frozenset[str]]:
    """Active users of the brand owner and their roles (who may sit on a territory team)."""
    rows = session.execute(
        select(User.key, User.roles)
        .join(Organization, Organization.id == User.organization_id)
        .where(Organization.kind == OrganizationKind.BRAND_OWNER, User.active.is_(True))
    ).all()
    return {r[0]: frozenset(r[1] or ()) for r in rows}


# --- territory rows <-> definitions -------------------------------------------------------------------


def def_of(t: Territory) -> TerritoryDef:
    """The pure definition of one stored territory."""
    include: dict[str, set[str]] = defaultdict(set)
    exclude: dict[str, set[str]] = defaultdict(set)
    for c in t.coverage:
        (include if c.mode == CoverageMode.INCLUDE else exclude)[c.dimension].add(c.member)
    coverage = {d: Coverage.of(include.get(d, ()), exclude.get(d, ())) for d in ordered([*include, *exclude])}
    team = tuple(TeamMember(m.user_key, m.role) for m in t.members)
    return TerritoryDef(t.key, t.parent_key, t.name, t.type, team, t.partner_key, coverage)


def load_defs(session: Session, model_id: int, keys: Iterable[str] | None = None) -> list[TerritoryDef]:
    """Every territory of a model (``keys``: those of them only) as definitions, ordered by key: three
    plain queries read as rows (the same definitions ``def_of`` gives of the loaded objects, at a
    fraction of the cost over 10,000 territories and their 100,000 coverage rows). The rows come from
    the connection, not the session: they are tuples to read, with no ORM loading per row; a coverage
    shared by many territories (a product group, a country) is one object."""
    conn = session.connection()
    wanted = [Territory.model_id == model_id]
    if keys is not None:
        wanted.append(Territory.key.in_(sorted(keys)))
    in_model = select(Territory.id).where(*wanted)
    rows: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for territory_id, dimension, member, mode in conn.execute(
        select(
            TerritoryCoverage.territory_id,
            TerritoryCoverage.dimension,
            TerritoryCoverage.member,
            TerritoryCoverage.mode,
        )
        .where(TerritoryCoverage.territory_id.in_(in_model))
        .order_by(TerritoryCoverage.id)
    ).all():
        rows[territory_id].append((dimension, member, mode))
    teams: dict[int, list[TeamMember]] = defaultdict(list)
    for territory_id, user_key, role in conn.execute(
        select(TerritoryMember.territory_id, TerritoryMember.user_key, TerritoryMember.role)
        .where(TerritoryMember.territory_id.in_(in_model))
        .order_by(TerritoryMember.id)
    ).all():
        teams[territory_id].append(TeamMember(user_key, role))
    shared: dict[tuple[frozenset[str], frozenset[str]], Coverage] = {}
    out = []
    for territory_id, key, parent_key, name, type_, partner_key in conn.execute(
        select(
            Territory.id,
            Territory.key,
            Territory.parent_key,
            Territory.name,
            Territory.type,
            Territory.partner_key,
        )
        .where(*wanted)
        .order_by(Territory.key)
    ).all():
        coverage = _coverage_of(rows.get(territory_id, ()), shared)
        team = tuple(teams.get(territory_id, ()))
        out.append(TerritoryDef(key, parent_key, name, type_, team, partner_key, coverage))
    return out


def parent_keys(session: Session, model_id: int) -> dict[str, str | None]:
    """Each territory of a model with its parent's key (the tree's shape, without definitions)."""
    rows = session.execute(select(Territory.key, Territory.parent_key).where(Territory.model_id == model_id))
    return {key: parent for key, parent in rows}


def differing_keys(session: Session, model_a: int, model_b: int) -> set[str]:
    """The keys of the territories whose definitions differ between two models as stored (attributes,
    coverage, team in its order) or that exist in one of them only: what comparing each territory's
    `load_defs` definitions finds, found by the database in one statement without reading the
    definitions alike (a 1% change of a 10,000-territory model: 0.2 s less than loading one model's)."""
    t = Territory.__table__.c
    c = TerritoryCoverage.__table__.c
    m = TerritoryMember.__table__.c
    both = t.model_id.in_([model_a, model_b])
    place = func.row_number().over(partition_by=m.territory_id, order_by=m.id).label("place")
    rows = [  # each as (model, key, what describes it...)
        select(t.model_id, t.key, t.parent_key, t.name, t.type, t.partner_key).where(both),
        select(t.model_id, t.key, c.dimension, c.member, c.mode)
        .join_from(Territory, TerritoryCoverage, c.territory_id == t.id)
        .where(both),
        select(t.model_id, t.key, m.user_key, m.role, place)
        .join_from(Territory, TerritoryMember, m.territory_id == t.id)
        .where(both),
    ]
    # a row found in one model only (one pass each, hashed: an EXCEPT each way sorted the 64,000
    # coverage rows of two 10,000-territory models twice, by collation)
    in_one = []
    for stmt in rows:
        found = stmt.subquery()
        described = [col for col in found.c if col.name != "model_id"]
        in_one.append(
            select(found.c.key)
            .group_by(*described)
            .having(func.min(found.c.model_id) == func.max(found.c.model_id))
        )
    return set(session.scalars(union(*in_one)))


def _coverage_of(
    rows: Iterable[tuple[str, str, str]], shared: dict[tuple[frozenset[str], frozenset[str]], Coverage]
) -> dict[str, Coverage]:
    """One territory's coverage from its (dimension, member, mode) rows; ``shared``: the coverages made
    so far, each handed out again rather than made twice."""
    include: dict[str, set[str]] = {}
    exclude: dict[str, set[str]] = {}
    for dimension, member, mode in rows:
        (include if mode == _INCLUDE else exclude).setdefault(dimension, set()).add(member)
    out = {}
    for d in ordered([*include, *exclude]):
        sets = (frozenset(include.get(d, ())), frozenset(exclude.get(d, ())))
        found = shared.get(sets)
        if found is None:
            found = shared[sets] = Coverage(*sets)
        out[d] = found
    return out


_INCLUDE = CoverageMode.INCLUDE.value


def territory_rows(session: Session, model_id: int) -> dict[str, Territory]:
    rows = session.scalars(select(Territory).where(Territory.model_id == model_id).order_by(Territory.key))
    return {t.key: t for t in rows}


def _flush_orphans(t: Territory, collection: list[Any]) -> None:
    """Empty a collection and flush, so replacement rows cannot collide with the old ones' unique keys."""
    collection.clear()
    session = object_session(t)
    if session is not None and t.id is not None:
        session.flush()


def set_coverage_rows(t: Territory, coverage: Iterable[tuple[str, Coverage]]) -> None:
    """Replace the territory's coverage rows."""
    rows = []
    for dim, cov in coverage:
        rows += [
            TerritoryCoverage(dimension=str(dim), member=m, mode=CoverageMode.INCLUDE)
            for m in sorted(cov.include)
        ]
        rows += [
            TerritoryCoverage(dimension=str(dim), member=m, mode=CoverageMode.EXCLUDE)
            for m in sorted(cov.exclude)
        ]
    _flush_orphans(t, t.coverage)
    t.coverage.extend(rows)


def set_team_rows(t: Territory, team: Sequence[TeamMember]) -> None:
    """Replace the territory's team rows."""
    _flush_orphans(t, t.members)
    t.members.extend(TerritoryMember(user_key=m.user, role=m.role) for m in team)


def add_territory(session: Session, model: TerritoryModel, d: TerritoryDef) -> Territory:
    """Add one territory row (with its coverage and team) to ``model``."""
    t = Territory(
        model_id=model.id, key=d.key, parent_key=d.parent_key, name=d.name, type=d.type, partner_key=d.partner
    )
    set_coverage_rows(t, d.coverage.items())
    set_team_rows(t, d.team)
    session.add(t)
    return t


def replace_content(session: Session, model: TerritoryModel, defs: Sequence[TerritoryDef]) -> None:
    """Delete the model's territories and write ``defs`` instead (same transaction)."""
    for t in territory_rows(session, model.id).values():
        session.delete(t)
    session.flush()
    for d in defs:
        add_territory(session, model, d)
    session.flush()


def count_territories(session: Session, model_ids: Sequence[int]) -> dict[int, int]:
    if not model_ids:
        return {}
    rows = session.execute(
        select(Territory.model_id, func.count(Territory.id))
        .where(Territory.model_id.in_(model_ids))
        .group_by(Territory.model_id)
    ).all()
    return {r[0]: r[1] for r in rows}


#: The lead tables belong to ``registration`` (a layer above): named here, never imported.
_LEADS = table("leads", column("id"), column("status"), column("lead_status"))
_LEAD_TERRITORIES = table(
    "lead_territories", column("lead_id"), column("territory_key"), column("territory_model_id")
)
#: Registration statuses of leads that no longer count on a territory.
CLOSED_REGISTRATIONS = ("withdrawn", "expired")


def lead_counts(session: Session, model_id: int) -> dict[str, int]:
    """Open leads on each territory of a model (territory key -> count), in one grouped query.

    A lead counts on every territory of its territory team in this model while it is open (not yet
    converted to an opportunity) and its registration is neither withdrawn nor expired.
    """
    lt, lead = _LEAD_TERRITORIES.c, _LEADS.c
    rows = session.execute(
        select(lt.territory_key, func.count(func.distinct(lt.lead_id)))
        .select_from(_LEAD_TERRITORIES.join(_LEADS, lead.id == lt.lead_id))
        .where(
            lt.territory_model_id == model_id,
            lead.lead_status == "open",
            lead.status.not_in(CLOSED_REGISTRATIONS),
        )
        .group_by(lt.territory_key)
    ).all()
    return {r[0]: r[1] for r in rows}


# --- snapshots ----------------------------------------------------------------------------------------


def model_version_label(model_id: int, version: int) -> str:
    """The ``model_version`` a snapshot carries (and decision traces record): ``"<id>.<version>"``."""
    return f"{model_id}.{version}"


def model_id_of(snapshot: TerritorySnapshot) -> int:
    """The territory model id a snapshot was built from."""
    return int(snapshot.model_version.split(".", 1)[0])


def tree_problems(exc: TreeInvalid) -> list[FieldProblem]:
    """The tree's problems as API problems (pointer: the territory concerned)."""
    return [
        FieldProblem(f"/territories/{p.territory}" if p.territory else "/territories", p.message)
        for p in exc.problems
    ]


def build_snapshot(
    session: Session, model: TerritoryModel, fingerprint: tuple[Any, ...] | None = None
) -> TerritorySnapshot:
    """The (cached) snapshot of a model's current version; raises ``TreeInvalid``.

    ``fingerprint``: the reference data's, when the caller read it in this transaction already.
    """
    fp = fingerprint if fingerprint is not None else reference_fingerprint(session)
    url = _url_key(session)

    def build() -> TerritorySnapshot:
        # millions of objects made and kept: collection passes would cost more than the build
        with collector_paused(keep=True):
            dims = load_dimensions(session, fp, model)
            return TerritorySnapshot(
                model_version_label(model.id, model.version),
                load_defs(session, model.id),
                dims,
                dimension_sources(session, model.id),
            )

    return _snapshots.get_or_build((url, model.id, model.version, fp), build)


def _checked_snapshot(
    session: Session, model: TerritoryModel, fingerprint: tuple[Any, ...] | None = None
) -> TerritorySnapshot:
    try:
        return build_snapshot(session, model, fingerprint)
    except TreeInvalid as exc:
        raise Conflict(
            f"territory model {model.id} is not a valid tree",
            errors=[p.as_dict() for p in tree_problems(exc)],
        ) from None


def snapshot_for(db: Database, model_id: int) -> TerritorySnapshot:
    """The immutable snapshot of any model (planning models too, for previews).

    Raises ``NotFound`` for an unknown model and ``Conflict`` (listing every problem) when the model is
    not a valid tree (for example an empty planning model).
    """
    with db.transaction() as session:
        return snapshot_in(session, model_id)


def snapshot_in(session: Session, model_id: int) -> TerritorySnapshot:
    """``snapshot_for`` inside the caller's transaction."""
    model = session.get(TerritoryModel, model_id)
    if model is None:
        raise NotFound(f"territory model {model_id} not found")
    return _checked_snapshot(session, model)


def active_snapshot(db: Database) -> TerritorySnapshot | None:
    """The snapshot of the active model, or ``None`` when no model is active.

    ``model_id_of(snapshot)`` gives the model id to store with a decision.
    """
    with db.transaction() as session:
        return active_snapshot_in(session)


def active_snapshot_in(session: Session) -> TerritorySnapshot | None:
    """``active_snapshot`` inside the caller's transaction."""
    model = session.scalar(select(TerritoryModel).where(TerritoryModel.status == ModelStatus.ACTIVE))
    if model is None:
        return None
    return _checked_snapshot(session, model)


# --- stored outlines (the tree views) -----------------------------------------------------------------


def _reference_digest(fingerprint: tuple[Any, ...]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, default=str).encode()).hexdigest()


def tree_for_view(session: Session, model: TerritoryModel) -> TreeShape:
    """The tree of a model's current version for the views (raises ``TreeInvalid``), cheapest first:
    the snapshot this process already holds, else the outline stored for this version and reference
    data, else a snapshot built now, whose outline is then stored for the next process that asks
    (``prm territories tree`` runs in a new process every time)."""
    fp = reference_fingerprint(session)
    url = _url_key(session)
    held: TerritorySnapshot | None = _snapshots.get((url, model.id, model.version, fp))
    if held is not None:
        return held
    digest = _reference_digest(fp)
    stored = session.scalar(select(StoredTreeOutline).where(StoredTreeOutline.model_id == model.id))
    if (
        stored is not None
        and stored.model_version == model.version
        and stored.reference == digest
        and stored.format == OUTLINE_FORMAT
    ):
        outline: TreeOutline = from_document(json.loads(zlib.decompress(stored.body)))
        return outline
    snapshot = build_snapshot(session, model)
    body = zlib.compress(json.dumps(to_document(outline_of(snapshot)), separators=(",", ":")).encode())
    row = {
        "model_id": model.id,
        "model_version": model.version,
        "reference": digest,
        "format": OUTLINE_FORMAT,
        "body": body,
        "stored_at": utcnow(),
    }
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # one statement, whoever else stores the same model's outline at the same time
    stmt = insert(StoredTreeOutline).values(**row)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["model_id"], set_={k: stmt.excluded[k] for k in row if k != "model_id"}
        ),
        execution_options={"synchronize_session": False},
    )
    return snapshot
