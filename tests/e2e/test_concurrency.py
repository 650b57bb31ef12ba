"""Caps, single-use codes and idempotent retries hold under real parallel HTTP requests against
a real gunicorn process (4 workers x 2 threads), each request on its own connection."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import sessionmaker

from core import accounts
from core.audit import Actor
from core.uow import UnitOfWork, make_engine
from mobile_stub.client import ApiError, Client, HttpTransport
from offers import abuse
from tests.factories import offer_body, venue_body

pytestmark = pytest.mark.e2e

T = TypeVar("T")


def in_parallel(calls: list[Callable[[], T]]) -> list[T | ApiError]:
    """Run every call at once (a barrier releases them together), each with its own session."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T | ApiError:
        barrier.wait()
        try:
            return call()
        except ApiError as err:
            return err

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def client(base: str, token: str) -> Client:
    return Client(HttpTransport(base), token)


def setup_venue(live_api: Client, **offer: Any) -> tuple[Client, dict[str, Any], dict[str, Any]]:
    owner = live_api.with_token(
        live_api.create_merchant("Launch Day", "launch@example.com")["api_key"]
    )
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    created = owner.create_offer(offer_body([venue["id"]], **offer))
    return owner, venue, owner.activate_offer(created["id"])


def sign_up(live_api: Client, n: int) -> list[str]:
    return [
        live_api.create_user(f"p{secrets.token_hex(6)}", "pass-word-1")["token"] for _ in range(n)
    ]


def test_fifty_parallel_checkins_unlock_exactly_the_cap(live_server: str, live_api: Client) -> None:
    owner, venue, offer = setup_venue(live_api, total_cap=5)
    lon, lat = venue["location"]["coordinates"]
    users = [client(live_server, token) for token in sign_up(live_api, 50)]
    observed = datetime.now(UTC).isoformat()
    results = in_parallel(
        [lambda u=u: u.check_in(venue["id"], lat, lon, 10, observed) for u in users]  # type: ignore[misc]
    )
    assert all(isinstance(r, dict) and r["status"] == "verified" for r in results)
    unlocked = [r for r in results if isinstance(r, dict) and r["unlocks"]]
    assert len(unlocked) == 5
    assert owner.get_offer(offer["id"])["unlocked_count"] == 5
    assert sum(len(u.wallet()) for u in users) == 5
    assert len({r["unlocks"][0]["code"] for r in unlocked}) == 5  # type: ignore[index]


def test_twenty_parallel_redemptions_of_one_code_succeed_once(
    live_server: str, live_api: Client
) -> None:
    owner, venue, _ = setup_venue(live_api)
    [token] = sign_up(live_api, 1)
    lon, lat = venue["location"]["coordinates"]
    user = client(live_server, token)
    code = user.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())["unlocks"][0][
        "code"
    ]
    staff_key = owner.create_key("staff")["api_key"]
    tills = [client(live_server, staff_key) for _ in range(20)]
    results = in_parallel([lambda t=t: t.redeem(code) for t in tills])  # type: ignore[misc]
    outcomes = Counter(
        201 if isinstance(r, dict) else (r.status, r.code)
        for r in results  # type: ignore[union-attr]
    )
    assert outcomes == {201: 1, (409, "already_redeemed"): 19}
    assert [u["status"] for u in user.wallet()] == ["redeemed"]


def test_parallel_retries_with_one_idempotency_key_apply_once(
    live_server: str, live_api: Client
) -> None:
    owner, venue, offer = setup_venue(live_api, per_user_cap=100)
    [token] = sign_up(live_api, 1)
    lon, lat = venue["location"]["coordinates"]
    observed = datetime.now(UTC).isoformat()
    phones = [client(live_server, token) for _ in range(12)]
    results = in_parallel(
        [
            lambda p=p: p.check_in(venue["id"], lat, lon, 10, observed, idempotency_key="retry-1")  # type: ignore[misc]
            for p in phones
        ]
    )
    assert all(isinstance(r, dict) for r in results)
    assert len({r["id"] for r in results}) == 1  # type: ignore[index]
    assert all(r == results[0] for r in results)
    assert len(phones[0].wallet()) == 1
    assert owner.get_offer(offer["id"])["unlocked_count"] == 1

    code = results[0]["unlocks"][0]["code"]  # type: ignore[index]
    staff_key = owner.create_key("staff")["api_key"]
    tills = [client(live_server, staff_key) for _ in range(12)]
    redemptions = in_parallel(
        [lambda t=t: t.redeem(code, idempotency_key="till-7") for t in tills]  # type: ignore[misc]
    )
    assert all(isinstance(r, dict) for r in redemptions)
    assert len({r["id"] for r in redemptions}) == 1  # type: ignore[index]


def test_one_pairing_code_pairs_exactly_one_of_twenty_racing_devices(
    live_server: str, live_api: Client
) -> None:
    owner, venue, _offer = setup_venue(live_api)
    code = owner.create_pairing(venue["id"], "Front counter")["code"]
    devices = [client(live_server, "") for _ in range(20)]
    results = in_parallel([lambda d=d: d.pair_device(code) for d in devices])  # type: ignore[misc]
    paired = [r for r in results if not isinstance(r, ApiError)]
    refused = Counter((r.status, r.code) for r in results if isinstance(r, ApiError))
    assert len(paired) == 1, refused
    assert refused == {(422, "pairing_code_invalid"): 19}
    assert [d["id"] for d in owner.list_devices()] == [paired[0]["device"]["id"]]


def test_parallel_listings_by_one_user_make_one_impression(
    live_server: str, live_api: Client
) -> None:
    owner, venue, offer = setup_venue(live_api)
    lon, lat = venue["location"]["coordinates"]
    [token] = sign_up(live_api, 1)
    phones = [client(live_server, token) for _ in range(12)]
    listings = in_parallel([lambda p=p: p.nearby(lat, lon, radius_m=100) for p in phones])  # type: ignore[misc]
    assert all(isinstance(found, list) and found for found in listings)
    assert owner.offer_funnel(offer["id"])["impressions"] == 1


def test_two_owners_revoking_each_others_keys_at_once_leave_one(
    live_server: str, live_api: Client
) -> None:
    """Each round, two owner keys revoke each other in parallel: one revocation wins, the other
    is refused (409 `last_owner_key`, or 401 when its own key was already revoked before it
    was authenticated), and exactly one owner key is left."""
    owner = live_api.with_token(live_api.create_merchant("Co-owners", "co@example.com")["api_key"])
    [first] = owner.list_keys()
    survivor = (first["id"], owner.token or "")
    outcomes: Counter[tuple[int, str]] = Counter()
    for round_ in range(8):
        created = owner.with_token(survivor[1]).create_key("owner", f"co-owner {round_}")
        a, b = survivor, (created["id"], created["api_key"])
        results = in_parallel(
            [
                lambda x=a, y=b: client(live_server, x[1]).revoke_key(y[0]),  # type: ignore[misc]
                lambda x=a, y=b: client(live_server, y[1]).revoke_key(x[0]),  # type: ignore[misc]
            ]
        )
        won = [i for i, r in enumerate(results) if isinstance(r, dict)]
        lost = [r for r in results if isinstance(r, ApiError)]
        assert len(won) == 1 and len(lost) == 1, results
        outcomes[(lost[0].status, lost[0].code)] += 1
        survivor = a if won == [0] else b
        keys = client(live_server, survivor[1]).list_keys()
        live_owners = [k["id"] for k in keys if k["role"] == "owner" and k["revoked_at"] is None]
        assert live_owners == [survivor[0]]
    assert set(outcomes) <= {(409, "last_owner_key"), (401, "unauthorized")}
    assert outcomes[(409, "last_owner_key")] >= 1


def test_parallel_revocations_by_the_operator_never_leave_a_merchant_without_an_owner(
    live_database_url: str, live_api: Client
) -> None:
    """The use case itself, from two threads on two connections with real commits: the operator's
    revocations take no lock on a key through the audit trail (its actor is no key), so only the
    merchant lock stands between two "is there another owner?" checks that both say yes."""
    engine = make_engine(live_database_url)
    uow = lambda: UnitOfWork(sessionmaker(engine, expire_on_commit=False))  # noqa: E731
    operator = Actor.operator("race-test")
    try:
        for _ in range(8):
            owner = live_api.with_token(
                live_api.create_merchant("Race", "race@example.com")["api_key"]
            )
            merchant_id = uuid.UUID(owner.me()["id"])
            owner.create_key("owner")
            keys = [uuid.UUID(k["id"]) for k in owner.list_keys()]
            results = in_parallel(
                [
                    lambda k=k, m=merchant_id: _revoke_or_refusal(uow(), operator, m, k)  # type: ignore[misc]
                    for k in keys
                ]
            )
            assert sorted(results) == ["last_owner_key", "revoked"], results
            with engine.connect() as conn:
                live = conn.execute(
                    text(
                        "SELECT count(*) FROM api_keys WHERE merchant_id = :m"
                        " AND role = 'owner' AND revoked_at IS NULL"
                    ),
                    {"m": merchant_id},
                ).scalar()
            assert live == 1
    finally:
        engine.dispose()


def _revoke_or_refusal(
    uow: UnitOfWork, actor: Actor, merchant_id: uuid.UUID, key_id: uuid.UUID
) -> str:
    try:
        accounts.revoke_api_key(uow, actor, merchant_id, key_id)
    except accounts.LastOwnerKeyError as refusal:
        return refusal.code
    return "revoked"


def test_a_sign_up_and_its_staff_registration_at_once_never_miss_each_other(
    live_database_url: str, live_api: Client
) -> None:
    """A merchant registers a handle as staff while its account signs up, interleaved in the
    worst order: the sign-up has inserted the account, the registration does not see it yet and
    inserts its row unlinked, the sign-up links the registrations it sees (not that one) and
    commits, then the registration commits. The handle's lock (`core.accounts.lock_handle`)
    forbids that order: the registration waits for the sign-up and finds the account. Each side
    waits for the other at its step for at most a second, so with the lock the test takes one."""
    owner = live_api.with_token(live_api.create_merchant("Staffed", "s@example.com")["api_key"])
    merchant_id = uuid.UUID(owner.me()["id"])
    handle = f"b{secrets.token_hex(6)}"
    engine = make_engine(live_database_url)
    user_inserted, registered, signed_up = (threading.Event() for _ in range(3))

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE merchant_staff_users SET user_id"):  # the sign-up's
            user_inserted.set()
            registered.wait(timeout=1)

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO merchant_staff_users"):  # the registration's
            registered.set()
            signed_up.wait(timeout=1)

    def sign_up() -> None:
        accounts.create_user(UnitOfWork(sessionmaker(engine)), handle, "pass-word-1")
        signed_up.set()

    def register() -> None:
        user_inserted.wait(timeout=5)
        abuse.add_staff_user(
            UnitOfWork(sessionmaker(engine)), Actor.operator("race-test"), merchant_id, handle
        )

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for done in [pool.submit(sign_up), pool.submit(register)]:
                done.result()
        with engine.connect() as conn:
            linked = conn.execute(
                text(
                    "SELECT s.user_id = u.id FROM merchant_staff_users s"
                    " JOIN users u ON lower(u.handle) = lower(s.handle) WHERE s.handle = :h"
                ),
                {"h": handle},
            ).scalar()
        assert linked is True
    finally:
        engine.dispose()
