"""Territory models and dimension members uploaded as files (multipart forms), as a person exports them
from a spreadsheet: the files' own names position every problem, a Latin-1 file or a NUL is named by row
and column, the import limit (not the general body limit) applies, If-Match as for the JSON imports, and
nothing is written unless all is well."""

from __future__ import annotations

import io
from typing import Any

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from common.settings import Settings
from tests.support import build_world

SMALL_BODY = 20_000
IMPORT_BODY = 400_000

TERRITORIES = "key,parent_key,name,type\nWW,,World,global\nJP,WW,Japan,country\n"
COVERAGE = "territory_key,dimension,member,mode\nJP,geography,JP,include\n"


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
def client(small_app):
    return small_app.test_client()


@pytest.fixture
def admin(small_app):
    return build_world(small_app.extensions["prm.db"])["admin"].headers


def _model(client: Any, admin: dict[str, str]) -> tuple[int, str]:
    resp = client.post("/v1/territory-models", json={"name": "uploaded"}, headers=admin)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"], resp.headers["ETag"]


def _upload(client: Any, url: str, headers: dict[str, str], **parts: tuple[bytes, str]) -> Any:
    """A multipart form of the files, encoded in memory (as a browser or curl -F sends it)."""
    files = {name: FileStorage(io.BytesIO(raw), filename=filename) for name, (raw, filename) in parts.items()}
    boundary, body = encode_multipart(files)
    content_type = f"multipart/form-data; boundary={boundary}"
    return client.post(url, data=body, headers={**headers, "Content-Type": content_type})


def _territories(client: Any, admin: dict[str, str], model_id: int) -> list[str]:
    resp = client.get(f"/v1/territory-models/{model_id}/territories?limit=500", headers=admin)
    return sorted(t["key"] for t in resp.get_json()["items"])


def test_a_model_uploaded_as_three_files_replaces_the_planning_model(client, admin):
    model_id, etag = _model(client, admin)
    url = f"/v1/territory-models/{model_id}/import/upload"
    parts = {
        "territories": (TERRITORIES.encode(), "FY27 territories.csv"),
        "coverage": (COVERAGE.encode(), "FY27 coverage.csv"),
    }
    no_etag = _upload(client, url, admin, **parts)
    assert no_etag.status_code == 428 and no_etag.mimetype == "application/problem+json"
    done = _upload(client, url, {**admin, "If-Match": etag}, **parts)
    assert done.status_code == 200, done.get_json()
    assert (done.get_json()["territories"], done.get_json()["coverage_rows"]) == (2, 1)
    assert done.headers["ETag"] != etag
    assert _territories(client, admin, model_id) == ["JP", "WW"]


def test_problems_name_the_files_as_uploaded_and_nothing_is_written(client, admin):
    model_id, etag = _model(client, admin)
    url = f"/v1/territory-models/{model_id}/import/upload"
    headers = {**admin, "If-Match": etag}
    bad_row = _upload(
        client,
        url,
        headers,
        territories=((TERRITORIES + "KR,NOPE,Korea,country\n").encode(), "mine.csv"),
        coverage=(COVERAGE.encode(), "cov.csv"),
    )
    assert bad_row.status_code == 422
    assert [e["pointer"] for e in bad_row.get_json()["errors"]] == ["mine.csv:4:2"]

    latin1 = (TERRITORIES + "FR,WW,Métropole,country\n").encode("latin-1")
    resp = _upload(client, url, headers, territories=(latin1, "latin1.csv"), members=(b"x\x00", "m.csv"))
    assert resp.status_code == 422
    assert {e["pointer"] for e in resp.get_json()["errors"]} == {"latin1.csv:4:8", "m.csv:1:2"}

    missing = _upload(client, url, headers, coverage=(COVERAGE.encode(), "cov.csv"))
    assert missing.status_code == 422
    assert [e["pointer"] for e in missing.get_json()["errors"]] == ["/territories"]

    as_json = client.post(url, json={"territories": TERRITORIES}, headers=headers)
    assert as_json.status_code == 415
    assert _territories(client, admin, model_id) == []  # nothing written by any of them


def test_uploads_take_bodies_up_to_the_import_limit(client, admin):
    model_id, etag = _model(client, admin)
    url = f"/v1/territory-models/{model_id}/import/upload"
    rows = "".join(f"T{i:05d},WW,Territory number {i},region\n" for i in range(3_000))
    big = (TERRITORIES + rows).encode()
    assert SMALL_BODY < len(big) < IMPORT_BODY
    resp = _upload(client, url, {**admin, "If-Match": etag}, territories=(big, "big.csv"))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["territories"] == 3_002

    huge = (TERRITORIES + rows * 50).encode()
    assert len(huge) > IMPORT_BODY
    too_big = _upload(
        client, url, {**admin, "If-Match": resp.headers["ETag"]}, territories=(huge, "huge.csv")
    )
    assert too_big.status_code == 413 and too_big.mimetype == "application/problem+json"


def test_dimension_members_uploaded_as_a_file(client, admin):
    model_id, etag = _model(client, admin)
    url = f"/v1/territory-models/{model_id}/dimensions/geography/members/import/upload"
    members = "key,parent,name\nFR-69-LYON,FR-ARA,Lyon metropolitan area\n"
    bad = _upload(
        client, url, {**admin, "If-Match": etag}, members=(b"key,parent,name\nX,NOWHERE,X\n", "p.csv")
    )
    assert bad.status_code == 422
    assert bad.get_json()["errors"][0]["pointer"].startswith("p.csv:2:")
    done = _upload(client, url, {**admin, "If-Match": etag}, members=(members.encode(), "postal.csv"))
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["members"] == 1
    listed = client.get(
        f"/v1/territory-models/{model_id}/dimensions/geography/members?parent=FR-ARA", headers=admin
    ).get_json()
    assert "FR-69-LYON" in {m["key"] for m in listed["items"]}


def test_the_openapi_document_describes_the_uploads(client):
    spec = client.get("/docs/openapi.json").get_json()
    for path, required in (
        ("/v1/territory-models/{id}/import/upload", ["territories"]),
        ("/v1/territory-models/{id}/dimensions/{key}/members/import/upload", ["members"]),
    ):
        operation = spec["paths"][path]["post"]
        body = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert body["required"] == required
        assert operation["x-max-body-bytes"] == IMPORT_BODY
        assert {"412", "428", "413"} <= set(operation["responses"])
