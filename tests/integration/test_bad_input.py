"""Bad input is a clear 4xx problem+json with a stable code, and changes nothing: on every
operation that takes a body, with or without a login, straight or through the dashboard.

The operations and their fields come from the app's own OpenAPI document (`BODY_OPERATIONS`,
`QUERY_NUMBERS`), so a new operation or field is covered here the day it exists. Each class was a
500 before (issue 23): lone surrogates (psycopg2 cannot encode them), JSON nested thousands deep
(`RecursionError`), integer literals past Python's 4,300-digit limit (`ValueError`). The others
were accepted: numbers as strings, 0 and 1 as booleans, `localtime` and `Factory` as time zones,
right-to-left overrides and other invisible characters in names; and a form or text body got a
misleading 422 instead of 415. The rules themselves: tests/unit/test_input_rules.py.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import flask_smorest
import marshmallow as ma
import pytest
from flask import Flask
from flask.testing import FlaskClient
from marshmallow import fields as f
from sqlalchemy import text

from api import create_app, jsonbody, schemas
from api.dashboard import proxy
from core.models import Base
from mobile_stub.client import Client
from tests.factories import offer_body, venue_body

PROBLEM = "application/problem+json"


def _now() -> str:
    return datetime.now(UTC).isoformat()


# ---- the operations, from the OpenAPI document ---------------------------------------------


def _document() -> dict[str, Any]:
    """The OpenAPI document, from an app that never needs its database to describe itself."""
    url = os.environ.get("DATABASE_URL") or "postgresql://unused@127.0.0.1:1/unused"
    app = create_app(
        {"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": "document only, never signs a session"}
    )
    document: dict[str, Any] = app.test_client().get("/openapi.json").get_json()
    return document


DOCUMENT = _document()


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while True:
        if "$ref" in schema:
            schema = DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        elif "allOf" in schema:
            schema = schema["allOf"][0]
        else:
            return schema


def _leaves(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, schema) of every scalar in a body: `rule.visits`, `windows.0.days.0`. A
    `oneOf` (the rule's kinds) gives each variant's fields, once each."""
    schema = _resolve(schema)
    if "oneOf" in schema:
        seen: set[str] = set()
        for variant in schema["oneOf"]:
            for path, leaf in _leaves(variant, prefix):
                if path not in seen:
                    seen.add(path)
                    yield path, leaf
    elif schema.get("type") == "object" and "properties" in schema:
        for name, inner in schema["properties"].items():
            yield from _leaves(inner, f"{prefix}.{name}" if prefix else name)
    elif schema.get("type") == "array" and "items" in schema:
        yield from _leaves(schema["items"], f"{prefix}.0")
    else:
        yield prefix, schema


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # as in the document: /v1/venues/{venue_id}
    scheme: str | None  # the security scheme: apiKey, userToken, or None (no login)
    fields: tuple[tuple[str, dict[str, Any]], ...]  # (path, schema) of each scalar

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def of_type(self, *types: str) -> list[str]:
        return [path for path, leaf in self.fields if leaf.get("type") in types]

    @property
    def numbers(self) -> list[str]:
        """Number fields outside the GeoJSON (whose own checks answer `invalid_geometry`)."""
        return [p for p in self.of_type("number", "integer") if not p.startswith(GEOMETRY)]

    @property
    def texts(self) -> dict[str, str]:
        """Each string a person could read (not ids, timestamps, passwords or GeoJSON), and
        whether it is `single-line` or `multi-line` (`x-text`: single-line if unmarked)."""
        return {
            path: leaf.get("x-text", "single-line")
            for path, leaf in self.fields
            if leaf.get("type") == "string"
            and leaf.get("format") not in ("uuid", "date-time")
            and not leaf.get("writeOnly")
            and not path.startswith(GEOMETRY)
        }


GEOMETRY = ("location.", "geofence.")
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _operations() -> list[Operation]:
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            body = operation.get("requestBody")
            if body is None:
                continue
            schema = body["content"]["application/json"]["schema"]
            schemes = [name for req in operation.get("security") or [] for name in req]
            fields = tuple(_leaves(schema))
            found.append(Operation(method.upper(), path, schemes[0] if schemes else None, fields))
    return found


BODY_OPERATIONS = _operations()
QUERY_NUMBERS = [
    (method.upper(), path, parameter["name"], operation.get("security"))
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method in HTTP_METHODS
    for parameter in operation.get("parameters", [])
    if parameter["in"] == "query" and parameter["schema"].get("type") in ("integer", "number")
]


def test_the_document_lists_the_operations_this_file_covers() -> None:
    """Guards the derivation: if it found nothing, every test below would pass vacuously."""
    labels = {str(op) for op in BODY_OPERATIONS}
    assert {"POST /v1/users", "POST /v1/merchants", "POST /v1/users/token"} <= labels
    assert {"POST /v1/venues", "PATCH /v1/offers/{offer_id}", "POST /v1/checkins"} <= labels
    assert len(BODY_OPERATIONS) >= 11
    every = {field for op in BODY_OPERATIONS for field, _ in op.fields}
    assert {"name", "rule.visits", "windows.0.days.0", "location.coordinates.0"} <= every
    assert len(QUERY_NUMBERS) >= 8
    through = {str(op) for op in BODY_OPERATIONS if _through_dashboard(op)}
    assert through >= {"POST /v1/venues", "PATCH /v1/offers/{offer_id}", "POST /v1/redemptions"}


# ---- calling them ----------------------------------------------------------------------------


class World:
    """The caller's objects (for path parameters) and credentials, made as a test needs them."""

    def __init__(self, request: pytest.FixtureRequest, client: FlaskClient, owner: Client):
        self.request, self.client, self.owner = request, client, owner
        self.ids: dict[str, str] = {}
        self.csrf: str | None = None

    def path(self, op: Operation) -> str:
        path = op.path
        if ("{venue_id}" in path or "{offer_id}" in path) and "venue_id" not in self.ids:
            venue = self.owner.create_venue(venue_body())
            offer = self.owner.create_offer(offer_body([venue["id"]]))
            self.ids.update(venue_id=venue["id"], offer_id=offer["id"])
        if ("{checkin_id}" in path or "{feedback_id}" in path) and "checkin_id" not in self.ids:
            # the mobile user's verified visit at one of the owner's venues, rated
            mobile: Client = self.request.getfixturevalue("mobile")
            venue = self.owner.create_venue(venue_body())
            lon, lat = venue["location"]["coordinates"]
            checkin = mobile.check_in(venue["id"], lat, lon, 10, _now())
            feedback = mobile.give_feedback(checkin["id"], 4)
            self.ids.update(checkin_id=checkin["id"], feedback_id=feedback["id"])
        if "{webhook_id}" in path:  # a public address (an IP literal: no DNS lookup)
            hook = self.owner.create_webhook("https://93.184.216.34/hook", ["checkin.verified"])
            path = path.replace("{webhook_id}", hook["id"])
            path = path.replace("{delivery_id}", "00000000-0000-4000-8000-000000000000")
        for name, value in self.ids.items():
            path = path.replace(f"{{{name}}}", value)
        assert "{" not in path, f"no object for {op.path}: add one to World.path"
        return path

    def headers(self, op: Operation) -> dict[str, str]:
        if op.scheme == "apiKey":
            return {"Authorization": f"Bearer {self.owner.token}"}
        if op.scheme == "userToken":
            mobile: Client = self.request.getfixturevalue("mobile")
            return {"Authorization": f"Bearer {mobile.token}"}
        return {}

    def send(
        self,
        op: Operation,
        data: bytes | str,
        content_type: str | None = "application/json",
        via: str = "api",
    ) -> Any:
        path, headers = self.path(op), self.headers(op)
        if via == "dashboard":
            path, headers = "/dashboard/api/" + path.removeprefix("/v1/"), self.dashboard()
        if isinstance(data, str):
            data = data.encode()
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.client.open(path, method=op.method, data=data, headers=headers)

    def dashboard(self) -> dict[str, str]:
        """Signed in to the dashboard with the owner's key: the CSRF header its calls carry."""
        if self.csrf is None:
            page = self.client.get("/dashboard/sign-in").get_data(as_text=True)
            form = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert form and self.owner.token
            self.client.post(
                "/dashboard/sign-in", data={"api_key": self.owner.token, "csrf_token": form[1]}
            )
            till = self.client.get("/dashboard/till").get_data(as_text=True)
            meta = re.search(r'name="csrf-token" content="([^"]+)"', till)
            assert meta, "not signed in to the dashboard"
            self.csrf = meta[1]
        return {"X-CSRF-Token": self.csrf}


@pytest.fixture
def world(request: pytest.FixtureRequest, client: FlaskClient, owner: Client) -> World:
    return World(request, client, owner)


def _through_dashboard(op: Operation) -> bool:
    """Whether the dashboard's pass-through (`/dashboard/api/...`) offers the operation."""
    path = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", op.path)
    return proxy.allowed(op.method, path.removeprefix("/v1"))


# Every operation straight, and those the dashboard offers through its pass-through too.
VIA = [pytest.param(op, "api", id=f"{op}") for op in BODY_OPERATIONS] + [
    pytest.param(op, "dashboard", id=f"{op} via dashboard")
    for op in BODY_OPERATIONS
    if _through_dashboard(op)
]


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == PROBLEM
    body: dict[str, Any] = json.loads(response.get_data(as_text=True))
    assert body["status"] == status and body["code"] == code, body
    assert body["type"] and body["title"] and body["detail"]
    return body


TABLES = [t.name for t in Base.metadata.sorted_tables if t.name != "rate_limit_counters"]


def fingerprint(app: Flask) -> dict[str, str]:
    """A digest of every row of every table (but the rate limiter's counters)."""
    digest = "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {} t"
    with app.extensions["sessionmaker"]() as session:
        return {table: session.scalar(text(digest.format(table))) for table in TABLES}


@contextmanager
def changes_nothing(app: Flask, world: World, op: Operation) -> Iterator[None]:
    world.path(op)  # the objects the call needs exist before the digest is taken
    world.headers(op)
    if _through_dashboard(op):
        world.dashboard()  # signing in records the sign-in (dashboard_sessions): before, too
    before = fingerprint(app)
    yield
    assert fingerprint(app) == before, "a refused request changed the database"


def body_with(field: str, literal: str) -> str:
    """A JSON body with `literal` (raw JSON text) at the field path `a.b.0`."""
    value: Any = "@@literal@@"
    for part in reversed(field.split(".")):
        value = [value] if part.isdigit() else {part: value}
    return json.dumps(value).replace('"@@literal@@"', literal)


def test_the_fingerprint_sees_what_a_request_changes(app: Flask, owner: Client) -> None:
    before = fingerprint(app)
    venue = owner.create_venue(venue_body())
    after = fingerprint(app)
    assert after["venues"] != before["venues"] and after["audit_events"] != before["audit_events"]
    owner.update_venue(venue["id"], {"name": "Renamed"})
    assert fingerprint(app)["venues"] != after["venues"]


# ---- every blueprint and every request field uses the strict parts ---------------------------


def test_every_api_blueprint_reads_bodies_with_the_bounded_parser(app: Flask) -> None:
    smorest = [bp for bp in app.blueprints.values() if isinstance(bp, flask_smorest.Blueprint)]
    assert len(smorest) >= 8
    for blueprint in smorest:
        assert isinstance(blueprint, jsonbody.Blueprint), (
            f"blueprint {blueprint.name!r}: import Blueprint from api.jsonbody, not flask_smorest"
        )
    assert isinstance(app.json, jsonbody.JSONProvider)


def _request_schemas(app: Flask) -> list[tuple[str, str, ma.Schema]]:
    found = []
    for endpoint, view in app.view_functions.items():
        # A MethodView's arguments are documented on its methods, not on the view function.
        view_class = getattr(view, "view_class", None)
        methods = getattr(view, "methods", None) or ()
        views = [view] + [getattr(view_class, m.lower()) for m in methods if view_class]
        for function in views:
            for parameter in (
                getattr(function, "_apidoc", {}).get("arguments", {}).get("parameters", [])
            ):
                schema = parameter["schema"]
                found.append(
                    (endpoint, parameter["in"], schema() if isinstance(schema, type) else schema)
                )
    return found


def _fields(schema: ma.Schema) -> Iterator[tuple[str, f.Field]]:
    for name, field in schema.fields.items():
        yield from _field(name, field)


def _field(name: str, field: f.Field) -> Iterator[tuple[str, f.Field]]:
    if isinstance(field, f.Nested):
        nested = field.schema
        for inner_name, inner in nested.fields.items():
            yield from _field(f"{name}.{inner_name}", inner)
    elif isinstance(field, f.List):
        yield from _field(f"{name}.0", field.inner)
    else:
        yield name, field


def test_every_request_field_is_one_of_the_strict_types(app: Flask) -> None:
    """A plain marshmallow String, Float, Integer or Boolean in a request schema would let the
    classes above back in: strings would skip the text rules, numbers would take "60.1"."""
    body_types = (
        schemas.Text,
        schemas.Password,
        schemas.Number,
        schemas.Integer,
        schemas.Boolean,
        schemas.Instant,
        schemas.Geometry,
        f.UUID,
    )
    query_types = (schemas.Text, schemas.QueryNumber, schemas.QueryInteger, schemas.Instant, f.UUID)
    found = _request_schemas(app)
    assert {location for _, location, _ in found} >= {"json", "query"}
    for endpoint, location, schema in found:
        allowed = body_types if location == "json" else query_types
        for name, field in _fields(schema):
            assert isinstance(field, allowed), (
                f"{endpoint}: {location} field {name} is a {type(field).__name__}; use one of "
                f"{', '.join(t.__name__ for t in allowed)} (api/schemas.py)"
            )


# ---- deep nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize(("op", "via"), VIA)
def test_json_nested_too_deep_is_400(app: Flask, world: World, op: Operation, via: str) -> None:
    far = 100_000  # past any recursion limit: the parser itself would raise RecursionError
    just_over = jsonbody.MAX_DEPTH + 1
    with changes_nothing(app, world, op):
        for body in (
            "[" * far + "]" * far,
            '{"name": ' + "[" * far + "]" * far + "}",
            '{"name": ' + "[" * (just_over - 1) + "]" * (just_over - 1) + "}",
        ):
            answer = problem(world.send(op, body, via=via), 400, "json_too_deep")
            assert str(jsonbody.MAX_DEPTH) in answer["detail"]


# ---- lone surrogates -------------------------------------------------------------------------


def refused(world: World, op: Operation, field: str, literal: str) -> list[str]:
    """Send `literal` (raw JSON) at `field`: a 422 whose errors name the field; its messages."""
    response = world.send(op, body_with(field, literal))
    answer = problem(response, 422, "validation_error")
    assert field in answer["errors"], (field, literal, answer["errors"])
    messages: list[str] = answer["errors"][field]
    return messages


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=str)
def test_a_lone_surrogate_in_any_string_is_422(app: Flask, world: World, op: Operation) -> None:
    strings = op.of_type("string")
    assert strings, f"{op} takes no string: pick another operation"
    with changes_nothing(app, world, op):
        for field in strings:
            for escape in ("\\ud800", "\\udfff", "x\\uDBFFy"):
                messages = refused(world, op, field, f'"{escape}"')
                assert "lone surrogate" in " ".join(messages), (field, messages)


@pytest.mark.parametrize(("op", "via"), VIA)
def test_a_lone_surrogate_in_a_member_name_is_422(
    app: Flask, world: World, op: Operation, via: str
) -> None:
    with changes_nothing(app, world, op):
        answer = problem(world.send(op, '{"na\\ud800me": "x"}', via=via), 422, "validation_error")
        assert "lone surrogate" in " ".join(answer["errors"]["_schema"])


# ---- long integer literals -------------------------------------------------------------------


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=str)
def test_an_integer_literal_past_100_digits_is_422(app: Flask, world: World, op: Operation) -> None:
    """In every number field, GeoJSON coordinates included; in a made-up member where an
    operation has no number (Python's parser failed before any field was looked at)."""
    with changes_nothing(app, world, op):
        for field in op.of_type("number", "integer") or ["n"]:
            for literal in ("9" * 5000, "-" + "1" * 4301, "1" * (jsonbody.MAX_INTEGER_DIGITS + 1)):
                assert "digits" in " ".join(refused(world, op, field, literal)), field


# ---- strict numbers and booleans -------------------------------------------------------------


@pytest.mark.parametrize(
    "op", [op for op in BODY_OPERATIONS if op.numbers or op.of_type("boolean")], ids=str
)
def test_numbers_and_booleans_are_json_numbers_and_booleans(
    app: Flask, world: World, op: Operation
) -> None:
    """Numbers sent as strings ("60.1"), fractions for integers and 0 or 1 for booleans were
    accepted."""
    with changes_nothing(app, world, op):
        for field in op.numbers:
            for literal in ('"60.1"', '"5"', "true", "[5]", '{"value": 5}'):
                refused(world, op, field, literal)
        for field in op.of_type("integer"):
            refused(world, op, field, "5.5")
        for field in op.of_type("boolean"):
            for literal in ("1", "0", "1.0", '"true"', "null"):
                refused(world, op, field, literal)


def test_the_coordinates_of_geojson_are_json_numbers_in_range(
    app: Flask, world: World, owner: Client
) -> None:
    """The GeoJSON is checked by the domain: every mistake is 422 `invalid_geometry`."""
    [op] = [o for o in BODY_OPERATIONS if str(o) == "POST /v1/venues"]
    body = venue_body()
    with changes_nothing(app, world, op):
        for coordinates in ('["24.9", 60.1]', "[1e999, 60.1]", "[-1e999, 60.1]", "[true, 60.1]"):
            sent = json.dumps(body).replace(
                json.dumps(body["location"]["coordinates"]), coordinates
            )
            problem(world.send(op, sent), 422, "invalid_geometry")
        for nested, status, code in (
            ("[[[24.9]], 60.1]", 422, "invalid_geometry"),
            ("[" * 40 + "]" * 40, 400, "json_too_deep"),
        ):
            sent = json.dumps(body).replace(json.dumps(body["location"]["coordinates"]), nested)
            problem(world.send(op, sent), status, code)
        for literal in ("NaN", "Infinity", "-Infinity"):
            sent = json.dumps(body).replace("24.9384", literal)
            answer = problem(world.send(op, sent), 400, "bad_request")
            assert f"{literal} is not a JSON number" in answer["detail"]


# ---- other media types -----------------------------------------------------------------------


@pytest.mark.parametrize(("op", "via"), VIA)
def test_a_body_that_is_not_json_is_415(app: Flask, world: World, op: Operation, via: str) -> None:
    hint = "Accept-Patch" if op.method == "PATCH" else "Accept-Post"
    with changes_nothing(app, world, op):
        for content_type, data in (
            ("application/x-www-form-urlencoded", "name=Kahvila&email=a%40b.co"),
            (
                "multipart/form-data; boundary=x",
                '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--\r\n',
            ),
            ("text/plain", '{"name": "Kahvila"}'),
            ("application/xml", "<name>Kahvila</name>"),
            (None, '{"name": "Kahvila"}'),
        ):
            response = world.send(op, data, content_type, via=via)
            answer = problem(response, 415, "unsupported_media_type")
            assert response.headers[hint] == "application/json"
            assert "application/json" in answer["detail"]


def test_json_media_types_with_parameters_or_suffixes_are_json(
    world: World, client: FlaskClient
) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = client.post(
            "/v1/merchants",
            data=json.dumps({"name": "Kahvila", "email": "hello@kahvila.example"}),
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 201, response.get_json()


def test_an_empty_body_of_any_type_is_missing_fields_not_415(client: FlaskClient) -> None:
    response = client.post(
        "/v1/merchants", data=b"", content_type="application/x-www-form-urlencoded"
    )
    answer = problem(response, 422, "validation_error")
    assert set(answer["errors"]) == {"name", "email"}


# ---- text: controls, invisible formatting, bidirectional controls ---------------------------

REFUSED_IN_TEXT = ["\u202e", "\u2066", "\u200f", "\u200b", "\x1b", "\x85", "\x00", "\u2028"]


@pytest.mark.parametrize("op", [op for op in BODY_OPERATIONS if op.texts], ids=str)
def test_controls_and_invisible_characters_in_text_are_422(
    app: Flask, world: World, op: Operation
) -> None:
    with changes_nothing(app, world, op):
        for field, kind in op.texts.items():
            for char in REFUSED_IN_TEXT + (["\n", "\t"] if kind == "single-line" else []):
                messages = refused(world, op, field, json.dumps(f"Kahvila{char}Noir"))
                assert f"U+{ord(char):04X}" in " ".join(messages), (field, messages)


def test_names_with_right_to_left_overrides_are_refused_through_the_dashboard(
    app: Flask, world: World
) -> None:
    [op] = [o for o in BODY_OPERATIONS if str(o) == "POST /v1/venues"]
    with changes_nothing(app, world, op):
        spoof = json.dumps(venue_body(name="Kahvila \u202eanilaK"))
        answer = problem(world.send(op, spoof, via="dashboard"), 422, "validation_error")
        assert "U+202E" in answer["errors"]["name"][0]


def test_text_people_write_is_stored_as_sent(owner: Client) -> None:
    name = "\u06a9\u0627\u0641\u0647\u200c\u0646\u0627\u062f\u0631\u06cc \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f"
    venue = owner.create_venue(venue_body(name=name, category="Café & bar"))
    assert venue["name"] == name
    description = "Line one\r\nLine two\n\tTerms apply"
    offer = owner.create_offer(
        offer_body([venue["id"]], title="קפה חינם", description=description, terms=description)
    )
    assert owner.get_offer(offer["id"])["description"] == description


def test_a_password_may_hold_what_text_may_not(api: Client) -> None:
    password = "tab\tand \u202e override \x07"
    api.create_user("odd_password", password)
    assert api.login("odd_password", password)


# ---- query strings, path parameters, headers -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "name", "security"),
    [pytest.param(*q, id=f"{q[0]} {q[1]} {q[2]}") for q in QUERY_NUMBERS],
)
def test_numbers_in_query_strings_are_plain_ascii_decimals(
    world: World, client: FlaskClient, method: str, path: str, name: str, security: Any
) -> None:
    """Python's int() and float() take all of these; the nearby search needs its lat and lon,
    so they are sent right where they are not the parameter under test."""
    op = Operation(method, path, "apiKey" if security else None, ())
    url = world.path(op)
    others = {"lat": "60.1", "lon": "24.9"} if path.endswith("/nearby") else {}
    for value in ("1_0", "%205", "%D9%A5", "%2B5", "0x10", "nan", "inf", "1e999", "9" * 5000):
        query = "&".join(f"{k}={v}" for k, v in {**others, name: value}.items())
        response = client.open(f"{url}?{query}", method=method, headers=world.headers(op))
        answer = problem(response, 422, "validation_error")
        assert name in answer["errors"], (value, answer["errors"])


def test_path_parameters_that_are_not_ids_are_404(client: FlaskClient, owner: Client) -> None:
    headers = {"Authorization": f"Bearer {owner.token}"}
    for garbage in ("%00", "%ED%A0%80", "%E2%80%AE" * 12, "9" * 5000, "%5B" * 100):
        problem(client.get(f"/v1/venues/{garbage}", headers=headers), 404, "not_found")
        problem(client.patch(f"/v1/offers/{garbage}", json={}, headers=headers), 404, "not_found")


def test_credentials_with_control_characters_are_401_not_500(
    app: Flask, client: FlaskClient
) -> None:
    """A NUL in a token reached a text column, where psycopg2 raises ValueError."""
    for token in ("cok_" + "\x00" * 12 + "_secret", "cok_000000000000_se\x00cret", "cou_\x00"):
        for path in ("/v1/merchants/me", "/v1/me/unlocks"):
            response = client.get(path, headers={"Authorization": f"Bearer {token}"})
            problem(response, 401, "unauthorized")


def test_an_idempotency_key_with_control_characters_is_422(
    app: Flask, world: World, client: FlaskClient, owner: Client
) -> None:
    [op] = [o for o in BODY_OPERATIONS if str(o) == "POST /v1/redemptions"]
    with changes_nothing(app, world, op):
        for key in ("\x00", "a\x1bb", "\x85", "x" * 256):
            response = client.post(
                "/v1/redemptions",
                json={"code": "7K3Q-XM9T-2RK"},
                headers={"Authorization": f"Bearer {owner.token}", "Idempotency-Key": key},
            )
            assert "Idempotency-Key" in problem(response, 422, "validation_error")["errors"]


def test_the_dashboard_sign_in_takes_any_bytes_without_a_500(
    app: Flask, world: World, client: FlaskClient
) -> None:
    page = client.get("/dashboard/sign-in").get_data(as_text=True)
    form = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert form
    for key in ("cok_" + "\x00" * 12 + "_x", "\ud800".encode("utf-8", "surrogatepass"), "[" * 5000):
        response = client.post("/dashboard/sign-in", data={"api_key": key, "csrf_token": form[1]})
        assert response.status_code == 401, response.status_code


def test_a_next_address_with_line_breaks_goes_home(client: FlaskClient, world: World) -> None:
    world.dashboard()
    for target in ("/dashboard/%0d%0aSet-Cookie:x=1", "/dashboard/%00", "/dashboard/%E2%80%AE"):
        response = client.get(f"/dashboard/sign-in?next={target}")
        assert response.status_code == 302
        assert response.headers["Location"] == "/dashboard/"


# ---- time zones ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "localtime",
        "Factory",
        "posixrules",
        "posix/Europe/Helsinki",
        "right/UTC",
        "europe/helsinki",
        "Europe/Helsinki\x00",
    ],
)
def test_names_that_are_not_time_zones_of_places_are_refused(
    app: Flask, world: World, owner: Client, name: str
) -> None:
    [create] = [o for o in BODY_OPERATIONS if str(o) == "POST /v1/venues"]
    [patch] = [o for o in BODY_OPERATIONS if str(o) == "PATCH /v1/venues/{venue_id}"]
    with changes_nothing(app, world, patch):
        for op, body in ((create, venue_body(timezone=name)), (patch, {"timezone": name})):
            answer = problem(world.send(op, json.dumps(body)), 422, "validation_error")
            assert "timezone" in answer["errors"]


@pytest.mark.parametrize(
    "name", ["UTC", "Europe/Helsinki", "Etc/GMT+2", "America/Argentina/Buenos_Aires", "US/Eastern"]
)
def test_iana_names_and_links_are_time_zones(owner: Client, name: str) -> None:
    assert owner.create_venue(venue_body(timezone=name))["timezone"] == name


def test_the_dashboard_offers_only_the_time_zones_the_api_takes(
    client: FlaskClient, world: World
) -> None:
    world.dashboard()
    page = client.get("/dashboard/venues").get_data(as_text=True)
    assert "Europe/Helsinki" in page
    for name in ("localtime", "Factory", "posixrules"):
        assert f">{name}<" not in page and f'"{name}"' not in page


# ---- the operators' commands -----------------------------------------------------------------


def test_the_commands_take_what_the_api_takes(app: Flask, owner: Client) -> None:
    """A name typed at a terminal may carry escape sequences, and bytes that are not UTF-8
    reach Python's argv as lone surrogates (surrogateescape): both were stored or crashed."""
    merchant_id = owner.me()["id"]
    runner = app.test_cli_runner()
    before = fingerprint(app)
    for args, where in (
        (["create-merchant", "Cafe\u202eNoir", "a@b.example"], "name"),
        (["create-merchant", "Caf\udce9", "a@b.example"], "name"),
        (["create-merchant", "Cafe", "a\x1b@b.example"], "email"),
        (["create-key", merchant_id, "staff", "--label", "\x1b[31mtill"], "label"),
        (["create-key", merchant_id, "staff", "--label", "till\udcff"], "label"),
    ):
        result = runner.invoke(args=args)
        assert result.exit_code == 1, (args, result.output)
        assert f"Error: {where}: must" in result.stderr, result.stderr
    assert fingerprint(app) == before
