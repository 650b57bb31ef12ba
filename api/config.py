"""Settings from the environment, validated at start: a bad value stops the service with a clear
message, not a stack trace.

Every setting is declared once in `SETTINGS` (name, default, how to read it, what it means);
`docs/configuration.md` lists the same table and a test keeps the two in step. The app reads its
settings with `load()`; gunicorn (`api/gunicorn_conf.py`) reads the server's with `load_server()`.
Both report every bad value at once, one line each.

This module imports only the standard library: gunicorn's master process imports it to validate
the configuration before it forks any worker.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """One or more settings are missing or invalid; `problems` names each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems

    def report(self) -> str:
        """The text an operator sees when the service refuses to start."""
        lines = "".join(f"\n  - {problem}" for problem in self.problems)
        return f"checkin-offers: invalid configuration (see docs/configuration.md):{lines}"


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any]  # from the environment's string; raises ValueError with a reason
    check: Callable[[Any], str | None]  # of the final value (overrides included): a problem or None
    doc: str


# ---- readers and checks ----------------------------------------------------------------------


def _text(raw: str) -> str:
    return raw.strip()


def _integer(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"must be an integer, got {raw!r}") from None


def _number(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"must be a number, got {raw!r}") from None
    return value


def _at_least(minimum: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {value!r}"
        if not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if value < minimum:
            return f"must be at least {minimum:g}, got {value:g}"
        return None

    return check


def _database_url(value: Any) -> str | None:
    if not value:
        return "is not set (e.g. postgresql://user:password@host:5432/checkin_offers)"
    if not isinstance(value, str) or not value.startswith(
        ("postgresql://", "postgresql+", "postgres://")
    ):
        return "must be a PostgreSQL URL (postgresql://user:password@host:5432/dbname)"
    return None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(raw: str) -> str:
    return raw.strip().upper()


def _check_log_level(value: Any) -> str | None:
    if value not in LOG_LEVELS:
        return f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}"
    return None


# Printable ASCII without spaces or quotes: it travels in an Authorization header and in a
# Prometheus scrape config.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")


def _check_metrics_token(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        return "must be 16 to 256 characters of A-Z a-z 0-9 . _ ~ + / = - (e.g. `openssl rand -hex 32`)"
    return None


def _check_directory(value: Any) -> str | None:
    if value is None or value == "":
        return None
    path = Path(str(value))
    if not path.is_dir():
        return f"must be an existing directory, got {value!r}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"must be a directory this process can write to, got {value!r}"
    return None


def _optional(raw: str) -> str | None:
    return raw.strip() or None


def _no_check(_value: Any) -> str | None:
    return None


MIB = 1024 * 1024

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        None,
        _text,
        _database_url,
        "PostgreSQL 15 + PostGIS 3 database (`postgresql://user:password@host:5432/dbname`). Required.",
    ),
    Setting(
        "DB_POOL_SIZE",
        5,
        _integer,
        _at_least(1),
        "Connections each worker process keeps open. Size it to gunicorn's `THREADS`.",
    ),
    Setting(
        "DB_MAX_OVERFLOW",
        10,
        _integer,
        _at_least(0),
        "Extra connections a worker may open for a burst, closed when returned.",
    ),
    Setting(
        "MAX_CONTENT_LENGTH",
        MIB,
        _integer,
        _at_least(1),
        "Largest request body in bytes; larger is 413 `payload_too_large`. The contract fixes 1 MiB.",
    ),
    Setting(
        "USER_TOKEN_TTL_DAYS",
        30,
        _integer,
        _at_least(1),
        "Days a mobile user token lasts.",
    ),
    Setting(
        "CHECKIN_STALE_AFTER_SECONDS",
        120,
        _integer,
        _at_least(1),
        "A fix older than this is `stale_fix`. The contract fixes 2 minutes.",
    ),
    Setting(
        "CHECKIN_FUTURE_TOLERANCE_SECONDS",
        30,
        _integer,
        _at_least(0),
        "A fix dated further ahead of the server clock is `future_fix`. The contract fixes 30 s.",
    ),
    Setting(
        "CHECKIN_MAX_SPEED_KMH",
        300.0,
        _number,
        _at_least(1),
        "Travel faster than this from the previous accepted fix is `impossible_travel`. "
        "The contract fixes 300 km/h.",
    ),
    Setting(
        "LOG_LEVEL",
        "INFO",
        _log_level,
        _check_log_level,
        "Least severe level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL (case-insensitive).",
    ),
    Setting(
        "METRICS_TOKEN",
        None,
        _optional,
        _check_metrics_token,
        "Enables `GET /metrics`, which then needs `Authorization: Bearer <METRICS_TOKEN>`. "
        "Unset: metrics are neither collected nor served (404).",
    ),
    Setting(
        "PROMETHEUS_MULTIPROC_DIR",
        None,
        _optional,
        _check_directory,
        "Where worker processes share their metrics (read by prometheus_client). "
        "`api/gunicorn_conf.py` sets a fresh one per server run when unset.",
    ),
)

SERVER_SETTINGS: tuple[Setting, ...] = (
    Setting("HOST", "127.0.0.1", _text, _no_check, "Address gunicorn listens on."),
    Setting("PORT", 8000, _integer, _at_least(1), "Port gunicorn listens on."),
    Setting(
        "WEB_CONCURRENCY",
        2,
        _integer,
        _at_least(1),
        "gunicorn worker processes (about one per core).",
    ),
    Setting(
        "THREADS", 8, _integer, _at_least(1), "Threads per worker: requests in flight per worker."
    ),
    Setting(
        "GRACEFUL_TIMEOUT",
        20,
        _integer,
        _at_least(1),
        "Seconds in-flight requests get to finish after SIGTERM before workers are killed.",
    ),
    Setting(
        "WORKER_TIMEOUT",
        30,
        _integer,
        _at_least(1),
        "A worker silent for this many seconds is killed and replaced.",
    ),
)


def load(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Defaults, then the environment, then `overrides` (tests pass a mapping), all validated."""
    return _resolve(SETTINGS, environ, overrides)


def load_server(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The server's settings (gunicorn's bind, workers, threads, timeouts), validated."""
    return _resolve(SERVER_SETTINGS, environ, None)


def log_level(config: Mapping[str, Any]) -> int:
    """The numeric `logging` level of a loaded configuration."""
    level: int = logging.getLevelNamesMapping()[config.get("LOG_LEVEL", "INFO")]
    return level


def _resolve(
    settings: tuple[Setting, ...],
    environ: Mapping[str, str] | None,
    overrides: Mapping[str, Any] | None,
) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for setting in settings:
        config[setting.name] = setting.default
        raw = env.get(setting.name)
        if raw is not None and raw.strip() != "":
            try:
                config[setting.name] = setting.parse(raw)
            except ValueError as exc:
                problems[setting.name] = str(exc)
    config.update(overrides or {})
    for setting in settings:
        if setting.name not in problems:
            problem = setting.check(config[setting.name])
            if problem is not None:
                problems[setting.name] = problem
    if problems:
        raise ConfigError([f"{s.name} {problems[s.name]}" for s in settings if s.name in problems])
    return config
