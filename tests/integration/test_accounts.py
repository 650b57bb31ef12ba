"""Accounts: merchant sign-up, keys with roles, users and tokens."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.models import ApiKey, User
from mobile_stub.client import ApiError, Client


def test_merchant_signup_returns_an_owner_key_that_works(api: Client) -> None:
    created = api.create_merchant("Cafe Aalto", "hello@aalto.example")
    assert created["merchant"]["name"] == "Cafe Aalto"
    owner = api.with_token(created["api_key"])
    assert owner.me()["id"] == created["merchant"]["id"]
    assert [key["role"] for key in owner.list_keys()] == ["owner"]


def test_keys_are_stored_only_as_hashes(api: Client, app) -> None:  # type: ignore[no-untyped-def]
    token = api.create_merchant("Cafe", "c@example.com")["api_key"]
    from api import db

    with app.app_context():
        stored = db.session().scalars(select(ApiKey)).all()
        for key in stored:
            assert token.split("_", 2)[2].encode() not in key.secret_hash
            assert len(key.secret_hash) == 32
        assert all(token not in repr(vars(key)) for key in stored)


def test_owner_creates_keys_with_roles_and_each_role_is_limited(owner: Client) -> None:
    staff = owner.with_token(owner.create_key("staff", "till 1")["api_key"])
    analyst = owner.with_token(owner.create_key("analyst")["api_key"])
    for client in (staff, analyst):
        with pytest.raises(ApiError) as err:
            client.list_venues()
        assert (err.value.status, err.value.code) == (403, "forbidden")
        with pytest.raises(ApiError) as err:
            client.create_key("owner")
        assert err.value.status == 403
    assert staff.me()["id"] == owner.me()["id"]


def test_revoked_key_stops_working_at_once(owner: Client) -> None:
    created = owner.create_key("staff")
    staff = owner.with_token(created["api_key"])
    assert staff.me()
    owner.revoke_key(created["id"])
    with pytest.raises(ApiError) as err:
        staff.me()
    assert err.value.status == 401


def test_the_last_owner_key_cannot_be_revoked(owner: Client) -> None:
    [mine] = owner.list_keys()
    with pytest.raises(ApiError) as err:
        owner.revoke_key(mine["id"])
    assert (err.value.status, err.value.code) == (409, "last_owner_key")
    assert "create another owner key first" in err.value.detail.lower()
    assert owner.me()  # still works
    # Staff and analyst keys do not count as owners.
    for role in ("staff", "analyst"):
        owner.create_key(role)
    with pytest.raises(ApiError) as err:
        owner.revoke_key(mine["id"])
    assert err.value.code == "last_owner_key"
    # With a second owner key, either may go, but not both.
    second = owner.create_key("owner", "the other owner")
    other = owner.with_token(second["api_key"])
    other.revoke_key(mine["id"])
    with pytest.raises(ApiError) as err:
        other.revoke_key(second["id"])
    assert err.value.code == "last_owner_key"
    # Rotating the last owner key keeps the merchant in: the new secret is the answer.
    rotated = other.rotate_key(second["id"])
    assert owner.with_token(rotated["api_key"]).me()
    live = [k for k in other.with_token(rotated["api_key"]).list_keys() if k["revoked_at"] is None]
    assert [k["role"] for k in live if k["role"] == "owner"] == ["owner"]


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer nonsense", "Basic abc", "Bearer cok_000000000000_wrongsecret"],
)
def test_missing_or_bad_credentials_are_401(api: Client, header: str) -> None:
    with pytest.raises(ApiError) as err:
        api.call("GET", "/v1/venues", headers={"Authorization": header} if header else None)
    assert (err.value.status, err.value.code) == (401, "unauthorized")
    assert err.value.response.headers["Content-Type"] == "application/problem+json"


def test_a_tampered_key_is_refused(owner: Client) -> None:
    assert owner.token
    tampered = owner.token[:-1] + ("A" if owner.token[-1] != "A" else "B")
    with pytest.raises(ApiError) as err:
        owner.with_token(tampered).me()
    assert err.value.status == 401


def test_user_signup_login_and_taken_handle(api: Client, app) -> None:  # type: ignore[no-untyped-def]
    created = api.create_user("Ada", "s3cret-pass")
    assert created["user"]["handle"] == "Ada"
    assert api.login("ada", "s3cret-pass")  # handles are case-insensitive
    with pytest.raises(ApiError) as err:
        api.create_user("ADA", "another-pass")
    assert (err.value.status, err.value.code) == (409, "handle_taken")
    with pytest.raises(ApiError) as err:
        api.login("Ada", "wrong-pass")
    assert (err.value.status, err.value.code) == (401, "unauthorized")
    with pytest.raises(ApiError) as err:
        api.login("nobody", "wrong-pass")
    assert err.value.status == 401
    from api import db

    with app.app_context():
        user = db.session().scalars(select(User)).one()
        assert user.password_hash.startswith("$argon2id$")
        assert "s3cret-pass" not in user.password_hash


def test_a_user_token_is_not_a_merchant_key(api: Client, mobile: Client) -> None:
    with pytest.raises(ApiError) as err:
        mobile.list_venues()
    assert err.value.status == 401


@pytest.mark.parametrize(
    "body",
    [
        {"handle": "ab", "password": "long enough"},
        {"handle": "has space", "password": "long enough"},
        {"handle": "fine", "password": "short"},
        {"handle": "fine"},
        {"handle": 12345, "password": "long enough"},
        {"handle": "fine", "password": "long enough", "admin": True},
    ],
)
def test_bad_user_bodies_are_422_and_create_nothing(api: Client, body: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ApiError) as err:
        api.call("POST", "/v1/users", body)
    assert (err.value.status, err.value.code) == (422, "validation_error")
    assert err.value.errors
    with pytest.raises(ApiError):
        api.login("fine", "long enough")


def test_user_tokens_expire(app, api: Client) -> None:  # type: ignore[no-untyped-def]
    app.config["USER_TOKEN_TTL_DAYS"] = 0
    user = api.with_token(api.create_user("brief", "pass-word-1")["token"])
    with pytest.raises(ApiError) as err:
        user.wallet()
    assert err.value.status == 401
    app.config["USER_TOKEN_TTL_DAYS"] = 1
    assert api.with_token(api.login("brief", "pass-word-1")).wallet() == []
