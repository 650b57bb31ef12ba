"""How fast the analytics calls answer on a large history.

    .venv/bin/python -m bench.analytics --checkins 1000000

Builds a database of its own on the server named by DATABASE_URL (the private cluster when run
through `make bench-analytics`), fills it with one merchant's 90 days of history generated in SQL
(200 venues, 50 offers, 100,000 users, N check-ins, their unlocks, holdouts, redemptions, attempts
and impressions), then times every analytics call through the real Flask app (HTTP in-process,
JSON encoding included). Machines here are noisy, so it also times, in the same run, a baseline:
one sequential `count(*)` over all check-ins, the cost of touching every check-in once. Prints a
table of median and worst times over repeated calls and their ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session

from api import create_app
from bench.dataset import create_database
from bench.feedback_direct import offer_ratings_direct, responsiveness_direct
from core.uow import sqlalchemy_url
from offers.feedback import OPEN_END, ratings_by_offer

GENERATE = """
INSERT INTO merchants (id, name, email) VALUES (:m, 'Bench Cafe Group', 'bench@example.com');

INSERT INTO venues (id, merchant_id, name, category, timezone, location, geofence, radius_m,
                    checkin_cooldown_minutes, max_accuracy_m, presence_secret)
SELECT gen_random_uuid(), :m, 'Venue ' || i, 'cafe', 'Europe/Helsinki', p,
       ST_Multi(ST_Buffer(p, 50)::geometry), 50, 60, 100, decode(md5(random()::text), 'hex')
FROM (SELECT i, ST_SetSRID(ST_MakePoint(24.90 + (i % 20) * 0.004, 60.15 + (i / 20) * 0.003),
                           4326)::geography AS p
      FROM generate_series(0, 199) i) v;
CREATE TEMP TABLE bv AS SELECT id, row_number() OVER (ORDER BY name) - 1 AS n FROM venues;

INSERT INTO offers (id, merchant_id, title, rule, windows, unlocked_count, per_user_cap,
                    code_ttl_minutes, requires_presence_code, holdout_pct, status, created_at)
SELECT gen_random_uuid(), :m, 'Offer ' || i, '{"kind": "every_checkin"}', '[]', 0, 1000, 1440,
       false, CASE WHEN i % 5 = 0 THEN 10 ELSE 0 END, 'active', now() - interval '91 days'
FROM generate_series(0, 49) i;
CREATE TEMP TABLE bo AS SELECT id, holdout_pct, row_number() OVER (ORDER BY title) - 1 AS n
FROM offers;
INSERT INTO offer_status_changes (offer_id, status, changed_at)
SELECT id, 'active', now() - interval '91 days' FROM offers;
-- every venue carries one offer: offer n at venues n, n + 50, n + 100, n + 150
INSERT INTO offer_venues (offer_id, venue_id)
SELECT bo.id, bv.id FROM bo JOIN bv ON bv.n % 50 = bo.n;

INSERT INTO users (id, handle, password_hash)
SELECT gen_random_uuid(), 'bench' || i, 'x' FROM generate_series(1, :users) i;
CREATE TEMP TABLE bu AS SELECT id, row_number() OVER (ORDER BY handle) - 1 AS n FROM users;

INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at, mock_location,
                      presence_code_sent, status, reasons, reason_codes, created_at)
SELECT gen_random_uuid(), bu.id, bv.id, v.location, 10, t, false, false,
       CASE WHEN r < 0.9 THEN 'verified' ELSE 'rejected' END, '[]',
       CASE WHEN r < 0.9 THEN '{}'::varchar[]
            WHEN r < 0.95 THEN '{outside_geofence}' WHEN r < 0.98 THEN '{too_soon}'
            ELSE '{stale_fix,mock_location}' END,
       t
FROM (SELECT floor(random() * :users)::int AS un, floor(random() * 200)::int AS vn,
             now() - random() * interval '90 days' AS t, random() AS r
      FROM generate_series(1, :checkins)) g
JOIN bu ON bu.n = g.un JOIN bv ON bv.n = g.vn JOIN venues v ON v.id = bv.id;

-- a fifth of the verified check-ins earned their venue's offer, or were held out of it
CREATE TEMP TABLE earned AS
SELECT c.id AS checkin_id, c.user_id, c.venue_id, c.created_at, c.proof, ov.offer_id,
       bo.holdout_pct > 0 AND random() < 0.1 AS held_out
FROM checkins c JOIN offer_venues ov ON ov.venue_id = c.venue_id JOIN bo ON bo.id = ov.offer_id
WHERE c.status = 'verified' AND random() < 0.2;
INSERT INTO holdouts (checkin_id, offer_id, user_id, created_at)
SELECT checkin_id, offer_id, user_id, created_at FROM earned WHERE held_out;
INSERT INTO unlocks (id, offer_id, user_id, checkin_id, venue_id, merchant_id, code, created_at,
                     expires_at, redeemed_at, proof)
SELECT gen_random_uuid(), offer_id, user_id, checkin_id, venue_id, :m,
       lpad(upper(to_hex(row_number() OVER ())), 11, '0'), created_at, created_at + interval '1 day',
       CASE WHEN random() < 0.5 THEN created_at + random() * interval '3 hours' END, proof
FROM earned WHERE NOT held_out;
UPDATE offers o SET unlocked_count = x.n
FROM (SELECT offer_id, count(*) AS n FROM unlocks GROUP BY offer_id) x WHERE x.offer_id = o.id;
INSERT INTO redemptions (id, unlock_id, offer_id, merchant_id, venue_id, redeemed_at,
                         unlock_venue_id, unlocked_at, proof)
SELECT gen_random_uuid(), id, offer_id, merchant_id, venue_id, redeemed_at, venue_id, created_at,
       proof
FROM unlocks WHERE redeemed_at IS NOT NULL;
INSERT INTO redemption_attempts (id, merchant_id, unlock_id, venue_id, code_hint, outcome,
                                 created_at)
SELECT gen_random_uuid(), :m, unlock_id, venue_id, 'ABCD', 'redeemed', redeemed_at
FROM redemptions
UNION ALL
SELECT gen_random_uuid(), :m, unlock_id, venue_id, 'ABCD',
       (ARRAY['already_redeemed', 'expired', 'unknown', 'wrong_venue'])[1 + floor(random() * 4)],
       redeemed_at + interval '1 hour'
FROM redemptions WHERE random() < 0.1;

-- feedback on verified check-ins (at most :feedback of them), given within a day of the visit,
-- about 70% answered, a first reply after minutes to days (log-uniform), a second reply on some
CREATE TEMP TABLE fb AS
SELECT gen_random_uuid() AS id, c.id AS checkin_id, c.user_id, c.venue_id,
       1 + floor(random() * 5)::int AS rating,
       least(c.created_at + random() * interval '1 day', now()) AS created_at,
       random() AS r
FROM checkins c WHERE c.status = 'verified' LIMIT :feedback;
INSERT INTO feedback (id, checkin_id, user_id, venue_id, merchant_id, rating, comment,
                      created_at, first_reply_at)
SELECT id, checkin_id, user_id, venue_id, :m, rating,
       CASE WHEN r < 0.4 THEN 'Bench comment ' || rating END, created_at,
       CASE WHEN r < 0.7 THEN least(created_at + make_interval(secs => exp(4 + random() * 9)),
                                    now()) END
FROM fb;
INSERT INTO feedback_replies (id, feedback_id, merchant_id, author_role, body, created_at)
SELECT gen_random_uuid(), id, :m, 'staff', 'Thank you!', first_reply_at
FROM feedback WHERE first_reply_at IS NOT NULL
UNION ALL
SELECT gen_random_uuid(), id, :m, 'owner', 'And welcome back.', first_reply_at + interval '1 hour'
FROM feedback WHERE first_reply_at IS NOT NULL AND random() < 0.1;

INSERT INTO impressions (user_id, venue_id, offer_id, created_at, day)
SELECT bu.id, bv.id, ov.offer_id, g.t, (g.t AT TIME ZONE v.timezone)::date
FROM (SELECT floor(random() * :users)::int AS un, floor(random() * 200)::int AS vn,
             now() - random() * interval '90 days' AS t
      FROM generate_series(1, :checkins / 2)) g
JOIN bu ON bu.n = g.un JOIN bv ON bv.n = g.vn JOIN venues v ON v.id = bv.id
JOIN offer_venues ov ON ov.venue_id = bv.id
ON CONFLICT DO NOTHING;
"""


def build(server_url: str, name: str, checkins: int, users: int, feedback: int) -> str:
    url = create_database(server_url, name)
    engine = create_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        merchant = conn.execute(text("SELECT gen_random_uuid()")).scalar()
        for statement in GENERATE.split(";\n"):
            if statement.strip():
                conn.execute(
                    text(statement),
                    {"m": merchant, "users": users, "checkins": checkins, "feedback": feedback},
                )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    print(
        f"built {name}: {checkins:,} check-ins (feedback on up to {feedback:,} verified ones)"
        f" in {time.perf_counter() - started:.1f} s"
    )
    engine.dispose()
    return url


def timed(call: Callable[[], Any], repeat: int) -> list[float]:
    call()  # warm caches and the connection pool
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkins", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument(
        "--feedback",
        type=int,
        default=1_000_000,
        help="feedback rows, one per verified check-in (so at most about 90%% of --checkins)",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", default="co_bench_analytics")
    parser.add_argument("--reuse", action="store_true", help="skip building if it exists")
    args = parser.parse_args(argv)
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        sys.exit("DATABASE_URL must name a server where databases can be created")

    url = str(
        make_url(sqlalchemy_url(server_url))
        .set(database=args.database)
        .render_as_string(hide_password=False)
    )
    if not args.reuse:
        url = build(
            server_url,
            args.database,
            args.checkins,
            min(args.users, args.checkins),
            args.feedback,
        )
    app = create_app({"DATABASE_URL": url, "RATE_LIMIT_ENABLED": False})
    engine = app.extensions["engine"]
    with engine.connect() as conn:
        merchant = conn.execute(text("SELECT id FROM merchants")).scalar()
        busiest = conn.execute(
            text("SELECT offer_id FROM unlocks GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        ).scalar()
        with_holdout = conn.execute(
            text("SELECT id FROM offers WHERE holdout_pct > 0 LIMIT 1")
        ).scalar()
        total = conn.execute(text("SELECT count(*) FROM checkins")).scalar()
        feedback_rows = conn.execute(text("SELECT count(*) FROM feedback")).scalar()
        a_venue = conn.execute(text("SELECT venue_id FROM feedback LIMIT 1")).scalar()
    with app.app_context():
        from api import db
        from core.accounts import create_api_key
        from core.audit import Actor

        _, key = create_api_key(
            db.unit_of_work(),
            Actor.operator("bench"),
            merchant,
            "analyst",
            f"bench {secrets.token_hex(2)}",
        )
        _, staff_key = create_api_key(
            db.unit_of_work(),
            Actor.operator("bench"),
            merchant,
            "staff",
            f"bench {secrets.token_hex(2)}",
        )
    client = app.test_client()

    def get(path: str, key: str = key) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(path, headers={"Authorization": f"Bearer {key}"})
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.get_data()!r}")
            return response.get_data()

        return call

    def direct(query: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        def call() -> Any:
            with Session(engine) as session:
                return query(session, *args)

        return call

    def baseline() -> Any:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM checkins")).scalar()

    calls = {
        "baseline: count(*) over all check-ins": baseline,
        "funnel (busiest offer, whole life)": get(f"/v1/analytics/offers/{busiest}/funnel"),
        "redemptions by day": get("/v1/analytics/redemptions?group_by=day"),
        "redemptions by hour": get("/v1/analytics/redemptions?group_by=hour"),
        "redemptions by venue": get("/v1/analytics/redemptions?group_by=venue"),
        "redemptions by offer (csv)": get("/v1/analytics/redemptions?group_by=offer&format=csv"),
        "lift (offer with holdout)": get(f"/v1/analytics/offers/{with_holdout}/lift"),
        "leak report (merchant, 90 days)": get("/v1/analytics/leaks"),
        "offer health (all 50 offers)": get("/v1/analytics/offers/health"),
    }
    feedback_calls = {
        "feedback inbox: unanswered, oldest": get("/v1/feedback?status=unanswered", staff_key),
        "feedback inbox: all (unanswered first)": get("/v1/feedback", staff_key),
        "feedback inbox: one venue, 1 star": get(
            f"/v1/feedback?venue_id={a_venue}&rating=1", staff_key
        ),
        "responsiveness (all, by venue, by offer)": get("/v1/analytics/responsiveness"),
        "responsiveness, last 7 days": get(
            "/v1/analytics/responsiveness?from="
            + (datetime.now(UTC) - timedelta(days=7)).isoformat().replace("+00:00", "Z")
        ),
        "responsiveness (csv)": get("/v1/analytics/responsiveness?format=csv"),
        "responsiveness, target 720 h (max)": get("/v1/analytics/responsiveness?target_hours=720"),
        "responsiveness, 15 min target, one venue": get(
            f"/v1/analytics/responsiveness?target_hours=0.25&venue_id={a_venue}"
        ),
        # the same figures computed as before the rollup (migration 0015), on the same data
        "before 0015: responsiveness, direct SQL": direct(responsiveness_direct, merchant),
        "before 0015: responsiveness 7 days, direct": direct(
            responsiveness_direct, merchant, datetime.now(UTC) - timedelta(days=7)
        ),
        "before 0015: health's ratings, join/offer": direct(offer_ratings_direct, merchant),
        "health's ratings from the rollup": direct(
            lambda session, m: ratings_by_offer(
                session, m, datetime.now(UTC) - timedelta(days=7), OPEN_END, datetime.now(UTC)
            ),
            merchant,
        ),
    }
    if feedback_rows:  # `--feedback 0` times the check-in side alone
        calls.update(feedback_calls)
    print(
        f"\n{total:,} check-ins, {feedback_rows:,} feedback;"
        f" {args.repeat} timed calls each after one warm-up\n"
    )
    print(f"{'call':44} {'median ms':>10} {'worst ms':>10} {'x baseline':>11}")
    base = None
    for name, call in calls.items():
        times = timed(call, args.repeat)
        median = statistics.median(times)
        base = base or median
        print(f"{name:44} {median * 1000:10.1f} {max(times) * 1000:10.1f} {median / base:11.2f}")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
