"""guess limits: wrong presence codes and sign-in attempts, counted in sliding windows

`presence_code_attempts`: wrong presence codes sent with check-ins (and check-ins refused over
the limit), limited per user, per device and per venue (`geo/presence.py`). `sign_in_attempts`:
sign-ins by handle and client address, failures limited per handle (`core/throttle.py`).

Additive only: two new tables; an older version of the service keeps working while this runs.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "presence_code_attempts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("venue_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("device_id", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_presence_code_attempts_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_presence_code_attempts_venue_id_venues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presence_code_attempts")),
    )
    op.create_index(
        "ix_presence_code_attempts_venue_id_created_at",
        "presence_code_attempts",
        ["venue_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_presence_code_attempts_user_id_created_at",
        "presence_code_attempts",
        ["user_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_presence_code_attempts_device_id_created_at",
        "presence_code_attempts",
        ["device_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("device_id IS NOT NULL"),
    )
    op.create_table(
        "sign_in_attempts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("handle", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_attempts")),
    )
    op.create_index(
        "ix_sign_in_attempts_handle_created_at",
        "sign_in_attempts",
        ["handle", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_sign_in_attempts_handle_source",
        "sign_in_attempts",
        ["handle", "source", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_sign_in_attempts_handle_source", table_name="sign_in_attempts")
    op.drop_index("ix_sign_in_attempts_handle_created_at", table_name="sign_in_attempts")
    op.drop_table("sign_in_attempts")
    op.drop_index(
        "ix_presence_code_attempts_device_id_created_at",
        table_name="presence_code_attempts",
        postgresql_where=sa.text("device_id IS NOT NULL"),
    )
    op.drop_index("ix_presence_code_attempts_user_id_created_at", table_name="presence_code_attempts")
    op.drop_index(
        "ix_presence_code_attempts_venue_id_created_at", table_name="presence_code_attempts"
    )
    op.drop_table("presence_code_attempts")
