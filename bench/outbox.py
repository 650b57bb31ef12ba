"""The webhook outbox's cost to a check-in: whole check-in requests through the Flask app in
process, three ways, in a new random order each round on one database (so the machine's load
hits them alike):

- `off`: `core.webhooks.emit` replaced by a no-op (the check-in before the outbox);
- `nosub`: the outbox statement, no endpoint of the merchant subscribed (nothing stored);
- `sub`: one endpoint subscribed to `checkin.verified` and `unlock.created` (2 events, 2
  deliveries per check-in).

Each check-in is a new user's, verified, unlocking one offer. Prints the median per round of the
app's CPU per check-in (this process), the database cluster's and the wall time:

    DATABASE_URL=$(scripts/pg.sh url) APP_ENV=development NFC_MASTER_KEY=$(scripts/devkey.sh) \\
        .venv/bin/python -m bench.outbox [--rounds 15 --checkins 300]

`make bench` measures the same through HTTP (`measure`, below): the service and the delivery
worker (`python -m api.webhook_worker`) running, every merchant of the bench database with one
endpoint subscribed to every event on a loopback receiver that answers 204, against the same
run with those endpoints deleted (`python -m bench.outbox receive` is that receiver).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

import offers.checkins as checkins
from api import create_app
from core import accounts, webhooks
from core.uow import UnitOfWork, make_engine
from mobile_stub.client import Client, FlaskTransport

N, ROUNDS = 100, 5


def micro(rounds: int = ROUNDS, n: int = N) -> dict[str, Any]:
    """Whole check-in requests in process (the Flask app through its test client: auth, schema,
    use case, rendering, logging; no WSGI server), the three ways in a new random order each
    round.
    Per way, the median over rounds of: this process's CPU per check-in (the server's share),
    the database cluster's CPU per check-in (its postmaster and children, `bench.perf.Cluster`),
    and the wall time."""
    from bench import perf

    url = os.environ["DATABASE_URL"]
    engine = make_engine(url)
    factory = sessionmaker(engine, expire_on_commit=False)
    app = create_app({"DATABASE_URL": url, "RATE_LIMIT_ENABLED": False})
    api = Client(FlaskTransport(app.test_client()))
    cluster = perf.Cluster("primary", url)

    def venue(subscribed: bool) -> dict[str, Any]:
        owner = api.with_token(api.create_merchant("Bench", "bench@example.com")["api_key"])
        where = {"type": "Point", "coordinates": [24.9384, 60.1699]}
        v = owner.create_venue({"name": "v", "location": where, "checkin_cooldown_minutes": 0})
        offer = owner.create_offer(
            {"venue_ids": [v["id"]], "title": "t", "rule": {"kind": "every_checkin"}}
        )
        owner.activate_offer(offer["id"])
        if subscribed:  # a public address (an IP literal): nothing is sent, no worker runs
            owner.create_webhook("https://93.184.216.34/", ["checkin.verified", "unlock.created"])
        return v

    def users(count: int) -> list[Client]:
        """New users with a token each (no password hashing: not what is measured)."""
        ids = [uuid.uuid4() for _ in range(count)]
        with UnitOfWork(factory) as uow:
            uow.session.execute(
                text("INSERT INTO users (id, handle, password_hash) VALUES (:id, :handle, 'x')"),
                [{"id": i, "handle": f"bench_{i.hex[:16]}"} for i in ids],
            )
            tokens = [accounts._issue_token(uow.session, i, timedelta(hours=1)) for i in ids]
            uow.commit()
        return [api.with_token(t) for t in tokens]

    real_emit = webhooks.emit

    def no_emit(*_args: Any, **_kwargs: Any) -> None:
        return None

    venues = {"off": venue(False), "nosub": venue(False), "sub": venue(True)}
    results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in venues}
    order = list(venues.items())
    for _ in range(rounds):
        random.shuffle(order)  # no way always runs first, or after the same one
        for kind, v in order:
            checkins.webhooks.emit = no_emit if kind == "off" else real_emit  # type: ignore[assignment]
            clients = users(n)
            lon, lat = v["location"]["coordinates"]
            cpu, db, wall = time.process_time(), cluster.cpu_s(), time.perf_counter()
            for user in clients:
                result = user.check_in(v["id"], lat, lon, 10, datetime.now(UTC).isoformat())
                assert result["status"] == "verified" and result["unlocks"]
            results[kind].append(
                (
                    (time.process_time() - cpu) / n * 1000,
                    (cluster.cpu_s() - db) / n * 1000,
                    (time.perf_counter() - wall) / n * 1000,
                )
            )
    checkins.webhooks.emit = real_emit  # type: ignore[assignment]
    engine.dispose()
    medians = {
        kind: {
            "server_cpu_ms": statistics.median(r[0] for r in rows),
            "db_cpu_ms": statistics.median(r[1] for r in rows),
            "wall_ms": statistics.median(r[2] for r in rows),
        }
        for kind, rows in results.items()
    }
    off = medians["off"]
    for m in medians.values():
        m["ratio"] = (m["server_cpu_ms"] + m["db_cpu_ms"]) / max(
            off["server_cpu_ms"] + off["db_cpu_ms"], 1e-9
        )
    return {"rounds": rounds, "checkins_per_round": n, "ways": medians}


MICRO_WAYS = {
    "off": "no outbox (the emit a no-op: the check-in before webhooks)",
    "nosub": "outbox, no endpoint subscribed",
    "sub": "outbox, one endpoint: 2 events, 2 deliveries stored",
}


def micro_markdown(result: dict[str, Any]) -> list[str]:
    lines = [
        "## The outbox's cost to a check-in request, in process",
        "",
        f"Whole check-in requests through the Flask app in process, {result['rounds']} rounds of"
        f" {result['checkins_per_round']} new users' verified check-ins per way, in a random order"
        " each round;"
        " medians. Server CPU is the app's, database CPU the cluster's (target: the outbox within"
        " 10% of the check-in without it).",
        "",
        "| | server CPU ms | database CPU ms | wall ms | server + database / no outbox |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, m in result["ways"].items():
        lines.append(
            f"| {MICRO_WAYS[kind]} | {m['server_cpu_ms']:.3f} | {m['db_cpu_ms']:.3f} |"
            f" {m['wall_ms']:.3f} | x{m['ratio']:.3f} |"
        )
    return lines


# ---- the delivery worker alone, in process ---------------------------------------------------

# The worker's ways, interleaved round by round (batch size, keep-alive, prepared statements):
# `before` is one delivery per transaction on a new connection each (the worker before
# keep-alive and batches), `batch` keep-alive and batches with the claim and the record sent
# whole (parsed and planned every time), `prepared` the worker as it runs (all three).
DELIVER_VARIANTS = {
    "before": (1, False, False),
    "batch": (10, True, False),
    "prepared": (10, True, True),
}


def deliver(merchants: int = 100, per_round: int = 100, rounds: int = 5) -> None:
    """CPU per delivery of the worker (`core.delivery.Worker.drain` in this process, one
    thread) and of the database (the cluster's processes, and apart the worker's own database
    connection: one, kept), to a loopback receiver answering 204 (another process, not
    counted). Each round makes `per_round` check-ins spread over `merchants` merchants (2
    deliveries each, one endpoint per merchant), then drains them."""
    from bench import perf
    from core.delivery import Worker

    url = os.environ["DATABASE_URL"]
    engine = make_engine(url)
    factory = sessionmaker(engine, expire_on_commit=False)
    app = create_app(
        {"DATABASE_URL": url, "RATE_LIMIT_ENABLED": False, "WEBHOOKS_ALLOW_HTTP_LOOPBACK": True}
    )
    api = Client(FlaskTransport(app.test_client()))
    receiver = Receiver()
    cluster = perf.Cluster("database", url)
    policy = webhooks.UrlPolicy(allow_http_loopback=True)
    # The worker's own connection, one for all rounds: its backend's CPU is the worker's
    # statements alone (the cluster's also holds its background processes and autovacuum).
    worker_engine = make_engine(url, pool_size=1, max_overflow=0)
    worker_factory = sessionmaker(worker_engine, expire_on_commit=False)
    with worker_engine.connect() as conn:
        backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE webhook_endpoints SET deleted_at = now()"))
        venues = []
        for i in range(merchants):
            owner = api.with_token(api.create_merchant(f"Bench {i}", "b@example.com")["api_key"])
            where = {"type": "Point", "coordinates": [24.9384, 60.1699]}
            v = owner.create_venue({"name": "v", "location": where, "checkin_cooldown_minutes": 0})
            offer = owner.create_offer(
                {"venue_ids": [v["id"]], "title": "t", "rule": {"kind": "every_checkin"}}
            )
            owner.activate_offer(offer["id"])
            owner.create_webhook(receiver.url, ["checkin.verified", "unlock.created"])
            venues.append(uuid.UUID(v["id"]))
        results: dict[str, list[tuple[float, float, float, int]]] = {
            k: [] for k in DELIVER_VARIANTS
        }
        for _ in range(rounds):
            for kind, (batch, keep_alive, prepared) in DELIVER_VARIANTS.items():
                ids = [uuid.uuid4() for _ in range(per_round)]
                with engine.begin() as conn:
                    conn.execute(
                        text("INSERT INTO users (id, handle, password_hash) VALUES (:id, :h, 'x')"),
                        [{"id": i, "h": f"bench_{i.hex[:16]}"} for i in ids],
                    )
                for n, user_id in enumerate(ids):
                    fix = checkins.CheckinInput(
                        venues[n % merchants], 60.1699, 24.9384, 10, datetime.now(UTC)
                    )
                    checkins.check_in(UnitOfWork(factory), user_id, fix)
                worker = Worker(worker_factory, policy, batch=batch, keep_alive=keep_alive)
                webhooks.PREPARED = prepared
                try:
                    cpu, db = time.process_time(), cluster.cpu_s()
                    own = perf.process_cpu_s(backend)
                    sent = worker.drain()
                finally:
                    webhooks.PREPARED = True
                results[kind].append(
                    (
                        (time.process_time() - cpu) / max(sent, 1) * 1000,
                        (cluster.cpu_s() - db) / max(sent, 1) * 1000,
                        (perf.process_cpu_s(backend) - own) / max(sent, 1) * 1000,
                        sent,
                    )
                )
        for kind, rows in results.items():
            worker_ms = statistics.median(r[0] for r in rows)
            db_ms = statistics.median(r[1] for r in rows)
            own_ms = statistics.median(r[2] for r in rows)
            print(
                f"{kind:9s} worker CPU {worker_ms:.3f} ms, database CPU {db_ms:.3f} ms (the"
                f" worker's connection {own_ms:.3f} ms) per delivery"
                f" ({sum(r[3] for r in rows)} deliveries in {rounds} rounds; median of rounds)",
                flush=True,
            )
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE webhook_endpoints SET deleted_at = now()"))
        receiver.stop()
        worker_engine.dispose()
        engine.dispose()


# ---- in `make bench`: through HTTP, with the delivery worker ----------------------------------

ENDPOINT_PATH = "/bench-outbox"
# no endpoint; every merchant one endpoint for every event, the worker delivering as they come;
# the same with the worker stopped during the load and let go after it (where the cost goes:
# the check-in's own emit while the load runs, the deliveries after it); with `before`, also
# `subscribed` delivered by a second worker whose claim and record are not prepared statements
# (the worker before that change; the first one stopped meanwhile)
MODES = ("none", "subscribed", "deferred")
BEFORE = "subscribed_unprepared"
# The worker process with `core.webhooks.PREPARED` off.
UNPREPARED_WORKER = (
    "import sys; import core.webhooks as w; w.PREPARED = False;"
    " from api.webhook_worker import main; sys.exit(main())"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        with _Handler.lock:
            _Handler.received += 1
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return None


def receive() -> None:
    """A receiver on loopback answering 204 to every POST; prints its port, then on SIGTERM
    how many it received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)

    def stop(*_args: Any) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    print(_Handler.received, flush=True)


class Receiver:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.outbox", "receive"],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}{ENDPOINT_PATH}"

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return int(out.strip() or 0)


def _endpoints(engine: Any, url: str) -> None:
    """Every merchant gets one endpoint for every event at `url`, deleted (not subscribed) for
    now; earlier runs' outbox rows go (the bench database is the benchmark's own)."""
    with engine.begin() as conn:
        conn.execute(
            text("TRUNCATE webhook_attempts, webhook_deliveries, webhook_events, webhook_endpoints")
        )
        conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, created_at,"
                " deleted_at)"
                " SELECT gen_random_uuid(), m.id, :url, CAST(:events AS varchar[]), :secret,"
                " now(), now() FROM merchants m"
            ),
            {"url": url, "events": list(webhooks.EVENT_TYPES), "secret": webhooks.new_secret()},
        )


def _subscribe(engine: Any, on: bool) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE webhook_endpoints SET deleted_at ="
                " CASE WHEN :on THEN NULL ELSE now() END, failing_since = NULL"
            ),
            {"on": on},
        )


def _outbox(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
        ).all()
    return {str(r[0]): int(r[1]) for r in rows}


def _drain(engine: Any, timeout: float) -> float:
    """Seconds until no delivery is pending (at most `timeout`)."""
    started = time.monotonic()
    while _outbox(engine).get(webhooks.PENDING, 0) and time.monotonic() - started < timeout:
        time.sleep(0.25)
    return time.monotonic() - started


def load_checkins(
    worker_pid: int,
    mode: str,
    pools: Any,
    base: str,
    seconds: float,
    clients: int,
    starts: Any,
) -> tuple[Any, float, Any]:
    """Check-ins only for `seconds`; in the `deferred` mode the worker is stopped meanwhile
    (SIGSTOP) and let go after, so the deliveries are drained as a backlog. `loadgen.run`'s
    answer: stats per operation, requests per second, the next users to start from."""
    from bench import loadgen

    if mode == "deferred":
        os.kill(worker_pid, signal.SIGSTOP)
    try:
        return loadgen.run(pools, base, {"checkin": 1.0}, seconds, clients, starts=starts)
    finally:
        if mode == "deferred":
            os.kill(worker_pid, signal.SIGCONT)


def measure(
    url: str,
    pools: Any,
    args: Any,
    starts: dict[str, int],
    primary: Any,
    kind: str,
    rounds: int = 2,
    before: bool = False,
) -> tuple[dict[str, Any], dict[str, int]]:
    """Check-ins alone through the service with the delivery worker running, with and without
    one subscribed endpoint per merchant, `rounds` times each, interleaved (the machine's drift
    hits both alike). Each run's CPU is counted until the outbox is empty again, so the
    worker's deliveries of that run's events (claim, POST, record) are in it."""
    from bench import loadgen, perf

    engine = create_engine(url)
    receiver = Receiver()
    _endpoints(engine, receiver.url)
    server = perf.Server(kind, url, args.workers, args.threads, {})
    worker_log = (perf.OUT / "webhook-worker.log").open("wb")
    env = {**os.environ, "DATABASE_URL": url, "WEBHOOKS_ALLOW_HTTP_LOOPBACK": "1"}

    def start_worker(*argv: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, *argv],
            cwd=perf.ROOT,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    workers = {"prepared": start_worker("-m", "api.webhook_worker")}
    if before:
        workers["unprepared"] = start_worker("-c", UNPREPARED_WORKER)
    modes = (*MODES, BEFORE) if before else MODES
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    received = 0
    try:
        _, _, starts = loadgen.run(
            pools, server.base, {"checkin": 1.0}, args.warmup, args.clients, starts=starts
        )
        stopped: set[str] = set()

        def only(name: str) -> subprocess.Popen[bytes]:
            """Let `name` run, the other worker stopped (the outbox is drained: it holds no
            delivery)."""
            for other, proc in workers.items():
                if other != name and other not in stopped:
                    os.kill(proc.pid, signal.SIGSTOP)
                    stopped.add(other)
            if name in stopped:
                os.kill(workers[name].pid, signal.SIGCONT)
                stopped.discard(name)
            return workers[name]

        for _ in range(rounds):
            for mode in modes:
                worker = only("unprepared" if mode == BEFORE else "prepared")
                _subscribe(engine, mode != "none")
                delivered_before = _outbox(engine).get(webhooks.DELIVERED, 0)

                def cpu(pid: int = worker.pid) -> tuple[float, float, float]:
                    return server.cpu_s(), perf.process_cpu_s(pid), primary.cpu_s()

                start = cpu()
                stats, total, starts = load_checkins(
                    worker.pid, mode, pools, server.base, args.seconds, args.clients, starts
                )
                loaded = cpu()
                drain_s = _drain(engine, timeout=max(60.0, 4 * args.seconds))
                end = cpu()
                after = _outbox(engine)
                st = stats["checkin"]
                n = max(st.count, 1)
                run = {
                    # during the load only, and the drain after it alone
                    "load_cpu_ms": [(b - a) / n * 1000 for a, b in zip(start, loaded, strict=True)],
                    "drain_cpu_ms": [(b - a) / n * 1000 for a, b in zip(loaded, end, strict=True)],
                    "per_s": total,
                    "p50_ms": st.p50_ms,
                    "p99_ms": st.p99_ms,
                    "count": st.count,
                    "errors": st.errors,
                    "outcomes": st.outcomes,
                    "server_cpu_ms": (end[0] - start[0]) / n * 1000,
                    "worker_cpu_ms": (end[1] - start[1]) / n * 1000,
                    "db_cpu_ms": (end[2] - start[2]) / n * 1000,
                    "drain_s": drain_s,
                    "delivered": after.get(webhooks.DELIVERED, 0) - delivered_before,
                    "still_pending": after.get(webhooks.PENDING, 0),
                }
                runs[mode].append(run)
                print(
                    f"  outbox {mode:21} {total:6.0f} check-ins/s ({st.errors} failed)"
                    f"  p99 {st.p99_ms:6.1f} ms"
                    f"  server {run['server_cpu_ms']:.2f} + worker {run['worker_cpu_ms']:.2f}"
                    f" ms, database {run['db_cpu_ms']:.2f} ms CPU per check-in;"
                    f" {run['delivered']} delivered, drained in {drain_s:.1f} s",
                    flush=True,
                )
    finally:
        _subscribe(engine, False)
        for proc in workers.values():
            os.kill(proc.pid, signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        for proc in workers.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        worker_log.close()
        server.stop()
        received = receiver.stop()
        engine.dispose()
    return summarise(runs, received), starts


def summarise(runs: dict[str, list[dict[str, Any]]], received: int) -> dict[str, Any]:
    """Per mode: the rounds pooled (sums of check-ins and CPU), and subscribed / none."""
    modes: dict[str, dict[str, float]] = {}
    for mode, rows in runs.items():
        n = sum(r["count"] for r in rows) or 1
        modes[mode] = {
            "per_s": float(np.mean([r["per_s"] for r in rows])),
            "p99_ms": float(np.max([r["p99_ms"] for r in rows])),
            **{
                key: sum(r[key] * r["count"] for r in rows) / n
                for key in ("server_cpu_ms", "worker_cpu_ms", "db_cpu_ms")
            },
            "errors": sum(r["errors"] for r in rows),
            "delivered": sum(r["delivered"] for r in rows),
        }
    a, b = modes["none"], modes["subscribed"]

    def phase(mode: str, key: str, side: int) -> float:
        rows = runs[mode]
        n = sum(r["count"] for r in rows) or 1
        return sum(r[key][side] * r["count"] for r in rows) / n

    # where it goes: the deferred runs' load (the check-in and its emit) against no endpoint's
    # load, and their drain alone (claim, POST, record per delivery)
    breakdown = {
        "emit_api_cpu_ms": phase("deferred", "load_cpu_ms", 0) - phase("none", "load_cpu_ms", 0),
        "emit_db_cpu_ms": phase("deferred", "load_cpu_ms", 2) - phase("none", "load_cpu_ms", 2),
        "deliver_worker_cpu_ms": phase("deferred", "drain_cpu_ms", 1),
        "deliver_db_cpu_ms": phase("deferred", "drain_cpu_ms", 2),
        "deliveries_per_checkin": modes["deferred"]["delivered"]
        / max(sum(r["count"] for r in runs["deferred"]), 1),
        # the outbox's cost to a check-in (issue 17's measure): the check-ins of the deferred
        # rounds, whose events were written in their transactions, against none, API and
        # database CPU during the load (the deliveries come after it)
        "checkin_per_s": modes["deferred"]["per_s"] / a["per_s"] if a["per_s"] else 0.0,
        "checkin_cpu": (phase("deferred", "load_cpu_ms", 0) + phase("deferred", "load_cpu_ms", 2))
        / max(phase("none", "load_cpu_ms", 0) + phase("none", "load_cpu_ms", 2), 1e-9),
    }

    def ratios(b: dict[str, float]) -> dict[str, float]:
        def total(x: dict[str, float]) -> float:
            return x["server_cpu_ms"] + x["worker_cpu_ms"] + x["db_cpu_ms"]

        return {
            "per_s": b["per_s"] / a["per_s"] if a["per_s"] else 0.0,
            "server_cpu": (b["server_cpu_ms"] + b["worker_cpu_ms"])
            / max(a["server_cpu_ms"] + a["worker_cpu_ms"], 1e-9),
            "api_cpu": b["server_cpu_ms"] / a["server_cpu_ms"] if a["server_cpu_ms"] else 0.0,
            "db_cpu": b["db_cpu_ms"] / a["db_cpu_ms"] if a["db_cpu_ms"] else 0.0,
            "server_and_db_cpu": total(b) / max(total(a), 1e-9),
        }

    return {
        "runs": runs,
        "modes": modes,
        "breakdown": breakdown,
        "received": received,
        "ratios": ratios(b),
        **({"ratios_unprepared": ratios(modes[BEFORE])} if BEFORE in modes else {}),
    }


def markdown(result: dict[str, Any]) -> list[str]:
    m, r = result["modes"], result["ratios"]
    lines = [
        "## The webhook outbox's cost to a check-in",
        "",
        "Check-ins alone through the service, the delivery worker running, with no endpoint and"
        " with every merchant's one endpoint subscribed to every event (a loopback receiver"
        " answering 204); rounds interleaved; CPU counted until the outbox is empty again.",
        "",
        "| | check-ins/s | failed | p99 ms | API CPU ms | worker CPU ms | database CPU ms |"
        " delivered |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in m:
        x = m[mode]
        lines.append(
            f"| {mode} | {x['per_s']:.0f} | {x['errors']:.0f} | {x['p99_ms']:.1f} |"
            f" {x['server_cpu_ms']:.2f} | {x['worker_cpu_ms']:.2f} | {x['db_cpu_ms']:.2f} |"
            f" {x['delivered']:.0f} |"
        )
    d = result["breakdown"]
    lines += [
        "",
        "Where it goes (the deferred runs: the worker stopped during the load, let go after it),"
        f" per check-in ({d['deliveries_per_checkin']:.1f} deliveries): the emit in the check-in"
        f" {d['emit_api_cpu_ms']:+.2f} ms API CPU, {d['emit_db_cpu_ms']:+.2f} ms database CPU;"
        f" the deliveries {d['deliver_worker_cpu_ms']:.2f} ms worker CPU,"
        f" {d['deliver_db_cpu_ms']:.2f} ms database CPU.",
    ]
    lines += [
        "",
        "**The outbox's cost to a check-in** (the deferred rounds' check-ins, their events"
        " written in the same transaction, against none; target: within 10%): throughput"
        f" x{d['checkin_per_s']:.2f}, API + database CPU x{d['checkin_cpu']:.2f}.",
        "",
        "Everything webhooks add, the deliveries included:",
        f"subscribed / none: throughput x{r['per_s']:.2f}, server CPU (API + worker)"
        f" x{r['server_cpu']:.2f} (API alone x{r['api_cpu']:.2f}), database CPU"
        f" x{r['db_cpu']:.2f}, server + database x{r['server_and_db_cpu']:.2f}; the receiver"
        f" got {result['received']} deliveries.",
    ]
    if "ratios_unprepared" in result:
        u = result["ratios_unprepared"]
        lines += [
            "",
            f"{BEFORE} / none (the worker's statements sent whole, as before they were"
            f" prepared): server CPU x{u['server_cpu']:.2f}, database CPU x{u['db_cpu']:.2f},"
            f" server + database x{u['server_and_db_cpu']:.2f}.",
        ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox")
    parser.add_argument(
        "what",
        nargs="?",
        default="micro",
        choices=("micro", "deliver", "receive"),
        help="micro: the outbox's cost to a check-in request; deliver: the delivery worker's CPU and the"
        " database's per delivery, before/keep-alive/batch interleaved; receive: the loopback"
        " receiver",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each way")
    parser.add_argument("--checkins", type=int, default=100, help="check-ins per round and way")
    parser.add_argument(
        "--merchants",
        type=int,
        default=100,
        help="deliver: endpoints the check-ins are spread over (as many as --checkins: 2 due"
        " deliveries per endpoint, a worker that keeps up; fewer: deeper queues, larger batches)",
    )
    args = parser.parse_args(argv)
    if args.what == "receive":
        receive()
    elif args.what == "deliver":
        deliver(args.merchants, args.checkins, args.rounds)
    else:
        print("\n".join(micro_markdown(micro(args.rounds, args.checkins))))


if __name__ == "__main__":
    main()
