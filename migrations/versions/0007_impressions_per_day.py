"""impressions: one per user, offer and day

`nearby` recorded an impression for every offer of every venue it listed, on every call, so one
person opening the app a few times a day counted many times and the funnel showed more check-ins
than impressions. An impression is now an offer shown to a signed-in user on a day (the local
day at the venue it was listed with): `impressions.day`, unique with the offer and the user, and
the service inserts with `ON CONFLICT DO NOTHING` (offers/measurement.py). Existing rows get
their day, and only the first of each user, offer and day is kept. `analytics.impressions`
shows the day.

Expand only: an older version of the service keeps working while this runs. It inserts without
`day`, which it leaves null (nulls never conflict), so its rows count as they did until it is
replaced; making `day` NOT NULL waits for a later release, which also folds in those rows. The
backfill rewrites the table and the unique index is built inside the transaction, blocking
inserts while it builds: on a large `impressions` table run it in a quiet hour.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANALYST_ROLE = "checkin_offers_analyst"

# analytics.impressions as migration 0002 made it, with `day` at the end (a replaced view can
# only gain columns at the end).
IMPRESSIONS_VIEW = """
    SELECT i.id AS impression_id, i.created_at, i.user_id, i.venue_id, i.offer_id,
           v.merchant_id{extra}
    FROM impressions i JOIN venues v ON v.id = i.venue_id
"""

GRANT = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ANALYST_ROLE}') THEN
        EXECUTE 'GRANT SELECT ON analytics.impressions TO {ANALYST_ROLE}';
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'no privilege to grant {ANALYST_ROLE} SELECT on analytics.impressions';
END
$$;
"""


def upgrade() -> None:
    op.add_column("impressions", sa.Column("day", sa.Date(), nullable=True))
    op.execute(
        "UPDATE impressions i SET day = (i.created_at AT TIME ZONE v.timezone)::date"
        " FROM venues v WHERE v.id = i.venue_id AND i.day IS NULL"
    )
    op.execute(
        "DELETE FROM impressions WHERE id IN ("
        " SELECT id FROM (SELECT id, row_number() OVER ("
        "   PARTITION BY offer_id, user_id, day ORDER BY created_at, id) AS n"
        "   FROM impressions) ranked"
        " WHERE n > 1)"
    )
    op.create_unique_constraint(
        op.f("uq_impressions_offer_id_user_id_day"), "impressions", ["offer_id", "user_id", "day"]
    )
    op.execute(
        "CREATE OR REPLACE VIEW analytics.impressions AS "
        + IMPRESSIONS_VIEW.format(extra=", i.day")
    )


def downgrade() -> None:
    # A replaced view cannot lose columns: drop it, make it again as 0002 did, and grant it again.
    op.execute("DROP VIEW analytics.impressions")
    op.execute("CREATE VIEW analytics.impressions AS " + IMPRESSIONS_VIEW.format(extra=""))
    op.execute(GRANT)
    op.drop_constraint(op.f("uq_impressions_offer_id_user_id_day"), "impressions", type_="unique")
    op.drop_column("impressions", "day")
