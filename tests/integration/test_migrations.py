"""The migrations produce exactly the models' schema, spatial indexes included."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from geoalchemy2 import alembic_helpers
from sqlalchemy import Connection, Engine, create_engine, make_url, text

from api.cli import alembic_config
from core.models import Base
from core.uow import sqlalchemy_url


def _include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if type_ == "table" and reflected and compare_to is None:
        return False  # PostGIS's own tables
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


@pytest.fixture
def scratch(database_url: str) -> Iterator[tuple[Engine, Config]]:
    """An empty database of its own (dropped afterwards), for a test that migrates it step by
    step: its engine and its Alembic configuration."""
    server = make_url(sqlalchemy_url(database_url))
    name = f"co_mig_{secrets.token_hex(4)}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    config = alembic_config(url)
    config.attributes["skip_logging"] = True
    try:
        yield engine, config
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_no_drift_between_migrations_and_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": _include,
                "compare_type": True,
                "compare_server_default": True,
                "render_item": alembic_helpers.render_item,
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_database_is_at_the_single_head(engine: Engine, database_url: str) -> None:
    heads = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    assert len(heads) == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == heads[0]


def test_spatial_columns_have_gist_indexes_and_srid(engine: Engine) -> None:
    with engine.connect() as conn:
        indexes = dict(
            conn.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'venues'")
            ).all()
        )
        columns = dict(
            conn.execute(
                text(
                    "SELECT f_geography_column, srid FROM geography_columns"
                    " WHERE f_table_schema = 'public' AND f_table_name IN ('venues', 'checkins')"
                    " UNION ALL SELECT f_geometry_column, srid FROM geometry_columns"
                    " WHERE f_table_schema = 'public' AND f_table_name = 'venues'"
                )
            ).all()
        )
    assert "USING gist (location)" in indexes["ix_venues_location_live"]
    assert "WHERE (deleted_at IS NULL)" in indexes["ix_venues_location_live"]
    assert "USING gist (geofence)" in indexes["idx_venues_geofence"]
    assert columns == {"location": 4326, "geofence": 4326}


def test_0006_and_0007_keep_what_they_must_and_drop_what_they_must(
    scratch: tuple[Engine, Config],
) -> None:
    """A database with history written at 0004: a staff registration (and its audit event,
    which carried the user's id), and impressions counted on every listing. After the upgrade the
    registration has its handle, the trail has no user id, and one impression is left per user,
    offer and local day at the venue (Helsinki: 23:30 UTC is the next day)."""
    engine, config = scratch
    command.upgrade(config, "0004")
    ids = {k: str(uuid.uuid4()) for k in ("merchant", "user", "staff", "event", "venue", "o")}
    with engine.begin() as conn:
        for statement in (
            "INSERT INTO merchants (id, name, email) VALUES (:merchant, 'M', 'm@example.com')",
            "INSERT INTO users (id, handle, password_hash) VALUES (:user, 'Barista', 'x')",
            "INSERT INTO merchant_staff_users (id, merchant_id, user_id)"
            " VALUES (:staff, :merchant, :user)",
            "INSERT INTO audit_events (id, merchant_id, action, object_type, object_id,"
            " changes) VALUES (:event, :merchant, 'staff_user.create', 'staff_user', :staff,"
            " jsonb_build_object('user_id', jsonb_build_array(NULL, :user),"
            "                    'handle', jsonb_build_array(NULL, 'Barista')))",
            "INSERT INTO venues (id, merchant_id, name, timezone, location, geofence,"
            " checkin_cooldown_minutes, max_accuracy_m, presence_secret) VALUES (:venue,"
            " :merchant, 'V', 'Europe/Helsinki', 'SRID=4326;POINT(24.94 60.17)',"
            " ST_Multi(ST_Buffer('SRID=4326;POINT(24.94 60.17)'::geometry, 0.001)), 60, 100,"
            " '\\x00')",
            "INSERT INTO offers (id, merchant_id, title, rule, per_user_cap,"
            " code_ttl_minutes, requires_presence_code, holdout_pct)"
            " VALUES (:o, :merchant, 'O', '{\"kind\": \"every_checkin\"}', 1, 60, false, 0)",
            "INSERT INTO impressions (user_id, venue_id, offer_id, created_at)"
            " SELECT :user, :venue, :o, t::timestamptz FROM unnest(ARRAY["
            "  '2026-11-20T08:00Z', '2026-11-20T09:00Z', '2026-11-20T21:00Z',"
            "  '2026-11-20T23:30Z', '2026-11-21T10:00Z']) t",
        ):
            conn.execute(text(statement), ids)
    command.upgrade(config, "head")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT handle, user_id FROM merchant_staff_users")).one()
        changes = conn.execute(text("SELECT changes FROM audit_events")).scalar()
        kept = conn.execute(
            text("SELECT day::text, created_at FROM impressions ORDER BY created_at")
        ).all()
    assert (row.handle, str(row.user_id)) == ("Barista", ids["user"])
    assert changes == {"handle": [None, "Barista"]}
    assert [(day, at.astimezone(UTC).isoformat()) for day, at in kept] == [
        ("2026-11-20", "2026-11-20T08:00:00+00:00"),
        ("2026-11-21", "2026-11-20T23:30:00+00:00"),
    ]
    command.downgrade(config, "0004")  # and back, for whoever must


def test_0023_copies_proofs_and_unlock_facts_and_refuses_an_unverified_checkin(
    scratch: tuple[Engine, Config],
) -> None:
    """Unlocks written at 0022 get their check-in's proof, and redemptions their unlock's
    venue, time and proof; an unlock whose check-in is not verified (the app never writes one)
    stops the upgrade, since the leak report would count it as backed."""
    engine, config = scratch
    ids = {k: str(uuid.uuid4()) for k in ("merchant", "user", "venue", "o", "c1", "c2", "c3")}

    def unlock(conn: Connection, checkin: str) -> None:
        conn.execute(
            text(
                "INSERT INTO unlocks (id, offer_id, user_id, checkin_id, venue_id, merchant_id,"
                " code, created_at, expires_at) VALUES (gen_random_uuid(), :o, :user, :c,"
                " :venue, :merchant, :code, now(), now())"
            ),
            {**ids, "c": ids[checkin], "code": secrets.token_hex(6)},
        )

    command.upgrade(config, "0022")
    with engine.begin() as conn:
        for statement in (
            "INSERT INTO merchants (id, name, email) VALUES (:merchant, 'M', 'm@example.com')",
            "INSERT INTO users (id, handle, password_hash) VALUES (:user, 'u', 'x')",
            "INSERT INTO venues (id, merchant_id, name, timezone, location, geofence,"
            " checkin_cooldown_minutes, max_accuracy_m, presence_secret) VALUES (:venue,"
            " :merchant, 'V', 'Europe/Helsinki', 'SRID=4326;POINT(24.94 60.17)',"
            " ST_Multi(ST_Buffer('SRID=4326;POINT(24.94 60.17)'::geometry, 0.001)), 60, 100,"
            " '\\x00')",
            "INSERT INTO offers (id, merchant_id, title, rule, per_user_cap,"
            " code_ttl_minutes, requires_presence_code, holdout_pct)"
            " VALUES (:o, :merchant, 'O', '{\"kind\": \"every_checkin\"}', 9, 60, false, 0)",
            "INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at,"
            " mock_location, presence_code_sent, status, proof) SELECT c.id, :user, :venue,"
            " 'SRID=4326;POINT(24.94 60.17)', 10, now(), false, false, c.status, c.proof"
            " FROM (VALUES (CAST(:c1 AS uuid), 'verified', 'nfc_tap'),"
            "              (CAST(:c2 AS uuid), 'verified', 'gps'),"
            "              (CAST(:c3 AS uuid), 'rejected', 'gps')) c(id, status, proof)",
        ):
            conn.execute(text(statement), ids)
        unlock(conn, "c1")
        unlock(conn, "c1")
        unlock(conn, "c2")
        conn.execute(
            text(
                "UPDATE unlocks SET created_at = created_at - interval '1 hour'"
                " WHERE checkin_id = :c2"
            ),
            ids,
        )
        conn.execute(
            text(
                "INSERT INTO redemptions (id, unlock_id, offer_id, merchant_id, venue_id)"
                " SELECT gen_random_uuid(), id, offer_id, merchant_id, NULL FROM unlocks"
                " WHERE checkin_id = :c2"
            ),
            ids,
        )
    command.upgrade(config, "head")
    with engine.connect() as conn:
        copied = conn.execute(
            text("SELECT proof, count(*) FROM unlocks GROUP BY proof ORDER BY proof")
        ).all()
        redeemed = conn.execute(
            text(
                "SELECT r.unlock_venue_id = u.venue_id AND r.unlocked_at = u.created_at"
                " AND r.unlocked_at < now() - interval '59 minutes' AS same, r.proof"
                " FROM redemptions r JOIN unlocks u ON u.id = r.unlock_id"
            )
        ).all()
    assert [tuple(row) for row in copied] == [("gps", 1), ("nfc_tap", 2)]
    assert [tuple(row) for row in redeemed] == [(True, "gps")]
    command.downgrade(config, "0022")
    with engine.begin() as conn:
        unlock(conn, "c3")
    with pytest.raises(RuntimeError, match="1 unlocks have a check-in that is not verified"):
        command.upgrade(config, "head")
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == "0022"  # nothing of 0023 was kept
