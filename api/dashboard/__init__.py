"""The merchant and analyst dashboard: server-rendered pages under `/dashboard`.

The pages are Jinja templates with small vanilla JS modules that call the app's own JSON API
through `/dashboard/api/...` (`api.dashboard.proxy`): the browser holds no API key, only a session
cookie. Signing in stores the merchant's key in the session, encrypted (`api.dashboard.session`);
every state-changing request carries the session's CSRF token. docs/dashboard.md tells the rest.
"""

from __future__ import annotations

from flask import Flask

from api.dashboard import proxy, session
from api.dashboard import till as _till  # noqa: F401  (its pages join the blueprint)
from api.dashboard.views import blp


def init_app(app: Flask) -> None:
    """Register the pages, the session cookie's settings and the same-origin API proxy."""
    session.init_app(app)
    app.register_blueprint(blp)
    app.wsgi_app = proxy.ApiProxy(app, app.wsgi_app)  # type: ignore[method-assign]
