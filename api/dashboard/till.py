"""The till, pairing a till device, and the owner's list of till devices.

A till works at one venue. A paired device (offers/devices.py) is at its own venue, always; an
owner or a staff key picks the venue (remembered in the session) unless the merchant has only
one. Pairing (`/dashboard/pair`) needs no sign-in: the one-time code is the credential, and the
device's key goes into a cookie of its own (`session.set_device_cookie`), never into a page.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app, g, redirect, render_template, request, session, url_for

from api import db
from api.dashboard import session as dash_session
from api.dashboard.views import (
    _principal,
    _render,
    _uuid_or_none,
    _venue_choices,
    blp,
    end_sign_in,
    page,
)
from api.observability import request_id
from core.accounts import MerchantPrincipal, authenticate_key
from core.audit import Actor
from core.errors import NotFoundError
from offers import codes, devices

TILL_VENUE = "till_venue"  # the session's remembered venue of an owner's or staff key's till
# The code format, for the till's check of a typed code before it asks (offers/codes.py decides).
CODE_FORMAT = {
    "symbols": codes.SYMBOLS,
    "check-symbols": codes.CHECK_SYMBOLS,
    "length": codes.CODE_LENGTH,
    "qr-prefix": codes.QR_PREFIX,
}


@blp.get("/till")
@page("owner", "staff")
def till() -> Any:
    principal: MerchantPrincipal = g.dashboard_principal
    venues = _venue_choices()
    device = None
    wanted: uuid.UUID | None
    if principal.venue_id is not None:
        try:
            device = devices.get_device(db.session(), principal.merchant_id, principal.key_id)
        except NotFoundError:
            return _render("dashboard/not_found.html", 404, what="venue")
        wanted = principal.venue_id
    else:
        asked = _uuid_or_none(request.args.get("venue"))
        wanted = asked or _uuid_or_none(session.get(TILL_VENUE))
        if asked is not None and any(v.id == asked for v in venues):
            session[TILL_VENUE] = str(asked)
    venue = next((v for v in venues if v.id == wanted), None)
    if venue is None and len(venues) == 1:
        venue = venues[0]
    return _render(
        "dashboard/till.html",
        venues=venues,
        venue=venue,
        this_device=device,
        code_format=CODE_FORMAT,
    )


@blp.get("/settings/devices", endpoint="devices")
@page("owner")
def devices_page() -> Any:
    """Pair a till device (a one-time code and its QR code), the list with last use, revoke."""
    return _render("dashboard/devices.html", venues=_venue_choices())


@blp.route("/pair", methods=["GET", "POST"])
def pair() -> Any:
    """Pair this browser as a till device with a code an owner showed it (typed, or in the URL
    of the QR code). GET never pairs: a link preview must not use up the code."""
    error = None
    status = 200
    code = request.values.get("code", "")[:64]
    ended = request.args.get("ended") == "1"
    if request.method == "POST":
        if not dash_session.csrf_matches(session, request.form.get(dash_session.CSRF_FIELD)):
            error, status = "The form had expired. Please try again.", 400
        else:
            try:
                _device, api_key = devices.pair_device(
                    db.uow(), Actor(None, None, request_id()), code
                )
            except devices.PairingCodeInvalidError as refused:
                error, status = _pairing_error(refused), 422
            else:
                _forget_previous_device()
                end_sign_in()  # whoever was signed in here: this browser is a till now
                dash_session.csrf_token(session)
                response = redirect(url_for("dashboard.till"))
                dash_session.set_device_cookie(current_app, response, api_key)
                return response
    elif not ended and not code:
        principal = _principal()
        if principal is not None and g.get("dashboard_device"):
            return redirect(url_for("dashboard.till"))  # paired already
    page_html = render_template(
        "dashboard/pair.html",
        error=error,
        code=code,
        ended=ended,
        unpaired=request.args.get("unpaired") == "1",
        principal=None,
        nav=[],
    )
    response = current_app.make_response((page_html, status))
    if ended:
        dash_session.clear_device_cookie(current_app, response)
    return response


def _pairing_error(refused: devices.PairingCodeInvalidError) -> str:
    if refused.detail.startswith("not a pairing code"):
        return "That is not a pairing code: it has 8 letters and digits, like 7K3Q-XM9T."
    return "That code is wrong, used or expired. Ask an owner to show a new one."


def _forget_previous_device() -> None:
    """Pairing again replaces this browser's device: the old one's key is revoked, not left
    working where nobody holds it."""
    old = dash_session.device_key_of(current_app, request)
    if old is None:
        return
    principal = authenticate_key(db.session(), old)
    if principal is not None and principal.venue_id is not None:
        devices.revoke_device(
            db.uow(),
            Actor(principal.key_id, principal.role, request_id()),
            principal.merchant_id,
            principal.key_id,
        )


@blp.post("/device/unpair")
@page("staff")
def unpair() -> Any:
    """The device revokes its own key and forgets it: pairing again needs a new code."""
    principal: MerchantPrincipal = g.dashboard_principal
    if not g.get("dashboard_device") or not dash_session.csrf_matches(
        session, request.form.get(dash_session.CSRF_FIELD)
    ):
        return redirect(url_for("dashboard.till"))
    devices.revoke_device(
        db.uow(),
        Actor(principal.key_id, principal.role, request_id()),
        principal.merchant_id,
        principal.key_id,
    )
    session.clear()
    response = redirect(url_for("dashboard.pair", unpaired=1))
    dash_session.clear_device_cookie(current_app, response)
    return response
