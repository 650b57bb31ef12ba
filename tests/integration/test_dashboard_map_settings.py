"""The map's production settings (docs/configuration.md): MAP_TILE_URL puts exactly its origin in
the dashboard's CSP and its attribution on the page as text; GEOCODER_URL is asked by the server,
for owners, with the provider's key kept out of the browser; and the settings are checked at
start. The geocoder here is a real HTTP server on loopback that answers like Nominatim."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.config import ConfigError, load
from mobile_stub.client import Client
from tests.integration.test_dashboard_security import page_csrf, sign_in

REQUIRED = {"DATABASE_URL": "postgresql://u@h/db", "NFC_MASTER_KEY": "ab" * 32}


class FakeNominatim(BaseHTTPRequestHandler):
    answer: Any = []
    status = 200
    seen: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        FakeNominatim.seen.append(
            {"path": parts.path, "query": parse_qs(parts.query), "headers": dict(self.headers)}
        )
        body = json.dumps(FakeNominatim.answer).encode()
        self.send_response(FakeNominatim.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def geocoder() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeNominatim)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeNominatim.seen, FakeNominatim.status = [], 200
    FakeNominatim.answer = [
        {"display_name": "Aleksanterinkatu 52, Helsinki", "lat": "60.1688", "lon": "24.9422"},
        {"display_name": "<b>not a place</b>", "lat": "north", "lon": "24"},  # dropped
        {"lat": "1", "lon": "2"},  # no name: dropped
    ]
    yield f"http://127.0.0.1:{server.server_address[1]}/search?key=s3cret"
    server.shutdown()
    server.server_close()


def test_the_offline_basemap_is_the_default_and_the_csp_names_no_other_origin(
    client: FlaskClient, owner: Client
) -> None:
    assert owner.token
    sign_in(client, owner.token)
    page = client.get("/dashboard/venues")
    html = page.get_data(as_text=True)
    assert 'name="map-tiles"' not in html and 'name="map-geocoder"' not in html
    csp = page.headers["Content-Security-Policy"]
    assert "img-src 'self' data: blob:;" in csp and "connect-src 'self';" in csp
    assert "http" not in csp


def test_a_tile_server_adds_exactly_its_origin_and_its_attribution_as_text(
    app: Flask, client: FlaskClient, owner: Client
) -> None:
    assert owner.token
    app.config["MAP_TILE_URL"] = "https://tiles.example.com:8443/osm/{z}/{x}/{y}.png"
    app.config["MAP_TILE_ATTRIBUTION"] = '© <script>alert(1)</script> "Tiles"'
    sign_in(client, owner.token)
    page = client.get("/dashboard/venues")
    csp = page.headers["Content-Security-Policy"]
    assert "img-src 'self' data: blob: https://tiles.example.com:8443;" in csp
    assert csp.count("tiles.example.com") == 1 and "connect-src 'self';" in csp
    html = page.get_data(as_text=True)
    assert (
        '<meta name="map-tiles" content="https://tiles.example.com:8443/osm/{z}/{x}/{y}.png">'
        in html
    )
    # The attribution reaches the page escaped; basemap.js sets it as text.
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &#34;Tiles&#34;" in html
    assert "<script>alert(1)" not in html


def test_the_geocoder_is_asked_by_the_server_for_owners_with_its_key_kept_there(
    app: Flask, client: FlaskClient, owner: Client, geocoder: str
) -> None:
    assert owner.token
    sign_in(client, owner.token)
    assert client.get("/dashboard/geocode?q=x").status_code == 403  # no CSRF header
    token = page_csrf(client, "/dashboard/venues")
    headers = {"X-CSRF-Token": token, "Accept-Language": "fi"}
    off = client.get("/dashboard/geocode?q=Aleksanterinkatu", headers=headers)
    assert off.status_code == 404  # no GEOCODER_URL: nothing is asked

    app.config["GEOCODER_URL"] = geocoder
    page = client.get("/dashboard/venues").get_data(as_text=True)
    assert '<meta name="map-geocoder" content="on">' in page
    assert "s3cret" not in page and "127.0.0.1" not in page  # the URL stays on the server
    answer = client.get(
        "/dashboard/geocode?q=Aleksanterinkatu 52&near=60.17,24.94", headers=headers
    )
    assert answer.status_code == 200
    assert answer.get_json() == {
        "places": [{"label": "Aleksanterinkatu 52, Helsinki", "lat": 60.1688, "lon": 24.9422}]
    }
    (asked,) = FakeNominatim.seen
    assert asked["path"] == "/search"
    assert asked["query"]["q"] == ["Aleksanterinkatu 52"]
    assert asked["query"]["key"] == ["s3cret"] and asked["query"]["format"] == ["jsonv2"]
    assert asked["query"]["viewbox"] == ["24.7400,60.2700,25.1400,60.0700"]
    assert asked["headers"]["User-Agent"].startswith("checkin-offers")
    assert asked["headers"]["Accept-Language"] == "fi"
    assert "Cookie" not in asked["headers"]  # nothing of the merchant's browser goes along

    for bad in ("", "x" * 201, "line\nbreak"):
        refused = client.get("/dashboard/geocode", query_string={"q": bad}, headers=headers)
        assert refused.status_code == 422 and refused.get_json()["code"] == "validation_error"
    assert len(FakeNominatim.seen) == 1  # bad input asks nothing

    FakeNominatim.status = 500
    down = client.get("/dashboard/geocode?q=Esplanadi", headers=headers)
    assert down.status_code == 502 and down.get_json()["code"] == "geocoder_unavailable"


def test_staff_may_not_use_the_geocoder(
    app: Flask, client: FlaskClient, owner: Client, geocoder: str
) -> None:
    app.config["GEOCODER_URL"] = geocoder
    sign_in(client, owner.create_key("staff", "till")["api_key"])
    token = page_csrf(client, "/dashboard/till")
    answer = client.get("/dashboard/geocode?q=Esplanadi", headers={"X-CSRF-Token": token})
    assert answer.status_code == 403
    assert FakeNominatim.seen == []


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"MAP_TILE_URL": "https://t.example.com/{z}/{x}/{y}.png"}, "MAP_TILE_ATTRIBUTION"),
        (
            {"MAP_TILE_URL": "https://{s}.t.example.com/{z}/{x}/{y}.png"},
            "MAP_TILE_URL",
        ),
        ({"MAP_TILE_URL": "https://t.example.com/tiles.png"}, "MAP_TILE_URL"),
        ({"MAP_TILE_URL": "javascript:alert(1)/{z}/{x}/{y}"}, "MAP_TILE_URL"),
        ({"GEOCODER_URL": "ftp://geo.example.com/search"}, "GEOCODER_URL"),
    ],
)
def test_bad_map_settings_stop_the_service_with_their_name(
    settings: dict[str, str], problem: str
) -> None:
    attribution = {} if problem == "MAP_TILE_ATTRIBUTION" else {"MAP_TILE_ATTRIBUTION": "© OSM"}
    with pytest.raises(ConfigError) as error:
        load(environ={**REQUIRED, "SECRET_KEY": "k" * 32, **attribution, **settings})
    assert [p.split()[0] for p in error.value.problems] == [problem]


def test_good_map_settings_load() -> None:
    config = load(
        environ={
            **REQUIRED,
            "SECRET_KEY": "k" * 32,
            "MAP_TILE_URL": "https://tiles.example.com/{z}/{x}/{y}{r}.png",
            "MAP_TILE_ATTRIBUTION": "© OpenStreetMap contributors",
            "GEOCODER_URL": "https://nominatim.example.com/search?key=abc",
        }
    )
    assert config["MAP_TILE_URL"].endswith("{y}{r}.png")
    assert config["GEOCODER_URL"].endswith("?key=abc")
