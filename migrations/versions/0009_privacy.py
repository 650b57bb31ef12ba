"""privacy: erased accounts, coarsened check-ins, erasure records, analyst views without raw points

- `users.erased_at`; `handle` and `password_hash` become nullable (an erased account keeps its
  row, without them, so that what merchants count stays true: docs/privacy.md).
- `checkins.coarsened_at` and `checkins.venue_distance_m`: a coarsened check-in's location is
  its venue's, its device id is gone, and the distance of the fix from the venue is what is left
  of the fix (the leak report's rough-fix count reads it). The partial index of check-ins still
  precise, by `created_at`, is what the retention job walks.
- `account_erasures`: one row per erased account (when, by whom, how many rows of each kind):
  never the erased data.
- `analytics.checkins` loses `device_id` and shows `location` as a ~1 km cell (0.01 degrees);
  `analytics.unlocks` shows `checkin_location` the same way. A view cannot lose a column in
  place: both are dropped and made again, and granted again.

The partial index is built inside the transaction and blocks check-in inserts while it builds:
on a large `checkins` table run it in a quiet hour (about 1 s per million rows measured here).

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANALYST_ROLE = "checkin_offers_analyst"

# core.privacy.CELL_DEGREES at the time of this migration (a migration never imports app code).
CELL = "0.01"

_CELL_OF = "ST_SnapToGrid({col}::geometry, " + CELL + ")::geography"

CHECKINS_VIEW = f"""
    SELECT c.id AS checkin_id, c.created_at, c.observed_at,
           c.created_at AT TIME ZONE v.timezone AS local_time,
           c.user_id, c.status, c.reason_codes, c.accuracy_m, c.mock_location,
           c.presence_code_sent, {_CELL_OF.format(col="c.location")} AS location,
           v.id AS venue_id, v.name AS venue_name, v.category AS venue_category,
           v.timezone AS venue_timezone, v.location AS venue_location,
           v.geofence AS venue_geofence, v.merchant_id,
           round(COALESCE(c.venue_distance_m, ST_Distance(c.location, v.location))::numeric, -1)
               AS distance_to_venue_m,
           c.strikes, c.staff_exclusion, c.proof, c.coarsened_at
    FROM checkins c JOIN venues v ON v.id = c.venue_id
"""
UNLOCKS_VIEW = f"""
    SELECT u.id AS unlock_id, u.created_at, u.expires_at, u.redeemed_at,
           CASE WHEN u.redeemed_at IS NOT NULL THEN 'redeemed'
                WHEN u.expires_at <= now() THEN 'expired' ELSE 'active' END AS status,
           left(u.code, 4) AS code_hint,
           u.user_id, u.checkin_id, {_CELL_OF.format(col="c.location")} AS checkin_location,
           u.offer_id, o.title AS offer_title, o.rule->>'kind' AS rule_kind,
           u.venue_id, v.name AS venue_name, v.location AS venue_location,
           v.timezone AS venue_timezone, u.merchant_id, c.proof
    FROM unlocks u
    JOIN offers o ON o.id = u.offer_id
    JOIN venues v ON v.id = u.venue_id
    JOIN checkins c ON c.id = u.checkin_id
"""

# The views as migration 0005 left them, for the downgrade.
OLD_CHECKINS_VIEW = """
    SELECT c.id AS checkin_id, c.created_at, c.observed_at,
           c.created_at AT TIME ZONE v.timezone AS local_time,
           c.user_id, c.device_id, c.status, c.reason_codes, c.accuracy_m, c.mock_location,
           c.presence_code_sent, c.location,
           v.id AS venue_id, v.name AS venue_name, v.category AS venue_category,
           v.timezone AS venue_timezone, v.location AS venue_location,
           v.geofence AS venue_geofence, v.merchant_id,
           ST_Distance(c.location, v.location) AS distance_to_venue_m,
           c.strikes, c.staff_exclusion,
           c.proof
    FROM checkins c JOIN venues v ON v.id = c.venue_id
"""
OLD_UNLOCKS_VIEW = """
    SELECT u.id AS unlock_id, u.created_at, u.expires_at, u.redeemed_at,
           CASE WHEN u.redeemed_at IS NOT NULL THEN 'redeemed'
                WHEN u.expires_at <= now() THEN 'expired' ELSE 'active' END AS status,
           left(u.code, 4) AS code_hint,
           u.user_id, u.checkin_id, c.location AS checkin_location,
           u.offer_id, o.title AS offer_title, o.rule->>'kind' AS rule_kind,
           u.venue_id, v.name AS venue_name, v.location AS venue_location,
           v.timezone AS venue_timezone, u.merchant_id,
           c.proof
    FROM unlocks u
    JOIN offers o ON o.id = u.offer_id
    JOIN venues v ON v.id = u.venue_id
    JOIN checkins c ON c.id = u.checkin_id
"""

GRANT = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ANALYST_ROLE}') THEN
        EXECUTE 'GRANT SELECT ON analytics.checkins, analytics.unlocks TO {ANALYST_ROLE}';
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'no privilege to grant {ANALYST_ROLE} SELECT on the analytics views';
END
$$;
"""


def _views(checkins: str, unlocks: str) -> None:
    op.execute("DROP VIEW analytics.checkins")
    op.execute("CREATE VIEW analytics.checkins AS " + checkins)
    op.execute("DROP VIEW analytics.unlocks")
    op.execute("CREATE VIEW analytics.unlocks AS " + unlocks)
    op.execute(GRANT)


def upgrade() -> None:
    op.add_column("users", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.alter_column("users", "handle", existing_type=sa.String(length=64), nullable=True)
    op.alter_column("users", "password_hash", existing_type=sa.String(length=200), nullable=True)
    op.add_column("checkins", sa.Column("coarsened_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("checkins", sa.Column("venue_distance_m", sa.Float(), nullable=True))
    op.create_index(
        "ix_checkins_precise_created_at",
        "checkins",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("coarsened_at IS NULL"),
    )
    op.create_table(
        "account_erasures",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column(
            "erased_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column(
            "counts",
            sa.dialects.postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_erasures")),
        sa.UniqueConstraint("user_id", name=op.f("uq_account_erasures_user_id")),
    )
    _views(CHECKINS_VIEW, UNLOCKS_VIEW)


def downgrade() -> None:
    _views(OLD_CHECKINS_VIEW, OLD_UNLOCKS_VIEW)
    op.drop_table("account_erasures")
    op.drop_index(
        "ix_checkins_precise_created_at",
        table_name="checkins",
        postgresql_where=sa.text("coarsened_at IS NULL"),
    )
    op.drop_column("checkins", "venue_distance_m")
    op.drop_column("checkins", "coarsened_at")
    # Erased accounts have neither: a placeholder handle nobody chose and a hash no password
    # matches (their rows stay, for what merchants count).
    op.execute(
        "UPDATE users SET handle = 'erased-' || id, password_hash = '!'"
        " WHERE handle IS NULL OR password_hash IS NULL"
    )
    op.alter_column("users", "password_hash", existing_type=sa.String(length=200), nullable=False)
    op.alter_column("users", "handle", existing_type=sa.String(length=64), nullable=False)
    op.drop_column("users", "erased_at")
