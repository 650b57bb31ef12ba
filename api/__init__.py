"""The HTTP face of checkin-offers: a Flask app built by `create_app`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api import config as config_module
from api import db, errors, jsonbody
from api.auth import SECURITY_SCHEMES

API_DESCRIPTION = """\
Location-based check-in offers: an offer unlocks only on a check-in the server has verified,
issues a unique single-use code, and every step is measured.

Authentication is `Authorization: Bearer <secret>`: merchant API keys (roles owner, staff,
analyst) or mobile user tokens. A till device's key (`/v1/devices`) is a staff key bound to one
venue: it redeems and checks codes and reads the presence code and the till's day there, and any
other call is 403 `device_not_allowed`. Every error is `application/problem+json` (RFC 9457) with a
stable machine-readable `code`; validation errors (422) add `errors` by field.

Request bodies are JSON (`Content-Type: application/json`); another media type is 415
`unsupported_media_type`. A body that is not JSON (`NaN` and `Infinity` included) is 400
`bad_request`; nesting deeper than 32 arrays and objects is 400 `json_too_deep`. Numbers are JSON
numbers and booleans `true` or `false` (`"60.1"` or `1` is 422); integer literals have at most
100 digits. Strings never hold lone surrogates. Text fields (marked `x-text`) refuse control
characters and invisible formatting characters (bidirectional controls U+202A-U+202E,
U+2066-U+2069, U+200E, U+200F, zero-width space, ...; not U+200C and U+200D); `multi-line` ones
also take tab, line feed and carriage return.
"""


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. Settings come from the environment; tests pass a mapping of overrides."""
    settings = config_module.load(config)
    app = Flask(__name__)
    app.config.update(settings)
    app.config.update(
        API_TITLE="checkin-offers",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": API_DESCRIPTION,
                "license": {"name": "MIT", "url": "https://opensource.org/license/mit"},
                "contact": {"name": "checkin-offers maintainers"},
            },
            # Generated clients take their base URL from the caller; this one is `make run`'s.
            "servers": [
                {
                    "url": "http://127.0.0.1:8000",
                    "description": "A local server (`make run`); a deployment serves the same "
                    "document at its own /openapi.json",
                }
            ],
            "components": {"securitySchemes": SECURITY_SCHEMES},
        },
        JSON_SORT_KEYS=False,
    )
    app.json = jsonbody.JSONProvider(app)  # bounded reading for request.get_json, keys in order

    db.init_app(app)
    from api import ratelimit

    # Every operation but the probes may answer 429: the plugin lists it in the document.
    api = errors.ProblemApi(app, spec_kwargs={"extra_plugins": [ratelimit.TooManyRequestsPlugin()]})
    errors.init_app(app)

    from api import (
        accounts,
        analytics,
        audit,
        checkins,
        devices,
        feedback,
        health,
        offers,
        presence,
        privacy,
        redemptions,
        venues,
        wallet_passes,
        webhooks,
    )

    blueprints = (
        health.blp,
        accounts.blp,
        venues.blp,
        offers.blp,
        checkins.blp,
        presence.blp,
        redemptions.blp,
        devices.blp,
        analytics.blp,
        feedback.blp,
        audit.blp,
        privacy.blp,
        webhooks.blp,
        wallet_passes.blp,
    )
    for blueprint in blueprints:
        api.register_blueprint(blueprint)

    from api import cli, docs, metrics, observability, security

    docs.init_app(app)
    metrics.init_app(app)
    observability.init_app(app)
    ratelimit.init_app(app)  # after observability: a 429 is logged with its request id
    security.init_app(app)
    cli.init_app(app)

    from api import dashboard  # the merchant and analyst web pages under /dashboard

    dashboard.init_app(app)
    return app
