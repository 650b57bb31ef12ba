"""Test fixtures, all on real PostgreSQL + PostGIS.

`DATABASE_URL` names a server where the suite may create databases (`make test` points it at the
private cluster). The suite migrates a throwaway database once per run and drops it at the end.
Each test runs inside a transaction that is rolled back (`join_transaction_mode=
"create_savepoint"`), so tests are isolated without truncating anything. Tests that need real
commits and a real server process use `live_server`, on a database of its own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, make_url, text

from api import create_app, db
from api.cli import alembic_config
from core.uow import make_engine, sqlalchemy_url
from mobile_stub.client import Client, FlaskTransport, HttpTransport
from tests.factories import bind_to_connection
from tests.servers import start_gunicorn

ROOT = Path(__file__).resolve().parent.parent
# The service refuses to start without its NFC master key (api/config.py): every app and server
# the suite starts uses one made for this run, unless the environment brings its own.
os.environ.setdefault("NFC_MASTER_KEY", secrets.token_hex(32))
# The suite signs hundreds of users up from one address (127.0.0.1) against servers that live
# for the whole run; the tests of the sign-in throttle set their own limits.
os.environ.setdefault("RATE_LIMIT_SIGN_IN_PER_IP", "100000/minute")
TIERS = ROOT / "tests"
LIVE_FIXTURES = {"live_server", "live_api", "live_database_url"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tiers say what they are: every test under `e2e/` carries the `e2e` marker and no
    test elsewhere does, nor starts the live server. A misfiled test stops the run."""
    misfiled = []
    for item in items:
        tier = item.path.relative_to(TIERS).parts[0]
        e2e = item.get_closest_marker("e2e") is not None
        live = bool(LIVE_FIXTURES & set(getattr(item, "fixturenames", ())))
        if (tier == "e2e") != e2e or (live and tier != "e2e"):
            misfiled.append(item.nodeid)
    if misfiled:
        raise pytest.UsageError(
            "tests in the wrong tier (e2e/ tests carry pytest.mark.e2e; only they use a live "
            "server): " + ", ".join(misfiled)
        )


# The suite runs the app as production does (APP_ENV unset), and production needs a SECRET_KEY:
# one made up for this run, passed to create_app in the fixtures' mappings and, through the
# environment they inherit, to the servers and tools the suite starts (gunicorn, the benchmark).
SECRET_KEY = os.environ.setdefault("SECRET_KEY", secrets.token_hex(32))


def _server_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.exit("DATABASE_URL is not set; run the suite with `make test`", returncode=2)
    return url


def _create_database(name: str) -> str:
    """A new database on the test server with PostGIS and the schema at head."""
    server = make_url(sqlalchemy_url(_server_url()))
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    config = alembic_config(url)
    config.attributes["skip_logging"] = True
    command.upgrade(config, "head")
    return url


def _drop_database(name: str) -> None:
    server = make_url(sqlalchemy_url(_server_url()))
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"co_test_{secrets.token_hex(4)}"
    url = _create_database(name)
    yield url
    _drop_database(name)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def app(database_url: str, engine: Engine) -> Iterator[Flask]:
    """The app on one connection whose outer transaction is rolled back after the test."""
    connection = engine.connect()
    outer = connection.begin()
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY, "TESTING": True})
    bind_to_connection(app, connection)
    yield app
    outer.rollback()
    connection.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def api(client: FlaskClient) -> Client:
    """The mobile_stub client over the Flask test client, without credentials."""
    return Client(FlaskTransport(client))


@pytest.fixture
def owner(api: Client) -> Client:
    """A signed-up merchant's owner client."""
    return api.with_token(api.create_merchant("Test Cafe", "owner@example.com")["api_key"])


@pytest.fixture
def other_owner(api: Client) -> Client:
    """A second merchant (another tenant)."""
    return api.with_token(api.create_merchant("Rival Cafe", "rival@example.com")["api_key"])


@pytest.fixture
def mobile(api: Client) -> Client:
    """A signed-up mobile user's client."""
    return api.with_token(api.create_user(f"user_{secrets.token_hex(4)}", "correct horse")["token"])


# ---- committed data, for what production reads on another connection ------------------------


@pytest.fixture(scope="session")
def committed_database_url() -> Iterator[str]:
    name = f"co_committed_{secrets.token_hex(4)}"
    url = _create_database(name)
    yield url
    _drop_database(name)


@pytest.fixture
def committed_app(committed_database_url: str) -> Iterator[Flask]:
    """The app exactly as production wires it (its pool, and nearby's autocommit connection),
    on a database of its own where changes really commit; every table is emptied afterwards."""
    app = create_app(
        {"DATABASE_URL": committed_database_url, "SECRET_KEY": SECRET_KEY, "TESTING": True}
    )
    yield app
    with app.extensions["engine"].begin() as conn:
        tables = conn.execute(
            text(
                "SELECT string_agg(format('%I', tablename), ', ') FROM pg_tables"
                " WHERE schemaname = 'public'"
                " AND tablename NOT IN ('alembic_version', 'spatial_ref_sys')"
            )
        ).scalar_one()
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    db.dispose(app)


@pytest.fixture
def committed_api(committed_app: Flask) -> Client:
    return Client(FlaskTransport(committed_app.test_client()))


@pytest.fixture
def committed_owner(committed_api: Client) -> Client:
    return committed_api.with_token(
        committed_api.create_merchant("Committed Cafe", "owner@example.com")["api_key"]
    )


# ---- a real server process ------------------------------------------------------------------


@pytest.fixture(scope="session")
def live_database_url() -> Iterator[str]:
    name = f"co_live_{secrets.token_hex(4)}"
    url = _create_database(name)
    yield url
    _drop_database(name)


@pytest.fixture(scope="session")
def live_server(live_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gunicorn, exactly as `make run` starts it (`tests/servers.py`), on a committed database
    of its own."""
    server = start_gunicorn(
        live_database_url, tmp_path_factory.mktemp("live") / "gunicorn.log", graceful_timeout=5
    )
    yield server.base
    server.stop()


@pytest.fixture
def live_api(live_server: str) -> Iterator[Client]:
    transport = HttpTransport(live_server)
    yield Client(transport)
    transport.close()
