"""A load generator for the real HTTP service: worker processes, one keep-alive connection each.

Requests are realistic and addressed from the dataset's plan (`bench.dataset.Plan`) without
reading the database, except the pool of live codes to redeem:

- `nearby`: anonymous `GET /v1/venues/nearby` from a point within a few hundred metres of a
  venue (venues sit where people live, so points do too);
- `checkin`: a user checks in at a venue near home whose offer unlocks on every visit, with an
  `Idempotency-Key` as the mobile client sends; verified, and it unlocks a code;
- `checkin_rejected`: the same from 3 km away (rejected `outside_geofence`);
- `checkin_hot`: users of the hot pool check in at the single hot venue, whose one offer
  unlocks on every check-in under a total cap: every one claims the same counter row;
- `redemption`: a merchant's owner key redeems a live code at its venue (each code once);
- `analytics`: a merchant reads an offer's funnel.

Each worker speaks HTTP/1.1 over a plain socket (`Connection`): http.client spent about 0.45 ms of
CPU per request parsing headers with the email package, on the 2 cores the server and the
database share, where pgbench, the ceiling's client, is C and spends next to nothing.

Closed loop (`rate=None`): each worker sends as soon as the previous answer arrives: the peak.
Open loop (`rate=R`): each worker sends on a fixed schedule of R / workers per second and latency
is measured from the scheduled time, so a slow answer delays and is charged to the requests
behind it (no coordinated omission).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from bench import dataset
from bench.dataset import Plan

OPS = ("nearby", "checkin", "checkin_rejected", "checkin_hot", "redemption", "analytics")
MIX = {
    "nearby": 0.55,
    "checkin": 0.20,
    "checkin_rejected": 0.03,
    "checkin_hot": 0.05,
    "redemption": 0.12,
    "analytics": 0.05,
}
HOT_LAT, HOT_LON = 60.1699, 24.9384  # the hot venue (bench.dataset)
CURSORS = ("spread", "checkin_hot", "redemption")  # pools walked once: users, hot users, codes


@dataclass
class Pools:
    """What workers draw from; built once in the parent, inherited by forked workers."""

    plan: Plan
    spread_users: np.ndarray
    hot_users: np.ndarray
    nearest_plain: np.ndarray  # per user: the plain-offer venue nearest home (by index)
    codes: list[tuple[str, str, int]]  # (code, venue id, merchant index)


def pools(plan: Plan, codes: list[tuple[str, str, int]]) -> Pools:
    geo = plan.geo
    home = plan.home
    lat, lon = np.radians(geo["lat"][home]), np.radians(geo["lon"][home])
    hlat, hlon = math.radians(HOT_LAT), math.radians(HOT_LON)
    km = 6371 * np.arccos(
        np.clip(
            np.sin(lat) * math.sin(hlat) + np.cos(lat) * math.cos(hlat) * np.cos(lon - hlon), -1, 1
        )
    )
    km[dataset.pgbench_first_user(plan.users) :] = np.inf  # the ceiling's users
    hot = np.flatnonzero(km < 3000)
    if len(hot) < 64:  # tiny scales: the users nearest the hot venue
        hot = np.argsort(km)[:64]
    spread = np.setdiff1d(np.arange(dataset.pgbench_first_user(plan.users)), hot)
    plain = np.sort(plan.plain_offer_venues)
    pos = np.clip(np.searchsorted(plain, home), 0, len(plain) - 1)
    left = plain[np.maximum(pos - 1, 0)]
    right = plain[pos]
    nearest = np.where(np.abs(home - left) <= np.abs(right - home), left, right)
    return Pools(plan, spread, hot, nearest, codes)


class Requests:
    """Builds one request of an op; per-worker cursors keep users and codes unique per run."""

    def __init__(
        self, pools: Pools, worker: int, workers: int, starts: Mapping[str, int], seed: int
    ):
        self.p = pools
        self.plan = pools.plan
        self.rng = np.random.default_rng([seed, worker, *sorted(starts.values())])
        self.worker, self.workers, self.starts = worker, workers, starts
        self.n: dict[str, int] = {}
        self.tokens: dict[int, str] = {}

    def _next(self, name: str, size: int) -> int:
        i = self.n.get(name, 0)
        self.n[name] = i + 1
        return (self.starts.get(name, 0) + i * self.workers + self.worker) % max(size, 1)

    def _user_token(self, user: int) -> str:
        token = self.tokens.get(user)
        if token is None:
            token = self.tokens[user] = dataset.user_token(self.plan.seed, user)
        return token

    def build(self, op: str) -> tuple[str, str, bytes | None, dict[str, str]]:
        geo = self.plan.geo
        if op == "nearby":
            v = int(self.rng.integers(self.plan.venues))
            lat = geo["lat"][v] + self.rng.normal(0, 0.003)
            lon = geo["lon"][v] + self.rng.normal(0, 0.003)
            return "GET", f"/v1/venues/nearby?lat={lat:.6f}&lon={lon:.6f}", None, {}
        if op in ("checkin", "checkin_rejected", "checkin_hot"):
            if op == "checkin_hot":
                user = int(self.p.hot_users[self._next(op, len(self.p.hot_users))])
                venue, lat, lon = self.plan.hot_venue, HOT_LAT, HOT_LON
            else:
                user = int(self.p.spread_users[self._next("spread", len(self.p.spread_users))])
                venue = int(self.p.nearest_plain[user])
                lat = float(geo["lat"][venue]) + self.rng.normal(0, 2e-5)
                lon = float(geo["lon"][venue])
                if op == "checkin_rejected":
                    lat += 0.03
            checkin: dict[str, object] = {
                "venue_id": dataset.ident(dataset.VENUE, venue),
                "lat": round(lat, 7),
                "lon": round(lon, 7),
                "accuracy_m": 10,
                "observed_at": datetime.now(UTC).isoformat(),
            }
            headers = {
                "Authorization": f"Bearer {self._user_token(user)}",
                "Idempotency-Key": str(uuid.uuid4()),
                "Content-Type": "application/json",
            }
            return "POST", "/v1/checkins", json.dumps(checkin).encode(), headers
        if op == "redemption":
            code, venue_id, merchant = self.p.codes[self._next(op, len(self.p.codes))]
            headers = {
                "Authorization": f"Bearer {dataset.merchant_key(self.plan.seed, merchant)}",
                "Idempotency-Key": str(uuid.uuid4()),
                "Content-Type": "application/json",
            }
            body = json.dumps({"code": code, "venue_id": venue_id}).encode()
            return "POST", "/v1/redemptions", body, headers
        if op == "analytics":
            k = int(self.rng.integers(self.plan.offers))
            headers = {"Authorization": f"Bearer {dataset.merchant_key(self.plan.seed, k // 2)}"}
            path = f"/v1/analytics/offers/{dataset.ident(dataset.OFFER, k)}/funnel"
            return "GET", path, None, headers
        raise ValueError(op)


class Connection:
    """One keep-alive HTTP/1.1 connection: sends a request, reads the response its
    `Content-Length` says (the service always sends one; chunked answers are refused)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        end = self.buf.find(b"\r\n\r\n")
        while end < 0:
            self._recv()
            end = self.buf.find(b"\r\n\r\n")
        head = self.buf[:end].lower()
        if b"\r\ntransfer-encoding:" in head:
            raise ConnectionError("chunked response")
        length = 0
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        while len(self.buf) < end + 4 + length:
            self._recv()
        data, self.buf = self.buf[end + 4 : end + 4 + length], self.buf[end + 4 + length :]
        if b"\r\nconnection: close" in head:
            self.close()
            self._connect()
        return int(head[9:12]), data

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def outcome_of(op: str, status: int, body: bytes) -> str:
    """How a request ended: a check-in's verdict (`unlocked`, `verified`, `rejected:<codes>`),
    otherwise the status code."""
    if op.startswith("checkin") and status == 201:
        answer = json.loads(body)
        if answer["status"] != "verified":
            return "rejected:" + ",".join(r["code"] for r in answer["reasons"])
        return "unlocked" if answer["unlocks"] else "verified"
    return str(status)


def _worker(
    pools: Pools,
    host: str,
    port: int,
    mix: dict[str, float],
    seconds: float,
    rate: float | None,
    worker: int,
    workers: int,
    starts: Mapping[str, int],
    seed: int,
    start_at: float,
    queue: Any,
) -> None:
    requests = Requests(pools, worker, workers, starts, seed)
    ops = list(mix)
    weights = np.array([mix[o] for o in ops], dtype=float)
    weights /= weights.sum()
    choices = requests.rng.choice(len(ops), size=1_000_000, p=weights)
    conn = Connection(host, port)
    records: list[tuple[int, float, float, int, str]] = []
    interval = 1.0 / rate if rate else 0.0
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.perf_counter() + (requests.rng.random() * interval if rate else 0.0)
    i = 0
    while True:
        scheduled = t0 + i * interval if rate else time.perf_counter()
        if scheduled - t0 >= seconds:
            break
        now = time.perf_counter()
        if scheduled > now:
            time.sleep(scheduled - now)
        op_index = int(choices[i % len(choices)])
        method, path, body, headers = requests.build(ops[op_index])
        sent = time.perf_counter()
        try:
            status, data = conn.request(method, path, body, headers)
            outcome = outcome_of(ops[op_index], status, data)
        except (OSError, ValueError) as exc:  # ValueError: a response it cannot parse
            conn.close()
            conn = Connection(host, port)  # a fresh connection for the next request
            status, outcome = 0, type(exc).__name__
        done = time.perf_counter()
        start = scheduled if rate else sent
        records.append((op_index, sent - t0, done - start, status, outcome))
        i += 1
    conn.close()
    queue.put((worker, ops, records, dict(requests.n)))


@dataclass
class OpStats:
    count: int
    per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    outcomes: dict[str, int]


def run(
    pools: Pools,
    base_url: str,
    mix: dict[str, float],
    seconds: float,
    workers: int,
    rate: float | None = None,
    starts: Mapping[str, int] | None = None,
    seed: int = 1,
) -> tuple[dict[str, OpStats], float, dict[str, int]]:
    """Drive the service; per-op stats, total throughput, and where each pool's cursor ended
    (pass it as the next run's `starts` so no user or code is used twice)."""
    starts = dict(starts or {})
    host, _, port = base_url.removeprefix("http://").partition(":")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                pools,
                host,
                int(port),
                mix,
                seconds,
                rate / workers if rate else None,
                w,
                workers,
                starts,
                seed,
                start_at,
                queue,
            ),
        )
        for w in range(workers)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join()
    by_op: dict[str, list[tuple[float, int, str]]] = {}
    used: dict[str, int] = {}
    for _, ops, records, cursors in results:
        for name, n in cursors.items():
            used[name] = max(used.get(name, 0), n)
        for op_index, _, latency, status, outcome in records:
            by_op.setdefault(ops[op_index], []).append((latency, status, outcome))
    stats = {}
    total = 0
    for op, rows in by_op.items():
        lat = np.array([r[0] for r in rows]) * 1000
        outcomes: dict[str, int] = {}
        for _, _, outcome in rows:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        stats[op] = OpStats(
            count=len(rows),
            per_s=len(rows) / seconds,
            p50_ms=float(np.percentile(lat, 50)),
            p90_ms=float(np.percentile(lat, 90)),
            p99_ms=float(np.percentile(lat, 99)),
            errors=sum(1 for _, status, _ in rows if status == 0 or status >= 500),
            outcomes=outcomes,
        )
        total += len(rows)
    ends = {name: starts.get(name, 0) + n * workers for name, n in used.items()}
    return stats, total / seconds, {**starts, **ends}
