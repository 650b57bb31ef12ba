"""Bearer authentication: merchant API keys (with roles) and mobile user tokens.

Missing or bad credentials: 401. Right kind of principal, wrong role: 403. Tenancy (404 for
another merchant's objects) is enforced by the use cases, which always filter by merchant.
"""

from __future__ import annotations

import copy
import functools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
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
from offers import devices as devices_domain

F = TypeVar("F", bound=Callable[..., Any])

SECURITY_SCHEMES = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A merchant API key (`cok_...`) with role owner, staff or analyst, or "
        "a till device's key (staff at one venue only).",
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


def merchant(*roles: str, devices: bool = False) -> Callable[[F], F]:
    """Require a merchant API key with one of `roles`; the principal is `g.merchant`.

    A till device's key (staff, bound to one venue: offers/devices.py) passes only the views
    marked `devices=True`, which act at its venue alone (`venue_scope`); anywhere else it is 403
    `device_not_allowed`. Deny by default: a new view is closed to devices until it says so."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer()
            principal = authenticate_key(db.session(), token) if token else None
            if principal is None:
                raise UnauthorizedError(
                    "a valid merchant API key is required (Authorization: Bearer ...)"
                )
            if principal.venue_id is not None:
                note_device_use(principal)
                if not devices:
                    raise devices_domain.DeviceNotAllowedError(
                        "a till device may only redeem and check codes, read the presence code "
                        "and the till's day at its own venue"
                    )
            if principal.role not in roles:
                raise ForbiddenError(
                    f"this call needs a key with role {' or '.join(roles)}, not {principal.role}"
                )
            g.merchant = principal
            return view(*args, **kwargs)

        _document(wrapper, "apiKey", forbidden=True, roles=roles, devices=devices)
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


def venue_scope(venue_id: uuid.UUID | None) -> uuid.UUID | None:
    """The venue this request acts at: the one it names, or for a till device its own (naming
    another is 403 `venue_not_paired`)."""
    return devices_domain.scoped_venue(current_merchant().venue_id, venue_id)


def note_device_use(principal: MerchantPrincipal) -> None:
    """Record a till device's last use (at most once a minute) in a transaction of its own,
    before the request's work: a refused or failed request was still a use."""
    devices_domain.note_use(
        db.session(), principal.key_id, principal.last_used_at, datetime.now(UTC)
    )


def current_user() -> UserPrincipal:
    principal: UserPrincipal = g.user
    return principal


def _document(
    view: Any,
    scheme: str,
    *,
    forbidden: bool,
    roles: tuple[str, ...] = (),
    devices: bool = False,
) -> None:
    """Security requirement, roles and 401/403 responses in the OpenAPI document (api/openapi.py
    turns `x-roles` and `x-till-device` into the operation's "Who" line)."""
    view._apidoc = apidoc = copy.deepcopy(getattr(view, "_apidoc", {}))
    manual = apidoc.setdefault("manual_doc", {})
    manual["security"] = [{scheme: []}]
    if roles:
        manual["x-roles"] = list(roles)
    if devices:
        manual["x-till-device"] = True
    responses = apidoc.setdefault("response", {}).setdefault("responses", {})
    responses.setdefault(401, []).append("UNAUTHORIZED")
    if forbidden:
        responses.setdefault(403, []).append("FORBIDDEN")
