"""What the leak report reads of a redemption's unlock and check-in, on the redemption (issue 21)

The leak report read, for each redemption, its unlock (where and when the code was earned) and
the check-in behind it (its status and proof): over a merchant's 90 days on 5,000,000 check-ins,
441,403 probes into `ix_checkins_id_status_proof` (237 MB) and a join with every unlock, most of
its 1.4 s (docs/performance.md, "Analytics on 5M check-ins"). It now reads the redemptions
alone:

- `unlocks.proof`: the proof of the check-in that earned the unlock (`checkins.proof`), written
  with the unlock in the check-in's write path (the same INSERT, one more array);
- `redemptions.unlock_venue_id`, `unlocked_at` and `proof`: the unlock's venue, creation time
  and proof, written by the redemption's own statement (from the unlock it updates).

None of these ever changes: an unlock's venue and time are fixed, and a check-in's proof and
status are too (erasure and retention coarsen the fix, nothing else). An unlock only ever comes
from a verified check-in (offers/checkins.py: the caller's own when verified, a group member's
latest verified one), so the leak report's "backed by a verified check-in" stays every
redemption, as it was. The backfill copies the proof of verified check-ins only and refuses to
finish if an unlock's check-in is not verified: on such a database the report would change.

Left as they are: `analytics.unlocks` already shows the check-in's `proof` (it joins the
check-in for its location cell), the export (its check-ins and unlocks carry all of it),
erasure and retention (they touch none of these columns), and the tables' placement by
merchant (core/distribution.py): the columns travel with their rows. `unlock_venue_id` has no
foreign key: it is a copy, and its venue goes only with its merchant, as the redemption does.

The backfill rewrites every unlock and redemption once, in this transaction (882,219 unlocks
and 440,544 redemptions: docs/performance.md has the time); both are locked for writes
meanwhile.

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0023"
down_revision: str | Sequence[str] | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PROOFS = "proof IN ('gps', 'presence_code', 'nfc_tap', 'staff')"


def upgrade() -> None:
    op.add_column("unlocks", sa.Column("proof", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE unlocks u SET proof = c.proof FROM checkins c"
        " WHERE c.id = u.checkin_id AND c.status = 'verified'"
    )
    unbacked = (
        op.get_bind().execute(sa.text("SELECT count(*) FROM unlocks WHERE proof IS NULL")).scalar()
    )
    if unbacked:
        raise RuntimeError(
            f"{unbacked} unlocks have a check-in that is not verified: the leak report counts"
            " them as not backed, which unlocks.proof cannot say; look at them before migrating"
        )
    op.alter_column("unlocks", "proof", existing_type=sa.String(length=16), nullable=False)
    op.create_check_constraint(op.f("ck_unlocks_proof"), "unlocks", _PROOFS)

    op.add_column(
        "redemptions", sa.Column("unlock_venue_id", postgresql.UUID(as_uuid=True), nullable=True)
    )
    op.add_column(
        "redemptions", sa.Column("unlocked_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("redemptions", sa.Column("proof", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE redemptions r SET unlock_venue_id = u.venue_id, unlocked_at = u.created_at,"
        " proof = u.proof FROM unlocks u WHERE u.id = r.unlock_id"
    )
    for column, type_ in (
        ("unlock_venue_id", postgresql.UUID(as_uuid=True)),
        ("unlocked_at", sa.DateTime(timezone=True)),
        ("proof", sa.String(length=16)),
    ):
        op.alter_column("redemptions", column, existing_type=type_, nullable=False)
    op.create_check_constraint(op.f("ck_redemptions_proof"), "redemptions", _PROOFS)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_redemptions_proof"), "redemptions", type_="check")
    op.drop_column("redemptions", "proof")
    op.drop_column("redemptions", "unlocked_at")
    op.drop_column("redemptions", "unlock_venue_id")
    op.drop_constraint(op.f("ck_unlocks_proof"), "unlocks", type_="check")
    op.drop_column("unlocks", "proof")
