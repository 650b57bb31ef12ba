"""venues.address: the street address as people write it, so a merchant tells venues of the
same name apart (docs/dashboard.md, The map)

Additive only: a nullable column an older version of the service ignores.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("venues", sa.Column("address", sa.String(300), nullable=True))


def downgrade() -> None:
    op.drop_column("venues", "address")
