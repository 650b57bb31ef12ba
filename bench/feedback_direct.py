"""The responsiveness report as it was computed before the rollup (migration 0015): straight
from every feedback row of the period. It stays as the oracle: the property test
(tests/integration/test_feedback_rollup.py) compares the rollup's report with it, and
bench/analytics.py times it beside the endpoint on the same data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.errors import ValidationError
from core.uow import execute
from offers.feedback import (
    _VENUES,
    DEFAULT_TARGET_HOURS,
    EPOCH,
    FACEBOOK_MAX_MEAN_RESPONSE_S,
    FACEBOOK_MIN_RESPONSE_RATE,
    FACEBOOK_WINDOW_DAYS,
    MAX_TARGET_HOURS,
    OPEN_END,
    STARS,
    YELP_WINDOW_DAYS,
)

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


def responsiveness_direct(
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


# Offer health's feedback figures as they were read before 0015: a join per offer.
_OFFER_RATINGS = text(
    """
    SELECT o.id, fb.feedback, fb.rating_mean
    FROM offers o
    CROSS JOIN LATERAL (
        SELECT count(*) AS feedback, avg(f.rating) AS rating_mean
        FROM unlocks u JOIN feedback f ON f.checkin_id = u.checkin_id
        WHERE u.offer_id = o.id
          AND u.created_at > now() - make_interval(days => :days + :feedback_days)
          AND f.created_at > now() - make_interval(days => :days)
    ) fb
    WHERE o.merchant_id = :m
    """
)


def offer_ratings_direct(
    session: Session, merchant_id: uuid.UUID, days: int = 7, feedback_days: int = 7
) -> dict[uuid.UUID, tuple[int, float | None]]:
    """Per offer: feedback on visits that unlocked it in the last `days`, and its mean rating."""
    rows = session.execute(
        _OFFER_RATINGS, {"m": str(merchant_id), "days": days, "feedback_days": feedback_days}
    ).all()
    return {
        r.id: (int(r.feedback), None if r.rating_mean is None else float(r.rating_mean))
        for r in rows
    }
