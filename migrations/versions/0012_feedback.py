"""feedback: ratings and comments from verified visits, merchants' replies, analyst views

Additive only: an older version of the service keeps working while this runs (two new tables
and two new views).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANALYST_ROLE = "checkin_offers_analyst"

# One row per feedback and per reply for analysts (docs/analytics.md). The comment is there:
# it is what the merchant reads anyway; the user's id is there as in the other views.
VIEWS = {
    "feedback": """
        SELECT f.id AS feedback_id, f.created_at, f.rating, f.comment, f.first_reply_at,
               extract(epoch FROM f.first_reply_at - f.created_at) AS first_response_s,
               (SELECT count(*) FROM feedback_replies r WHERE r.feedback_id = f.id) AS replies,
               f.checkin_id, c.created_at AS checkin_at, c.proof, f.user_id,
               f.venue_id, v.name AS venue_name, v.timezone AS venue_timezone, f.merchant_id
        FROM feedback f
        JOIN checkins c ON c.id = f.checkin_id
        JOIN venues v ON v.id = f.venue_id
    """,
    "feedback_replies": """
        SELECT r.id AS reply_id, r.feedback_id, r.created_at, r.author_role, r.api_key_id,
               r.body, f.venue_id, r.merchant_id
        FROM feedback_replies r JOIN feedback f ON f.id = r.feedback_id
    """,
}

GRANT = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ANALYST_ROLE}') THEN
        EXECUTE 'GRANT SELECT ON analytics.feedback, analytics.feedback_replies TO {ANALYST_ROLE}';
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'no privilege to grant {ANALYST_ROLE} SELECT on the feedback views';
END
$$;
"""


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("checkin_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("venue_id", sa.UUID(), nullable=False),
        sa.Column("merchant_id", sa.UUID(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("first_reply_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_feedback_rating")),
        sa.ForeignKeyConstraint(
            ["checkin_id"],
            ["checkins.id"],
            name=op.f("fk_feedback_checkin_id_checkins"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_feedback_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_feedback_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["venues.id"], name=op.f("fk_feedback_venue_id_venues"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("checkin_id", name=op.f("uq_feedback_checkin_id")),
    )
    op.create_index(
        "ix_feedback_merchant_id_created_at", "feedback", ["merchant_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_feedback_unanswered_merchant_id_created_at",
        "feedback",
        ["merchant_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("first_reply_at IS NULL"),
    )
    op.create_index(
        "ix_feedback_venue_id_created_at", "feedback", ["venue_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_feedback_user_id_created_at", "feedback", ["user_id", "created_at"], unique=False
    )
    op.create_table(
        "feedback_replies",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("feedback_id", sa.UUID(), nullable=False),
        sa.Column("merchant_id", sa.UUID(), nullable=False),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.Column("author_role", sa.String(length=16), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_feedback_replies_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["feedback_id"],
            ["feedback.id"],
            name=op.f("fk_feedback_replies_feedback_id_feedback"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_feedback_replies_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_replies")),
    )
    op.create_index(
        "ix_feedback_replies_feedback_id_created_at",
        "feedback_replies",
        ["feedback_id", "created_at"],
        unique=False,
    )
    op.execute("CREATE SCHEMA IF NOT EXISTS analytics")
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW analytics.{name} AS {sql}")
    op.execute(GRANT)


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS analytics.{name}")
    op.drop_index("ix_feedback_replies_feedback_id_created_at", table_name="feedback_replies")
    op.drop_table("feedback_replies")
    op.drop_index("ix_feedback_user_id_created_at", table_name="feedback")
    op.drop_index("ix_feedback_venue_id_created_at", table_name="feedback")
    op.drop_index("ix_feedback_unanswered_merchant_id_created_at", table_name="feedback")
    op.drop_index("ix_feedback_merchant_id_created_at", table_name="feedback")
    op.drop_table("feedback")
