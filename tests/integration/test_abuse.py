"""Check-in farming: strikes raise the bar to the presence code, the merchant's own staff never
unlock its offers, and both show in the leak report; all within the check-in's round-trip budget
and on indexes."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import Engine, event, text

from api import db
from mobile_stub.client import ApiError, Client
from offers import abuse
from offers.engine import OfferTerms, VisitFacts, counts_toward_group, decide
from offers.rules import EveryCheckin
from tests.factories import offer_body, venue_body

FAR = 0.018  # degrees of latitude: about 2 km north, always outside the fence


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def new_user(api: Client) -> Client:
    return api.with_token(api.create_user(f"u{secrets.token_hex(5)}", "pass-word-1")["token"])


def new_named_user(api: Client) -> tuple[Client, str]:
    handle = f"u{secrets.token_hex(5)}"
    return api.with_token(api.create_user(handle, "pass-word-1")["token"]), handle


def visit(user: Client, venue: Any, *, far: bool = False, **kwargs: Any) -> Any:
    lon, lat = venue["location"]["coordinates"]
    return user.check_in(venue["id"], lat + (FAR if far else 0.0), lon, 10, now_iso(), **kwargs)


def rows(app: Flask, sql: str, **params: Any) -> list[Any]:
    with app.app_context():
        return list(db.session().execute(text(sql), params).all())


@pytest.fixture
def venue(owner: Client) -> Any:
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    owner.activate_offer(owner.create_offer(offer_body([venue["id"]], per_user_cap=100))["id"])
    return venue


def strike_codes(checkin: dict[str, Any]) -> list[str]:
    return [s["code"] for s in checkin["verification"]["strikes"]]


# ---- strikes ---------------------------------------------------------------------------------


def test_a_clean_check_in_has_no_strikes(mobile: Client, venue: Any) -> None:
    checkin = visit(mobile, venue, device_id="phone-1")
    assert checkin["verification"] == {
        "strikes": [],
        "presence_code_required": False,
        "staff_exclusion": None,
    }
    assert len(checkin["unlocks"]) == 1


def test_many_accounts_on_one_device_need_the_presence_code(
    app: Flask, api: Client, owner: Client, venue: Any
) -> None:
    first, second, third = new_user(api), new_user(api), new_user(api)
    assert visit(first, venue, device_id="farm")["unlocks"]
    assert visit(second, venue, device_id="farm")["unlocks"]  # a shared family tablet is fine
    farmed = visit(third, venue, device_id="farm")
    assert farmed["status"] == "verified" and farmed["reasons"] == []  # the verdict is unchanged
    assert strike_codes(farmed) == ["device_shared"]
    assert "3 accounts" in farmed["verification"]["strikes"][0]["detail"]
    assert farmed["verification"]["presence_code_required"] is True
    assert farmed["unlocks"] == []
    # The strike is on the device: the first account, back on it, is under it too ...
    assert strike_codes(visit(first, venue, device_id="farm")) == ["device_shared"]
    # ... but not on its own phone.
    assert visit(first, venue, device_id="own-phone")["unlocks"]
    # Scanning the code shown at the venue proves presence whatever the phone says.
    code = owner.presence_code(venue["id"])["code"]
    scanned = visit(third, venue, device_id="farm", presence_code=code)
    assert strike_codes(scanned) == ["device_shared"] and len(scanned["unlocks"]) == 1
    [row] = rows(app, "SELECT strikes FROM checkins WHERE id = :id", id=farmed["id"])
    assert row.strikes == ["device_shared"]


def test_one_account_on_many_devices_needs_the_presence_code(mobile: Client, venue: Any) -> None:
    assert visit(mobile, venue, device_id="a")["unlocks"]
    assert visit(mobile, venue)["unlocks"]  # no device id: not a device
    assert visit(mobile, venue, device_id="b")["unlocks"]
    assert visit(mobile, venue, device_id="a")["unlocks"]  # the same two
    third = visit(mobile, venue, device_id="c")
    assert strike_codes(third) == ["many_devices"] and third["unlocks"] == []
    assert "3 devices" in third["verification"]["strikes"][0]["detail"]
    # Leaving the device id out does not clear a strike the account has already earned.
    assert strike_codes(visit(mobile, venue)) == ["many_devices"]


def test_repeated_rejections_need_the_presence_code(
    owner: Client, mobile: Client, venue: Any
) -> None:
    for _ in range(abuse.REJECTIONS - 1):
        assert visit(mobile, venue, far=True)["status"] == "rejected"
    assert visit(mobile, venue)["unlocks"]  # four rejections: a bad GPS day
    assert visit(mobile, venue, far=True)["status"] == "rejected"  # the fifth
    struck = visit(mobile, venue)
    assert strike_codes(struck) == ["repeated_rejections"] and struck["unlocks"] == []
    code = owner.presence_code(venue["id"])["code"]
    assert visit(mobile, venue, presence_code=code)["unlocks"]


def test_strikes_expire_with_their_window(app: Flask, api: Client, venue: Any) -> None:
    users = [new_user(api) for _ in range(3)]
    for user in users[:2]:
        visit(user, venue, device_id="old-farm")
    assert strike_codes(visit(users[2], venue, device_id="old-farm")) == ["device_shared"]
    with app.app_context():
        session = db.session()
        session.execute(
            text(
                "UPDATE checkins SET created_at = created_at - make_interval(days => :d) "
                "WHERE device_id = 'old-farm'"
            ),
            {"d": abuse.WINDOW_DAYS + 1},
        )
        session.commit()
    fresh = visit(users[2], venue, device_id="old-farm")
    assert strike_codes(fresh) == [] and fresh["unlocks"]


def test_every_strike_at_once(owner: Client, api: Client, venue: Any) -> None:
    farmer = new_user(api)
    for i in range(abuse.REJECTIONS):
        visit(farmer, venue, far=True, device_id=f"burner-{i}")
    for _ in range(2):
        visit(new_user(api), venue, device_id="burner-0")
    checkin = visit(farmer, venue, device_id="burner-0")
    assert strike_codes(checkin) == ["device_shared", "many_devices", "repeated_rejections"]


def test_a_group_cannot_be_made_up_on_one_phone(api: Client, owner: Client, venue: Any) -> None:
    group = owner.activate_offer(
        owner.create_offer(
            offer_body(
                [venue["id"]],
                title="Group",
                rule={"kind": "group", "min_people": 3, "within_minutes": 30},
            )
        )["id"]
    )
    a, b, c = new_user(api), new_user(api), new_user(api)
    visit(a, venue, device_id="one-phone")
    visit(b, venue, device_id="one-phone")
    third = visit(c, venue, device_id="one-phone")  # under device_shared: does not count
    assert strike_codes(third) == ["device_shared"]
    assert group["id"] not in {u["offer_id"] for u in third["unlocks"]}
    # A real third person completes the group; the struck member still gets nothing without
    # the code, the other two do.
    d = new_user(api)
    done = visit(d, venue, device_id="d-phone")
    assert group["id"] in {u["offer_id"] for u in done["unlocks"]}
    got = {
        name: any(u["offer_id"] == group["id"] for u in user.wallet())
        for name, user in {"a": a, "b": b, "c": c, "d": d}.items()
    }
    assert got == {"a": True, "b": True, "c": False, "d": True}


# ---- the merchant's own staff ----------------------------------------------------------------


def test_staff_never_unlock_their_own_merchants_offers(
    api: Client, owner: Client, other_owner: Client, venue: Any
) -> None:
    barista, handle = new_named_user(api)
    entry = owner.add_staff_user(handle.upper())  # handles match case-insensitively
    assert entry["handle"] == handle.upper()  # as registered: the account's would tell it exists
    checkin = visit(barista, venue, device_id="barista-phone")
    assert checkin["status"] == "verified" and checkin["unlocks"] == []
    assert checkin["verification"]["staff_exclusion"]["code"] == "staff_user"
    # Not even with the presence code.
    code = owner.presence_code(venue["id"])["code"]
    assert visit(barista, venue, presence_code=code)["unlocks"] == []
    # Another merchant's offers unlock for them as for anyone.
    theirs = other_owner.create_venue(venue_body(name="Rival", checkin_cooldown_minutes=0))
    other_owner.activate_offer(other_owner.create_offer(offer_body([theirs["id"]]))["id"])
    elsewhere = visit(barista, theirs)
    assert elsewhere["verification"]["staff_exclusion"] is None and elsewhere["unlocks"]
    # A second account on the barista's phone is linked to the staff by the device.
    alt = new_user(api)
    linked = visit(alt, venue, device_id="barista-phone")
    assert linked["verification"]["staff_exclusion"]["code"] == "staff_device"
    assert linked["unlocks"] == []
    # Unregistered, the barista is a customer again (their own phone was never shared).
    owner.remove_staff_user(entry["id"])
    assert visit(barista, venue, device_id="barista-phone")["unlocks"]


def test_staff_do_not_count_toward_a_group(api: Client, owner: Client, venue: Any) -> None:
    owner.activate_offer(
        owner.create_offer(
            offer_body(
                [venue["id"]],
                title="Pair",
                rule={"kind": "group", "min_people": 2, "within_minutes": 30},
            )
        )["id"]
    )
    barista, handle = new_named_user(api)
    owner.add_staff_user(handle)
    friend = new_user(api)
    visit(barista, venue)
    assert "Pair" not in [u["title"] for u in visit(friend, venue)["unlocks"]]


def test_staff_user_registration(
    app: Flask, api: Client, owner: Client, other_owner: Client
) -> None:
    _, handle = new_named_user(api)
    entry = owner.add_staff_user(handle)
    assert set(entry) == {"id", "handle", "created_at"}  # never the account's id
    assert owner.list_staff_users() == [entry]
    with pytest.raises(ApiError) as err:
        owner.add_staff_user(handle.upper())
    assert (err.value.status, err.value.code) == (409, "already_staff")
    # The same person may work for two merchants; each sees only its own list.
    assert other_owner.add_staff_user(handle)["handle"] == handle
    assert [s["id"] for s in owner.list_staff_users()] == [entry["id"]]
    for role in ("staff", "analyst"):
        keyed = owner.with_token(owner.create_key(role)["api_key"])
        for attempt in (keyed.list_staff_users, lambda k=keyed: k.add_staff_user(handle)):
            with pytest.raises(ApiError) as err:
                attempt()
            assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        owner.add_staff_user("not a handle!")
    assert (err.value.status, err.value.code) == (422, "validation_error")
    assert owner.remove_staff_user(entry["id"])["id"] == entry["id"]
    assert owner.list_staff_users() == []
    with pytest.raises(ApiError) as err:
        owner.remove_staff_user(entry["id"])
    assert err.value.status == 404
    with pytest.raises(ApiError) as err:
        owner.remove_staff_user(str(uuid.uuid4()))
    assert err.value.status == 404


def test_registering_a_staff_handle_tells_nothing_about_who_has_it(
    api: Client, owner: Client
) -> None:
    _, handle = new_named_user(api)
    known = owner.call("POST", "/v1/merchants/me/staff-users", {"handle": handle})
    unknown = owner.call("POST", "/v1/merchants/me/staff-users", {"handle": "nobody_yet"})
    assert known.status == unknown.status == 201
    assert set(known.body) == set(unknown.body) == {"id", "handle", "created_at"}
    assert sorted(s["handle"] for s in owner.list_staff_users()) == sorted([handle, "nobody_yet"])
    assert [set(s) for s in owner.list_staff_users()] == [{"id", "handle", "created_at"}] * 2
    # Nor does the audit trail, which the owner reads.
    events = owner.audit_trail(limit=10)["events"]
    created = [e["changes"] for e in events if e["action"] == "staff_user.create"]
    assert sorted(created, key=str) == sorted(
        [{"handle": [None, "nobody_yet"]}, {"handle": [None, handle]}], key=str
    )


def test_a_handle_registered_before_its_account_exists_applies_once_it_signs_up(
    api: Client, owner: Client, venue: Any
) -> None:
    owner.add_staff_user("New_Barista")
    barista = api.with_token(api.create_user("new_barista", "pass-word-1")["token"])
    checkin = visit(barista, venue)
    assert checkin["unlocks"] == []
    assert checkin["verification"]["staff_exclusion"]["code"] == "staff_user"
    # ... and someone else, under another handle, is a customer.
    assert visit(new_user(api), venue)["unlocks"]


# ---- the leak report -------------------------------------------------------------------------


def test_the_leak_report_shows_strikes_and_staff(
    api: Client, owner: Client, other_owner: Client, venue: Any
) -> None:
    empty = owner.leak_report()
    assert empty["strikes"] == {
        "checkins": 0,
        "verified_without_presence_code": 0,
        "shared_devices": 0,
        "users_on_many_devices": 0,
        "users_with_repeated_rejections": 0,
        "by_kind": {"device_shared": 0, "many_devices": 0, "repeated_rejections": 0},
    }
    assert empty["staff_checkins"] == {"staff_user": 0, "staff_device": 0}
    farm = [new_user(api) for _ in range(4)]
    for user in farm:
        visit(user, venue, device_id="farm")  # the 3rd and 4th under device_shared
    visit(farm[3], venue, far=True, device_id="farm")  # rejected, still under it
    code = owner.presence_code(venue["id"])["code"]
    visit(farm[2], venue, device_id="farm", presence_code=code)  # unlocked with the code
    roamer = new_user(api)
    for device in ("r1", "r2", "r3"):
        visit(roamer, venue, device_id=device)  # the 3rd under many_devices
    barista, handle = new_named_user(api)
    owner.add_staff_user(handle)
    visit(barista, venue, device_id="till-phone")
    visit(new_user(api), venue, device_id="till-phone")  # staff_device
    # Strikes at another merchant's venues are not this merchant's business.
    theirs = other_owner.create_venue(venue_body(name="Rival", checkin_cooldown_minutes=0))
    visit(farm[0], theirs, device_id="farm")

    report = owner.leak_report()
    assert report["strikes"] == {
        "checkins": 5,
        "verified_without_presence_code": 3,
        "shared_devices": 1,
        "users_on_many_devices": 1,
        "users_with_repeated_rejections": 0,
        "by_kind": {"device_shared": 4, "many_devices": 1, "repeated_rejections": 0},
    }
    assert report["staff_checkins"] == {"staff_user": 1, "staff_device": 1}
    assert other_owner.leak_report()["strikes"]["checkins"] == 1
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert owner.leak_report(from_=later)["strikes"]["checkins"] == 0


# ---- the round-trip budget and indexes -------------------------------------------------------


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def,unused-ignore]
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_strikes_and_staff_cost_no_round_trip(
    api: Client, owner: Client, venue: Any, statements: list[tuple[str, Any]]
) -> None:
    counts = {}
    code = owner.presence_code(venue["id"])["code"]
    barista, handle = new_named_user(api)
    owner.add_staff_user(handle)
    for user in (new_user(api), new_user(api)):
        visit(user, venue, device_id="shared")
    cases: dict[str, tuple[Client, dict[str, Any]]] = {
        "clean, no device": (new_user(api), {}),
        "clean, a device": (new_user(api), {"device_id": "own"}),
        "struck, with the code": (new_user(api), {"device_id": "shared", "presence_code": code}),
        "staff": (barista, {"device_id": "staff-phone"}),
    }
    for name, (user, kwargs) in cases.items():
        statements.clear()
        checkin = visit(user, venue, **kwargs)
        assert checkin["status"] == "verified", name
        counts[name] = len(statements)
    # The clean ones and the struck one with the code unlock (claim + insert); staff do not.
    # A presence code costs the guess limit's two statements (the device's and venue's locks,
    # then the count of wrong codes: offers/checkins.py), whatever the strikes.
    counts["struck, with the code"] -= 2
    unlocking = {k: v for k, v in counts.items() if k != "staff"}
    assert len(set(unlocking.values())) == 1, counts
    assert counts["staff"] == counts["clean, no device"] - 2, counts


def test_every_abuse_query_uses_an_index(
    app: Flask,
    api: Client,
    owner: Client,
    venue: Any,
    statements: list[tuple[str, Any]],
) -> None:
    barista, handle = new_named_user(api)
    owner.add_staff_user(handle)
    visit(barista, venue, device_id="d1")
    for user in (new_user(api), new_user(api)):
        visit(user, venue, device_id="d1")
    statements.clear()
    visit(new_user(api), venue, device_id="d1")
    owner.leak_report()
    captured = [
        (sql, params)
        for sql, params in statements
        if "checkins" in sql and sql.lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    assert len(captured) >= 2
    with app.app_context():
        session = db.session()
        session.execute(text("SET LOCAL enable_seqscan = off"))
        cursor = session.connection().connection.cursor()
        for sql, params in captured:
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan" not in plan, f"{sql}\n{plan}"


# ---- the pure rules --------------------------------------------------------------------------


def test_assess_thresholds_are_inclusive() -> None:
    t = abuse.AbuseThresholds(device_users=3, user_devices=4, rejections=5)

    def facts(**kw: Any) -> abuse.AbuseFacts:
        base = {
            "device_users": 1,
            "user_devices": 1,
            "recent_rejections": 0,
            "staff_user": False,
            "staff_device": False,
        }
        return abuse.AbuseFacts(**{**base, **kw})

    assert abuse.assess(facts(), t) == abuse.Assessment((), None)
    assert [s.code for s in abuse.assess(facts(device_users=2), t).strikes] == []
    assert [s.code for s in abuse.assess(facts(device_users=3), t).strikes] == ["device_shared"]
    assert [s.code for s in abuse.assess(facts(user_devices=3), t).strikes] == []
    assert [s.code for s in abuse.assess(facts(user_devices=4), t).strikes] == ["many_devices"]
    assert [s.code for s in abuse.assess(facts(recent_rejections=5), t).strikes] == [
        "repeated_rejections"
    ]
    both = abuse.assess(facts(staff_user=True, staff_device=True), t)
    assert both.staff_exclusion is not None and both.staff_exclusion.code == "staff_user"
    assert not both.presence_code_required


def test_decide_with_strikes_and_staff() -> None:
    terms = OfferTerms(
        id=uuid.uuid4(),
        rule=EveryCheckin(),
        starts_at=None,
        ends_at=None,
        windows=(),
        per_user_cap=1,
        requires_presence_code=False,
        holdout_pct=0,
    )
    facts = VisitFacts(
        visits=1,
        visits_within=None,
        user_unlocks=0,
        top_visits=0,
        best_other_visits=0,
        group_size=0,
    )
    now, tz, user = datetime.now(UTC), ZoneInfo("UTC"), uuid.uuid4()

    def why(**kw: Any) -> str:
        d = decide(terms, facts, tz, now, user_id=user, **kw)
        return d.why or d.outcome

    assert why(presence_verified=False) == "unlock"
    assert why(presence_verified=False, under_strike=True) == "under_strike"
    assert why(presence_verified=True, under_strike=True) == "unlock"
    assert why(presence_verified=True, merchant_staff=True) == "merchant_staff"
    assert counts_toward_group(presence_verified=False, under_strike=False, merchant_staff=False)
    assert not counts_toward_group(presence_verified=False, under_strike=True, merchant_staff=False)
    assert counts_toward_group(presence_verified=True, under_strike=True, merchant_staff=False)
    assert not counts_toward_group(presence_verified=True, under_strike=False, merchant_staff=True)
