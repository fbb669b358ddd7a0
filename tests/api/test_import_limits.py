"""Import limits: the import endpoints take large bodies (up to PRM_MAX_IMPORT_BYTES, stated in the
OpenAPI document) while every other endpoint keeps PRM_MAX_BODY_BYTES; a misspelt header is reported once
and stops the import; long problem lists are capped; a file that is not UTF-8 is named by row and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.settings import Settings
from tests.support import build_world

SMALL_BODY = 20_000
IMPORT_BODY = 400_000


@pytest.fixture
def small_app(db_url):
    from server import create_app

    application = create_app(
        Settings(
            database_url=db_url, log_json=False, max_body_bytes=SMALL_BODY, max_import_bytes=IMPORT_BODY
        ),
        TESTING=True,
    )
    yield application
    application.extensions["prm.db"].dispose()


@pytest.fixture
def admin(small_app):
    world = build_world(small_app.extensions["prm.db"])
    return world["admin"].headers


def _customers(n: int, *, country: str = "JP") -> str:
    return "key,name,country\n" + "".join(f"C-{i:06d},Customer number {i},{country}\n" for i in range(n))


def test_an_import_larger_than_the_body_limit_is_accepted_up_to_the_import_limit(small_app, admin):
    client = small_app.test_client()
    text = _customers(2_000)
    assert SMALL_BODY < len(text.encode()) < IMPORT_BODY
    resp = client.post(
        "/v1/customers/import?filename=big.csv", data=text, headers={**admin, "Content-Type": "text/csv"}
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["created"] == 2_000

    # every other endpoint keeps the general limit
    big_json = client.post("/v1/what-if", json={"facts": {"note": "x" * SMALL_BODY}}, headers=admin)
    assert big_json.status_code == 413, big_json.get_data()[:300]
    assert big_json.mimetype == "application/problem+json"
    # and the imports refuse what is larger than theirs
    too_big = client.post(
        "/v1/customers/import?filename=huge.csv",
        data=_customers(20_000),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert too_big.status_code == 413


def test_the_openapi_document_states_the_import_limit(small_app):
    spec = small_app.test_client().get("/docs/openapi.json").get_json()
    for path, method in (
        ("/v1/customers/import", "post"),
        ("/v1/products/import", "post"),
        ("/v1/territory-models/{id}/import", "post"),
    ):
        operation = spec["paths"][path][method]
        assert operation["x-max-body-bytes"] == IMPORT_BODY
        assert f"{IMPORT_BODY:,} bytes" in operation["description"]
        assert "413" in operation["responses"]
    assert "x-max-body-bytes" not in spec["paths"]["/v1/what-if"]["post"]


def test_a_misspelt_header_is_reported_once_and_nothing_else_is_checked(small_app, admin):
    client = small_app.test_client()
    model = client.post("/v1/territory-models", json={"name": "typo"}, headers=admin)
    territories = "key,parent,name\nWW,,World\n" + "".join(f"T{i},WW,T{i}\n" for i in range(300))
    coverage = "territory_key,dimension,member,mode\n" + "".join(
        f"T{i},geography,JP,include\n" for i in range(300)
    )
    resp = client.post(
        f"/v1/territory-models/{model.get_json()['id']}/import",
        json={"territories": territories, "coverage": coverage},
        headers={**admin, "If-Match": model.headers["ETag"]},
    )
    assert resp.status_code == 422
    errors = resp.get_json()["errors"]
    assert len(errors) == 1  # the unknown column, not 300 coverage rows naming unknown territories
    assert errors[0]["pointer"] == "territories.csv:1:2"
    assert "'parent'" in errors[0]["detail"] and "parent_key" in errors[0]["detail"]
    assert "header" in resp.get_json()["detail"]


def test_a_long_problem_list_gives_the_first_100_and_a_count(small_app, admin):
    resp = small_app.test_client().post(
        "/v1/customers/import?filename=bad.csv",
        data=_customers(250, country="Japan"),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert resp.status_code == 422
    body = resp.get_json()
    assert len(body["errors"]) == 100
    assert body["errors_omitted"] == 150
    assert body["errors"][0]["pointer"] == "bad.csv:2:3"


def test_a_file_that_is_not_utf8_is_named_by_row_and_column(small_app, admin, tmp_path: Path):
    latin1 = "key,name,country\nC-1,Plain,JP\nC-2,Café Lumière,FR\n".encode("latin-1")
    resp = small_app.test_client().post(
        "/v1/customers/import?filename=latin1.csv", data=latin1, headers={**admin, "Content-Type": "text/csv"}
    )
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["pointer"] == "latin1.csv:3:8"
    assert "not UTF-8" in resp.get_json()["errors"][0]["detail"]

    path = tmp_path / "latin1.csv"
    path.write_bytes(latin1)
    out = small_app.test_cli_runner().invoke(args=["import", "customers", str(path)])
    assert out.exit_code != 0
    assert f"{path}:3:8: not UTF-8 text" in out.output


def test_the_command_line_lists_the_first_100_problems_and_a_count(small_app, admin, tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text(_customers(250, country="Japan"), encoding="utf-8")
    out = small_app.test_cli_runner().invoke(args=["import", "customers", str(path)])
    assert out.exit_code != 0
    lines = [line for line in out.output.splitlines() if line.startswith(f"{path}:")]
    assert len(lines) == 100
    assert "... and 150 more problems" in out.output


def test_the_command_line_imports_with_progress_and_stops_at_a_misspelt_header(
    small_app, admin, tmp_path: Path
):
    client = small_app.test_client()
    model = client.post("/v1/territory-models", json={"name": "cli"}, headers=admin).get_json()["id"]
    good = tmp_path / "territories.csv"
    good.write_text("key,parent_key,name\nWW,,World\nJP,WW,Japan\n", encoding="utf-8")
    coverage = tmp_path / "coverage.csv"
    coverage.write_text("territory_key,dimension,member,mode\nJP,geography,JP,include\n", encoding="utf-8")
    runner = small_app.test_cli_runner()
    out = runner.invoke(
        args=["territories", "import", str(model), "--territories", str(good), "--coverage", str(coverage)]
    )
    assert out.exit_code == 0, out.output
    assert f"model {model}: 2 territories, 1 coverage rows" in out.output

    typo = tmp_path / "typo.csv"
    typo.write_text(
        "key,parent,name\nWW,,World\n" + "".join(f"T{i},WW,T{i}\n" for i in range(500)), encoding="utf-8"
    )
    out = runner.invoke(
        args=["territories", "import", str(model), "--territories", str(typo), "--coverage", str(coverage)]
    )
    assert out.exit_code != 0
    problems = [line for line in out.output.splitlines() if line.startswith(str(typo))]
    assert problems == [
        f"{typo}:1:2: unknown column 'parent' (expected key, parent_key, name, type, partner); "
        "did you mean 'parent_key', 'partner'?"
    ]
