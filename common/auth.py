"""Authentication at the edge: every ``/v1`` request carries a principal: the key's user, its roles
and its organization. Endpoints declare the roles they admit with ``@allow``; the check runs before the
body is validated, so an unauthorised caller learns nothing from validation messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import current_app, g, request

from common.errors import Forbidden, Unauthorized
from common.principal import Principal, Role, split_key

F = TypeVar("F", bound=Callable[..., Any])


PrincipalLoader = Callable[[str, str], Principal | None]


def allow(*roles: Role | Iterable[Role]) -> Callable[[F], F]:
    """Declare which roles may call an endpoint (checked before the request body is read)."""
    admitted: set[Role] = set()
    for r in roles:
        if isinstance(r, Role):
            admitted.add(r)
        else:
            admitted.update(r)

    def mark(func: F) -> F:
        func.prm_roles = frozenset(admitted)  # type: ignore[attr-defined]
        return func

    return mark


def public(func: F) -> F:
    """Mark an endpoint as open to anonymous callers (health, inbound signed requests)."""
    func.prm_public = True  # type: ignore[attr-defined]
    return func


def _declared(view: Any, name: str) -> Any:
    while view is not None:
        if hasattr(view, name):
            return getattr(view, name)
        view = getattr(view, "__wrapped__", None)
    return None


def authenticate_request(loader: PrincipalLoader) -> None:
    """``before_request`` hook: resolve the bearer key and enforce the endpoint's ``@allow`` roles."""
    g.principal = None
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or _declared(view, "prm_public"):
        return
    if not request.path.startswith("/v1"):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Send an API key as 'Authorization: Bearer <key>'")
    parts = split_key(token.strip())
    principal = loader(*parts) if parts else None
    if principal is None:
        raise Unauthorized("The API key is unknown, revoked, or its user is inactive")
    g.principal = principal
    roles = _declared(view, "prm_roles")
    if roles is None:
        # Fail closed: an endpoint that forgot to declare its roles admits nobody.
        raise Forbidden("This endpoint declares no roles")
    if not principal.roles.intersection(roles):
        raise Forbidden("Your role may not call this endpoint")


def current_principal() -> Principal:
    principal: Principal | None = g.get("principal")
    if principal is None:
        raise Unauthorized()
    return principal
