"""The webhook outbox's cost to a check-in: the check-in use case in-process, three ways,
interleaved round by round on one database (so the machine's load hits them alike):

- `off`: `core.webhooks.emit` replaced by a no-op (main before the outbox);
- `nosub`: the outbox statement, no endpoint of the merchant subscribed (nothing stored);
- `sub`: one endpoint subscribed to `checkin.verified` and `unlock.created` (2 events, 2
  deliveries per check-in).

Each check-in is a new user's, verified, unlocking one offer. Prints the median per round of the
Python CPU per check-in (this process) and the wall time; wall minus CPU is the database's time
and the waits. Not part of `make bench`:

    DATABASE_URL=$(scripts/pg.sh url) APP_ENV=development NFC_MASTER_KEY=$(scripts/devkey.sh) \\
        .venv/bin/python -m bench.outbox
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

import offers.checkins as checkins
from api import create_app
from core import webhooks
from core.uow import UnitOfWork, make_engine
from mobile_stub.client import Client, FlaskTransport

N, ROUNDS = 100, 5


def main() -> None:
    url = os.environ["DATABASE_URL"]
    engine = make_engine(url)
    factory = sessionmaker(engine, expire_on_commit=False)
    app = create_app({"DATABASE_URL": url, "RATE_LIMIT_ENABLED": False})
    api = Client(FlaskTransport(app.test_client()))

    def venue(subscribed: bool) -> uuid.UUID:
        owner = api.with_token(api.create_merchant("Bench", "bench@example.com")["api_key"])
        where = {"type": "Point", "coordinates": [24.9384, 60.1699]}
        v = owner.create_venue({"name": "v", "location": where, "checkin_cooldown_minutes": 0})
        offer = owner.create_offer(
            {"venue_ids": [v["id"]], "title": "t", "rule": {"kind": "every_checkin"}}
        )
        owner.activate_offer(offer["id"])
        if subscribed:  # a public address (an IP literal): nothing is sent, no worker runs
            owner.create_webhook("https://93.184.216.34/", ["checkin.verified", "unlock.created"])
        return uuid.UUID(v["id"])

    def users(n: int) -> list[uuid.UUID]:
        ids = [uuid.uuid4() for _ in range(n)]
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO users (id, handle, password_hash) VALUES (:id, :handle, 'x')"),
                [{"id": i, "handle": f"bench_{i.hex[:16]}"} for i in ids],
            )
        return ids

    real_emit = webhooks.emit

    def no_emit(*_args: Any, **_kwargs: Any) -> None:
        return None

    venues = {"off": venue(False), "nosub": venue(False), "sub": venue(True)}
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in venues}
    for _ in range(ROUNDS):
        for kind, venue_id in venues.items():
            checkins.webhooks.emit = no_emit if kind == "off" else real_emit  # type: ignore[assignment]
            ids = users(N)
            cpu, wall = time.process_time(), time.perf_counter()
            for user_id in ids:
                fix = checkins.CheckinInput(venue_id, 60.1699, 24.9384, 10, datetime.now(UTC))
                result = checkins.check_in(UnitOfWork(factory), user_id, fix)
                assert result.status == "verified" and result.unlocks
            results[kind].append(
                (
                    (time.process_time() - cpu) / N * 1000,
                    (time.perf_counter() - wall) / N * 1000,
                )
            )
    checkins.webhooks.emit = real_emit  # type: ignore[assignment]
    for kind, rounds in results.items():
        cpu_ms = statistics.median(r[0] for r in rounds)
        wall_ms = statistics.median(r[1] for r in rounds)
        print(
            f"{kind:6s} Python CPU {cpu_ms:.3f} ms per check-in, wall {wall_ms:.3f} ms "
            f"(database and waits {wall_ms - cpu_ms:.3f} ms)"
        )


if __name__ == "__main__":
    main()
