"""till devices: venue-bound staff keys, their last use, and one-time pairing codes

Additive only: an older version of the service keeps working while this runs (new nullable
columns, a new table; the new index on `api_keys` is small).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("venue_id", sa.UUID(), nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key(
        op.f("fk_api_keys_venue_id_venues"),
        "api_keys",
        "venues",
        ["venue_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_index(op.f("ix_api_keys_venue_id"), "api_keys", ["venue_id"], unique=False)
    op.create_table(
        "device_pairings",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("merchant_id", sa.UUID(), nullable=False),
        sa.Column("venue_id", sa.UUID(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_device_pairings_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_device_pairings_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_device_pairings_venue_id_venues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_pairings")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_device_pairings_code_hash")),
    )
    op.create_index(
        "ix_device_pairings_merchant_id_created_at",
        "device_pairings",
        ["merchant_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_device_pairings_merchant_id_created_at", table_name="device_pairings")
    op.drop_table("device_pairings")
    op.drop_index(op.f("ix_api_keys_venue_id"), table_name="api_keys")
    op.drop_constraint(op.f("fk_api_keys_venue_id_venues"), "api_keys", type_="foreignkey")
    op.drop_column("api_keys", "last_used_at")
    op.drop_column("api_keys", "venue_id")
