"""`GET /docs`: Swagger UI for the OpenAPI document, served from the installed swagger-ui-bundle
package, so it works with no network (no CDN)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>checkin-offers API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <main id="swagger-ui"></main>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
  </script>
</body>
</html>
"""

bp = Blueprint("docs", __name__)


@bp.get("/docs")
def page() -> Response:
    return Response(PAGE, mimetype="text/html")


@bp.get("/docs/static/<path:filename>")
def static(filename: str) -> Response:
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
