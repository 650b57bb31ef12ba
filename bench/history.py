"""A check-in's cost against history and density (issue 21, item 2): main's code and this
tree's, in the same run, on the same database.

The database (`co_bench_history`, built once, `--rebuild` to redo it) has two venues of one
merchant, each with the same five offers (every_checkin, first_visit, nth_visit within 30
days, top_visitor over 60 days, group of 3 within 30 minutes) and no cooldown:

- `ordinary`: 300 past check-ins over a month, and its own regular (20 visits over 60 days,
  the top visitor) who checks in there with two fans checked in minutes before;
- `stadium`: 1,000,000 past check-ins over two years by 50,000 users (about 82,000 in the
  top-visitor window, about 15 in the group's 30 minutes), 10,000 of them by one regular, who
  checks in there.

Both check-ins earn the same three offers (every_checkin, top_visitor, group), so the two differ
only in the history and density behind them.

Each check-in is the whole use case (`offers.checkins.check_in`), rolled back afterwards so the
history stays as built. "main" is `git show main:offers/checkins.py` loaded as a module, run with
the counters' triggers disabled (`ALTER TABLE checkins DISABLE TRIGGER USER`: foreign keys still
checked), exactly the code and work of main; "counters" is this tree. Rounds alternate the four
(variant, venue) pairs so drift on this shared machine hits them alike; the figure is the median
of each pair's per-round means, with the database backend's CPU (from /proc) per check-in. Then
the candidates and venue+history statements alone, old and new SQL, at both venues.

    make bench-history ARGS="--rounds 12 --per-round 10"
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import sessionmaker

from api import create_app
from bench.dataset import create_database
from bench.refs import module_at
from core.uow import UnitOfWork, sqlalchemy_url
from mobile_stub.client import Client, FlaskTransport
from offers import checkins

NAME = "co_bench_history"
STADIUM_CHECKINS = 1_000_000
STADIUM_USERS = 50_000
REGULAR_CHECKINS = 10_000
SPAN_S = 730 * 86_400  # two years of history
RULES = (
    {"kind": "every_checkin"},
    {"kind": "first_visit"},
    {"kind": "nth_visit", "visits": 5, "within_days": 30},
    {"kind": "top_visitor"},
    {"kind": "group", "min_people": 3, "within_minutes": 30},
)


def _build(server_url: str, log: Callable[[str], None]) -> dict[str, str]:
    url = create_database(server_url, NAME)
    os.environ.setdefault("NFC_MASTER_KEY", secrets.token_hex(32))
    app = create_app(
        {"DATABASE_URL": url, "SECRET_KEY": secrets.token_hex(32), "RATE_LIMIT_ENABLED": False}
    )
    api = Client(FlaskTransport(app.test_client()))
    owner = api.with_token(api.create_merchant("Stadium Oy", "bench@example.com")["api_key"])
    ids: dict[str, str] = {}
    for name, lat in (("ordinary", 60.1699), ("stadium", 60.1870)):
        body = {
            "name": name,
            "location": {"type": "Point", "coordinates": [24.9384, lat]},
            "timezone": "Europe/Helsinki",
            "checkin_cooldown_minutes": 0,
        }
        venue = owner.create_venue(body)
        ids[name] = venue["id"]
        for rule in RULES:
            offer = owner.create_offer(
                {"venue_ids": [venue["id"]], "title": rule["kind"], "rule": rule}
            )
            owner.activate_offer(offer["id"])
    for who in ("regular", "local"):
        ids[who] = api.create_user(f"{who}{uuid.uuid4().hex[:6]}", "pass-word-1")["user"]["id"]
    engine = app.extensions["engine"]
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, handle, created_at)"
                " SELECT gen_random_uuid(), 'fan' || i, now() FROM generate_series(1, :n) i"
            ),
            {"n": STADIUM_USERS},
        )
        # the stadium: one check-in every SPAN/N seconds, 1 in 10 by the regular, the rest by
        # the fans in turn; 1 in 12 rejected; devices shared by nobody
        conn.execute(
            text(
                """
                WITH fans AS (SELECT array_agg(id) AS ids FROM users WHERE handle LIKE 'fan%')
                INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at,
                                      mock_location, presence_code_sent, device_id, status,
                                      reasons, reason_codes, strikes, proof, created_at)
                SELECT gen_random_uuid(),
                       CASE WHEN i % 100 < :regular_pct THEN CAST(:regular AS uuid)
                            ELSE fans.ids[1 + i % :fans] END,
                       v.id, v.location, 10, t.at - interval '5 seconds', false, false,
                       CASE WHEN i % 100 < :regular_pct THEN 'dev-regular'
                            ELSE 'dev-' || (i % :fans) END,
                       CASE WHEN i % 12 = 0 AND i % 100 >= :regular_pct THEN 'rejected'
                            ELSE 'verified' END,
                       '[]', '{}', '{}', 'gps', t.at
                FROM generate_series(1, :n) i
                CROSS JOIN fans
                CROSS JOIN venues v
                CROSS JOIN LATERAL (
                    SELECT now() - make_interval(secs => i * :step) - interval '10 minutes' AS at
                ) t
                WHERE v.id = :venue
                """
            ),
            {
                "n": STADIUM_CHECKINS,
                "fans": STADIUM_USERS,
                "regular": ids["regular"],
                "regular_pct": REGULAR_CHECKINS * 100 // STADIUM_CHECKINS,
                "step": SPAN_S / STADIUM_CHECKINS,
                "venue": ids["stadium"],
            },
        )
        # the ordinary venue: 300 check-ins by fans over the last month
        conn.execute(
            text(
                """
                INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at,
                                      mock_location, presence_code_sent, device_id, status,
                                      reasons, reason_codes, strikes, proof, created_at)
                SELECT gen_random_uuid(), u.id, v.id, v.location, 10, t.at, false, false,
                       'dev-o' || i, 'verified', '[]', '{}', '{}', 'gps', t.at
                FROM generate_series(1, 300) i
                CROSS JOIN venues v
                CROSS JOIN LATERAL (SELECT id FROM users WHERE handle = 'fan' || i) u
                CROSS JOIN LATERAL (
                    SELECT now() - make_interval(secs => i * 8640) - interval '10 minutes' AS at
                ) t
                WHERE v.id = :venue
                """
            ),
            {"venue": ids["ordinary"]},
        )
        # the ordinary venue's own regular: 20 visits over 60 days (its top visitor, like the
        # stadium's), and two fans within the last 20 minutes (a group, like the stadium's)
        conn.execute(
            text(
                """
                INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at,
                                      mock_location, presence_code_sent, device_id, status,
                                      reasons, reason_codes, strikes, proof, created_at)
                SELECT gen_random_uuid(), u.id, v.id, v.location, 10, t.at, false, false,
                       'dev-' || u.handle, 'verified', '[]', '{}', '{}', 'gps', t.at
                FROM (SELECT id, handle, i FROM users
                      CROSS JOIN generate_series(1, 20) i WHERE id = CAST(:local AS uuid)
                      UNION ALL
                      SELECT id, handle, i FROM users
                      CROSS JOIN generate_series(1, 2) i WHERE handle = 'fan' || (400 + i)) u
                CROSS JOIN venues v
                CROSS JOIN LATERAL (
                    SELECT CASE WHEN u.id = CAST(:local AS uuid)
                                THEN now() - make_interval(days => 3 * u.i) - interval '1 hour'
                                ELSE now() - make_interval(mins => 5 * u.i) END AS at
                ) t
                WHERE v.id = :venue
                """
            ),
            {"venue": ids["ordinary"], "local": ids["local"]},
        )
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value jsonb);"
                " INSERT INTO bench_meta VALUES ('history', CAST(:v AS jsonb))"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            {"v": json.dumps({**ids, "built_at": time.time()})},
        )
    log(f"  loaded in {time.perf_counter() - started:.0f} s")
    db = engine.raw_connection()
    db.set_isolation_level(0)
    db.cursor().execute("VACUUM ANALYZE")
    db.close()
    from api import db as api_db

    api_db.dispose(app)
    return ids


def _ids(url: str) -> dict[str, str] | None:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            value = conn.execute(
                text("SELECT value FROM bench_meta WHERE key = 'history'")
            ).scalar()
        if not value or time.time() - float(value.get("built_at", 0)) > 3600:
            return None  # the group's 30 minutes would be empty by now: build afresh
        return {k: v for k, v in value.items() if k != "built_at"}
    except Exception:
        return None
    finally:
        engine.dispose()


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _venue_point(engine: Engine, venue_id: str) -> tuple[float, float]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT ST_Y(location::geometry), ST_X(location::geometry) FROM venues"
                " WHERE id = :v"
            ),
            {"v": venue_id},
        ).one()
    return float(row[0]), float(row[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)
    server = os.environ["DATABASE_URL"]
    url = make_url(sqlalchemy_url(server)).set(database=NAME).render_as_string(False)
    ids = None if args.rebuild else _ids(url)
    if ids is None:
        print(f"building {NAME} ({STADIUM_CHECKINS:,} check-ins at the stadium) ...", flush=True)
        ids = _build(server, lambda m: print(m, flush=True))
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=1,
        max_overflow=0,
        connect_args={"options": "-c timezone=UTC -c jit=off"},
    )
    with engine.connect() as conn:
        pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        figures = conn.execute(
            text(
                """
                SELECT (SELECT count(*) FROM checkins WHERE venue_id = :s) AS stadium,
                       (SELECT count(*) FROM checkins WHERE user_id = :r) AS regular,
                       (SELECT count(*) FROM checkins WHERE venue_id = :s
                        AND created_at > now() - interval '60 days') AS window60,
                       (SELECT count(*) FROM checkins WHERE venue_id = :s
                        AND created_at > now() - interval '30 minutes') AS window30m
                """
            ),
            {"s": ids["stadium"], "r": ids["regular"]},
        ).one()
    print(
        f"stadium: {figures.stadium:,} check-ins ({figures.window60:,} in 60 days, "
        f"{figures.window30m} in 30 min); the regular: {figures.regular:,}"
    )
    make = sessionmaker(bind=engine, expire_on_commit=False)
    # One committed check-in by a fan at each venue, as the service's traffic would have made:
    # it takes what left the top-visitor window since the build off the tallies, and the group
    # offer goes to everyone checked in within its 30 minutes (who are then "recent": a
    # rolled-back check-in would otherwise issue their unlocks again at every try).
    with engine.connect() as conn:
        fan = conn.execute(text("SELECT id FROM users WHERE handle = 'fan7'")).scalar_one()
    for venue in ("stadium", "ordinary"):
        lat, lon = _venue_point(engine, ids[venue])
        checkins.check_in(
            UnitOfWork(make),
            fan,
            checkins.CheckinInput(uuid.UUID(ids[venue]), lat, lon, 10, datetime.now(UTC)),
        )
    old = module_at("main", "offers/checkins.py", "main_checkins")
    points = {v: _venue_point(engine, ids[v]) for v in ("ordinary", "stadium")}
    who = {"ordinary": ids["local"], "stadium": ids["regular"]}

    def set_triggers(enabled: bool) -> None:
        with engine.begin() as conn:
            verb = "ENABLE" if enabled else "DISABLE"
            conn.execute(text(f"ALTER TABLE checkins {verb} TRIGGER USER"))

    def one(module: Any, venue: str) -> dict[str, Any]:
        lat, lon = points[venue]
        data = module.CheckinInput(
            uuid.UUID(ids[venue]), lat, lon, 10, datetime.now(UTC), device_id="dev-bench"
        )
        uow = UnitOfWork(make)
        with uow, uow.held():  # the use case's commit only flushes; leaving rolls back
            result = module.check_in(uow, uuid.UUID(who[venue]), data)
        return {"status": result.status, "unlocks": len(result.unlocks)}

    variants = {"main": old, "counters": checkins}
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {
        (v, w): [] for v in variants for w in points
    }
    tick = os.sysconf("SC_CLK_TCK")
    outcome: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for _ in range(args.rounds):
            for variant, module in variants.items():
                set_triggers(variant == "counters")
                for venue in points:
                    outcome[(variant, venue)] = one(module, venue)  # warm
                    cpu0, t0 = _cpu_ticks(pid), time.perf_counter()
                    for _ in range(args.per_round):
                        one(module, venue)
                    wall = (time.perf_counter() - t0) / args.per_round
                    cpu = (_cpu_ticks(pid) - cpu0) / tick / args.per_round
                    samples[(variant, venue)].append((wall, cpu))
    finally:
        set_triggers(True)
    print(f"\nwhole check-in (use case, rolled back), median of {args.rounds} rounds:")
    print(f"{'':10} {'venue':9} {'ms/check-in':>12} {'db CPU ms':>10}  outcome")
    med: dict[tuple[str, str], float] = {}
    for (variant, venue), rows in samples.items():
        med[(variant, venue)] = statistics.median(r[0] for r in rows) * 1000
        cpu = statistics.median(r[1] for r in rows) * 1000
        print(
            f"{variant:10} {venue:9} {med[(variant, venue)]:12.2f} {cpu:10.2f}"
            f"  {outcome[(variant, venue)]}"
        )
    for variant in variants:
        ratio = med[(variant, "stadium")] / med[(variant, "ordinary")]
        print(f"{variant}: stadium / ordinary = {ratio:.2f}")
    _statements(engine, ids, who)


def _statements(engine: Engine, ids: dict[str, str], who: dict[str, str]) -> None:
    """The two statements that counted history, alone, old SQL and new (rolled back: the new
    candidates statement takes expired check-ins off the top-visitor tallies)."""
    from tests.integration.counters_oracle import OLD_CANDIDATES, OLD_VENUE_AND_HISTORY

    print("\nstatements alone (ms, median of 30):")
    pairs = {
        "venue+history": (OLD_VENUE_AND_HISTORY, checkins._VENUE_AND_HISTORY),
        "candidates": (OLD_CANDIDATES, checkins._CANDIDATES),
    }
    for label, (old_sql, new_sql) in pairs.items():
        for venue in ("ordinary", "stadium"):
            params = {
                "venue_id": ids[venue],
                "user_id": who[venue],
                "device_id": "dev-regular" if venue == "stadium" else None,
                "observed_at": datetime.now(UTC),
                "window_days": 7,
                "rejection_hours": 24,
                "staff_device_days": 30,
                "top_window_days": 60,
            }
            line = []
            for sql in (old_sql, new_sql):
                times = []
                for _ in range(30):
                    with engine.connect() as conn:
                        tx = conn.begin()
                        t0 = time.perf_counter()
                        conn.execute(sql, params).all()
                        times.append(time.perf_counter() - t0)
                        tx.rollback()
                line.append(statistics.median(times) * 1000)
            print(f"  {label:14} {venue:9} main {line[0]:8.2f}   counters {line[1]:8.2f}")


if __name__ == "__main__":
    main()
