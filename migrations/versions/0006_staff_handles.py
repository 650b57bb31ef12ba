"""staff users by handle: a merchant registers a handle, never learns whether it exists

`merchant_staff_users` gains `handle` (the handle the owner registered, unique per merchant
whatever its case) and its `user_id` may be null: a handle no account has yet is registered all
the same, and the account that signs up with it is linked then (`core/accounts.py`). The
registration answers the same either way and never shows a user id, so a merchant can no longer
probe which handles exist or learn a person's id. Existing rows get their user's handle.

Staff registrations recorded in the audit trail carried the user's id, which the owner can read:
it is removed from those events.

Expand only: an older version of the service keeps working while this runs. It inserts rows with a
user and no handle, and reads rows through their user, so it skips rows without one. Making
`handle` NOT NULL waits for a later release, once no older version writes rows without it.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("merchant_staff_users", sa.Column("handle", sa.String(length=64), nullable=True))
    op.alter_column("merchant_staff_users", "user_id", existing_type=sa.UUID(), nullable=True)
    op.execute(
        "UPDATE merchant_staff_users s SET handle = u.handle FROM users u"
        " WHERE u.id = s.user_id AND s.handle IS NULL"
    )
    op.create_index(
        "uq_merchant_staff_users_merchant_id_handle_lower",
        "merchant_staff_users",
        ["merchant_id", sa.literal_column("lower(handle)")],
        unique=True,
    )
    op.execute(
        "UPDATE audit_events SET changes = changes - 'user_id'"
        " WHERE object_type = 'staff_user' AND changes ? 'user_id'"
    )


def downgrade() -> None:
    # Registrations no account has taken up cannot be kept without a user.
    op.execute("DELETE FROM merchant_staff_users WHERE user_id IS NULL")
    op.drop_index(
        "uq_merchant_staff_users_merchant_id_handle_lower", table_name="merchant_staff_users"
    )
    op.alter_column("merchant_staff_users", "user_id", existing_type=sa.UUID(), nullable=False)
    op.drop_column("merchant_staff_users", "handle")
