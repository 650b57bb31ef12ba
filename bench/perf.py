"""The service at scale, measured against the database's own ceiling in the same run.

    make bench SCALE=100k            # or: .venv/bin/python -m bench.perf --scale 100k

1. builds (or reuses, `--reuse`) database `co_bench_<scale>` with `bench.dataset`;
2. captures the statements each operation sends (`bench.ceiling`);
3. for each server (`--servers gthread,sync,granian`; the first is the one `make run` uses):
   starts it the way `make run` does; for each operation runs its statements under pgbench with
   as many clients as the load generator has connections (the ceiling), then drives the
   operation alone through the service (closed loop, the peak), one right after the other; then
   the realistic mix at its peak and at 70% of that peak (open loop: the p99 that users see),
   and reads each worker's resident memory; then serves bench/floor.py (a nearby that does no
   work) the same way under the same load: the floor; right before the check-in's ceiling, a
   reference minimal check-in under pgbench (`bench.reference`);
4. the webhook outbox's cost to a check-in with the delivery worker running (`bench.outbox`,
   `--no-outbox`), and the mix with 0 and 1 read replica (`bench.replica`, `--no-replica`);
   `--only outbox|replica` runs one of them alone. The database's CPU is the bench cluster's
   own, by postmaster (`Cluster`), a standby's apart;
5. times nearby alone on every `co_bench_*` database present (10k, 100k, 1m venues) with
   `--scaling`, and what proof of presence costs (`bench.presence`: a tap's verification, a tap
   check-in next to a GPS check-in; about 30 s, `--no-presence` skips it);
6. writes `bench/out/report.json` and `bench/out/report.md`, with every target met or not.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from api import db
from api.config import SERVER_SETTINGS
from bench import ceiling, dataset, loadgen, outbox, presence, reference, replica
from core.uow import sqlalchemy_url
from geo.venues import DEFAULT_COOLDOWN_MINUTES

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
ISOLATED = ("nearby", "checkin", "checkin_hot", "redemption", "analytics")
TARGETS = {"checkin": 0.40, "nearby": 0.40, "redemption": 0.35}  # issue 21, item 3
# Tile38 1.26.1's NEARBY on the same 100k venues and queries, measured on a quiet machine for
# issue 21 (Tile38 is not installed here): nearby through HTTP should reach a quarter of it. A
# figure from another machine and day, so only a rough bar.
TILE38_NEARBY_PER_S = 4_256


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The service under test. `gthread` is exactly `make run`'s command (scripts/run.sh)."""

    def __init__(
        self,
        kind: str,
        url: str,
        workers: int,
        threads: int,
        env: dict[str, str],
        app: str = "api.wsgi:app",
        root: Path = ROOT,
    ):
        """`root`: the checkout whose app it serves (bench/ab.py serves an older one too)."""
        self.kind = kind
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        bin_dir = Path(sys.executable).parent
        if kind in ("gthread", "sync"):
            cmd = [
                str(bin_dir / "gunicorn"),
                "--config",
                "python:api.gunicorn_conf",
                app,
            ]
            if kind == "sync":
                cmd += ["--worker-class", "sync"]
        elif kind == "granian":
            cmd = [
                str(bin_dir / "granian"),
                "--interface",
                "wsgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--blocking-threads",
                str(threads),
                "--no-ws",
                app,
            ]
        else:
            raise ValueError(kind)
        OUT.mkdir(parents=True, exist_ok=True)
        self.log_path = OUT / f"server-{kind}.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=root,
            env={
                **os.environ,
                **({"PYTHONPATH": str(root)} if root != ROOT else {}),
                "DATABASE_URL": url,
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "WEB_CONCURRENCY": str(workers),
                "THREADS": str(threads),
                "RATE_LIMIT_ENABLED": "false",
                **env,
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(self.log_path.read_text(errors="replace")[-3000:]) from None
                time.sleep(0.2)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the server's processes."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "-g", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return sum(process_cpu_s(int(pid)) for pid in out.split())

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each process under the server's master (its workers)."""
        out = subprocess.run(
            ["ps", "-o", "pid=,ppid=,rss=", "-g", str(self.proc.pid)],
            capture_output=True,
            text=True,
        ).stdout
        rows = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
        return [round(rss / 1024, 1) for pid, _ppid, rss in rows if pid != self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (empty if the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def process_cpu_s(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def postmaster_of(url: str) -> int | None:
    """The pid of the postmaster serving `url`, if it runs on this machine: the parent of the
    backend that answers (every PostgreSQL process is a child of its cluster's postmaster)."""
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            fields = _stat(backend)  # while the backend lives
    finally:
        engine.dispose()
    return int(fields[1]) if fields else None


def cluster_cpu_s(postmaster: int | None) -> float:
    """CPU seconds (user + system) used so far by one PostgreSQL cluster: its postmaster, every
    live child of it (backends, WAL sender or receiver, the startup process replaying WAL on a
    standby, background workers), and what the postmaster has collected from children that
    ended (a pool's overflow connections come and go). Other clusters on the machine (a
    standby, other people's) are not counted. 0 when the server is not on this machine."""
    if postmaster is None:
        return 0.0
    own = _stat(postmaster)
    if not own:
        return 0.0
    ticks = sum(int(x) for x in own[11:15])  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(entry.name)
        if fields and fields[1] == str(postmaster):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Cluster:
    """A PostgreSQL cluster whose CPU the benchmark counts, known by its postmaster's pid."""

    def __init__(self, name: str, url: str):
        self.name, self.url = name, url
        self.postmaster = postmaster_of(url)
        if self.postmaster is None:
            print(f"  {name}: the server is not on this machine: its CPU reads as 0", flush=True)

    def cpu_s(self) -> float:
        return cluster_cpu_s(self.postmaster)


@contextlib.contextmanager
def repeat_visits(engine: Any, pools: loadgen.Pools) -> Iterator[None]:
    """The outbox and replica steps check in more users than a small dataset's pool holds, so
    the pool's cursor wraps and a user checks in again at the same venue, minutes later. For
    their duration the venues of those check-ins have no cooldown (the hot one never has):
    a repeat is then verified and unlocks, as a first visit does; set back after."""
    ids = [dataset.ident(dataset.VENUE, int(v)) for v in np.unique(pools.nearest_plain)]
    params = {"ids": ids, "default": DEFAULT_COOLDOWN_MINUTES}
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE venues SET checkin_cooldown_minutes = 0"
                " WHERE id = ANY(CAST(:ids AS uuid[])) AND checkin_cooldown_minutes = :default"
            ),
            params,
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE venues SET checkin_cooldown_minutes = :default"
                    " WHERE id = ANY(CAST(:ids AS uuid[]))"
                ),
                params,
            )


def used_pools(
    pools: loadgen.Pools, starts: dict[str, int]
) -> tuple[loadgen.Pools, dict[str, int]]:
    """The users the service runs checked in (where the cursors stopped), for the steps after
    them: with `repeat_visits` they check in again, and the users nobody used stay fresh for the
    next run on a reused database."""
    spread = pools.spread_users[: max(starts.get("spread", 0), 64)]
    hot = pools.hot_users[: max(starts.get("checkin_hot", 0), 64)]
    narrowed = dataclasses.replace(pools, spread_users=spread, hot_users=hot)
    return narrowed, {k: v for k, v in starts.items() if k == "redemption"}


def database_url(server_url: str, name: str) -> str:
    return str(
        make_url(sqlalchemy_url(server_url))
        .set(database=name)
        .render_as_string(hide_password=False)
    )


def exists(server_url: str, name: str) -> bool:
    admin = create_engine(database_url(server_url, "postgres"))
    try:
        with admin.connect() as conn:
            if not conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first():
                return False
    finally:
        admin.dispose()
    engine = create_engine(database_url(server_url, name))
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT to_regclass('bench_meta') IS NOT NULL")).scalar())
    finally:
        engine.dispose()


def live_codes(engine: Any, meta: dict[str, Any]) -> list[tuple[str, str, int]]:
    """The service's pool of codes to redeem, every one live again (a reused database keeps
    what earlier runs redeemed)."""
    first, count = meta["live_first"], meta["live_count"]
    ceiling.make_codes_live(engine, first, count)
    ids = [dataset.ident(dataset.UNLOCK, i) for i in range(first, first + count)]
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, venue_id::text, merchant_id::text FROM unlocks"
                " WHERE id = ANY(CAST(:ids AS uuid[])) AND redeemed_at IS NULL ORDER BY id"
            ),
            {"ids": ids},
        ).all()
    return [(r[0], r[1], dataset.index_of(r[2])) for r in rows]


def recent_users(engine: Any, except_venue: str | None = None) -> np.ndarray:
    """Users with a check-in in the last 3 days (at another venue than `except_venue`)."""
    with engine.connect() as conn:
        ids = conn.execute(
            text(
                "SELECT DISTINCT user_id::text FROM checkins"
                " WHERE created_at > now() - interval '3 days'"
                " AND venue_id IS DISTINCT FROM CAST(:venue AS uuid)"
            ),
            {"venue": except_venue},
        ).scalars()
        return np.array(sorted(dataset.index_of(i) for i in ids), dtype=np.int64)


def leave_out_recent_users(
    engine: Any, plan: dataset.Plan, pools: loadgen.Pools, name: str
) -> None:
    """Users whom a benchmark made check in (the captures, earlier runs on a reused database)
    may be refused for the cooldown, or for impossible travel (20,000 km at 300 km/h takes 67
    hours): the captures and the load leave out everyone with a check-in in the last 3 days,
    where the dataset's history ends, so their check-ins are what they say. The hot venue has
    no cooldown: its users only need no check-in elsewhere. (pgbench's users, the last quarter,
    are never in these pools.)"""
    pools.spread_users = np.setdiff1d(pools.spread_users, recent_users(engine))
    hot_venue = dataset.ident(dataset.VENUE, plan.hot_venue)
    pools.hot_users = np.setdiff1d(pools.hot_users, recent_users(engine, hot_venue))
    if not len(pools.spread_users) or not len(pools.hot_users):
        sys.exit(f"every user of {name} checked in during the last 3 days: rebuild it")


def capture_scripts(
    url: str, plan: dataset.Plan, pools: loadgen.Pools, reserved: list[tuple[str, str, int]]
) -> dict[str, list[str]]:
    """pgbench scripts per operation from statements captured on real requests."""
    from api import create_app

    app = create_app({"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "RATE_LIMIT_ENABLED": False})
    scripts: dict[str, list[str]] = {}
    try:
        # Enough captures that pgbench, like the load, spreads over many venues, users,
        # merchants and offers: a few scripts replayed would keep the ceiling's pages hot.
        for op, n in (
            ("nearby", 32),
            ("checkin", 32),
            ("checkin_hot", 1),
            ("redemption", 8),
            ("analytics", 16),
        ):
            requests = loadgen.Requests(
                pools, worker=0, workers=1, starts=dict.fromkeys(loadgen.CURSORS, 10**6), seed=99
            )
            if op == "redemption":
                requests.p = loadgen.Pools(
                    plan, pools.spread_users, pools.hot_users, pools.nearest_plain, reserved
                )
            out = []
            for _ in range(n):
                method, path, body, headers = requests.build(op)
                user = None
                if op.startswith("checkin"):
                    token = headers["Authorization"].split()[1]
                    user = int(token.split("_")[1]) - dataset.TAIL_BASE
                call_headers = dict(headers)

                def call(
                    client: Any,
                    m: str = method,
                    p: str = path,
                    b: Any = body,
                    h: dict[str, str] = call_headers,
                ) -> Any:
                    return client.open(p, method=m, data=b, headers=h)

                (captured,) = ceiling.capture(app, [(op, call)])
                expected = {"nearby": 200, "analytics": 200}.get(op, 201)
                outcome = loadgen.outcome_of(op, captured.status, captured.body)
                if captured.status != expected or (
                    op.startswith("checkin") and outcome != "unlocked"
                ):
                    # A rejected check-in is a much cheaper transaction: as a ceiling it
                    # would flatter the database and sink the service's ratio.
                    raise RuntimeError(f"capture of {op} answered {captured.status} {outcome}")
                code = unlock_tail = None
                if op == "redemption":
                    code = json.loads(body or b"{}")["code"]
                    with app.extensions["engine"].connect() as conn:
                        uid = conn.execute(
                            text("SELECT id::text FROM unlocks WHERE code = :c"), {"c": code}
                        ).scalar()
                    unlock_tail = int(str(uid)[-12:])
                out.append(
                    ceiling.template(
                        captured,
                        user=user,
                        code=code,
                        unlock_tail=unlock_tail,
                        idempotency_key=headers.get("Idempotency-Key"),
                    )
                )
            scripts[op] = out
    finally:
        db.dispose(app)
    return scripts


class Ceilings:
    """Runs an operation's captured scripts under pgbench: its ceiling, measured right before
    the service runs the same operation. This machine's speed drifts by a third within minutes
    (docs/performance.md), so a ceiling taken minutes apart from the service's figure would
    put that drift into the ratio."""

    def __init__(
        self,
        url: str,
        engine: Any,
        meta: dict[str, Any],
        plan: dataset.Plan,
        scripts: dict[str, list[str]],
        clients: int,
        seconds: float,
    ):
        self.url, self.engine, self.meta, self.plan = url, engine, meta, plan
        self.scripts, self.clients, self.seconds = scripts, clients, seconds

    def run(self, op: str) -> dict[str, float]:
        meta = self.meta
        if op == "redemption":
            ceiling.make_codes_live(self.engine, meta["pgbench_first"], meta["pgbench_count"])
        variables = {
            "base": ceiling.next_nonce(self.engine),
            "users": self.plan.users,
            "ufirst": dataset.pgbench_first_user(self.plan.users),
            "pool": meta["pgbench_count"],
            "share": max(meta["pgbench_count"] // self.clients, 1),
            "pgfirst": meta["pgbench_first"],
        }
        result = ceiling.run_pgbench(
            sqlalchemy_url(self.url), self.scripts[op], self.clients, self.seconds, variables
        )
        print(
            f"  ceiling {op:12} {result.tps:8.0f} tx/s  {result.latency_ms:6.1f} ms avg", flush=True
        )
        return {
            "ceiling_tps": result.tps,
            "ceiling_latency_ms": result.latency_ms,
            "ceiling_failed": result.failed,
        }


def nearby_scaling(server_url: str, seed: int, seconds: float) -> list[dict[str, Any]]:
    """Nearby's own statement, one client, on every bench database present."""
    rows = []
    for scale in ("10k", "100k", "1m"):
        name = f"co_bench_{scale}"
        if not exists(server_url, name):
            continue
        url = database_url(server_url, name)
        plan = dataset.Plan(seed, dataset.scale_of(scale))
        pools = loadgen.pools(plan, [])
        scripts = capture_scripts_nearby(url, plan, pools)
        result = ceiling.run_pgbench(sqlalchemy_url(url), scripts, 1, seconds, {"base": 0})
        rows.append(
            {
                "scale": scale,
                "venues": plan.venues,
                "latency_ms": result.latency_ms,
                "tps_1_client": result.tps,
            }
        )
        print(f"  nearby at {scale:>5} venues: {result.latency_ms:.2f} ms", flush=True)
    return rows


def capture_scripts_nearby(url: str, plan: dataset.Plan, pools: loadgen.Pools) -> list[str]:
    from api import create_app

    app = create_app({"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "RATE_LIMIT_ENABLED": False})
    requests = loadgen.Requests(pools, worker=0, workers=1, starts={}, seed=5)
    out = []
    try:
        for _ in range(32):
            _, path, _, _ = requests.build("nearby")

            def call(client: Any, p: str = path) -> Any:
                return client.get(p)

            (captured,) = ceiling.capture(app, [("nearby", call)])
            out.append(ceiling.template(captured))
    finally:
        db.dispose(app)
    return out


def stats_dict(stats: dict[str, loadgen.OpStats]) -> dict[str, Any]:
    return {op: asdict(s) for op, s in stats.items()}


def bench_server(
    kind: str,
    url: str,
    pools: loadgen.Pools,
    ceilings: Ceilings,
    args: argparse.Namespace,
    starts: dict[str, int],
    primary: Cluster,
) -> tuple[dict[str, Any], dict[str, int]]:
    env = {}
    if args.pool_size:
        env["DB_POOL_SIZE"] = str(args.pool_size)
    server = Server(kind, url, args.workers, args.threads, env)
    result: dict[str, Any] = {"server": kind}
    try:
        print(f"server {kind}: {server.base}", flush=True)
        _, _, starts = loadgen.run(
            pools, server.base, loadgen.MIX, args.warmup, args.clients, starts=starts
        )
        isolated = {}
        for op in args.ops.split(","):
            if op == "checkin":  # the least a check-in's SQL can be, before its own ceiling
                result["reference_checkin"] = reference.run(
                    sqlalchemy_url(url), ceilings.engine, ceilings.plan, args.clients, args.seconds
                )
            ceiling_of_op = ceilings.run(op)
            server_cpu, db_cpu = server.cpu_s(), primary.cpu_s()
            stats, total, starts = loadgen.run(
                pools, server.base, {op: 1.0}, args.seconds, args.clients, starts=starts
            )
            isolated[op] = {**asdict(stats[op]), **ceiling_of_op}
            # Where each request's CPU goes.
            count = max(stats[op].count, 1)
            isolated[op]["server_cpu_ms"] = (server.cpu_s() - server_cpu) / count * 1000
            isolated[op]["db_cpu_ms"] = (primary.cpu_s() - db_cpu) / count * 1000
            print(
                f"  service {op:12} {total:8.0f} req/s  p50 {stats[op].p50_ms:6.1f} ms"
                f"  p99 {stats[op].p99_ms:6.1f} ms  {stats[op].outcomes}",
                flush=True,
            )
        result["isolated"] = isolated
        stats, peak, starts = loadgen.run(
            pools, server.base, loadgen.MIX, args.seconds, args.clients, starts=starts
        )
        result["mix_peak"] = {"per_s": peak, "ops": stats_dict(stats)}
        print(f"  mix at peak: {peak:.0f} req/s", flush=True)
        stats, achieved, starts = loadgen.run(
            pools,
            server.base,
            loadgen.MIX,
            args.seconds,
            args.clients,
            rate=0.7 * peak,
            starts=starts,
        )
        overall = _overall_p99(stats)
        result["mix_70"] = {
            "target_per_s": 0.7 * peak,
            "per_s": achieved,
            "p99_ms": overall,
            "ops": stats_dict(stats),
        }
        print(f"  mix at 70%: {achieved:.0f} req/s, p99 {overall:.1f} ms", flush=True)
        result["worker_rss_mb"] = server.worker_rss_mb()
    finally:
        server.stop()
    result["floor"] = floor(kind, url, pools, args)
    print(
        f"  floor: an empty nearby under {kind}: {result['floor']['per_s']:.0f} req/s,"
        f" {result['floor']['server_cpu_ms']:.2f} ms of server CPU per request",
        flush=True,
    )
    return result, starts


def floor(kind: str, url: str, pools: loadgen.Pools, args: argparse.Namespace) -> dict[str, float]:
    """The same server and load on bench/floor.py, whose nearby does no work: what the HTTP
    server and Flask cost per request, the least the service can cost."""
    server = Server(kind, url, args.workers, args.threads, {}, app="bench.floor:app")
    try:
        cpu = server.cpu_s()
        stats, total, _ = loadgen.run(
            pools, server.base, {"nearby": 1.0}, args.seconds, args.clients
        )
        count = max(stats["nearby"].count, 1)
        return {
            "per_s": total,
            "server_cpu_ms": (server.cpu_s() - cpu) / count * 1000,
            "errors": stats["nearby"].errors,
        }
    finally:
        server.stop()


def _overall_p99(stats: dict[str, loadgen.OpStats]) -> float:
    # a count-weighted estimate from per-op percentiles is wrong; recompute from the op p99s'
    # upper bound: the overall p99 is at most the max p99 of ops carrying >= 1% of requests.
    total = sum(s.count for s in stats.values())
    return max(s.p99_ms for s in stats.values() if s.count >= 0.01 * total)


def evaluate(report: dict[str, Any]) -> list[dict[str, Any]]:
    main = report["servers"][0]
    targets = []
    for op, share in TARGETS.items():
        if op not in main["isolated"]:  # left out with --ops
            continue
        alone = main["isolated"][op]
        ratio = alone["per_s"] / alone["ceiling_tps"]
        targets.append(
            {
                "target": f"{op} at least {share:.0%} of its ceiling",
                "figure": f"{alone['per_s']:.0f} / {alone['ceiling_tps']:.0f} = {ratio:.1%}",
                "met": ratio >= share,
            }
        )
    if "nearby" in main["isolated"]:
        per_s = main["isolated"]["nearby"]["per_s"]
        targets.append(
            {
                "target": "nearby at least a quarter of Tile38's NEARBY "
                f"({TILE38_NEARBY_PER_S:,} q/s, measured elsewhere: issue 21)",
                "figure": f"{per_s:.0f} / {TILE38_NEARBY_PER_S:,} = {per_s / TILE38_NEARBY_PER_S:.1%}",
                "met": per_s >= TILE38_NEARBY_PER_S / 4,
            }
        )
    ref = main.get("reference_checkin")
    if ref and "checkin" in main["isolated"]:
        ceiling_tps = main["isolated"]["checkin"]["ceiling_tps"]
        targets.append(
            {
                "target": "check-in SQL ceiling at least a third of a minimal check-in's",
                "figure": f"{ceiling_tps:.0f} / {ref['tps']:.0f} tx/s = {ceiling_tps / ref['tps']:.1%}",
                "met": ceiling_tps >= ref["tps"] / 3,
            }
        )
    p99 = main["mix_70"]["p99_ms"]
    targets.append(
        {
            "target": "p99 under 25 ms at 70% of peak (mix, every op with >= 1%)",
            "figure": f"{p99:.1f} ms at {main['mix_70']['per_s']:.0f} req/s",
            "met": p99 < 25,
        }
    )
    if {"checkin_hot", "checkin"} <= main["isolated"].keys():
        hot = main["isolated"]["checkin_hot"]["per_s"]
        spread = main["isolated"]["checkin"]["per_s"]
        targets.append(
            {
                "target": "hot offer keeps at least 50% of spread check-ins",
                "figure": f"{hot:.0f} / {spread:.0f} = {hot / spread:.0%}",
                "met": hot >= 0.5 * spread,
            }
        )
    rss = max(main["worker_rss_mb"] or [0])
    targets.append(
        {
            "target": "memory per server worker under 150 MB",
            "figure": f"{rss:.0f} MB (largest worker)",
            "met": rss < 150,
        }
    )
    if "outbox" in report:
        m, d = report["outbox"]["modes"], report["outbox"]["breakdown"]
        none, sub = m["none"], m["subscribed"]
        # issue 17's measure: what the outbox adds to a check-in (its events written in the
        # check-in's transaction), the deliveries apart
        targets.append(
            {
                "target": "outbox: a check-in writing its events, API + database CPU within 10%",
                "figure": f"x{d['checkin_cpu']:.2f} (throughput x{d['checkin_per_s']:.2f})",
                "met": d["checkin_cpu"] <= 1.10,
            }
        )
        # and everything the webhooks add, the worker's deliveries included
        for what, a, b in (
            (
                "server CPU (API + worker)",
                none["server_cpu_ms"] + none["worker_cpu_ms"],
                sub["server_cpu_ms"] + sub["worker_cpu_ms"],
            ),
            ("database CPU", none["db_cpu_ms"], sub["db_cpu_ms"]),
        ):
            targets.append(
                {
                    "target": f"webhooks, deliveries included: {what} per check-in within 10%",
                    "figure": f"{b:.2f} / {a:.2f} ms = x{b / a if a else 0:.2f}",
                    "met": b <= 1.10 * a,
                }
            )
        targets.append(
            {
                "target": "webhooks, deliveries included: check-ins/s within 10%",
                "figure": f"{sub['per_s']:.0f} / {none['per_s']:.0f} = x"
                f"{sub['per_s'] / none['per_s'] if none['per_s'] else 0:.2f}",
                "met": sub["per_s"] >= 0.9 * none["per_s"],
            }
        )
    scaling = report.get("nearby_scaling") or []
    if len(scaling) >= 2:
        a, b = scaling[0], scaling[-1]
        growth = b["latency_ms"] / a["latency_ms"]
        log_growth = math.log(b["venues"]) / math.log(a["venues"])
        targets.append(
            {
                "target": "nearby cost grows roughly with log n",
                "figure": f"{a['scale']} -> {b['scale']}: x{growth:.2f} (log n: x{log_growth:.2f}, "
                f"linear: x{b['venues'] / a['venues']:.0f})",
                "met": growth <= 2 * log_growth,
            }
        )
    return targets


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Service benchmark: {report['scale']} venues",
        "",
        f"{report['finished']} on {report['machine']}; {report['clients']} client connections, "
        f"{report['seconds']} s per step; server workers x threads: "
        f"{report['workers']} x {report['threads']}; load average (1, 5, 15 min) at the start"
        f" {', '.join(f'{x:.1f}' for x in report['load_average']['before'])}, at the end"
        f" {', '.join(f'{x:.1f}' for x in report['load_average']['after'])}.",
        "",
        "## Targets",
        "",
        "| target | figure | met |",
        "|---|---|---|",
    ]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {t['figure']} | {'yes' if t['met'] else '**no**'} |")
    lines += [
        "",
        "## Each operation alone (closed loop) against its pgbench ceiling",
        "",
        "The ceiling is measured right before the service runs the same operation.",
        "",
    ]
    header = "| operation |" + "".join(
        f" ceiling tx/s | {s['server']} req/s | ratio | p50 ms | p99 ms |"
        for s in report["servers"]
    )
    lines += [header, "|---|" + "---:|---:|---:|---:|---:|" * len(report["servers"])]
    for op in ISOLATED:
        if op not in report["servers"][0]["isolated"]:
            continue
        row = f"| {op} |"
        for s in report["servers"]:
            st = s["isolated"][op]
            ratio = st["per_s"] / st["ceiling_tps"] if st["ceiling_tps"] else 0
            row += (
                f" {st['ceiling_tps']:.0f} | {st['per_s']:.0f} | {ratio:.0%} |"
                f" {st['p50_ms']:.1f} | {st['p99_ms']:.1f} |"
            )
        lines.append(row)
    for s in report["servers"]:
        ref = s.get("reference_checkin")
        if ref and "checkin" in s["isolated"]:
            ceiling_tps = s["isolated"]["checkin"]["ceiling_tps"]
            lines += [
                "",
                f"Reference minimal check-in ({s['server']} run; bench/reference.py: token, fence"
                f" test, check-in insert, cap claim, code insert) under pgbench right before the"
                f" check-in ceiling: {ref['tps']:.0f} tx/s, {ref['latency_ms']:.1f} ms avg; the"
                f" service's check-in SQL ceiling is {ceiling_tps / ref['tps']:.1%} of it.",
            ]
    lines += [
        "",
        "The floor: the same server and load on bench/floor.py, whose nearby answers"
        ' `{"venues": []}` without the database: '
        + "; ".join(
            f"{s['server']} {s['floor']['per_s']:.0f} req/s at"
            f" {s['floor']['server_cpu_ms']:.2f} ms of server CPU per request"
            for s in report["servers"]
        )
        + ".",
    ]
    lines += [
        "",
        "CPU per request in those runs (milliseconds of CPU time, all processes of each side):",
        "",
        "| operation |"
        + "".join(f" {s['server']}: server | database |" for s in report["servers"]),
        "|---|" + "---:|---:|" * len(report["servers"]),
    ]
    for op in ISOLATED:
        if op not in report["servers"][0]["isolated"]:
            continue
        row = f"| {op} |"
        for s in report["servers"]:
            st = s["isolated"][op]
            row += f" {st.get('server_cpu_ms', 0):.2f} | {st.get('db_cpu_ms', 0):.2f} |"
        lines.append(row)
    lines += ["", "## The mix at its peak and at 70% of it (open loop)", ""]
    for s in report["servers"]:
        lines += [
            f"**{s['server']}**: peak {s['mix_peak']['per_s']:.0f} req/s; at 70% "
            f"({s['mix_70']['per_s']:.0f} req/s) p99 {s['mix_70']['p99_ms']:.1f} ms; "
            f"worker RSS {s['worker_rss_mb']} MB",
            "",
            "| operation | share | peak req/s | p50 | p90 | p99 | at 70%: p50 | p90 | p99 | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for op in loadgen.OPS:
            if op not in s["mix_peak"]["ops"] or op not in s["mix_70"]["ops"]:
                continue
            p, q = s["mix_peak"]["ops"][op], s["mix_70"]["ops"][op]
            lines.append(
                f"| {op} | {loadgen.MIX[op]:.0%} | {p['per_s']:.0f} | {p['p50_ms']:.1f} | "
                f"{p['p90_ms']:.1f} | {p['p99_ms']:.1f} | {q['p50_ms']:.1f} | {q['p90_ms']:.1f} | "
                f"{q['p99_ms']:.1f} | {p['errors'] + q['errors']} |"
            )
        lines.append("")
    if report.get("nearby_scaling"):
        lines += [
            "## Nearby as the venues grow (its statement, one pgbench client)",
            "",
            "| venues | ms per query |",
            "|---:|---:|",
        ]
        for row in report["nearby_scaling"]:
            lines.append(f"| {row['venues']:,} | {row['latency_ms']:.2f} |")
        lines.append("")
    if "outbox" in report:
        lines += [*outbox.markdown(report["outbox"]), ""]
    if "replica" in report:
        isolated = report["servers"][0]["isolated"]
        lines += [*replica.markdown(report["replica"], isolated), ""]
    if "presence" in report:
        lines += [*presence.markdown(report["presence"]), ""]
    return "\n".join(lines) + "\n"


def only(
    args: argparse.Namespace,
    server_url: str,
    name: str,
    url: str,
    engine: Any,
    pools: loadgen.Pools,
    out: Path,
) -> int:
    """One step alone (`--only outbox|replica`), for working on what it measures."""
    primary = Cluster("primary", url)
    load_before = os.getloadavg()
    kind = args.servers.split(",")[0].strip()
    with repeat_visits(engine, pools):
        if args.only == "outbox":
            result, _ = outbox.measure(
                url, pools, args, {}, primary, kind, before=args.outbox_before
            )
            lines = outbox.markdown(result)
        else:
            if not replica.private_primary(server_url):
                sys.exit("the replica step needs this checkout's cluster (unset DATABASE_URL)")
            result, _ = replica.measure(url, name, pools, args, {}, primary, kind)
            lines = replica.markdown(result, {})
    engine.dispose()
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    (out / f"report-{args.only}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text_ = "\n".join(
        [
            f"# {args.only} at {args.scale}, {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; load average"
            f" {load_before[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
            "",
            *lines,
        ]
    )
    (out / f"report-{args.only}.md").write_text(text_ + "\n")
    print(text_)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="10k")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="reuse co_bench_<scale> if built")
    parser.add_argument("--database", default=None)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--clients", type=int, default=16)
    defaults = {s.name: s.default for s in SERVER_SETTINGS}  # what `make run` uses
    parser.add_argument("--workers", type=int, default=defaults["WEB_CONCURRENCY"])
    parser.add_argument("--threads", type=int, default=defaults["THREADS"])
    parser.add_argument("--pool-size", type=int, default=0, help="DB_POOL_SIZE (0: default)")
    parser.add_argument("--servers", default="gthread", help="gthread,sync,granian")
    parser.add_argument("--scaling", action="store_true", help="nearby on every co_bench_* db")
    parser.add_argument(
        "--no-presence", action="store_true", help="skip bench/presence.py (about 30 s)"
    )
    parser.add_argument(
        "--no-outbox", action="store_true", help="skip the webhook outbox's cost (bench/outbox.py)"
    )
    parser.add_argument(
        "--outbox-before",
        action="store_true",
        help="the outbox step also runs a worker without prepared statements (as before them)",
    )
    parser.add_argument(
        "--no-replica", action="store_true", help="skip the mix with a replica (bench/replica.py)"
    )
    parser.add_argument(
        "--only",
        choices=("outbox", "replica"),
        help="run that step alone (no ceilings, no service runs): report-<step>.json/.md",
    )
    parser.add_argument(
        "--ops",
        default=",".join(ISOLATED),
        help="the operations run alone, each after its ceiling (default: all of "
        + ", ".join(ISOLATED)
        + "); the mix always runs",
    )
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    unknown = set(args.ops.split(",")) - set(ISOLATED)
    if unknown:
        parser.error(f"--ops: unknown {', '.join(sorted(unknown))} (known: {', '.join(ISOLATED)})")
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        sys.exit("DATABASE_URL must name a server where databases can be created")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.database or f"co_bench_{args.scale}"
    venues = dataset.scale_of(args.scale)
    if args.reuse and exists(server_url, name):
        url = database_url(server_url, name)
        dataset.migrate(url)
    else:
        url = dataset.build(server_url, name, venues, args.seed)
    engine = create_engine(url)
    meta = ceiling.meta(engine)
    plan = dataset.Plan(meta["seed"], meta["venues"])
    codes = live_codes(engine, meta)
    reserved, codes = codes[-8:], codes[:-8]
    pools = loadgen.pools(plan, codes)

    leave_out_recent_users(engine, plan, pools, name)  # the captures need fresh users too
    if args.only:
        return only(args, server_url, name, url, engine, pools, out)
    print("capturing the service's statements", flush=True)
    scripts = capture_scripts(url, plan, pools, reserved)
    (out / "pgbench").mkdir(exist_ok=True)
    for op, op_scripts in scripts.items():
        for i, script in enumerate(op_scripts):
            (out / "pgbench" / f"{op}-{i}.sql").write_text(script)
    ceilings = Ceilings(url, engine, meta, plan, scripts, args.clients, args.seconds)
    leave_out_recent_users(engine, plan, pools, name)  # and the load, the captures' users
    starts: dict[str, int] = {}
    servers = []
    primary = Cluster("primary", url)
    load_before = os.getloadavg()
    for kind in args.servers.split(","):
        result, starts = bench_server(kind.strip(), url, pools, ceilings, args, starts, primary)
        servers.append(result)
    extra: dict[str, Any] = {}
    main_kind = args.servers.split(",")[0].strip()
    pools, starts = used_pools(pools, starts)
    with repeat_visits(engine, pools):
        if not args.no_outbox:
            print("the webhook outbox's cost to a check-in", flush=True)
            extra["outbox"], starts = outbox.measure(
                url, pools, args, starts, primary, main_kind, before=args.outbox_before
            )
        if not args.no_replica:
            if replica.private_primary(server_url):
                print("the mix with 0 and 1 read replica", flush=True)
                extra["replica"], starts = replica.measure(
                    url, name, pools, args, starts, primary, main_kind
                )
            else:
                print("no replica step: DATABASE_URL is not this checkout's cluster", flush=True)
    report: dict[str, Any] = {
        "scale": args.scale,
        "database": name,
        "rows": {
            "venues": plan.venues,
            "offers": plan.offers,
            "users": plan.users,
            "checkins": plan.checkins,
            "merchants": plan.merchants,
        },
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "clients": args.clients,
        "seconds": args.seconds,
        "workers": args.workers,
        "threads": args.threads,
        "servers": servers,
        **extra,
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    if args.scaling:
        print("nearby scaling", flush=True)
        report["nearby_scaling"] = nearby_scaling(server_url, args.seed, min(args.seconds, 10))
    if not args.no_presence:
        print("proof of presence: tap verification, tap and GPS check-ins", flush=True)
        report["presence"] = presence.measure(server_url, n=200)
    report["targets"] = evaluate(report)
    engine.dispose()
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
