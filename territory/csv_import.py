"""CSV import of a whole territory model (pure): three files, every row checked, every problem reported.

Files (row 1 is the header; column order is free; blank lines are skipped):

- territories: ``key,parent_key,name,type[,partner]`` (``type`` defaults to ``channel``)
- coverage: ``territory_key,dimension,member,mode`` (``mode`` is ``include`` or ``exclude``)
- members: ``territory_key,user,role`` (a user key of the brand owner holding that role)

Every problem of all three files is reported at once as ``file:row:column: message`` with "did you mean"
for unknown territories, dimensions, members, users and roles. Nothing is returned unless all is well.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from common.errors import FieldProblem, ValidationFailed
from territory.dimensions import Dimension, MemberHierarchy, ordered
from territory.errors import HierarchyInvalid, TreeInvalid, did_you_mean, hint
from territory.models import CoverageMode
from territory.team import UserDirectory, team_member_problem
from territory.tree import Coverage, TeamMember, TerritoryDef, check_tree

MAX_ROWS = 200_000
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TYPE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
DEFAULT_TYPE = "channel"
T = TypeVar("T")

TERRITORY_COLUMNS = (
    ("key", True),
    ("parent_key", False),
    ("name", True),
    ("type", False),
    ("partner", False),
)
COVERAGE_COLUMNS = (("territory_key", True), ("dimension", True), ("member", True), ("mode", True))
MEMBER_COLUMNS = (("territory_key", True), ("user", True), ("role", True))


@dataclass(frozen=True)
class ModelFiles:
    """The three files' texts and the names used in messages."""

    territories: str
    coverage: str = "territory_key,dimension,member,mode\n"
    members: str = "territory_key,user,role\n"
    names: tuple[str, str, str] = ("territories.csv", "coverage.csv", "members.csv")


@dataclass
class _Row:
    number: int
    values: dict[str, str]
    columns: dict[str, int] = field(repr=False)

    def col(self, name: str) -> int:
        return self.columns.get(name, 1)


class _Problems:
    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, file: str, row: int, column: int, message: str) -> None:
        self.items.append(FieldProblem(f"{file}:{row}:{column}", message))


@dataclass(frozen=True)
class _RowProblems:
    """Problems of one row, each at a named column and prefixed with the column's name."""

    file: str
    row: _Row
    problems: _Problems

    def add(self, column: str, message: str) -> None:
        self.problems.add(self.file, self.row.number, self.row.col(column), f"{column}: {message}")


@dataclass(frozen=True)
class _Entry(Generic[T]):
    """One row as read: what makes it unique (a repeat is reported at ``column`` as "``what`` already on
    row N") and its value, ``None`` when the row has problems and is left out."""

    identity: tuple[str, ...]
    column: str
    what: str
    value: T | None


def _table(
    file: str,
    text: str,
    spec: Sequence[tuple[str, bool]],
    read: Callable[[_Row, _RowProblems], _Entry[T] | None],
    problems: _Problems,
) -> list[T]:
    """The values of one file's rows, each read by ``read`` (``None``: too broken to compare with others);
    a row repeating an earlier one is reported and left out."""
    seen: dict[tuple[str, ...], int] = {}
    values: list[T] = []
    for row in _rows(file, text, spec, problems):
        at = _RowProblems(file, row, problems)
        entry = read(row, at)
        if entry is None:
            continue
        previous = seen.get(entry.identity)
        if previous is not None:
            at.add(entry.column, f"{entry.what} already on row {previous}")
            continue
        seen[entry.identity] = row.number
        if entry.value is not None:
            values.append(entry.value)
    return values


def _header(file: str, text: str, spec: Sequence[tuple[str, bool]], problems: _Problems) -> list[str] | None:
    """The file's column names, or ``None`` with its header problems in ``problems``."""
    names = [n for n, _ in spec]
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        problems.add(file, 1, 1, "the file has no header row")
        return None
    except csv.Error as exc:
        problems.add(file, 1, 1, str(exc))
        return None
    bad_header = False
    for col, name in enumerate(header, start=1):
        if name not in names:
            problems.add(
                file,
                1,
                col,
                f"unknown column {name!r} (expected {', '.join(names)}){hint(did_you_mean(name, names))}",
            )
            bad_header = True
        elif name in header[: col - 1]:
            problems.add(file, 1, col, f"column {name!r} appears twice")
            bad_header = True
    for name, required in spec:
        if required and name not in header:
            problems.add(file, 1, len(header) + 1, f"missing required column {name!r}")
            bad_header = True
    return None if bad_header else header


def _rows(file: str, text: str, spec: Sequence[tuple[str, bool]], problems: _Problems) -> Iterator[_Row]:
    """Yield the non-blank data rows of one file; header and shape problems go to ``problems``."""
    header = _header(file, text, spec, problems)
    if header is None:
        return
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    next(reader)
    columns = {name: i for i, name in enumerate(header, start=1)}
    row_no = 1
    try:
        for row_no, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if row_no > MAX_ROWS + 1:
                problems.add(file, row_no, 1, f"more than {MAX_ROWS} rows; split the file")
                return
            if len(cells) != len(header):
                problems.add(
                    file,
                    row_no,
                    min(len(cells), len(header)) + 1,
                    f"expected {len(header)} cells, found {len(cells)}",
                )
                continue
            values = {n: c.strip() for n, c in zip(header, cells, strict=True) if c.strip()}
            missing = [n for n, required in spec if required and n not in values]
            for n in missing:
                problems.add(file, row_no, columns[n], f"{n}: a value is required")
            if not missing:
                yield _Row(row_no, values, columns)
    except csv.Error as exc:
        problems.add(file, row_no, 1, str(exc))


def _territory_row(row: _Row, at: _RowProblems, partners: MemberHierarchy | None) -> _Entry[_Row] | None:
    v = row.values
    key_ok = True
    for name, pattern, what in (
        ("key", _KEY, "letters, digits, '.', '_' or '-', at most 64"),
        ("parent_key", _KEY, "letters, digits, '.', '_' or '-', at most 64"),
        ("type", _TYPE, "lowercase letters, digits, '_' or '-', at most 40"),
    ):
        if name in v and not pattern.match(v[name]):
            at.add(name, f"{v[name]!r} is not valid ({what})")
            key_ok = key_ok and name != "key"
    if len(v["name"]) > 200:
        at.add("name", "longer than 200 characters")
    partner = v.get("partner")
    if partner is not None and partners is not None and partner not in partners:
        at.add("partner", f"unknown partner {partner!r}{hint(partners.suggest(partner))}")
    if not key_ok:
        return None
    # Kept despite other problems, so that rows naming it are not reported as unknown territories too.
    return _Entry((v["key"],), "key", f"territory {v['key']!r}", row)


def _territories(file: str, text: str, dims: Mapping[str, MemberHierarchy], p: _Problems) -> dict[str, _Row]:
    partners = dims.get(Dimension.PARTNER)
    rows = _table(file, text, TERRITORY_COLUMNS, lambda row, at: _territory_row(row, at, partners), p)
    by_key = {row.values["key"]: row for row in rows}
    _structure(file, by_key, p)
    return by_key


def _structure(file: str, by_key: Mapping[str, _Row], p: _Problems) -> None:
    """Known parents, exactly one root, no cycles; reported on the rows concerned."""
    roots = [r for r in by_key.values() if "parent_key" not in r.values]
    for row in by_key.values():
        parent = row.values.get("parent_key")
        if parent is not None and parent not in by_key:
            p.add(
                file,
                row.number,
                row.col("parent_key"),
                f"parent_key: unknown territory {parent!r}{hint(did_you_mean(parent, by_key.keys()))}",
            )
    if by_key and not roots:
        p.add(file, 2, 1, "no root territory: exactly one row must have an empty parent_key")
    for extra in roots[1:]:
        p.add(
            file,
            extra.number,
            extra.col("parent_key"),
            f"parent_key: a second root; {roots[0].values['key']!r} on row {roots[0].number} is already the root",
        )
    done: set[str] = set()
    for start in by_key:
        chain: list[str] = []
        cur: str | None = start
        while cur is not None and cur in by_key and cur not in done and cur not in chain:
            chain.append(cur)
            cur = by_key[cur].values.get("parent_key")
        if cur is not None and cur in chain:
            cycle = chain[chain.index(cur) :]
            for k in cycle:
                row = by_key[k]
                p.add(
                    file,
                    row.number,
                    row.col("parent_key"),
                    f"parent_key: cycle {' -> '.join([*cycle, cycle[0]])}",
                )
        done.update(chain)


def _known_territory(key: str, territories: Mapping[str, _Row], at: _RowProblems) -> bool:
    if key in territories:
        return True
    at.add("territory_key", f"unknown territory {key!r}{hint(did_you_mean(key, territories.keys()))}")
    return False


_MODES = [m.value for m in CoverageMode]


def _coverage_row(
    row: _Row,
    at: _RowProblems,
    territories: Mapping[str, _Row],
    dims: Mapping[str, MemberHierarchy],
) -> _Entry[tuple[str, str, str, str]] | None:
    v = row.values
    t, dim_name, member, mode = v["territory_key"], v["dimension"], v["member"], v["mode"].lower()
    ok = _known_territory(t, territories, at)
    known = ordered(dims)
    if dim_name not in dims:
        at.add(
            "dimension",
            f"unknown dimension {dim_name!r}{hint(did_you_mean(dim_name, known))} (one of {', '.join(known)})",
        )
        return None
    dim = dim_name
    hierarchy = dims.get(dim)
    if hierarchy is None or member not in hierarchy:
        suggestions = hierarchy.suggest(member) if hierarchy is not None else ()
        at.add("member", f"unknown {dim} member {member!r}{hint(suggestions)}")
        ok = False
    if mode not in _MODES:
        at.add("mode", f"{v['mode']!r} is not one of include, exclude{hint(did_you_mean(mode, _MODES))}")
        ok = False
    what = f"{dim} {member!r} of territory {t!r}"
    return _Entry((t, dim_name, member), "member", what, (t, dim, member, mode) if ok else None)


def _coverage(
    file: str,
    text: str,
    territories: Mapping[str, _Row],
    dims: Mapping[str, MemberHierarchy],
    p: _Problems,
) -> dict[str, dict[str, tuple[set[str], set[str]]]]:
    out: dict[str, dict[str, tuple[set[str], set[str]]]] = {}
    rows = _table(file, text, COVERAGE_COLUMNS, lambda row, at: _coverage_row(row, at, territories, dims), p)
    for t, dim, member, mode in rows:
        include, exclude = out.setdefault(t, {}).setdefault(dim, (set(), set()))
        (include if mode == CoverageMode.INCLUDE else exclude).add(member)
    return out


def _member_row(
    row: _Row, at: _RowProblems, territories: Mapping[str, _Row], users: UserDirectory
) -> _Entry[tuple[str, TeamMember]]:
    t, user, role = row.values["territory_key"], row.values["user"], row.values["role"]
    ok = _known_territory(t, territories, at)
    why = team_member_problem(user, role, users)
    if why:
        at.add("user" if why.startswith("unknown internal user") else "role", why)
        ok = False
    what = f"{user!r} as {role!r} of territory {t!r}"
    return _Entry((t, user, role), "user", what, (t, TeamMember(user, role)) if ok else None)


def _members(
    file: str, text: str, territories: Mapping[str, _Row], users: UserDirectory, p: _Problems
) -> dict[str, list[TeamMember]]:
    out: dict[str, list[TeamMember]] = {}
    rows = _table(file, text, MEMBER_COLUMNS, lambda row, at: _member_row(row, at, territories, users), p)
    for t, member in rows:
        out.setdefault(t, []).append(member)
    return out


def parse_model(
    files: ModelFiles, dims: Mapping[str, MemberHierarchy], users: UserDirectory
) -> list[TerritoryDef]:
    """Parse and check the three files against the reference data; return the model's definitions.

    Raises ``ValidationFailed`` listing every problem of every file as ``file:row:column``.

    >>> from territory.geography import geography_parents
    >>> dims = {Dimension.GEOGRAPHY: MemberHierarchy(geography_parents(), name="geography")}
    >>> files = ModelFiles("key,parent_key,name\\nWW,,World\\nJP,WW,Japan\\n", "territory_key,dimension,member,mode\\nJP,geography,JP,include\\n")
    >>> [d.key for d in parse_model(files, dims, {})]
    ['WW', 'JP']
    """
    tfile, cfile, mfile = files.names
    p = _Problems()
    # A misspelt column makes every row of its file (and every row naming its territories) wrong: the
    # header problems are reported alone, once, and nothing else is checked.
    for name, text, spec in (
        (tfile, files.territories, TERRITORY_COLUMNS),
        (cfile, files.coverage, COVERAGE_COLUMNS),
        (mfile, files.members, MEMBER_COLUMNS),
    ):
        _header(name, text, spec, p)
    if p.items:
        raise ValidationFailed(
            f"{len(p.items)} problem(s) in the files' header rows; nothing else was checked", p.items
        )
    territories = _territories(tfile, files.territories, dims, p)
    coverage = _coverage(cfile, files.coverage, territories, dims, p)
    team = _members(mfile, files.members, territories, users, p)
    if not territories and not p.items:
        p.add(tfile, 2, 1, "no territories: the file has a header but no rows")
    if p.items:
        raise ValidationFailed(f"{len(p.items)} problem(s) in the territory files", p.items)
    defs = [
        TerritoryDef(
            key,
            row.values.get("parent_key"),
            row.values["name"],
            row.values.get("type", DEFAULT_TYPE),
            tuple(team.get(key, ())),
            row.values.get("partner"),
            {dim: Coverage.of(inc, exc) for dim, (inc, exc) in coverage.get(key, {}).items()},
        )
        for key, row in territories.items()
    ]
    try:
        check_tree(defs, dims)
    except TreeInvalid as exc:  # a backstop: the row checks above should have caught everything
        for problem in exc.problems:
            row = territories.get(problem.territory or "")
            p.add(tfile, row.number if row else 1, 1, problem.message)
        raise ValidationFailed(f"{len(p.items)} problem(s) in the territory files", p.items) from None
    return defs


# --- dimension members --------------------------------------------------------------------------------

MEMBER_FILE_COLUMNS = (("key", True), ("parent", False), ("name", False))


@dataclass(frozen=True)
class MemberRow:
    """One member an admin adds to a dimension (or, for a country, the region it moves to)."""

    key: str
    parent: str | None
    name: str | None


def parse_members(
    file: str,
    text: str,
    dimension: str,
    base: MemberHierarchy,
    movable: Collection[str] = (),
    moves_under: str | None = None,
) -> list[MemberRow]:
    """Parse a dimension's member file (``key,parent,name``) against the members it builds on.

    A row adds a member under ``parent`` (an existing member or one of the file's rows; empty: a top-level
    member). A row naming an existing member is allowed only for ``movable`` ones (countries) and moves it;
    its new parent must then be a child of ``moves_under`` (a region, under ``WORLD``). Raises ``ValidationFailed`` listing every problem as
    ``file:row:column``; nothing is returned unless all is well.

    >>> base = MemberHierarchy({"WORLD": None, "EMEA": "WORLD", "FR": "EMEA"}, name="geography")
    >>> parse_members("m.csv", "key,parent,name\\nFR-75001,FR,Paris 1er\\n", "geography", base)
    [MemberRow(key='FR-75001', parent='FR', name='Paris 1er')]
    """
    p = _Problems()

    def read(row: _Row, at: _RowProblems) -> _Entry[_Row] | None:
        v = row.values
        ok = True
        for name in ("key", "parent"):
            if name in v and not _KEY.match(v[name]):
                at.add(name, f"{v[name]!r} is not valid (letters, digits, '.', '_' or '-', at most 64)")
                ok = False
        if len(v.get("name", "")) > 200:
            at.add("name", "longer than 200 characters")
            ok = False
        if v["key"] in base and v["key"] not in movable:
            at.add("key", f"{dimension} member {v['key']!r} exists already and cannot be moved")
            ok = False
        return _Entry((v["key"],), "key", f"member {v['key']!r}", row if ok else None)

    rows = _table(file, text, MEMBER_FILE_COLUMNS, read, p)
    mine = {r.values["key"]: r for r in rows}
    for r in rows:
        parent = r.values.get("parent")
        if parent is not None and parent not in mine and parent not in base:
            suggestions = did_you_mean(parent, [*mine, *base])
            p.add(
                file,
                r.number,
                r.col("parent"),
                f"parent: unknown {dimension} member {parent!r}{hint(suggestions)}",
            )
    merged = dict(base.parents())
    merged.update({k: r.values.get("parent") for k, r in mine.items()})
    for k, r in mine.items():
        parent = r.values.get("parent")
        if k in base and moves_under is not None and (parent is None or merged.get(parent) != moves_under):
            p.add(
                file,
                r.number,
                r.col("parent"),
                f"parent: {k!r} can move only to a member under {moves_under!r}",
            )
    if not p.items:
        try:
            MemberHierarchy(merged, name=dimension)
        except HierarchyInvalid as exc:
            for problem in exc.problems:
                at = mine.get(problem.member)
                p.add(
                    file, at.number if at else 1, at.col("parent") if at else 1, f"parent: {problem.message}"
                )
    if p.items:
        raise ValidationFailed(f"{len(p.items)} problem(s) in the {dimension} members", p.items)
    return [MemberRow(k, r.values.get("parent"), r.values.get("name")) for k, r in mine.items()]
