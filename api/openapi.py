"""The OpenAPI document at `/openapi.json`, shaped for the code generators apps point at it.

flask-smorest builds the document from the blueprints and `api/schemas.py`; this module adds what
generated clients need and the framework leaves out, for every operation, those added later too:

- **Fields say what the server does.** `Converter` drops `default: null` (a generated TypeScript
  type would make such an optional field required) and `null` from enums, writes exclusive
  bounds as `exclusiveMinimum`, and lets a field or schema describe itself
  (`openapi_property`, `openapi_schema`: the GeoJSON geometries and the rule's `oneOf`).
- **Operations are complete.** `OperationsPlugin` gives each one an `operationId`, a short
  `summary` and a full `description` with the role it needs, `security: []` when it needs none,
  the headers its answers may carry, and for every error status the codes it may answer
  (`x-codes`, with an example problem per code). The codes come from what the operation is
  (a JSON body, query parameters, a path id, credentials, `Idempotency-Key`) and from
  `DOMAIN_ERRORS`, the domain errors each operation may raise.
- **Answers are open to additions.** `Document.to_dict` opens every schema that only answers
  describe: no `additionalProperties: false`, and enums become `x-extensible-enum` (listed in
  the description too), so a client generated today keeps working when the contract adds a
  field, a reason code or a status. Schemas that request bodies use stay closed: the server
  refuses unknown fields (422) and values outside their enums.
"""

from __future__ import annotations

import copy
import http
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from apispec.ext.marshmallow.common import resolve_schema_cls

from core import accounts, idempotency, webhooks
from core import errors as core_errors
from core.errors import DomainError
from geo import nfc
from offers import abuse, checkins, devices, feedback, redemptions, wallet

# ---- fields and schemas ------------------------------------------------------------------------


class Converter(OpenAPIConverter):
    """apispec's marshmallow converter, with the corrections described above."""

    def field2property(self, field: ma.fields.Field) -> dict[str, Any]:
        own = getattr(field, "openapi_property", None)
        if own is not None:
            prop: dict[str, Any] = own(self)
            description = field.metadata.get("description")
            if description and "$ref" not in prop:
                prop.setdefault("description", description)
            return prop
        prop = super().field2property(field)
        if prop.get("default", ...) is None:
            del prop["default"]
        if isinstance(prop.get("enum"), list) and None in prop["enum"]:
            prop["enum"] = [value for value in prop["enum"] if value is not None]
        # A nullable nested object: apispec writes anyOf [$ref, {type: object}], which
        # generators read as "that or any object". The 3.0 idiom for "or null" is a schema
        # whose only value is null.
        any_of = prop.get("anyOf")
        if (
            isinstance(any_of, list)
            and len(any_of) == 2
            and any_of[1] == {"type": "object", "nullable": True}
        ):
            del prop["anyOf"]
            prop["oneOf"] = [any_of[0], {"type": "object", "nullable": True, "enum": [None]}]
        if prop.get("nullable") and not {"type", "allOf", "oneOf", "anyOf"} & prop.keys():
            del prop["nullable"]  # any JSON value (a Raw field): null included
        for validator in field.validators:
            if isinstance(validator, ma.validate.Range):
                if validator.min is not None and not validator.min_inclusive:
                    prop["exclusiveMinimum"] = True
                if validator.max is not None and not validator.max_inclusive:
                    prop["exclusiveMaximum"] = True
        return prop

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        own = getattr(resolve_schema_cls(schema), "openapi_schema", None)
        if own is not None:
            result: dict[str, Any] = own(self)
            return result
        return super().schema2jsonschema(schema)

    def component(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        """Register a schema written by hand (once) and answer a reference to it."""
        assert self.spec is not None
        if name not in self.spec.components.schemas:
            self.spec.components.schema(name, schema)
        return {"$ref": f"#/components/schemas/{name}"}


class Plugin(MarshmallowPlugin):
    Converter = Converter


# ---- errors each operation may answer ------------------------------------------------------------

# Codes that do not come from a domain error class: (status, code, title).
BAD_REQUEST = (400, "bad_request", "the body is not JSON")
JSON_TOO_DEEP = (400, "json_too_deep", "JSON nested too deep")
PAYLOAD_TOO_LARGE = (413, "payload_too_large", "a body over 1 MiB")
UNSUPPORTED_MEDIA_TYPE = (415, "unsupported_media_type", "a body that is not application/json")
VALIDATION_ERROR = (422, "validation_error", "a field is missing, unknown or invalid: see errors")
UNAUTHORIZED = (401, "unauthorized", "credentials missing, wrong or revoked")
FORBIDDEN = (403, "forbidden", "a key whose role may not do this")
DEVICE_NOT_ALLOWED = (403, "device_not_allowed", "a till device's key, which may not do this")
NOT_FOUND = (404, "not_found", "no such object, or another merchant's")
RATE_LIMITED = (429, "rate_limited", "over a rate limit: retry after Retry-After seconds")
INTERNAL_ERROR = (500, "internal_error", "the server failed")
SERVICE_UNAVAILABLE = (503, "service_unavailable", "the database is unavailable: retry shortly")


def _error(error: type[DomainError]) -> tuple[int, str, str]:
    return (error.status, error.code, error.title)


# The domain errors each operation may raise, beyond what its shape implies (a JSON body, query
# parameters, a path id, credentials): keyed by "METHOD path", with its operationId.
@dataclass(frozen=True)
class Operation:
    id: str
    errors: tuple[type[DomainError], ...] = ()


VENUE_NOT_PAIRED = devices.VenueNotPairedError
OPERATIONS: dict[str, Operation] = {
    "GET /healthz": Operation("getHealth"),
    "GET /readyz": Operation("getReadiness"),
    "POST /v1/merchants": Operation("createMerchant"),
    "GET /v1/merchants/me": Operation("getMerchant"),
    "GET /v1/merchants/me/keys": Operation("listKeys"),
    "POST /v1/merchants/me/keys": Operation("createKey"),
    "DELETE /v1/merchants/me/keys/{key_id}": Operation("revokeKey", (accounts.LastOwnerKeyError,)),
    "POST /v1/merchants/me/keys/{key_id}/rotate": Operation(
        "rotateKey", (accounts.KeyRevokedError,)
    ),
    "GET /v1/merchants/me/staff-users": Operation("listStaffUsers"),
    "POST /v1/merchants/me/staff-users": Operation("createStaffUser", (abuse.AlreadyStaffError,)),
    "DELETE /v1/merchants/me/staff-users/{staff_user_id}": Operation("deleteStaffUser"),
    "GET /v1/merchants/me/audit": Operation("listAuditEvents"),
    "POST /v1/users": Operation(
        "createUser", (core_errors.HandleTakenError, core_errors.TooManyAttemptsError)
    ),
    "POST /v1/users/token": Operation("createUserToken", (core_errors.TooManyAttemptsError,)),
    "GET /v1/venues": Operation("listVenues"),
    "POST /v1/venues": Operation("createVenue", (core_errors.InvalidGeometryError,)),
    "GET /v1/venues/nearby": Operation("listNearbyVenues"),
    "GET /v1/venues/{venue_id}": Operation("getVenue"),
    "PATCH /v1/venues/{venue_id}": Operation("updateVenue", (core_errors.InvalidGeometryError,)),
    "DELETE /v1/venues/{venue_id}": Operation("deleteVenue"),
    "GET /v1/venues/{venue_id}/presence-code": Operation("getPresenceCode", (VENUE_NOT_PAIRED,)),
    "GET /v1/venues/{venue_id}/nfc-tags": Operation("listNfcTags"),
    "POST /v1/venues/{venue_id}/nfc-tags": Operation("createNfcTag", (nfc.TagRegisteredError,)),
    "DELETE /v1/nfc-tags/{tag_id}": Operation("deleteNfcTag"),
    "GET /v1/venues/{venue_id}/till-day": Operation("getTillDay", (VENUE_NOT_PAIRED,)),
    "GET /v1/offers": Operation("listOffers"),
    "POST /v1/offers": Operation("createOffer", (core_errors.NotFoundError,)),
    "GET /v1/offers/{offer_id}": Operation("getOffer"),
    "PATCH /v1/offers/{offer_id}": Operation(
        "updateOffer", (core_errors.NotFoundError, core_errors.IllegalTransitionError)
    ),
    "POST /v1/offers/{offer_id}/activate": Operation(
        "activateOffer", (core_errors.IllegalTransitionError,)
    ),
    "POST /v1/offers/{offer_id}/pause": Operation(
        "pauseOffer", (core_errors.IllegalTransitionError,)
    ),
    "POST /v1/offers/{offer_id}/end": Operation("endOffer", (core_errors.IllegalTransitionError,)),
    "POST /v1/checkins": Operation(
        "createCheckin", (core_errors.NotFoundError, core_errors.TooManyAttemptsError)
    ),
    "GET /v1/me/unlocks": Operation("listMyUnlocks"),
    "POST /v1/taps": Operation("createTap", (nfc.TapInvalidError, nfc.TapReplayedError)),
    "GET /v1/me/cards": Operation("listMyCards"),
    "POST /v1/me/cards": Operation("createMyCard", (nfc.TagRegisteredError,)),
    "DELETE /v1/me/cards/{card_id}": Operation("deleteMyCard"),
    "GET /v1/me/member-code": Operation("getMyMemberCode"),
    "POST /v1/checkins/{checkin_id}/feedback": Operation(
        "createFeedback",
        (core_errors.NotFoundError, feedback.NotEligibleError, feedback.AlreadyGivenError),
    ),
    "GET /v1/me/feedback": Operation("listMyFeedback"),
    "GET /v1/feedback": Operation("listFeedback", (core_errors.NotFoundError,)),
    "POST /v1/feedback/{feedback_id}/replies": Operation(
        "createFeedbackReply", (core_errors.NotFoundError,)
    ),
    "GET /v1/analytics/responsiveness": Operation(
        "getResponsiveness", (core_errors.NotFoundError,)
    ),
    "POST /v1/merchants/me/webhooks": Operation(
        "createWebhook", (webhooks.WebhookUrlError, webhooks.WebhookLimitError)
    ),
    "GET /v1/merchants/me/webhooks": Operation("listWebhooks"),
    "DELETE /v1/merchants/me/webhooks/{webhook_id}": Operation(
        "deleteWebhook", (core_errors.NotFoundError,)
    ),
    "GET /v1/merchants/me/webhooks/{webhook_id}/deliveries": Operation(
        "listWebhookDeliveries", (core_errors.NotFoundError,)
    ),
    "POST /v1/merchants/me/webhooks/{webhook_id}/deliveries/{delivery_id}/replay": Operation(
        "replayWebhookDelivery", (core_errors.NotFoundError,)
    ),
    "GET /v1/me/unlocks/{unlock_id}/apple-pass": Operation(
        "getApplePass",
        (core_errors.NotFoundError, wallet.WalletNotConfiguredError, wallet.UnlockNotActiveError),
    ),
    "GET /v1/me/unlocks/{unlock_id}/google-pass": Operation(
        "getGooglePass",
        (core_errors.NotFoundError, wallet.WalletNotConfiguredError, wallet.UnlockNotActiveError),
    ),
    "GET /v1/me/export": Operation("exportMyData"),
    "DELETE /v1/me": Operation("deleteMyAccount"),
    "POST /v1/staff-checkins": Operation(
        "createStaffCheckin",
        (
            core_errors.NotFoundError,
            VENUE_NOT_PAIRED,
            checkins.MemberCodeInvalidError,
            nfc.TapInvalidError,
            nfc.TapReplayedError,
            checkins.TooManyAttemptsError,
        ),
    ),
    "POST /v1/redemptions": Operation(
        "createRedemption",
        (
            redemptions.CodeNotFoundError,
            redemptions.WrongVenueError,
            redemptions.AlreadyRedeemedError,
            redemptions.ExpiredError,
            VENUE_NOT_PAIRED,
        ),
    ),
    "POST /v1/redemptions/check": Operation("checkCode", (VENUE_NOT_PAIRED,)),
    "POST /v1/devices/pairings": Operation("createPairing", (core_errors.NotFoundError,)),
    "POST /v1/devices/pair": Operation("pairDevice", (devices.PairingCodeInvalidError,)),
    "GET /v1/devices": Operation("listDevices"),
    "GET /v1/devices/me": Operation("getMyDevice", (core_errors.NotFoundError,)),
    "DELETE /v1/devices/me": Operation("unpairMyDevice", (core_errors.NotFoundError,)),
    "DELETE /v1/devices/{device_id}": Operation("revokeDevice"),
    "GET /v1/analytics/offers/{offer_id}/funnel": Operation("getFunnel"),
    "GET /v1/analytics/redemptions": Operation("getRedemptionsReport"),
    "GET /v1/analytics/offers/{offer_id}/lift": Operation("getLift"),
    "GET /v1/analytics/leaks": Operation("getLeakReport", (core_errors.NotFoundError,)),
    "GET /v1/analytics/offers/health": Operation("listOfferHealth"),
    "GET /v1/analytics/offers/{offer_id}/health": Operation("getOfferHealth"),
    "GET /v1/analytics/summary": Operation("getSummary", (core_errors.NotFoundError,)),
}
# The problem's `title` where it is not the HTTP status phrase: the domain errors'.
TITLES: dict[str, str] = {
    "json_too_deep": "JSON nested too deep",
    idempotency.IdempotencyKeyReusedError.code: idempotency.IdempotencyKeyReusedError.title,
    **{
        error.code: error.title
        for operation in OPERATIONS.values()
        for error in operation.errors
        if error.code not in {"not_found"}
    },
}
# Paths whose 503 names its own codes (the probes).
PROBE_CODES = {
    "/healthz": [SERVICE_UNAVAILABLE],
    "/readyz": [(503, "not_ready", "migrations are pending"), SERVICE_UNAVAILABLE],
}


def derived_operation_id(method: str, path: str) -> str:
    """An operationId for an operation `OPERATIONS` does not name yet: method and path."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path.replace("/v1/", "/")) if w]
    return method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


# ---- headers ---------------------------------------------------------------------------------------

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id, as in the service's logs (the caller's own when it "
        "sent a sane one); quote it when reporting a problem",
        "schema": {"type": "string"},
    },
    "RateLimit-Limit": {
        "description": "The tightest rate limit that applied: requests per window",
        "schema": {"type": "integer"},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in the window of that limit",
        "schema": {"type": "integer"},
    },
    "RateLimit-Reset": {
        "description": "Seconds until that limit's window ends",
        "schema": {"type": "integer"},
    },
    "RateLimit-Policy": {
        "description": "Every limit that applied, e.g. `600;w=60`",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this answer is the stored answer to an earlier request "
        "with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Accept-Post": {
        "description": "The media type this operation takes: application/json",
        "schema": {"type": "string"},
    },
    "Accept-Patch": {
        "description": "The media type this operation takes: application/json",
        "schema": {"type": "string"},
    },
}
RATE_LIMIT_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
)


def _header_refs(names: Iterable[str]) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


# ---- operations ------------------------------------------------------------------------------------

ROLE_TEXT = {
    "apiKey": "a merchant API key",
    "userToken": "a mobile user's token",
}


def _split_summary(summary: str, description: str) -> tuple[str, str]:
    """A summary of one sentence; the docstring's whole text as the description."""
    text = " ".join(summary.split())
    first = re.split(r"(?<=[.;:!?])\s", text, maxsplit=1)[0].rstrip(".;:")
    if len(first) > 100:
        first = first[:97].rsplit(" ", 1)[0] + "..."
    full = "\n\n".join(part for part in (text, description.strip()) if part)
    return first, full


def _who(operation: dict[str, Any]) -> str:
    roles = operation.get("x-roles")
    security = operation.get("security") or []
    if not security:
        return "**Who:** anyone; no credentials needed."
    schemes = [name for requirement in security for name in requirement]
    if schemes == ["userToken"] and [r for r in security if not r] == [{}]:
        return "**Who:** anyone; a user token is optional."
    if "userToken" in schemes:
        return "**Who:** a mobile user (user token)."
    text = f"**Who:** a merchant API key with role {' or '.join(roles or [])}"
    if operation.get("x-till-device"):
        text += ", or a till device's key at its own venue"
    return text + "."


class OperationsPlugin(BasePlugin):
    """Completes every operation (see the module's docstring)."""

    def __init__(self, exempt_paths: Iterable[str] = ()) -> None:
        self.exempt_paths = frozenset(exempt_paths)
        self.spec: APISpec | None = None

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec
        for name, header in HEADERS.items():
            spec.components.header(name, header)

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if path is None or operations is None:
            return
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            self._complete(path, method, operation)

    def _complete(self, path: str, method: str, operation: dict[str, Any]) -> None:
        known = OPERATIONS.get(f"{method.upper()} {path}")
        operation.setdefault(
            "operationId", known.id if known else derived_operation_id(method, path)
        )
        if not operation.get("security"):
            operation["security"] = []
        summary, description = _split_summary(
            operation.get("summary", ""), operation.get("description", "")
        )
        operation["summary"] = summary or operation["operationId"]
        operation["description"] = "\n\n".join(filter(None, (description, _who(operation))))

        codes = self._codes(path, operation, known)
        responses = {str(key): value for key, value in operation.get("responses", {}).items()}
        for status in sorted({status for status, _, _ in codes} - {500, 503}):
            responses.setdefault(str(status), None)
        responses["default"] = None
        operation["responses"] = responses
        limited = path not in self.exempt_paths
        idempotent = any(
            p.get("in") == "header" and p.get("name") == "Idempotency-Key"
            for p in operation.get("parameters", [])
        )
        for key in list(responses):
            status = 0 if key == "default" else int(key)
            headers = ["X-Request-ID"]
            if limited:
                headers += RATE_LIMIT_HEADERS
            if status < 400 and status != 0:
                if idempotent:
                    headers.append("Idempotent-Replayed")
                response = responses[key]
                if isinstance(response, dict) and "$ref" not in response:
                    response.setdefault("headers", {}).update(_header_refs(headers))
                continue
            if status in (429, 503) or status == 0:
                headers.append("Retry-After")
            if status == 415:
                headers.append("Accept-Patch" if method == "patch" else "Accept-Post")
            here = (
                [c for c in codes if c[0] == status]
                if status
                else [c for c in codes if c[0] >= 500]
            )
            if not here:
                here = [(status, _generic_code(status), http.HTTPStatus(status).phrase)]
            responses[key] = self._problem_response(status, here, headers)

    def _codes(
        self, path: str, operation: dict[str, Any], known: Operation | None
    ) -> list[tuple[int, str, str]]:
        codes: list[tuple[int, str, str]] = []
        if "requestBody" in operation:
            codes += [BAD_REQUEST, JSON_TOO_DEEP, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE]
            codes.append(VALIDATION_ERROR)
        parameters = operation.get("parameters", [])
        if any(p.get("in") == "query" for p in parameters):
            codes.append(VALIDATION_ERROR)
        if any(p.get("name") == "Idempotency-Key" for p in parameters):
            codes.append(_error(idempotency.IdempotencyKeyReusedError))
        security = operation.get("security") or []
        # Credentials a call cannot do without (nearby's token is optional: a bad one is
        # ignored). A view that declares 401 itself (sign-in) gets it from its responses.
        if any(r for r in security) and [r for r in security if not r] != [{}]:
            codes.append(UNAUTHORIZED)
        if any("apiKey" in r for r in security):
            codes.append(FORBIDDEN)
            if not operation.get("x-till-device"):
                codes.append(DEVICE_NOT_ALLOWED)
        declared = {str(status) for status in operation.get("responses", {})}
        if "{" in path or "404" in declared:
            codes.append(NOT_FOUND)
        if path not in self.exempt_paths:
            codes.append(RATE_LIMITED)
        for error in known.errors if known else ():
            codes.append(_error(error))
        codes += PROBE_CODES.get(path, [INTERNAL_ERROR, SERVICE_UNAVAILABLE])
        unique: dict[tuple[int, str], tuple[int, str, str]] = {}
        for status, code, title in codes:
            unique.setdefault((status, code), (status, code, title))
        return list(unique.values())

    def _problem_response(
        self, status: int, codes: list[tuple[int, str, str]], headers: list[str]
    ) -> dict[str, Any]:
        """An error response: its codes in the description and `x-codes`, an example problem
        for each (a component, shared by every operation that answers it)."""
        assert self.spec is not None
        names = ", ".join(f"`{code}` ({title})" for _, code, title in codes)
        phrase = http.HTTPStatus(status).phrase if status else "Unexpected error"
        examples = {}
        for code_status, code, title in codes:
            if code not in self.spec.components.examples:
                self.spec.components.example(code, _problem_example(code_status, code, title))
            examples[code] = {"$ref": f"#/components/examples/{code}"}
        return {
            "description": f"{phrase}: {names}",
            "x-codes": [code for _, code, _ in codes],
            "headers": _header_refs(headers),
            "content": {
                "application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "examples": examples,
                }
            },
        }


def _problem_example(status: int, code: str, when: str) -> dict[str, Any]:
    value: dict[str, Any] = {
        "type": f"urn:checkin-offers:problem:{code}",
        "title": TITLES.get(code) or http.HTTPStatus(status).phrase,
        "status": status,
        "detail": when,
        "code": code,
    }
    if code == "validation_error":
        value["errors"] = {"name": ["Missing data for required field."]}
    return {"summary": when, "value": value}


def _generic_code(status: int) -> str:
    from api.errors import HTTP_CODES

    return HTTP_CODES.get(status, f"http_{status}")


def all_codes() -> list[str]:
    """Every problem code the service may answer, for the Problem schema's `code`."""
    found = {
        code
        for status, code, _ in (
            BAD_REQUEST,
            JSON_TOO_DEEP,
            PAYLOAD_TOO_LARGE,
            UNSUPPORTED_MEDIA_TYPE,
            VALIDATION_ERROR,
            UNAUTHORIZED,
            FORBIDDEN,
            DEVICE_NOT_ALLOWED,
            NOT_FOUND,
            RATE_LIMITED,
            INTERNAL_ERROR,
            SERVICE_UNAVAILABLE,
            *(c for codes in PROBE_CODES.values() for c in codes),
        )
    }
    for operation in OPERATIONS.values():
        found.update(error.code for error in operation.errors)
    found.add(idempotency.IdempotencyKeyReusedError.code)
    from api.errors import HTTP_CODES

    found.update(HTTP_CODES.values())
    return sorted(found)


# ---- the whole document --------------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            yield ref.rsplit("/", 1)[1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _closure(start: Iterable[str], schemas: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        todo.extend(_refs(schemas[name]))
    return seen


def request_schemas(document: dict[str, Any]) -> set[str]:
    """The component schemas a request body or parameter uses, directly or nested."""
    roots: list[str] = []
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            roots += _refs(operation.get("requestBody", {}))
            roots += _refs(operation.get("parameters", []))
    return _closure(roots, document["components"]["schemas"])


def _open(node: Any) -> None:
    """Open one answer's schema to additions: extensible enums, extra properties allowed."""
    if isinstance(node, dict):
        if node.get("additionalProperties") is False:
            del node["additionalProperties"]
        enum = node.get("enum")
        if isinstance(enum, list) and node.get("type") == "string" and len(enum) > 1:
            del node["enum"]
            node["x-extensible-enum"] = enum
            listed = ", ".join(f"`{value}`" for value in enum)
            text = node.get("description", "")
            node["description"] = (
                f"{text}{'. ' if text and not text.endswith('.') else ' ' if text else ''}"
                f"One of {listed}; more may be added, so treat an unknown value as unknown."
            )
        for key, value in node.items():
            if key != "x-extensible-enum":
                _open(value)
    elif isinstance(node, list):
        for value in node:
            _open(value)


# flask-smorest registers it for paginated views, which this API has none of.
UNUSED_IF_UNREFERENCED = frozenset({"PaginationMetadata"})


EXAMPLE_FORMATS = {
    "uuid": "5e6f7a8b-1c2d-4e3f-8a9b-0c1d2e3f4a5b",
    "date-time": "2026-12-06T15:30:00Z",
    "date": "2026-12-06",
    "email": "hello@aalto.example",
}


def example_of(
    schema: dict[str, Any], schemas: dict[str, Any], *, request: bool, depth: int = 0
) -> Any:
    """An example value valid against `schema`, from the examples and defaults it holds. In a
    request, an object shows its required properties and those with an example of their own."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return example_of(schemas[name], schemas, request=request, depth=depth + 1)
    if "example" in schema:
        return schema["example"]
    if depth > 12:
        return None
    for key in ("oneOf", "allOf", "anyOf"):
        if schema.get(key):
            return example_of(schema[key][0], schemas, request=request, depth=depth + 1)
    if "default" in schema:
        return schema["default"]
    choices = schema.get("enum") or schema.get("x-extensible-enum")
    if choices:
        return choices[0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", ()))
        shown = {}
        for name, inner in schema.get("properties", {}).items():
            if request and name not in required and "example" not in inner:
                continue
            if inner.get("writeOnly") and not request:
                continue
            shown[name] = example_of(inner, schemas, request=request, depth=depth + 1)
        if not shown and isinstance(schema.get("additionalProperties"), dict):
            inner = schema["additionalProperties"]
            shown["key"] = example_of(inner, schemas, request=request, depth=depth + 1)
        return shown
    if kind == "array":
        item = example_of(schema.get("items", {}), schemas, request=request, depth=depth + 1)
        return [item] * max(1, schema.get("minItems", 1))
    if kind in ("integer", "number"):
        low = schema.get("minimum")
        value = 1 if low is None else low + (1 if schema.get("exclusiveMinimum") else 0)
        if schema.get("maximum") is not None:
            value = min(value, schema["maximum"])
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    if kind == "string":
        if schema.get("format") in EXAMPLE_FORMATS:
            return EXAMPLE_FORMATS[schema["format"]]
        text = "text"
        return text.ljust(schema.get("minLength", 0), "x")[: schema.get("maxLength", 100)]
    return None


def _add_examples(document: dict[str, Any]) -> None:
    """An example of every operation's request body and JSON answers, unless it has one."""
    schemas = document.get("components", {}).get("schemas", {})
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body and "example" not in body and "examples" not in body:
                body["example"] = example_of(body["schema"], schemas, request=True)
            for status, response in operation.get("responses", {}).items():
                if not (isinstance(response, dict) and str(status).startswith("2")):
                    continue
                answer = response.get("content", {}).get("application/json")
                if answer and "example" not in answer and "examples" not in answer:
                    answer["example"] = example_of(answer["schema"], schemas, request=False)


class Document(APISpec):
    """The document as served: answers' schemas opened to additions (see the module docstring)."""

    def to_dict(self) -> dict[str, Any]:
        document = copy.deepcopy(super().to_dict())
        schemas = document.get("components", {}).get("schemas", {})
        used = set(_refs(document.get("paths", {}))) | {
            name for schema in schemas.values() for name in _refs(schema)
        }
        for name in UNUSED_IF_UNREFERENCED - used:
            schemas.pop(name, None)
        closed = request_schemas(document)
        for name, schema in schemas.items():
            if name not in closed:
                _open(schema)
        for item in document.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict):
                    for response in operation.get("responses", {}).values():
                        _open(response.get("content", {}) if isinstance(response, dict) else {})
        _add_examples(document)
        return document
