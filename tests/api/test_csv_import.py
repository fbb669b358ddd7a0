"""CSV imports over HTTP and from the command line: a good file creates and updates records; a file with
bad rows is refused as a whole, every bad row named as ``file:row:column``, and nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from common.audit import AuditEvent
from directory.models import Customer, Product

CUSTOMERS_GOOD = (
    "key,name,parent_key,country,region,industry,size\n"
    "ACME,Acme Corp,,US,AMER,retail,enterprise\n"
    "ACME-DE,Acme Germany,ACME,DE,EMEA,retail,large\n"
    "SOLO,Solo Shop,,JP,APAC,,small\n"
)

CUSTOMERS_BAD = (
    '"key","name","parent_key","country","region","industry","size"\n'
    "OK-1,Fine Corp,,US,,,\n"  # row 2: fine
    "BAD-1,Bad Country,,usa,,,\n"  # row 3: country (column 4)
    "BAD-2,Bad Size,,US,,,huge\n"  # row 4: size (column 7)
    "OK-1,Duplicate,,US,,,\n"  # row 5: key (column 1) already on row 2
    "BAD-3,Too few cells\n"  # row 6: 2 of 7 cells (column 3)
)

PRODUCTS_GOOD = (
    "key,name,level,parent_key\nnet,Networking,group,\nsw,Switches,subgroup,net\nsw-1,SW 1,item,sw\n"
)


def csv_headers(world: Any) -> dict[str, str]:
    return {**world["admin"].headers, "Content-Type": "text/csv"}


def count(db: Any, model: Any) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)))


def pointers(resp: Any) -> list[str]:
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == 422 and body["type"] and body["title"]
    return [e["pointer"] for e in body["errors"]]


def test_a_good_customer_file_creates_then_updates(client, world, db):
    url = "/v1/customers/import?filename=accounts.csv"
    resp = client.post(url, data=CUSTOMERS_GOOD, headers=csv_headers(world))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"file": "accounts.csv", "created": 3, "updated": 0}
    listed = client.get("/v1/customers?limit=10", headers=world["admin"].headers).get_json()["items"]
    by_key = {c["key"]: c for c in listed}
    assert by_key["ACME-DE"]["parent_key"] == "ACME"
    assert by_key["SOLO"]["size"] == "small"

    changed = CUSTOMERS_GOOD.replace("Solo Shop,,JP", "Solo Shop Renamed,,JP") + "NEW,New One,SOLO,FR,,,\n"
    resp = client.post(url, data=changed, headers=csv_headers(world))
    assert resp.get_json() == {"file": "accounts.csv", "created": 1, "updated": 3}
    listed = client.get("/v1/customers?limit=10", headers=world["admin"].headers).get_json()["items"]
    by_key = {c["key"]: c for c in listed}
    assert by_key["SOLO"]["name"] == "Solo Shop Renamed"
    assert by_key["NEW"]["parent_key"] == "SOLO"
    assert count(db, Customer) == 4


def test_a_good_product_file_builds_the_catalog(client, world, db):
    resp = client.post(
        "/v1/products/import?filename=catalog.csv", data=PRODUCTS_GOOD, headers=csv_headers(world)
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"file": "catalog.csv", "created": 3, "updated": 0}
    items = client.get("/v1/products", headers=world["admin"].headers).get_json()["items"]
    assert {p["key"]: p["parent_key"] for p in items} == {"net": None, "sw": "net", "sw-1": "sw"}


def test_a_file_saved_by_a_spreadsheet_with_a_byte_order_mark_imports(client, world, db):
    data = ("\ufeff" + CUSTOMERS_GOOD).encode("utf-8")
    resp = client.post("/v1/customers/import", data=data, headers=csv_headers(world))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert count(db, Customer) == 3


def test_a_customer_file_with_bad_rows_lists_every_one_and_writes_nothing(client, world, db):
    client.post("/v1/customers/import", data=CUSTOMERS_GOOD, headers=csv_headers(world))
    customers, audits = count(db, Customer), count(db, AuditEvent)
    resp = client.post(
        "/v1/customers/import?filename=bad.csv", data=CUSTOMERS_BAD, headers=csv_headers(world)
    )
    assert sorted(pointers(resp)) == ["bad.csv:3:4", "bad.csv:4:7", "bad.csv:5:1", "bad.csv:6:3"]
    assert (count(db, Customer), count(db, AuditEvent)) == (customers, audits)


def test_hierarchy_problems_name_the_parent_column_and_write_nothing(client, world, db):
    client.post("/v1/customers/import", data=CUSTOMERS_GOOD, headers=csv_headers(world))
    before = client.get("/v1/customers?limit=10", headers=world["admin"].headers).get_json()
    data = (
        '"name","key","country","parent_key"\n'  # quoted header, parent_key in column 4
        "Fine,FINE,US,ACME\n"
        "Orphan,ORPHAN,US,NOWHERE\n"
        "Acme moved,ACME,US,ACME-DE\n"  # ACME-DE is stored under ACME: a cycle
    )
    resp = client.post("/v1/customers/import?filename=tree.csv", data=data, headers=csv_headers(world))
    assert sorted(pointers(resp)) == ["tree.csv:3:4", "tree.csv:4:4"]
    assert client.get("/v1/customers?limit=10", headers=world["admin"].headers).get_json() == before


def test_a_product_file_breaking_level_rules_writes_nothing(client, world, db):
    data = "key,name,level,parent_key\nnet,Networking,group,\nsw,Switches,subgroup,\nx,X,item,x2\nx2,X2,item,net\n"
    resp = client.post("/v1/products/import?filename=catalog.csv", data=data, headers=csv_headers(world))
    assert sorted(pointers(resp)) == ["catalog.csv:3:4", "catalog.csv:4:4"]
    assert count(db, Product) == 0


def test_a_file_that_is_not_utf8_is_refused(client, world, db):
    data = "key,name,country\nC1,Caf\u00e9,FR\n".encode("latin-1")
    resp = client.post("/v1/customers/import", data=data, headers=csv_headers(world))
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    assert count(db, Customer) == 0


def test_only_an_admin_may_import(client, world, db):
    for actor in ("cam_1", "partner_admin_a", "integration"):
        resp = client.post(
            "/v1/customers/import",
            data=CUSTOMERS_GOOD,
            headers={**world[actor].headers, "Content-Type": "text/csv"},
        )
        assert resp.status_code == 403
    assert count(db, Customer) == 0


def test_the_openapi_document_declares_csv_bodies_for_imports(client):
    spec = client.get("/docs/openapi.json").get_json()
    for path in ("/v1/customers/import", "/v1/products/import"):
        assert "text/csv" in spec["paths"][path]["post"]["requestBody"]["content"]


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def test_the_cli_imports_a_good_file(cli, db, tmp_path: Path):
    file = tmp_path / "accounts.csv"
    file.write_text(CUSTOMERS_GOOD, encoding="utf-8")
    result = cli.invoke(args=["import", "customers", str(file)])
    assert result.exit_code == 0, result.output
    assert "3 created, 0 updated" in result.output
    assert count(db, Customer) == 3


def test_the_cli_prints_one_line_per_problem_and_writes_nothing(cli, db, tmp_path: Path):
    file = tmp_path / "bad.csv"
    file.write_text(CUSTOMERS_BAD, encoding="utf-8")
    result = cli.invoke(args=["import", "customers", str(file)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.startswith(str(file))]
    assert sorted(line.split(": ", 1)[0] for line in lines) == [
        f"{file}:3:4",
        f"{file}:4:7",
        f"{file}:5:1",
        f"{file}:6:3",
    ]
    assert "Traceback" not in result.output
    assert count(db, Customer) == 0


def test_the_cli_refuses_a_file_that_is_not_utf8_with_one_line(cli, db, tmp_path: Path):
    file = tmp_path / "latin1.csv"
    file.write_bytes("key,name,country\nC1,Caf\u00e9,FR\n".encode("latin-1"))
    result = cli.invoke(args=["import", "products", str(file)])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "UTF-8" in result.output
    assert count(db, Product) == 0
