"""Feedback from verified visits: a user rates a visit, the merchant answers, and how fast it
answers is measured (docs/feedback.md, docs/analytics.md).

Only the person who was really there speaks: feedback belongs to one verified check-in of the
caller, made within `WINDOW_DAYS` of it, once. Comments and replies are plain text (the schemas
apply the rules of `api.schemas.Text`); nothing here or in the dashboard renders them as HTML.

`give_feedback` makes two round trips:

1. one query for the check-in (the caller's own, else 404), its venue's merchant, whether it is
   eligible (verified, recent, not by the merchant's own staff, at a venue still open) and
   whether it has feedback already, on the database's clock;
2. one `INSERT ... ON CONFLICT (checkin_id) DO NOTHING RETURNING`: the unique index decides, so
   of two parallel posts for one check-in exactly one is stored and the other is
   `already_given`.

`reply` makes two: one statement that sets the feedback's `first_reply_at` (if not set yet) and
inserts the reply (the UPDATE locks the feedback row, so parallel first replies agree on when
it was first answered), and the audit event with the key that wrote it. Replies are stamped
with the clock at the statement (not the transaction's start), so replies keep their order even
within one transaction, and `first_reply_at` is the earliest reply's stamp (`LEAST`: a reply
that read the clock first but waited on the row lock still counts as the first).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import audit, webhooks
from core.errors import ConflictError, NotFoundError, ValidationError
from core.uow import UnitOfWork, execute

# The report's open period (as offers/analytics.py's, which imports this module).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OPEN_END = datetime(9999, 12, 31, tzinfo=UTC)

# ---- limits and defaults: the schemas, the SQL and the benchmark import these ---------------

RATING_MIN, RATING_MAX = 1, 5
STARS = tuple(range(RATING_MIN, RATING_MAX + 1))
#: Feedback is taken for this many days after the check-in.
WINDOW_DAYS = 7
COMMENT_MAX_CHARS = 2_000
REPLY_MAX_CHARS = 2_000
#: `status` of a feedback in the merchant's list.
STATUSES = ("unanswered", "answered")
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 50, 200
#: The responsiveness report's target for a first reply, in hours (a query parameter).
DEFAULT_TARGET_HOURS = 24.0
MAX_TARGET_HOURS = 24.0 * 30

#: Public benchmarks the report measures a merchant against (docs/analytics.md).
#: Facebook Pages' "Very responsive to messages" badge: a response rate of at least 90% and a
#: response time under 15 minutes, over the last 7 days.
FACEBOOK_WINDOW_DAYS = 7
FACEBOOK_MIN_RESPONSE_RATE = 0.9
FACEBOOK_MAX_MEAN_RESPONSE_S = 15 * 60
#: Yelp shows a business's median response time over the last 30 days.
YELP_WINDOW_DAYS = 30

#: Offer health's low-rating flag: at least this much feedback on visits that unlocked the offer
#: in the health window, and a mean rating at or below the threshold.
MIN_FEEDBACK_FOR_FLAG = 5
LOW_RATING_MEAN = 2.5


class NotEligibleError(ValidationError):
    code = "not_eligible"
    title = "Not eligible for feedback"


class AlreadyGivenError(ConflictError):
    code = "already_given"
    title = "Feedback already given"


# ---- giving feedback ---------------------------------------------------------------------------

_CHECKIN = text(
    """
    SELECT c.id, c.status, c.staff_exclusion, c.venue_id, v.merchant_id,
           v.deleted_at IS NOT NULL AS venue_deleted,
           c.created_at <= now() - make_interval(days => :window_days) AS too_old,
           EXISTS (SELECT 1 FROM feedback f WHERE f.checkin_id = c.id) AS given
    FROM checkins c JOIN venues v ON v.id = c.venue_id
    WHERE c.id = :checkin_id AND c.user_id = :user_id
    """
)

_INSERT = text(
    """
    INSERT INTO feedback (id, checkin_id, user_id, venue_id, merchant_id, rating, comment)
    VALUES (:id, :checkin_id, :user_id, :venue_id, :merchant_id, :rating, :comment)
    ON CONFLICT (checkin_id) DO NOTHING
    RETURNING id, checkin_id, venue_id, rating, comment, created_at
    """
)


def _refusal(row: Any) -> str | None:
    """Why this check-in cannot take feedback, or None when it can."""
    if row.status != "verified":
        return "only a verified check-in takes feedback; this one was rejected"
    if row.too_old:
        return f"feedback is taken within {WINDOW_DAYS} days of the visit"
    if row.staff_exclusion is not None:
        return "a visit by the merchant's own staff takes no feedback"
    if row.venue_deleted:
        return "the venue has closed on the platform"
    return None


def give_feedback(
    uow: UnitOfWork, user_id: uuid.UUID, checkin_id: uuid.UUID, rating: int, comment: str | None
) -> dict[str, Any]:
    """Store the caller's rating of one of their verified visits. Refusals: another user's or an
    unknown check-in 404 `not_found`; a second feedback 409 `already_given`; a rejected check-in,
    one older than `WINDOW_DAYS`, a staff member's own visit or a closed venue 422
    `not_eligible`."""
    if not RATING_MIN <= rating <= RATING_MAX:
        raise ValidationError(
            f"rating must be {RATING_MIN} to {RATING_MAX}",
            errors={"rating": [f"must be {RATING_MIN} to {RATING_MAX}"]},
        )
    # A blank comment is no comment.
    if comment is not None and not comment.strip():
        comment = None
    with uow:
        row = execute(
            uow.session,
            _CHECKIN,
            {"checkin_id": str(checkin_id), "user_id": str(user_id), "window_days": WINDOW_DAYS},
        ).one_or_none()
        if row is None:
            raise NotFoundError("no such check-in")
        if row.given:
            raise AlreadyGivenError("feedback on this visit was already given")
        why = _refusal(row)
        if why is not None:
            raise NotEligibleError(why)
        stored = execute(
            uow.session,
            _INSERT,
            {
                "id": str(uuid.uuid4()),
                "checkin_id": str(checkin_id),
                "user_id": str(user_id),
                "venue_id": str(row.venue_id),
                "merchant_id": str(row.merchant_id),
                "rating": rating,
                "comment": comment,
            },
        ).one_or_none()
        if stored is None:  # a parallel post for the same check-in won
            raise AlreadyGivenError("feedback on this visit was already given")
        view = dict(stored._mapping)
        # Delivered if, and only if, the feedback commits; as the merchant's inbox shows it
        # (no user id).
        webhooks.emit(uow.session, row.merchant_id, [(webhooks.FEEDBACK_CREATED, view)])
        uow.commit()
        return view


# ---- replies -----------------------------------------------------------------------------------

_REPLY = text(
    """
    WITH t AS (SELECT clock_timestamp() AS at), f AS (
        UPDATE feedback SET first_reply_at = LEAST(first_reply_at, t.at) FROM t  -- LEAST skips NULL
        WHERE id = :feedback_id AND merchant_id = :merchant_id
        RETURNING id
    )
    INSERT INTO feedback_replies (id, feedback_id, merchant_id, api_key_id, author_role, body,
                                  created_at)
    SELECT :id, f.id, :merchant_id, :api_key_id, :author_role, :body, t.at FROM f, t
    RETURNING id, feedback_id, body, author_role, created_at
    """
)


def reply(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    feedback_id: uuid.UUID,
    body: str,
) -> dict[str, Any]:
    """Answer a feedback (several answers are allowed; the first one stops its clock). Another
    merchant's or an unknown feedback: 404. Audited as `feedback_reply.create` with the key."""
    if not body.strip():
        raise ValidationError("a reply needs some text", errors={"body": ["must not be blank"]})
    with uow:
        row = execute(
            uow.session,
            _REPLY,
            {
                "id": str(uuid.uuid4()),
                "feedback_id": str(feedback_id),
                "merchant_id": str(merchant_id),
                "api_key_id": str(actor.key_id) if actor.key_id else None,
                "author_role": actor.role,
                "body": body,
            },
        ).one_or_none()
        if row is None:
            raise NotFoundError("no such feedback")
        audit.record(
            uow.session,
            merchant_id,
            actor,
            "feedback_reply.create",
            row.id,
            {"feedback_id": [None, feedback_id], "body": [None, body]},
        )
        uow.commit()
        return dict(row._mapping)


# ---- reading -----------------------------------------------------------------------------------

_REPLIES_JSON = """
    (SELECT COALESCE(json_agg(json_build_object(
                'id', r.id, 'feedback_id', r.feedback_id, 'body', r.body,
                'author_role', r.author_role, 'created_at', r.created_at)
             ORDER BY r.created_at, r.id), '[]')
     FROM feedback_replies r WHERE r.feedback_id = f.id) AS replies
"""

_MINE = text(
    f"""
    SELECT f.id, f.checkin_id, f.venue_id, v.name AS venue_name, f.rating, f.comment,
           f.created_at, {_REPLIES_JSON}
    FROM feedback f JOIN venues v ON v.id = f.venue_id
    WHERE f.user_id = :user_id
    ORDER BY f.created_at DESC, f.id
    LIMIT :limit
    """
)


def _parse_replies(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **r,
            "id": uuid.UUID(r["id"]),
            "feedback_id": uuid.UUID(r["feedback_id"]),
            "created_at": datetime.fromisoformat(r["created_at"]),
        }
        for r in replies
    ]


def my_feedback(session: Session, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """The user's feedback, newest first, each with the merchant's replies (oldest first)."""
    rows = execute(session, _MINE, {"user_id": str(user_id), "limit": LIST_LIMIT_MAX}).all()
    return [{**row._mapping, "replies": _parse_replies(row.replies)} for row in rows]


# What the inbox shows of each feedback: the visit it came from (when, how it was proved, what
# it unlocked and whether that was redeemed) and the replies. Unanswered feedback comes first,
# oldest first (the one waiting longest on top); answered feedback follows, newest first. Each
# branch reads its own index (the partial one on unanswered feedback, or the merchant's).
_LIST_COLUMNS = f"""
    f.id, f.checkin_id, f.venue_id, v.name AS venue_name, f.rating, f.comment, f.created_at,
    f.first_reply_at, c.created_at AS checked_in_at, c.proof,
    extract(epoch FROM now() - f.created_at) AS age_s,
    (SELECT COALESCE(json_agg(json_build_object(
                'offer_id', u.offer_id, 'title', o.title,
                'status', CASE WHEN u.redeemed_at IS NOT NULL THEN 'redeemed'
                               WHEN u.expires_at <= now() THEN 'expired' ELSE 'active' END)
             ORDER BY o.title, u.offer_id), '[]')
     FROM unlocks u JOIN offers o ON o.id = u.offer_id WHERE u.checkin_id = f.checkin_id)
        AS unlocks,
    {_REPLIES_JSON}
"""

_LIST_WHERE = """
    f.merchant_id = :merchant_id
    AND (CAST(:venue_id AS uuid) IS NULL OR f.venue_id = :venue_id)
    AND (CAST(:rating AS smallint) IS NULL OR f.rating = :rating)
"""

_LIST_UNANSWERED = f"""
    SELECT 0 AS part, f.id AS fid, f.created_at AS fat FROM feedback f
    WHERE {_LIST_WHERE} AND f.first_reply_at IS NULL
    ORDER BY f.created_at, f.id LIMIT :window
"""
_LIST_ANSWERED = f"""
    SELECT 1 AS part, f.id AS fid, f.created_at AS fat FROM feedback f
    WHERE {_LIST_WHERE} AND f.first_reply_at IS NOT NULL
    ORDER BY f.created_at DESC, f.id LIMIT :window
"""


def _list_sql(status: str | None) -> Any:
    parts = {
        None: f"({_LIST_UNANSWERED}) UNION ALL ({_LIST_ANSWERED})",
        "unanswered": _LIST_UNANSWERED,
        "answered": _LIST_ANSWERED,
    }[status]
    return text(
        f"""
        WITH page AS (
            SELECT part, fid, fat FROM ({parts}) p
            ORDER BY part, CASE WHEN part = 0 THEN fat END, fat DESC, fid
            LIMIT :limit OFFSET :offset
        )
        SELECT {_LIST_COLUMNS}
        FROM page
        JOIN feedback f ON f.id = page.fid
        JOIN venues v ON v.id = f.venue_id
        JOIN checkins c ON c.id = f.checkin_id
        ORDER BY page.part, CASE WHEN page.part = 0 THEN page.fat END, page.fat DESC, page.fid
        """
    )


def merchant_feedback(
    session: Session,
    merchant_id: uuid.UUID,
    *,
    status: str | None = None,
    venue_id: uuid.UUID | None = None,
    rating: int | None = None,
    limit: int = LIST_LIMIT_DEFAULT,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The merchant's feedback: unanswered first (oldest first), then answered (newest first),
    by venue and rating if asked. Each says how long it has waited (unanswered) or how long the
    first reply took (answered)."""
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}")
    rows = execute(
        session,
        _list_sql(status),
        {
            "merchant_id": str(merchant_id),
            "venue_id": str(venue_id) if venue_id else None,
            "rating": rating,
            "limit": limit,
            "offset": offset,
            "window": limit + offset,
        },
    ).all()
    out = []
    for row in rows:
        answered = row.first_reply_at is not None
        out.append(
            {
                "id": row.id,
                "checkin_id": row.checkin_id,
                "venue_id": row.venue_id,
                "venue_name": row.venue_name,
                "rating": row.rating,
                "comment": row.comment,
                "created_at": row.created_at,
                "status": "answered" if answered else "unanswered",
                "first_reply_at": row.first_reply_at,
                "waiting_s": None if answered else round(float(row.age_s)),
                "first_response_s": round((row.first_reply_at - row.created_at).total_seconds())
                if answered
                else None,
                "visit": {
                    "checked_in_at": row.checked_in_at,
                    "proof": row.proof,
                    "unlocks": [{**u, "offer_id": uuid.UUID(u["offer_id"])} for u in row.unlocks],
                },
                "replies": _parse_replies(row.replies),
            }
        )
    return out


# ---- the responsiveness report -----------------------------------------------------------------

# The report reads sums, not feedback rows (migration 0015, docs/feedback.md "How the report
# stays fast"): triggers on `feedback` keep, per merchant, venue and block of hours, the
# counts by rating, the answered ones and their summed time to first reply
# (`feedback_rollup`), the answered ones per bucket of time to first reply
# (`feedback_rollup_responses`), the counts per offer unlocked on the visit
# (`feedback_rollup_offers`), and one narrow row per answered feedback (`feedback_responses`).
# A period [from, to) is read as whole hours from the blocks (at most two per level) and the
# partial hours at its ends from the feedback itself. Every figure stays exact:
#
# - a percentile (`percentile_cont`, as before) is located in a bucket by the bucket counts, and
#   its value read from `feedback_responses` inside that bucket (an index range scan);
# - answered within the target: the buckets wholly below the target's bucket, plus the rows of
#   the target's own bucket read one by one (`seconds <= target`), so any `target_hours` is exact;
# - pending: unanswered feedback younger than the target, from the partial index on unanswered
#   feedback (only the last `target_hours` are read); overdue is unanswered minus pending.

#: Hour blocks: level L sums 2^L hours (migration 0015's MAX_LEVEL).
ROLLUP_MAX_LEVEL = 19
HOUR = timedelta(hours=1)
#: The percentiles the report gives (and the benchmarks' median).
PERCENTILES = (Decimal("0.5"), Decimal("0.9"))


def _hour(at: datetime) -> int:
    """The hour `at` falls in, counted from 1970-01-01 00:00 UTC."""
    return (at - EPOCH) // HOUR


def _hour_start(hour: int) -> datetime:
    return EPOCH + hour * HOUR


@dataclass(frozen=True)
class Span:
    """A period [lo, hi) as rollup blocks (`levels`, `blocks`) covering [e1, e2), and the
    partial hours [lo, e1) and [e2, hi) read row by row."""

    lo: datetime
    hi: datetime
    e1: datetime
    e2: datetime
    levels: tuple[int, ...]
    blocks: tuple[int, ...]

    def params(self) -> dict[str, Any]:
        return {
            "lo": self.lo,
            "hi": self.hi,
            "e1": self.e1,
            "e2": self.e2,
            "levels": list(self.levels),
            "blocks": list(self.blocks),
        }


def span(lo: datetime, hi: datetime, now: datetime) -> Span:
    """[lo, hi) as the fewest aligned blocks of whole hours plus its partial hours."""
    first = -((EPOCH - lo) // HOUR)  # the first whole hour
    last = _hour(hi)  # the hour after the last whole one
    upto = _hour(now) + 1
    if last > upto:
        # No feedback is later than this hour, so the blocks may end at any hour from the next
        # one to `hi`: the roundest such hour takes the fewest blocks (all of it: one).
        for level in range(ROLLUP_MAX_LEVEL, -1, -1):
            rounded = -(-upto >> level) << level
            if rounded <= last:
                last = rounded
                break
    if first >= last:
        return Span(lo, hi, hi, hi, (), ())
    levels: list[int] = []
    blocks: list[int] = []
    unit = first
    while unit < last:
        level = 0
        while level < ROLLUP_MAX_LEVEL and unit % (2 << level) == 0 and unit + (2 << level) <= last:
            level += 1
        levels.append(level)
        blocks.append(unit >> level)
        unit += 1 << level
    return Span(lo, hi, _hour_start(first), _hour_start(last), tuple(levels), tuple(blocks))


_SCOPE = "(CAST(:venue_id AS uuid) IS NULL OR {t}.venue_id = :venue_id)"
_BLOCKS = """
    b AS (SELECT * FROM unnest(CAST(:levels AS smallint[]), CAST(:blocks AS int[]))
          AS b(level, block))
"""
_EDGES = (
    "((f.created_at >= :lo AND f.created_at < :e1) OR (f.created_at >= :e2 AND f.created_at < :hi))"
)


#: `venue_id` of the rollup rows that sum all the merchant's venues (migration 0015's WHOLE).
WHOLE = uuid.UUID(int=0)
# Rows of the scopes asked for: one venue (:only = it), the merchant's sums (:only = WHOLE), or
# both and every venue (:only null).
_ONLY = "(CAST(:only AS uuid) IS NULL OR {c} = :only)"
# A feedback row counts for its venue and for the merchant (the WHOLE scope).
_BOTH = "CROSS JOIN LATERAL (VALUES ({t}.venue_id), (CAST(:whole AS uuid))) AS s(scope)"


def _stats_sql(ranks: bool = True, target: bool = True) -> Any:
    """One statement (one snapshot: the bucket counts and the rows read inside buckets agree)
    giving, per scope (a venue's id, or WHOLE for the merchant): counts per rating, the values
    at the percentiles' ranks (if `ranks`), answered within the target and pending (if
    `target`)."""
    rank_part = (
        "UNION ALL SELECT 'rank', scope, k, NULL, NULL, NULL, seconds FROM vals" if ranks else ""
    )
    target_part = (
        "UNION ALL SELECT 'within', scope, NULL, n, NULL, NULL, NULL FROM within"
        " UNION ALL SELECT 'pending', scope, NULL, n, NULL, NULL, NULL FROM pending"
        if target
        else ""
    )
    return text(
        f"""
        WITH {_BLOCKS},
        raw AS (
            SELECT s.scope, f.rating,
                   date_part('epoch', f.first_reply_at - f.created_at) AS seconds,
                   (extract(epoch FROM f.first_reply_at - f.created_at) * 1000000)::bigint AS us
            FROM feedback f {_BOTH.format(t="f")}
            WHERE f.merchant_id = :merchant_id AND {_SCOPE.format(t="f")} AND {_EDGES}
              AND {_ONLY.format(c="s.scope")}
        ),
        counts AS (
            SELECT r.venue_id AS scope, r.rating, r.feedback, r.answered, r.response_us
            FROM feedback_rollup r JOIN b ON b.level = r.level AND b.block = r.block
            WHERE r.merchant_id = :merchant_id AND {_ONLY.format(c="r.venue_id")}
            UNION ALL
            SELECT scope, rating, 1, (seconds IS NOT NULL)::int, COALESCE(us, 0) FROM raw
        ),
        hist AS (
            SELECT h.venue_id AS scope, h.bucket, h.answered AS n
            FROM feedback_rollup_responses h JOIN b ON b.level = h.level AND b.block = h.block
            WHERE h.merchant_id = :merchant_id AND {_ONLY.format(c="h.venue_id")}
            UNION ALL
            SELECT scope, feedback_response_bucket(seconds), 1 FROM raw
            WHERE seconds IS NOT NULL
        ),
        hs AS (
            SELECT scope, bucket, sum(n) AS n FROM hist GROUP BY scope, bucket HAVING sum(n) > 0
        ),
        cum AS (
            SELECT hs.*, sum(n) OVER (PARTITION BY scope ORDER BY bucket) - n AS before FROM hs
        ),
        tot AS (SELECT scope, sum(n) AS total FROM hs GROUP BY scope),
        -- the 0-based ranks percentile_cont interpolates between, each found in its bucket
        want AS (
            SELECT DISTINCT t.scope, k
            FROM tot t, unnest(ARRAY[
                floor(0.5 * (t.total - 1)), ceil(0.5 * (t.total - 1)),
                floor(0.9 * (t.total - 1)), ceil(0.9 * (t.total - 1))]) AS k
        ),
        ranked AS (
            SELECT c.scope, c.bucket, w.k, (w.k - c.before)::bigint AS off,
                   -- constant along a run of consecutive ranks in one bucket
                   w.k - row_number() OVER (PARTITION BY c.scope, c.bucket ORDER BY w.k) AS run
            FROM want w JOIN cum c
              ON c.scope = w.scope AND w.k >= c.before AND w.k < c.before + c.n
        ),
        -- along a run, every other rank reads the next one with it (LIMIT 2): ranks 2, 3, 4 in
        -- one bucket are read as 2 (with 3) and 4
        ranks AS (
            SELECT * FROM (
                SELECT r.*, row_number() OVER (PARTITION BY scope, bucket, run ORDER BY k) AS i
                FROM ranked r
            ) x WHERE i % 2 = 1
        ),
        vals AS (
            SELECT r.scope, r.k,
                   CASE WHEN r.scope = CAST(:whole AS uuid) THEN ARRAY(
                       SELECT x.seconds FROM feedback_responses x
                       WHERE x.merchant_id = :merchant_id AND x.bucket = r.bucket
                         AND x.created_at >= :lo AND x.created_at < :hi
                       ORDER BY x.seconds OFFSET r.off LIMIT 2)
                   ELSE ARRAY(
                       SELECT x.seconds FROM feedback_responses x
                       WHERE x.venue_id = r.scope
                         AND x.bucket = r.bucket AND x.created_at >= :lo AND x.created_at < :hi
                       ORDER BY x.seconds OFFSET r.off LIMIT 2)
                   END AS seconds
            FROM ranks r
        ),
        within AS (
            SELECT scope, sum(n) AS n FROM (
                SELECT scope, n FROM hist
                WHERE bucket < feedback_response_bucket(CAST(:target_s AS float8))
                UNION ALL
                SELECT s.scope, 1 FROM feedback_responses x {_BOTH.format(t="x")}
                WHERE x.merchant_id = :merchant_id AND {_SCOPE.format(t="x")}
                  AND x.bucket = feedback_response_bucket(CAST(:target_s AS float8))
                  AND x.seconds <= :target_s AND x.created_at >= :lo AND x.created_at < :hi
                  AND {_ONLY.format(c="s.scope")}
            ) w GROUP BY scope
        ),
        pending AS (
            SELECT s.scope, count(*) AS n FROM feedback f {_BOTH.format(t="f")}
            WHERE f.merchant_id = :merchant_id AND f.first_reply_at IS NULL
              AND {_SCOPE.format(t="f")} AND f.created_at >= :lo AND f.created_at < :hi
              -- the index's range, then the exact test the report always made
              AND f.created_at >= now() - make_interval(secs => CAST(:target_s AS float8) + 1)
              AND date_part('epoch', now() - f.created_at) < :target_s
              AND {_ONLY.format(c="s.scope")}
            GROUP BY s.scope
        ),
        cnt AS (
            SELECT scope, rating, sum(feedback) AS feedback, sum(answered) AS answered,
                   sum(response_us) AS us
            FROM counts GROUP BY scope, rating
        )
        SELECT 'count' AS part, scope, rating::numeric AS k, feedback::numeric AS a,
               answered::numeric AS b, us::numeric AS c, NULL::float8[] AS seconds FROM cnt
        {rank_part}
        {target_part}
        """
    )


_STATS = {
    (ranks, target): _stats_sql(ranks, target)
    for ranks in (True, False)
    for target in (True, False)
}


@dataclass
class Stats:
    """One scope's sums over a period (the merchant's, or one venue's)."""

    stars: dict[int, int] = field(default_factory=dict)
    answered: int = 0
    response_us: int = 0
    within_target: int = 0
    pending: int = 0
    ranked: dict[int, float] = field(default_factory=dict)

    @property
    def feedback(self) -> int:
        return sum(self.stars.values())

    def percentile(self, p: Decimal) -> float | None:
        """`percentile_cont(p)` of the times to first reply, from the values at its ranks."""
        if not self.answered:
            return None
        at = p * (self.answered - 1)
        low, high = math.floor(at), math.ceil(at)
        a, b = self.ranked[low], self.ranked[high]
        return a + float(at - low) * (b - a)

    @property
    def mean_s(self) -> float | None:
        return self.response_us / self.answered / 1e6 if self.answered else None

    @property
    def rating_mean(self) -> float | None:
        n = self.feedback
        return sum(star * c for star, c in self.stars.items()) / n if n else None


def _now(session: Session) -> datetime:
    now: datetime = session.execute(text("SELECT now()")).scalar_one()
    return now


def stats(
    session: Session,
    merchant_id: uuid.UUID,
    lo: datetime,
    hi: datetime,
    now: datetime,
    *,
    target_s: float = DEFAULT_TARGET_HOURS * 3600,
    venue_id: uuid.UUID | None = None,
    by_venue: bool = True,
    ranks: bool = True,
    target: bool = True,
) -> dict[uuid.UUID | None, Stats]:
    """The feedback given in [lo, hi), as of now, summed from the rollup: the merchant's under
    None, each venue's (with feedback) under its id when `by_venue`."""
    only = venue_id if venue_id else (None if by_venue else WHOLE)
    rows = execute(
        session,
        _STATS[ranks, target],
        {
            "merchant_id": str(merchant_id),
            "venue_id": str(venue_id) if venue_id else None,
            "only": str(only) if only else None,
            "whole": str(WHOLE),
            "target_s": float(target_s),
            **span(lo, hi, now).params(),
        },
    ).all()
    out: dict[uuid.UUID | None, Stats] = {}
    for row in rows:
        scope = out.setdefault(None if row.scope == WHOLE else row.scope, Stats())
        if row.part == "count":
            scope.stars[int(row.k)] = int(row.a)
            scope.answered += int(row.b)
            scope.response_us += int(row.c)
        elif row.part == "rank":
            k = int(row.k)
            scope.ranked[k] = float(row.seconds[0])
            if len(row.seconds) > 1:  # the next rank, in the same bucket
                scope.ranked.setdefault(k + 1, float(row.seconds[1]))
        elif row.part == "within":
            scope.within_target = int(row.a or 0)
        else:
            scope.pending = int(row.a or 0)
    if venue_id is not None and venue_id in out:  # one venue: it is the whole
        out[None] = out[venue_id]
        if not by_venue:
            del out[venue_id]
    return out


def _by_offer_sql() -> Any:
    return text(
        f"""
        WITH {_BLOCKS},
        x AS (
            SELECT r.offer_id, r.rating, r.feedback AS n
            FROM feedback_rollup_offers r JOIN b ON b.level = r.level AND b.block = r.block
            WHERE r.merchant_id = :merchant_id AND {_SCOPE.format(t="r")}
            UNION ALL
            SELECT u.offer_id, f.rating, 1
            FROM feedback f JOIN unlocks u ON u.checkin_id = f.checkin_id
            WHERE f.merchant_id = :merchant_id AND {_SCOPE.format(t="f")} AND {_EDGES}
        )
        SELECT x.offer_id, o.title, x.rating, sum(x.n) AS n
        FROM x JOIN offers o ON o.id = x.offer_id
        GROUP BY o.title, x.offer_id, x.rating HAVING sum(x.n) > 0
        ORDER BY o.title, x.offer_id, x.rating
        """
    )


_BY_OFFER = _by_offer_sql()


def ratings_by_offer(
    session: Session,
    merchant_id: uuid.UUID,
    lo: datetime,
    hi: datetime,
    now: datetime,
    venue_id: uuid.UUID | None = None,
) -> dict[uuid.UUID, dict[str, Any]]:
    """Ratings of the feedback given in [lo, hi) per offer unlocked on the visit it is about
    (ordered by title): `title`, `feedback`, `stars` {star: count}, `rating_mean`."""
    rows = execute(
        session,
        _BY_OFFER,
        {
            "merchant_id": str(merchant_id),
            "venue_id": str(venue_id) if venue_id else None,
            **span(lo, hi, now).params(),
        },
    ).all()
    out: dict[uuid.UUID, dict[str, Any]] = {}
    for row in rows:
        offer = out.setdefault(row.offer_id, {"title": row.title, "stars": {}})
        offer["stars"][int(row.rating)] = int(row.n)
    for offer in out.values():
        n = sum(offer["stars"].values())
        offer["feedback"] = n
        offer["rating_mean"] = sum(s * c for s, c in offer["stars"].items()) / n
    return out


_VENUES = text(
    """
    SELECT id, name FROM venues
    WHERE merchant_id = :merchant_id
      AND (deleted_at IS NULL OR id = ANY (CAST(:with_feedback AS uuid[])))
      AND (CAST(:venue_id AS uuid) IS NULL OR id = :venue_id)
    ORDER BY name, id
    """
)


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _count_by_star(stars: dict[int, int]) -> dict[str, int]:
    return {str(star): stars.get(star, 0) for star in STARS}


def _figures(s: Stats) -> dict[str, Any]:
    feedback, answered = s.feedback, s.answered
    pending = s.pending
    overdue = feedback - answered - pending
    within = s.within_target
    return {
        "feedback": feedback,
        "answered": answered,
        "unanswered": feedback - answered,
        "pending": pending,
        "overdue": overdue,
        "answered_within_target": within,
        "response_rate": _ratio(answered, answered + overdue),
        "within_target_rate": _ratio(within, answered + overdue),
        "first_response_s": {
            "median": _seconds(s.percentile(PERCENTILES[0])),
            "p90": _seconds(s.percentile(PERCENTILES[1])),
            "mean": _seconds(s.mean_s),
        },
        "rating": {
            "mean": None if s.rating_mean is None else round(s.rating_mean, 2),
            "count_by_star": _count_by_star(s.stars),
        },
    }


def responsiveness(
    session: Session,
    merchant_id: uuid.UUID,
    start: datetime | None = None,
    end: datetime | None = None,
    target_hours: float = DEFAULT_TARGET_HOURS,
    venue_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """How well and how fast the merchant answers its feedback given in [start, end), as of now,
    for the merchant and per venue (every live venue, and closed ones that had feedback), the
    ratings per offer unlocked on the visits, and which public benchmarks it meets. Without
    `start` the period starts with the merchant's first feedback; without `end` it runs to now."""
    lo, hi = start or EPOCH, end or OPEN_END
    if hi <= lo:
        raise ValidationError("to must be after from", errors={"to": ["must be after from"]})
    if not 0 < target_hours <= MAX_TARGET_HOURS:
        raise ValidationError(
            f"target_hours must be above 0 and at most {MAX_TARGET_HOURS:g}",
            errors={"target_hours": [f"must be above 0 and at most {MAX_TARGET_HOURS:g}"]},
        )
    now = _now(session)
    scopes = stats(
        session, merchant_id, lo, hi, now, target_s=target_hours * 3600, venue_id=venue_id
    )
    whole = scopes.get(None, Stats())
    venues = execute(
        session,
        _VENUES,
        {
            "merchant_id": str(merchant_id),
            "venue_id": str(venue_id) if venue_id else None,
            # closed venues are listed when they had feedback in the period (the rollup keeps
            # rows whose counts went back to zero)
            "with_feedback": [str(v) for v, s in scopes.items() if v is not None and s.feedback],
        },
    ).all()
    by_offer = ratings_by_offer(session, merchant_id, lo, hi, now, venue_id)
    # The public benchmarks, over windows ending now whatever the report's period.
    fb = stats(
        session,
        merchant_id,
        now - timedelta(days=FACEBOOK_WINDOW_DAYS),
        OPEN_END,
        now,
        venue_id=venue_id,
        by_venue=False,
        ranks=False,
        target=False,
    ).get(None, Stats())
    yelp = stats(
        session,
        merchant_id,
        now - timedelta(days=YELP_WINDOW_DAYS),
        OPEN_END,
        now,
        venue_id=venue_id,
        by_venue=False,
        target=False,
    ).get(None, Stats())
    fb_rate = _ratio(fb.answered, fb.feedback)
    fb_mean = _seconds(fb.mean_s)
    return {
        "from": lo,
        "to": end,
        "target_hours": target_hours,
        **_figures(whole),
        "by_venue": [
            {"venue_id": v.id, "venue_name": v.name, **_figures(scopes.get(v.id) or Stats())}
            for v in venues
        ],
        "by_offer": [
            {
                "offer_id": offer_id,
                "title": o["title"],
                "feedback": o["feedback"],
                "rating": {
                    "mean": round(o["rating_mean"], 2),
                    "count_by_star": _count_by_star(o["stars"]),
                },
            }
            for offer_id, o in by_offer.items()
        ],
        "benchmarks": {
            "facebook_very_responsive": {
                "window_days": FACEBOOK_WINDOW_DAYS,
                "feedback": fb.feedback,
                "answered": fb.answered,
                "response_rate": fb_rate,
                "mean_first_response_s": fb_mean,
                "min_response_rate": FACEBOOK_MIN_RESPONSE_RATE,
                "max_mean_first_response_s": FACEBOOK_MAX_MEAN_RESPONSE_S,
                "meets": fb_rate is not None
                and fb_mean is not None
                and fb_rate >= FACEBOOK_MIN_RESPONSE_RATE
                and fb_mean <= FACEBOOK_MAX_MEAN_RESPONSE_S,
            },
            "yelp_response_time": {
                "window_days": YELP_WINDOW_DAYS,
                "answered": yelp.answered,
                "median_first_response_s": _seconds(yelp.percentile(PERCENTILES[0])),
            },
        },
    }


#: The report's CSV: the merchant's row (`scope` `merchant`), then one per venue.
CSV_COLUMNS = (
    "scope",
    "venue_id",
    "venue_name",
    "feedback",
    "answered",
    "unanswered",
    "pending",
    "overdue",
    "answered_within_target",
    "response_rate",
    "within_target_rate",
    "first_response_median_s",
    "first_response_p90_s",
    "rating_mean",
    *(f"rating_{star}" for star in STARS),
)


def csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report flattened into `CSV_COLUMNS` rows."""

    def flat(scope: str, figures: dict[str, Any]) -> dict[str, Any]:
        row = {k: v for k, v in figures.items() if not isinstance(v, dict | list)}
        row["scope"] = scope
        row["first_response_median_s"] = figures["first_response_s"]["median"]
        row["first_response_p90_s"] = figures["first_response_s"]["p90"]
        row["rating_mean"] = figures["rating"]["mean"]
        for star, n in figures["rating"]["count_by_star"].items():
            row[f"rating_{star}"] = n
        return row

    return [flat("merchant", report)] + [flat("venue", v) for v in report["by_venue"]]
