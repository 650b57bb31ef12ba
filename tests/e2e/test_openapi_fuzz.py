"""Schemathesis against the running service's own OpenAPI document.

Every operation of `GET /openapi.json`, as served by a real gunicorn process (`live_server`), is
fuzzed with `MAX_EXAMPLES` (100) generated requests, positive and negative, on top of
Schemathesis' coverage cases (boundary values, missing credentials, other methods, other content
types). No answer may be a server error (5xx), and every answer must conform to what the document
says of that operation: a status it lists, a content type it lists for that status, and a body
valid against the schema of that status.

Credentials come from the document itself: the owner key of a merchant created here for the
operations whose `security` names `apiKey`, a mobile user's token for those naming `userToken`
(Schemathesis' OpenAPI-aware auth picks the scheme per operation, and leaves it off for the
negative cases that test a missing or broken credential). About one generated case in four has
its path ids, body ids (`venue_id`, `venue_ids`, `offer_id`), rule, redemption `code` and
coordinates replaced by those of real objects, so what lies behind the 404s and 422s is fuzzed
too; and most get one of a few strings known to break layers under an API (`TRICKY_STRINGS`) in
one of their string values.

Generation is derandomized: a run is reproducible for a given version of this file and of the
OpenAPI document (and `OPENAPI_FUZZ_EXAMPLES`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from _pytest.nodes import Node
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    is_unexpected_http_status_case,
    response_schema_conformance,
    status_code_conformance,
)

from mobile_stub.client import ApiError, Client, HttpTransport
from tests.factories import offer_body, venue_body

pytestmark = pytest.mark.e2e

# Generated requests per operation, at least 50 (Hypothesis stops sooner only for an operation with
# fewer distinct inputs). OPENAPI_FUZZ_EXAMPLES=1000 digs deeper, by hand.
MAX_EXAMPLES = max(50, int(os.environ.get("OPENAPI_FUZZ_EXAMPLES", "100")))

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


CHECKS = [
    not_a_server_error,
    status_code_conformance,  # vacuous while every operation has `default`; see status_code_listed
    status_code_listed,
    content_type_conformance,
    response_schema_conformance,
]


# Strings worth trying wherever a string goes, on top of what Hypothesis makes up (which finds
# these only now and then): most generated cases get one of them in place of one of their string
# values, in the body or the query (see `mutated`). Each is a valid JSON string (the date-times
# also a valid `format: date-time`), and each has broken a layer under the API before.
TRICKY_STRINGS = [
    "nul\u0000byte",  # PostgreSQL text cannot hold U+0000
    "2030-01-01T00:00:00+16:00",  # a UTC offset Python takes and PostgreSQL refuses (max 15:59)
    "0001-01-01T00:00:00+05:00",  # year 0 in UTC
    "9999-12-31T23:59:59-05:00",  # year 10000 in UTC
]


# ---- real objects ---------------------------------------------------------------------------

# Where this file's venues are: Oulu, out of the way of the other end-to-end tests on the same
# server, which play in central Helsinki.
PLACE = {"type": "Point", "coordinates": [25.4651, 65.0121]}


@dataclass(frozen=True)
class World:
    """Real objects on the live server, and the credentials to reach them."""

    owner_key: str
    user_token: str
    venue_id: str
    doomed_venue_id: str  # the target of DELETE /v1/venues/{venue_id}; the others keep a venue
    offer_id: str
    staff_key_id: str  # the target of DELETE /v1/merchants/me/keys/{key_id}: never the owner's key
    unlock_code: str | None  # from a verified check-in, for POST /v1/redemptions

    def path_ids(self, method: str) -> dict[str, str]:
        return {
            "venue_id": self.doomed_venue_id if method.upper() == "DELETE" else self.venue_id,
            "offer_id": self.offer_id,
            "key_id": self.staff_key_id,
        }


@pytest.fixture(scope="module")
def world(live_server: str) -> Iterator[World]:
    transport = HttpTransport(live_server)
    api = Client(transport)
    tag = secrets.token_hex(4)
    owner = api.with_token(api.create_merchant("Fuzz Cafe", f"fuzz-{tag}@example.com")["api_key"])
    venue = owner.create_venue(venue_body(name="Fuzz venue", location=PLACE))
    doomed = owner.create_venue(venue_body(name="Doomed venue", location=PLACE))
    offer = owner.create_offer(offer_body([venue["id"]]))
    owner.activate_offer(offer["id"])
    staff = owner.create_key("staff", "fuzz staff")
    user = api.with_token(api.create_user(f"fuzz_{tag}", "correct horse battery")["token"])
    lon, lat = PLACE["coordinates"]
    try:
        checkin = user.check_in(
            venue["id"], lat, lon, 10.0, datetime.now(UTC).isoformat(), device_id="fuzz"
        )
        unlock_code = checkin["unlocks"][0]["code"] if checkin["unlocks"] else None
    except ApiError:
        unlock_code = None  # the fuzzing below tells what is wrong with check-ins
    yield World(
        owner_key=owner.token or "",
        user_token=user.token or "",
        venue_id=venue["id"],
        doomed_venue_id=doomed["id"],
        offer_id=offer["id"],
        staff_key_id=staff["id"],
        unlock_code=unlock_code,
    )
    transport.close()


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


def aim_at_real_objects(case: schemathesis.Case, world: World) -> schemathesis.Case:
    """The case with the ids (and a place) of real objects wherever it has such fields."""
    ids = world.path_ids(case.method)
    for name in case.path_parameters or {}:
        if name in ids:
            case.path_parameters[name] = ids[name]
    lon, lat = PLACE["coordinates"]
    if isinstance(case.query, dict) and {"lat", "lon"} <= case.query.keys():
        case.query.update(lat=lat, lon=lon)
    body = case.body
    if isinstance(body, dict):
        if "venue_id" in body:
            body["venue_id"] = world.venue_id
        if "venue_ids" in body:
            body["venue_ids"] = [world.venue_id]
        if "offer_id" in body:
            body["offer_id"] = world.offer_id
        if isinstance(body.get("rule"), dict):
            body["rule"] = {"kind": "every_checkin"}  # the document cannot tell a rule's parameters
        if "code" in body and world.unlock_code is not None:
            body["code"] = world.unlock_code
        if {"lat", "lon"} <= body.keys():
            body.update(lat=lat, lon=lon)
    return case


def mutated(case: schemathesis.Case, world: World) -> st.SearchStrategy[schemathesis.Case]:
    """The case, most of the time with a tricky string in one of its string values (body or
    query), and about one time in four aimed at real objects."""
    slots = _string_slots(case.body) + _string_slots(case.query or {})

    def mutate(drawn: tuple[bool, bool, str, int]) -> schemathesis.Case:
        real, plant, tricky, where = drawn
        if slots and plant:
            container, key = slots[where]
            container[key] = tricky
        return aim_at_real_objects(case, world) if real else case

    return st.tuples(
        st.sampled_from([False, False, True]),  # Hypothesis favours the first: about 1 in 4
        # Hypothesis leans to small integers: in practice about three cases in five get one.
        st.integers(0, 3).map(bool),
        st.sampled_from(TRICKY_STRINGS),
        st.integers(0, max(len(slots) - 1, 0)),
    ).map(mutate)


# ---- the schema -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_schema(live_server: str, world: World) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "base-url": live_server,
            "auth": {
                "openapi": {
                    "apiKey": {"bearer": world.owner_key},
                    "userToken": {"bearer": world.user_token},
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
def test_openapi_fuzz(case: schemathesis.Case, http: requests.Session) -> None:
    response = case.call(session=http)
    sent = response.request
    if len(f"{sent.method} {sent.path_url} HTTP/1.1") > GUNICORN_LIMIT_REQUEST_LINE:
        assert response.status_code == 414, response.content[:500]
        return
    case.validate_response(response, checks=CHECKS, transport_kwargs={"session": http})
