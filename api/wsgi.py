"""The WSGI entry point for gunicorn (`api.wsgi:app`) and the `flask` CLI
(`flask --app api.wsgi COMMAND`).

A bad configuration stops the process with the list of what is wrong, not a stack trace. Logging
(lines on stdout, `LOG_FORMAT`) is set up here, by the entry point, not by `create_app`.
"""

from __future__ import annotations

import sys

from api import create_app
from api.config import ConfigError
from api.observability import configure_logging

try:
    app = create_app()
except ConfigError as exc:
    sys.exit(exc.report())
configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
