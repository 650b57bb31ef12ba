"""The WSGI entry point for gunicorn (`api.wsgi:app`) and the `flask` CLI."""

from __future__ import annotations

import sys

from api import create_app
from api.cli import register
from api.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    sys.exit(f"checkin-offers: configuration error: {exc}")
register(app)
