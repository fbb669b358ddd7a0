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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from common.errors import FieldProblem, ValidationFailed
from territory.dimensions import Dimension, MemberHierarchy
from territory.errors import TreeInvalid, did_you_mean, hint
from territory.models import CoverageMode
from territory.team import UserDirectory, team_member_problem
from territory.tree import Coverage, TeamMember, TerritoryDef, check_tree

MAX_ROWS = 200_000
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TYPE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
DEFAULT_TYPE = "channel"

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


def _rows(file: str, text: str, spec: Sequence[tuple[str, bool]], problems: _Problems) -> Iterator[_Row]:
    """Yield the non-blank data rows of one file; header and shape problems go to ``problems``."""
    names = [n for n, _ in spec]
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        problems.add(file, 1, 1, "the file has no header row")
        return
    except csv.Error as exc:
        problems.add(file, 1, 1, str(exc))
        return
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
    if bad_header:
        return
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


def _territories(
    file: str, text: str, dims: Mapping[Dimension, MemberHierarchy], p: _Problems
) -> dict[str, _Row]:
    partners = dims.get(Dimension.PARTNER)
    by_key: dict[str, _Row] = {}
    for row in _rows(file, text, TERRITORY_COLUMNS, p):
        v = row.values
        ok = True
        for name, pattern, what in (
            ("key", _KEY, "letters, digits, '.', '_' or '-', at most 64"),
            ("parent_key", _KEY, "letters, digits, '.', '_' or '-', at most 64"),
            ("type", _TYPE, "lowercase letters, digits, '_' or '-', at most 40"),
        ):
            if name in v and not pattern.match(v[name]):
                p.add(file, row.number, row.col(name), f"{name}: {v[name]!r} is not valid ({what})")
                ok = ok and name != "key"
        if len(v["name"]) > 200:
            p.add(file, row.number, row.col("name"), "name: longer than 200 characters")
        partner = v.get("partner")
        if partner is not None and partners is not None and partner not in partners:
            p.add(
                file,
                row.number,
                row.col("partner"),
                f"partner: unknown partner {partner!r}{hint(partners.suggest(partner))}",
            )
        if not ok:
            continue
        key = v["key"]
        if key in by_key:
            p.add(
                file,
                row.number,
                row.col("key"),
                f"key: territory {key!r} already on row {by_key[key].number}",
            )
            continue
        by_key[key] = row
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


def _coverage(
    file: str,
    text: str,
    territories: Mapping[str, _Row],
    dims: Mapping[Dimension, MemberHierarchy],
    p: _Problems,
) -> dict[str, dict[Dimension, tuple[set[str], set[str]]]]:
    out: dict[str, dict[Dimension, tuple[set[str], set[str]]]] = {}
    seen: dict[tuple[str, str, str], int] = {}
    dim_names = [d.value for d in Dimension]
    modes = [m.value for m in CoverageMode]
    for row in _rows(file, text, COVERAGE_COLUMNS, p):
        v = row.values
        t, dim_name, member, mode = v["territory_key"], v["dimension"], v["member"], v["mode"].lower()
        ok = True
        if t not in territories:
            p.add(
                file,
                row.number,
                row.col("territory_key"),
                f"territory_key: unknown territory {t!r}{hint(did_you_mean(t, territories.keys()))}",
            )
            ok = False
        if dim_name not in dim_names:
            p.add(
                file,
                row.number,
                row.col("dimension"),
                f"dimension: unknown dimension {dim_name!r}{hint(did_you_mean(dim_name, dim_names))} (one of {', '.join(dim_names)})",
            )
            continue
        dim = Dimension(dim_name)
        hierarchy = dims.get(dim)
        if hierarchy is None or member not in hierarchy:
            suggestions = hierarchy.suggest(member) if hierarchy is not None else ()
            p.add(
                file,
                row.number,
                row.col("member"),
                f"member: unknown {dim} member {member!r}{hint(suggestions)}",
            )
            ok = False
        if mode not in modes:
            p.add(
                file,
                row.number,
                row.col("mode"),
                f"mode: {v['mode']!r} is not one of include, exclude{hint(did_you_mean(mode, modes))}",
            )
            ok = False
        previous = seen.get((t, dim_name, member))
        if previous is not None:
            p.add(
                file,
                row.number,
                row.col("member"),
                f"member: {dim} {member!r} of territory {t!r} already on row {previous}",
            )
            continue
        seen[(t, dim_name, member)] = row.number
        if ok:
            include, exclude = out.setdefault(t, {}).setdefault(dim, (set(), set()))
            (include if mode == CoverageMode.INCLUDE else exclude).add(member)
    return out


def _members(
    file: str, text: str, territories: Mapping[str, _Row], users: UserDirectory, p: _Problems
) -> dict[str, list[TeamMember]]:
    out: dict[str, list[TeamMember]] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for row in _rows(file, text, MEMBER_COLUMNS, p):
        t, user, role = row.values["territory_key"], row.values["user"], row.values["role"]
        ok = True
        if t not in territories:
            p.add(
                file,
                row.number,
                row.col("territory_key"),
                f"territory_key: unknown territory {t!r}{hint(did_you_mean(t, territories.keys()))}",
            )
            ok = False
        why = team_member_problem(user, role, users)
        if why:
            column = "user" if why.startswith("unknown internal user") else "role"
            p.add(file, row.number, row.col(column), f"{column}: {why}")
            ok = False
        previous = seen.get((t, user, role))
        if previous is not None:
            p.add(
                file,
                row.number,
                row.col("user"),
                f"user: {user!r} as {role!r} of territory {t!r} already on row {previous}",
            )
            continue
        seen[(t, user, role)] = row.number
        if ok:
            out.setdefault(t, []).append(TeamMember(user, role))
    return out


def parse_model(
    files: ModelFiles, dims: Mapping[Dimension, MemberHierarchy], users: UserDirectory
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
