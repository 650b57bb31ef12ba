"""Counters that keep a check-in's reads from growing with history (migration 0017, issue 21).

A check-in used to count rows: every verified visit of the user at the offer's venues, every
check-in at the venue over a top visitor's window, the device's and the user's check-ins over
the strike windows. Those figures are now read from counters that triggers on `checkins` keep
in the transaction that writes the check-ins (so any writer keeps them right: the check-in,
a staff visit, the erasure and the retention job that rewrite `device_id`, a bulk load):

- `checkin_visit_counts` (user, venue): verified visits, all time; `checkin_visit_days` the
  same per UTC day, for `nth_visit` within `within_days` (whole days from the buckets, the day
  the window starts in counted from the check-ins). Same-user check-ins are serialised by the
  user's advisory lock, so the count a check-in reads includes every earlier one, as the old
  `count(*)` did.
- `device_user_checkins` (device, user): the latest check-in of the pair, any status. "Some
  check-in of the pair was created after T" is exactly "the latest was", so the strikes'
  `count(DISTINCT ...)` over a window is a count of pairs, one row each.
- `top_visitor_windows` (venue, days) and `top_visitor_tallies` (venue, days, user): each
  user's verified check-ins at the venue created after the window's `through`. The invariant
  "tally = check-ins after `through`" holds in every committed state (the triggers change both
  together), so in any one snapshot a user's count over the window starting at S = now() - days
  is the tally, minus their check-ins in (`through`, S] (out of the window, not yet taken off),
  plus those in (S, `through`] (a transaction that started before the one that moved `through`:
  in its window, taken off already). Both ranges are the last few check-ins at most. The best
  other visitor is the highest tally among users with none in those ranges (the top of an
  index) or such a user's corrected tally. Migration 0017's `top_visitor_figures` reads this,
  STABLE, in the candidates statement's snapshot: exact without a lock. The insert trigger
  takes the check-ins that left the window off the tallies and moves `through` (`FOR UPDATE
  SKIP LOCKED` on the window row: a concurrent check-in skips it, and reads exactly all the
  same), so the ranges stay about one check-in per check-in whatever the venue's history.

A window is created, and filled from the check-ins, right after a top_visitor offer is saved
with a venue (`ensure_top_visitor_windows`, from `offers.catalog` in a transaction of its own;
until then `top_visitor_figures` counts the check-ins). Check-ins take a shared advisory lock on the venue's bucket
in their insert trigger and hold it to commit; the creation takes it exclusively, so it waits
for the check-ins in flight there and fills the window from a snapshot that has them all, and
check-ins after it see the window. The old queries are kept as the oracle of
`tests/integration/test_counters.py`, which runs both on random histories.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from offers.rules import DEFAULT_TOP_VISITOR_WINDOW_DAYS

# Migration 0017's advisory lock space: (class, bucket of the venue).
LOCK_CLASS = 2101
BUCKETS = 64

_LOCK_VENUES = text(
    f"""
    SELECT pg_advisory_xact_lock({LOCK_CLASS}, b.bucket)
    FROM (SELECT DISTINCT abs(hashtext(ov.venue_id::text)) % {BUCKETS} AS bucket
          FROM offer_venues ov JOIN offers o ON o.id = ov.offer_id
          WHERE o.id = :offer_id AND o.rule->>'kind' = 'top_visitor'
            AND NOT EXISTS (
                SELECT 1 FROM top_visitor_windows w
                WHERE w.venue_id = ov.venue_id
                  AND w.window_days = COALESCE((o.rule->>'window_days')::int, :default_days))
          ORDER BY 1) b
    """
)
_CREATE_WINDOWS = text(
    """
    WITH created AS (
        INSERT INTO top_visitor_windows (venue_id, window_days, through)
        SELECT ov.venue_id, w.days, now() - make_interval(days => w.days)
        FROM offer_venues ov JOIN offers o ON o.id = ov.offer_id
        CROSS JOIN LATERAL (
            SELECT COALESCE((o.rule->>'window_days')::int, :default_days) AS days) w
        WHERE o.id = :offer_id AND o.rule->>'kind' = 'top_visitor'
        ON CONFLICT DO NOTHING
        RETURNING venue_id, window_days, through
    )
    INSERT INTO top_visitor_tallies (venue_id, window_days, user_id, visits)
    SELECT w.venue_id, w.window_days, c.user_id, count(*)
    FROM created w
    JOIN checkins c ON c.venue_id = w.venue_id AND c.status = 'verified'
                   AND c.created_at > w.through
    GROUP BY w.venue_id, w.window_days, c.user_id
    """
)


def ensure_top_visitor_windows(session: Session, offer_id: uuid.UUID) -> None:
    """Give each venue of a top_visitor offer its window's tallies, filled from the check-ins
    (once per venue and `window_days`; nothing to do for other kinds). Two statements: the lock
    must be held before the snapshot that fills the tallies is taken."""
    params = {"offer_id": str(offer_id), "default_days": DEFAULT_TOP_VISITOR_WINDOW_DAYS}
    if session.execute(_LOCK_VENUES, params).first() is None:
        return
    session.execute(_CREATE_WINDOWS, params)


# Every counter recomputed from the check-ins (migration 0017 fills them the same way): for data
# loaded with the triggers off (bench/dataset.py loads with `session_replication_role = replica`).
REBUILD: tuple[str, ...] = (
    "TRUNCATE checkin_visit_counts, checkin_visit_days, device_user_checkins, top_visitor_tallies,"
    " top_visitor_windows",
    """
    INSERT INTO checkin_visit_counts (user_id, venue_id, visits)
    SELECT user_id, venue_id, count(*) FROM checkins WHERE status = 'verified'
    GROUP BY user_id, venue_id
    """,
    """
    INSERT INTO checkin_visit_days (user_id, venue_id, day, visits)
    SELECT user_id, venue_id, (created_at AT TIME ZONE 'UTC')::date, count(*) FROM checkins
    WHERE status = 'verified'
    GROUP BY 1, 2, 3
    """,
    """
    INSERT INTO device_user_checkins (device_id, user_id, last_at)
    SELECT device_id, user_id, max(created_at) FROM checkins WHERE device_id IS NOT NULL
    GROUP BY device_id, user_id
    """,
    f"""
    INSERT INTO top_visitor_windows (venue_id, window_days, through)
    SELECT DISTINCT ov.venue_id, w.days, now() - make_interval(days => w.days)
    FROM offers o
    JOIN offer_venues ov ON ov.offer_id = o.id
    CROSS JOIN LATERAL (
        SELECT COALESCE((o.rule->>'window_days')::int, {DEFAULT_TOP_VISITOR_WINDOW_DAYS}) AS days
    ) w
    WHERE o.rule->>'kind' = 'top_visitor'
    """,
    """
    INSERT INTO top_visitor_tallies (venue_id, window_days, user_id, visits)
    SELECT w.venue_id, w.window_days, c.user_id, count(*)
    FROM top_visitor_windows w
    JOIN checkins c ON c.venue_id = w.venue_id AND c.status = 'verified'
                   AND c.created_at > w.through
    GROUP BY w.venue_id, w.window_days, c.user_id
    """,
)
