"""The app's own CPU per request, in process: no HTTP server, no load generator, no network.

Calls the Flask app as a WSGI server would (one environ per request, the body read to the end)
on a `make bench` database, `/healthz`, anonymous nearby and redemptions, interleaved in
rounds, and reports the process's CPU time (user + system: Python, psycopg2 and libpq; not the
database's) per request; the median over rounds. With `--profile OP` it runs that operation
under cProfile instead and prints where the time goes.

    DATABASE_URL=.../co_bench_10k APP_ENV=development NFC_MASTER_KEY=... \\
        .venv/bin/python -m bench.cpu [--rounds 5] [--n 400] [--profile nearby]

It imports `api` from the working directory, so the same file run from another checkout of the
project (PYTHONPATH=that/checkout) measures that tree: the before/after of docs/performance.md.
Rate limiting is off, as in `make bench` (with it on, each request also writes two counters).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from typing import Any

from sqlalchemy import create_engine

from bench import loadgen
from bench.ceiling import meta as bench_meta
from bench.dataset import Plan
from core.uow import sqlalchemy_url

OPS = ("healthz", "nearby", "redemption")


def _environ(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> dict:
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "HTTP_HOST": "127.0.0.1:8000",
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        if name.lower() == "content-type":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _call(app: Any, request: tuple[str, str, bytes | None, dict[str, str]]) -> str:
    status: list[str] = []

    def start_response(s: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(s)
        return lambda data: None

    result = app(_environ(*request), start_response)
    try:
        for _chunk in result:
            pass
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return status[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=400, help="requests per operation per round")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--profile", choices=OPS, help="profile this operation instead")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--save", help="with --profile: write the profile there (pstats)")
    args = parser.parse_args(argv)
    url = os.environ["DATABASE_URL"]
    engine = create_engine(sqlalchemy_url(url))
    meta = bench_meta(engine)
    plan = Plan(meta["seed"], meta["venues"])
    from bench.perf import live_codes  # makes the service's pool of codes live again

    codes = live_codes(engine, meta)
    engine.dispose()
    pools = loadgen.pools(plan, codes)
    requests = loadgen.Requests(pools, worker=0, workers=1, starts={}, seed=11)

    # As under gunicorn: metrics in multiprocess mode (api/gunicorn_conf.py), the request log
    # in JSON on stdout (here thrown away, after this script's own lines).
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-cpu-"))
    from api import create_app
    from api.observability import configure_logging

    app = create_app({"DATABASE_URL": url, "LOG_LEVEL": "INFO", "RATE_LIMIT_ENABLED": False})
    stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    configure_logging("INFO", "json")
    expected = {"healthz": "200", "nearby": "200", "redemption": "201"}

    def build(op: str) -> tuple[str, str, bytes | None, dict[str, str]]:
        if op == "healthz":
            return "GET", "/healthz", None, {}
        return requests.build(op)

    def run(op: str, n: int) -> float:
        batch = [build(op) for _ in range(n)]
        start = time.process_time()
        for request in batch:
            status = _call(app, request)
            if not status.startswith(expected[op]):
                raise RuntimeError(f"{op} answered {status}")
        return (time.process_time() - start) / n * 1000

    ops = args.ops.split(",")
    for op in ops:  # warm up: connections, caches, first-request work
        run(op, 50)
    if args.profile:
        profiler = cProfile.Profile()
        batch = [build(args.profile) for _ in range(args.n)]
        profiler.enable()
        for request in batch:
            _call(app, request)
        profiler.disable()
        out = io.StringIO()
        if args.save:
            profiler.dump_stats(args.save)
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)
        sys.stdout = stdout
        print(out.getvalue())
        return 0
    figures: dict[str, list[float]] = {op: [] for op in ops}
    for _ in range(args.rounds):
        for op in ops:
            figures[op].append(run(op, args.n))
    sys.stdout = stdout
    root = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["api"].__file__ or "")))
    print(f"tree {root}: CPU ms per request, median of {args.rounds} rounds of {args.n}")
    for op, values in figures.items():
        spread = ", ".join(f"{v:.3f}" for v in values)
        print(f"  {op:12} {statistics.median(values):.3f}  ({spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
