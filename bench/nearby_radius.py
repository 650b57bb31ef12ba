"""Nearby's statement at 1 km and at 50 km in a dense city, an older tree's and this one's, in
the same run on the same database (issue 21: 50 km within 20% of 1 km).

The database (`co_bench_dense`, built once, `--rebuild` to redo it) is a copy of `co_bench_10k`
(`python -m bench.dataset --scale 10k` first) with 100,000 venues added at random within 35 km
of central Helsinki. "before" is `_NEARBY_SQL` of `git show REF:geo/venues.py` (`--before`),
"after" this tree's. For each of `--points` random points within 30 km of the centre, each
radius and both statements, in an order shuffled per point (so drift on a shared machine hits
them alike): the statement's wall time from the client, then its `EXPLAIN (ANALYZE, BUFFERS)`
for the shared buffers it touched. Prints the median and p90 of each, and with `--plan` one
plan of each statement at 50 km.

    DATABASE_URL=$(scripts/pg.sh url postgres) APP_ENV=development \\
        .venv/bin/python -m bench.nearby_radius --before d5ef137 --points 300
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from typing import Any

from sqlalchemy import Engine, TextClause, create_engine, make_url, text

from bench.refs import module_at
from core.uow import sqlalchemy_url
from geo.venues import _NEARBY_SQL

NAME = "co_bench_dense"
CENTRE = (60.1699, 24.9384)  # lat, lon: central Helsinki
ADDED = 100_000
RADII = (1_000.0, 50_000.0)

_ADD = """
SELECT setseed(0.21);
INSERT INTO venues (id, merchant_id, name, category, timezone, location, geofence, radius_m,
                    checkin_cooldown_minutes, max_accuracy_m, presence_secret)
SELECT gen_random_uuid(), m.id, 'Dense ' || i, 'cafe', 'Europe/Helsinki', p,
       ST_Multi(ST_Buffer(p, 25)::geometry), 25, 60, 100, '\\x00'::bytea
FROM (SELECT id FROM merchants ORDER BY id LIMIT 1) m,
     LATERAL (SELECT i, ST_Project(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography,
                                   35000 * sqrt(random()), 2 * pi() * random()) AS p
              FROM generate_series(1, :n) i) g;
VACUUM ANALYZE venues;
"""


def build(server_url: str) -> str:
    server = make_url(sqlalchemy_url(server_url))
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{NAME}" TEMPLATE co_bench_10k'))
    admin.dispose()
    url = server.set(database=NAME).render_as_string(hide_password=False)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in filter(str.strip, _ADD.split(";")):
            conn.execute(text(statement), {"lat": CENTRE[0], "lon": CENTRE[1], "n": ADDED})
    engine.dispose()
    return url


def statement_of(ref: str) -> TextClause:
    """`_NEARBY_SQL` of geo/venues.py at `ref`."""
    return module_at(ref, "geo/venues.py", "before_venues")._NEARBY_SQL  # type: ignore[no-any-return]


def points(n: int, seed: int) -> list[tuple[float, float]]:
    """Uniform within 30 km of the centre (an equirectangular approximation is enough here)."""
    rng = random.Random(seed)
    lat0, lon0 = CENTRE
    out = []
    for _ in range(n):
        r, a = 30_000 * math.sqrt(rng.random()), 2 * math.pi * rng.random()
        lat = lat0 + r * math.cos(a) / 111_320
        lon = lon0 + r * math.sin(a) / (111_320 * math.cos(math.radians(lat0)))
        out.append((lat, lon))
    return out


def buffers(plan: dict[str, Any]) -> int:
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


def measure(
    engine: Engine,
    statements: dict[str, TextClause],
    where: list[tuple[float, float]],
    limit: int,
    seed: int,
) -> dict[tuple[str, float], dict[str, list[Any]]]:
    rng = random.Random(seed)
    runs = [(name, radius) for name in statements for radius in RADII]
    out: dict[tuple[str, float], dict[str, list[Any]]] = {
        run: {"ms": [], "buffers": [], "venues": [], "bodies": []} for run in runs
    }
    with engine.connect() as conn:
        for lat, lon in where:
            rng.shuffle(runs)
            for name, radius in runs:
                params = {"lat": lat, "lon": lon, "radius": radius, "limit": limit, "pairs": False}
                started = time.perf_counter()
                body = conn.execute(statements[name], params).one().body
                out[name, radius]["ms"].append((time.perf_counter() - started) * 1000)
                out[name, radius]["venues"].append(body.count('"distance_m"'))
                out[name, radius]["bodies"].append(body)
                explain = text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + str(statements[name]))
                [[[plan]]] = conn.execute(explain, params)
                out[name, radius]["buffers"].append(buffers(plan["Plan"]))
    return out


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="main", help="the git ref whose statement to compare")
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--plan", action="store_true", help="print one plan of each at 50 km")
    args = parser.parse_args(argv)
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        sys.exit("DATABASE_URL must name the server that holds co_bench_10k")
    url = make_url(sqlalchemy_url(server_url)).set(database=NAME)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM venues")).scalar_one()
    except Exception:
        count = 0
    if args.rebuild or count < ADDED:
        print(f"building {NAME} (co_bench_10k and {ADDED:,} venues around Helsinki)", flush=True)
        build(server_url)
    statements = {"before": statement_of(args.before), "after": _NEARBY_SQL}
    if args.plan:
        with engine.connect() as conn:
            params = {"lat": CENTRE[0], "lon": CENTRE[1], "radius": 50_000.0, "limit": args.limit}
            for name, sql in statements.items():
                explain = text("EXPLAIN (ANALYZE, BUFFERS) " + str(sql))
                print(f"--- {name} at 50 km")
                print(
                    "\n".join(row[0] for row in conn.execute(explain, {**params, "pairs": False}))
                )
    load = os.getloadavg()
    where = points(args.points, args.seed)
    measure(engine, statements, where[:20], args.limit, args.seed)  # warm the cache
    results = measure(engine, statements, where, args.limit, args.seed)
    print(f"{args.points} points within 30 km of central Helsinki, limit {args.limit};")
    print(f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print("statement  radius   ms median  ms p90  buffers median  buffers p90  venues median")
    for (name, radius), values in sorted(results.items(), key=lambda kv: (kv[0][0] != "before",)):
        print(
            f"{name:<9} {radius / 1000:>4.0f} km  {statistics.median(values['ms']):>9.2f}"
            f"  {p90(values['ms']):>6.2f}  {statistics.median(values['buffers']):>14.0f}"
            f"  {p90(values['buffers']):>11.0f}  {statistics.median(values['venues']):>13.0f}"
        )
    for name in statements:
        one = statistics.median(results[name, RADII[0]]["ms"])
        fifty = statistics.median(results[name, RADII[1]]["ms"])
        print(f"{name}: 50 km / 1 km = {fifty / one:.2f} (medians)")
    for radius in RADII:
        pairs = zip(
            results["before", radius]["bodies"], results["after", radius]["bodies"], strict=True
        )
        differ = sum(before != after for before, after in pairs)
        print(f"answers that differ at {radius / 1000:.0f} km: {differ} of {len(where)} points")
    engine.dispose()


if __name__ == "__main__":
    main()
