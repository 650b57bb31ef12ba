"""Proof of presence through the API: NFC tags and taps, proof levels, cards, member codes and
staff check-ins (docs/presence.md lists each threat with the test here that covers it)."""

from __future__ import annotations

import random
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from api import db
from mobile_stub.client import ApiError, Client
from mobile_stub.ntag import SoftTag, random_uid
from tests.factories import offer_body, venue_body

FAR_2KM = 0.018  # degrees of latitude, about 2 km north
NEAR_300M = 0.0027  # about 300 m north: outside a 50 m fence, inside the 500 m tap radius


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def new_user(api: Client) -> Client:
    return api.with_token(api.create_user(f"u{secrets.token_hex(5)}", "pass-word-1")["token"])


def rows(app: Flask, sql: str, **params: Any) -> list[Any]:
    with app.app_context():
        return list(db.session().execute(text(sql), params).all())


def fix(venue: dict[str, Any], north: float = 0.0, accuracy_m: float = 10.0) -> dict[str, Any]:
    lon, lat = venue["location"]["coordinates"]
    return {"lat": lat + north, "lon": lon, "accuracy_m": accuracy_m, "observed_at": now_iso()}


def check_in(user: Client, venue: dict[str, Any], **kwargs: Any) -> Any:
    where = fix(venue, kwargs.pop("north", 0.0), kwargs.pop("accuracy_m", 10.0))
    return user.check_in(
        venue["id"], where["lat"], where["lon"], where["accuracy_m"], where["observed_at"], **kwargs
    )


@pytest.fixture
def venue(owner: Client) -> dict[str, Any]:
    return owner.create_venue(venue_body(checkin_cooldown_minutes=0))


@pytest.fixture
def tag(owner: Client, venue: dict[str, Any]) -> SoftTag:
    uid = random_uid()
    return SoftTag.programmed(owner.register_nfc_tag(venue["id"], uid, "counter"), uid)


def tag_id_of(owner: Client, venue: dict[str, Any], tag: SoftTag) -> str:
    (found,) = [t["id"] for t in owner.list_nfc_tags(venue["id"]) if t["uid"] == tag.uid]
    return str(found)


def offer(owner: Client, venue: dict[str, Any], **fields: Any) -> dict[str, Any]:
    created = owner.create_offer(offer_body([venue["id"]], per_user_cap=100, **fields))
    return owner.activate_offer(created["id"])


# ---- registration --------------------------------------------------------------------------


def test_a_tag_is_registered_with_keys_shown_once(
    app: Flask, owner: Client, venue: dict[str, Any]
) -> None:
    uid = random_uid()
    created = owner.register_nfc_tag(venue["id"], uid.lower(), "by the till")
    assert created["uid"] == uid and created["venue_id"] == venue["id"]
    for key in ("sdm_meta_read_key", "sdm_file_read_key"):
        assert len(created[key]) == 32 and int(created[key], 16) >= 0
    assert created["sdm_meta_read_key"] != created["sdm_file_read_key"]
    url = created["url_template"]
    assert created["id"] not in url  # the UID inside picc_data says which tag it is
    # The meta read key is the service's, the file read (MAC) key the tag's own.
    second = owner.register_nfc_tag(venue["id"], random_uid())
    assert second["sdm_meta_read_key"] == created["sdm_meta_read_key"]
    assert second["sdm_file_read_key"] != created["sdm_file_read_key"]
    owner.delete_nfc_tag(second["id"])
    assert url[created["picc_data_offset"] :].startswith("0" * 32 + "&cmac=")
    assert url[created["cmac_offset"] :] == "0" * 16
    listed = owner.list_nfc_tags(venue["id"])
    assert [t["id"] for t in listed] == [created["id"]]
    assert "sdm_meta_read_key" not in listed[0] and "sdm_file_read_key" not in listed[0]
    # Nothing of the keys is stored: neither in the tag's row nor in the audit trail.
    stored = rows(app, "SELECT * FROM nfc_tags WHERE id = :id", id=created["id"])[0]
    assert created["sdm_file_read_key"].lower() not in str(stored._mapping).lower()
    events = owner.audit_trail(object_id=created["id"])["events"]
    assert [e["action"] for e in events] == ["nfc_tag.create"]
    assert "sdm_file_read_key" not in str(events)


def test_a_tag_is_registered_once_and_only_at_ones_own_venue(
    owner: Client, other_owner: Client, venue: dict[str, Any]
) -> None:
    uid = random_uid()
    owner.register_nfc_tag(venue["id"], uid)
    theirs = other_owner.create_venue(venue_body(name="Rival"))
    with pytest.raises(ApiError) as taken:
        other_owner.register_nfc_tag(theirs["id"], uid)
    assert taken.value.status == 409 and taken.value.code == "already_registered"
    with pytest.raises(ApiError) as foreign:
        other_owner.register_nfc_tag(venue["id"], random_uid())
    assert foreign.value.status == 404
    with pytest.raises(ApiError) as bad:
        owner.register_nfc_tag(venue["id"], "04XYZ")
    assert bad.value.status == 422


# ---- taps and tap check-ins ----------------------------------------------------------------


def test_a_tap_unlocks_an_nfc_offer_indoors_with_a_rough_fix(
    api: Client, owner: Client, mobile: Client, venue: dict[str, Any], tag: SoftTag
) -> None:
    nfc_offer = offer(owner, venue, title="Tap for cake", min_proof="nfc_tap")
    assert nfc_offer["min_proof"] == "nfc_tap" and nfc_offer["requires_presence_code"] is True
    gps_only = check_in(new_user(api), venue)
    assert gps_only["status"] == "verified" and gps_only["proof"] == "gps"
    assert gps_only["unlocks"] == []
    assert gps_only["locked"] == [
        {
            "offer_id": nfc_offer["id"],
            "title": "Tap for cake",
            "code": "nfc_tap_required",
            "min_proof": "nfc_tap",
            "detail": "tap the tag at the counter",
        }
    ]
    tapped = mobile.tap(tag.read())
    assert tapped["venue_id"] == venue["id"]
    expires = datetime.fromisoformat(tapped["expires_at"])
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(minutes=2)
    # Indoors: 300 m off with a 400 m accuracy circle is outside the fence and too rough, but
    # plausible with the tap.
    result = check_in(mobile, venue, north=NEAR_300M, accuracy_m=400, tap_token=tapped["tap_token"])
    assert result["status"] == "verified", result["reasons"]
    assert result["proof"] == "nfc_tap"
    assert [u["title"] for u in result["unlocks"]] == ["Tap for cake"]
    assert result["locked"] == []


def test_a_tap_token_is_single_use_and_bound_to_its_user_and_venue(
    api: Client, owner: Client, mobile: Client, venue: dict[str, Any], tag: SoftTag
) -> None:
    other_venue = owner.create_venue(venue_body(name="Next door", checkin_cooldown_minutes=0))
    token = mobile.tap(tag.read())["tap_token"]
    friend = new_user(api)
    # Another user's token (a forwarded tap): refused, and the owner's token still works.
    stolen = check_in(friend, venue, tap_token=token)
    assert stolen["status"] == "rejected" and stolen["proof"] == "gps"
    assert [r["code"] for r in stolen["reasons"]] == ["tap_invalid"]
    # Another venue's: refused.
    elsewhere = check_in(mobile, other_venue, tap_token=token)
    assert [r["code"] for r in elsewhere["reasons"]] == ["tap_invalid"]
    assert check_in(mobile, venue, tap_token=token)["status"] == "verified"
    # Used: refused.
    again = check_in(mobile, venue, tap_token=token)
    assert [r["code"] for r in again["reasons"]] == ["tap_invalid"]


def test_a_tap_does_not_carry_a_fix_from_far_away(
    owner: Client, mobile: Client, venue: dict[str, Any], tag: SoftTag
) -> None:
    token = mobile.tap(tag.read())["tap_token"]
    # A URL forwarded to a friend 2 km away (or replayed from home): the fix gives it away, and
    # a huge claimed accuracy is no excuse.
    result = check_in(mobile, venue, north=FAR_2KM, accuracy_m=5_000, tap_token=token)
    assert result["status"] == "rejected"
    assert [r["code"] for r in result["reasons"]] == ["outside_geofence"]
    assert "within 500 m" in result["reasons"][0]["detail"]


def test_every_bad_tap_is_tap_invalid_and_a_replayed_one_tap_replayed(
    app: Flask, owner: Client, mobile: Client, venue: dict[str, Any], tag: SoftTag
) -> None:
    url = tag.read()
    mobile.tap(url)
    with pytest.raises(ApiError) as replayed:
        mobile.tap(url)
    assert replayed.value.status == 409 and replayed.value.code == "tap_replayed"
    fresh = tag.read()
    tampered = fresh.replace("cmac=", "cmac=0").replace(fresh[-16:], fresh[-15:])
    with pytest.raises(ApiError) as bad:
        mobile.tap(tampered[: len(fresh)])
    assert bad.value.status == 422 and bad.value.code == "tap_invalid"
    # The genuine read still works after the tampered one (its counter was not spent).
    assert mobile.tap(fresh)["venue_id"] == venue["id"]
    # A well-formed message of a tag nobody registered (the service's meta key, any MAC key).
    stranger = SoftTag(random_uid(), tag.sdm_meta_read_key, tag.sdm_file_read_key, tag.url_template)
    with pytest.raises(ApiError) as no_tag:
        mobile.tap(stranger.read())
    assert no_tag.value.code == "tap_invalid"
    outcomes = rows(
        app,
        "SELECT outcome, reason FROM nfc_taps WHERE venue_id = :v OR tag_id IS NULL"
        " ORDER BY created_at",
        v=venue["id"],
    )
    assert [o.outcome for o in outcomes] == [
        "accepted",
        "tap_replayed",
        "tap_invalid",
        "accepted",
        "tap_invalid",
    ]


def test_a_deleted_tag_taps_no_more_and_its_tokens_die(
    app: Flask, owner: Client, mobile: Client, venue: dict[str, Any], tag: SoftTag
) -> None:
    token = mobile.tap(tag.read())["tap_token"]
    tag_id = tag_id_of(owner, venue, tag)
    owner.delete_nfc_tag(tag_id)
    assert owner.list_nfc_tags(venue["id"]) == []
    with pytest.raises(ApiError) as gone:
        mobile.tap(tag.read())
    assert gone.value.code == "tap_invalid"
    assert [r["code"] for r in check_in(mobile, venue, tap_token=token)["reasons"]] == [
        "tap_invalid"
    ]
    assert [e["action"] for e in owner.audit_trail(object_id=tag_id)["events"]] == [
        "nfc_tag.delete",
        "nfc_tag.create",
    ]


def test_a_tag_moved_to_another_venue_gets_new_keys(
    owner: Client, mobile: Client, venue: dict[str, Any], tag: SoftTag
) -> None:
    old_id = tag_id_of(owner, venue, tag)
    elsewhere = owner.create_venue(
        venue_body(name="Second shop", location={"type": "Point", "coordinates": [24.95, 60.18]})
    )
    owner.delete_nfc_tag(old_id)
    moved = owner.register_nfc_tag(elsewhere["id"], tag.uid)
    assert moved["sdm_file_read_key"] != tag.sdm_file_read_key
    # Not reprogrammed: its old messages verify against nothing.
    with pytest.raises(ApiError) as stale:
        mobile.tap(tag.read())
    assert stale.value.code == "tap_invalid"
    reprogrammed = SoftTag.programmed(moved, tag.uid)
    reprogrammed.counter = tag.counter
    assert mobile.tap(reprogrammed.read())["venue_id"] == elsewhere["id"]


# ---- proof levels --------------------------------------------------------------------------


def test_proof_levels_and_requires_presence_code_stay_consistent(
    owner: Client, venue: dict[str, Any]
) -> None:
    code = owner.create_offer(offer_body([venue["id"]], requires_presence_code=True))
    assert code["min_proof"] == "presence_code"
    plain = owner.create_offer(offer_body([venue["id"]]))
    assert plain["min_proof"] == "gps" and plain["requires_presence_code"] is False
    tap = owner.update_offer(plain["id"], {"min_proof": "nfc_tap"})
    assert tap["requires_presence_code"] is True
    # The flag alone keeps a stronger level, and clearing it goes back to gps.
    assert owner.update_offer(plain["id"], {"requires_presence_code": True})["min_proof"] == (
        "nfc_tap"
    )
    assert owner.update_offer(plain["id"], {"requires_presence_code": False})["min_proof"] == "gps"
    with pytest.raises(ApiError) as contradiction:
        owner.update_offer(plain["id"], {"min_proof": "gps", "requires_presence_code": True})
    assert contradiction.value.status == 422
    with pytest.raises(ApiError) as staff_level:
        owner.create_offer(offer_body([venue["id"]], min_proof="staff"))
    assert staff_level.value.status == 422


def test_a_presence_code_satisfies_presence_code_and_a_tap_satisfies_both(
    api: Client, owner: Client, venue: dict[str, Any], tag: SoftTag
) -> None:
    offer(owner, venue, title="Code", min_proof="presence_code")
    offer(owner, venue, title="Tap", min_proof="nfc_tap")
    user = new_user(api)
    code = owner.presence_code(venue["id"])["code"]
    with_code = check_in(user, venue, presence_code=code)
    assert with_code["proof"] == "presence_code"
    assert [u["title"] for u in with_code["unlocks"]] == ["Code"]
    assert [(lock["title"], lock["code"]) for lock in with_code["locked"]] == [
        ("Tap", "nfc_tap_required")
    ]
    other = new_user(api)
    tapped = check_in(other, venue, tap_token=other.tap(tag.read())["tap_token"])
    assert sorted(u["title"] for u in tapped["unlocks"]) == ["Code", "Tap"]


# ---- member codes, cards and staff check-ins -----------------------------------------------


def test_a_member_code_checks_a_guest_in_through_the_same_rules(
    api: Client, owner: Client, mobile: Client, venue: dict[str, Any]
) -> None:
    offer(owner, venue, title="Tap or staff", min_proof="nfc_tap")
    member = mobile.member_code()
    assert len(member["code"]) == 8 and member["code"].isdigit()
    assert mobile.member_code()["code"] == member["code"]  # the same within its minute
    staff = api.with_token(owner.create_key("staff")["api_key"])
    visit = staff.staff_check_in(venue["id"], member_code=member["code"])
    assert visit["status"] == "verified" and visit["proof"] == "staff"
    assert "user_id" not in visit  # the merchant learns no one's account id
    assert [u["title"] for u in visit["unlocks"]] == ["Tap or staff"]
    assert [u["title"] for u in mobile.wallet()] == ["Tap or staff"]
    # The cooldown holds for staff visits too.
    owner.update_venue(venue["id"], {"checkin_cooldown_minutes": 60})
    again = staff.staff_check_in(venue["id"], member_code=member["code"])
    assert again["status"] == "rejected"
    assert [r["code"] for r in again["reasons"]] == ["too_soon"]


def test_a_wrong_member_code_is_refused_and_guessing_is_limited(
    app: Flask, api: Client, owner: Client, venue: dict[str, Any]
) -> None:
    staff = api.with_token(owner.create_key("staff")["api_key"])
    for n in range(10):
        with pytest.raises(ApiError) as wrong:
            staff.staff_check_in(venue["id"], member_code=f"{n:08d}")
        assert wrong.value.status == 422 and wrong.value.code == "member_code_invalid"
    with pytest.raises(ApiError) as locked:
        staff.staff_check_in(venue["id"], member_code="12345678")
    assert locked.value.status == 429 and locked.value.code == "too_many_attempts"
    assert 0 < int(locked.value.response.headers["Retry-After"]) <= 15 * 60 + 1
    # Another key of the merchant is not held by this one's lockout.
    other = api.with_token(owner.create_key("staff")["api_key"])
    with pytest.raises(ApiError) as separate:
        other.staff_check_in(venue["id"], member_code="12345678")
    assert separate.value.code == "member_code_invalid"
    counted = rows(
        app,
        "SELECT count(*) AS n FROM staff_checkin_attempts WHERE venue_id = :v"
        " AND outcome = 'member_code_invalid'",
        v=venue["id"],
    )
    assert counted[0].n == 11
    # But more keys do not bring more guesses (issue 23): 30 wrong at the venue, whatever the
    # keys, and every key is refused there.
    for _ in range(2):
        extra = api.with_token(owner.create_key("staff")["api_key"])
        for n in range(10 if _ == 0 else 9):
            with pytest.raises(ApiError):
                extra.staff_check_in(venue["id"], member_code=f"{n:08d}")
    fresh = api.with_token(owner.create_key("staff")["api_key"])
    with pytest.raises(ApiError) as venue_wide:
        fresh.staff_check_in(venue["id"], member_code="12345678")
    assert venue_wide.value.code == "too_many_attempts"
    assert venue_wide.value.detail.startswith("30 wrong member codes at this venue")


def test_staff_cannot_check_in_themselves(
    api: Client, owner: Client, venue: dict[str, Any]
) -> None:
    offer(owner, venue, title="Anything")
    handle = f"u{secrets.token_hex(5)}"
    barista = api.with_token(api.create_user(handle, "pass-word-1")["token"])
    owner.add_staff_user(handle)
    staff = api.with_token(owner.create_key("staff")["api_key"])
    visit = staff.staff_check_in(venue["id"], member_code=barista.member_code()["code"])
    assert visit["status"] == "verified" and visit["unlocks"] == []
    assert visit["verification"]["staff_exclusion"]["code"] == "staff_user"


def test_a_guest_card_checks_in_once_per_read(
    api: Client, owner: Client, mobile: Client, venue: dict[str, Any]
) -> None:
    offer(owner, venue, title="Wristband", min_proof="nfc_tap")
    uid = random_uid()
    card = SoftTag.programmed(mobile.register_card(uid, "festival band"), uid)
    assert [c["uid"] for c in mobile.list_cards()] == [uid]
    staff = api.with_token(owner.create_key("staff")["api_key"])
    read = card.read()
    visit = staff.staff_check_in(venue["id"], card_url=read, idempotency_key="band-1")
    assert visit["proof"] == "staff" and [u["title"] for u in visit["unlocks"]] == ["Wristband"]
    # A retry with the same key replays; the same read without the key is a replay.
    assert staff.staff_check_in(venue["id"], card_url=read, idempotency_key="band-1") == visit
    with pytest.raises(ApiError) as replayed:
        staff.staff_check_in(venue["id"], card_url=read)
    assert replayed.value.status == 409 and replayed.value.code == "tap_replayed"
    mobile.remove_card(mobile.list_cards()[0]["id"])
    assert mobile.list_cards() == []
    with pytest.raises(ApiError) as removed:
        staff.staff_check_in(venue["id"], card_url=card.read())
    assert removed.value.status == 422 and removed.value.code == "tap_invalid"


# ---- what the merchant sees ----------------------------------------------------------------


def test_analytics_split_by_proof_and_the_leak_report_flags_what_sun_cannot_tell(
    app: Flask, api: Client, owner: Client, venue: dict[str, Any], tag: SoftTag
) -> None:
    cake = offer(owner, venue, title="Cake")
    staff = api.with_token(owner.create_key("staff")["api_key"])
    gps_user, tap_user, guest = new_user(api), new_user(api), new_user(api)
    check_in(gps_user, venue)
    check_in(tap_user, venue, tap_token=tap_user.tap(tag.read())["tap_token"])
    staff.staff_check_in(venue["id"], member_code=guest.member_code()["code"])
    tapped_code = tap_user.wallet()[0]["code"]
    staff.redeem(tapped_code, venue["id"])
    funnel = owner.offer_funnel(cake["id"])
    assert funnel["by_proof"] == {
        "gps": {"verified_checkins": 1, "unlocks": 1, "redemptions": 0},
        "presence_code": {"verified_checkins": 0, "unlocks": 0, "redemptions": 0},
        "nfc_tap": {"verified_checkins": 1, "unlocks": 1, "redemptions": 1},
        "staff": {"verified_checkins": 1, "unlocks": 1, "redemptions": 0},
    }
    # A collector reads the tag ten times, submits the fifth: five reads skipped; the next
    # genuine visitor's tap skips the other five; the collector's older URLs are then dead.
    collected = [tag.read() for _ in range(10)]
    collector = new_user(api)
    collector.tap(collected[4])
    visitor = new_user(api)
    visitor.tap(tag.read())
    with pytest.raises(ApiError):
        collector.tap(collected[2])
    with pytest.raises(ApiError):
        collector.tap(collected[6])
    nfc = owner.leak_report()["nfc"]
    assert nfc["taps_accepted"] == 3
    assert nfc["taps_refused"] == {"counter_not_above": 2}
    assert nfc["counter_gaps"] == {"taps": 2, "skipped_reads": 4 + 5}
    assert nfc["staff_checkin_attempts"]["accepted"] == 1
    leaks = owner.leak_report()
    assert leaks["redemptions_by_proof"] == {
        "gps": 0,
        "presence_code": 0,
        "nfc_tap": 1,
        "staff": 0,
    }
    assert owner.offer_health(cake["id"])["unlocks_by_proof"] == {
        "gps": 1,
        "presence_code": 0,
        "nfc_tap": 1,
        "staff": 1,
    }
    # The analyst views carry the proof.
    views = rows(
        app,
        "SELECT proof, count(*) AS n FROM analytics.unlocks WHERE offer_id = :o GROUP BY proof"
        " ORDER BY proof",
        o=cake["id"],
    )
    assert [(r.proof, r.n) for r in views] == [("gps", 1), ("nfc_tap", 1), ("staff", 1)]
    assert (
        rows(
            app,
            "SELECT count(*) AS n FROM analytics.checkins WHERE venue_id = :v AND proof = 'nfc_tap'",
            v=venue["id"],
        )[0].n
        == 1
    )


# The leak report's redemption figures computed directly, as before migration 0023: from the
# check-in behind each redemption (its status and proof), one distance per redemption.
_LEAKS_DIRECT = """
    SELECT count(*) AS redemptions,
           count(*) FILTER (WHERE c.status = 'verified') AS backed,
           count(*) FILTER (WHERE r.redeemed_at - u.created_at < interval '10 seconds') AS fast,
           count(*) FILTER (WHERE ST_Distance(a.location, b.location) > 1000) AS far,
           count(*) FILTER (WHERE c.proof = 'gps') AS gps,
           count(*) FILTER (WHERE c.proof = 'presence_code') AS presence_code,
           count(*) FILTER (WHERE c.proof = 'nfc_tap') AS nfc_tap,
           count(*) FILTER (WHERE c.proof = 'staff') AS staff
    FROM redemptions r JOIN unlocks u ON u.id = r.unlock_id
    JOIN checkins c ON c.id = u.checkin_id
    JOIN venues a ON a.id = u.venue_id LEFT JOIN venues b ON b.id = r.venue_id
    WHERE r.merchant_id = :m AND (CAST(:o AS uuid) IS NULL OR r.offer_id = :o)
"""


@pytest.mark.parametrize("seed", [1, 2])
def test_leak_and_redemption_reports_equal_the_direct_computation_on_random_histories(
    app: Flask, api: Client, owner: Client, venue: dict[str, Any], tag: SoftTag, seed: int
) -> None:
    """Random visits with every proof, rejected ones, a group offer (whose members' unlocks are
    issued in another user's check-in, with the proof of the member's own check-in), and
    redemptions here, 1.3 km away and at tills that do not say where, some of them slow: every
    unlock carries its check-in's proof, and the leak report's redemption figures and the
    redemptions by venue equal the direct computation from the unlocks and check-ins."""
    rng = random.Random(seed)
    away = owner.create_venue(
        venue_body(
            name="Away",
            location={"type": "Point", "coordinates": [24.9500, 60.1800]},
            checkin_cooldown_minutes=0,
        )
    )
    both = [venue["id"], away["id"]]
    every = owner.activate_offer(
        owner.create_offer(offer_body(both, title="Every", per_user_cap=100))["id"]
    )
    group = owner.activate_offer(
        owner.create_offer(
            offer_body(
                both,
                title="Pair",
                per_user_cap=100,
                rule={"kind": "group", "min_people": 2, "within_minutes": 30},
            )
        )["id"]
    )
    staff = api.with_token(owner.create_key("staff")["api_key"])
    users = [new_user(api) for _ in range(5)]
    # The pair: the first user's tap check-in, then the second's by GPS completes it, and the
    # first user's unlock (issued in the second's check-in) carries the tap.
    tapped = check_in(users[0], venue, tap_token=users[0].tap(tag.read())["tap_token"])["id"]
    completed = check_in(users[1], venue)["id"]
    for _ in range(14):
        user = rng.choice(users)
        how = rng.choice(("gps", "presence_code", "nfc_tap", "staff", "rejected"))
        if how == "gps":
            check_in(user, venue)
        elif how == "presence_code":
            check_in(user, venue, presence_code=owner.presence_code(venue["id"])["code"])
        elif how == "nfc_tap":
            check_in(user, venue, tap_token=user.tap(tag.read())["tap_token"])
        elif how == "staff":
            staff.staff_check_in(venue["id"], member_code=user.member_code()["code"])
        else:
            assert check_in(user, venue, north=FAR_2KM)["status"] == "rejected"
    unlocks = rows(
        app,
        "SELECT u.id, u.offer_id, u.checkin_id, u.proof, c.proof AS checkin_proof, c.status"
        " FROM unlocks u JOIN checkins c ON c.id = u.checkin_id"
        " WHERE u.merchant_id = (SELECT merchant_id FROM venues WHERE id = :v)",
        v=venue["id"],
    )
    pair = sorted(
        (str(u.checkin_id) == tapped, u.proof)
        for u in unlocks
        if str(u.offer_id) == group["id"] and str(u.checkin_id) in (tapped, completed)
    )
    assert pair == [(False, "gps"), (True, "nfc_tap")]
    assert all(u.proof == u.checkin_proof for u in unlocks)
    assert {u.status for u in unlocks} == {"verified"}
    slow = [str(u.id) for u in unlocks if rng.random() < 0.3]
    with app.app_context():
        db.session().execute(
            text(
                "UPDATE unlocks SET created_at = created_at - interval '1 hour'"
                " WHERE id = ANY (CAST(:ids AS uuid[]))"
            ),
            {"ids": slow},
        )
        db.session().commit()
    for user in users:
        for entry in user.wallet():
            if rng.random() < 0.7:
                # a till that does not say where counts where the code was earned
                staff.redeem(entry["code"], rng.choice([*both, None]))

    merchant = rows(app, "SELECT merchant_id FROM venues WHERE id = :v", v=venue["id"])[0][0]
    for offer_id in (None, every["id"], group["id"]):
        (direct,) = rows(app, _LEAKS_DIRECT, m=merchant, o=offer_id)
        leaks = owner.leak_report(offer_id=offer_id)
        assert (
            leaks["redemptions"],
            leaks["backed_by_verified_checkin"],
            leaks["suspicious"]["fast"],
            leaks["suspicious"]["far"],
            leaks["redemptions_by_proof"],
        ) == (
            direct.redemptions,
            direct.backed,
            direct.fast,
            direct.far,
            {p: getattr(direct, p) for p in ("gps", "presence_code", "nfc_tap", "staff")},
        )
    (whole,) = rows(app, _LEAKS_DIRECT, m=merchant, o=None)
    assert whole.redemptions > 0
    by_venue = rows(
        app,
        "SELECT COALESCE(r.venue_id, u.venue_id) AS venue_id, count(*) AS n FROM redemptions r"
        " JOIN unlocks u ON u.id = r.unlock_id WHERE r.merchant_id = :m GROUP BY 1",
        m=merchant,
    )
    assert {
        row["venue_id"]: row["redemptions"]
        for row in owner.redemption_report(group_by="venue")["rows"]
    } == {str(row.venue_id): row.n for row in by_venue}
