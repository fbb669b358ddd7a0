"""The sign-in and sign-out pages, and who is asking for a page.

A person pastes an API key into ``/sign-in``; the key is checked like a Bearer key and exchanged for the
signed session cookie of ``common.pages`` (which keeps a proof derived from the key, never the key).
The session authorizes the HTML pages only: the JSON API reads its Bearer header and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, session

from common.database import Database
from common.errors import Forbidden, Unauthorized
from common.pages import (
    FORM_ENDPOINTS,
    SIGN_IN_PATH,
    SignInRequired,
    local_target,
    nonce,
    page_response,
    protect_form,
    wants_html,
)
from common.principal import Principal, Role, split_key
from directory.services.users import principal_for_key, principal_for_session, sign_in_with_key

pages = Blueprint("directory_pages", __name__, template_folder="templates")

#: Where a person lands after signing in when the sign-in page was not opened from another page.
HOME = "/territory-models.html"


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def page_principal(admit: Iterable[Role]) -> Principal:
    """The principal asking for a page: a Bearer key as on the API, else the signed-in session; refused
    with 401 (a browser is sent to the sign-in page) or 403 when none of its roles is admitted."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        parts = split_key(token.strip())
        principal = principal_for_key(_db(), *parts) if parts else None
        if principal is None:
            raise Unauthorized("The API key is unknown, revoked, or its user is inactive")
    elif "key" in session:
        principal = principal_for_session(_db(), session["key"], session.get("proof", ""))
        if principal is None:
            session.clear()
            raise SignInRequired("Your session has ended (its key was revoked or its user deactivated)")
        g.page_user = session.get("user", "")
    else:
        raise SignInRequired(
            f"Sign in at {SIGN_IN_PATH}, or send an API key as 'Authorization: Bearer <key>'"
        )
    if not principal.roles.intersection(admit):
        raise Forbidden("Your role may not see this page")
    return principal


def signed_in_user() -> str | None:
    """The signed-in person's name when this request came with a session (the page then offers sign-out)."""
    user: str | None = g.get("page_user")
    return user


def _sign_in_page(*, error: str | None = None, status: int = 200) -> Response:
    signed_in = None
    if "key" in session and principal_for_session(_db(), session["key"], session.get("proof", "")):
        signed_in = session.get("user", "")
    html = render_template(
        "sign_in.html",
        nonce=nonce(),
        next=local_target(request.values.get("next"), HOME),
        error=error,
        signed_in=signed_in,
        signed_out="signed_out" in request.args,
        home=HOME,
    )
    return page_response(html, status)


@pages.get(SIGN_IN_PATH)
def sign_in_form() -> Response:
    """The sign-in form (or, when signed in, who you are and a sign-out button)."""
    return _sign_in_page()


@pages.post(SIGN_IN_PATH)
def sign_in_submit() -> Response:
    """Exchange a pasted API key for a session cookie (the form's CSRF token is checked first)."""
    protect_form()
    found = sign_in_with_key(_db(), request.form.get("api_key", ""))
    if found is None:
        message = "That API key is unknown, revoked, or its user is inactive."
        if wants_html():
            return _sign_in_page(error=message, status=401)
        raise Unauthorized(message)
    _, signed = found
    session.clear()  # a fresh session (and CSRF token) for the signed-in person
    session.update(key=signed.public_id, proof=signed.proof, user=signed.user_name)
    return redirect(local_target(request.form.get("next"), HOME), 303)  # type: ignore[return-value]


@pages.post("/sign-out")
def sign_out() -> Response:
    """End the session: the cookie is cleared (the CSRF token is checked first)."""
    protect_form()
    session.clear()
    return redirect(f"{SIGN_IN_PATH}?signed_out=1", 303)  # type: ignore[return-value]


FORM_ENDPOINTS.update({"directory_pages.sign_in_submit", "directory_pages.sign_out"})
