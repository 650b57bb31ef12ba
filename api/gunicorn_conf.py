"""gunicorn's configuration: `gunicorn --config python:api.gunicorn_conf api.wsgi:app`.

`scripts/run.sh`, the Dockerfile and the test suite's `live_server` all start the service this
way. gunicorn reads this module once, in its master process, before it forks any worker, so:

1. The whole configuration is validated here first: a bad value stops the service with a clear
   message (exit status 1) instead of every worker failing in turn.
2. `PROMETHEUS_MULTIPROC_DIR` is set here, before any worker imports prometheus_client (which
   picks its multiprocess mode from it on first import): a fresh directory per server run,
   removed on exit, unless the environment names one (its old files are then removed, as
   prometheus_client requires). `child_exit` drops a dead worker's live gauges.
3. Logs are lines on stdout in `LOG_FORMAT` (JSON, or short text at a terminal), gunicorn's own
   messages included. gunicorn's access log is off: the app logs one line per request with more
   in it (route template, caller, request id).
4. In development (`APP_ENV=development`) without a `SECRET_KEY`, one is made up here, in the
   master, so that every worker signs dashboard sessions with the same key (until the server
   stops). Production without one has already been refused in step 1.

5. Every worker starts the retention job's thread (`post_worker_init`, api/jobs.py).

Graceful shutdown: on SIGTERM the master stops accepting connections and every worker finishes
the requests in flight, for up to `GRACEFUL_TIMEOUT` seconds, before it exits. (SIGINT is
gunicorn's quick shutdown; `make run` turns Ctrl-C into SIGTERM.)

Command-line options override what is set here (the test suite passes its own `--bind`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from api.config import ConfigError, is_development, load, load_server

_problems: list[str] = []
try:
    _settings = load()
except ConfigError as _error:
    _problems += _error.problems
try:
    _server = load_server()
except ConfigError as _error:
    _problems += _error.problems
if _problems:
    sys.exit(ConfigError(_problems).report())

_made_up_secret_key = False
if is_development(_settings) and not _settings["SECRET_KEY"]:
    # The workers read it from the environment they inherit (api.config.load).
    os.environ["SECRET_KEY"] = secrets.token_hex(32)
    _made_up_secret_key = True

_created_metrics_dir: str | None = None
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # A directory the operator chose: start from zero, as prometheus_client requires.
    for _stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        _stale.unlink()
else:
    _created_metrics_dir = tempfile.mkdtemp(prefix="checkin-offers-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _created_metrics_dir

from gunicorn.glogging import Logger  # noqa: E402

from api.observability import log_config  # noqa: E402  (after PROMETHEUS_MULTIPROC_DIR is set)


class AppLogsRequests(Logger):
    """gunicorn's logger without its access line: the app logs every request itself. (With a
    `logconfig_dict` gunicorn would format an access line per request only to drop it.)"""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


bind = f"{_server['HOST']}:{_server['PORT']}"
worker_class = "gthread"
workers = _server["WEB_CONCURRENCY"]
threads = _server["THREADS"]
graceful_timeout = _server["GRACEFUL_TIMEOUT"]
timeout = _server["WORKER_TIMEOUT"]
accesslog = None
# gunicorn's control socket (25.1+, for `gunicornc`) is not used, and its default path is one per
# user ($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl): two servers on one machine (two
# checkouts, the test suite's servers) would take it from each other. Older versions ignore this.
control_socket_disable = True
logger_class = AppLogsRequests
loglevel = _settings["LOG_LEVEL"].lower()
logconfig_dict = log_config(_settings["LOG_LEVEL"], _settings["LOG_FORMAT"])


def when_ready(server: Any) -> None:
    if _made_up_secret_key:
        server.log.warning(
            "SECRET_KEY is not set (APP_ENV=development): dashboard sessions are signed with a "
            "key made up for this run and end when the server stops"
        )


def post_worker_init(worker: Any) -> None:
    """Each worker starts the retention job's thread (api/jobs.py: one run at a time across
    workers and hosts, by an advisory lock)."""
    from api import jobs
    from api.wsgi import app  # loaded by the worker already

    jobs.start_retention(app)


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its live gauges (pool use) must no longer count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _created_metrics_dir is not None:
        shutil.rmtree(_created_metrics_dir, ignore_errors=True)
