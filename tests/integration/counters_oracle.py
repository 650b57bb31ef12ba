"""The check-in's queries as they were before the counters of migration 0017 (main at
bd7fc3a, offers/checkins.py): the oracle of tests/integration/test_counters.py. They count the
check-ins themselves, so their figures are what the rules say by definition; the counters must
give the same on any history. Kept verbatim: do not "fix" them."""

from __future__ import annotations

from sqlalchemy import text

OLD_VENUE_AND_HISTORY = text(
    """
    SELECT v.id, v.merchant_id, v.timezone,
           ST_X(v.location::geometry) AS lon, ST_Y(v.location::geometry) AS lat,
           ST_AsBinary(v.geofence) AS geofence, v.radius_m,
           v.checkin_cooldown_minutes, v.max_accuracy_m, v.presence_secret, v.tap_radius_m,
           clock_timestamp() AS now,  -- the database clock at this check-in
           (SELECT u.erased_at IS NOT NULL FROM users u WHERE u.id = :user_id) AS user_erased,
           ST_X(prev.location::geometry) AS prev_lon, ST_Y(prev.location::geometry) AS prev_lat,
           prev.observed_at AS prev_observed_at,
           ST_X(nxt.location::geometry) AS next_lon, ST_Y(nxt.location::geometry) AS next_lat,
           nxt.observed_at AS next_observed_at, latest.observed_at AS latest_observed_at,
           here.created_at AS last_here_at,
           dev.device_users, mine.user_devices, rej.recent_rejections,
           EXISTS (SELECT 1 FROM merchant_staff_users s
                   WHERE s.merchant_id = v.merchant_id AND s.user_id = :user_id) AS staff_user,
           EXISTS (SELECT 1 FROM checkins c
                   JOIN merchant_staff_users s
                     ON s.merchant_id = v.merchant_id AND s.user_id = c.user_id
                   WHERE c.device_id = CAST(:device_id AS varchar)
                     AND c.created_at > now() - make_interval(days => :staff_device_days))
               AS staff_device
    FROM venues v
    -- the user's accepted fixes around this one in time (geo.verify.History), and the latest
    LEFT JOIN LATERAL (
        SELECT c.location, c.observed_at FROM checkins c
        WHERE c.user_id = :user_id AND c.status = 'verified' AND c.observed_at <= COALESCE(CAST(:observed_at AS timestamptz), clock_timestamp())
        ORDER BY c.observed_at DESC LIMIT 1
    ) prev ON true
    LEFT JOIN LATERAL (
        SELECT c.location, c.observed_at FROM checkins c
        WHERE c.user_id = :user_id AND c.status = 'verified' AND c.observed_at > COALESCE(CAST(:observed_at AS timestamptz), clock_timestamp())
        ORDER BY c.observed_at LIMIT 1
    ) nxt ON true
    LEFT JOIN LATERAL (
        SELECT c.observed_at FROM checkins c
        WHERE c.user_id = :user_id AND c.status = 'verified'
        ORDER BY c.observed_at DESC LIMIT 1
    ) latest ON true
    LEFT JOIN LATERAL (
        SELECT c.created_at FROM checkins c
        WHERE c.user_id = :user_id AND c.venue_id = v.id AND c.status = 'verified'
        ORDER BY c.created_at DESC LIMIT 1
    ) here ON true
    -- strikes (offers/abuse.py): the device's other users, the user's other devices, and the
    -- user's recent rejections; this check-in is not recorded yet, so it is added by hand
    CROSS JOIN LATERAL (
        SELECT count(DISTINCT c.user_id) FILTER (WHERE c.user_id <> :user_id) + 1 AS device_users
        FROM checkins c
        WHERE c.device_id = CAST(:device_id AS varchar)
          AND c.created_at > now() - make_interval(days => :window_days)
    ) dev
    CROSS JOIN LATERAL (
        SELECT count(DISTINCT c.device_id) FILTER (
                   WHERE c.device_id IS DISTINCT FROM CAST(:device_id AS varchar))
               + CASE WHEN CAST(:device_id AS varchar) IS NULL THEN 0 ELSE 1 END AS user_devices
        FROM checkins c
        WHERE c.user_id = :user_id AND c.created_at > now() - make_interval(days => :window_days)
    ) mine
    CROSS JOIN LATERAL (
        SELECT count(*) AS recent_rejections FROM checkins c
        WHERE c.user_id = :user_id AND c.status = 'rejected'
          AND c.created_at > now() - make_interval(hours => :rejection_hours)
    ) rej
    WHERE v.id = :venue_id AND v.deleted_at IS NULL
    """
)


OLD_CANDIDATES = text(
    """
    SELECT o.id, o.title, o.rule, o.starts_at, o.ends_at, o.windows, o.per_user_cap,
           o.requires_presence_code, o.min_proof, o.holdout_pct, o.code_ttl_minutes,
           vis.visits, vis.visits_within,
           (SELECT count(*) FROM unlocks u WHERE u.offer_id = o.id AND u.user_id = :user_id)
               AS user_unlocks,
           top.top_visits, top.best_other_visits,
           grp.members
    FROM offer_venues ov
    JOIN offers o ON o.id = ov.offer_id
    CROSS JOIN LATERAL (
        SELECT count(*) AS visits,
               count(*) FILTER (
                   WHERE o.rule ? 'within_days' AND o.rule->>'within_days' IS NOT NULL
                     AND c.created_at > now() - make_interval(days => (o.rule->>'within_days')::int)
               ) AS visits_within
        FROM checkins c
        WHERE c.user_id = :user_id AND c.status = 'verified'
          AND c.venue_id IN (SELECT venue_id FROM offer_venues WHERE offer_id = o.id)
    ) vis
    CROSS JOIN LATERAL (
        SELECT COALESCE(max(t.n) FILTER (WHERE t.user_id = :user_id), 0) AS top_visits,
               COALESCE(max(t.n) FILTER (WHERE t.user_id <> :user_id), 0) AS best_other_visits
        FROM (
            SELECT c.user_id, count(*) AS n FROM checkins c
            WHERE o.rule->>'kind' = 'top_visitor'
              AND c.venue_id = :venue_id AND c.status = 'verified'
              AND c.created_at > now() - make_interval(
                  days => COALESCE((o.rule->>'window_days')::int, :top_window_days))
            GROUP BY c.user_id
        ) t
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
                             AND u.created_at > now() - make_interval(
                                 mins => (o.rule->>'within_minutes')::int)) AS recent
            FROM checkins c
            WHERE o.rule->>'kind' = 'group'
              AND c.venue_id = :venue_id AND c.status = 'verified'
              AND c.created_at > now() - make_interval(mins => (o.rule->>'within_minutes')::int)
            ORDER BY c.user_id, c.created_at DESC
        ) m
    ) grp
    WHERE ov.venue_id = :venue_id AND o.status = 'active'
    ORDER BY o.created_at, o.id
    """
)


OLD_STAFF_DEVICE_OF_USER = text(
    """
    SELECT EXISTS (
        SELECT 1 FROM checkins mine
        JOIN checkins theirs ON theirs.device_id = mine.device_id
        JOIN merchant_staff_users s
          ON s.user_id = theirs.user_id AND s.merchant_id = :merchant_id
        WHERE mine.user_id = :user_id AND mine.device_id IS NOT NULL
          AND mine.created_at > now() - make_interval(days => :days)
          AND theirs.created_at > now() - make_interval(days => :days)
    )
    """
)
