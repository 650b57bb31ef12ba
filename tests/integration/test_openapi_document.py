"""The OpenAPI document at /openapi.json is one app developers can generate working clients from:
it validates, every operation is complete (id, description, role, error codes per status with
examples, headers, examples of its request and answer), answers are open to additions, and the
schemas say exactly what the code enforces, checked against the marshmallow schemas themselves.

The generated-client and linter runs are in tests/e2e/test_generated_client.py and
tests/e2e/test_openapi_tools.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import marshmallow as ma
import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from api import openapi, schemas
from api.ratelimit import EXEMPT_PATHS
from core.accounts import ROLES
from mobile_stub.client import Client
from offers.rules import RULE_KINDS

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from tests.integration.test_bad_input import DOCUMENT

    return DOCUMENT


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_the_served_document_validates(client: FlaskClient, document: dict[str, Any]) -> None:
    served = client.get("/openapi.json").get_json()
    assert served == document
    validate(served)
    assert served["servers"] and served["info"]["license"]["name"] == "MIT"


def test_every_operation_is_complete(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids)) >= 50
    for method, path, operation in _operations(document):
        name = f"{method.upper()} {path}"
        assert re.fullmatch(r"[a-z][A-Za-z0-9]+", operation["operationId"]), name
        summary, description = operation["summary"], operation["description"]
        assert summary and "\n" not in summary and len(summary) <= 100, name
        assert description.startswith(summary.rstrip(".").split("...")[0]), name
        assert "**Who:**" in description, name
        security = operation["security"]
        if not security:
            assert "no credentials" in description, name
        if any("apiKey" in requirement for requirement in security):
            assert set(operation["x-roles"]) <= set(ROLES), name
            assert "role " + operation["x-roles"][0] in description, name
        responses = operation["responses"]
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= set(responses), name
            assert "example" in operation["requestBody"]["content"]["application/json"], name
        if path not in EXEMPT_PATHS:
            assert "429" in responses, name
        if security and security != [{}, {"userToken": []}]:
            assert "401" in responses, name
        assert "default" in responses, name
        for status, response in responses.items():
            headers = response.get("headers", {})
            assert "X-Request-ID" in headers, (name, status)
            if path not in EXEMPT_PATHS:
                assert "RateLimit-Remaining" in headers, (name, status)
            if status.startswith("2"):
                json_answer = response.get("content", {}).get("application/json")
                if json_answer:
                    assert "example" in json_answer, (name, status)
                continue
            codes = response["x-codes"]
            assert codes, (name, status)
            problem = response["content"]["application/problem+json"]
            assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert set(problem["examples"]) == set(codes), (name, status)
            for code in codes:
                ref = problem["examples"][code]["$ref"]
                example = document["components"]["examples"][ref.rsplit("/", 1)[1]]["value"]
                assert example["code"] == code and f"`{code}`" in response["description"]
                if status != "default":
                    assert example["status"] == int(status), (name, status, code)
        if "Idempotency-Key" in str(operation.get("parameters")):
            success = next(r for s, r in responses.items() if s.startswith("2"))
            assert "Idempotent-Replayed" in success["headers"], name
            assert "idempotency_key_reused" in responses["422"]["x-codes"], name


def test_domain_codes_are_listed_where_they_are_answered(document: dict[str, Any]) -> None:
    def codes(method: str, path: str, status: int) -> list[str]:
        return document["paths"][path][method]["responses"][str(status)]["x-codes"]

    assert codes("post", "/v1/redemptions", 409) == ["already_redeemed"]
    assert codes("post", "/v1/redemptions", 410) == ["expired"]
    assert "wrong_venue" in codes("post", "/v1/redemptions", 422)
    assert "venue_not_paired" in codes("post", "/v1/redemptions", 403)
    assert codes("post", "/v1/offers/{offer_id}/activate", 409) == ["illegal_transition"]
    assert codes("post", "/v1/users", 409) == ["handle_taken"]
    assert "invalid_geometry" in codes("post", "/v1/venues", 422)
    assert codes("post", "/v1/venues", 413) == ["payload_too_large"]
    assert codes("post", "/v1/venues", 415) == ["unsupported_media_type"]
    assert set(codes("post", "/v1/venues", 403)) == {"forbidden", "device_not_allowed"}
    assert codes("get", "/v1/venues", 429) == ["rate_limited"]
    assert codes("get", "/readyz", 503) == ["not_ready", "service_unavailable"]
    problem = document["components"]["schemas"]["Problem"]["properties"]
    assert problem["errors"]["additionalProperties"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    every = set(openapi.all_codes())
    for _, _, operation in _operations(document):
        for response in operation["responses"].values():
            assert set(response.get("x-codes", ())) <= every


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_requests_declare_no_null_defaults_and_patches_no_defaults(
    document: dict[str, Any],
) -> None:
    components = document["components"]["schemas"]
    closed = openapi.request_schemas(document)
    assert {"VenueCreate", "VenuePatch", "OfferPatch", "RuleNthVisit", "Window"} <= closed
    for name in closed:
        for node in _walk(components[name]):
            assert node.get("default", ...) is not None, name
            # `null` in an enum only in the 3.0 idiom for "or null": a schema of null alone.
            assert None not in node.get("enum", ()) or node["enum"] == [None], name
    for name in ("VenuePatch", "OfferPatch"):
        assert "required" not in components[name], name
        assert not any("default" in node for node in _walk(components[name])), name
    for _, _, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            assert parameter["schema"].get("default", ...) is not None, parameter
            assert None not in parameter["schema"].get("enum", ()), parameter


def test_answers_are_open_to_additions(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    closed = openapi.request_schemas(document)
    assert {"Venue", "Checkin", "Reason", "Problem", "Offer"} <= set(components) - closed
    for name in set(components) - closed:
        for node in _walk(components[name]):
            assert node.get("additionalProperties") is not False, name
            if node.get("type") == "string":
                assert len(node.get("enum", ())) <= 1, name
    reason = components["Reason"]["properties"]["code"]
    assert (
        "outside_geofence" in reason["x-extensible-enum"]
        and "more may be added" in (reason["description"])
    )
    # Requests stay closed: the server refuses unknown fields and values.
    assert components["VenueCreate"]["additionalProperties"] is False


def test_geometry_coordinates_are_typed_to_the_number(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]

    def depth(schema: dict[str, Any]) -> int:
        if "$ref" in schema:
            return depth(components[schema["$ref"].rsplit("/", 1)[1]])
        if schema.get("type") == "array":
            return 1 + depth(schema["items"])
        assert schema["type"] == "number"
        return 0

    assert depth(components["GeoJsonPoint"]["properties"]["coordinates"]) == 1
    assert depth(components["GeoJsonPolygon"]["properties"]["coordinates"]) == 3
    assert depth(components["GeoJsonMultiPolygon"]["properties"]["coordinates"]) == 4
    for name in ("Venue", "VenueCreate", "VenuePatch"):
        fence = components[name]["properties"]["geofence"]
        assert fence["discriminator"]["propertyName"] == "type", name


def test_the_rule_is_one_schema_per_kind(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    rule = components["Rule"]
    assert rule["discriminator"]["propertyName"] == "kind"
    assert list(rule["discriminator"]["mapping"]) == list(RULE_KINDS)
    fields = schemas.RuleSchema._declared_fields
    for kind, ref in rule["discriminator"]["mapping"].items():
        variant = components[ref.rsplit("/", 1)[1]]
        required, optional = schemas.RULE_PARAMS[kind]
        assert variant["properties"]["kind"]["enum"] == [kind]
        assert set(variant["required"]) == {"kind", *required}
        assert set(variant["properties"]) == {"kind", *required, *optional}
        assert variant["additionalProperties"] is False
        for name in set(variant["properties"]) - {"kind"}:
            _compare(f"Rule.{kind}", name, fields[name], variant["properties"][name], True)
    nearby = components["NearbyOffer"]["properties"]
    assert nearby["rule"] == {"$ref": "#/components/schemas/Rule"}
    assert nearby["windows"]["items"] == {"$ref": "#/components/schemas/Window"}
    offer_create = components["OfferCreate"]["properties"]
    assert offer_create["per_user_cap"]["default"] == 1
    assert offer_create["code_ttl_minutes"]["default"] == 1440
    assert components["RuleTopVisitor"]["properties"]["window_days"]["default"] == 60


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _compare(where: str, name: str, field: ma.fields.Field, prop: dict[str, Any], request: bool):
    """One field's document against its marshmallow definition."""
    label = f"{where}.{name}"
    target = prop
    if isinstance(field, ma.fields.List):
        for validator in field.validators:
            if isinstance(validator, ma.validate.Length):
                assert prop.get("minItems") == validator.min, label
                assert prop.get("maxItems") == validator.max, label
        return
    for validator in field.validators:
        if isinstance(validator, ma.validate.Range):
            assert target.get("minimum") == validator.min, label
            assert target.get("maximum") == validator.max, label
            assert target.get("exclusiveMinimum", False) == (
                validator.min is not None and not validator.min_inclusive
            ), label
            assert target.get("exclusiveMaximum", False) == (
                validator.max is not None and not validator.max_inclusive
            ), label
        elif isinstance(validator, ma.validate.Length):
            assert target.get("minLength") == validator.min, label
            assert target.get("maxLength") == validator.max, label
        elif isinstance(validator, ma.validate.OneOf):
            choices = list(validator.choices)
            assert (target.get("enum") if request else target.get("x-extensible-enum")) == (
                choices
            ), label
        elif isinstance(validator, ma.validate.Regexp):
            assert target.get("pattern") == validator.regex.pattern, label
    default = field.metadata.get("default", field.load_default)
    if request and default is not ma.missing and default is not None and not callable(default):
        assert target.get("default") == field._serialize(default, None, None), label
    elif request:
        assert "default" not in target, label
    if field.allow_none and "type" in target:
        assert target.get("nullable") is True, label


def test_the_document_says_what_the_schemas_enforce(document: dict[str, Any]) -> None:
    """Every marshmallow schema in api/schemas.py against its component, field by field: bounds,
    lengths, choices, patterns, defaults, required fields and nullability."""
    components = document["components"]["schemas"]
    closed = openapi.request_schemas(document)
    compared = 0
    for attribute in dir(schemas):
        schema = getattr(schemas, attribute)
        if not (isinstance(schema, type) and issubclass(schema, ma.Schema)):
            continue
        name = schema.__name__.removesuffix("Schema")
        if name not in components or getattr(schema, "openapi_schema", None):
            continue
        component = components[name]
        request = name in closed
        required = set(component.get("required", ()))
        for field_name, field in schema._declared_fields.items():
            key = field.data_key or field_name
            if (field.load_only and not request) or (field.dump_only and request):
                continue
            prop = component["properties"][key]
            assert (key in required) == field.required, f"{name}.{key} required"
            if getattr(field, "openapi_property", None) is None and "$ref" not in prop:
                _compare(name, key, field, prop, request)
            compared += 1
    assert compared > 300
    # Bounds the domain checks beyond the schema are stated too.
    radius = components["VenueCreate"]["properties"]["radius_m"]
    assert (radius["minimum"], radius["maximum"]) == (10, 10_000)
    accuracy = components["CheckinCreate"]["properties"]["accuracy_m"]
    assert accuracy["minimum"] == 0 and accuracy["exclusiveMinimum"] is True
    assert "zone" in components["CheckinCreate"]["properties"]["observed_at"]["description"]
    ci95 = components["Lift"]["properties"]["ci95"]
    assert (ci95["minItems"], ci95["maxItems"]) == (2, 2)


def test_a_patch_of_one_field_changes_only_that_field(owner: Client) -> None:
    venue = owner.create_venue(
        {
            "name": "Kahvila",
            "location": {"type": "Point", "coordinates": [24.9384, 60.1699]},
            "timezone": "Europe/Helsinki",
            "radius_m": 35,
            "checkin_cooldown_minutes": 0,
            "max_accuracy_m": 25,
            "tap_radius_m": 200,
        }
    )
    patched = owner.update_venue(venue["id"], {"name": "Kahvila Aalto"})
    assert patched["name"] == "Kahvila Aalto"
    unchanged = ("timezone", "checkin_cooldown_minutes", "max_accuracy_m", "tap_radius_m")
    assert {k: patched[k] for k in unchanged} == {
        "timezone": "Europe/Helsinki",
        "checkin_cooldown_minutes": 0,
        "max_accuracy_m": 25,
        "tap_radius_m": 200,
    }
    assert patched["geofence"] == venue["geofence"] and patched["radius_m"] == 35
    offer = owner.create_offer(
        {
            "venue_ids": [venue["id"]],
            "title": "Pulla",
            "rule": {"kind": "nth_visit", "visits": 3, "repeat": True},
            "per_user_cap": 5,
            "code_ttl_minutes": 30,
            "holdout_pct": 10,
        }
    )
    renamed = owner.update_offer(offer["id"], {"title": "Korvapuusti"})
    assert {k: v for k, v in renamed.items() if k not in ("title", "updated_at")} == {
        k: v for k, v in offer.items() if k not in ("title", "updated_at")
    }


def test_every_operation_is_named_in_openapi_operations(document: dict[str, Any]) -> None:
    """A new operation must say its operationId and the domain errors it raises in
    api/openapi.py `OPERATIONS` (until then it has a derived id and only the generic codes)."""
    served = {f"{method.upper()} {path}" for method, path, _ in _operations(document)}
    assert served - set(openapi.OPERATIONS) == set(), "add them to api/openapi.py OPERATIONS"
    assert set(openapi.OPERATIONS) - served == set(), "no longer served: remove them"


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_domain_error_is_listed_by_an_operation(document: dict[str, Any]) -> None:
    from core.errors import DomainError

    listed = {
        code
        for _, _, operation in _operations(document)
        for response in operation["responses"].values()
        for code in response.get("x-codes", ())
    }
    raised = {error.code for error in _subclasses(DomainError)}
    # ConflictError's own code: a base class, never raised as itself.
    assert raised - listed == {"conflict"}
