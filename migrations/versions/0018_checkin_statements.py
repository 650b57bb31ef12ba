"""A check-in's two big statements as PL/pgSQL functions, planned once per connection (issue 21)

psycopg2 sends every statement as literal SQL, so PostgreSQL planned the check-in's venue+history
and candidates statements from scratch on every check-in: together about 1.2 ms of planning
against 0.3 ms of execution, the larger part of a check-in's database time
(docs/performance.md, "Planning once"). A PL/pgSQL function keeps the plans of its statements
for the life of the connection (custom plans for its first five calls, then the generic plan
when it is no dearer), so the statement the service sends is a function call that costs next to
nothing to plan.

- `checkin_venue_and_history` takes the user's advisory lock (what the check-in's first
  statement did) and then reads the venue and the user's history: a VOLATILE function's
  statements each take a new snapshot under READ COMMITTED, so the read sees every check-in of
  the user committed before the lock was granted, as the separate statement did; one round
  trip instead of two.
- `checkin_candidates` is the candidates statement of 0017 unchanged, STABLE (one snapshot,
  the caller's: it reads the check-in the same transaction just inserted).

Both take `now()` as a parameter (the caller passes `now()`, the transaction's time the
statements used), so the counters' oracle tests can still run them at a simulated clock.
Their SQL is the statements' own, parameter for parameter: `offers/checkins.py` says which.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTIONS = """
CREATE FUNCTION checkin_venue_and_history(
    p_venue uuid, p_user uuid, p_device varchar, p_observed_at timestamptz,
    p_window_days int, p_rejection_hours int, p_staff_device_days int, p_now timestamptz
) RETURNS TABLE (
    id uuid, merchant_id uuid, timezone varchar, lon double precision, lat double precision,
    geofence bytea, radius_m double precision, checkin_cooldown_minutes integer,
    max_accuracy_m double precision, presence_secret bytea, tap_radius_m double precision,
    now timestamptz, user_erased boolean,
    prev_lon double precision, prev_lat double precision, prev_observed_at timestamptz,
    next_lon double precision, next_lat double precision, next_observed_at timestamptz,
    latest_observed_at timestamptz, last_here_at timestamptz,
    device_users bigint, user_devices bigint, recent_rejections bigint,
    staff_user boolean, staff_device boolean
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    -- one check-in per user at a time: its history, cooldown and caps are read, then written
    -- (core/privacy.py's erasure takes the same lock)
    PERFORM pg_advisory_xact_lock(hashtextextended('user:' || p_user::text, 0));
    -- a new snapshot, taken after the lock was granted
    RETURN QUERY
    SELECT v.id, v.merchant_id, v.timezone,
           ST_X(v.location::geometry) AS lon, ST_Y(v.location::geometry) AS lat,
           ST_AsBinary(v.geofence) AS geofence, v.radius_m,
           v.checkin_cooldown_minutes, v.max_accuracy_m, v.presence_secret, v.tap_radius_m,
           clock_timestamp() AS now,  -- the database clock at this check-in
           (SELECT u.erased_at IS NOT NULL FROM users u WHERE u.id = p_user) AS user_erased,
           ST_X(prev.location::geometry) AS prev_lon, ST_Y(prev.location::geometry) AS prev_lat,
           prev.observed_at AS prev_observed_at,
           ST_X(nxt.location::geometry) AS next_lon, ST_Y(nxt.location::geometry) AS next_lat,
           nxt.observed_at AS next_observed_at, latest.observed_at AS latest_observed_at,
           here.created_at AS last_here_at,
           dev.device_users, mine.user_devices, rej.recent_rejections,
           EXISTS (SELECT 1 FROM merchant_staff_users s
                   WHERE s.merchant_id = v.merchant_id AND s.user_id = p_user) AS staff_user,
           EXISTS (SELECT 1 FROM device_user_checkins p
                   JOIN merchant_staff_users s
                     ON s.merchant_id = v.merchant_id AND s.user_id = p.user_id
                   WHERE p.device_id = p_device
                     AND p.last_at > p_now - make_interval(days => p_staff_device_days))
               AS staff_device
    FROM venues v
    LEFT JOIN LATERAL (
        SELECT c.location, c.observed_at FROM checkins c
        WHERE c.user_id = p_user AND c.status = 'verified'
          AND c.observed_at <= (SELECT COALESCE(p_observed_at, clock_timestamp()))
        ORDER BY c.observed_at DESC LIMIT 1
    ) prev ON true
    LEFT JOIN LATERAL (
        SELECT c.location, c.observed_at FROM checkins c
        WHERE c.user_id = p_user AND c.status = 'verified'
          AND c.observed_at > (SELECT COALESCE(p_observed_at, clock_timestamp()))
        ORDER BY c.observed_at LIMIT 1
    ) nxt ON true
    LEFT JOIN LATERAL (
        SELECT c.observed_at FROM checkins c
        WHERE c.user_id = p_user AND c.status = 'verified'
        ORDER BY c.observed_at DESC LIMIT 1
    ) latest ON true
    LEFT JOIN LATERAL (
        SELECT c.created_at FROM checkins c
        WHERE c.user_id = p_user AND c.venue_id = v.id AND c.status = 'verified'
        ORDER BY c.created_at DESC LIMIT 1
    ) here ON true
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE p.user_id <> p_user) + 1 AS device_users
        FROM device_user_checkins p
        WHERE p.device_id = p_device
          AND p.last_at > p_now - make_interval(days => p_window_days)
    ) dev
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE p.device_id IS DISTINCT FROM p_device)
               + CASE WHEN p_device IS NULL THEN 0 ELSE 1 END AS user_devices
        FROM device_user_checkins p
        WHERE p.user_id = p_user AND p.last_at > p_now - make_interval(days => p_window_days)
    ) mine
    CROSS JOIN LATERAL (
        SELECT count(*) AS recent_rejections FROM checkins c
        WHERE c.user_id = p_user AND c.status = 'rejected'
          AND c.created_at > p_now - make_interval(hours => p_rejection_hours)
    ) rej
    WHERE v.id = p_venue AND v.deleted_at IS NULL;
END $$;

CREATE FUNCTION checkin_candidates(
    p_venue uuid, p_user uuid, p_top_window_days int, p_now timestamptz
) RETURNS TABLE (
    id uuid, title varchar, rule jsonb, starts_at timestamptz, ends_at timestamptz,
    windows jsonb, per_user_cap integer, requires_presence_code boolean, min_proof varchar,
    holdout_pct double precision, code_ttl_minutes integer,
    visits bigint, visits_within bigint, user_unlocks bigint,
    top_visits bigint, best_other_visits bigint, members json
) LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT o.id, o.title, o.rule, o.starts_at, o.ends_at, o.windows, o.per_user_cap,
           o.requires_presence_code, o.min_proof, o.holdout_pct, o.code_ttl_minutes,
           vis.visits, vis.visits_within,
           (SELECT count(*) FROM unlocks u WHERE u.offer_id = o.id AND u.user_id = p_user)
               AS user_unlocks,
           COALESCE(top.top_visits, 0) AS top_visits,
           COALESCE(top.best_other_visits, 0) AS best_other_visits,
           grp.members
    FROM offer_venues ov
    JOIN offers o ON o.id = ov.offer_id
    CROSS JOIN LATERAL (
        SELECT (SELECT COALESCE(sum(vc.visits), 0) FROM checkin_visit_counts vc
                WHERE vc.user_id = p_user
                  AND vc.venue_id IN (SELECT ov2.venue_id FROM offer_venues ov2
                                      WHERE ov2.offer_id = o.id)
               ) AS visits,
               -- whole UTC days after the one the window starts in, from the day buckets;
               -- that day's check-ins from the check-ins themselves
               CASE WHEN o.rule->>'within_days' IS NOT NULL THEN (
                   SELECT COALESCE(sum(d.visits), 0) FROM checkin_visit_days d
                   WHERE d.user_id = p_user
                     AND d.venue_id IN (SELECT ov2.venue_id FROM offer_venues ov2
                                        WHERE ov2.offer_id = o.id)
                     AND d.day > (since.at AT TIME ZONE 'UTC')::date
               ) + (
                   SELECT count(*) FROM checkins c
                   WHERE c.user_id = p_user AND c.status = 'verified'
                     AND c.venue_id IN (SELECT ov2.venue_id FROM offer_venues ov2
                                        WHERE ov2.offer_id = o.id)
                     AND c.created_at > since.at
                     AND c.created_at
                         < ((since.at AT TIME ZONE 'UTC')::date + 1) AT TIME ZONE 'UTC')
               ELSE 0 END AS visits_within
        FROM (SELECT p_now - make_interval(days => (o.rule->>'within_days')::int) AS at) since
    ) vis
    -- STRICT: NULL, not called, for other kinds
    CROSS JOIN LATERAL top_visitor_figures(
        p_venue, p_user,
        CASE WHEN o.rule->>'kind' = 'top_visitor'
             THEN COALESCE((o.rule->>'window_days')::int, p_top_window_days) END,
        p_now
    ) top
    CROSS JOIN LATERAL (
        SELECT json_agg(json_build_object(
                   'user_id', m.user_id, 'checkin_id', m.checkin_id,
                   'presence', m.presence_code_sent, 'proof', m.proof, 'unlocks', m.unlocks,
                   'recent', m.recent, 'strikes', m.strikes,
                   'staff', m.staff_exclusion IS NOT NULL)) AS members
        FROM (
            SELECT DISTINCT ON (c.user_id) c.user_id, c.id AS checkin_id, c.presence_code_sent,
                   c.proof, c.strikes, c.staff_exclusion,
                   (SELECT count(*) FROM unlocks u
                    WHERE u.offer_id = o.id AND u.user_id = c.user_id) AS unlocks,
                   EXISTS (SELECT 1 FROM unlocks u
                           WHERE u.offer_id = o.id AND u.user_id = c.user_id
                             AND u.created_at > p_now - make_interval(
                                 mins => (o.rule->>'within_minutes')::int)) AS recent
            FROM checkins c
            WHERE o.rule->>'kind' = 'group'
              AND c.venue_id = p_venue AND c.status = 'verified'
              AND c.created_at > p_now - make_interval(mins => (o.rule->>'within_minutes')::int)
            ORDER BY c.user_id, c.created_at DESC
        ) m
    ) grp
    WHERE ov.venue_id = p_venue AND o.status = 'active'
    ORDER BY o.created_at, o.id;
END $$;
"""


def upgrade() -> None:
    op.execute(_FUNCTIONS)


def downgrade() -> None:
    op.execute("DROP FUNCTION checkin_candidates(uuid, uuid, int, timestamptz)")
    op.execute(
        "DROP FUNCTION checkin_venue_and_history("
        "uuid, uuid, varchar, timestamptz, int, int, int, timestamptz)"
    )
