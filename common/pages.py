"""What the HTML pages share: the signed session cookie, CSRF protection, the per-response CSP nonce.

The JSON API (``/v1``) authenticates every request with its Bearer key and never reads the cookie; the
pages also take a Bearer key, or a session a person opened by pasting an API key into ``/sign-in``.

- The session is Flask's own signed cookie (``PRM_SECRET_KEY``): HttpOnly, SameSite=Strict, Secure
  whenever the request came over TLS (``request.is_secure``; gunicorn trusts ``X-Forwarded-Proto`` from
  the proxies in ``FORWARDED_ALLOW_IPS``), and valid for ``PRM_SESSION_HOURS`` after sign-in. It holds the
  key's public id and a proof derived from the key (``common.principal.session_proof``), never the key.
- CSRF: flask-wtf's ``CSRFProtect`` (a per-session random token, signed, compared in constant time, and
  on HTTPS the Referer checked against the host), switched on for the page forms only
  (``protect_form``): API calls carry no ambient credential, so they need none. A refused token is a
  403 problem.
- Every page answers with a Content-Security-Policy that admits only its own inline style and script,
  by a nonce fresh for each response: no CDN, no other origin, no framing.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, Request, Response, g, redirect, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

from common.errors import PROBLEM_BASE, Unauthorized
from common.problems import problem_response
from common.settings import Settings

csrf = CSRFProtect()

#: Endpoints (``blueprint.view``) that take an HTML form post (``application/x-www-form-urlencoded``);
#: every other endpoint's body must be JSON or its declared raw type (``common.jsonbody``).
FORM_ENDPOINTS: set[str] = set()
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"

SIGN_IN_PATH = "/sign-in"
SESSION_COOKIE = "prm_session"


class SignInRequired(Unauthorized):
    """A page was asked for without a key or a session: a browser is sent to the sign-in page, any other
    client gets the 401 problem."""


class PageSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the request itself came over TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or bool(super().get_cookie_secure(app))

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """A request without cookies (every API client) gets an empty session without building the
        signing serializer Flask makes per request (about 3% of a what-if's CPU)."""
        if app.secret_key and not request.environ.get("HTTP_COOKIE"):
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask, settings: Settings) -> None:
    """Configure the session cookie and CSRF protection, and render their refusals as problems."""
    app.secret_key = settings.secret_key
    app.session_interface = PageSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=False,  # per request: see PageSessionInterface
        # the cookie's signed timestamp is its sign-in time: a session ends this long after it
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        SESSION_REFRESH_EACH_REQUEST=False,
        # pages are protected where they say so (protect_form), not every POST of the JSON API
        WTF_CSRF_CHECK_DEFAULT=False,
        # the token lives as long as the session (which is bounded above)
        WTF_CSRF_TIME_LIMIT=None,
    )
    csrf.init_app(app)

    @app.errorhandler(CSRFError)
    def _csrf_refused(exc: CSRFError) -> Response:
        return problem_response(
            {
                "type": PROBLEM_BASE + "csrf-token-invalid",
                "title": "Not allowed",
                "status": 403,
                "detail": f"{exc.description} Reload the page and try again.",
            }
        )

    @app.errorhandler(SignInRequired)
    def _sign_in(exc: SignInRequired) -> Response:
        if wants_html():
            target = request.full_path if request.query_string else request.path
            return redirect(f"{SIGN_IN_PATH}?{urlencode({'next': target})}", 303)  # type: ignore[return-value]
        return problem_response(exc.to_problem())


def protect_form() -> None:
    """Refuse (403 problem) a form post without this session's CSRF token."""
    csrf.protect()


def wants_html() -> bool:
    """Whether the client is a browser asking for a page (it names ``text/html`` before JSON)."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "text/html" and "text/html" in request.accept_mimetypes.values()


def local_target(value: str | None, default: str) -> str:
    """A path on this site to go to after signing in or out; anything else (another host, a scheme,
    ``//host``, backslashes) gives ``default``, so the sign-in page is no open redirect.

    >>> local_target("/territory-models/1/tree.html?root=JP", "/")
    '/territory-models/1/tree.html?root=JP'
    >>> local_target("//evil.example/x", "/"), local_target("https://evil.example", "/")
    ('/', '/')
    >>> local_target("/\\\\evil.example", "/")
    '/'
    """
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return default
    return value


def nonce() -> str:
    """This response's CSP nonce (the same for every call within one request)."""
    value: str | None = g.get("csp_nonce")
    if value is None:
        value = g.csp_nonce = secrets.token_urlsafe(18)
    return value


def page_response(html: str, status: int = 200, **headers: Any) -> Response:
    """An HTML page with its Content-Security-Policy (only its own nonce'd style and script), kept out of
    shared caches and frames."""
    resp = Response(html, status=status, mimetype="text/html")
    n = nonce()
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{n}'; style-src 'nonce-{n}'; img-src data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"
    for key, value in headers.items():
        resp.headers[key.replace("_", "-")] = value
    return resp
