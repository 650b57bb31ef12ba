"""The migrations produce exactly the models' schema, spatial indexes included."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from geoalchemy2 import alembic_helpers
from sqlalchemy import Engine, text

from api.cli import alembic_config
from core.models import Base


def _include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if type_ == "table" and reflected and compare_to is None:
        return False  # PostGIS's own tables
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


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
