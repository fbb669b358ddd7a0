"""CSV import services: validate the whole file against the stored data, then write it in one transaction
(create new keys, update existing ones). A file with any bad row writes nothing."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select

from common import audit
from common.database import Database
from common.principal import Principal
from directory.csv_import import ParsedRows, check_hierarchy, check_product_levels, parse_rows
from directory.enums import ProductLevel
from directory.models import Customer, Product
from directory.schemas import CustomerCreate, ImportReport, ProductCreate

Row = TypeVar("Row", CustomerCreate, ProductCreate)
Rec = TypeVar("Rec", Customer, Product)


def _parent_column(text: str) -> int:
    # Read the header as the parser does (quotes, byte-order mark), so positions match its report.
    header = [h.strip() for h in next(csv.reader(io.StringIO(text.removeprefix("\ufeff"))), [])]
    return header.index("parent_key") + 1 if "parent_key" in header else 1


def _import(
    db: Database,
    principal: Principal | None,
    file: str,
    text: str,
    row_model: type[Row],
    record_model: type[Rec],
    extra_check: Callable[[ParsedRows[Row], dict[str, Rec], int], None] | None = None,
) -> ImportReport:
    parsed = parse_rows(file, text, row_model)
    column = _parent_column(text)
    with db.transaction() as session:
        stored: dict[str, Rec] = {r.key: r for r in session.scalars(select(record_model))}
        id_to_key = {r.id: k for k, r in stored.items()}
        existing_parent = {k: id_to_key.get(r.parent_id) if r.parent_id else None for k, r in stored.items()}
        check_hierarchy(file, parsed, existing_parent, column)
        if extra_check:
            extra_check(parsed, stored, column)
        created = updated = 0
        for _, row in parsed.rows:
            values = row.model_dump(exclude={"parent_key"}, exclude_unset=True)
            record = stored.get(row.key)
            if record is None:
                record = record_model(**values)
                session.add(record)
                stored[row.key] = record
                created += 1
            else:
                for field, value in values.items():
                    setattr(record, field, value)
                updated += 1
        session.flush()  # new rows get ids before parents are linked
        for _, row in parsed.rows:
            stored[row.key].parent_id = stored[row.parent_key].id if row.parent_key else None
        session.flush()
        report = ImportReport(file=file, created=created, updated=updated)
        audit.record(
            session,
            principal,
            f"{record_model.__tablename__}_import",
            0,
            "imported",
            details=report.model_dump(),
        )
        return report


def import_customers(db: Database, principal: Principal | None, file: str, text: str) -> ImportReport:
    """Import customers (``key,name,parent_key,country,region,industry,size``), all or nothing."""
    return _import(db, principal, file, text, CustomerCreate, Customer)


def import_products(db: Database, principal: Principal | None, file: str, text: str) -> ImportReport:
    """Import catalog products (``key,name,level,parent_key``), all or nothing."""

    def levels(parsed: ParsedRows[ProductCreate], stored: dict[str, Product], column: int) -> None:
        check_product_levels(file, parsed, {k: ProductLevel(p.level) for k, p in stored.items()}, column)

    return _import(db, principal, file, text, ProductCreate, Product, levels)
