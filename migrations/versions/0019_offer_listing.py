"""offers.listing: each offer as nearby lists it, rendered by PostgreSQL when the offer is
written, so nearby's statement aggregates ready JSON (docs/performance.md, issue 21 item 3).

`offer_listing(offers)` renders the JSON that `api.schemas.NearbyOfferSchema` would dump for
the offer: `id`, `title`, `rule` (the rule schema's fields in its order, nothing else),
`unlock` (`offers.rules.describe_rule` and the proof it needs, in words), `requires_presence_code`,
`min_proof`, `starts_at` and `ends_at` as Python's `isoformat()` in UTC, `windows`. A BEFORE
trigger keeps `listing` current when any of those columns is written; the cap claim's UPDATE of
`unlocked_count` (every check-in that unlocks) does not fire it.
tests/integration/test_venues.py checks the rendering against each offer's own view.

Additive: a column an older version of the service ignores.

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# offers.rules: DEFAULT_TOP_VISITOR_WINDOW_DAYS, DEFAULT_TOP_VISITOR_MIN_VISITS (as of this
# revision; a later change to them needs a migration that replaces the function).
_RULE_KEYS = "ARRAY['kind', 'visits', 'within_days', 'repeat', 'window_days', 'min_visits', " \
    "'min_people', 'within_minutes']::text[]"


def _utc(column: str) -> str:
    local = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"CASE WHEN {column} IS NULL THEN NULL ELSE "
        f"to_char({local}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN extract(microseconds FROM {local})::bigint % 1000000 = 0 THEN '' "
        f"ELSE to_char({local}, '.US') END || '+00:00' END"
    )


_WINDOW_DAYS = "COALESCE(o.rule ->> 'window_days', '60')"
_MIN_VISITS = "COALESCE(o.rule ->> 'min_visits', '2')"

FUNCTIONS = f"""
CREATE FUNCTION offer_listing(o offers) RETURNS json LANGUAGE sql STABLE AS $$
SELECT json_build_object(
    'id', o.id,
    'title', o.title,
    'rule', (SELECT json_object_agg(r.key, r.value
                                    ORDER BY array_position({_RULE_KEYS}, r.key))
             FROM jsonb_each(o.rule) r WHERE r.key = ANY({_RULE_KEYS})),
    'unlock', CASE o.rule ->> 'kind'
            WHEN 'every_checkin' THEN 'Check in'
            WHEN 'first_visit' THEN 'Check in for the first time'
            WHEN 'nth_visit' THEN
                CASE WHEN (o.rule -> 'repeat') = 'true'::jsonb
                     THEN 'Check in every ' || (o.rule ->> 'visits') || ' visits'
                     ELSE 'Check in ' || (o.rule ->> 'visits') || ' times' END
                || CASE WHEN COALESCE(o.rule ->> 'within_days', '0') = '0' THEN ''
                        ELSE ' within ' || (o.rule ->> 'within_days') || ' days' END
            WHEN 'top_visitor' THEN
                'Be the most frequent visitor over ' || {_WINDOW_DAYS} || ' days, with at least '
                || {_MIN_VISITS} || CASE WHEN {_MIN_VISITS} = '1' THEN ' visit' ELSE ' visits' END
            ELSE 'Check in with ' || (o.rule ->> 'min_people') || ' people within '
                || (o.rule ->> 'within_minutes') || ' minutes'
        END
        || CASE WHEN o.min_proof = 'nfc_tap' THEN ', with a tap of the tag at the counter'
                WHEN o.requires_presence_code THEN ', with the code shown at the venue'
                ELSE '' END,
    'requires_presence_code', o.requires_presence_code,
    'min_proof', o.min_proof,
    'starts_at', {_utc("o.starts_at")},
    'ends_at', {_utc("o.ends_at")},
    'windows', (SELECT COALESCE(json_agg(json_build_object(
                        'days', w.value -> 'days', 'start', w.value -> 'start',
                        'end', w.value -> 'end') ORDER BY w.i), '[]'::json)
                FROM jsonb_array_elements(o.windows) WITH ORDINALITY AS w(value, i))
)
$$;

CREATE FUNCTION offers_listing_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.listing := offer_listing(NEW);
    RETURN NEW;
END
$$;

CREATE TRIGGER offers_listing BEFORE INSERT OR UPDATE OF
    id, title, rule, min_proof, requires_presence_code, starts_at, ends_at, windows
    ON offers FOR EACH ROW EXECUTE FUNCTION offers_listing_refresh();
"""


def upgrade() -> None:
    op.add_column("offers", sa.Column("listing", sa.JSON(), nullable=True))
    op.execute(FUNCTIONS)
    op.execute("UPDATE offers o SET listing = offer_listing(o)")


def downgrade() -> None:
    op.execute("DROP TRIGGER offers_listing ON offers")
    op.execute("DROP FUNCTION offers_listing_refresh()")
    op.execute("DROP FUNCTION offer_listing(offers)")
    op.drop_column("offers", "listing")
