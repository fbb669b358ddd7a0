"""Signing in to the HTML pages: an API key exchanged for a signed session cookie (HttpOnly,
SameSite=Strict, Secure over TLS), CSRF tokens on every form post, sign-out; the cookie opens the pages
only, never the JSON API, with the rights of the key's user (common/pages.py, directory/pages.py)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from common.errors import PROBLEM_MEDIA_TYPE
from tests.api.territory_support import add_reference_data, small_tree

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return str(found.group(1))


def _cookie_header(resp: Any) -> str:
    cookies = [v for k, v in resp.headers.items() if k == "Set-Cookie" and v.startswith("prm_session=")]
    assert len(cookies) == 1, resp.headers
    return str(cookies[0])


def _sign_in(client: Any, key: str, next_: str | None = None, **kwargs: Any) -> Any:
    token = _token(client.get("/sign-in", **kwargs).get_data(as_text=True))
    form = {"csrf_token": token, "api_key": key}
    if next_ is not None:
        form["next"] = next_
    return client.post("/sign-in", data=form, **kwargs)


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    assert resp.mimetype == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = resp.get_json()
    assert body["status"] == status and body["type"] and body["title"]
    return body


@pytest.fixture
def tree(client, world, db) -> str:
    add_reference_data(db)
    model_id, _ = small_tree(client, world["admin"].headers)
    return f"/territory-models/{model_id}/tree.html"


def test_signing_in_exchanges_the_key_for_a_session_cookie_that_opens_the_pages(client, world, tree):
    form = client.get("/sign-in")
    assert form.status_code == 200 and form.mimetype == "text/html"
    csp = form.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f'<style nonce="{nonce}">' in form.get_data(as_text=True) and "unsafe-inline" not in csp

    key = world["cam_1"].key
    resp = _sign_in(client, key, next_=f"{tree}?root=JP")
    assert resp.status_code == 303 and resp.headers["Location"] == f"{tree}?root=JP"
    cookie = _cookie_header(resp)
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "httponly" in flags and flags["samesite"] == "SameSite=Strict" and "secure" not in flags
    secret = key.split("_", 2)[2]
    assert secret not in cookie and key not in cookie  # the session keeps a proof, never the key

    page = client.get(f"{tree}?root=JP")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'id="t-JP"' in html and 'id="t-WW"' not in html
    assert "Signed in as" in html and 'action="/sign-out"' in html and _token(html)
    assert client.get("/territory-models.html").status_code == 200


def test_the_session_never_authorizes_the_json_api(client, world, tree):
    assert _sign_in(client, world["admin"].key).status_code == 303
    assert client.get(tree).status_code == 200
    _problem(client.get("/v1/territory-models"), 401)
    _problem(client.get(tree.replace("/territory-models", "/v1/territory-models").replace(".html", "")), 401)
    _problem(client.post("/v1/territory-models", json={"name": "by cookie"}), 401)
    # ... while Bearer keys work exactly as before, with or without a cookie
    assert client.get("/v1/territory-models", headers=world["admin"].headers).status_code == 200


def test_a_form_post_without_this_sessions_csrf_token_is_refused(app, client, world, tree):
    assert _sign_in(client, world["admin"].key).status_code == 303
    no_token = client.post("/sign-out", data={"x": "1"})
    assert "CSRF" in _problem(no_token, 403)["detail"]
    _problem(client.post("/sign-out", data={"csrf_token": "forged"}), 403)
    _problem(client.post("/sign-out"), 403)  # no body at all
    # a valid token of another session is not this session's token
    other = app.test_client()
    stolen = _token(other.get("/sign-in").get_data(as_text=True))
    _problem(client.post("/sign-out", data={"csrf_token": stolen}), 403)
    assert client.get(tree).status_code == 200  # still signed in
    # signing in needs the token too (no login CSRF)
    fresh = app.test_client()
    _problem(fresh.post("/sign-in", data={"api_key": world["admin"].key}), 403)


def test_signing_out_ends_the_session(client, world, tree):
    assert _sign_in(client, world["admin"].key).status_code == 303
    token = _token(client.get(tree).get_data(as_text=True))
    out = client.post("/sign-out", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["Location"] == "/sign-in?signed_out=1"
    assert "Expires=Thu, 01 Jan 1970" in _cookie_header(out)
    _problem(client.get(tree), 401)
    again = client.get(tree, headers=HTML)
    assert again.status_code == 303
    assert parse_qs(urlsplit(again.headers["Location"]).query) == {"next": [tree]}
    assert "You are signed out" in client.get("/sign-in?signed_out=1").get_data(as_text=True)


def test_a_browser_without_a_session_is_sent_to_sign_in_and_back(client, world, tree):
    resp = client.get(f"{tree}?root=JP&depth=1", headers=HTML)
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/sign-in"
    target = parse_qs(location.query)["next"][0]
    assert target == f"{tree}?root=JP&depth=1"
    signed = _sign_in(client, world["cam_1"].key, next_=target)
    assert signed.headers["Location"] == target and client.get(target).status_code == 200
    # other clients get the problem
    body = _problem(client.application.test_client().get(tree), 401)
    assert "/sign-in" in body["detail"]


def test_a_partner_session_sees_no_territory_page(client, world, tree):
    assert _sign_in(client, world["partner_user_a"].key).status_code == 303
    _problem(client.get(tree), 403)
    _problem(client.get("/territory-models.html"), 403)


def test_a_wrong_key_is_refused_and_the_form_says_so(client, world):
    bad = world["admin"].key[:-3] + "xyz"
    page = _sign_in(client, bad, headers=HTML)
    assert page.status_code == 401 and page.mimetype == "text/html"
    assert "unknown, revoked" in page.get_data(as_text=True)
    _problem(_sign_in(client, "not a key"), 401)
    assert client.get("/territory-models.html", headers=HTML).status_code == 303  # not signed in


def test_revoking_the_key_ends_its_sessions(client, world, tree):
    admin = world["admin"]
    minted = client.post(
        f"/v1/users/{admin.user_id}/api-keys", json={"name": "browser"}, headers=admin.headers
    )
    assert minted.status_code == 201
    assert _sign_in(client, minted.get_json()["key"]).status_code == 303
    assert client.get(tree).status_code == 200
    revoked = client.delete(
        f"/v1/api-keys/{minted.get_json()['id']}",
        headers={**admin.headers, "If-Match": minted.headers["ETag"]},
    )
    assert revoked.status_code == 200
    _problem(client.get(tree), 401)


def test_a_session_forged_with_the_signing_secret_still_needs_the_key(app, client, world, tree):
    # Whoever knows PRM_SECRET_KEY can sign any cookie, but the proof comes from the key itself.
    public_id = world["admin"].key.split("_", 2)[1]
    serializer = app.session_interface.get_signing_serializer(app)
    forged = serializer.dumps({"key": public_id, "proof": "0" * 64, "user": "admin"})
    client.set_cookie("prm_session", forged)
    _problem(client.get(tree), 401)


def test_the_cookie_is_secure_over_tls(client, world, tree):
    https = {"base_url": "https://prm.example"}
    form = client.get("/sign-in", **https)
    assert "; Secure" in _cookie_header(form)
    token = _token(form.get_data(as_text=True))
    # over HTTPS the CSRF check also wants a Referer from this host
    without_referer = client.post(
        "/sign-in", data={"csrf_token": token, "api_key": world["admin"].key}, **https
    )
    _problem(without_referer, 403)
    resp = client.post(
        "/sign-in",
        data={"csrf_token": token, "api_key": world["admin"].key},
        headers={"Referer": "https://prm.example/sign-in"},
        **https,
    )
    assert resp.status_code == 303 and "; Secure" in _cookie_header(resp)


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_signing_in_goes_nowhere_but_this_site(client, world, target):
    resp = _sign_in(client, world["admin"].key, next_=target)
    assert resp.status_code == 303 and resp.headers["Location"] == "/territory-models.html"


def test_form_posts_take_form_bodies_only(client, world):
    token = _token(client.get("/sign-in").get_data(as_text=True))
    resp = client.post("/sign-in", json={"csrf_token": token, "api_key": world["admin"].key})
    _problem(resp, 415)
