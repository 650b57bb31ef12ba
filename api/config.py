"""Settings from the environment, validated at start: a bad value stops the service with a clear
message, not a stack trace."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,
    "DB_POOL_SIZE": 5,
    "DB_MAX_OVERFLOW": 10,
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "USER_TOKEN_TTL_DAYS": 30,
}


class ConfigError(Exception):
    pass


def load(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Defaults, then the environment, then `overrides` (tests pass a mapping)."""
    env = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        if name in env:
            config[name] = _parse(name, env[name], default)
    config.update(overrides or {})
    url = config["DATABASE_URL"]
    if not url:
        raise ConfigError("DATABASE_URL is not set (e.g. postgresql://user:pass@host:5432/db)")
    if not url.startswith(("postgresql", "postgres://")):
        raise ConfigError("DATABASE_URL must be a PostgreSQL URL (postgresql://...)")
    config["DATABASE_URL"] = url
    return config


def _parse(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if value < 0:
            raise ConfigError(f"{name} must not be negative, got {value}")
        return value
    return raw
