"""A reference minimal check-in: what PostgreSQL does for the least a check-in must write.

One transaction of five statements, written by hand (issue 21), run by pgbench on the bench
database with the same clients as the service's check-in ceiling, right before it:

1. the user's token, by its lookup (what authentication reads);
2. the venue's fence containment test of the fix (`ST_Covers` on the venue's geofence);
3. the check-in's INSERT (verified);
4. the offer's cap claim (the UPDATE of its counter under its cap);
5. the unlock's INSERT with its code.

The service's check-in ceiling (its captured statements, `bench.ceiling`) as a share of this is
how much more SQL a real check-in runs than the minimum (rules, history, strikes, idempotency,
rate limits, the webhook outbox). The service's statements are not used here on purpose: this
script stays the same while they change.

Users are the pgbench ones (the last quarter, which the load generator leaves alone), venues
are plain-offer venues (one `every_checkin` offer without a cap) spread over the dataset, ids
and codes get per-transaction unique tails as in `bench.ceiling`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from bench import ceiling, dataset

SCRIPTS = 32
# uuid blocks that `bench.ceiling.template` never makes ('...-4000-9000-:c'), nor the dataset
CHECKIN_ID = "00000006-0000-4000-9100-:c"
UNLOCK_ID = "00000007-0000-4000-9100-:c"

_VENUES = text(
    """
    SELECT v.id::text AS venue, v.merchant_id::text AS merchant, o.id::text AS offer,
           ST_X(v.location::geometry) AS lon, ST_Y(v.location::geometry) AS lat
    FROM venues v
    JOIN offer_venues ov ON ov.venue_id = v.id
    JOIN offers o ON o.id = ov.offer_id
    WHERE v.deleted_at IS NULL AND o.status = 'active' AND o.rule->>'kind' = 'every_checkin'
      AND o.total_cap IS NULL AND v.id <> CAST(:hot AS uuid)
      AND ST_Covers(v.geofence, v.location::geometry)
    ORDER BY md5(v.id::text)
    LIMIT :n
    """
)


def script(venue: str, merchant: str, offer: str, lon: float, lat: float) -> str:
    point = f"ST_SetSRID(ST_MakePoint({lon!r}, {lat!r}), 4326)"
    user = f"{dataset.USER:08d}-0000-4000-8000-:u"
    return (
        "\n".join(
            [
                "\\set n :n + 1",
                "\\set c :base + :client_id * 10000000 + :n",
                "\\set u 100000000000 + random(:ufirst, :users - 1)",
                "BEGIN;",
                "SELECT id, user_id, secret_hash, revoked_at, expires_at FROM user_tokens"
                " WHERE lookup = ':u';",
                f"SELECT ST_Covers(geofence, {point}) FROM venues WHERE id = '{venue}';",
                "INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at,"
                " mock_location, presence_code_sent, status, created_at)"
                f" VALUES ('{CHECKIN_ID}', '{user}', '{venue}', {point}::geography, 10, now(),"
                " false, false, 'verified', now());",
                "UPDATE offers SET unlocked_count = unlocked_count + 1"
                f" WHERE id = '{offer}' AND status = 'active'"
                " AND (total_cap IS NULL OR unlocked_count + 1 <= total_cap);",
                "INSERT INTO unlocks (id, offer_id, user_id, checkin_id, venue_id, merchant_id, code,"
                f" created_at, expires_at, proof) VALUES ('{UNLOCK_ID}', '{offer}', '{user}',"
                f" '{CHECKIN_ID}', '{venue}', '{merchant}', 'R:c', now(), now() + interval '1 day',"
                " 'gps');",
                "COMMIT;",
            ]
        )
        + "\n"
    )


def scripts(engine: Any, plan: dataset.Plan, n: int = SCRIPTS) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            _VENUES, {"hot": dataset.ident(dataset.VENUE, plan.hot_venue), "n": n}
        ).all()
    if not rows:
        raise RuntimeError("no venue with an uncapped every_checkin offer for the reference")
    return [script(r.venue, r.merchant, r.offer, r.lon, r.lat) for r in rows]


def run(
    url: str, engine: Any, plan: dataset.Plan, clients: int, seconds: float
) -> dict[str, float]:
    """The reference under pgbench: its throughput and average latency."""
    variables = {
        "base": ceiling.next_nonce(engine),
        "users": plan.users,
        "ufirst": dataset.pgbench_first_user(plan.users),
    }
    result = ceiling.run_pgbench(url, scripts(engine, plan), clients, seconds, variables)
    print(
        f"  reference minimal check-in {result.tps:8.0f} tx/s  {result.latency_ms:6.1f} ms avg",
        flush=True,
    )
    return {
        "tps": result.tps,
        "latency_ms": result.latency_ms,
        "failed": result.failed,
        "transactions": result.transactions,
    }
