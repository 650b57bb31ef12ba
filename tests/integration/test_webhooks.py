"""Webhooks for real: committed check-ins, unlocks and redemptions reach a real HTTP receiver on
loopback, signed so that the receiver-side `standardwebhooks` library verifies them; a rolled-back
check-in sends nothing; retries keep the webhook-id; parallel workers never send one delivery
twice at once; and URLs that point inside the network are refused, at registration and again at
delivery.

Delivery tests commit (`committed_app`, a database of its own emptied after each test): the
worker reads the outbox on connections of its own, as in production.
"""

from __future__ import annotations

import secrets
import ssl
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker
from standardwebhooks.webhooks import Webhook

from core import webhooks
from core.delivery import BATCH, Connections, Worker
from core.uow import UnitOfWork, make_engine
from mobile_stub.client import ApiError, Client
from offers.checkins import CheckinInput, check_in
from tests.factories import offer_body, venue_body
from tests.receiver import Receiver
from tests.waiting import wait_for

DEV = webhooks.UrlPolicy(allow_http_loopback=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def dev_app(committed_app: Flask) -> Flask:
    committed_app.config["WEBHOOKS_ALLOW_HTTP_LOOPBACK"] = True
    return committed_app


@pytest.fixture
def owner(dev_app: Flask, committed_owner: Client) -> Client:
    return committed_owner


@pytest.fixture
def worker(dev_app: Flask) -> Worker:
    return Worker(dev_app.extensions["sessionmaker"], DEV, threads=1, idle_sleep_s=0.05)


def _venue_with_offer(owner: Client) -> dict[str, Any]:
    venue: dict[str, Any] = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    owner.activate_offer(owner.create_offer(offer_body([venue["id"]]))["id"])
    return venue


def _user(api: Client) -> tuple[Client, str]:
    created = api.create_user(f"u{secrets.token_hex(4)}", "correct horse")
    return api.with_token(created["token"]), created["user"]["id"]


def _check_in(user: Client, venue: dict[str, Any]) -> dict[str, Any]:
    lon, lat = venue["location"]["coordinates"]
    return user.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())


def _sql(app: Flask, sql: str, **params: Any) -> Any:
    with app.extensions["engine"].begin() as conn:
        return conn.execute(text(sql), params).all()


def _make_due(app: Flask) -> None:
    _sql(
        app,
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending' RETURNING id",
    )


def test_a_committed_checkin_unlock_and_redemption_are_delivered_signed(
    owner: Client, committed_api: Client, receiver: Receiver, worker: Worker
) -> None:
    hook = owner.create_webhook(receiver.url(), ["checkin.verified", "unlock.created"])
    assert hook["secret"].startswith("whsec_") and hook["status"] == "active"
    assert "secret" not in owner.list_webhooks()[0]  # shown once
    redemptions = owner.create_webhook(receiver.url("/till"), ["redemption.created"])
    venue = _venue_with_offer(owner)
    user, _ = _user(committed_api)
    result = _check_in(user, venue)
    (unlock,) = result["unlocks"]

    assert worker.drain() == 2
    payloads = receiver.verified(hook["secret"])
    by_type = {p["type"]: p for p in payloads}
    assert set(by_type) == {"checkin.verified", "unlock.created"}
    assert by_type["checkin.verified"]["data"]["id"] == result["id"]
    assert by_type["checkin.verified"]["data"]["unlock_ids"] == [unlock["id"]]
    assert by_type["unlock.created"]["data"]["id"] == unlock["id"]
    assert by_type["unlock.created"]["data"]["checkin_id"] == result["id"]
    assert "code" not in by_type["unlock.created"]["data"]  # the code is the user's secret
    for p in payloads:
        assert set(p) == {"type", "timestamp", "data"}
    deliveries = owner.webhook_deliveries(hook["id"])
    assert {d["status"] for d in deliveries} == {"delivered"}
    assert {d["webhook_id"] for d in deliveries} == {
        h["webhook-id"] for _, h, _ in receiver.requests
    }

    redemption = owner.redeem(unlock["code"], venue["id"])
    assert worker.drain() == 1
    path, headers, body = receiver.requests[-1]
    assert path == "/till"
    payload = Webhook(redemptions["secret"]).verify(body, headers)
    assert payload["type"] == "redemption.created"
    assert payload["data"]["id"] == redemption["id"]
    assert payload["data"]["unlock_id"] == unlock["id"]
    with pytest.raises(Exception, match="signature"):  # another endpoint's secret does not fit
        Webhook(hook["secret"]).verify(body, headers)


def test_feedback_on_a_visit_is_delivered_without_the_user(
    owner: Client, committed_api: Client, receiver: Receiver, worker: Worker
) -> None:
    hook = owner.create_webhook(receiver.url(), ["feedback.created"])
    venue = _venue_with_offer(owner)
    user, _ = _user(committed_api)
    visit = _check_in(user, venue)
    given = user.give_feedback(visit["id"], 4, "Quick and friendly.")

    assert worker.drain() == 1  # the check-in and unlock events had no subscriber
    (payload,) = receiver.verified(hook["secret"])
    assert payload["type"] == "feedback.created"
    assert payload["data"]["id"] == given["id"]
    assert payload["data"]["checkin_id"] == visit["id"]
    assert (payload["data"]["rating"], payload["data"]["comment"]) == (4, "Quick and friendly.")
    assert "user_id" not in payload["data"]


def test_a_rolled_back_checkin_sends_nothing(
    dev_app: Flask, owner: Client, committed_api: Client, receiver: Receiver, worker: Worker
) -> None:
    owner.create_webhook(receiver.url(), list(webhooks.EVENT_TYPES))
    venue = _venue_with_offer(owner)
    _, user_id = _user(committed_api)
    uow = UnitOfWork(dev_app.extensions["sessionmaker"])
    with uow:
        with uow.held():  # as under an Idempotency-Key: the holder commits, or nothing does
            result = check_in(
                uow,
                uuid.UUID(user_id),
                CheckinInput(uuid.UUID(venue["id"]), 60.1699, 24.9384, 10, datetime.now(UTC)),
            )
        assert result.status == "verified" and result.unlocks
        written = uow.session.execute(text("SELECT count(*) FROM webhook_deliveries")).scalar()
        assert written == 2  # in the outbox, inside the transaction ...
        # ... which ends here without a commit
    assert worker.drain() == 0
    assert receiver.requests == []
    assert _sql(dev_app, "SELECT count(*) FROM webhook_events")[0][0] == 0


def test_nothing_is_stored_for_a_merchant_without_a_subscribed_endpoint(
    dev_app: Flask, owner: Client, committed_api: Client, receiver: Receiver
) -> None:
    owner.create_webhook(receiver.url(), ["redemption.created"])
    user, _ = _user(committed_api)
    _check_in(user, _venue_with_offer(owner))
    assert _sql(dev_app, "SELECT count(*) FROM webhook_events")[0][0] == 0


def test_retries_keep_the_webhook_id_until_delivered(
    dev_app: Flask, owner: Client, committed_api: Client, receiver: Receiver, worker: Worker
) -> None:
    hook = owner.create_webhook(receiver.url(), ["checkin.verified"])
    receiver.answers = [500, 503]
    user, _ = _user(committed_api)
    _check_in(user, _venue_with_offer(owner))
    assert worker.drain() == 1  # failed; the retry is not due yet
    (delivery,) = owner.webhook_deliveries(hook["id"])
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    assert delivery["last_status_code"] == 500
    retry_in = datetime.fromisoformat(delivery["next_attempt_at"]) - datetime.fromisoformat(
        delivery["recent_attempts"][0]["attempted_at"]
    )
    assert 0 < retry_in.total_seconds() <= 60  # the first retry within a minute
    for _ in range(2):
        _make_due(dev_app)
        assert worker.drain() == 1
    ids = {headers["webhook-id"] for _, headers, _ in receiver.requests}
    assert ids == {delivery["webhook_id"]}
    assert len(receiver.requests) == 3
    assert len({body for *_, body in receiver.requests}) == 1  # the same body every time
    assert len(receiver.verified(hook["secret"])) == 3  # each attempt signed afresh, valid
    (delivery,) = owner.webhook_deliveries(hook["id"])
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["recent_attempts"]] == [200, 503, 500]


def test_after_the_retry_window_the_endpoint_is_failing_and_the_owner_replays(
    dev_app: Flask, owner: Client, committed_api: Client, receiver: Receiver, worker: Worker
) -> None:
    hook = owner.create_webhook(receiver.url(), ["checkin.verified"])
    receiver.answers = [500]
    user, _ = _user(committed_api)
    _check_in(user, _venue_with_offer(owner))
    _sql(
        dev_app,
        "UPDATE webhook_deliveries SET give_up_at = now() - interval '1 second' RETURNING id",
    )
    assert worker.drain() == 1
    (delivery,) = owner.webhook_deliveries(hook["id"])
    assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
    (listed,) = owner.list_webhooks()
    assert listed["status"] == "failing" and listed["failing_since"]

    assert owner.replay_webhook_delivery(hook["id"], delivery["id"]) == {"status": "pending"}
    assert worker.drain() == 1
    (again,) = owner.webhook_deliveries(hook["id"])
    assert again["status"] == "delivered" and again["webhook_id"] == delivery["webhook_id"]
    assert owner.list_webhooks()[0]["status"] == "active"
    actions = [e["action"] for e in owner.audit_trail()["events"]]
    assert "webhook_delivery.replay" in actions and "webhook.create" in actions


def test_redirects_are_not_followed_and_a_slow_receiver_times_out_then_recovers(
    dev_app: Flask, owner: Client, committed_api: Client, receiver: Receiver
) -> None:
    hook = owner.create_webhook(receiver.url(), ["checkin.verified"])
    worker = Worker(dev_app.extensions["sessionmaker"], DEV, read_timeout_s=0.3)
    receiver.answers = [302]
    user, _ = _user(committed_api)
    _check_in(user, _venue_with_offer(owner))
    assert worker.drain() == 1
    assert [p for p, _, _ in receiver.requests] == ["/hook"]  # never /elsewhere
    (delivery,) = owner.webhook_deliveries(hook["id"])
    assert delivery["status"] == "pending"
    assert delivery["last_error"] == "redirects are not followed"

    receiver.delay = 1.0
    _make_due(dev_app)
    started = time.monotonic()
    assert worker.drain() == 1
    assert time.monotonic() - started < 0.9
    (delivery,) = owner.webhook_deliveries(hook["id"])
    assert delivery["status"] == "pending" and "timed out" in delivery["last_error"].lower()

    receiver.delay = 0.0
    _make_due(dev_app)
    assert worker.drain() == 1
    (delivery,) = owner.webhook_deliveries(hook["id"])
    assert delivery["status"] == "delivered"
    assert {h["webhook-id"] for _, h, _ in receiver.requests} == {delivery["webhook_id"]}


def test_delivery_checks_the_address_again_and_refuses_a_private_one(
    dev_app: Flask, owner: Client, committed_api: Client, receiver: Receiver
) -> None:
    """DNS may change between registration and delivery: the worker resolves again, refuses
    a private address, and never connects."""
    hook = owner.create_webhook(receiver.url(), ["checkin.verified"])
    user, _ = _user(committed_api)
    _check_in(user, _venue_with_offer(owner))
    rebound = Worker(
        dev_app.extensions["sessionmaker"], DEV, resolver=lambda host, port: ["10.0.0.7"]
    )
    assert rebound.drain() == 1
    assert receiver.requests == []
    (delivery,) = owner.webhook_deliveries(hook["id"])
    assert delivery["status"] == "pending"
    assert delivery["last_error"].startswith("refused:") and "10.0.0.7" in delivery["last_error"]


def test_one_kept_alive_connection_while_the_checked_address_holds(
    dev_app: Flask, owner: Client, committed_api: Client
) -> None:
    """Deliveries to one receiver reuse one connection (per worker thread), the address still
    checked before every one; an error answer closes it; an address that changed is never
    reached through the connection kept to the old one."""
    receiver = Receiver(keep_alive=True)
    try:
        owner.create_webhook(receiver.url(), ["checkin.verified"])
        venue = _venue_with_offer(owner)
        resolved: list[str] = []
        answer = ["127.0.0.1"]

        def resolver(host: str, port: int) -> list[str]:
            resolved.append(host)
            return list(answer)

        worker = Worker(dev_app.extensions["sessionmaker"], DEV, resolver=resolver)
        for _ in range(3):
            _check_in(_user(committed_api)[0], venue)
        receiver.answers = [200, 500, 200]
        assert worker.drain() == 3
        assert len(resolved) == 3  # checked before every attempt
        first, second, third = receiver.peers
        assert first == second  # kept alive after the 200
        assert third != second  # the 500 closed it
        _make_due(dev_app)
        assert worker.drain() == 1
        assert len(receiver.peers) == 4 and receiver.peers[3] != third  # drain() closes its own

        connections = Connections()
        single = Worker(dev_app.extensions["sessionmaker"], DEV, resolver=resolver, batch=1)
        for _ in range(2):
            _check_in(_user(committed_api)[0], venue)
        assert single.run_once(connections) == 1 and len(connections) == 1
        answer[:] = ["127.0.0.2"]  # DNS changed: the kept connection is not used, but closed
        assert single.run_once(connections) == 1 and len(connections) == 0
        assert len(receiver.requests) == 5  # nothing listens at 127.0.0.2: not delivered
        deliveries = owner.webhook_deliveries(owner.list_webhooks()[0]["id"])
        assert sum(d["status"] == "pending" for d in deliveries) == 1
        connections.close()
    finally:
        receiver.close()


def test_the_workers_statements_are_prepared_once_per_connection(
    dev_app: Flask, owner: Client, committed_api: Client, receiver: Receiver
) -> None:
    """The claim and the record are prepared on a connection's first use, then only executed;
    a rolled-back transaction keeps them (PREPARE is not undone), and a new connection (the pool
    replacing one after a restart) prepares them again. Sent whole, they do the same."""
    engine = make_engine(dev_app.config["DATABASE_URL"], pool_size=1, max_overflow=0)
    factory = sessionmaker(engine, expire_on_commit=False)
    worker = Worker(factory, DEV, threads=1)

    def prepared() -> set[str]:
        with engine.connect() as conn:  # the pool's one connection: the worker's
            return set(conn.execute(text("SELECT name FROM pg_prepared_statements")).scalars())

    try:
        hook = owner.create_webhook(receiver.url(), ["checkin.verified"])
        venue = _venue_with_offer(owner)
        _check_in(_user(committed_api)[0], venue)
        with UnitOfWork(factory) as uow:  # claimed, then rolled back: still due
            assert len(webhooks.claim_batch(uow.session, 10)) == 1
        assert prepared() == {webhooks.claim_statement(BATCH).key}
        assert worker.drain() == 1
        assert prepared() == {webhooks.claim_statement(BATCH).key, webhooks._RECORD.key}

        engine.dispose()  # a new connection
        assert prepared() == set()
        _check_in(_user(committed_api)[0], venue)
        assert worker.drain() == 1
        assert prepared() == {webhooks.claim_statement(BATCH).key, webhooks._RECORD.key}

        webhooks.PREPARED = False
        _check_in(_user(committed_api)[0], venue)
        assert worker.drain() == 1
    finally:
        webhooks.PREPARED = True
        engine.dispose()
    deliveries = owner.webhook_deliveries(hook["id"])
    assert [d["status"] for d in deliveries] == ["delivered"] * 3
    assert len(receiver.requests) == 3


def test_a_batch_is_one_endpoints_due_deliveries_and_stops_at_a_failure(
    dev_app: Flask, owner: Client, committed_api: Client, receiver: Receiver, worker: Worker
) -> None:
    """One transaction claims several due deliveries of one endpoint (its row locked: no other
    worker sends to it meanwhile, other endpoints go on), sends them one after another and
    records them together; a failed attempt ends the batch, the rest stay due."""
    busy = owner.create_webhook(receiver.url("/busy"), ["checkin.verified"])
    owner.create_webhook(receiver.url("/other"), ["unlock.created"])
    venue = _venue_with_offer(owner)
    for _ in range(3):
        _check_in(_user(committed_api)[0], venue)
    holder = dev_app.extensions["sessionmaker"]()
    held = []
    while not held or held[0].endpoint_id != uuid.UUID(busy["id"]):
        holder.rollback()
        held = webhooks.claim_batch(holder, 10)  # the oldest first: retry until it is /busy's
    assert len(held) == 3 and {c.endpoint_id for c in held} == {uuid.UUID(busy["id"])}
    assert worker.drain() == 3  # /other's three, none of /busy's while held
    assert {p for p, _, _ in receiver.requests} == {"/other"}
    holder.rollback()
    holder.close()

    receiver.answers = [200, 500]
    assert worker.run_once() == 2  # delivered, then the 500 ends the batch
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    deliveries = owner.webhook_deliveries(busy["id"])
    assert sorted(d["status"] for d in deliveries) == ["delivered", "delivered", "pending"]
    assert [d["last_status_code"] for d in deliveries if d["status"] == "pending"] == [500]
    assert receiver.overlaps == []
    signer = Webhook(busy["secret"])
    sent = [(h, b) for p, h, b in receiver.requests if p == "/busy"]
    assert len(sent) == 3 and len({h["webhook-id"] for h, _ in sent}) == 3
    for headers, body in sent:
        signer.verify(body, headers)


def test_a_claimed_delivery_is_skipped_by_other_workers_and_sent_after_a_crash(
    dev_app: Flask, owner: Client, committed_api: Client, receiver: Receiver, worker: Worker
) -> None:
    owner.create_webhook(receiver.url(), ["checkin.verified"])
    user, _ = _user(committed_api)
    _check_in(user, _venue_with_offer(owner))
    crashed = dev_app.extensions["sessionmaker"]()
    assert webhooks.claim(crashed) is not None  # a worker holds it, mid-delivery
    assert worker.drain() == 0  # the others skip it: never two attempts at once
    crashed.connection().invalidate()  # the worker dies: its connection, and lock, go
    crashed.close()
    # at least once (the server ends the dead connection's transaction a moment later)
    wait_for(worker.drain, "the delivery to be sent after the crash", timeout=10)
    assert len(receiver.requests) == 1


def test_parallel_workers_never_send_one_delivery_twice(
    dev_app: Flask, owner: Client, committed_api: Client, receiver: Receiver
) -> None:
    hooks = [owner.create_webhook(receiver.url(f"/e{i}"), ["checkin.verified"]) for i in range(3)]
    venue = _venue_with_offer(owner)
    for _ in range(6):
        user, _ = _user(committed_api)
        _check_in(user, venue)
    receiver.delay = 0.1
    factory = dev_app.extensions["sessionmaker"]
    workers = [Worker(factory, DEV, threads=3, idle_sleep_s=0.02) for _ in range(3)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = _sql(dev_app, "SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'")
        if left[0][0] == 0:
            break
        time.sleep(0.1)
    for w in workers:
        w.stop()
    sent = [(path, headers["webhook-id"]) for path, headers, _ in receiver.requests]
    assert len(sent) == 18 and len(set(sent)) == 18  # every delivery exactly once
    assert receiver.overlaps == []  # no delivery, and no endpoint, in flight twice at once
    assert receiver.max_in_flight >= 2  # while different endpoints were served in parallel
    for i, hook in enumerate(hooks):
        signer = Webhook(hook["secret"])
        for path, headers, body in receiver.requests:
            if path == f"/e{i}":
                signer.verify(body, headers)
    assert _sql(dev_app, "SELECT count(*) FROM webhook_workers")[0][0] == 0  # stopped cleanly


def _backlog(app: Flask, endpoint_id: str, n: int, age: str) -> None:
    """`n` due deliveries of one event each for the endpoint, due since `age` ago."""
    _sql(
        app,
        """
        WITH ev AS (
            INSERT INTO webhook_events (id, merchant_id, type, data)
            SELECT gen_random_uuid(), w.merchant_id, 'checkin.verified', '{}'
            FROM webhook_endpoints w, generate_series(1, :n)
            WHERE w.id = CAST(:endpoint AS uuid)
            RETURNING id
        )
        INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempts, created_at,
                                        next_attempt_at, give_up_at)
        SELECT gen_random_uuid(), ev.id, CAST(:endpoint AS uuid), 'pending', 0, now(),
               now() - CAST(:age AS interval), now() + interval '1 day'
        FROM ev RETURNING id
        """,
        endpoint=endpoint_id,
        n=n,
        age=age,
    )


def _claim_reads(app: Flask) -> tuple[int, list[str]]:
    """The shared buffers one claim reads (its generic plan, as the worker runs it), and the
    endpoints of the deliveries it claims; rolled back."""
    session = app.extensions["sessionmaker"]()
    try:
        webhooks.claim_batch(session, 10)  # prepares it on this connection
        session.rollback()
        plan = session.execute(
            text(
                "SET LOCAL plan_cache_mode = force_generic_plan;"
                f" EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {webhooks.claim_statement(10).key}"
            )
        ).scalar_one()[0]["Plan"]
        session.rollback()
        claimed = webhooks.claim_batch(session, 10)
        return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"], [
            str(c.endpoint_id) for c in claimed
        ]
    finally:
        session.rollback()
        session.close()


def test_a_held_backlog_does_not_slow_other_endpoints_claims(dev_app: Flask, owner: Client) -> None:
    """A receiver that is down or slow while its merchant's events pile up is held by one
    worker; the others' claims must not walk its backlog (they did: one skipped row each)."""
    busy = owner.create_webhook("http://127.0.0.1:9/busy", ["checkin.verified"])
    quiet = owner.create_webhook("http://127.0.0.1:9/quiet", ["checkin.verified"])
    _backlog(dev_app, busy["id"], 50, "1 hour")  # older than anything of /quiet
    _backlog(dev_app, quiet["id"], 1, "1 minute")
    holder = dev_app.extensions["sessionmaker"]()
    try:
        held = webhooks.claim_batch(holder, 10)  # a worker sending to /busy (the oldest)
        assert {str(c.endpoint_id) for c in held} == {busy["id"]}
        _, claimed = _claim_reads(dev_app)
        assert claimed == [quiet["id"]]

        _backlog(dev_app, busy["id"], 20_000, "1 hour")
        with dev_app.extensions["engine"].begin() as conn:
            conn.execute(text("ANALYZE webhook_deliveries"))
        reads, claimed = _claim_reads(dev_app)
        assert claimed == [quiet["id"]]
        # At most 64 of the held endpoint's due deliveries (a page or two of them) and one
        # index descent per endpoint with pending deliveries, whatever the backlog: 25-88
        # buffers seen here. The backlog fills about 250 pages of the table and 60 of its due
        # index; the claim that walked the due deliveries read 41,062 buffers.
        assert reads < 300, reads
    finally:
        holder.rollback()
        holder.close()


# ---- the endpoint API (rolled back per test) ----------------------------------------------------


@pytest.fixture
def plain_owner(api: Client) -> Client:
    """A merchant on the rolled-back app, which runs with the production URL policy."""
    return api.with_token(api.create_merchant("Plain Cafe", "plain@example.com")["api_key"])


def test_registration_refuses_private_plain_http_and_unknown_events(
    app: Flask, plain_owner: Client
) -> None:
    for url in (
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "http://127.0.0.1:9/hook",  # loopback without WEBHOOKS_ALLOW_HTTP_LOOPBACK
        "http://example.com/hook",
        "ftp://example.com/hook",
    ):
        with pytest.raises(ApiError) as refused:
            plain_owner.create_webhook(url, ["checkin.verified"])
        assert (refused.value.status, refused.value.code) == (422, "webhook_url_refused"), url
    with pytest.raises(ApiError) as refused:
        plain_owner.create_webhook("https://93.184.216.34/hook", ["checkin.nope"])
    assert refused.value.status == 422
    assert plain_owner.list_webhooks() == []


def test_endpoints_are_owner_only_audited_and_stopped_by_delete(
    app: Flask, plain_owner: Client, api: Client
) -> None:
    app.config["WEBHOOKS_ALLOW_HTTP_LOOPBACK"] = True
    staff = api.with_token(plain_owner.create_key("staff")["api_key"])
    with pytest.raises(ApiError) as forbidden:
        staff.create_webhook("http://127.0.0.1:9/hook", ["checkin.verified"])
    assert forbidden.value.status == 403
    hook = plain_owner.create_webhook(
        "http://127.0.0.1:9/hook", ["unlock.created", "checkin.verified"]
    )
    assert hook["events"] == ["checkin.verified", "unlock.created"]
    assert [w["id"] for w in plain_owner.list_webhooks()] == [hook["id"]]
    assert plain_owner.delete_webhook(hook["id"])["id"] == hook["id"]
    assert plain_owner.list_webhooks() == []
    with pytest.raises(ApiError) as gone:
        plain_owner.delete_webhook(hook["id"])
    assert gone.value.status == 404
    events = plain_owner.audit_trail()["events"]
    created = next(e for e in events if e["action"] == "webhook.create")
    assert "secret" not in created["changes"]
    assert hook["secret"] not in str(events)
    assert any(e["action"] == "webhook.delete" for e in events)


def test_the_limit_of_endpoints_holds(app: Flask, plain_owner: Client) -> None:
    app.config["WEBHOOKS_ALLOW_HTTP_LOOPBACK"] = True
    for i in range(webhooks.MAX_ENDPOINTS_PER_MERCHANT):
        plain_owner.create_webhook(f"http://127.0.0.1:9/h{i}", ["checkin.verified"])
    with pytest.raises(ApiError) as refused:
        plain_owner.create_webhook("http://127.0.0.1:9/one-more", ["checkin.verified"])
    assert (refused.value.status, refused.value.code) == (422, "too_many_webhooks")


def test_https_delivery_connects_to_the_checked_address_and_verifies_the_host_name(
    dev_app: Flask, owner: Client, committed_api: Client, tmp_path: Path
) -> None:
    """The worker connects to the IP it checked, yet TLS verifies the certificate for the URL's
    host name (SNI and hostname check): a certificate for another name is refused."""
    ca_key, key = _rsa(), _rsa()
    ca = _certificate("Test CA", ca_key, ca_key, None, ca=True)
    leaf = _certificate("localhost", key, ca_key, ca, ca=False, dns="localhost")
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    receiver = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    try:
        port = receiver.server.server_address[1]
        good = owner.create_webhook(f"https://localhost:{port}/hook", ["checkin.verified"])
        user, _ = _user(committed_api)
        _check_in(user, _venue_with_offer(owner))
        worker = Worker(
            dev_app.extensions["sessionmaker"],
            DEV,
            resolver=lambda host, p: ["127.0.0.1"],
            ca_certs=str(tmp_path / "ca.pem"),
        )
        assert worker.drain() == 1
        (delivery,) = owner.webhook_deliveries(good["id"])
        assert delivery["status"] == "delivered", delivery["last_error"]
        assert len(receiver.verified(good["secret"])) == 1

        owner.delete_webhook(good["id"])
        wrong = owner.create_webhook(f"https://127.0.0.1:{port}/hook", ["checkin.verified"])
        _check_in(_user(committed_api)[0], _venue_with_offer(owner))
        assert worker.drain() == 1
        (delivery,) = owner.webhook_deliveries(wrong["id"])
        assert delivery["status"] == "pending"
        assert "certificate" in delivery["last_error"].lower() or "ssl" in (
            delivery["last_error"].lower()
        )
        assert len(receiver.requests) == 1
    finally:
        receiver.close()


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate(
    name: str,
    key: rsa.RSAPrivateKey,
    signer: rsa.RSAPrivateKey,
    issuer: x509.Certificate | None,
    *,
    ca: bool,
    dns: str | None = None,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())
