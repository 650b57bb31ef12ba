"""The dashboard's pages, and signing in and out.

Pages are rendered on the server and enhanced by the modules in `static/js/`, which call the
JSON API through `/dashboard/api/...` (`api.dashboard.proxy`). Each page needs a role: owners
see everything, staff the till and the presence code, analysts the analytics. A paired till
device is staff at its venue only; its pages live in `api/dashboard/till.py`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from api import auth, db
from api.dashboard import geocode as geocoder
from api.dashboard import session as dash_session
from api.errors import problem
from api.schemas import SINGLE_LINE_REFUSED
from core import dashboard_sessions, webhooks
from core.accounts import MerchantPrincipal, authenticate_key
from core.errors import NotFoundError
from core.models import Merchant, Venue
from geo import venues as geo_venues
from offers import analytics as analytics_domain
from offers import catalog
from offers import feedback as feedback_domain

F = TypeVar("F", bound=Callable[..., Any])

blp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
)


@dataclass(frozen=True)
class Page:
    endpoint: str
    label: str
    roles: tuple[str, ...]
    # Whether a paired till device (staff at one venue) sees it: the API refuses a device's key
    # anything but the till's calls.
    devices: bool = True


PAGES = (
    Page("dashboard.offers", "Offers", ("owner",)),
    Page("dashboard.venues", "Venues", ("owner",)),
    Page("dashboard.till", "Till", ("owner", "staff")),
    Page("dashboard.presence_venues", "Presence code", ("owner", "staff")),
    Page("dashboard.feedback", "Feedback", ("owner", "staff"), devices=False),
    Page("dashboard.nfc_tags", "NFC tags", ("owner",)),
    Page("dashboard.analytics", "Analytics", ("owner", "analyst")),
    Page("dashboard.devices", "Till devices", ("owner",)),
    Page("dashboard.settings", "Settings", ("owner",)),
)
ROLE_NAMES = {"owner": "Owner", "staff": "Staff", "analyst": "Analyst"}

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # Leaflet and Geoman position map elements with style attributes.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        # The map search's geocoder is asked by the server (api/dashboard/geocode.py), never
        # by the browser.
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


@functools.cache
def csp_for(tile_url: str | None) -> str:
    """The dashboard's CSP; with a production tile server (`MAP_TILE_URL`), exactly its origin
    may serve images too."""
    if not tile_url:
        return CSP
    parts = urlsplit(tile_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return CSP.replace("img-src 'self' data: blob:", f"img-src 'self' data: blob: {origin}")


@blp.app_template_global()
def venue_label(venue: Any) -> str:
    """A venue as a choice shows it: its name, and its address when it has one, which tells
    venues of the same name apart (static/js/venue-words.js does the same in the browser)."""
    address = getattr(venue, "address", None)
    return f"{venue.name} — {address}" if address else str(venue.name)


@blp.app_context_processor
def _map_settings() -> dict[str, Any]:
    """What the pages' maps need to know (base.html puts it in meta tags for basemap.js)."""
    config = current_app.config
    return {
        "map_tile_url": config.get("MAP_TILE_URL") or "",
        "map_tile_attribution": config.get("MAP_TILE_ATTRIBUTION") or "",
        "map_geocoder": bool(config.get("GEOCODER_URL")),
    }


@blp.after_request
def _security_headers(response: Response) -> Response:
    response.headers.setdefault(
        "Content-Security-Policy", csp_for(current_app.config.get("MAP_TILE_URL"))
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # The till scans codes with the camera (a secure context: HTTPS, or localhost); nothing
    # else may use it, nor the microphone.
    response.headers.setdefault("Permissions-Policy", "camera=(self), microphone=()")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@blp.app_template_global()
def csrf_token() -> str:
    return dash_session.csrf_token(session)


# ---- who is signed in ------------------------------------------------------------------------


def _principal() -> MerchantPrincipal | None:
    """The signed-in key, or else this browser's till device, checked against the database on
    every request (revoked: signed out). `g.dashboard_device` says which it is."""
    found = dash_session.credential(current_app, request, session)
    if "key" in session and (found is None or found[1]):
        session.clear()  # signed out elsewhere, or expired: the cookie's key is of no use now
    if found is None:
        return None
    api_key, is_device = found
    principal = authenticate_key(db.session(), api_key)
    if principal is None:
        if not is_device:
            session.clear()
        return None
    if is_device and principal.venue_id is None:
        return None  # a device's cookie holds a device's key, or nothing
    if principal.venue_id is not None:
        auth.note_device_use(principal)
    if is_device and "merchant" not in session:
        merchant = db.session().get(Merchant, principal.merchant_id)
        session["merchant"] = merchant.name if merchant else ""
    g.dashboard_device = is_device
    return principal


def _pages_for(principal: MerchantPrincipal) -> list[Page]:
    device = principal.venue_id is not None
    return [page for page in PAGES if principal.role in page.roles and (page.devices or not device)]


def _render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    principal: MerchantPrincipal | None = g.get("dashboard_principal")
    return render_template(
        template,
        principal=principal,
        role_name=("Till" if principal.venue_id else ROLE_NAMES.get(principal.role, ""))
        if principal
        else "",
        device=g.get("dashboard_device", False),
        merchant_name=session.get("merchant", ""),
        nav=_pages_for(principal) if principal else [],
        **context,
    ), status


def page(*roles: str) -> Callable[[F], F]:
    """Require a signed-in key with one of `roles`; otherwise the sign-in page or a 403 page."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = _principal()
            if principal is None:
                if dash_session.device_key_of(current_app, request) is not None:
                    return redirect(url_for("dashboard.pair", ended=1))  # unpaired or revoked
                return redirect(url_for("dashboard.sign_in", next=request.full_path.rstrip("?")))
            g.dashboard_principal = principal
            if principal.role not in roles:
                return _render("dashboard/forbidden.html", 403, roles=roles)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def json_call(*roles: str) -> Callable[[F], F]:
    """The same for the pages' own JSON calls, which also need the CSRF header."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = _principal()
            if principal is None:
                return problem(401, "unauthorized", "the dashboard session has ended: sign in")
            if not dash_session.csrf_matches(
                session, request.headers.get(dash_session.CSRF_HEADER)
            ):
                return problem(403, "csrf_failed", "missing or wrong CSRF token: reload the page")
            if principal.role not in roles:
                return problem(403, "forbidden", f"a {principal.role} key cannot do this")
            g.dashboard_principal = principal
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _safe_next(target: str | None) -> str:
    """Only a path inside the dashboard: never an open redirect, and nothing a Location header
    cannot hold (CR, LF and other control characters, which made a 500) or a person should not
    be sent to unseen (bidirectional controls): the Text rules of api/schemas.py."""
    if target:
        parts = urlsplit(target)
        if (
            not parts.scheme
            and not parts.netloc
            and parts.path.startswith("/dashboard/")
            and "\\" not in target
            and not SINGLE_LINE_REFUSED.search(target)
        ):
            return target
    return url_for("dashboard.home")


# ---- signing in and out ----------------------------------------------------------------------


def end_sign_in() -> None:
    """Forget this browser's sign-in, on the server too: a copy of its cookie ends with it."""
    session_id = dash_session.session_id_of(session)
    if session_id is not None:
        dashboard_sessions.end_session(db.uow(), session_id)
    session.clear()


@blp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    """A merchant API key (owner, staff or analyst) opens the pages its role may see."""
    error = None
    status = 200
    if request.method == "POST":
        api_key = request.form.get("api_key", "").strip()
        if not dash_session.csrf_matches(session, request.form.get(dash_session.CSRF_FIELD)):
            error = "The form had expired. Please sign in again."
            status = 400
        else:
            principal = authenticate_key(db.session(), api_key) if api_key else None
            if principal is None:
                error = "That key is not valid, or it has been revoked."
                status = 401
            else:
                merchant = db.session().get(Merchant, principal.merchant_id)
                end_sign_in()  # a sign-in before this one in this browser ends
                session_id = dashboard_sessions.open_session(
                    db.uow(), principal.key_id, current_app.config["PERMANENT_SESSION_LIFETIME"]
                )
                session.clear()
                session.permanent = True
                session["key"] = dash_session.seal_key(current_app, api_key)
                session[dash_session.SESSION_ID] = str(session_id)
                session["merchant"] = merchant.name if merchant else ""
                dash_session.csrf_token(session)
                return redirect(_safe_next(request.args.get("next")))
    elif _principal() is not None and not g.get("dashboard_device"):
        return redirect(_safe_next(request.args.get("next")))
    return render_template(
        "dashboard/sign_in.html",
        error=error,
        signed_out=request.args.get("signed_out") == "1",
        principal=None,
        nav=[],
    ), status


@blp.post("/sign-out")
def sign_out() -> Any:
    """End the sign-in on the server too: a copy of the cookie stops working with it."""
    if dash_session.csrf_matches(session, request.form.get(dash_session.CSRF_FIELD)):
        end_sign_in()
    return redirect(url_for("dashboard.sign_in", signed_out=1))


@blp.get("/")
@page("owner", "staff", "analyst")
def home() -> Any:
    principal: MerchantPrincipal = g.dashboard_principal
    return redirect(url_for(_pages_for(principal)[0].endpoint))


# ---- pages -----------------------------------------------------------------------------------


@blp.get("/venues")
@page("owner")
def venues() -> Any:
    return _render("dashboard/venues.html", timezones=geo_venues.timezone_names())


@blp.get("/geocode")
@json_call("owner")
def geocode() -> Any:
    """The map search's production geocoder, asked on the browser's behalf (geocode.py says
    why). `q`: what was typed; `near`: `lat,lon` of the map's centre, preferred, not required."""
    url = current_app.config.get("GEOCODER_URL")
    if not url:
        return problem(404, "not_found", "no geocoder is configured (GEOCODER_URL)")
    query = (request.args.get("q") or "").strip()
    if not query or len(query) > geocoder.MAX_QUERY or SINGLE_LINE_REFUSED.search(query):
        return problem(
            422,
            "validation_error",
            "say what to find",
            errors={"q": [f"1 to {geocoder.MAX_QUERY} characters of one line of text"]},
        )
    near = None
    try:
        lat, lon = (float(x) for x in (request.args.get("near") or "").split(","))
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            near = (lat, lon)
    except ValueError:
        pass
    try:
        places = geocoder.search(
            url, query, near=near, language=request.headers.get("Accept-Language")
        )
    except geocoder.GeocoderError as failure:
        current_app.logger.warning("geocoder: %s", failure)
        return problem(502, "geocoder_unavailable", "the address search is not answering now")
    return {"places": places}


@blp.get("/offers")
@page("owner")
def offers() -> Any:
    return _render("dashboard/offers.html")


@blp.get("/offers/new")
@page("owner")
def offer_new() -> Any:
    return _render("dashboard/offer_form.html", offer_id=None)


# Page routes take ids as plain strings (checked here): they are cookie-authenticated HTML pages,
# so the API's tenancy test, which calls every `<uuid:...>` route with a bearer key, does not
# apply; tests/e2e/test_dashboard_security.py checks their tenancy with a signed-in session.


@blp.get("/offers/<string(length=36):offer_id>/edit")
@page("owner")
def offer_edit(offer_id: str) -> Any:
    principal: MerchantPrincipal = g.dashboard_principal
    found = _uuid_or_none(offer_id)
    try:
        if found is None:
            raise NotFoundError("no such offer")
        catalog.get_offer(db.session(), principal.merchant_id, found)
    except NotFoundError:
        return _render("dashboard/not_found.html", 404, what="offer")
    return _render("dashboard/offer_form.html", offer_id=str(found))


@blp.get("/presence")
@page("owner", "staff")
def presence_venues() -> Any:
    return _render("dashboard/presence_venues.html", venues=_venue_choices())


@blp.get("/presence/<string(length=36):venue_id>")
@page("owner", "staff")
def presence(venue_id: str) -> Any:
    principal: MerchantPrincipal = g.dashboard_principal
    found = _uuid_or_none(venue_id)
    try:
        if found is None:
            raise NotFoundError("no such venue")
        if principal.venue_id not in (None, found):
            raise NotFoundError("a till device shows its own venue's code")
        venue = geo_venues.get_venue(db.session(), principal.merchant_id, found)
    except NotFoundError:
        return _render("dashboard/not_found.html", 404, what="venue")
    return _render("dashboard/presence.html", venue=venue)


@blp.get("/nfc-tags")
@page("owner")
def nfc_tags() -> Any:
    """The venues' NTAG 424 DNA tags: register (keys and URL shown once, with a printable
    programming sheet) and remove (docs/presence.md)."""
    return _render("dashboard/nfc_tags.html", venues=_venue_choices())


@blp.get("/feedback")
@page("owner", "staff")
def feedback() -> Any:
    """The inbox: unanswered feedback from verified visits, oldest first, with the visit it
    came from, how long it has waited, and a reply form in place (docs/feedback.md). Not for a
    paired till device, whose key the API refuses here."""
    principal: MerchantPrincipal = g.dashboard_principal
    if principal.venue_id is not None:
        return _render("dashboard/forbidden.html", 403, roles=("owner", "staff (not a till)"))
    return _render(
        "dashboard/feedback.html",
        venues=_venue_choices(),
        stars=feedback_domain.STARS,
        reply_max=feedback_domain.REPLY_MAX_CHARS,
    )


@blp.get("/analytics")
@page("owner", "analyst")
def analytics() -> Any:
    """The owner's summary first (is it working?), offers side by side, then each offer's
    funnel and lift, redemptions over time and by venue, health and leaks."""
    return _render(
        "dashboard/analytics.html",
        venues=_venue_choices(),
        lift_window_days=analytics_domain.SUMMARY_LIFT_WINDOW_DAYS,
    )


@blp.get("/settings")
@page("owner")
def settings() -> Any:
    """What the API already lets an owner manage: API keys and their roles (changing one needs
    an owner key typed again), staff accounts, and the audit log; links to till devices, NFC
    tags and webhooks."""
    return _render("dashboard/settings.html")


# The webhook event types in words, for the Webhooks page (the codes are the contract's).
WEBHOOK_EVENT_WORDS = {
    webhooks.CHECKIN_VERIFIED: "Verified check-ins",
    webhooks.UNLOCK_CREATED: "Unlocked offers",
    webhooks.REDEMPTION_CREATED: "Redeemed codes",
    webhooks.FEEDBACK_CREATED: "Customer feedback",
}


@blp.get("/settings/webhooks", endpoint="webhooks")
@page("owner")
def webhooks_page() -> Any:
    """Webhook endpoints: list, add (the signing secret shown once), delete, and each one's
    recent deliveries with their attempts and a replay (docs/integrations.md). No owner key
    typed again: that rule is for API keys (api/dashboard/proxy.py), and a webhook's secret
    signs what is sent to the merchant, it opens nothing of the API."""
    return _render(
        "dashboard/webhooks.html",
        event_types=[(code, WEBHOOK_EVENT_WORDS[code]) for code in webhooks.EVENT_TYPES],
        max_endpoints=webhooks.MAX_ENDPOINTS_PER_MERCHANT,
    )


def _venue_choices() -> list[Venue]:
    """The merchant's venues, read here because staff keys may not list them through the API;
    a till device's own venue only."""
    principal: MerchantPrincipal = g.dashboard_principal
    venues = geo_venues.list_venues(db.session(), principal.merchant_id)
    return [v for v in venues if principal.venue_id in (None, v.id)]


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
