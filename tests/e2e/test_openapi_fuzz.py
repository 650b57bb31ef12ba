"""Schemathesis against the running service's own OpenAPI document, request by request and in
stateful sequences, as every role, across two tenants.

Two tests, both against a real gunicorn process (`live_server`) serving `GET /openapi.json`:

- `test_openapi_fuzz`: every operation is fuzzed with `MAX_EXAMPLES` (60) generated requests,
  positive and negative, on top of Schemathesis' coverage cases (boundary values, missing
  credentials, other methods, other content types);
- `test_openapi_stateful`: `STATEFUL_SCENARIOS` (100) sequences of up to `STATEFUL_STEPS` (8)
  calls that follow the document's links: explicit ones (a created key to its revocation, a
  staff account to its removal) and those Schemathesis infers from the schemas (a created venue
  to reading, patching and deleting it, to its presence code, to an offer on it, to a check-in
  there; a listed offer to its activation, ...). About one call in ten is negative.

Every answer is checked: no server error (5xx); a status the operation lists, with a content type
and a body valid against the document; after a DELETE, the deleted object is gone (stateful); and
no cross-tenant access (`no_cross_tenant_access`): a merchant key is never answered 2xx for a path
naming another merchant's object, and no 2xx answer carries an id or code of an object that
belongs to another merchant (or, to a user token, to another user).

Two merchants (tenants A and B) are made, each with an owner, a staff and an analyst key, a
user, a venue, an active offer, an unlock, a staff account and objects to delete; what the runs
create is added to their tenant's objects as it is answered. A stateless case is made by a role
drawn for it: A's owner (about half the cases), A's staff or analyst key, B's owner, A's user
token on every operation (the wrong kind of credential on merchant operations), or none at all.
About one case in four has its ids, rule, redemption `code`, staff `handle` and coordinates
replaced by those of real objects, one time in three the other tenant's; and most get one of a
few strings known to break layers under an API (`TRICKY_STRINGS`) in one of their string values.
A sequence starts with an owner of either tenant; each later call is made by that owner (about
two in three) or by its staff or analyst key, its user, the other tenant's owner, or nobody, so
objects one role made are handed to the others. Positive calls of a sequence get plausible
bodies two times in three (a place and time zone for a venue, an every-check-in rule for an
offer, a fresh fix at the venue for a check-in) and real ids where a made-up one would only
answer 404, so that sequences create things and go on to use them. The keys this file signs in
with are never revoked or rotated (the doomed key is, instead).

The stateless run is derandomized: reproducible for a given version of this file and of the
OpenAPI document (and `OPENAPI_FUZZ_EXAMPLES`). Sequences are not: which links they follow
depends on what the server answered, which depends on the runs before. Longer runs:
docs/reliability.md (Fuzzing).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from _pytest.nodes import Node
from hypothesis import HealthCheck, settings
from hypothesis.errors import Flaky
from hypothesis.stateful import initialize
from schemathesis.checks import not_a_server_error
from schemathesis.generation.stateful import run_state_machine_as_test
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    is_unexpected_http_status_case,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from mobile_stub.client import ApiError, Client, HttpTransport
from tests.factories import offer_body, venue_body

pytestmark = pytest.mark.e2e

# Generated requests per operation, at least 50 (Hypothesis stops sooner only for an operation with
# fewer distinct inputs). OPENAPI_FUZZ_EXAMPLES=1000 digs deeper, by hand.
MAX_EXAMPLES = max(50, int(os.environ.get("OPENAPI_FUZZ_EXAMPLES", "60")))
# Stateful sequences, and calls per sequence (OPENAPI_FUZZ_SCENARIOS, OPENAPI_FUZZ_STEPS).
STATEFUL_SCENARIOS = max(10, int(os.environ.get("OPENAPI_FUZZ_SCENARIOS", "100")))
STATEFUL_STEPS = max(2, int(os.environ.get("OPENAPI_FUZZ_STEPS", "8")))

# gunicorn answers a request line longer than its `limit_request_line` (4094 bytes by default, and
# api/gunicorn_conf.py keeps the default) with its own HTML 414 before the app sees it, so neither
# the app nor its OpenAPI document has a say in that answer.
GUNICORN_LIMIT_REQUEST_LINE = 4094

# schemathesis 4.32 renames the running test (`request.node._nodeid = "...[GET /path]"`) for each
# operation; pytest 9.2 keeps a node's id in `_id` (a NodeId) and no longer has `_nodeid`, so the
# lazy `from_fixture` loader fails with AttributeError. Give nodes that attribute back, only when
# it is missing, so this is a no-op on a pytest or a schemathesis that does not need it.
if not hasattr(Node, "_nodeid"):
    from _pytest.nodeid import coerce_node_id

    def _get_nodeid(node: Node) -> str:
        return node.nodeid

    def _set_nodeid(node: Node, value: str) -> None:
        node._id = coerce_node_id(value)

    Node._nodeid = property(_get_nodeid, _set_nodeid)  # type: ignore[attr-defined]


# ---- real objects ---------------------------------------------------------------------------

# Where this file's venues are: Oulu, out of the way of the other end-to-end tests on the same
# server, which play in central Helsinki.
PLACE: dict[str, Any] = {"type": "Point", "coordinates": [25.4651, 65.0121]}


@dataclass(frozen=True)
class Tenant:
    """One merchant's real objects on the live server, and the credentials to reach them."""

    name: str  # "A" or "B"
    merchant_id: str
    owner_key: str
    staff_key: str
    analyst_key: str
    user: str  # the label of this tenant's user in `Ownership`
    user_token: str
    venue_id: str
    doomed_venue_id: str  # the target of DELETE /v1/venues/{venue_id}; the others keep a venue
    offer_id: str
    doomed_key_id: str  # the target of DELETE /v1/merchants/me/keys/{key_id} (and of /rotate)
    credential_key_ids: tuple[str, ...]  # the keys this file signs in with: never revoked
    staff_user_id: str  # the target of DELETE /v1/merchants/me/staff-users/{staff_user_id}
    barista_handle: str  # a user handle for POST /v1/merchants/me/staff-users
    spare_handles: tuple[str, ...]  # more of them, for sequences
    unlock_code: str | None  # from a verified check-in, for POST /v1/redemptions
    leaver_token: str  # the user token DELETE /v1/me erases; the tenant's user stays

    def path_ids(self, method: str) -> dict[str, str]:
        return {
            "venue_id": self.doomed_venue_id if method.upper() == "DELETE" else self.venue_id,
            "offer_id": self.offer_id,
            "key_id": self.doomed_key_id,
            "staff_user_id": self.staff_user_id,
        }


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Ownership:
    """Who may see which object: ids (and unlock codes) mapped to their owners, each a
    (kind, label) pair: ("merchant", "A") or ("user", "userA"). An unlock belongs to its user
    and to the merchant of its offer. Ids nobody registered (made by the fuzzing itself for
    merchants or users outside the two tenants) are nobody's business here."""

    owners: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    codes: set[str] = field(default_factory=set)  # the unlock codes among the owned values
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # bearer -> (kind, label)

    def add(self, value: str | None, *owners: tuple[str, str]) -> None:
        if value:
            self.owners.setdefault(value, set()).update(owners)
            if not UUID.fullmatch(value):
                self.codes.add(value)

    def caller(self, headers: Any) -> tuple[str, str] | None:
        auth = (headers or {}).get("Authorization") or ""
        return self.tokens.get(auth.removeprefix("Bearer ").strip())

    def foreign(self, text: str, caller: tuple[str, str]) -> list[str]:
        """Ids and codes in `text` that belong to someone of the caller's kind other than it."""
        kind, label = caller
        found = set(UUID.findall(text)) | {code for code in self.codes if code in text}
        return sorted(
            value
            for value in found
            if (owners := self.owners.get(value))
            and any(k == kind for k, _ in owners)
            and (kind, label) not in owners
        )

    def record(self, case: schemathesis.Case, response: Any) -> None:
        """Register what a 2xx POST created, as its caller's."""
        caller = self.caller(case.headers)
        if caller is None or case.method.upper() != "POST" or not 200 <= response.status_code < 300:
            return
        try:
            body = response.json()
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        if caller[0] == "merchant":
            self.add(body.get("id"), caller)
            return
        # A check-in and its unlocks are the user's, and the unlocks also the venue's merchant's.
        sent = case.body if isinstance(case.body, dict) else {}
        venue = body.get("venue_id") or sent.get("venue_id")
        merchants = {o for o in self.owners.get(str(venue), set()) if o[0] == "merchant"}
        self.add(body.get("id"), caller)
        for unlock in body.get("unlocks") or []:
            if isinstance(unlock, dict):
                self.add(unlock.get("id"), caller, *merchants)
                self.add(unlock.get("code"), caller, *merchants)


@dataclass(frozen=True)
class World:
    a: Tenant
    b: Tenant
    ownership: Ownership

    def tenant(self, name: str) -> Tenant:
        return self.a if name == "A" else self.b


def _make_tenant(api: Client, name: str, tag: str, ownership: Ownership) -> Tenant:
    created = api.create_merchant(f"Fuzz {name}", f"fuzz-{name.lower()}-{tag}@example.com")
    owner = api.with_token(created["api_key"])
    merchant = ("merchant", name)
    venue = owner.create_venue(venue_body(name=f"Fuzz venue {name}", location=PLACE))
    doomed = owner.create_venue(venue_body(name=f"Doomed venue {name}", location=PLACE))
    offer = owner.create_offer(offer_body([venue["id"]]))
    owner.activate_offer(offer["id"])
    staff = owner.create_key("staff", "fuzz staff")
    analyst = owner.create_key("analyst", "fuzz analyst")
    doomed_key = owner.create_key("staff", "doomed")
    barista = api.create_user(f"fuzz_barista_{name.lower()}_{tag}", "correct horse battery")
    staff_user = owner.add_staff_user(barista["user"]["handle"])
    spares = tuple(
        api.create_user(f"fuzz_spare{i}_{name.lower()}_{tag}", "correct horse battery")["user"][
            "handle"
        ]
        for i in range(3)
    )
    signed_up = api.create_user(f"fuzz_{name.lower()}_{tag}", "correct horse battery")
    leaver = api.create_user(f"fuzz_leaver_{name.lower()}_{tag}", "correct horse battery")
    credential_key_ids = tuple(k["id"] for k in owner.list_keys() if k["id"] != doomed_key["id"])
    user = api.with_token(signed_up["token"])
    user_label = f"user{name}"
    lon, lat = PLACE["coordinates"]
    unlock_code = None
    try:
        checkin = user.check_in(
            venue["id"], lat, lon, 10.0, datetime.now(UTC).isoformat(), device_id=f"fuzz-{name}"
        )
        ownership.add(checkin["id"], ("user", user_label))
        for unlock in checkin["unlocks"]:
            unlock_code = unlock["code"]
            ownership.add(unlock["id"], ("user", user_label), merchant)
            ownership.add(unlock["code"], ("user", user_label), merchant)
    except ApiError:
        pass  # the fuzzing below tells what is wrong with check-ins
    for value in (
        created["merchant"]["id"],
        venue["id"],
        doomed["id"],
        offer["id"],
        staff["id"],
        analyst["id"],
        doomed_key["id"],
        staff_user["id"],
    ):
        ownership.add(value, merchant)
    ownership.add(created["merchant"]["id"], merchant)
    for key in (created["api_key"], staff["api_key"], analyst["api_key"]):
        ownership.tokens[key] = merchant
    ownership.tokens[signed_up["token"]] = ("user", user_label)
    ownership.tokens[leaver["token"]] = ("user", f"leaver{name}")
    return Tenant(
        name=name,
        merchant_id=created["merchant"]["id"],
        owner_key=created["api_key"],
        staff_key=staff["api_key"],
        analyst_key=analyst["api_key"],
        user=user_label,
        user_token=signed_up["token"],
        venue_id=venue["id"],
        doomed_venue_id=doomed["id"],
        offer_id=offer["id"],
        doomed_key_id=doomed_key["id"],
        credential_key_ids=credential_key_ids,
        staff_user_id=staff_user["id"],
        barista_handle=barista["user"]["handle"],
        spare_handles=spares,
        unlock_code=unlock_code,
        leaver_token=leaver["token"],
    )


@pytest.fixture(scope="module")
def world(live_server: str) -> Iterator[World]:
    transport = HttpTransport(live_server)
    api = Client(transport)
    tag = secrets.token_hex(4)
    ownership = Ownership()
    world = World(
        _make_tenant(api, "A", tag, ownership), _make_tenant(api, "B", tag, ownership), ownership
    )
    yield world
    transport.close()


# ---- roles ----------------------------------------------------------------------------------

# A role is a tenant and a kind of credential: "A:owner", "A:staff", "A:analyst", "A:user" (the
# tenant's user token, sent to every operation, merchant ones included: the wrong kind of
# credential), "B:owner" (another tenant), or "anonymous" (none at all).
# Who makes a stateless case: A's owner about half the time, so deep paths are reached.
ROLES = ["A:owner"] * 4 + ["A:staff", "A:analyst", "B:owner", "A:user", "anonymous"]
# Who makes the calls of a sequence after the first, relative to the first call's tenant
# ("self" is its owner, "other" the other tenant's owner): mostly the same owner, so sequences
# go deep, and about one call in three by someone else.
NEXT_ROLES = ["self", "self", "self", "self", "staff", "analyst", "other", "user", "anonymous"]


def _scheme(case: schemathesis.Case) -> str | None:
    """The security scheme an operation takes (`apiKey`, `userToken`), or None if public."""
    for requirement in case.operation.definition.raw.get("security") or []:
        for name in requirement:
            return str(name)
    return None


def credential(role: str, scheme: str, world: World) -> str | None:
    """The bearer a role sends to an operation of `scheme`; None sends none."""
    if role == "anonymous":
        return None
    name, kind = role.split(":")
    tenant = world.tenant(name)
    if kind == "user" or scheme == "userToken":
        return tenant.user_token
    return {"staff": tenant.staff_key, "analyst": tenant.analyst_key}.get(kind, tenant.owner_key)


def next_role(first: str, relative: str) -> str:
    """A role of NEXT_ROLES made absolute, after a sequence's first role (an owner)."""
    name = first.split(":")[0]
    other = "B" if name == "A" else "A"
    if relative == "anonymous":
        return relative
    if relative == "other":
        return f"{other}:owner"
    return f"{name}:{'owner' if relative == 'self' else relative}"


def spare_credentials(case: schemathesis.Case, world: World) -> None:
    """Revoke or rotate a doomed key rather than one this file signs in with, which would leave
    the rest of the run answering 401 (links from the list of keys lead to every key)."""
    key_id = (case.path_parameters or {}).get("key_id")
    for tenant in (world.a, world.b):
        if key_id in tenant.credential_key_ids:
            case.path_parameters["key_id"] = tenant.doomed_key_id


def spare_user(case: schemathesis.Case, world: World) -> None:
    """Erase a leaver rather than a tenant's user, which would leave the rest of the run
    answering 401 to that user's token."""
    if case.method.upper() != "DELETE" or case.operation.path != "/v1/me":
        return
    for tenant in (world.a, world.b):
        if (case.headers or {}).get("Authorization") == f"Bearer {tenant.user_token}":
            case.headers["Authorization"] = f"Bearer {tenant.leaver_token}"


def act_as(case: schemathesis.Case, role: str, world: World) -> None:
    """Give the case the role's credential, on operations that take one. A case generated to go
    without credentials (a negative case of the security requirement) keeps going without."""
    scheme = _scheme(case)
    if scheme is None or "Authorization" not in (case.headers or {}):
        return
    token = credential(role, scheme, world)
    if token is None:
        del case.headers["Authorization"]
    else:
        case.headers["Authorization"] = f"Bearer {token}"
    spare_user(case, world)


# ---- checks ---------------------------------------------------------------------------------

# Statuses any operation may answer without listing them: they are not about the operation but
# about the request as a whole, and the document covers them with every operation's `default`
# response (problem+json). 400: the body is not JSON; 405: a method the path does not have;
# 413: the body is over MAX_CONTENT_LENGTH; 415: not a JSON body; 503: the database is down.
GENERIC_STATUSES = frozenset({400, 405, 413, 415, 503})


def status_code_listed(
    ctx: schemathesis.CheckContext, response: Any, case: schemathesis.Case
) -> bool | None:
    """`status_code_conformance`, without letting `default` cover every status.

    Every operation of this API has a `default` response, which makes the built-in check accept
    any status at all; this one wants each status an operation answers on purpose listed by it.
    """
    if is_unexpected_http_status_case(case):  # a method or Content-Type probe
        return None
    listed = [code for code in case.operation.responses.status_codes if code != "default"]
    status = response.status_code
    if status >= 500:  # `not_a_server_error` tells about those
        return None
    if status in GENERIC_STATUSES or str(status) in listed or f"{str(status)[0]}XX" in listed:
        return None
    raise AssertionError(
        f"{case.operation.label} answered {status}, which it does not list (it lists "
        f"{', '.join(listed)}): every status an operation answers on purpose belongs in its "
        f"`responses` (`@blp.alt_response`); `default` is for the generic {sorted(GENERIC_STATUSES)}"
    )


_OWNERSHIP: list[Ownership] = []  # the module's, set by the `world` users below


def no_cross_tenant_access(
    ctx: schemathesis.CheckContext, response: Any, case: schemathesis.Case
) -> bool | None:
    """A merchant key is never answered 2xx for a path that names another merchant's object,
    and no 2xx answer carries an id or code of another merchant's objects (to a merchant key)
    or of another user's check-ins and unlocks (to a user token). Request bodies may name them
    (a check-in at any merchant's venue is every user's right): the answer tells."""
    if not _OWNERSHIP or not 200 <= response.status_code < 300:
        return None
    ownership = _OWNERSHIP[0]
    caller = ownership.caller(response.request.headers)
    if caller is None:
        return None
    # The path only: a query filter naming another tenant's object (the redemptions report's
    # `venue_id`) may answer an empty 200, as it does for an id that does not exist at all, as
    # long as the answer carries nothing of theirs (below).
    path = urlsplit(response.request.path_url or "").path
    named = ownership.foreign(path, caller)
    if named:
        raise AssertionError(
            f"{case.operation.label} answered {response.status_code} to {caller[1]} for "
            f"another tenant's object {named}: another tenant's object must be 404"
        )
    leaked = ownership.foreign(response.text or "", caller)
    if leaked:
        raise AssertionError(
            f"{case.operation.label} answered {caller[1]} with another tenant's {leaked}"
        )
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,  # vacuous while every operation has `default`; see status_code_listed
    status_code_listed,
    content_type_conformance,
    response_schema_conformance,
    no_cross_tenant_access,
]


def request_line_too_long(response: Any) -> bool:
    sent = response.request
    return len(f"{sent.method} {sent.path_url} HTTP/1.1") > GUNICORN_LIMIT_REQUEST_LINE


# ---- aiming at real objects ---------------------------------------------------------------

# Strings worth trying wherever a string goes, on top of what Hypothesis makes up (which finds
# these only now and then): most generated cases get one of them in place of one of their string
# values, in the body or the query (see `mutated`). Each is a valid JSON string (the date-times
# also a valid `format: date-time`), and each has broken a layer under the API before or got
# through where it should have been refused. Bodies that are not JSON, nested thousands deep or
# with numbers of thousands of digits are not Schemathesis' to make: tests/integration/
# test_bad_input.py sends those to every operation the document lists.
TRICKY_STRINGS = [
    "nul\u0000byte",  # PostgreSQL text cannot hold U+0000
    "2030-01-01T00:00:00+16:00",  # a UTC offset Python takes and PostgreSQL refuses (max 15:59)
    "0001-01-01T00:00:00+05:00",  # year 0 in UTC
    "9999-12-31T23:59:59-05:00",  # year 10000 in UTC
    "lone\ud800surrogate",  # PostgreSQL's UTF-8 cannot hold it (in bodies only: see `mutate`)
    "Kahvila\u202eanilaK",  # a right-to-left override: refused in text (api/schemas.py)
    "tab\there\x1b[31m",  # control characters, a terminal escape among them
]


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _string_slots(value: Any) -> list[tuple[Any, Any]]:
    """(container, key) of every string inside a JSON value, depth first."""
    slots: list[tuple[Any, Any]] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, inner in items:
        if isinstance(inner, str):
            slots.append((value, key))
        else:
            slots.extend(_string_slots(inner))
    return slots


def aim_at_real_objects(case: schemathesis.Case, tenant: Tenant) -> schemathesis.Case:
    """The case with the ids (and a place) of a tenant's real objects wherever it has such
    fields."""
    ids = tenant.path_ids(case.method)
    for name in case.path_parameters or {}:
        if name in ids:
            case.path_parameters[name] = ids[name]
    lon, lat = PLACE["coordinates"]
    if isinstance(case.query, dict):
        if {"lat", "lon"} <= case.query.keys():
            case.query.update(lat=lat, lon=lon)
        for name in ("venue_id", "offer_id"):
            if name in case.query:
                case.query[name] = ids[name]
    body = case.body
    if isinstance(body, dict):
        if "venue_id" in body:
            body["venue_id"] = tenant.venue_id
        if "venue_ids" in body:
            body["venue_ids"] = [tenant.venue_id]
        if "offer_id" in body:
            body["offer_id"] = tenant.offer_id
        if isinstance(body.get("rule"), dict):
            body["rule"] = {"kind": "every_checkin"}  # the document cannot tell a rule's parameters
        if "code" in body and tenant.unlock_code is not None:
            body["code"] = tenant.unlock_code
        if "handle" in body and "password" not in body:  # a staff account, not a sign-up
            body["handle"] = tenant.barista_handle
        if {"lat", "lon"} <= body.keys():
            body.update(lat=lat, lon=lon)
    return case


def mutated(case: schemathesis.Case, world: World) -> st.SearchStrategy[schemathesis.Case]:
    """The case made by a drawn role; most of the time with a tricky string in one of its string
    values (body or query), and about one time in four aimed at real objects (one time in three
    another tenant's)."""
    body_slots = _string_slots(case.body)
    slots = body_slots + _string_slots(case.query or {})

    def mutate(drawn: tuple[str, bool, bool, bool, str, int]) -> schemathesis.Case:
        role, real, foreign, plant, tricky, where = drawn
        # A query string is UTF-8 bytes: a lone surrogate cannot be sent there at all (the client
        # would fail to encode it), while a JSON body escapes it as "\ud800".
        if where >= len(body_slots) and not _encodable(tricky):
            plant = False
        if slots and plant:
            container, key = slots[where]
            container[key] = tricky
        act_as(case, role, world)
        spare_credentials(case, world)
        if real:
            own = "B" if role.startswith("B:") else "A"
            aim_at_real_objects(
                case, world.tenant(("A" if own == "B" else "B") if foreign else own)
            )
        return case

    return st.tuples(
        st.sampled_from(ROLES),
        st.sampled_from([False, False, True]),  # Hypothesis favours the first: about 1 in 4
        st.sampled_from([False, False, True]),
        # Hypothesis leans to small integers: in practice about three cases in five get one.
        st.integers(0, 3).map(bool),
        st.sampled_from(TRICKY_STRINGS),
        st.integers(0, max(len(slots) - 1, 0)),
    ).map(mutate)


def plausible(case: schemathesis.Case) -> st.SearchStrategy[schemathesis.Case]:
    """Most of the time, a positive case made likely to succeed where made-up data hardly
    ever does (a venue's place and time zone, an offer's rule and windows, a check-in's fix), so
    that sequences create objects and go on to use them; ids are left to the links."""
    body = case.body
    positive = case.meta is None or case.meta.generation.mode.is_positive

    def apply(go: bool) -> schemathesis.Case:
        if not (go and positive and isinstance(body, dict)):
            return case
        label = case.operation.label
        if label in ("POST /v1/venues", "PATCH /v1/venues/{venue_id}"):
            body["location"] = {"type": "Point", "coordinates": list(PLACE["coordinates"])}
            body.pop("geofence", None)
            radius = body.get("radius_m")
            if not (isinstance(radius, int | float) and 10 <= radius <= 10_000):
                body.pop("radius_m", None)
            if "timezone" in body:
                body["timezone"] = "Europe/Helsinki"
        elif label in ("POST /v1/offers", "PATCH /v1/offers/{offer_id}"):
            if "rule" in body:
                body["rule"] = {"kind": "every_checkin"}
            for name in ("windows", "starts_at", "ends_at"):
                body.pop(name, None)
        elif label == "POST /v1/checkins":
            lon, lat = PLACE["coordinates"]
            body.update(lat=lat, lon=lon, accuracy_m=10.0)
            body["observed_at"] = datetime.now(UTC).isoformat()
            body.pop("presence_code", None)
            body.pop("mock_location", None)
        return case

    return st.sampled_from([True, True, False]).map(apply)


def with_real_ids(case: schemathesis.Case, tenant: Tenant, n: int, ownership: Ownership) -> None:
    """In a positive case of a sequence, a made-up venue id, staff handle or redemption code
    (where no link supplied a real one) becomes one of the caller's tenant's, so that offers,
    staff accounts, check-ins and redemptions get created and their links followed too."""
    body = case.body
    if not isinstance(body, dict) or not (
        case.meta is None or case.meta.generation.mode.is_positive
    ):
        return
    label = case.operation.label
    ids = body.get("venue_ids")
    if label == "POST /v1/offers" and isinstance(ids, list):
        if not any(isinstance(i, str) and i in ownership.owners for i in ids):
            body["venue_ids"] = [tenant.venue_id]
    elif label == "POST /v1/checkins" and body.get("venue_id") not in ownership.owners:
        body["venue_id"] = tenant.venue_id
    elif label == "POST /v1/merchants/me/staff-users" and "handle" in body:
        body["handle"] = tenant.spare_handles[n % len(tenant.spare_handles)]
    elif (
        label == "POST /v1/redemptions"
        and tenant.unlock_code
        and body.get("code", tenant.unlock_code) not in ownership.owners
    ):
        body["code"] = tenant.unlock_code


# ---- stateless ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_schema(live_server: str, world: World) -> schemathesis.BaseSchema:
    _OWNERSHIP[:] = [world.ownership]
    config = schemathesis.Config.from_dict(
        {
            "base-url": live_server,
            "auth": {
                "openapi": {
                    "apiKey": {"bearer": world.a.owner_key},
                    "userToken": {"bearer": world.a.user_token},
                }
            },
            "generation": {"mode": "all", "database": "none"},
        }
    )
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json", config=config)

    def before_generate_case(
        context: schemathesis.HookContext, strategy: st.SearchStrategy[schemathesis.Case]
    ) -> st.SearchStrategy[schemathesis.Case]:
        return strategy.flatmap(lambda case: mutated(case, world))

    schema.hooks.register_hook_with_name(before_generate_case, "before_generate_case")
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


# Calls by "<operation> -> <status>", for each test; OPENAPI_FUZZ_STATS=<file> keeps them as JSON.
STATS: dict[str, dict[str, int]] = {"stateless": {}, "stateful": {}}


def count(test: str, case: schemathesis.Case, response: Any) -> None:
    label = f"{case.operation.label} -> {response.status_code}"
    STATS[test][label] = STATS[test].get(label, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def fuzz_stats() -> Iterator[None]:
    yield
    path = os.environ.get("OPENAPI_FUZZ_STATS")
    if path:
        with open(path, "w") as out:
            json.dump({k: dict(sorted(v.items())) for k, v in STATS.items()}, out, indent=1)


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_openapi_fuzz(case: schemathesis.Case, http: requests.Session, world: World) -> None:
    response = case.call(session=http)
    count("stateless", case, response)
    if request_line_too_long(response):
        assert response.status_code == 414, response.content[:500]
        return
    case.validate_response(response, checks=CHECKS, transport_kwargs={"session": http})
    world.ownership.record(case, response)


# ---- stateful -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stateful_schema(live_server: str, world: World) -> schemathesis.BaseSchema:
    """The same document, for sequences: no configured credentials (each call's role gives
    them), negative cases among the positive ones, links inferred from the schemas as well."""
    _OWNERSHIP[:] = [world.ownership]
    config = schemathesis.Config.from_dict(
        {
            "base-url": live_server,
            "generation": {"mode": "all", "database": "none"},
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json", config=config)

    def before_generate_case(
        context: schemathesis.HookContext, strategy: st.SearchStrategy[schemathesis.Case]
    ) -> st.SearchStrategy[schemathesis.Case]:
        return strategy.flatmap(plausible)

    schema.hooks.register_hook_with_name(before_generate_case, "before_generate_case")
    return schema


def test_openapi_stateful(stateful_schema: schemathesis.BaseSchema, world: World) -> None:
    machine = stateful_schema.as_state_machine()
    ownership = world.ownership
    stats = STATS["stateful"]
    # Failures are collected, not raised: Hypothesis would replay a failing sequence to shrink
    # and report it, but the server has moved on (the objects the sequence made exist now), so
    # the replay draws differently and all Hypothesis can say is FlakyStrategyDefinition.
    # Each failure keeps the sequence that led to it instead.
    failures: list[str] = []
    completed: list[int] = []  # calls made by each finished sequence

    class Workflow(machine):  # type: ignore[misc, valid-type]
        """Each call made by the next role of a list drawn for the sequence."""

        roles: list[str]
        calls: int

        def setup(self) -> None:
            self.roles, self.calls = ["A:owner"], 0
            self.http = requests.Session()
            self.history: list[str] = []

        def teardown(self) -> None:
            self.http.close()
            completed.append(len(self.history))
            super().teardown()

        # A sequence starts with an owner (of either tenant), who can create what the others
        # then get to use.
        @initialize(
            first=st.sampled_from(["A:owner", "B:owner"]),
            then=st.lists(st.sampled_from(NEXT_ROLES), max_size=STATEFUL_STEPS - 1),
        )
        def draw_roles(self, first: str, then: list[str]) -> None:
            self.roles = [first, *(next_role(first, role) for role in then)]

        def before_call(self, case: schemathesis.Case) -> None:
            role = self.roles[self.calls % len(self.roles)]
            self.calls += 1
            spare_credentials(case, world)
            tenant = world.tenant(role.split(":")[0]) if ":" in role else world.a
            with_real_ids(case, tenant, self.calls, ownership)
            scheme = _scheme(case)
            if scheme is not None:
                token = credential(role, scheme, world)
                if token is None:
                    case.headers.pop("Authorization", None)
                else:
                    case.headers["Authorization"] = f"Bearer {token}"
                    spare_user(case, world)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"session": self.http}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            count("stateful", case, response)
            label = f"{case.operation.label} -> {response.status_code}"
            caller = ownership.caller(case.headers)
            self.history.append(f"{caller[1] if caller else 'nobody'}: {label}")
            ownership.record(case, response)

        def validate_response(
            self,
            response: Any,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            if request_line_too_long(response):
                assert response.status_code == 414, response.content[:500]
                return
            try:
                case.validate_response(
                    response,
                    checks=[*CHECKS, use_after_free],
                    transport_kwargs=kwargs or None,
                    recorder=self.recorder,
                )
            except (AssertionError, BaseExceptionGroup) as exc:
                steps = "\n".join(f"  {i}. {step}" for i, step in enumerate(self.history, 1))
                failures.append(
                    f"{exc}\nafter:\n{steps}\n"
                    f"{case.as_curl_command(headers=dict(response.request.headers))}"
                )

    # A sequence's next steps depend on what the server answered, and the server keeps what
    # earlier sequences did, so Hypothesis may find a sequence it has seen start the same way
    # draw differently (`Flaky`). Schemathesis' own runner starts over when that happens, and so
    # does this, until the budget of sequences is spent (a few restarts at most).
    for _ in range(10):
        remaining = STATEFUL_SCENARIOS - len(completed)
        if remaining <= 0:
            break
        try:
            run_state_machine_as_test(
                Workflow,
                settings=settings(
                    max_examples=remaining,
                    stateful_step_count=STATEFUL_STEPS,
                    deadline=None,
                    database=None,
                    suppress_health_check=[
                        HealthCheck.too_slow,
                        HealthCheck.filter_too_much,
                        HealthCheck.data_too_large,
                    ],
                ),
            )
            break
        except Flaky:
            continue
    assert not failures, f"{len(failures)} failures; the first:\n" + "\n\n".join(failures[:3])
    # The sequences got somewhere: objects were created and then used.
    created = sum(
        n for label, n in stats.items() if label.startswith("POST ") and "-> 201" in label
    )
    followed = sum(
        n for label, n in stats.items() if "{" in label and label.split(" -> ")[1].startswith("2")
    )
    assert created and followed, stats
