"""Privacy by design (core/privacy.py, docs/privacy.md): a user's export is complete and
streamed, erasure removes the person and leaves every merchant figure as it was, retention
coarsens old fixes without changing what analytics count, and analysts never see a raw point,
a device id or a handle."""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from api import db
from core import privacy
from mobile_stub.client import ApiError, Client
from tests.factories import offer_body, venue_body

A = {"type": "Point", "coordinates": [24.9384, 60.1699]}
B = {"type": "Point", "coordinates": [24.9500, 60.1800]}  # ~1.3 km away
COMMENT = "Cold coffee. Ask for Anna, she knows me."
SHARED_DEVICE = "android-3f9c2a71e0b4"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def sql(app: Flask, statement: str, **params: Any) -> list[Any]:
    with app.app_context():
        result = db.session().execute(text(statement), params)
        rows = list(result.all()) if result.returns_rows else []
        db.session().commit()
        return rows


def new_user(api: Client) -> tuple[Client, str]:
    handle = f"u{secrets.token_hex(5)}"
    return api.with_token(api.create_user(handle, "pass-word-1")["token"]), handle


def at(user: Client, venue: dict[str, Any], offset_m: float = 0.0, **kw: Any) -> dict[str, Any]:
    lon, lat = venue["location"]["coordinates"]
    return user.check_in(venue["id"], lat + offset_m / 111_000, lon, 10, now_iso(), **kw)


def build(api: Client, owner: Client, other_owner: Client) -> dict[str, Any]:
    """Two venues, three offers (one with a holdout), five users; the one to erase (`person`)
    has verified and rejected check-ins, unlocks, a redemption, a refused attempt, a card, a
    device shared with others (strikes) and an idempotent check-in."""
    venue_a = owner.create_venue(venue_body(name="A", location=A, checkin_cooldown_minutes=0))
    venue_b = owner.create_venue(venue_body(name="B", location=B, checkin_cooldown_minutes=0))
    coffee = owner.activate_offer(
        owner.create_offer(
            offer_body([venue_a["id"], venue_b["id"]], title="Coffee", per_user_cap=5)
        )["id"]
    )
    second = owner.activate_offer(
        owner.create_offer(
            offer_body([venue_a["id"]], title="Second", rule={"kind": "nth_visit", "visits": 2})
        )["id"]
    )
    measured = owner.activate_offer(
        owner.create_offer(
            offer_body([venue_b["id"]], title="Measured", holdout_pct=50, per_user_cap=3)
        )["id"]
    )
    staff = owner.with_token(owner.create_key("staff")["api_key"])
    person, handle = new_user(api)
    others = [new_user(api)[0] for _ in range(4)]
    for user in (person, *others):
        user.nearby(60.1699, 24.9384, radius_m=2000)
    person.register_card("04a1b2c3d4e5f6", label="my wristband")

    # The shared device: two others, then the person (third account: a strike), then a fourth.
    at(others[0], venue_a, device_id=SHARED_DEVICE)
    at(others[1], venue_a, device_id=SHARED_DEVICE)
    first = at(person, venue_a, device_id=SHARED_DEVICE)
    at(others[2], venue_a, device_id=SHARED_DEVICE)
    at(person, venue_a, offset_m=2400, device_id="person-phone")  # rejected, from the sofa
    at(person, venue_a, device_id="person-phone", idempotency_key="k-1")
    for user in (person, *others):
        at(user, venue_b, device_id=None)
        at(user, venue_b, offset_m=5)
    # The person's feedback on a verified visit, and the merchant's answer.
    given = person.give_feedback(first["id"], 2, COMMENT)
    staff.reply_to_feedback(given["id"], "Sorry! Next coffee is on us.")
    codes = [u["code"] for c in (first,) for u in c["unlocks"]]
    codes += [u["code"] for u in person.wallet() if u["status"] == "active"][:2]
    redeemed = codes[0]
    staff.redeem(redeemed, venue_a["id"])
    with pytest.raises(ApiError):
        staff.redeem(redeemed)  # already redeemed: a refused attempt
    with pytest.raises(ApiError):
        other_owner.redeem(codes[1])  # a rival tries the person's code
    return {
        "venues": [venue_a, venue_b],
        "offers": [coffee, second, measured],
        "person": person,
        "handle": handle,
        "others": others,
    }


def figures(owner: Client, offers: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure a merchant reads about its offers."""
    analyst = owner.with_token(owner.create_key("analyst")["api_key"])
    out: dict[str, Any] = {
        "leaks": analyst.leak_report(),
        "redemptions": {g: analyst.redemption_report(g) for g in ("day", "venue", "offer")},
        "responsiveness": analyst.responsiveness(),
    }
    for offer in offers:
        out[offer["id"]] = {
            "funnel": analyst.offer_funnel(offer["id"]),
            "leaks": analyst.leak_report(offer_id=offer["id"]),
            "health": analyst.offer_health(offer["id"]),
        }
        if offer["holdout_pct"]:
            out[offer["id"]]["lift"] = analyst.offer_lift(offer["id"])
    return out


# ---- export -----------------------------------------------------------------------------------


def test_export_is_everything_kept_about_the_caller(
    api: Client, owner: Client, other_owner: Client
) -> None:
    world = build(api, owner, other_owner)
    person: Client = world["person"]
    export = person.export_me()
    assert list(export) == ["exported_at", *privacy.EXPORT_SECTIONS]
    assert export["account"]["handle"] == world["handle"]
    assert "password_hash" not in export["account"]
    checkins = export["checkins"]
    assert len(checkins) == 5
    sofa = next(c for c in checkins if c["fix"]["lat"] > 60.19)
    assert sofa["status"] == "rejected"
    assert sofa["fix"]["lat"] == pytest.approx(60.1699 + 2400 / 111_000)
    assert sofa["fix"]["device_id"] == "person-phone"
    assert {d["device_id"] for d in export["devices"]} == {SHARED_DEVICE, "person-phone"}
    wallet = {u["code"].replace("-", "") for u in person.wallet()}
    assert {u["code"] for u in export["unlocks"]} == wallet
    assert len(export["redemptions"]) == 1
    assert export["cards"][0]["uid"] == "04a1b2c3d4e5f6"
    assert export["cards"][0]["label"] == "my wristband"
    assert export["impressions"] and export["tokens"]
    assert all("secret_hash" not in t and "lookup" not in t for t in export["tokens"])
    [feedback] = export["feedback"]
    assert (feedback["rating"], feedback["comment"]) == (2, COMMENT)
    assert [r["body"] for r in feedback["replies"]] == ["Sorry! Next coffee is on us."]
    # Only the caller's own data: another user's export has none of it.
    theirs = world["others"][0].export_me()
    assert not {c["id"] for c in theirs["checkins"]} & {c["id"] for c in checkins}


def test_a_heavy_users_export_streams_through_a_server_side_cursor(
    app: Flask, client: FlaskClient, api: Client, owner: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    token = api.create_user("heavy", "pass-word-1")["token"]
    user = api.with_token(token)
    at(user, venue, device_id="heavy-phone")
    n = 20_000
    sql(
        app,
        "INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at,"
        " mock_location, presence_code_sent, device_id, status, created_at)"
        " SELECT gen_random_uuid(), c.user_id, c.venue_id, c.location, c.accuracy_m,"
        "  c.observed_at - make_interval(mins => g), false, false, c.device_id, 'verified',"
        "  c.created_at - make_interval(mins => g)"
        " FROM checkins c, generate_series(1, :n) g",
        n=n,
    )
    monkeypatch.setattr(privacy, "EXPORT_FETCH", 1000)
    response = client.get(
        "/v1/me/export", headers={"Authorization": f"Bearer {token}"}, buffered=False
    )
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Cache-Control"] == "no-store"
    pieces = iter(response.response)
    received = []
    cursor_seen = False
    for piece in pieces:
        received.append(piece)
        if len(received) == 14:  # mid-stream, inside the check-ins: a cursor is open
            open_cursors = sql(app, "SELECT statement FROM pg_cursors")
            cursor_seen = any("FROM checkins c JOIN venues" in r.statement for r in open_cursors)
    response.close()
    assert cursor_seen
    body = b"".join(p if isinstance(p, bytes) else p.encode() for p in received)
    document = json.loads(body)
    assert len(document["checkins"]) == n + 1
    assert len({c["id"] for c in document["checkins"]}) == n + 1
    # the check-ins come in pieces of EXPORT_FETCH rows, not one string of the whole history
    assert len(received) > n // 1000


def test_export_needs_a_user_token(api: Client, owner: Client) -> None:
    for client in (api, owner):
        with pytest.raises(ApiError) as error:
            client.export_me()
        assert error.value.response.status == 401


# ---- erasure ----------------------------------------------------------------------------------


def test_erasure_removes_the_person_and_keeps_every_merchant_figure(
    app: Flask, api: Client, owner: Client, other_owner: Client
) -> None:
    world = build(api, owner, other_owner)
    person: Client = world["person"]
    user_id = person.export_me()["account"]["id"]
    # A wrong presence code and a failed sign-in leave rows that name the device and the handle.
    with pytest.raises(ApiError):
        api.login(world["handle"], "not-the-password")
    sql(
        app,
        "INSERT INTO presence_code_attempts (id, venue_id, user_id, device_id, outcome)"
        " VALUES (gen_random_uuid(), :v, :u, 'guessing-phone', 'wrong') RETURNING id",
        v=world["venues"][0]["id"],
        u=user_id,
    )
    before = figures(owner, world["offers"])
    counted = sql(
        app,
        "SELECT (SELECT count(*) FROM checkins WHERE user_id = :u) AS checkins,"
        " (SELECT count(*) FROM unlocks WHERE user_id = :u) AS unlocks,"
        " (SELECT count(*) FROM impressions WHERE user_id = :u) AS impressions",
        u=user_id,
    )[0]

    person.delete_me()

    # The token stops at once, the handle and password no longer sign in.
    for attempt in (person.export_me, person.wallet, lambda: at(person, world["venues"][0])):
        with pytest.raises(ApiError) as error:
            attempt()
        assert error.value.response.status == 401
    with pytest.raises(ApiError) as error:
        api.login(world["handle"], "pass-word-1")
    assert error.value.response.status == 401

    # Every figure merchants read is the same.
    assert figures(owner, world["offers"]) == before

    # The person is gone from every row; the rows merchants count stay.
    account = sql(app, "SELECT * FROM users WHERE id = :u", u=user_id)[0]
    assert (account.handle, account.password_hash) == (None, None)
    assert account.erased_at is not None
    rows = sql(
        app,
        "SELECT c.device_id, c.coarsened_at, c.venue_distance_m,"
        " ST_Equals(c.location::geometry, v.location::geometry) AS at_venue"
        " FROM checkins c JOIN venues v ON v.id = c.venue_id WHERE c.user_id = :u",
        u=user_id,
    )
    assert len(rows) == counted.checkins
    assert all(r.at_venue and r.coarsened_at is not None for r in rows)
    assert all(r.device_id is None or r.device_id.startswith("erased:") for r in rows)
    assert SHARED_DEVICE not in {r.device_id for r in rows}
    assert max(r.venue_distance_m for r in rows) == pytest.approx(2400, rel=0.01)
    assert sql(app, "SELECT count(*) AS n FROM unlocks WHERE user_id = :u", u=user_id)[0].n == (
        counted.unlocks
    )
    left = sql(
        app,
        "SELECT (SELECT count(*) FROM user_tokens WHERE user_id = :u) AS tokens,"
        " (SELECT count(*) FROM member_codes WHERE user_id = :u) AS member_codes,"
        " (SELECT count(*) FROM idempotency_records WHERE principal = 'user:' || :u) AS keys,"
        " (SELECT count(*) FROM impressions WHERE user_id = :u) AS impressions,"
        " (SELECT count(*) FROM user_cards WHERE user_id = :u"
        "   AND (uid <> '\\x00000000000000'::bytea OR label IS NOT NULL OR deleted_at IS NULL))"
        "   AS live_cards",
        u=user_id,
    )[0]
    assert (left.tokens, left.member_codes, left.keys, left.live_cards) == (0, 0, 0, 0)
    assert left.impressions == counted.impressions
    # The comment is erased; the rating stays counted (the responsiveness report above).
    [feedback] = sql(app, "SELECT rating, comment FROM feedback WHERE user_id = :u", u=user_id)
    assert (feedback.rating, feedback.comment) == (2, None)
    attempts = sql(
        app,
        "SELECT (SELECT count(*) FROM sign_in_attempts WHERE handle = lower(:h)"
        "   AND created_at <= (SELECT erased_at FROM users WHERE id = :u)) AS sign_ins,"
        " (SELECT string_agg(device_id, ',') FROM presence_code_attempts WHERE user_id = :u)"
        "   AS devices",
        h=world["handle"],
        u=user_id,
    )[0]
    assert attempts.sign_ins == 0  # (the sign-in tried above, after the erasure, has its row)
    assert attempts.devices.startswith("erased:") and "guessing-phone" not in attempts.devices
    # Audited without the erased data: counts only.
    record = sql(app, "SELECT * FROM account_erasures WHERE user_id = :u", u=user_id)
    assert len(record) == 1 and record[0].actor == "user"
    assert record[0].counts["checkins"] == counted.checkins
    assert record[0].counts["cards"] == 1
    flat = json.dumps(record[0].counts)
    assert world["handle"] not in flat and SHARED_DEVICE not in flat
    # The handle is free again, for someone else.
    api.create_user(world["handle"], "another-pass-1")


def test_erasure_is_idempotent_and_one_transaction(app: Flask, api: Client, owner: Client) -> None:
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    user, _handle = new_user(api)
    at(user, venue, device_id="d-1")
    user_id = uuid.UUID(user.export_me()["account"]["id"])
    with app.app_context():
        first = privacy.erase_user(db.unit_of_work(), user_id, "operator:test")
        assert first.erased and first.counts["checkins"] == 1
        again = privacy.erase_user(db.unit_of_work(), user_id, "operator:test")
        assert not again.erased
    assert len(sql(app, "SELECT 1 FROM account_erasures WHERE user_id = :u", u=user_id)) == 1

    # A failure half way leaves the account as it was: nothing of it is erased.
    other, _ = new_user(api)
    at(other, venue, device_id="d-2")
    other_id = uuid.UUID(other.export_me()["account"]["id"])
    boom = text("SELECT 1/0")
    steps = privacy._ERASE_STEPS
    try:
        privacy._ERASE_STEPS = (*steps[:4], ("boom", boom), *steps[4:])
        with app.app_context(), pytest.raises(Exception, match="division by zero"):
            privacy.erase_user(db.unit_of_work(), other_id, "operator:test")
    finally:
        privacy._ERASE_STEPS = steps
    assert other.export_me()["checkins"][0]["fix"]["device_id"] == "d-2"


def test_an_erased_account_cannot_check_in_even_when_the_request_was_in_flight(
    committed_app: Flask, committed_api: Client, committed_owner: Client
) -> None:
    """Real parallel requests: a check-in that authenticated before the erasure committed either
    commits first (and is then coarsened) or is refused; never a precise fix after it."""
    venue = committed_owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    results: list[Any] = []
    for _ in range(6):
        user, _handle = new_user(committed_api)
        user_id = user.export_me()["account"]["id"]
        barrier = threading.Barrier(2)

        def check_in(u: Client = user, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                results.append(at(u, venue, device_id="racing"))
            except ApiError as error:
                results.append(error.response.status)

        def erase(u: Client = user, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            u.delete_me()

        threads = [threading.Thread(target=check_in), threading.Thread(target=erase)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        precise = sql(
            committed_app,
            "SELECT count(*) AS n FROM checkins WHERE user_id = :u"
            " AND (coarsened_at IS NULL OR device_id = 'racing')",
            u=user_id,
        )[0].n
        assert precise == 0
    assert all(r == 401 or r["status"] == "verified" for r in results)


# ---- retention --------------------------------------------------------------------------------


def test_retention_coarsens_old_fixes_and_keeps_the_figures(
    committed_app: Flask,
    committed_api: Client,
    committed_owner: Client,
) -> None:
    other_owner = committed_api.with_token(
        committed_api.create_merchant("Rival", "r@example.com")["api_key"]
    )
    world = build(committed_api, committed_owner, other_owner)
    offers = world["offers"]
    sql(
        committed_app,
        "INSERT INTO idempotency_records (principal, key, request_hash, created_at)"
        " VALUES ('user:x', 'old', '\\x00', now() - interval '25 hours'),"
        " ('user:x', 'fresh', '\\x00', now() - interval '23 hours')",
    )
    sql(
        committed_app,
        "INSERT INTO rate_limit_counters (key, hits, expires_at) VALUES"
        " ('old', 1, now() - interval '1 second'), ('live', 1, now() + interval '1 minute')",
    )
    sql(
        committed_app,
        "INSERT INTO sign_in_attempts (id, handle, source, outcome, created_at) VALUES"
        " (gen_random_uuid(), 'someone', '192.0.2.1', 'failed', now() - interval '31 days'),"
        " (gen_random_uuid(), 'someone', '192.0.2.1', 'failed', now() + interval '2 days')",
    )
    sql(
        committed_app,
        "INSERT INTO presence_code_attempts (id, venue_id, user_id, device_id, outcome)"
        " VALUES (gen_random_uuid(), :v, NULL, 'guessing-phone', 'wrong')",
        v=world["venues"][0]["id"],
    )
    sql(
        committed_app,
        "INSERT INTO user_tokens (id, user_id, lookup, secret_hash, expires_at, revoked_at)"
        " SELECT gen_random_uuid(), (SELECT min(id::text)::uuid FROM users), 'dead-' || n,"
        " '\\x00', now() + e, now() + r FROM (VALUES (1, interval '-1 second', NULL::interval),"
        " (2, interval '1 day', interval '-1 second')) AS t(n, e, r)",
    )
    live_tokens = sql(committed_app, "SELECT count(*) AS n FROM user_tokens")[0].n - 2
    before = figures(committed_owner, offers)
    engine = committed_app.extensions["engine"]

    # Today nothing is old enough.
    report = privacy.apply_retention(engine)
    assert report.ran and report.coarsened == 0
    assert report.idempotency_records == 1 and report.rate_limit_counters >= 1
    # An expired and a revoked token are deleted; the live ones stay.
    assert report.user_tokens == 2
    assert sql(committed_app, "SELECT count(*) AS n FROM user_tokens")[0].n == live_tokens

    # 31 days from now, every check-in is, in batches.
    later = datetime.now(UTC) + timedelta(days=31)
    report = privacy.apply_retention(engine, now=later, batch=7)
    total = sql(committed_app, "SELECT count(*) AS n FROM checkins")[0].n
    assert report.coarsened == total and report.batches == total // 7 + 1
    rows = sql(
        committed_app,
        "SELECT c.device_id, ST_Equals(c.location::geometry, v.location::geometry) AS at_venue"
        " FROM checkins c JOIN venues v ON v.id = c.venue_id",
    )
    assert all(r.device_id is None and r.at_venue for r in rows)
    assert privacy.apply_retention(engine, now=later).coarsened == 0  # idempotent

    after = figures(committed_owner, offers)
    # Device ids are gone after the retention period: the count of shared devices with them.
    for report_ in (before["leaks"], after["leaks"]):
        report_["strikes"].pop("shared_devices")
    for offer in offers:
        for report_ in (before[offer["id"]]["leaks"], after[offer["id"]]["leaks"]):
            report_["strikes"].pop("shared_devices")
    assert after == before
    keys = sql(committed_app, "SELECT key FROM idempotency_records ORDER BY key")
    assert [k.key for k in keys] == ["fresh", "k-1"]
    assert {r.key for r in sql(committed_app, "SELECT key FROM rate_limit_counters")} >= {"live"}
    assert "old" not in {r.key for r in sql(committed_app, "SELECT key FROM rate_limit_counters")}
    # The guess limits' rows: a sign-in row lasts 30 days (the one of "31 days" later is 29
    # days old), a wrong code keeps no device.
    assert sql(committed_app, "SELECT count(*) AS n FROM sign_in_attempts")[0].n == 1
    assert (
        sql(
            committed_app,
            "SELECT count(*) AS n FROM presence_code_attempts WHERE device_id IS NOT NULL",
        )[0].n
        == 0
    )


def test_one_retention_run_at_a_time(committed_app: Flask) -> None:
    engine = committed_app.extensions["engine"]
    with engine.connect() as holder:
        holder.execute(
            text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"), {"k": privacy.JOB_LOCK_KEY}
        )
        assert not privacy.apply_retention(engine).ran
        holder.execute(
            text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"),
            {"k": privacy.JOB_LOCK_KEY},
        )
        holder.commit()
    assert privacy.apply_retention(engine).ran


# ---- analysts ---------------------------------------------------------------------------------


def test_analysts_see_no_raw_point_device_id_or_handle(
    app: Flask, api: Client, owner: Client, other_owner: Client
) -> None:
    world = build(api, owner, other_owner)
    with app.app_context():
        session = db.session()
        session.execute(text("SET LOCAL ROLE checkin_offers_analyst"))
        columns = {
            (r.table_name, r.column_name)
            for r in session.execute(
                text(
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = 'analytics'"
                )
            )
        }
        names = {c for _, c in columns}
        assert not names & {"device_id", "handle", "password_hash", "lat", "lon"}
        # Points are ~1 km cells: on the grid of CELL_DEGREES, never the fix itself.
        points = session.execute(
            text(
                "SELECT ST_X(location::geometry) AS x, ST_Y(location::geometry) AS y"
                " FROM analytics.checkins UNION ALL"
                " SELECT ST_X(checkin_location::geometry), ST_Y(checkin_location::geometry)"
                " FROM analytics.unlocks"
            )
        ).all()
        assert points
        step = privacy.CELL_DEGREES
        for p in points:
            assert round(p.x / step) * step == pytest.approx(p.x, abs=1e-9)
            assert round(p.y / step) * step == pytest.approx(p.y, abs=1e-9)
        for forbidden in (
            "SELECT location FROM checkins",
            "SELECT device_id FROM checkins",
            "SELECT handle FROM users",
            "SELECT uid FROM user_cards",
            "SELECT * FROM account_erasures",
        ):
            savepoint = session.begin_nested()
            with pytest.raises(ProgrammingError, match="permission denied"):
                session.execute(text(forbidden))
            savepoint.rollback()
    assert world["person"].export_me()["checkins"]


def test_the_service_runs_the_retention_job_by_itself(committed_app: Flask) -> None:
    from api import jobs

    sql(
        committed_app,
        "INSERT INTO idempotency_records (principal, key, request_hash, created_at)"
        " VALUES ('user:y', 'stale', '\\x00', now() - interval '3 days')",
    )
    stop = jobs.start_retention(committed_app, first_delay_s=0.01)
    assert stop is not None
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while sql(committed_app, "SELECT 1 FROM idempotency_records WHERE key = 'stale'"):
            assert datetime.now(UTC) < deadline, "the job did not run"
            threading.Event().wait(0.1)
    finally:
        stop.set()
    off = dict(committed_app.config, RETENTION_JOB_ENABLED=False)
    assert jobs.start_retention(type("App", (), {"config": off})()) is None  # type: ignore[arg-type]


def test_the_retention_defaults_live_in_core_privacy() -> None:
    from api.config import load

    settings = load({"DATABASE_URL": "postgresql://x@localhost:5432/x"})
    assert settings["RETENTION_DAYS"] == privacy.RETENTION_DAYS
    assert settings["RETENTION_INTERVAL_MINUTES"] == privacy.RETENTION_INTERVAL_MINUTES


def test_rules_that_count_old_visits_count_coarsened_ones(
    committed_app: Flask, committed_api: Client, committed_owner: Client
) -> None:
    """nth visit and top visitor read a user's earlier visits: coarsened, they still count."""
    venue = committed_owner.create_venue(venue_body(location=A, checkin_cooldown_minutes=0))
    nth = committed_owner.create_offer(
        offer_body(
            [venue["id"]], title="Third", rule={"kind": "nth_visit", "visits": 3}, per_user_cap=1
        )
    )
    top = committed_owner.create_offer(
        offer_body(
            [venue["id"]],
            title="Top",
            rule={"kind": "top_visitor", "window_days": 60, "min_visits": 3},
            per_user_cap=1,
        )
    )
    regular, _ = new_user(committed_api)
    casual, _ = new_user(committed_api)
    for _ in range(2):
        at(regular, venue, device_id="regular-phone")
    at(casual, venue)
    # The visits are 40 days old: the job coarsens them.
    sql(committed_app, "UPDATE checkins SET created_at = created_at - interval '40 days'")
    report = privacy.apply_retention(committed_app.extensions["engine"])
    assert report.coarsened == 3
    for offer in (nth, top):
        committed_owner.activate_offer(offer["id"])
    unlocked = {u["title"] for u in at(regular, venue)["unlocks"]}
    assert unlocked == {"Third", "Top"}
    assert {u["title"] for u in at(casual, venue)["unlocks"]} == set()
