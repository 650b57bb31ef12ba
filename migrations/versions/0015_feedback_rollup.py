"""feedback rollup: the responsiveness report and offer health read sums kept by triggers, not
every feedback row (docs/feedback.md, "How the report stays fast")

Four tables kept by statement-level triggers on `feedback` in the same transaction as the
change (a new feedback, a first reply, an erasure, a cascade), so no code path can forget them:

- `feedback_rollup`: per merchant, venue (and the nil uuid for all its venues), rating and
  dyadic block of hours (level L covers 2^L
  hours since 1970-01-01 00:00 UTC), the feedback count, how many are answered and the sum of their times to first reply
  in microseconds;
- `feedback_rollup_responses`: the same blocks, answered feedback counted per bucket of time to
  first reply (half-powers of two seconds: the bucket only finds where a percentile lies; the
  value itself is read from `feedback_responses`, so percentiles stay exact);
- `feedback_rollup_offers`: per offer unlocked on the visit, venue, rating and block, the count;
- `feedback_responses`: one narrow row per answered feedback (seconds, bucket, created_at),
  indexed by (merchant, bucket, seconds) and (venue, bucket, seconds).

Additive: an older version of the service keeps working (the triggers keep the sums whoever
writes). The backfill runs the triggers' own statements over the existing feedback.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Levels 0..MAX_LEVEL of hour blocks (offers/feedback.py ROLLUP_MAX_LEVEL must match): level L
#: sums 2^L hours; 2^19 hours are about 60 years.
MAX_LEVEL = 19


def _thresholds() -> list[int]:
    out: list[int] = []
    k = 0
    while not out or out[-1] < 1_500_000_000:
        value = round(2 ** (k / 2))
        if value not in out:
            out.append(value)
        k += 1
    return out


# Bucket 0: under a second; bucket b: [t[b], t[b+1]) seconds; the last is open.
BUCKET_FUNCTION = f"""
CREATE FUNCTION feedback_response_bucket(seconds double precision) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN width_bucket(seconds, '{{{",".join(str(t) for t in _thresholds())}}}'::float8[])::smallint
"""

# The changed feedback rows with a sign: +1 for a row as it is now, -1 for a row as it was.
SOURCES = {
    "insert": "SELECT n.*, 1 AS sign FROM new_rows n",
    "delete": "SELECT o.*, -1 AS sign FROM old_rows o",
    # only rows whose counted columns changed (an erasure clears comments: nothing to count)
    "update": """
        SELECT o.*, -1 AS sign FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.merchant_id, o.venue_id, o.checkin_id, o.created_at, o.rating, o.first_reply_at)
              IS DISTINCT FROM
              (n.merchant_id, n.venue_id, n.checkin_id, n.created_at, n.rating, n.first_reply_at)
        UNION ALL
        SELECT n.*, 1 AS sign FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.merchant_id, o.venue_id, o.checkin_id, o.created_at, o.rating, o.first_reply_at)
              IS DISTINCT FROM
              (n.merchant_id, n.venue_id, n.checkin_id, n.created_at, n.rating, n.first_reply_at)
    """,
    "backfill": "SELECT f.*, 1 AS sign FROM feedback f",
}

# `d`: the signed rows with their hour (since 1970), whether answered, the time to first reply; `x`: each
# row once per level, with its block. Upserts go in key order, so parallel writers lock the same
# rows in the same order (no deadlock).
_DELTA = f"""
    WITH s AS ({{source}}),
    d AS (
        SELECT s.id, s.merchant_id, s.venue_id, s.checkin_id, s.rating, s.sign, s.created_at,
               floor(extract(epoch FROM s.created_at) / 3600)::int AS hour,
               s.first_reply_at IS NOT NULL AS answered,
               date_part('epoch', s.first_reply_at - s.created_at) AS seconds,
               (extract(epoch FROM s.first_reply_at - s.created_at) * 1000000)::bigint AS us
        FROM s
    ),
    x AS (
        SELECT d.*, l.level::smallint AS level, d.hour >> l.level AS block
        FROM d CROSS JOIN generate_series(0, {MAX_LEVEL}) AS l(level)
    )
"""

#: `venue_id` of the rows that sum all the merchant's venues (`feedback_rollup` and
#: `feedback_rollup_responses`): a report of the whole merchant reads those, not every venue's.
WHOLE = "'00000000-0000-0000-0000-000000000000'::uuid"

STATEMENTS = [
    # answered ones leave feedback_responses first (deleted feedback: the FK cascade did it)
    """
    {delta}
    DELETE FROM feedback_responses r USING d WHERE d.sign = -1 AND r.feedback_id = d.id
    """,
    """
    {delta}
    INSERT INTO feedback_responses (feedback_id, merchant_id, venue_id, created_at, seconds, bucket)
    SELECT d.id, d.merchant_id, d.venue_id, d.created_at, d.seconds,
           feedback_response_bucket(d.seconds)
    FROM d WHERE d.sign = 1 AND d.answered
    """,
    """
    {delta}
    INSERT INTO feedback_rollup AS r (merchant_id, level, block, venue_id, rating, feedback,
                                      answered, response_us)
    SELECT merchant_id, level, block, s.scope, rating, sum(sign),
           COALESCE(sum(sign) FILTER (WHERE answered), 0), COALESCE(sum(sign * us), 0)
    FROM x CROSS JOIN LATERAL (VALUES (x.venue_id), ({WHOLE})) AS s(scope)
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (merchant_id, level, block, venue_id, rating) DO UPDATE
    SET feedback = r.feedback + excluded.feedback, answered = r.answered + excluded.answered,
        response_us = r.response_us + excluded.response_us
    """,
    """
    {delta}
    INSERT INTO feedback_rollup_responses AS r (merchant_id, level, block, venue_id, bucket,
                                                answered)
    SELECT merchant_id, level, block, s.scope, feedback_response_bucket(seconds), sum(sign)
    FROM x CROSS JOIN LATERAL (VALUES (x.venue_id), ({WHOLE})) AS s(scope)
    WHERE answered GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (merchant_id, level, block, venue_id, bucket) DO UPDATE
    SET answered = r.answered + excluded.answered
    """,
    # the offers unlocked on the visit: unlocks are written with the check-in, before feedback
    """
    {delta}
    INSERT INTO feedback_rollup_offers AS r (merchant_id, level, block, offer_id, venue_id,
                                             rating, feedback)
    SELECT x.merchant_id, x.level, x.block, u.offer_id, x.venue_id, x.rating, sum(x.sign)
    FROM x JOIN unlocks u ON u.checkin_id = x.checkin_id
    GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (merchant_id, level, block, offer_id, venue_id, rating) DO UPDATE
    SET feedback = r.feedback + excluded.feedback
    """,
]


def statements(source: str) -> list[str]:
    """The rollup's statements applied to the signed rows `source` selects."""
    delta = _DELTA.format(source=source)
    return [s.format(delta=delta, WHOLE=WHOLE) for s in STATEMENTS]


def trigger_function(op_name: str) -> str:
    body = ";\n".join(statements(SOURCES[op_name]))
    return f"""
CREATE FUNCTION feedback_rollup_{op_name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{body};
RETURN NULL;
END
$$
"""


TRIGGERS = {
    "insert": "AFTER INSERT ON feedback REFERENCING NEW TABLE AS new_rows",
    "update": "AFTER UPDATE ON feedback REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "AFTER DELETE ON feedback REFERENCING OLD TABLE AS old_rows",
}


def _key(*extra: sa.Column) -> list[sa.Column]:
    return [
        sa.Column("merchant_id", sa.UUID(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("block", sa.Integer(), nullable=False),
        *extra,
    ]


def upgrade() -> None:
    op.execute(BUCKET_FUNCTION)
    op.create_table(
        "feedback_rollup",
        *_key(
            sa.Column("venue_id", sa.UUID(), nullable=False),
            sa.Column("rating", sa.SmallInteger(), nullable=False),
        ),
        sa.Column("feedback", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("response_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "merchant_id", "level", "block", "venue_id", "rating", name=op.f("pk_feedback_rollup")
        ),
    )
    op.create_table(
        "feedback_rollup_responses",
        *_key(
            sa.Column("venue_id", sa.UUID(), nullable=False),
            sa.Column("bucket", sa.SmallInteger(), nullable=False),
        ),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "merchant_id",
            "level",
            "block",
            "venue_id",
            "bucket",
            name=op.f("pk_feedback_rollup_responses"),
        ),
    )
    op.create_table(
        "feedback_rollup_offers",
        *_key(
            sa.Column("offer_id", sa.UUID(), nullable=False),
            sa.Column("venue_id", sa.UUID(), nullable=False),
            sa.Column("rating", sa.SmallInteger(), nullable=False),
        ),
        sa.Column("feedback", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "merchant_id",
            "level",
            "block",
            "offer_id",
            "venue_id",
            "rating",
            name=op.f("pk_feedback_rollup_offers"),
        ),
    )
    op.create_table(
        "feedback_responses",
        sa.Column("feedback_id", sa.UUID(), nullable=False),
        sa.Column("merchant_id", sa.UUID(), nullable=False),
        sa.Column("venue_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["feedback_id"],
            ["feedback.id"],
            name=op.f("fk_feedback_responses_feedback_id_feedback"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("feedback_id", name=op.f("pk_feedback_responses")),
    )
    op.create_index(
        "ix_feedback_responses_merchant_id_bucket_seconds",
        "feedback_responses",
        ["merchant_id", "bucket", "seconds"],
        postgresql_include=["created_at", "venue_id"],
    )
    op.create_index(
        "ix_feedback_responses_venue_id_bucket_seconds",
        "feedback_responses",
        ["venue_id", "bucket", "seconds"],
        postgresql_include=["created_at"],
    )
    # pending feedback per venue without a heap read per row
    op.drop_index("ix_feedback_unanswered_merchant_id_created_at", table_name="feedback")
    op.create_index(
        "ix_feedback_unanswered_merchant_id_created_at",
        "feedback",
        ["merchant_id", "created_at"],
        postgresql_where=sa.text("first_reply_at IS NULL"),
        postgresql_include=["venue_id"],
    )
    for name in TRIGGERS:
        op.execute(trigger_function(name))
    for statement in statements(SOURCES["backfill"]):
        op.execute(statement)
    for name, when in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER feedback_rollup_{name} {when}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION feedback_rollup_{name}()"
        )


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS feedback_rollup_{name} ON feedback")
        op.execute(f"DROP FUNCTION IF EXISTS feedback_rollup_{name}()")
    op.drop_index("ix_feedback_unanswered_merchant_id_created_at", table_name="feedback")
    op.create_index(
        "ix_feedback_unanswered_merchant_id_created_at",
        "feedback",
        ["merchant_id", "created_at"],
        postgresql_where=sa.text("first_reply_at IS NULL"),
    )
    op.drop_index("ix_feedback_responses_venue_id_bucket_seconds", table_name="feedback_responses")
    op.drop_index(
        "ix_feedback_responses_merchant_id_bucket_seconds", table_name="feedback_responses"
    )
    op.drop_table("feedback_responses")
    op.drop_table("feedback_rollup_offers")
    op.drop_table("feedback_rollup_responses")
    op.drop_table("feedback_rollup")
    op.execute("DROP FUNCTION IF EXISTS feedback_response_bucket(double precision)")
