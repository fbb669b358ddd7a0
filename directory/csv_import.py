"""CSV bulk import of customers and products: pure parsing and validation.

Every row is checked before anything is written; every problem is reported as ``file:row:column: message``
(row 1 is the header). Rows either create a record or update the one with the same key.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from common.errors import FieldProblem, ValidationFailed
from directory.catalog import check_product_parent
from directory.enums import ProductLevel
from directory.schemas import CustomerCreate, ProductCreate

R = TypeVar("R", bound=BaseModel)

MAX_ROWS = 200_000


@dataclass(frozen=True)
class ParsedRows(Generic[R]):
    rows: list[tuple[int, R]]  # (row number, validated row)


def _problem(file: str, row: int, column: int, message: str) -> FieldProblem:
    return FieldProblem(f"{file}:{row}:{column}", message)


def parse_rows(file: str, text: str, model: type[R]) -> ParsedRows[R]:
    """Parse and validate every row against ``model``; raise one ``ValidationFailed`` listing all problems."""
    fields = list(model.model_fields)
    required = [f for f, info in model.model_fields.items() if info.is_required()]
    # Spreadsheets save "CSV UTF-8" with a byte-order mark; it is not part of the first column's name.
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    problems: list[FieldProblem] = []
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationFailed("Empty file", [_problem(file, 1, 1, "the file has no header row")]) from None
    except csv.Error as exc:
        raise ValidationFailed("Unreadable CSV", [_problem(file, 1, 1, str(exc))]) from None
    header = [h.strip() for h in header]
    for col, name in enumerate(header, start=1):
        if name not in fields:
            problems.append(
                _problem(file, 1, col, f"unknown column {name!r}; expected some of {', '.join(fields)}")
            )
        elif name in header[: col - 1]:
            problems.append(_problem(file, 1, col, f"column {name!r} appears twice"))
    for name in required:
        if name not in header:
            problems.append(_problem(file, 1, len(header) + 1, f"missing required column {name!r}"))
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in {file}", problems)

    column_of = {name: i for i, name in enumerate(header, start=1)}
    rows: list[tuple[int, R]] = []
    seen: dict[str, int] = {}
    row_no = 1
    try:
        for row_no, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if row_no > MAX_ROWS + 1:
                problems.append(_problem(file, row_no, 1, f"more than {MAX_ROWS} rows; split the file"))
                break
            if len(cells) != len(header):
                problems.append(
                    _problem(
                        file,
                        row_no,
                        min(len(cells), len(header)) + 1,
                        f"expected {len(header)} cells, found {len(cells)}",
                    )
                )
                continue
            values = {
                name: cell.strip() for name, cell in zip(header, cells, strict=True) if cell.strip() != ""
            }
            try:
                parsed = model.model_validate(values)
            except ValidationError as exc:
                for err in exc.errors(include_url=False, include_input=False):
                    field = str(err["loc"][0]) if err["loc"] else ""
                    problems.append(_problem(file, row_no, column_of.get(field, 1), f"{field}: {err['msg']}"))
                continue
            key = getattr(parsed, "key")  # noqa: B009 - every import model has a key
            if key in seen:
                problems.append(
                    _problem(file, row_no, column_of["key"], f"key {key!r} already on row {seen[key]}")
                )
                continue
            seen[key] = row_no
            rows.append((row_no, parsed))
    except csv.Error as exc:
        problems.append(_problem(file, row_no, 1, str(exc)))
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in {file}", problems)
    return ParsedRows(rows)


def check_hierarchy(
    file: str,
    parsed: ParsedRows[CustomerCreate] | ParsedRows[ProductCreate],
    existing_parent: Mapping[str, str | None],
    parent_column: int,
) -> None:
    """Every parent key must exist (in the file or stored) and no record may become its own ancestor."""
    parent_of: dict[str, str | None] = dict(existing_parent)
    for _, row in parsed.rows:
        parent_of[row.key] = row.parent_key
    problems: list[FieldProblem] = []
    for row_no, row in parsed.rows:
        if row.parent_key is not None and row.parent_key not in parent_of:
            problems.append(
                _problem(file, row_no, parent_column, f"parent_key: unknown key {row.parent_key!r}")
            )
            continue
        seen: set[str] = set()
        node = row.parent_key
        # Stop at a cycle higher up without blaming this row: the rows in that cycle are reported.
        while node is not None and node not in seen:
            if node == row.key:
                problems.append(
                    _problem(
                        file, row_no, parent_column, f"parent_key: {row.key!r} would be its own ancestor"
                    )
                )
                break
            seen.add(node)
            node = parent_of.get(node)
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in {file}", problems)


def check_product_levels(
    file: str,
    parsed: ParsedRows[ProductCreate],
    existing_level: Mapping[str, ProductLevel],
    parent_column: int,
) -> None:
    """Groups sit at the top, subgroups under groups, items under groups or subgroups."""
    level_of = dict(existing_level)
    level_of.update({row.key: row.level for _, row in parsed.rows})
    problems = []
    for row_no, row in parsed.rows:
        parent_level = level_of.get(row.parent_key) if row.parent_key else None
        problem = check_product_parent(row.level, parent_level)
        if problem:
            problems.append(_problem(file, row_no, parent_column, f"parent_key: {problem}"))
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in {file}", problems)
