"""One place renders every error as `application/problem+json` (RFC 9457) with a stable `code`.

Domain errors carry their status and code; HTTP errors from routing, webargs validation and
Werkzeug (404, 405, 413, 400 for malformed JSON, 500) are mapped here too, so no HTML error page
can leak out of the JSON API.
"""

from __future__ import annotations

import http
import logging
from typing import Any

import marshmallow as ma
from flask import Flask, Response, json
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from core.errors import DomainError

PROBLEM_CONTENT_TYPE = "application/problem+json"
log = logging.getLogger(__name__)

# Stable codes for HTTP errors that do not come from the domain.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ProblemSchema(ma.Schema):
    """An RFC 9457 problem."""

    type = ma.fields.String(required=True, metadata={"description": "A URI naming the problem"})
    title = ma.fields.String(required=True, metadata={"description": "Short summary"})
    status = ma.fields.Integer(required=True, metadata={"description": "HTTP status code"})
    detail = ma.fields.String(required=True, metadata={"description": "What went wrong here"})
    code = ma.fields.String(
        required=True,
        metadata={
            "description": "Stable machine-readable snake_case code. Each operation's error "
            "responses list the codes it may answer (`x-codes`); more may be added."
        },
    )
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={
            "description": "Validation errors (422): messages by field, nested fields dotted "
            "(`rule.visits`, `windows.0.start`)"
        },
    )


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:checkin-offers:problem:{code}",
        "title": title or http.HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_CONTENT_TYPE)
    response.headers.update(headers or {})
    return response


class ProblemApi(Api):
    """flask-smorest's Api with problem+json errors, both rendered and documented."""

    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, **kwargs: Any) -> None:
        """The spec with api/openapi.py's converter, operations plugin and served form."""
        from api import openapi
        from api.ratelimit import EXEMPT_PATHS

        kwargs.setdefault("marshmallow_plugin", openapi.Plugin())
        kwargs["extra_plugins"] = [
            *kwargs.get("extra_plugins", ()),
            openapi.OperationsPlugin(EXEMPT_PATHS),
        ]
        super()._init_spec(**kwargs)
        self.spec.__class__ = openapi.Document  # the same spec, served opened (to_dict)

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Error (problem+json)", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, PROBLEM_CONTENT_TYPE)
        self.spec.components.response("DEFAULT_ERROR", default, lazy=True)

    def handle_http_exception(self, error: HTTPException) -> Response:
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        errors = None
        detail = error.description or http.HTTPStatus(status).phrase
        if "messages" in data:  # webargs: {location: {field: [messages]}}
            errors = _flatten(data["messages"])
            if status == 400:
                cause = getattr(error, "exc", None)  # the JSONDecodeError, with its position
                detail = "the request body is not valid JSON" + (f": {cause}" if cause else "")
                errors = None
            else:
                detail = "the request is not valid: " + "; ".join(
                    f"{field}: {' '.join(map(str, msgs))}" for field, msgs in errors.items()
                )
        if status >= 500:
            original = getattr(error, "original_exception", None)
            if original is not None:
                return handle_unexpected(original)
            detail = "the server failed to handle this request"
        return problem(
            status,
            HTTP_CODES.get(status, f"http_{status}"),
            detail,
            errors=errors,
            headers=dict(data.get("headers") or {}),
        )


def handle_domain_error(error: DomainError) -> Response:
    return problem(
        error.status,
        error.code,
        error.detail,
        title=error.title,
        errors=error.errors,
        headers=getattr(error, "headers", None),
    )


def database_unavailable(error: BaseException) -> bool:
    """The database is down or the connection was lost (not a bug in a query)."""
    return isinstance(error, OperationalError | InterfaceError) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    )


def handle_unexpected(error: BaseException) -> Response:
    if database_unavailable(error):
        log.warning("database unavailable: %s", type(error).__name__)
        return problem(
            503,
            "service_unavailable",
            "the database is unavailable; retry shortly",
            headers={"Retry-After": "1"},
        )
    log.exception("unhandled error", exc_info=error)
    return problem(500, "internal_error", "the server failed to handle this request")


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(DBAPIError, handle_unexpected)


def _flatten(messages: dict[str, Any]) -> dict[str, list[str]]:
    """webargs nests messages by location ({"json": {"f": [...]}}); fields are what people fix."""
    flat: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            flat.setdefault(prefix or "_schema", []).extend(value)
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(f"{prefix}.{i}", inner)
        else:
            flat.setdefault(prefix or "_schema", []).append(str(value))

    for location, value in messages.items():
        if isinstance(value, dict):
            walk("", value)
        else:
            walk(location, value)
    return flat
