"""The proof of presence behind each unlock, on the unlock (issue 21, item 4)

`unlocks.proof` is the proof of the check-in that earned the unlock (`checkins.proof`), written
with the unlock in the check-in's write path (the same INSERT, one more array). The leak report
read it, with the check-in's status, from the check-in behind each redemption: over a merchant's
90 days on 5,000,000 check-ins that is 441,403 probes into `ix_checkins_id_status_proof`
(237 MB), most of its 1.4 s (docs/performance.md, "Analytics on 5M check-ins"). It now reads
the unlock alone.

An unlock only ever comes from a verified check-in (offers/checkins.py: the caller's own when
verified, a group member's latest verified one), and neither a check-in's status nor its proof
ever changes (erasure and retention coarsen the fix, nothing else), so the copy stays equal to
the check-in's and the leak report's "backed by a verified check-in" is every redemption, as it
was. The backfill copies the proof of verified check-ins only and refuses to finish if an
unlock's check-in is not verified: on such a database the report's figures would change.

The backfill rewrites every unlock once, in this transaction (882,202 unlocks: about 10 s on the
bench machine, docs/performance.md); unlocks are locked for writes meanwhile.

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
    op.create_check_constraint(
        op.f("ck_unlocks_proof"), "unlocks", "proof IN ('gps', 'presence_code', 'nfc_tap', 'staff')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_unlocks_proof"), "unlocks", type_="check")
    op.drop_column("unlocks", "proof")
