"""Configuration: every setting from the environment, with documented defaults, validated at start;
a bad value stops the service (gunicorn, the flask CLI) with a clear message, not a stack trace."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api import create_app, db
from api.config import SERVER_SETTINGS, SETTINGS, ConfigError, load, load_server

ROOT = Path(__file__).resolve().parents[2]
URL = "postgresql://u:p@localhost:5432/db"
KEY = "ab" * 32  # an NFC master key
SECRET = "k" * 32  # a SECRET_KEY long enough to be accepted
# What every environment needs; production needs a SECRET_KEY too.
BASE = {"DATABASE_URL": URL, "NFC_MASTER_KEY": KEY}
REQUIRED = {**BASE, "SECRET_KEY": SECRET}


def test_defaults() -> None:
    config = load(environ=REQUIRED)
    assert config == {s.name: s.default for s in SETTINGS} | REQUIRED
    assert config["APP_ENV"] == "production"
    assert config["LOG_FORMAT"] == "auto"
    assert config["DB_POOL_SIZE"] == 5
    assert config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    assert config["CHECKIN_STALE_AFTER_SECONDS"] == 120
    assert config["CHECKIN_FUTURE_TOLERANCE_SECONDS"] == 30
    assert config["CHECKIN_MAX_SPEED_KMH"] == 300
    assert config["LOG_LEVEL"] == "INFO"
    assert config["METRICS_TOKEN"] is None


def test_values_from_the_environment(tmp_path: Path) -> None:
    config = load(
        environ={
            "DATABASE_URL": " postgres://u@h/db ",
            "SECRET_KEY": SECRET,
            "NFC_MASTER_KEY": KEY,
            "APP_ENV": "Development",
            "LOG_FORMAT": "TEXT",
            "DB_POOL_SIZE": "12",
            "DB_MAX_OVERFLOW": "0",
            "CHECKIN_MAX_SPEED_KMH": "250.5",
            "LOG_LEVEL": "debug",
            "METRICS_TOKEN": "a" * 32,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
            "USER_TOKEN_TTL_DAYS": "",  # empty is unset
            "DATABASE_REPLICA_URLS": " postgresql://u@r1/db ,postgresql://u@r2:5433/db,",
        }
    )
    assert config["DATABASE_REPLICA_URLS"] == ("postgresql://u@r1/db", "postgresql://u@r2:5433/db")
    assert config["DATABASE_URL"] == "postgres://u@h/db"
    assert (config["APP_ENV"], config["LOG_FORMAT"]) == ("development", "text")
    assert config["DB_POOL_SIZE"] == 12
    assert config["DB_MAX_OVERFLOW"] == 0
    assert config["CHECKIN_MAX_SPEED_KMH"] == 250.5
    assert config["LOG_LEVEL"] == "DEBUG"
    assert config["METRICS_TOKEN"] == "a" * 32
    assert config["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    assert config["USER_TOKEN_TTL_DAYS"] == 30


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("DATABASE_URL", "mysql://u@h/db", "DATABASE_URL must be a PostgreSQL URL"),
        # What a missing port file once made: the driver's stack trace, not a message.
        (
            "DATABASE_URL",
            "postgresql://postgres:pw@127.0.0.1:/db",
            "DATABASE_URL has no valid port",
        ),
        (
            "DATABASE_URL",
            "postgresql://postgres:pw@127.0.0.1:x/db",
            "DATABASE_URL has no valid port",
        ),
        ("APP_ENV", "prod", "APP_ENV must be one of production, development, got 'prod'"),
        ("SECRET_KEY", "changeme", "SECRET_KEY must be at least 32 characters"),
        ("LOG_FORMAT", "pretty", "LOG_FORMAT must be one of auto, json, text, got 'pretty'"),
        ("NFC_MASTER_KEY", "not hex", "NFC_MASTER_KEY must be 32 to 128 hex digits"),
        ("NFC_MASTER_KEY", "ab" * 8, "NFC_MASTER_KEY must be 32 to 128 hex digits"),
        ("NFC_TAP_URL", "ftp://x/tap", "NFC_TAP_URL must be an http(s) URL"),
        ("DB_POOL_SIZE", "five", "DB_POOL_SIZE must be an integer, got 'five'"),
        ("DB_POOL_SIZE", "0", "DB_POOL_SIZE must be at least 1, got 0"),
        ("DB_MAX_OVERFLOW", "-1", "DB_MAX_OVERFLOW must be at least 0, got -1"),
        ("MAX_CONTENT_LENGTH", "1.5", "MAX_CONTENT_LENGTH must be an integer"),
        ("CHECKIN_STALE_AFTER_SECONDS", "0", "CHECKIN_STALE_AFTER_SECONDS must be at least 1"),
        ("CHECKIN_MAX_SPEED_KMH", "fast", "CHECKIN_MAX_SPEED_KMH must be a number"),
        ("CHECKIN_MAX_SPEED_KMH", "nan", "CHECKIN_MAX_SPEED_KMH must be a finite number"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("METRICS_TOKEN", "short", "METRICS_TOKEN must be 16 to 256 characters"),
        ("METRICS_TOKEN", "x" * 20 + " y", "METRICS_TOKEN must be 16 to 256 characters"),
        (
            "DATABASE_REPLICA_URLS",
            "postgresql://u@h1/db, mysql://u@h2/db",
            "DATABASE_REPLICA_URLS (URL 2) must be a PostgreSQL URL",
        ),
        ("REPLICA_MAX_LAG_SECONDS", "-1", "REPLICA_MAX_LAG_SECONDS must be at least 0"),
        ("REPLICA_CHECK_SECONDS", "0", "REPLICA_CHECK_SECONDS must be at least 0.05"),
        ("REPLICA_FRESH_WAIT_MS", "soon", "REPLICA_FRESH_WAIT_MS must be an integer"),
        (
            "PROMETHEUS_MULTIPROC_DIR",
            "/no/such/dir",
            "PROMETHEUS_MULTIPROC_DIR must be an existing directory",
        ),
    ],
)
def test_a_bad_value_is_named_with_what_is_wrong(name: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(environ={**REQUIRED, "APP_ENV": "production", name: raw})
    (problem,) = error.value.problems
    assert problem.startswith(message), problem


def test_every_problem_is_reported_at_once_in_settings_order() -> None:
    with pytest.raises(ConfigError) as error:
        load(environ={"LOG_LEVEL": "loud", "DB_POOL_SIZE": "x"})
    assert [p.split()[0] for p in error.value.problems] == [
        "DATABASE_URL",
        "SECRET_KEY",
        "DB_POOL_SIZE",
        "NFC_MASTER_KEY",
        "LOG_LEVEL",
    ]
    report = error.value.report()
    assert report.startswith("checkin-offers: invalid configuration")
    assert report.count("\n  - ") == 5


# ---- production and development: SECRET_KEY --------------------------------------------------


def test_production_refuses_to_start_without_a_secret_key() -> None:
    for environ in ({}, {"APP_ENV": "production"}, {"APP_ENV": " PRODUCTION "}):
        with pytest.raises(ConfigError) as error:
            load(environ={**BASE, **environ})
        (problem,) = error.value.problems
        assert problem.startswith("SECRET_KEY is not set: in production"), problem
    assert load(environ=REQUIRED)["SECRET_KEY"] == SECRET


def test_development_runs_without_a_secret_key_but_never_with_a_short_one() -> None:
    config = load(environ={**BASE, "APP_ENV": "development"})
    assert config["SECRET_KEY"] is None
    with pytest.raises(ConfigError, match="SECRET_KEY must be at least 32 characters"):
        load(environ={**BASE, "APP_ENV": "development", "SECRET_KEY": "short"})


def test_an_app_without_a_secret_key_in_development_makes_one_up_for_itself(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two apps (two processes) get different keys: what gunicorn's master prevents by making
    one up for all its workers (test_gunicorn_makes_up_one_secret_key_for_all_workers)."""
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        create_app({"DATABASE_URL": database_url, "SECRET_KEY": None, "APP_ENV": "production"})
    one, two = (
        create_app({"DATABASE_URL": database_url, "SECRET_KEY": None, "APP_ENV": "development"})
        for _ in range(2)
    )
    assert len(one.config["SECRET_KEY"]) >= 32 and len(two.config["SECRET_KEY"]) >= 32
    assert one.config["SECRET_KEY"] != two.config["SECRET_KEY"]
    assert "SECRET_KEY is not set (APP_ENV=development)" in caplog.text
    chosen = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "s" * 40})
    assert chosen.config["SECRET_KEY"] == "s" * 40
    for app in (one, two, chosen):
        db.dispose(app)


def test_gunicorn_makes_up_one_secret_key_for_all_workers() -> None:
    """In development the master puts a key in the environment its workers inherit; with a
    key, or in production, it leaves the environment alone."""
    probe = "import os, api.gunicorn_conf as c; print(os.environ.get('SECRET_KEY', '')); c.on_exit(None)"
    made_up = _run([sys.executable, "-c", probe], DATABASE_URL=URL, APP_ENV="development")
    assert made_up.returncode == 0, made_up.stderr
    assert len(made_up.stdout.strip()) == 64
    again = _run([sys.executable, "-c", probe], DATABASE_URL=URL, APP_ENV="development")
    assert again.stdout.strip() != made_up.stdout.strip()  # one per server run
    kept = _run([sys.executable, "-c", probe], DATABASE_URL=URL, SECRET_KEY=SECRET)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.strip() == SECRET


def test_overrides_are_validated_too() -> None:
    with pytest.raises(ConfigError, match="DB_POOL_SIZE must be at least 1"):
        create_app({"DATABASE_URL": URL, "SECRET_KEY": SECRET, "DB_POOL_SIZE": 0})


def test_server_settings() -> None:
    assert load_server(environ={}) == {s.name: s.default for s in SERVER_SETTINGS}
    server = load_server(environ={"PORT": "9000", "WEB_CONCURRENCY": "4", "THREADS": "16"})
    assert (server["PORT"], server["WEB_CONCURRENCY"], server["THREADS"]) == (9000, 4, 16)
    with pytest.raises(ConfigError, match="WEB_CONCURRENCY must be at least 1, got 0"):
        load_server(environ={"WEB_CONCURRENCY": "0"})


def test_every_setting_is_documented_with_its_default() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    rows = {
        m[1]: m[2] for m in re.finditer(r"^\| `([A-Z_]+)` \| ([^|]*) \|", doc, flags=re.MULTILINE)
    }
    for setting in (*SETTINGS, *SERVER_SETTINGS):
        assert setting.name in rows, f"{setting.name} is not in docs/configuration.md"
        default = rows[setting.name]
        if setting.default is None:
            assert "unset" in default or "required" in default, (setting.name, default)
        else:
            shown = (
                f"{setting.default:g}"
                if isinstance(setting.default, float)
                else str(setting.default)
            )
            assert f"`{shown}`" in default, (setting.name, default)


# ---- refusing to start ----------------------------------------------------------------------


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in {s.name for s in SETTINGS}}
    return subprocess.run(
        args,
        cwd=ROOT,
        env={**environ, "NFC_MASTER_KEY": KEY, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_the_flask_cli_refuses_a_bad_configuration() -> None:
    result = _run(
        [_bin("flask"), "--app", "api.wsgi", "migrate"], DATABASE_URL="mysql://x", LOG_LEVEL="x"
    )
    assert result.returncode == 1
    assert "checkin-offers: invalid configuration" in result.stderr
    assert "DATABASE_URL must be a PostgreSQL URL" in result.stderr
    assert "LOG_LEVEL must be one of" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_gunicorn_refuses_a_bad_configuration_before_forking_workers() -> None:
    result = _run(
        [_bin("gunicorn"), "--config", "python:api.gunicorn_conf", "api.wsgi:app"],
        DATABASE_URL=URL,
        DB_POOL_SIZE="lots",
        THREADS="0",
    )
    assert result.returncode == 1
    assert "DB_POOL_SIZE must be an integer, got 'lots'" in result.stderr
    assert "THREADS must be at least 1, got 0" in result.stderr
    assert "SECRET_KEY is not set: in production" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "Booting worker" not in result.stderr + result.stdout


def test_gunicorn_settings_come_from_the_environment() -> None:
    """The config module as gunicorn reads it (in a subprocess: it sets up the process)."""
    probe = (
        "import json, os, api.gunicorn_conf as c;"
        "d = os.environ['PROMETHEUS_MULTIPROC_DIR'];"
        "print(json.dumps({'bind': c.bind, 'workers': c.workers, 'threads': c.threads,"
        " 'worker_class': c.worker_class, 'graceful_timeout': c.graceful_timeout,"
        " 'timeout': c.timeout, 'accesslog': c.accesslog, 'loglevel': c.loglevel,"
        " 'root': c.logconfig_dict['root'], 'dir': d, 'dir_exists': os.path.isdir(d)}));"
        "c.on_exit(None); print(os.path.isdir(d))"
    )
    result = _run(
        [sys.executable, "-c", probe],
        DATABASE_URL=URL,
        SECRET_KEY=SECRET,
        HOST="0.0.0.0",
        PORT="9123",
        WEB_CONCURRENCY="3",
        THREADS="4",
        GRACEFUL_TIMEOUT="25",
        LOG_LEVEL="warning",
    )
    assert result.returncode == 0, result.stderr
    first, after_exit = result.stdout.splitlines()
    conf: dict[str, Any] = json.loads(first)
    assert conf["bind"] == "0.0.0.0:9123"
    assert (conf["workers"], conf["threads"], conf["worker_class"]) == (3, 4, "gthread")
    assert (conf["graceful_timeout"], conf["timeout"]) == (25, 30)
    assert conf["accesslog"] is None
    assert conf["loglevel"] == "warning"
    assert conf["root"] == {"level": "WARNING", "handlers": ["stdout"]}
    assert conf["dir_exists"] and "checkin-offers-metrics-" in conf["dir"]
    assert after_exit == "False"  # a directory it made is removed when the server exits


def test_gunicorn_empties_a_metrics_directory_it_is_given(tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    result = _run(
        [sys.executable, "-c", "import api.gunicorn_conf"],
        DATABASE_URL=URL,
        SECRET_KEY=SECRET,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
