"""The sign-in throttle (`core/throttle.py`) and the sign-in budget per address
(`RATE_LIMIT_SIGN_IN_PER_IP`): failed sign-ins are limited per handle and per address without
locking the handle's owner out from where they signed in before (issue 23: sign-in had no
throttle per account, each attempt costing ~0.2 s of Argon2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app
from core import throttle
from tests.factories import bind_to_connection

HANDLE = "throttled_maija"
PASSWORD = "correct horse"


@pytest.fixture
def limited_app(database_url: str, engine: Engine) -> Iterator[Any]:
    connection = engine.connect()
    outer = connection.begin()

    def make(**overrides: Any) -> Flask:
        settings = {"DATABASE_URL": database_url, "TESTING": True, "RATE_LIMIT_ENABLED": True}
        app = create_app({**settings, **overrides})
        bind_to_connection(app, connection)
        return app

    yield make
    outer.rollback()
    connection.close()


def sign_in(client: FlaskClient, ip: str, password: str, handle: str = HANDLE) -> Any:
    return client.post(
        "/v1/users/token",
        json={"handle": handle, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


def sign_up(client: FlaskClient, ip: str, handle: str = HANDLE) -> Any:
    return client.post(
        "/v1/users",
        json={"handle": handle, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": ip},
    )


def test_failures_lock_strangers_out_of_a_handle_but_not_its_owner(client: FlaskClient) -> None:
    assert sign_up(client, "198.51.100.7").status_code == 201  # the owner, at home
    # Guessers from two addresses: 5 wrong each, then each address is refused at once.
    for ip in ("203.0.113.1", "203.0.113.2"):
        for _ in range(throttle.MAX_FAILURES_PER_SOURCE):
            assert sign_in(client, ip, "guess").status_code == 401
        refused = sign_in(client, ip, PASSWORD)  # even the right password: no answer learnt
        assert refused.status_code == 429
        assert refused.get_json()["code"] == "too_many_attempts"
    # 10 failures of the handle: an address it does not know is refused...
    stranger = sign_in(client, "192.0.2.50", PASSWORD)
    assert stranger.status_code == 429
    assert stranger.get_json()["code"] == "too_many_attempts"
    assert 890 <= int(stranger.headers["Retry-After"]) <= 901
    # ...while the owner, from where they signed up, still gets in.
    assert sign_in(client, "198.51.100.7", PASSWORD).status_code == 200


def test_an_owner_who_signed_in_before_is_never_locked_out_by_strangers(
    client: FlaskClient,
) -> None:
    assert sign_up(client, "198.51.100.7").status_code == 201
    assert sign_in(client, "198.51.100.9", PASSWORD).status_code == 200  # known from now
    for i in range(throttle.MAX_FAILURES_PER_HANDLE):
        assert sign_in(client, f"203.0.113.{i // 5}", "guess").status_code == 401
    assert sign_in(client, "192.0.2.50", PASSWORD).status_code == 429
    assert sign_in(client, "198.51.100.9", PASSWORD).status_code == 200
    assert sign_in(client, "198.51.100.7", PASSWORD).status_code == 200
    # Other handles are not affected.
    assert sign_up(client, "192.0.2.50", "someone_else").status_code == 201
    assert sign_in(client, "192.0.2.50", PASSWORD, "someone_else").status_code == 200


def test_sign_ups_for_a_taken_handle_count_as_failures(client: FlaskClient) -> None:
    assert sign_up(client, "198.51.100.7").status_code == 201
    for i in range(throttle.MAX_FAILURES_PER_HANDLE):
        answer = sign_up(client, f"203.0.113.{i}")
        assert (answer.status_code, answer.get_json()["code"]) == (409, "handle_taken")
    refused = sign_up(client, "203.0.113.99")
    assert (refused.status_code, refused.get_json()["code"]) == (429, "too_many_attempts")


def test_sign_ins_and_sign_ups_share_a_budget_per_address(limited_app: Any) -> None:
    client = limited_app(RATE_LIMIT_SIGN_IN_PER_IP="3/minute").test_client()
    assert sign_up(client, "198.51.100.7").status_code == 201
    assert sign_in(client, "198.51.100.7", "guess").status_code == 401
    assert sign_in(client, "198.51.100.7", PASSWORD).status_code == 200
    over = sign_in(client, "198.51.100.7", PASSWORD)
    assert (over.status_code, over.get_json()["code"]) == (429, "rate_limited")
    assert "sign-ins from this client address" in over.get_json()["detail"]
    assert sign_up(client, "198.51.100.7", "another_one").status_code == 429
    pair = client.post(
        "/v1/devices/pair", json={"code": "7K3Q-XM9T"}, environ_base={"REMOTE_ADDR": "198.51.100.7"}
    )
    assert pair.status_code == 429
    # Other routes, and other addresses, are not affected.
    nearby = client.get(
        "/v1/venues/nearby?lat=60.17&lon=24.94", environ_base={"REMOTE_ADDR": "198.51.100.7"}
    )
    assert nearby.status_code == 200
    assert sign_in(client, "192.0.2.50", PASSWORD).status_code == 200
