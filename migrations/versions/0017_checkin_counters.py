"""Check-in counters: what a check-in reads stops growing with history (issue 21)

Four tables, kept by statement-level triggers on `checkins` in the transaction that writes the
check-ins (any writer: the check-in, a staff visit, the erasure, the retention job, a bulk load),
and filled here from the existing history:

- `checkin_visit_counts`: a user's verified check-ins per venue, all time (`first_visit`,
  `nth_visit`), and `checkin_visit_days` the same per UTC day (`nth_visit` with `within_days`:
  whole days from the buckets, the day the window starts in from the check-ins);
- `device_user_checkins`: the latest check-in of each (device, user): the strikes' distinct
  users of a device and devices of a user in a window, and the staff-device exclusion;
- `top_visitor_windows` and `top_visitor_tallies`: per venue and `window_days`, each user's
  verified check-ins created after the window's `through`. A check-in's insert trigger advances
  `through` and takes the check-ins left behind off the tallies; `top_visitor_figures` reads
  them exactly whatever has been taken off yet (`offers/counters.py` explains why).

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The advisory lock space shared by check-ins (shared) and the creation of a top_visitor window
# (exclusive) at a venue: 64 buckets of venues, so a bulk insert takes at most 64 locks.
# offers/counters.py uses the same numbers.
_LOCK_CLASS = 2101
_BUCKETS = 64

_FUNCTIONS = f"""
CREATE FUNCTION checkin_counters_refresh(
    uv_users uuid[], uv_venues uuid[], d_devices text[], d_users uuid[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- recount the given (user, venue) and (device, user) keys from the check-ins themselves
    IF cardinality(uv_users) > 0 THEN
        DELETE FROM checkin_visit_counts vc USING unnest(uv_users, uv_venues) k(u, v)
        WHERE vc.user_id = k.u AND vc.venue_id = k.v;
        INSERT INTO checkin_visit_counts (user_id, venue_id, visits)
        SELECT c.user_id, c.venue_id, count(*)
        FROM (SELECT DISTINCT u, v FROM unnest(uv_users, uv_venues) k(u, v)) k
        JOIN checkins c ON c.user_id = k.u AND c.venue_id = k.v AND c.status = 'verified'
        GROUP BY c.user_id, c.venue_id;
        DELETE FROM checkin_visit_days d USING unnest(uv_users, uv_venues) k(u, v)
        WHERE d.user_id = k.u AND d.venue_id = k.v;
        INSERT INTO checkin_visit_days (user_id, venue_id, day, visits)
        SELECT c.user_id, c.venue_id, (c.created_at AT TIME ZONE 'UTC')::date, count(*)
        FROM (SELECT DISTINCT u, v FROM unnest(uv_users, uv_venues) k(u, v)) k
        JOIN checkins c ON c.user_id = k.u AND c.venue_id = k.v AND c.status = 'verified'
        GROUP BY 1, 2, 3;
        DELETE FROM top_visitor_tallies t USING unnest(uv_users, uv_venues) k(u, v)
        WHERE t.user_id = k.u AND t.venue_id = k.v;
        INSERT INTO top_visitor_tallies (venue_id, window_days, user_id, visits)
        SELECT w.venue_id, w.window_days, c.user_id, count(*)
        FROM (SELECT DISTINCT u, v FROM unnest(uv_users, uv_venues) k(u, v)) k
        JOIN top_visitor_windows w ON w.venue_id = k.v
        JOIN checkins c ON c.user_id = k.u AND c.venue_id = k.v AND c.status = 'verified'
                       AND c.created_at > w.through
        GROUP BY w.venue_id, w.window_days, c.user_id;
    END IF;
    IF cardinality(d_devices) > 0 THEN
        DELETE FROM device_user_checkins p USING unnest(d_devices, d_users) k(d, u)
        WHERE p.device_id = k.d AND p.user_id = k.u;
        INSERT INTO device_user_checkins (device_id, user_id, last_at)
        SELECT c.device_id, c.user_id, max(c.created_at)
        FROM (SELECT DISTINCT d, u FROM unnest(d_devices, d_users) k(d, u)) k
        JOIN checkins c ON c.device_id = k.d AND c.user_id = k.u
        GROUP BY c.device_id, c.user_id;
    END IF;
END $$;

CREATE FUNCTION checkin_counters_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO checkin_visit_counts AS vc (user_id, venue_id, visits)
    SELECT n.user_id, n.venue_id, count(*) FROM new_rows n WHERE n.status = 'verified'
    GROUP BY n.user_id, n.venue_id
    ON CONFLICT (user_id, venue_id) DO UPDATE SET visits = vc.visits + EXCLUDED.visits;

    INSERT INTO checkin_visit_days AS d (user_id, venue_id, day, visits)
    SELECT n.user_id, n.venue_id, (n.created_at AT TIME ZONE 'UTC')::date, count(*)
    FROM new_rows n WHERE n.status = 'verified'
    GROUP BY 1, 2, 3
    ON CONFLICT (user_id, venue_id, day) DO UPDATE SET visits = d.visits + EXCLUDED.visits;

    INSERT INTO device_user_checkins AS p (device_id, user_id, last_at)
    SELECT n.device_id, n.user_id, max(n.created_at) FROM new_rows n
    WHERE n.device_id IS NOT NULL
    GROUP BY n.device_id, n.user_id
    ON CONFLICT (device_id, user_id) DO UPDATE SET last_at = GREATEST(p.last_at, EXCLUDED.last_at);

    -- a window being created at the venue waits for this transaction, and this one for it:
    -- the next statement's snapshot sees the window if it was committed meanwhile
    PERFORM pg_advisory_xact_lock_shared({_LOCK_CLASS}, b.bucket)
    FROM (SELECT DISTINCT abs(hashtext(n.venue_id::text)) % {_BUCKETS} AS bucket
          FROM new_rows n WHERE n.status = 'verified' ORDER BY 1) b;
    INSERT INTO top_visitor_tallies AS t (venue_id, window_days, user_id, visits)
    SELECT w.venue_id, w.window_days, n.user_id, count(*)
    FROM new_rows n
    JOIN top_visitor_windows w ON w.venue_id = n.venue_id AND n.created_at > w.through
    WHERE n.status = 'verified'
    GROUP BY w.venue_id, w.window_days, n.user_id
    ON CONFLICT (venue_id, window_days, user_id) DO UPDATE SET visits = t.visits + EXCLUDED.visits;

    -- take the check-ins that left these venues' windows off the tallies (about one per
    -- check-in at a busy venue); a window another transaction holds is skipped: what
    -- top_visitor_figures reads is exact either way
    WITH held AS (
        SELECT w.venue_id, w.window_days, w.through, n.at - make_interval(days => w.window_days) AS upto
        FROM top_visitor_windows w
        JOIN (SELECT venue_id, max(created_at) AS at FROM new_rows WHERE status = 'verified'
              GROUP BY venue_id) n ON n.venue_id = w.venue_id
        WHERE w.through < n.at - make_interval(days => w.window_days)
        FOR UPDATE OF w SKIP LOCKED
    ), gone AS (
        SELECT h.venue_id, h.window_days, c.user_id, count(*) AS n
        FROM held h
        JOIN checkins c ON c.venue_id = h.venue_id AND c.status = 'verified'
                       AND c.created_at > h.through AND c.created_at <= h.upto
        GROUP BY h.venue_id, h.window_days, c.user_id
    ), taken_off AS (
        INSERT INTO top_visitor_tallies AS t (venue_id, window_days, user_id, visits)
        SELECT g.venue_id, g.window_days, g.user_id, -g.n FROM gone g
        ON CONFLICT (venue_id, window_days, user_id) DO UPDATE SET visits = t.visits + EXCLUDED.visits
    )
    UPDATE top_visitor_windows w SET through = h.upto
    FROM held h
    WHERE w.venue_id = h.venue_id AND w.window_days = h.window_days;
    RETURN NULL;
END $$;

-- A user's verified check-ins at a venue over the `days` before `p_now` (the check-in's now())
-- and the most of anyone else's,
-- exactly as counting them would (offers/counters.py): the tallies count the check-ins after
-- the window's `through`, the window starts at now() - days, and the check-ins between the two
-- are added or taken off by hand. STABLE: one snapshot, the calling statement's. Without a
-- window (an offer written by other means than offers.catalog) the check-ins are counted.
CREATE FUNCTION top_visitor_figures(
    p_venue uuid, p_user uuid, p_days int, p_now timestamptz,
    OUT top_visits bigint, OUT best_other_visits bigint
) LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    w_through timestamptz;
    since timestamptz := p_now - make_interval(days => p_days);
    users uuid[]; ns bigint[];
BEGIN
    SELECT w.through INTO w_through FROM top_visitor_windows w
    WHERE w.venue_id = p_venue AND w.window_days = p_days;
    IF NOT FOUND THEN
        SELECT COALESCE(max(t.n) FILTER (WHERE t.user_id = p_user), 0),
               COALESCE(max(t.n) FILTER (WHERE t.user_id <> p_user), 0)
        INTO top_visits, best_other_visits
        FROM (SELECT c.user_id, count(*) AS n FROM checkins c
              WHERE c.venue_id = p_venue AND c.status = 'verified' AND c.created_at > since
              GROUP BY c.user_id) t;
        RETURN;
    END IF;
    -- between `through` and the window's start: out of the window, not yet taken off (-1);
    -- or, for a transaction older than the one that moved `through`, in its window but
    -- taken off already (+1)
    SELECT COALESCE(array_agg(b.user_id), '{{}}'), COALESCE(array_agg(b.n), '{{}}')
    INTO users, ns
    FROM (SELECT c.user_id, sum(CASE WHEN c.created_at > w_through THEN -1 ELSE 1 END) AS n
          FROM checkins c
          WHERE c.venue_id = p_venue AND c.status = 'verified'
            AND c.created_at > LEAST(w_through, since)
            AND c.created_at <= GREATEST(w_through, since)
          GROUP BY c.user_id) b;
    top_visits := COALESCE((SELECT t.visits FROM top_visitor_tallies t
                            WHERE t.venue_id = p_venue AND t.window_days = p_days
                              AND t.user_id = p_user), 0)
                  + COALESCE((SELECT x.n FROM unnest(users, ns) x(user_id, n)
                              WHERE x.user_id = p_user), 0);
    best_other_visits := GREATEST(
        (SELECT t.visits FROM top_visitor_tallies t
         WHERE t.venue_id = p_venue AND t.window_days = p_days
           AND t.user_id <> p_user AND t.user_id <> ALL (users)
         ORDER BY t.visits DESC LIMIT 1),
        (SELECT max(COALESCE(t.visits, 0) + x.n) FROM unnest(users, ns) x(user_id, n)
         LEFT JOIN top_visitor_tallies t
           ON t.venue_id = p_venue AND t.window_days = p_days AND t.user_id = x.user_id
         WHERE x.user_id <> p_user),
        0);
END $$;

CREATE FUNCTION checkin_counters_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    uv_users uuid[]; uv_venues uuid[]; d_devices text[]; d_users uuid[];
BEGIN
    -- only rows whose counted columns changed (the erasure and the retention job change
    -- device_id alone: their devices' pairs are recounted, nothing else)
    SELECT COALESCE(array_agg(k.u), '{{}}'), COALESCE(array_agg(k.v), '{{}}')
    INTO uv_users, uv_venues
    FROM (SELECT o.user_id AS u, o.venue_id AS v FROM old_rows o JOIN new_rows n ON n.id = o.id
          WHERE (o.user_id, o.venue_id, o.status, o.created_at)
                IS DISTINCT FROM (n.user_id, n.venue_id, n.status, n.created_at)
          UNION
          SELECT n.user_id, n.venue_id FROM old_rows o JOIN new_rows n ON n.id = o.id
          WHERE (o.user_id, o.venue_id, o.status, o.created_at)
                IS DISTINCT FROM (n.user_id, n.venue_id, n.status, n.created_at)) k;
    SELECT COALESCE(array_agg(k.d), '{{}}'), COALESCE(array_agg(k.u), '{{}}')
    INTO d_devices, d_users
    FROM (SELECT o.device_id AS d, o.user_id AS u FROM old_rows o JOIN new_rows n ON n.id = o.id
          WHERE o.device_id IS NOT NULL
            AND (o.device_id, o.user_id, o.created_at)
                IS DISTINCT FROM (n.device_id, n.user_id, n.created_at)
            -- a row that leaves a pair changes it only if it was the pair's latest (the
            -- retention job's old rows seldom are); a later one changed too is its own key
            AND EXISTS (SELECT 1 FROM device_user_checkins p
                        WHERE p.device_id = o.device_id AND p.user_id = o.user_id
                          AND p.last_at <= o.created_at)
          UNION
          SELECT n.device_id, n.user_id FROM old_rows o JOIN new_rows n ON n.id = o.id
          WHERE n.device_id IS NOT NULL
            AND (o.device_id, o.user_id, o.created_at)
                IS DISTINCT FROM (n.device_id, n.user_id, n.created_at)) k;
    PERFORM checkin_counters_refresh(uv_users, uv_venues, d_devices, d_users);
    RETURN NULL;
END $$;

CREATE FUNCTION checkin_counters_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    uv_users uuid[]; uv_venues uuid[]; d_devices text[]; d_users uuid[];
BEGIN
    SELECT COALESCE(array_agg(k.u), '{{}}'), COALESCE(array_agg(k.v), '{{}}')
    INTO uv_users, uv_venues
    FROM (SELECT DISTINCT o.user_id AS u, o.venue_id AS v FROM old_rows o) k;
    SELECT COALESCE(array_agg(k.d), '{{}}'), COALESCE(array_agg(k.u), '{{}}')
    INTO d_devices, d_users
    FROM (SELECT DISTINCT o.device_id AS d, o.user_id AS u FROM old_rows o
          WHERE o.device_id IS NOT NULL) k;
    PERFORM checkin_counters_refresh(uv_users, uv_venues, d_devices, d_users);
    RETURN NULL;
END $$;

CREATE TRIGGER checkins_counters_insert AFTER INSERT ON checkins
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION checkin_counters_after_insert();
CREATE TRIGGER checkins_counters_update AFTER UPDATE ON checkins
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION checkin_counters_after_update();
CREATE TRIGGER checkins_counters_delete AFTER DELETE ON checkins
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION checkin_counters_after_delete();
"""

_BACKFILL = (
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
    # every (venue, window) a top_visitor offer has, whatever its status
    """
    INSERT INTO top_visitor_windows (venue_id, window_days, through)
    SELECT DISTINCT ov.venue_id, w.days, now() - make_interval(days => w.days)
    FROM offers o
    JOIN offer_venues ov ON ov.offer_id = o.id
    CROSS JOIN LATERAL (SELECT COALESCE((o.rule->>'window_days')::int, 60) AS days) w
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


def upgrade() -> None:
    op.create_table(
        "checkin_visit_counts",
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("venue_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_checkin_visit_counts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_checkin_visit_counts_venue_id_venues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "venue_id", name=op.f("pk_checkin_visit_counts")),
    )
    op.create_index(
        op.f("ix_checkin_visit_counts_venue_id"), "checkin_visit_counts", ["venue_id"]
    )
    op.create_table(
        "checkin_visit_days",
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("venue_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_checkin_visit_days_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_checkin_visit_days_venue_id_venues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "user_id", "venue_id", "day", name=op.f("pk_checkin_visit_days")
        ),
    )
    op.create_index(op.f("ix_checkin_visit_days_venue_id"), "checkin_visit_days", ["venue_id"])
    op.create_table(
        "device_user_checkins",
        sa.Column("device_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_device_user_checkins_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "user_id", name=op.f("pk_device_user_checkins")),
    )
    op.create_index(
        "ix_device_user_checkins_user_id_last_at",
        "device_user_checkins",
        ["user_id", "last_at"],
    )
    op.create_table(
        "top_visitor_windows",
        sa.Column("venue_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("through", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_top_visitor_windows_venue_id_venues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("venue_id", "window_days", name=op.f("pk_top_visitor_windows")),
    )
    op.create_table(
        "top_visitor_tallies",
        sa.Column("venue_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_top_visitor_tallies_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_top_visitor_tallies_venue_id_venues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "venue_id", "window_days", "user_id", name=op.f("pk_top_visitor_tallies")
        ),
    )
    op.create_index(
        "ix_top_visitor_tallies_venue_id_window_days_visits",
        "top_visitor_tallies",
        ["venue_id", "window_days", sa.text("visits DESC")],
    )
    op.execute(_FUNCTIONS)
    for statement in _BACKFILL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER checkins_counters_delete ON checkins")
    op.execute("DROP TRIGGER checkins_counters_update ON checkins")
    op.execute("DROP TRIGGER checkins_counters_insert ON checkins")
    op.execute("DROP FUNCTION checkin_counters_after_delete()")
    op.execute("DROP FUNCTION checkin_counters_after_update()")
    op.execute("DROP FUNCTION checkin_counters_after_insert()")
    op.execute("DROP FUNCTION checkin_counters_refresh(uuid[], uuid[], text[], uuid[])")
    op.execute("DROP FUNCTION top_visitor_figures(uuid, uuid, int, timestamptz)")
    op.drop_table("top_visitor_tallies")
    op.drop_table("top_visitor_windows")
    op.drop_table("device_user_checkins")
    op.drop_table("checkin_visit_days")
    op.drop_table("checkin_visit_counts")
