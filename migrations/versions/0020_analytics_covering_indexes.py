"""Covering indexes for analytics on millions of check-ins (issue 21, item 4)

The leak report, the funnel and offer health read, for hundreds of thousands of check-ins, only
a few of their columns; from these indexes they read them without visiting the table
(index-only scans), which on 5,000,000 check-ins saves most of their time
(docs/performance.md, "Analytics on 5M check-ins"):

- `ix_checkins_venue_id_created_at` also carries `user_id`, `status`, `id` and `proof` (the
  funnel's check-ins at an offer's venues; offer health: each person's check-ins and rejections
  at an offer's venues in the last week);
- `ix_impressions_offer_id_created_at` also carries `user_id` (the funnel's impressions and
  whether a check-in followed them);
- `ix_unlocks_offer_id_created_at` also carries `checkin_id` (an offer's unlocks and the
  check-in behind each: the funnel's and offer health's unlocks by proof);
- `ix_checkins_rejected_venue_id_created_at` also carries `reason_codes` (the leak report's
  rejected check-ins by reason);
- `ix_checkins_id_status_proof` (new) carries `status` and `proof` by check-in id (the check-in
  behind each redemption or unlock: the leak report's backed share and proofs, offer health's
  unlocks by proof). It replaces `ix_checkins_verified_id` (ids of verified check-ins), which
  it covers, so a check-in still writes as many indexes as before.

The indexes are built without CONCURRENTLY, so on a large `checkins` table run this in a quiet
hour (5,000,000 check-ins: about 20 s in all on the bench machine).

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_checkins_venue_id_created_at", table_name="checkins")
    op.create_index(
        "ix_checkins_venue_id_created_at",
        "checkins",
        ["venue_id", "created_at"],
        postgresql_include=["user_id", "status", "id", "proof"],
    )
    op.drop_index("ix_impressions_offer_id_created_at", table_name="impressions")
    op.create_index(
        "ix_impressions_offer_id_created_at",
        "impressions",
        ["offer_id", "created_at"],
        postgresql_include=["user_id"],
    )
    op.drop_index("ix_unlocks_offer_id_created_at", table_name="unlocks")
    op.create_index(
        "ix_unlocks_offer_id_created_at",
        "unlocks",
        ["offer_id", "created_at"],
        postgresql_include=["checkin_id"],
    )
    op.drop_index("ix_checkins_rejected_venue_id_created_at", table_name="checkins")
    op.create_index(
        "ix_checkins_rejected_venue_id_created_at",
        "checkins",
        ["venue_id", "created_at"],
        postgresql_include=["reason_codes"],
        postgresql_where=sa.text("status = 'rejected'"),
    )
    op.create_index(
        "ix_checkins_id_status_proof", "checkins", ["id"], postgresql_include=["status", "proof"]
    )
    op.drop_index("ix_checkins_verified_id", table_name="checkins")


def downgrade() -> None:
    op.create_index(
        "ix_checkins_verified_id",
        "checkins",
        ["id"],
        postgresql_where=sa.text("status = 'verified'"),
    )
    op.drop_index("ix_checkins_id_status_proof", table_name="checkins")
    op.drop_index("ix_checkins_rejected_venue_id_created_at", table_name="checkins")
    op.create_index(
        "ix_checkins_rejected_venue_id_created_at",
        "checkins",
        ["venue_id", "created_at"],
        postgresql_where=sa.text("status = 'rejected'"),
    )
    op.drop_index("ix_unlocks_offer_id_created_at", table_name="unlocks")
    op.create_index("ix_unlocks_offer_id_created_at", "unlocks", ["offer_id", "created_at"])
    op.drop_index("ix_impressions_offer_id_created_at", table_name="impressions")
    op.create_index("ix_impressions_offer_id_created_at", "impressions", ["offer_id", "created_at"])
    op.drop_index("ix_checkins_venue_id_created_at", table_name="checkins")
    op.create_index("ix_checkins_venue_id_created_at", "checkins", ["venue_id", "created_at"])
