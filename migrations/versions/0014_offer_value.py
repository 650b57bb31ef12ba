"""offers.value_per_redemption: what one redemption costs the merchant, for the summary's cost
per verified visit (docs/analytics.md, Summary)

Additive only: a nullable column an older version of the service ignores.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "offers", sa.Column("value_per_redemption", sa.Numeric(12, 2), nullable=True)
    )
    op.create_check_constraint(
        op.f("ck_offers_value_per_redemption"), "offers", "value_per_redemption >= 0"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_offers_value_per_redemption"), "offers", type_="check")
    op.drop_column("offers", "value_per_redemption")
