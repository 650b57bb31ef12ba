"""Where a check-in's database time goes, statement by statement, and its ceiling against the
reference minimal check-in, for two sets of captured statements side by side (issue 21).

    # the check-in's statements as this tree sends them, captured as `make bench` does
    python -m bench.planning capture DIR
    # EXPLAIN (ANALYZE, BUFFERS, SUMMARY) of each statement of each captured check-in
    python -m bench.planning explain DIR
    # each DIR's check-in scripts under pgbench, each right after a reference, ROUNDS times
    python -m bench.planning ceiling DIR [DIR...] [--rounds 3]
    # check-ins alone through HTTP, one gunicorn per source tree (ROOT: a checkout), in turn
    python -m bench.planning http ROOT [ROOT...] [--rounds 3]

DIR holds pgbench scripts `checkin-<i>.sql` (`capture` writes them; `make bench` leaves the same
in `bench/out/pgbench/`), so the statements of another tree (`make bench` run there) can be
replayed against this one's in the same run. DATABASE_URL names the bench database
(`co_bench_<scale>`, built by `make bench`).

`explain` runs each script three times in one connection (as pgbench's connections persist),
each in a transaction rolled back, with the user and the generated ids drawn as pgbench would,
and reports the last run of each: Planning Time and Execution Time per statement (a function's
statements are planned inside its execution, once per connection: see migration 0018).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy import create_engine

from bench import ceiling, dataset, loadgen, reference
from core.uow import sqlalchemy_url


def _label(i: int, sql: str) -> str:
    checks = (
        ("user_tokens", "token"),
        ("INSERT INTO idempotency_records", "idempotency insert"),
        ("UPDATE idempotency_records", "idempotency update"),
        ("checkin_venue_and_history(", "lock + venue+history"),
        ("pg_advisory_xact_lock", "user lock"),
        ("FROM venues v", "venue+history"),
        ("INSERT INTO checkins", "insert check-in"),
        ("checkin_candidates(", "candidates"),
        ("FROM offer_venues ov", "candidates"),
        ("UPDATE offers", "cap claim"),
        ("INSERT INTO unlocks", "insert unlocks"),
        ("INSERT INTO holdouts", "insert holdouts"),
        ("webhook_", "webhook outbox"),
    )
    for needle, label in checks:
        if needle in sql:
            return label
    return f"#{i} " + " ".join(sql.split()[:3])


def _statements(path: Path) -> list[str]:
    lines = [line for line in path.read_text().splitlines() if not line.startswith("\\")]
    return [line.rstrip(";") for line in lines if line not in ("BEGIN;", "COMMIT;")]


def explain(url: str, directory: Path, rounds: int = 3) -> list[dict[str, Any]]:
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SET jit = off; SET timezone = 'UTC'")
    engine = create_engine(sqlalchemy_url(url))
    meta = ceiling.meta(engine)
    plan = dataset.Plan(meta["seed"], meta["venues"])
    engine.dispose()
    first, users = dataset.pgbench_first_user(plan.users), plan.users
    base = 3 * dataset.TAIL_BASE + random.randrange(10**6) * 10**5
    seen: dict[tuple[int, str], dict[str, list[float]]] = {}
    n = 0
    for path in sorted(directory.glob("checkin-*.sql")):
        statements = _statements(path)
        for r in range(rounds):
            n += 1
            u, c = str(dataset.TAIL_BASE + random.randrange(first, users - 1)), str(base + n)
            cur.execute("BEGIN")
            for i, statement in enumerate(statements):
                sql = statement.replace(":u", u).replace(":c", c)
                cur.execute("EXPLAIN (ANALYZE, BUFFERS, SUMMARY, FORMAT JSON) " + sql)
                out = cur.fetchone()[0][0]
                if r == rounds - 1:
                    figures = seen.setdefault((i, _label(i, sql)), {"plan": [], "exec": []})
                    figures["plan"].append(out.get("Planning Time", 0.0))
                    figures["exec"].append(out.get("Execution Time", 0.0))
            cur.execute("ROLLBACK")
    conn.close()
    rows = []
    for (i, label), figures in sorted(seen.items()):
        rows.append(
            {
                "i": i,
                "statement": label,
                "plan_ms": statistics.mean(figures["plan"]),
                "plan_median_ms": statistics.median(figures["plan"]),
                "exec_ms": statistics.mean(figures["exec"]),
                "exec_median_ms": statistics.median(figures["exec"]),
            }
        )
    return rows


def print_explain(directory: Path, rows: list[dict[str, Any]]) -> None:
    print(f"{directory}: per statement, mean (median) over the captured check-ins, ms")
    print(f"  {'statement':22} {'planning':>16} {'execution':>16}")
    for row in rows:
        print(
            f"  {row['statement']:22} {row['plan_ms']:7.3f} ({row['plan_median_ms']:6.3f})"
            f" {row['exec_ms']:7.3f} ({row['exec_median_ms']:6.3f})"
        )
    plan = sum(r["plan_ms"] for r in rows)
    run = sum(r["exec_ms"] for r in rows)
    print(f"  {'a check-in':22} {plan:7.3f}          {run:7.3f}          ({len(rows)} statements)")


def ceilings(
    url: str, directories: list[Path], rounds: int, clients: int, seconds: float
) -> dict[str, list[tuple[float, float]]]:
    engine = create_engine(sqlalchemy_url(url))
    meta = ceiling.meta(engine)
    plan = dataset.Plan(meta["seed"], meta["venues"])
    scripts = {
        str(d): [p.read_text() for p in sorted(d.glob("checkin-*.sql"))] for d in directories
    }
    # The machine's speed drifts by a third within minutes: each ceiling is taken right after a
    # reference of its own, and the order of the directories alternates from round to round.
    results: dict[str, list[tuple[float, float]]] = {d: [] for d in scripts}
    order = list(scripts)
    for r in range(rounds):
        for d in order if r % 2 == 0 else order[::-1]:
            ref = reference.run(url, engine, plan, clients, seconds)
            variables = {
                "base": ceiling.next_nonce(engine),
                "users": plan.users,
                "ufirst": dataset.pgbench_first_user(plan.users),
            }
            got = ceiling.run_pgbench(sqlalchemy_url(url), scripts[d], clients, seconds, variables)
            results[d].append((got.tps, ref["tps"]))
            print(
                f"  round {r + 1}: {d:40} {got.tps:7.0f} tx/s {got.latency_ms:6.1f} ms avg"
                f"  = {got.tps / ref['tps']:.1%} of the reference ({got.failed} failed)",
                flush=True,
            )
    engine.dispose()
    print("medians:")
    for d, pairs in results.items():
        shares = [tps / ref for tps, ref in pairs]
        print(
            f"  {d:40} {statistics.median(t for t, _ in pairs):7.0f} tx/s against"
            f" {statistics.median(f for _, f in pairs):7.0f}: {statistics.median(shares):.1%} of"
            " the reference (rounds: " + ", ".join(f"{s:.1%}" for s in shares) + ")"
        )
    return results


def capture(url: str, directory: Path) -> None:
    from bench import perf

    engine = create_engine(sqlalchemy_url(url))
    meta = ceiling.meta(engine)
    plan = dataset.Plan(meta["seed"], meta["venues"])
    codes = perf.live_codes(engine, meta)
    reserved, codes = codes[-8:], codes[:-8]
    pools = loadgen.pools(plan, codes)
    name = url.rsplit("/", 1)[-1]
    perf.leave_out_recent_users(engine, plan, pools, name)
    scripts = perf.capture_scripts(url, plan, pools, reserved)
    directory.mkdir(parents=True, exist_ok=True)
    for op in ("checkin", "checkin_hot"):
        for i, script in enumerate(scripts[op]):
            (directory / f"{op}-{i}.sql").write_text(script)
    engine.dispose()
    print(f"{len(scripts['checkin'])} check-in scripts in {directory}")


def http(
    url: str, roots: list[Path], rounds: int, clients: int, seconds: float
) -> dict[str, list[dict[str, float]]]:
    """Check-ins alone through HTTP on one server per source tree (`make run`'s gunicorn
    gthread, started in that tree), taken in turn on the same database: check-ins per second,
    and the server's and the database cluster's CPU per check-in."""
    from api.config import SERVER_SETTINGS
    from bench import perf

    engine = create_engine(sqlalchemy_url(url))
    meta = ceiling.meta(engine)
    plan = dataset.Plan(meta["seed"], meta["venues"])
    codes = perf.live_codes(engine, meta)
    pools = loadgen.pools(plan, codes[:-8])
    perf.leave_out_recent_users(engine, plan, pools, url.rsplit("/", 1)[-1])
    defaults = {s.name: s.default for s in SERVER_SETTINGS}
    primary = perf.Cluster("primary", url)
    servers = {}
    results: dict[str, list[dict[str, float]]] = {str(r): [] for r in roots}
    starts: dict[str, int] = {}
    # more check-ins than a small dataset has fresh users: repeats are verified (perf.py's way)
    repeats = perf.repeat_visits(engine, pools)
    repeats.__enter__()
    try:
        for root in roots:
            perf.ROOT = root.resolve()  # the server's working directory: its code
            server = perf.Server(
                "gthread", url, int(defaults["WEB_CONCURRENCY"]), int(defaults["THREADS"]), {}
            )
            servers[str(root)] = server
            _, _, starts = loadgen.run(
                pools, server.base, {"checkin": 1.0}, 3, clients, starts=starts
            )
        for r in range(rounds):
            for name in list(servers) if r % 2 == 0 else list(servers)[::-1]:
                server = servers[name]
                server_cpu, db_cpu = server.cpu_s(), primary.cpu_s()
                stats, total, starts = loadgen.run(
                    pools, server.base, {"checkin": 1.0}, seconds, clients, starts=starts
                )
                done = stats["checkin"]
                count = max(done.count, 1)
                row = {
                    "per_s": total,
                    "server_cpu_ms": (server.cpu_s() - server_cpu) / count * 1000,
                    "db_cpu_ms": (primary.cpu_s() - db_cpu) / count * 1000,
                    "p50_ms": done.p50_ms,
                    "p99_ms": done.p99_ms,
                }
                results[name].append(row)
                print(
                    f"  round {r + 1}: {name:30} {total:6.0f} check-ins/s, server CPU"
                    f" {row['server_cpu_ms']:.2f} ms, database CPU {row['db_cpu_ms']:.2f} ms"
                    f" per check-in, p50 {done.p50_ms:.0f} ms  {done.outcomes}",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
        repeats.__exit__(None, None, None)
        engine.dispose()
    print("medians:")
    for name, rows in results.items():
        print(
            f"  {name:30} "
            + ", ".join(
                f"{k} {statistics.median(row[k] for row in rows):.2f}"
                for k in ("per_s", "server_cpu_ms", "db_cpu_ms", "p50_ms")
            )
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("capture", "explain", "ceiling", "http"))
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL must name the bench database (co_bench_<scale>)")
    if args.command == "capture":
        capture(url, args.dirs[0])
    elif args.command == "explain":
        for directory in args.dirs:
            print_explain(directory, explain(url, directory))
    elif args.command == "ceiling":
        ceilings(url, args.dirs, args.rounds, args.clients, args.seconds)
    else:
        http(url, args.dirs, args.rounds, args.clients, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
