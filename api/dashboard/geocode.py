"""The map search's production geocoder: a Nominatim-compatible `search` endpoint
(`GEOCODER_URL`), asked by the server on the dashboard's behalf (`GET /dashboard/geocode`).

Why the server and not the browser: a provider's key (in the URL's query) stays on the server;
the dashboard's CSP keeps `connect-src 'self'`; the provider sees the service's address and the
query, not each merchant's browser (its IP, its cookies, its Referer); and Nominatim's usage
policy asks for an identifying User-Agent, which a browser's fetch cannot set. Answers are small:
at most `LIMIT` places, each a label and a point; anything malformed is dropped, never shown.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import urllib3

LIMIT = 5
MAX_QUERY = 200
MAX_BYTES = 256 * 1024
TIMEOUT = urllib3.Timeout(connect=2.0, read=4.0)
USER_AGENT = "checkin-offers-dashboard/1 (map search)"

_pool = urllib3.PoolManager(retries=False, timeout=TIMEOUT, maxsize=4)


class GeocoderError(Exception):
    """The geocoder could not answer (unreachable, slow, an error status, not JSON)."""


def search(
    url: str, query: str, *, near: tuple[float, float] | None = None, language: str | None = None
) -> list[dict[str, Any]]:
    """Places for `query`: `[{"label", "lat", "lon"}]`, best first. `near` (lat, lon) asks the
    geocoder to prefer that area (a viewbox of about 20 km), never to keep to it."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    params.update({"q": query[:MAX_QUERY], "format": "jsonv2", "limit": str(LIMIT)})
    if near is not None:
        lat, lon = near
        params["viewbox"] = f"{lon - 0.2:.4f},{lat + 0.1:.4f},{lon + 0.2:.4f},{lat - 0.1:.4f}"
    target = urlunsplit(parts._replace(query=urlencode(params)))
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if language:
        headers["Accept-Language"] = language[:100]
    try:
        response = _pool.request(
            "GET", target, headers=headers, redirect=False, preload_content=False
        )
        try:
            body = response.read(MAX_BYTES + 1)
        finally:
            response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as failure:
        raise GeocoderError(type(failure).__name__) from failure
    if response.status != 200 or len(body) > MAX_BYTES:
        raise GeocoderError(f"answered {response.status}")
    try:
        found = json.loads(body)
    except ValueError as failure:
        raise GeocoderError("not JSON") from failure
    return [place for place in map(_place, found if isinstance(found, list) else []) if place][
        :LIMIT
    ]


def _place(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict) or not isinstance(item.get("display_name"), str):
        return None
    try:
        lat, lon = float(item["lat"]), float(item["lon"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return {"label": item["display_name"][:300], "lat": lat, "lon": lon}
