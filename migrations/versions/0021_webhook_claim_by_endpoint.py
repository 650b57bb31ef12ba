"""Each endpoint's pending deliveries in an index of their own (issue 17)

The delivery worker's claim finds an endpoint to serve among those with pending deliveries (one
index descent each) and then that endpoint's due deliveries, oldest first, from this index. It
used to walk every due delivery in time order and skip those of endpoints another worker held,
one by one: one slow or unreachable receiver with a backlog made every other endpoint's claim
cost as much as the backlog, and an endpoint's batch was found by reading its whole delivery
history (docs/integrations.md, "The claim does not grow with a backlog").

A pending delivery writes one index entry more; delivered and failed ones none.

The claim reads the deliveries of an endpoint it has just chosen, an id the planner cannot see:
it estimates that they are one in (distinct endpoints) of the table. With a handful of
endpoints that is half of it, and the plan walked every endpoint's due deliveries in time order
(through `ix_webhook_deliveries_due`) instead of this one's range of the new index: a backlog at
one endpoint again slowed every other's claim. So the planner is told to plan for 1,000
distinct endpoints (`n_distinct`, a planning statistic only; ANALYZE keeps it).

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_endpoint_due",
        "webhook_deliveries",
        ["endpoint_id", "next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.execute("ALTER TABLE webhook_deliveries ALTER COLUMN endpoint_id SET (n_distinct = 1000)")


def downgrade() -> None:
    op.execute("ALTER TABLE webhook_deliveries ALTER COLUMN endpoint_id RESET (n_distinct)")
    op.drop_index("ix_webhook_deliveries_endpoint_due", table_name="webhook_deliveries")
