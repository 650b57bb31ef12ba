"""The mix at its peak with 0 and 1 read replica, and each operation's database CPU on each side.

A hot standby of the private cluster (`scripts/pg.sh --cluster bench-replica standby`: made
with `pg_basebackup -R` on first use, streaming from the primary after) serves the service's
reads when `DATABASE_REPLICA_URLS` names it (docs/scaling.md). In one run:

1. the standby stopped (no replica), the service without `DATABASE_REPLICA_URLS`: the mix at
   its peak (closed loop), the primary's CPU;
2. the standby started and caught up, the service with `DATABASE_REPLICA_URLS`: the same mix,
   the CPU of the primary and of the standby (its WAL replay included: every write reaches
   it), counted apart by postmaster (`bench.perf.Cluster`);
3. with the replica still in use, each operation alone: CPU per request on the server, the
   primary and the standby.

Both clusters share this machine's cores (two here): a replica adds no capacity, it moves
reading off the primary's processes onto the standby's, and adds its own costs (replay, the
read-your-writes fence's round trip). So the figure shows where each operation's database CPU
lands and what the routing costs, not the throughput a replica on its own machine would add.
The standby is stopped again at the end (its data stays in the checkout's state directory).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict
from typing import Any

from sqlalchemy import create_engine, make_url, text

from bench import loadgen
from core.uow import sqlalchemy_url

CLUSTER = "bench-replica"
OPS = ("nearby", "checkin", "redemption", "analytics")


def _pg(*args: str, check: bool = True) -> str:
    from bench.perf import ROOT

    done = subprocess.run(
        [str(ROOT / "scripts" / "pg.sh"), "--cluster", CLUSTER, *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"scripts/pg.sh --cluster {CLUSTER} {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def private_primary(server_url: str) -> bool:
    """Whether `server_url` is this checkout's private cluster (whose standby pg.sh makes)."""
    from bench.perf import ROOT

    done = subprocess.run(
        [str(ROOT / "scripts" / "pg.sh"), "url", "postgres"], capture_output=True, text=True
    )
    if done.returncode != 0:
        return False
    ours, theirs = (
        make_url(sqlalchemy_url(done.stdout.strip())),
        make_url(sqlalchemy_url(server_url)),
    )
    return (ours.host, ours.port) == (theirs.host, theirs.port)


def _lsn(url: str, query: str) -> Any:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar()
    finally:
        engine.dispose()


def _caught_up(primary_url: str, standby_url: str, timeout: float) -> bool:
    target = _lsn(primary_url, "SELECT pg_current_wal_flush_lsn()::text")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _lsn(
                standby_url,
                f"SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= '{target}'::pg_lsn",
            ):
                return True
        except Exception:  # still starting
            pass
        time.sleep(0.5)
    return False


def start_standby(primary_url: str, database: str) -> str:
    """Start (or make) the standby and wait until it has replayed what the primary has now; a
    standby too far behind to catch up (the WAL it needs recycled) is made again."""
    for attempt in range(2):
        _pg("standby")
        url = _pg("url", database)
        if _caught_up(primary_url, url, timeout=60):
            return url
        if attempt == 0:
            print("  the standby did not catch up: making it again", flush=True)
            _pg("destroy")
    raise RuntimeError("the standby did not catch up with the primary")


def _mix(
    server: Any, pools: Any, args: Any, starts: dict[str, int], clusters: list[Any]
) -> tuple[dict[str, Any], dict[str, int]]:
    from bench.perf import _overall_p99

    cpu = [c.cpu_s() for c in clusters]
    server_cpu = server.cpu_s()
    stats, peak, starts = loadgen.run(
        pools, server.base, loadgen.MIX, args.seconds, args.clients, starts=starts
    )
    n = max(sum(s.count for s in stats.values()), 1)
    result = {
        "per_s": peak,
        "p99_ms": _overall_p99(stats),
        "errors": sum(s.errors for s in stats.values()),
        "server_cpu_ms": (server.cpu_s() - server_cpu) / n * 1000,
        **{
            f"{c.name}_cpu_ms": (c.cpu_s() - before) / n * 1000
            for c, before in zip(clusters, cpu, strict=True)
        },
        "ops": {op: asdict(s) for op, s in stats.items()},
    }
    return result, starts


def measure(
    url: str,
    database: str,
    pools: Any,
    args: Any,
    starts: dict[str, int],
    primary: Any,
    kind: str,
) -> tuple[dict[str, Any], dict[str, int]]:
    from bench.perf import Cluster, Server

    env = {"DB_POOL_SIZE": str(args.pool_size)} if args.pool_size else {}
    _pg("stop", check=False)  # no standby: its replay would cost the machine
    result: dict[str, Any] = {}
    server = Server(kind, url, args.workers, args.threads, env)
    try:
        _, _, starts = loadgen.run(
            pools, server.base, loadgen.MIX, args.warmup, args.clients, starts=starts
        )
        result["none"], starts = _mix(server, pools, args, starts, [primary])
    finally:
        server.stop()
    print(
        f"  mix, no replica:  {result['none']['per_s']:6.0f} req/s  p99"
        f" {result['none']['p99_ms']:6.1f} ms  primary {result['none']['primary_cpu_ms']:.2f} ms"
        " CPU per request",
        flush=True,
    )
    try:
        standby_url = start_standby(url, database)
        standby = Cluster("standby", standby_url)
        clusters = [primary, standby]
        server = Server(
            kind, url, args.workers, args.threads, {**env, "DATABASE_REPLICA_URLS": standby_url}
        )
        try:
            _, _, starts = loadgen.run(
                pools, server.base, loadgen.MIX, args.warmup, args.clients, starts=starts
            )
            result["one"], starts = _mix(server, pools, args, starts, clusters)
            print(
                f"  mix, one replica: {result['one']['per_s']:6.0f} req/s  p99"
                f" {result['one']['p99_ms']:6.1f} ms  primary"
                f" {result['one']['primary_cpu_ms']:.2f} + standby"
                f" {result['one']['standby_cpu_ms']:.2f} ms CPU per request",
                flush=True,
            )
            alone = {}
            for op in OPS:
                cpu = [c.cpu_s() for c in clusters]
                server_cpu = server.cpu_s()
                stats, total, starts = loadgen.run(
                    pools, server.base, {op: 1.0}, args.seconds / 2, args.clients, starts=starts
                )
                n = max(stats[op].count, 1)
                alone[op] = {
                    "per_s": total,
                    "p99_ms": stats[op].p99_ms,
                    "errors": stats[op].errors,
                    "server_cpu_ms": (server.cpu_s() - server_cpu) / n * 1000,
                    **{
                        f"{c.name}_cpu_ms": (c.cpu_s() - before) / n * 1000
                        for c, before in zip(clusters, cpu, strict=True)
                    },
                }
                print(
                    f"  {op:10} alone, one replica: {total:6.0f} req/s; CPU per request:"
                    f" server {alone[op]['server_cpu_ms']:.2f}, primary"
                    f" {alone[op]['primary_cpu_ms']:.2f}, standby"
                    f" {alone[op]['standby_cpu_ms']:.2f} ms",
                    flush=True,
                )
            result["alone"] = alone
        finally:
            server.stop()
    finally:
        _pg("stop", check=False)
    return result, starts


def markdown(result: dict[str, Any], isolated: dict[str, Any]) -> list[str]:
    none, one = result["none"], result["one"]
    lines = [
        "## The mix with 0 and 1 read replica (both clusters on this machine's cores)",
        "",
        "| replicas | mix req/s at peak | p99 ms | server CPU ms | primary CPU ms |"
        " standby CPU ms | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| 0 | {none['per_s']:.0f} | {none['p99_ms']:.1f} | {none['server_cpu_ms']:.2f} |"
        f" {none['primary_cpu_ms']:.2f} | (stopped) | {none['errors']} |",
        f"| 1 | {one['per_s']:.0f} | {one['p99_ms']:.1f} | {one['server_cpu_ms']:.2f} |"
        f" {one['primary_cpu_ms']:.2f} | {one['standby_cpu_ms']:.2f} | {one['errors']} |",
        "",
        "Each operation alone, CPU per request (ms); no replica: the isolated runs above.",
        "",
        "| operation | no replica: server | primary | one replica: server | primary | standby |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op, x in result["alone"].items():
        base = isolated.get(op, {})
        lines.append(
            f"| {op} | {base.get('server_cpu_ms', 0):.2f} | {base.get('db_cpu_ms', 0):.2f} |"
            f" {x['server_cpu_ms']:.2f} | {x['primary_cpu_ms']:.2f} | {x['standby_cpu_ms']:.2f} |"
        )
    lines += [
        "",
        "Both clusters share the machine's cores: the replica moves reads' CPU off the primary's"
        " processes, it adds no capacity here (the standby's replay and the fence cost extra).",
    ]
    return lines
