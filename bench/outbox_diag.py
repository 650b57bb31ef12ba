"""Where the outbox's live database CPU goes (a diagnostic, not part of `make bench`).

Runs the HTTP outbox step's modes (bench/outbox.py `measure`) with the delivery worker's
connections named (`PGAPPNAME`), and per mode reports per check-in: the database's CPU split by
process (API backends, worker backends, autovacuum, background processes, ended children),
pg_stat_statements' top statements (when the extension is loaded), the outbox tables' counters,
and its statements' calls and rows per check-in. To have pg_stat_statements in this checkout's cluster:
`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'` (and
`pg_stat_statements.track_planning = on` for planning times), `scripts/pg.sh stop && scripts/pg.sh
start`, `CREATE EXTENSION pg_stat_statements` in the bench database; `ALTER SYSTEM RESET` both
after (the other benchmarks' figures are without it).

    DATABASE_URL=$(scripts/pg.sh url co_bench_10k) APP_ENV=development \\
        NFC_MASTER_KEY=$(scripts/devkey.sh) .venv/bin/python -m bench.outbox_diag [--rounds 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench import dataset, loadgen, outbox, perf
from bench.perf import _stat, postmaster_of
from core.uow import sqlalchemy_url

APP = "webhook-worker-diag"
TABLES = ("webhook_deliveries", "webhook_events", "webhook_endpoints", "webhook_attempts")


def classify(postmaster: int, engine: Any) -> dict[str, float]:
    """CPU seconds so far by kind of process of the cluster."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT pid, coalesce(application_name, ''), backend_type FROM pg_stat_activity")
        ).all()
    kinds = {int(pid): (app, bt) for pid, app, bt in rows}
    tck = os.sysconf("SC_CLK_TCK")
    own = _stat(postmaster)
    out: dict[str, float] = {"ended children": (int(own[13]) + int(own[14])) / tck}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(entry.name)
        if not fields or fields[1] != str(postmaster):
            continue
        pid = int(entry.name)
        app, bt = kinds.get(pid, ("", "?"))
        if bt == "client backend":
            kind = "worker backends" if app == APP else "other backends (API, this script)"
        elif bt == "?":
            try:
                title = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
            except OSError:
                title = "?"
            kind = "autovacuum" if "autovacuum" in title else f"({title.strip()[:40]})"
        else:
            kind = "autovacuum" if "autovacuum" in bt else bt
        out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tck
    return out


def statements(engine: Any) -> dict[str, tuple[int, float, int, int]]:
    with engine.connect() as conn:
        try:
            rows = conn.execute(
                text(
                    "SELECT query, calls, total_exec_time, shared_blks_hit + shared_blks_read,"
                    " rows FROM pg_stat_statements WHERE dbid ="
                    " (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).all()
        except Exception:
            return {}
    return {str(q): (int(c), float(t), int(b), int(r)) for q, c, t, b, r in rows}


def tables(engine: Any) -> dict[str, dict[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, n_dead_tup,"
                " seq_scan, seq_tup_read, idx_scan, idx_tup_fetch, autovacuum_count,"
                " autoanalyze_count FROM pg_stat_user_tables WHERE relname = ANY(:t)"
            ),
            {"t": list(TABLES)},
        ).mappings()
        return {
            r["relname"]: {k: int(v or 0) for k, v in r.items() if k != "relname"} for r in rows
        }


def diff(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: b.get(k, 0.0) - a.get(k, 0.0) for k in set(a) | set(b)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--modes", default="none,subscribed,deferred")
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args(argv)
    url = sqlalchemy_url(os.environ["DATABASE_URL"])
    engine = create_engine(url)
    meta = perf.ceiling.meta(engine)
    plan = dataset.Plan(meta["seed"], meta["venues"])
    pools = loadgen.pools(plan, perf.live_codes(engine, meta))
    perf.leave_out_recent_users(engine, plan, pools, url.rsplit("/", 1)[1])
    postmaster = postmaster_of(url)
    assert postmaster is not None
    receiver = outbox.Receiver()
    outbox._endpoints(engine, receiver.url)
    defaults = {s.name: s.default for s in perf.SERVER_SETTINGS}
    server = perf.Server("gthread", url, defaults["WEB_CONCURRENCY"], defaults["THREADS"], {})
    log = (perf.OUT / "webhook-worker-diag.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "api.webhook_worker"],
        cwd=perf.ROOT,
        env={
            **os.environ,
            "DATABASE_URL": url,
            "PGAPPNAME": APP,
            "WEBHOOKS_ALLOW_HTTP_LOOPBACK": "1",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    starts: dict[str, int] = {}
    try:
        with perf.repeat_visits(engine, pools):
            _, _, starts = loadgen.run(pools, server.base, {"checkin": 1.0}, 3, args.clients)
            for _ in range(args.rounds):
                for mode in args.modes.split(","):
                    outbox._subscribe(engine, mode != "none")
                    time.sleep(0.5)
                    with engine.begin() as conn, contextlib.suppress(Exception):
                        conn.execute(text("SELECT pg_stat_statements_reset()"))
                    c0, t0, s0 = classify(postmaster, engine), tables(engine), statements(engine)
                    w0 = perf.process_cpu_s(worker.pid)
                    stats, total, starts = outbox.load_checkins(
                        worker.pid, mode, pools, server.base, args.seconds, args.clients, starts
                    )
                    c1 = classify(postmaster, engine)
                    outbox._drain(engine, 120)
                    c2, t2, s2 = classify(postmaster, engine), tables(engine), statements(engine)
                    w2 = perf.process_cpu_s(worker.pid)
                    n = max(stats["checkin"].count, 1)
                    load, drain = diff(c0, c1), diff(c1, c2)
                    print(
                        f"== {mode}: {n} check-ins, {total:.0f}/s; database"
                        f" {sum(diff(c0, c2).values()) / n * 1000:.2f} ms, worker process"
                        f" {(w2 - w0) / n * 1000:.2f} ms CPU per check-in",
                        flush=True,
                    )
                    for kind in sorted(load, key=lambda k: -(load[k] + drain[k])):
                        if load[kind] + drain[kind] > 0:
                            print(
                                f"   {kind:36s} load {load[kind] / n * 1000:6.2f}"
                                f"  drain {drain[kind] / n * 1000:6.2f} ms/check-in"
                            )
                    for rel in TABLES:
                        a, b = t0.get(rel, {}), t2.get(rel, {})
                        print(
                            f"   {rel}: "
                            + ", ".join(
                                f"{k} {b[k] - a.get(k, 0)}" for k in b if b[k] - a.get(k, 0)
                            )
                            + f" (dead now {b.get('n_dead_tup')})"
                        )
                    if s2:
                        rows = []
                        for q, (c, t, bl, r) in s2.items():
                            c_, t_, bl_, r_ = s0.get(q, (0, 0.0, 0, 0))
                            rows.append((t - t_, c - c_, bl - bl_, r - r_, q))
                        rows.sort(reverse=True)
                        total_ms = sum(r[0] for r in rows)
                        print(f"   statements: {total_ms / n:.2f} ms exec per check-in")
                        for t, c, bl, r, q in rows[: args.top]:
                            short = " ".join(q.split())[:110]
                            print(
                                f"    {t / n:6.3f} ms/ci {c / n:5.2f} calls/ci"
                                f" {bl / max(c, 1):8.1f} blks/call {r / max(c, 1):6.1f} rows/call"
                                f"  {short}"
                            )
    finally:
        outbox._subscribe(engine, False)
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()
        server.stop()
        receiver.stop()
        engine.dispose()


if __name__ == "__main__":
    main()
