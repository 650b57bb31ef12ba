"""Two checkouts' servers side by side: the tree before a change and this one, alternating
short runs of the same load against the same database, so that the machine's drift (a third
within minutes, more when other work runs) falls on both alike.

    DATABASE_URL=<server> APP_ENV=development NFC_MASTER_KEY=... SECRET_KEY=... \\
        .venv/bin/python -m bench.ab --before /tmp/main-checkout [--rounds 6] [--seconds 6]

`--before` is another checkout of the project (`git worktree add` or `git archive | tar -x`);
both servers run `make run`'s gunicorn command from their own tree, with this checkout's
virtual environment. Each round runs every operation (`--ops`, default nearby, redemption and
the mix of bench/loadgen.py) on each server, the order of the servers swapped every round, and
reports each server's requests per second, and its server and database CPU per request, as
medians over the rounds. The database is `make bench`'s `co_bench_<scale>` (built if missing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from api.config import SERVER_SETTINGS
from bench import dataset, loadgen
from bench.ceiling import meta as bench_meta
from bench.perf import (
    Cluster,
    Server,
    database_url,
    exists,
    leave_out_recent_users,
    live_codes,
)
from core.uow import sqlalchemy_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the other checkout's directory")
    parser.add_argument("--scale", default="10k")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--ops", default="nearby,redemption,mix")
    args = parser.parse_args(argv)
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        sys.exit("DATABASE_URL must name a server where databases can be created")
    name = f"co_bench_{args.scale}"
    if exists(server_url, name):
        url = database_url(server_url, name)
    else:
        url = dataset.build(server_url, name, dataset.scale_of(args.scale), args.seed)
    engine = create_engine(sqlalchemy_url(url))
    meta = bench_meta(engine)
    plan = dataset.Plan(meta["seed"], meta["venues"])
    pools = loadgen.pools(plan, live_codes(engine, meta))
    leave_out_recent_users(engine, plan, pools, name)
    engine.dispose()
    defaults = {s.name: s.default for s in SERVER_SETTINGS}
    trees = {"before": Path(args.before).resolve(), "after": Path(__file__).parent.parent}
    primary = Cluster("primary", url)
    servers = {
        label: Server(
            "gthread", url, defaults["WEB_CONCURRENCY"], defaults["THREADS"], {}, root=root
        )
        for label, root in trees.items()
    }
    ops = args.ops.split(",")
    figures: dict[tuple[str, str], list[dict[str, float]]] = {}
    starts: dict[str, int] = {}
    try:
        for server in servers.values():  # warm up each
            _, _, starts = loadgen.run(
                pools, server.base, loadgen.MIX, 2, args.clients, starts=starts
            )
        for round_ in range(args.rounds):
            order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
            for op in ops:
                for label in order:
                    server = servers[label]
                    mix = loadgen.MIX if op == "mix" else {op: 1.0}
                    server_cpu, db_cpu = server.cpu_s(), primary.cpu_s()
                    stats, total, starts = loadgen.run(
                        pools, server.base, mix, args.seconds, args.clients, starts=starts
                    )
                    count = max(sum(s.count for s in stats.values()), 1)
                    errors = sum(s.errors for s in stats.values())
                    row = {
                        "per_s": total,
                        "server_cpu_ms": (server.cpu_s() - server_cpu) / count * 1000,
                        "db_cpu_ms": (primary.cpu_s() - db_cpu) / count * 1000,
                        "errors": errors,
                    }
                    figures.setdefault((op, label), []).append(row)
                    print(
                        f"round {round_ + 1} {op:10} {label:6} {total:7.0f} req/s"
                        f"  server {row['server_cpu_ms']:.2f} ms  database"
                        f" {row['db_cpu_ms']:.2f} ms  errors {errors}",
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.stop()
    print(
        f"\nmedians over {args.rounds} rounds of {args.seconds:.0f} s, load average"
        f" {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        "| operation | before req/s | after req/s | after/before | server CPU ms before → after"
        " | database CPU ms before → after |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for op in ops:
        b, a = (_medians(figures[(op, label)]) for label in ("before", "after"))
        print(
            f"| {op} | {b['per_s']:.0f} | {a['per_s']:.0f} | x{a['per_s'] / b['per_s']:.2f} |"
            f" {b['server_cpu_ms']:.2f} → {a['server_cpu_ms']:.2f} |"
            f" {b['db_cpu_ms']:.2f} → {a['db_cpu_ms']:.2f} |"
        )
    return 0


def _medians(rows: list[dict[str, float]]) -> dict[str, Any]:
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


if __name__ == "__main__":
    sys.exit(main())
