"""The operators' commands (`flask --app api.wsgi ...`), through Flask's CLI runner on the test
database."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import Result
from flask import Flask

from mobile_stub.client import ApiError, Client
from offers import codes
from tests.factories import offer_body, venue_body

LON, LAT = 24.9384, 60.1699  # tests.factories.HELSINKI
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=list(args))


def ok(app: Flask, *args: str) -> str:
    result = run(app, *args)
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    return result.stdout


def refused(app: Flask, *args: str) -> str:
    result = run(app, *args)
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.stderr


# ---- merchants and keys --------------------------------------------------------------------------


def test_create_merchant_prints_its_owner_key_once(app: Flask, api: Client) -> None:
    out = ok(app, "create-merchant", "Cafe Aalto", "hello@aalto.example")
    merchant_id = re.search(rf"merchant  ({UUID})  Cafe Aalto <hello@aalto.example>", out)
    key = re.search(r"api_key   (cok_\S+)", out)
    assert merchant_id and key
    me = api.with_token(key[1]).me()
    assert me["id"] == merchant_id[1]
    assert me["name"] == "Cafe Aalto"


def test_create_merchant_validates_like_the_api(app: Flask) -> None:
    err = refused(app, "create-merchant", "Cafe", "not-an-email")
    assert "Error: email: Not a valid email address." in err


def test_create_key_for_a_merchant(app: Flask, api: Client, owner: Client) -> None:
    merchant_id = owner.me()["id"]
    out = ok(app, "create-key", merchant_id, "staff", "--label", "till 2")
    key_id = re.search(rf"key       ({UUID})  staff  till 2", out)
    token = re.search(r"api_key   (cok_\S+)", out)
    assert key_id and token
    listed = {k["id"]: k for k in owner.list_keys()}
    assert listed[key_id[1]]["role"] == "staff"
    assert listed[key_id[1]]["label"] == "till 2"
    with pytest.raises(ApiError) as error:  # staff may not create venues
        api.with_token(token[1]).create_venue(venue_body())
    assert error.value.status == 403


def test_create_key_refuses_unknown_merchants_and_roles(app: Flask) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert f"no merchant {missing}" in refused(app, "create-key", missing, "staff")
    assert "'admin' is not one of 'owner', 'staff', 'analyst'" in refused(
        app, "create-key", missing, "admin"
    )
    assert "is not a valid UUID" in refused(app, "create-key", "42", "staff")


def test_revoke_key(app: Flask, api: Client, owner: Client) -> None:
    staff = owner.create_key("staff", "till")
    till = api.with_token(staff["api_key"])
    till.presence_code(owner.create_venue(venue_body())["id"])  # works before
    out = ok(app, "revoke-key", staff["id"])
    assert out.startswith(f"key {staff['id']} revoked at ")
    with pytest.raises(ApiError) as error:
        till.presence_code(owner.list_venues()[0]["id"])
    assert error.value.status == 401
    assert "was already revoked at" in ok(app, "revoke-key", staff["id"])
    missing = "00000000-0000-0000-0000-000000000000"
    assert f"no key {missing}" in refused(app, "revoke-key", missing)


def test_revoke_key_refuses_the_last_owner_key(app: Flask, owner: Client) -> None:
    [mine] = owner.list_keys()
    message = refused(app, "revoke-key", mine["id"])
    assert "last owner key" in message
    assert f"create-key {owner.me()['id']} owner" in message
    assert owner.me()  # the key still works
    second = owner.create_key("owner")
    assert ok(app, "revoke-key", mine["id"]).startswith(f"key {mine['id']} revoked at ")
    assert "last owner key" in refused(app, "revoke-key", second["id"])


# ---- offers -------------------------------------------------------------------------------------


def test_end_offer(app: Flask, owner: Client) -> None:
    venue = owner.create_venue(venue_body())
    offer = owner.create_offer(offer_body([venue["id"]]))
    assert "cannot end an offer that is draft" in refused(app, "end-offer", offer["id"])
    owner.activate_offer(offer["id"])
    assert (
        ok(app, "end-offer", offer["id"]).strip() == f"offer {offer['id']} (Free coffee) is ended"
    )
    assert owner.get_offer(offer["id"])["status"] == "ended"
    assert "cannot end an offer that is ended" in refused(app, "end-offer", offer["id"])
    missing = "00000000-0000-0000-0000-000000000000"
    assert f"no offer {missing}" in refused(app, "end-offer", missing)


# ---- a code's history ---------------------------------------------------------------------------


@pytest.fixture
def redeemed_code(api: Client, owner: Client, other_owner: Client) -> dict[str, Any]:
    """A code unlocked at one venue, tried at another, by another merchant, then redeemed and
    tried again."""
    venue = owner.create_venue(venue_body(name="Aalto"))
    elsewhere = owner.create_venue(venue_body(name="Elsewhere"))
    offer = owner.create_offer(offer_body([venue["id"]]))
    owner.activate_offer(offer["id"])
    handle = f"maija_{secrets.token_hex(3)}"
    created = api.create_user(handle, "correct horse")
    user = api.with_token(created["token"])
    checkin = user.check_in(venue["id"], LAT, LON, 10, datetime.now(UTC).isoformat())
    code = checkin["unlocks"][0]["code"]
    staff = owner.create_key("staff", "till 1")
    till = api.with_token(staff["api_key"])
    for attempt in (
        lambda: till.redeem(code, elsewhere["id"]),
        lambda: other_owner.redeem(code),
        lambda: till.redeem(code, venue["id"]),
        lambda: till.redeem(code.lower()),
    ):
        with contextlib.suppress(ApiError):
            attempt()
    return {
        "code": code,
        "handle": handle,
        "user_id": created["user"]["id"],
        "user_token": created["token"],
        "venue": venue,
        "elsewhere": elsewhere,
        "offer": offer,
        "checkin": checkin,
        "staff": staff,
        "owner_key": owner.token,
    }


def test_code_history(app: Flask, redeemed_code: dict[str, Any]) -> None:
    r = redeemed_code
    typed = r["code"].lower().replace("-", " ")  # as an operator may type it
    out = ok(app, "code-history", typed)
    assert out.startswith(f"code        {r['code']}  (redeemed)\n")
    assert f"user        {r['user_id']}  {r['handle']}" in out
    assert f"offer       {r['offer']['id']}  Free coffee  (every_checkin, active)" in out
    assert f"venue       {r['venue']['id']}  Aalto" in out
    assert f"check-in    {r['checkin']['id']}  verified at " in out
    assert re.search(
        rf"redemption  {UUID}  at \S+  key {r['staff']['id']}  venue {r['venue']['id']}", out
    )
    assert "attempts    4" in out
    # In order of time; here all share one transaction's now(), so compare them as a set.
    outcomes = re.findall(r"^  \S+  (\w+)", out, flags=re.MULTILINE)
    assert sorted(outcomes) == ["already_redeemed", "other_merchant", "redeemed", "wrong_venue"]
    assert f"key {r['staff']['id']} (staff)" in out
    assert f"venue {r['elsewhere']['id']} (Elsewhere)" in out
    for secret in (r["user_token"], r["staff"]["api_key"], r["owner_key"], "correct horse"):
        assert secret not in out


def test_code_history_as_json(app: Flask, redeemed_code: dict[str, Any]) -> None:
    history = json.loads(ok(app, "code-history", redeemed_code["code"], "--json"))
    assert history["code"] == redeemed_code["code"]
    assert history["unlock"]["status"] == "redeemed"
    assert history["user"] == {"id": redeemed_code["user_id"], "handle": redeemed_code["handle"]}
    assert history["offer"]["kind"] == "every_checkin"
    assert history["redemption"]["api_key_id"] == redeemed_code["staff"]["id"]
    attempts = {a["outcome"]: a for a in history["attempts"]}
    assert sorted(attempts) == ["already_redeemed", "other_merchant", "redeemed", "wrong_venue"]
    assert attempts["wrong_venue"]["key_label"] == "till 1"
    assert attempts["wrong_venue"]["venue_id"] == redeemed_code["elsewhere"]["id"]
    assert attempts["other_merchant"]["merchant_id"] != history["merchant"]["id"]


def test_code_history_of_unknown_or_mistyped_codes(app: Flask) -> None:
    assert "not a valid code" in refused(app, "code-history", "7K3Q-XM9T-2RX")
    # a well-formed code that was never issued
    assert "no such code" in refused(app, "code-history", codes.format_code(codes.new_code()))


def test_migrate_is_a_no_op_at_head(app: Flask) -> None:
    assert ok(app, "migrate").strip().endswith("database schema is up to date")


# ---- privacy ---------------------------------------------------------------------------------


def test_erase_user(app: Flask, api: Client, owner: Client) -> None:
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    user = api.with_token(api.create_user("leaving_soon", "pass-word-1")["token"])
    user.check_in(venue["id"], LAT, LON, 10, datetime.now(UTC).isoformat(), device_id="d-9")
    user_id = user.export_me()["account"]["id"]
    out = ok(app, "erase-user", user_id)
    assert out.startswith(f"user {user_id} erased: ") and '"checkins": 1' in out
    assert "leaving_soon" not in out and "d-9" not in out
    with pytest.raises(ApiError) as error:
        user.export_me()
    assert error.value.status == 401
    assert ok(app, "erase-user", user_id) == f"user {user_id} was already erased\n"
    assert "no user" in refused(app, "erase-user", "00000000-0000-0000-0000-000000000000")


def test_retention_runs_once_and_says_what_it_did(committed_app: Flask) -> None:
    out = json.loads(ok(committed_app, "retention"))
    assert out["ran"] is True and out["coarsened"] == 0
