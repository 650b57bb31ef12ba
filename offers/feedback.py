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

import uuid
from datetime import UTC, datetime
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

# Per venue and for the merchant (GROUPING SETS), over the feedback given in [lo, hi), as of
# now: answered means a reply exists now; unanswered feedback younger than the target is
# `pending`, older `overdue`. Times to first reply are over answered feedback only.
_STAR_COLUMNS = ",\n".join(
    f"count(*) FILTER (WHERE f.rating = {star}) AS star_{star}" for star in STARS
)
# Each row's seconds to first reply (`rs`, null when unanswered) and age are computed once, as
# doubles (`date_part`; `extract` answers numeric, slower to aggregate). The report reads every
# feedback of the period: on 1M rows it takes seconds (docs/analytics.md, Speed); a rollup
# would be the next step.
_REPORT = text(
    f"""
    SELECT f.venue_id, GROUPING(f.venue_id) AS whole,
           count(*) AS feedback,
           count(f.rs) AS answered,
           count(*) FILTER (WHERE f.rs IS NULL AND f.age < :target_s) AS pending,
           count(*) FILTER (WHERE f.rs IS NULL AND f.age >= :target_s) AS overdue,
           count(*) FILTER (WHERE f.rs <= :target_s) AS within_target,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY f.rs) AS median_s,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY f.rs) AS p90_s,
           avg(f.rs) AS mean_s,
           avg(f.rating) AS rating_mean,
           {_STAR_COLUMNS}
    FROM (
        SELECT venue_id, rating,
               date_part('epoch', first_reply_at - created_at) AS rs,
               date_part('epoch', now() - created_at) AS age
        FROM feedback
        WHERE merchant_id = :merchant_id AND created_at >= :lo AND created_at < :hi
          AND (CAST(:venue_id AS uuid) IS NULL OR venue_id = :venue_id)
        -- a fence: without it the planner reads the rows in venue order through the venue
        -- index, a random heap read per row (measured on 1M rows: 1.5 to 2 times slower than
        -- a sequential scan and a sort)
        OFFSET 0
    ) f
    GROUP BY GROUPING SETS ((f.venue_id), ())
    """
)

_VENUES = text(
    """
    SELECT id, name FROM venues
    WHERE merchant_id = :merchant_id
      AND (deleted_at IS NULL OR id = ANY (CAST(:with_feedback AS uuid[])))
      AND (CAST(:venue_id AS uuid) IS NULL OR id = :venue_id)
    ORDER BY name, id
    """
)

# Ratings per offer unlocked on the visit the feedback is about.
_BY_OFFER = text(
    f"""
    SELECT u.offer_id, max(o.title) AS title, count(*) AS feedback, avg(f.rating) AS rating_mean,
           {_STAR_COLUMNS}
    FROM feedback f
    JOIN unlocks u ON u.checkin_id = f.checkin_id
    JOIN offers o ON o.id = u.offer_id
    WHERE f.merchant_id = :merchant_id AND f.created_at >= :lo AND f.created_at < :hi
      AND (CAST(:venue_id AS uuid) IS NULL OR f.venue_id = :venue_id)
    GROUP BY u.offer_id
    ORDER BY max(o.title), u.offer_id
    """
)

# The public benchmarks, over windows ending now whatever the report's period.
_BENCHMARKS = text(
    """
    SELECT count(*) FILTER (WHERE f.created_at > now() - make_interval(days => :fb_days))
               AS fb_feedback,
           count(f.first_reply_at) FILTER (
               WHERE f.created_at > now() - make_interval(days => :fb_days)) AS fb_answered,
           avg(date_part('epoch', f.first_reply_at - f.created_at)) FILTER (
               WHERE f.created_at > now() - make_interval(days => :fb_days)) AS fb_mean_s,
           count(f.first_reply_at) AS yelp_answered,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY date_part('epoch', f.first_reply_at - f.created_at)) AS yelp_median_s
    FROM feedback f
    WHERE f.merchant_id = :merchant_id
      AND f.created_at > now() - make_interval(days => :yelp_days)
      AND (CAST(:venue_id AS uuid) IS NULL OR f.venue_id = :venue_id)
    """
)


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _stars(row: Any) -> dict[str, int]:
    return {str(star): int(getattr(row, f"star_{star}")) for star in STARS}


def _figures(row: Any) -> dict[str, Any]:
    feedback, answered = int(row.feedback), int(row.answered)
    overdue, within = int(row.overdue), int(row.within_target)
    return {
        "feedback": feedback,
        "answered": answered,
        "unanswered": feedback - answered,
        "pending": int(row.pending),
        "overdue": overdue,
        "answered_within_target": within,
        "response_rate": _ratio(answered, answered + overdue),
        "within_target_rate": _ratio(within, answered + overdue),
        "first_response_s": {
            "median": _seconds(row.median_s),
            "p90": _seconds(row.p90_s),
            "mean": _seconds(row.mean_s),
        },
        "rating": {
            "mean": None if row.rating_mean is None else round(float(row.rating_mean), 2),
            "count_by_star": _stars(row),
        },
    }


_EMPTY = {
    "feedback": 0,
    "answered": 0,
    "pending": 0,
    "overdue": 0,
    "within_target": 0,
    "median_s": None,
    "p90_s": None,
    "mean_s": None,
    "rating_mean": None,
    **{f"star_{star}": 0 for star in STARS},
}


class _Empty:
    def __init__(self) -> None:
        self.__dict__.update(_EMPTY)


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
    params = {
        "merchant_id": str(merchant_id),
        "lo": lo,
        "hi": hi,
        "target_s": target_hours * 3600,
        "venue_id": str(venue_id) if venue_id else None,
    }
    rows = execute(session, _REPORT, params).all()
    whole: Any = next((r for r in rows if r.whole), _Empty())
    per_venue = {r.venue_id: r for r in rows if not r.whole}
    venues = execute(
        session,
        _VENUES,
        {
            "merchant_id": params["merchant_id"],
            "venue_id": params["venue_id"],
            "with_feedback": [str(v) for v in per_venue],
        },
    ).all()
    by_offer = execute(session, _BY_OFFER, params).all()
    bench = execute(
        session,
        _BENCHMARKS,
        {
            "merchant_id": params["merchant_id"],
            "venue_id": params["venue_id"],
            "fb_days": FACEBOOK_WINDOW_DAYS,
            "yelp_days": YELP_WINDOW_DAYS,
        },
    ).one()
    fb_feedback, fb_answered = int(bench.fb_feedback), int(bench.fb_answered)
    fb_rate = _ratio(fb_answered, fb_feedback)
    fb_mean = _seconds(bench.fb_mean_s)
    return {
        "from": lo,
        "to": end,
        "target_hours": target_hours,
        **_figures(whole),
        "by_venue": [
            {"venue_id": v.id, "venue_name": v.name, **_figures(per_venue.get(v.id) or _Empty())}
            for v in venues
        ],
        "by_offer": [
            {
                "offer_id": o.offer_id,
                "title": o.title,
                "feedback": int(o.feedback),
                "rating": {
                    "mean": round(float(o.rating_mean), 2),
                    "count_by_star": _stars(o),
                },
            }
            for o in by_offer
        ],
        "benchmarks": {
            "facebook_very_responsive": {
                "window_days": FACEBOOK_WINDOW_DAYS,
                "feedback": fb_feedback,
                "answered": fb_answered,
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
                "answered": int(bench.yelp_answered),
                "median_first_response_s": _seconds(bench.yelp_median_s),
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
