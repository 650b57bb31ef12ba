"""abuse: strikes and staff exclusion on check-ins, merchants' staff accounts

Additive only: an older version of the service keeps working while this runs (the new columns
have defaults; PostgreSQL adds a column with a constant default without rewriting the table).
The indexes are built without CONCURRENTLY, so on a large `checkins` table run this in a quiet
hour (docs/operations.md, migrations).

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANALYST_ROLE = "checkin_offers_analyst"

# analytics.checkins as migration 0002 made it, and with the two new columns at the end (a view
# can only gain columns at the end when it is replaced).
CHECKINS_VIEW = """
    SELECT c.id AS checkin_id, c.created_at, c.observed_at,
           c.created_at AT TIME ZONE v.timezone AS local_time,
           c.user_id, c.device_id, c.status, c.reason_codes, c.accuracy_m, c.mock_location,
           c.presence_code_sent, c.location,
           v.id AS venue_id, v.name AS venue_name, v.category AS venue_category,
           v.timezone AS venue_timezone, v.location AS venue_location,
           v.geofence AS venue_geofence, v.merchant_id,
           ST_Distance(c.location, v.location) AS distance_to_venue_m{extra}
    FROM checkins c JOIN venues v ON v.id = c.venue_id
"""

GRANT = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ANALYST_ROLE}') THEN
        EXECUTE 'GRANT SELECT ON analytics.checkins TO {ANALYST_ROLE}';
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'no privilege to grant {ANALYST_ROLE} SELECT on analytics.checkins';
END
$$;
"""


def upgrade() -> None:
    op.add_column(
        "checkins",
        sa.Column(
            "strikes",
            postgresql.ARRAY(sa.String(length=32)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.add_column("checkins", sa.Column("staff_exclusion", sa.String(length=16), nullable=True))
    op.create_index(
        "ix_checkins_device_id_created_at",
        "checkins",
        ["device_id", "created_at"],
        unique=False,
        postgresql_include=["user_id"],
        postgresql_where=sa.text("device_id IS NOT NULL"),
    )
    op.create_index(
        "ix_checkins_user_id_created_at",
        "checkins",
        ["user_id", "created_at"],
        unique=False,
        postgresql_include=["device_id", "status"],
    )
    op.create_index(
        "ix_checkins_flagged_venue_id_created_at",
        "checkins",
        ["venue_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("strikes <> '{}' OR staff_exclusion IS NOT NULL"),
    )
    op.create_table(
        "merchant_staff_users",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("merchant_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_merchant_staff_users_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_merchant_staff_users_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant_staff_users")),
        sa.UniqueConstraint(
            "merchant_id", "user_id", name=op.f("uq_merchant_staff_users_merchant_id_user_id")
        ),
    )
    op.create_index(
        op.f("ix_merchant_staff_users_user_id"), "merchant_staff_users", ["user_id"], unique=False
    )
    op.execute(
        "CREATE OR REPLACE VIEW analytics.checkins AS "
        + CHECKINS_VIEW.format(extra=",\n           c.strikes, c.staff_exclusion")
    )


def downgrade() -> None:
    # A replaced view cannot lose columns: drop it, make it again as 0002 did, and grant it again.
    op.execute("DROP VIEW analytics.checkins")
    op.execute("CREATE VIEW analytics.checkins AS " + CHECKINS_VIEW.format(extra=""))
    op.execute(GRANT)
    op.drop_index(op.f("ix_merchant_staff_users_user_id"), table_name="merchant_staff_users")
    op.drop_table("merchant_staff_users")
    op.drop_index("ix_checkins_flagged_venue_id_created_at", table_name="checkins")
    op.drop_index("ix_checkins_user_id_created_at", table_name="checkins")
    op.drop_index("ix_checkins_device_id_created_at", table_name="checkins")
    op.drop_column("checkins", "staff_exclusion")
    op.drop_column("checkins", "strikes")
