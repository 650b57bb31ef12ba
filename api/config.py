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
from urllib.parse import urlsplit


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
    # A check that needs other settings' final values too (e.g. SECRET_KEY and APP_ENV).
    check_with: Callable[[Any, Mapping[str, Any]], str | None] | None = None


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
    # What the driver would fail on with a stack trace: an empty or non-numeric port.
    parts = urlsplit(value)
    try:
        port_ok = parts.port is not None or not parts.netloc.endswith(":")
    except ValueError:
        port_ok = False
    if not port_ok:
        return "has no valid port (postgresql://user:password@host:5432/dbname)"
    return None


def _urls(raw: str) -> tuple[str, ...] | None:
    return tuple(part.strip() for part in raw.split(",") if part.strip()) or None


def _check_replica_urls(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, tuple | list):
        return f"must be a comma-separated list of PostgreSQL URLs, got {value!r}"
    for index, url in enumerate(value, 1):
        problem = _database_url(url)
        if problem is not None:
            return f"(URL {index}) {problem}"
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


LOG_FORMATS = ("auto", "json", "text")


def _lower(raw: str) -> str:
    return raw.strip().lower()


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"must be one of {', '.join(choices)}, got {value!r}"
        return None

    return check


APP_ENVS = ("production", "development")


def is_development(config: Mapping[str, Any]) -> bool:
    """`APP_ENV=development`: `make run`, the benchmark and `docker compose up` on a laptop."""
    return config.get("APP_ENV") == "development"


def _check_secret_key(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | bytes) or len(value) < 32:
        return "must be at least 32 characters (e.g. `openssl rand -hex 32`)"
    return None


def _secret_key_in_production(value: Any, config: Mapping[str, Any]) -> str | None:
    if value or is_development(config):
        return None
    return (
        "is not set: in production the service needs one, the same for every process "
        "(e.g. `openssl rand -hex 32`); APP_ENV=development runs without one"
    )


def _optional(raw: str) -> str | None:
    return raw.strip() or None


def _no_check(_value: Any) -> str | None:
    return None


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(f"must be true or false, got {raw!r}")
    return value in _TRUE


def _check_boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


# The rate-limit notation of the `limits` library (what Flask-Limiter reads), e.g. `600/minute`,
# `100 per 10 seconds`, or several at once: `20/second;600/minute`. Checked here with the standard
# library only, so gunicorn's master can refuse a typo before it forks.
_ONE_LIMIT = r"\s*[1-9][0-9]*\s*(?:/|\s+per\s+)\s*(?:[1-9][0-9]*\s*)?(?:second|minute|hour|day|month|year)s?\s*"
_LIMITS = re.compile(rf"{_ONE_LIMIT}(?:[,;]{_ONE_LIMIT})*", re.IGNORECASE)


def _check_limits(value: Any) -> str | None:
    if not isinstance(value, str) or not _LIMITS.fullmatch(value):
        return f"must be a rate limit such as `600/minute` or `20/second;600/minute`, got {value!r}"
    return None


def _check_redis_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.startswith(
        ("redis://", "rediss://", "redis+unix://")
    ):
        return "must be a Redis URL (redis://[:password@]host:6379/0, rediss://... or redis+unix://...)"
    return None


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?")


def _origins(raw: str) -> tuple[str, ...] | None:
    origins = tuple(part.strip() for part in raw.split(",") if part.strip())
    return origins or None


def _check_origins(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, tuple | list):
        return f"must be a list of origins, got {value!r}"
    for origin in value:
        if not isinstance(origin, str) or not (origin == "*" or _ORIGIN.fullmatch(origin)):
            return (
                "must be `*` or origins such as `https://app.example.com` (scheme, host and "
                f"optional port; no path, no trailing slash), comma-separated; got {origin!r}"
            )
    return None


_HEX_KEY = re.compile(r"(?:[0-9A-Fa-f]{2}){16,64}")


def _check_master_key(value: Any) -> str | None:
    if value is None or value == "":
        return (
            "is not set: the NFC tags' and cards' keys are derived from it (docs/presence.md); "
            "generate one with `python3 -c 'import secrets; print(secrets.token_hex(32))'` and "
            "keep it outside the database (make run and make test make a local one)"
        )
    if not isinstance(value, str) or not _HEX_KEY.fullmatch(value):
        return "must be 32 to 128 hex digits (16 to 64 bytes; 64 hex digits recommended)"
    return None


def _check_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s?#]+", value):
        return f"must be an http(s) URL without a query or fragment, got {value!r}"
    return None


_TILE_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/[^\s\"'<>]*")


def _check_tile_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _TILE_URL.fullmatch(value):
        return f"must be an http(s) URL template such as https://tiles.example.com/{{z}}/{{x}}/{{y}}.png, got {value!r}"
    if not all(part in value for part in ("{z}", "{x}", "{y}")):
        return "must hold {z}, {x} and {y} (Leaflet's tile URL template)"
    if "{s}" in value:
        return "must name one host, without {s}: the dashboard's CSP allows exactly that origin"
    return None


def _tile_attribution(value: Any, config: Mapping[str, Any]) -> str | None:
    if config.get("MAP_TILE_URL") and not value:
        return "is not set: tiles from MAP_TILE_URL need their attribution on the map"
    return None


def _check_geocoder_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s#]+", value):
        return f"must be an http(s) URL (a query is kept, e.g. for a key), got {value!r}"
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
        "APP_ENV",
        "production",
        _lower,
        _one_of(*APP_ENVS),
        "`production` or `development`. Production refuses to start without its secrets "
        "(`SECRET_KEY`); development makes up what is missing, for this run only.",
    ),
    Setting(
        "SECRET_KEY",
        None,
        _optional,
        _check_secret_key,
        "Signs the dashboard's session cookie and seals the API key inside it; the same for "
        "every process of a deployment. Required in production; at least 32 characters.",
        check_with=_secret_key_in_production,
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
        "DATABASE_REPLICA_URLS",
        None,
        _urls,
        _check_replica_urls,
        "Read replicas (hot standbys of `DATABASE_URL` by PostgreSQL streaming replication), "
        "comma-separated PostgreSQL URLs. Read-only endpoints read from a healthy one; writes "
        "and reads that must see a write use the primary (docs/scaling.md). Unset: no replicas.",
    ),
    Setting(
        "REPLICA_MAX_LAG_SECONDS",
        1.0,
        _number,
        _at_least(0),
        "A replica whose replay is further behind than this is out of rotation until it catches "
        "up. It bounds how stale nearby's listing may be; the wallet, offers, venues, analytics "
        "and the audit trail never read stale (docs/scaling.md).",
    ),
    Setting(
        "REPLICA_CHECK_SECONDS",
        0.5,
        _number,
        _at_least(0.05),
        "How often each worker checks a replica's health and lag (the lag is measured to about "
        "this much: keep it at most half of REPLICA_MAX_LAG_SECONDS); a replica that is down is "
        "tried again after this long.",
    ),
    Setting(
        "REPLICA_FRESH_WAIT_MS",
        50,
        _integer,
        _at_least(0),
        "How long a read that must see every earlier write waits for a replica to replay up to "
        "the primary's position before it reads the primary instead.",
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
        "A fix older than this is `stale_fix`, and one dated more than this before the user's "
        "latest accepted fix is `backdated_fix`. The contract fixes 2 minutes.",
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
        "Travel faster than this from, or to, the accepted fixes just before and after a fix "
        "in time is `impossible_travel`. "
        "The contract fixes 300 km/h.",
    ),
    Setting(
        "NFC_MASTER_KEY",
        None,
        _optional,
        _check_master_key,
        "Hex key (64 hex digits recommended) every NFC tag's and card's AES keys and every "
        "user's member-code secret are derived from. Required; keep it outside the database "
        "(a secret store). Changing it invalidates every registered tag and card. `make run` and "
        "`make test` generate a local one (docs/presence.md).",
    ),
    Setting(
        "NFC_TAP_URL",
        None,
        _optional,
        _check_url,
        "Base of the URL programmed into tags and cards (the app's link, e.g. "
        "`https://app.example.com/tap`). Unset: `<this service's URL>/tap`.",
    ),
    Setting(
        "LOG_LEVEL",
        "INFO",
        _log_level,
        _check_log_level,
        "Least severe level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL (case-insensitive).",
    ),
    Setting(
        "LOG_FORMAT",
        "auto",
        _lower,
        _one_of(*LOG_FORMATS),
        "`json` (one object per line, for machines), `text` (short lines for people), or "
        "`auto`: text when the logs go to a terminal, JSON otherwise.",
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
    Setting(
        "RATE_LIMIT_ENABLED",
        True,
        _boolean,
        _check_boolean,
        "Rate limits per API key, per user token and per client IP (`api/ratelimit.py`); over a "
        "limit is 429 `rate_limited` with `Retry-After`.",
    ),
    Setting(
        "RATE_LIMIT_PER_KEY",
        "6000/minute",
        _text,
        _check_limits,
        "Requests one merchant API key may make (all routes together).",
    ),
    Setting(
        "RATE_LIMIT_PER_MERCHANT",
        "12000/minute",
        _text,
        _check_limits,
        "Requests all of one merchant's API keys (its tills included) may make together, so "
        "creating more keys does not raise a merchant's budget.",
    ),
    Setting(
        "RATE_LIMIT_PER_USER",
        "1200/minute",
        _text,
        _check_limits,
        "Requests one mobile user may make with all their tokens together (all routes), so "
        "signing in again does not start a fresh budget.",
    ),
    Setting(
        "RATE_LIMIT_PER_IP",
        "12000/minute",
        _text,
        _check_limits,
        "Requests one client IP address may make, with or without credentials.",
    ),
    Setting(
        "RATE_LIMIT_SIGN_IN_PER_IP",
        "30/minute;300/hour",
        _text,
        _check_limits,
        "Sign-ins, sign-ups and device pairings (`POST /v1/users/token`, `POST /v1/users`, "
        "`POST /v1/devices/pair`) one client IP address may make, together: each costs an "
        "Argon2 hash (about 0.2 s of CPU) or guesses a secret.",
    ),
    Setting(
        "REDIS_URL",
        None,
        _optional,
        _check_redis_url,
        "Where rate-limit counters live, shared by every worker and host. Unset: in PostgreSQL "
        "(the `rate_limit_counters` table), which every worker and host shares too.",
    ),
    Setting(
        "TRUSTED_PROXIES",
        0,
        _integer,
        _at_least(0),
        "How many reverse proxies in front of the service append to `X-Forwarded-For` and set "
        "`X-Forwarded-Proto`; the client IP (rate limits, logs) is read through that many.",
    ),
    Setting(
        "CORS_ORIGINS",
        None,
        _origins,
        _check_origins,
        "Browser origins allowed to call the API (`/v1/...`) cross-origin, comma-separated, or "
        "`*`. Unset: no CORS headers at all.",
    ),
    Setting(
        "MAP_TILE_URL",
        None,
        _optional,
        _check_tile_url,
        "A raster tile server for the dashboard's maps, as a Leaflet URL template "
        "(`https://tiles.example.com/{z}/{x}/{y}.png`, one host, no `{s}`); the browser loads "
        "tiles from it and the dashboard's CSP allows its origin in `img-src`. Unset: the "
        "offline basemap that ships with the service (docs/dashboard.md).",
    ),
    Setting(
        "MAP_TILE_ATTRIBUTION",
        None,
        _optional,
        _no_check,
        "The attribution the tiles' licence asks for, shown on the map as text "
        "(`© OpenStreetMap contributors`). Required with MAP_TILE_URL.",
        check_with=_tile_attribution,
    ),
    Setting(
        "GEOCODER_URL",
        None,
        _optional,
        _check_geocoder_url,
        "A Nominatim-compatible search endpoint (`https://nominatim.example.com/search`) the "
        "dashboard's map search asks for addresses beyond the merchant's venues and the offline "
        "map's streets. The server calls it (the browser never does): a key may go in its query. "
        "Unset: the offline search only.",
    ),
    Setting(
        "RETENTION_DAYS",
        30,
        _integer,
        _at_least(1),
        "Days a check-in keeps its precise fix and device id; then the retention job coarsens it "
        "to its venue (docs/privacy.md). Below 30 the staff-device check sees fewer devices.",
    ),
    Setting(
        "RETENTION_INTERVAL_MINUTES",
        60,
        _integer,
        _at_least(1),
        "How often the service runs the retention job (one process at a time, whatever the "
        "number of workers and hosts).",
    ),
    Setting(
        "RETENTION_JOB_ENABLED",
        True,
        _boolean,
        _check_boolean,
        "Run the retention job inside the service (`false` when a scheduler runs "
        "`flask --app api.wsgi retention` instead).",
    ),
    Setting(
        "WEBHOOKS_ALLOW_HTTP_LOOPBACK",
        False,
        _boolean,
        _check_boolean,
        "Accept webhook URLs on a loopback address, plain `http` included (development and "
        "tests only). Off: webhook URLs must be `https` to a public address.",
    ),
    Setting(
        "WEBHOOK_WORKER_THREADS",
        4,
        _integer,
        _at_least(1),
        "Deliveries the webhook worker sends at once (one per endpoint at a time).",
    ),
    Setting(
        "WEBHOOK_WORKER_METRICS_PORT",
        0,
        _integer,
        _at_least(0),
        "When above 0, the webhook worker serves its Prometheus metrics (delivery outcomes) on "
        "this port at `/metrics`.",
    ),
    Setting(
        "APPLE_PASS_TYPE_ID",
        None,
        _optional,
        _no_check,
        "Apple Wallet: the pass type identifier (`pass.com.example.offers`). Unset: no Apple passes (503 `wallet_not_configured`).",
    ),
    Setting(
        "APPLE_TEAM_ID",
        None,
        _optional,
        _no_check,
        "Apple Wallet: the developer team identifier.",
    ),
    Setting(
        "APPLE_PASS_CERT_FILE",
        None,
        _optional,
        _no_check,
        "Apple Wallet: the pass type certificate (PEM file).",
    ),
    Setting(
        "APPLE_PASS_KEY_FILE",
        None,
        _optional,
        _no_check,
        "Apple Wallet: its private key (PEM file, unencrypted, RSA).",
    ),
    Setting(
        "APPLE_WWDR_CERT_FILE",
        None,
        _optional,
        _no_check,
        "Apple Wallet: Apple's WWDR intermediate certificate (PEM file).",
    ),
    Setting(
        "GOOGLE_WALLET_ISSUER_ID",
        None,
        _optional,
        _no_check,
        "Google Wallet: the issuer id. Unset: no Google passes (503 `wallet_not_configured`).",
    ),
    Setting(
        "GOOGLE_WALLET_SERVICE_ACCOUNT",
        None,
        _optional,
        _no_check,
        "Google Wallet: the service account's e-mail address (the JWT's `iss`).",
    ),
    Setting(
        "GOOGLE_WALLET_KEY_FILE",
        None,
        _optional,
        _no_check,
        "Google Wallet: the service account's private key (PEM file, RSA).",
    ),
    Setting(
        "HSTS_SECONDS",
        0,
        _integer,
        _at_least(0),
        "Sends `Strict-Transport-Security: max-age=<this>` when above 0. Set it only when the "
        "service is reached over HTTPS alone.",
    ),
)

SERVER_SETTINGS: tuple[Setting, ...] = (
    Setting("HOST", "127.0.0.1", _text, _no_check, "Address gunicorn listens on."),
    Setting("PORT", 8000, _integer, _at_least(1), "Port gunicorn listens on."),
    Setting(
        "WEB_CONCURRENCY",
        4,
        _integer,
        _at_least(1),
        "gunicorn worker processes (about two per core: measured best in docs/performance.md).",
    ),
    Setting(
        "THREADS",
        2,
        _integer,
        _at_least(1),
        "Threads per worker: requests in flight per worker. Python runs one thread of a worker"
        " at a time, so more threads mostly wait for each other (docs/performance.md).",
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
            if problem is None and setting.check_with is not None:
                problem = setting.check_with(config[setting.name], config)
            if problem is not None:
                problems[setting.name] = problem
    if problems:
        raise ConfigError([f"{s.name} {problems[s.name]}" for s in settings if s.name in problems])
    return config
