"""Bearer authentication: merchant API keys (with roles) and mobile user tokens.

Missing or bad credentials: 401. Right kind of principal, wrong role: 403. Tenancy (404 for
another merchant's objects) is enforced by the use cases, which always filter by merchant.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request
from sqlalchemy import Connection

from api import db
from core.accounts import (
    MerchantPrincipal,
    UserPrincipal,
    authenticate_key,
    authenticate_user,
)
from core.errors import ForbiddenError, UnauthorizedError

F = TypeVar("F", bound=Callable[..., Any])

SECURITY_SCHEMES = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A merchant API key (`cok_...`) with role owner, staff or analyst.",
    },
    "userToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A mobile user's token (`cou_...`) from POST /v1/users or /v1/users/token.",
    },
}


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def merchant(*roles: str) -> Callable[[F], F]:
    """Require a merchant API key with one of `roles`; the principal is `g.merchant`."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer()
            principal = authenticate_key(db.session(), token) if token else None
            if principal is None:
                raise UnauthorizedError(
                    "a valid merchant API key is required (Authorization: Bearer ...)"
                )
            if principal.role not in roles:
                raise ForbiddenError(
                    f"this call needs a key with role {' or '.join(roles)}, not {principal.role}"
                )
            g.merchant = principal
            return view(*args, **kwargs)

        _document(wrapper, "apiKey", forbidden=True)
        return wrapper  # type: ignore[return-value]

    return decorate


def user(view: F) -> F:
    """Require a mobile user token; the principal is `g.user`."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.user = current_user_or_none()
        if g.user is None:
            raise UnauthorizedError("a valid user token is required (Authorization: Bearer ...)")
        return view(*args, **kwargs)

    _document(wrapper, "userToken", forbidden=False)
    return wrapper  # type: ignore[return-value]


def current_user_or_none(conn: Connection | None = None) -> UserPrincipal | None:
    """The user whose token the request carries, looked up on `conn` if given (a view in
    autocommit), else on the request's session."""
    token = bearer()
    return authenticate_user(conn or db.session(), token) if token else None


def current_merchant() -> MerchantPrincipal:
    principal: MerchantPrincipal = g.merchant
    return principal


def current_user() -> UserPrincipal:
    principal: UserPrincipal = g.user
    return principal


def _document(view: Any, scheme: str, *, forbidden: bool) -> None:
    """Security requirement and 401/403 responses in the OpenAPI document."""
    view._apidoc = apidoc = copy.deepcopy(getattr(view, "_apidoc", {}))
    manual = apidoc.setdefault("manual_doc", {})
    manual["security"] = [{scheme: []}]
    responses = apidoc.setdefault("response", {}).setdefault("responses", {})
    responses.setdefault(401, []).append("UNAUTHORIZED")
    if forbidden:
        responses.setdefault(403, []).append("FORBIDDEN")
