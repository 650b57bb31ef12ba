"""Measurement: every figure is computed in SQL from the recorded events (impressions, check-ins
with verdicts, unlocks, holdouts, redemption attempts, redemptions); no counter is kept by hand.

All queries are scoped to one merchant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.errors import NotFoundError, ValidationError
from core.privacy import device_key
from geo import presence
from geo import proof as proofs
from offers import abuse, feedback, redemptions
from offers.stats import newcombe_difference

GROUP_BY = ("day", "hour", "venue", "offer")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OPEN_END = datetime(9999, 12, 31, tzinfo=UTC)


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _offer_created_at(session: Session, merchant_id: uuid.UUID, offer_id: uuid.UUID) -> datetime:
    created_at: datetime | None = session.scalar(
        text("SELECT created_at FROM offers WHERE id = :o AND merchant_id = :m"),
        {"o": str(offer_id), "m": str(merchant_id)},
    )
    if created_at is None:
        raise NotFoundError("no such offer")
    return created_at


def _period(
    start: datetime | None, end: datetime | None, default_start: datetime
) -> tuple[datetime, datetime]:
    """[from, to); without `to` the period is open (everything up to now)."""
    lo, hi = start or default_start, end or OPEN_END
    if hi <= lo:
        raise ValidationError("to must be after from", errors={"to": ["must be after from"]})
    return lo, hi


# An impression counts as followed by a check-in when one of the funnel's check-ins (at the
# offer's venues while it was active, in the period; verified or not) is the same user's within
# this long after being shown the offer.
ATTRIBUTION_HOURS = 24

# Check-ins at the offer's venues while it was active: the status history gives the intervals.
# Each rate's numerator is a subset of its denominator (docs/analytics.md, Funnel).
_FUNNEL = text(
    """
    WITH hist AS (
        SELECT status, changed_at AS since,
               lead(changed_at, 1, 'infinity') OVER (ORDER BY seq) AS until
        FROM offer_status_changes WHERE offer_id = :o
    ),
    active AS (SELECT since, until FROM hist WHERE status = 'active'),
    venues AS (SELECT venue_id FROM offer_venues WHERE offer_id = :o),
    c AS (
        SELECT c.id, c.user_id, c.status, c.created_at, c.proof
        FROM checkins c
        -- an array, so the planner sees a few venues and reads them from their index
        WHERE c.venue_id = ANY (ARRAY(SELECT venue_id FROM venues))
          AND c.created_at >= :lo AND c.created_at < :hi
          AND EXISTS (SELECT 1 FROM active a WHERE c.created_at >= a.since
                                               AND c.created_at < a.until)
    ),
    imp AS (
        SELECT i.user_id, i.created_at FROM impressions i
        WHERE i.offer_id = :o AND i.created_at >= :lo AND i.created_at < :hi
    ),
    -- the offer's unlocks, read once: those of the period, and the check-ins behind them
    ou AS (
        SELECT u.checkin_id, u.created_at, u.redeemed_at FROM unlocks u WHERE u.offer_id = :o
    ),
    ul AS (
        SELECT count(*) AS n, count(*) FILTER (WHERE ou.redeemed_at IS NOT NULL) AS redeemed
        FROM ou WHERE ou.created_at >= :lo AND ou.created_at < :hi
    ),
    visitors AS (
        SELECT DISTINCT c.user_id FROM c WHERE c.status = 'verified'
    ),
    -- a visitor is new when their first verified check-in at the venues is in the period, i.e.
    -- when none came before it: a probe of the check-ins before `lo` only, which finds nothing
    -- at once for most (rather than each visitor's earliest check-in, read from the table)
    firsts AS (
        SELECT v.user_id,
               EXISTS (SELECT 1 FROM checkins x
                       WHERE x.user_id = v.user_id AND x.status = 'verified'
                         AND x.venue_id IN (SELECT venue_id FROM venues)
                         AND x.created_at < :lo) AS seen_before
        FROM visitors v
    ),
    red AS (
        SELECT extract(epoch FROM r.redeemed_at - u.created_at) AS seconds, u.checkin_id
        FROM redemptions r JOIN unlocks u ON u.id = r.unlock_id
        WHERE r.offer_id = :o AND r.redeemed_at >= :lo AND r.redeemed_at < :hi
    ),
    -- what each kind of proof carried: verified check-ins, unlocks and redemptions
    proofs AS (
        SELECT proof, 'verified_checkins' AS step FROM c WHERE c.status = 'verified'
        UNION ALL
        SELECT k.proof, 'unlocks' FROM unlocks u JOIN checkins k ON k.id = u.checkin_id
        WHERE u.offer_id = :o AND u.created_at >= :lo AND u.created_at < :hi
        UNION ALL
        SELECT k.proof, 'redemptions' FROM red JOIN checkins k ON k.id = red.checkin_id
    )
    SELECT
        (SELECT count(*) FROM imp) AS impressions,
        -- semi-joins on the user (hashed), not a probe per impression
        (SELECT count(*) FROM imp WHERE EXISTS (
            SELECT 1 FROM c
            WHERE c.user_id = imp.user_id AND c.created_at >= imp.created_at
              AND c.created_at < imp.created_at + make_interval(hours => :attribution_hours)))
            AS impressions_with_checkin,
        (SELECT count(*) FROM c) AS checkins,
        (SELECT count(*) FROM c WHERE c.status = 'verified') AS verified_checkins,
        (SELECT count(*) FROM c WHERE c.status = 'verified'
           AND c.id IN (SELECT ou.checkin_id FROM ou)) AS verified_with_unlock,
        (SELECT n FROM ul) AS unlocks,
        (SELECT redeemed FROM ul) AS unlocks_redeemed,
        (SELECT count(*) FROM holdouts h
         WHERE h.offer_id = :o AND h.created_at >= :lo AND h.created_at < :hi) AS held_out,
        (SELECT count(*) FROM red) AS redemptions,
        (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FROM red) AS median_s,
        (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) FROM red) AS p90_s,
        (SELECT count(*) FROM firsts WHERE NOT seen_before) AS new_visitors,
        (SELECT count(*) FROM firsts WHERE seen_before) AS returning_visitors,
        (SELECT COALESCE(json_object_agg(proof || '.' || step, n), '{}') FROM (
            SELECT proof, step, count(*) AS n FROM proofs GROUP BY proof, step) p) AS by_proof
    """
)


def by_proof(counts: dict[str, Any], steps: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """`{"proof.step": n}` from SQL as `{proof: {step: n}}`, every proof and step present."""
    return {
        proof: {step: int(counts.get(f"{proof}.{step}", 0)) for step in steps}
        for proof in proofs.PROOFS
    }


def funnel(
    session: Session,
    merchant_id: uuid.UUID,
    offer_id: uuid.UUID,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """The offer's funnel over a period (default: its whole life), with the rate of each step:
    the share of the step before that went on to it."""
    lo, hi = _period(start, end, _offer_created_at(session, merchant_id, offer_id))
    row = session.execute(
        _FUNNEL, {"o": str(offer_id), "lo": lo, "hi": hi, "attribution_hours": ATTRIBUTION_HOURS}
    ).one()
    counts = {
        name: int(getattr(row, name))
        for name in (
            "impressions",
            "impressions_with_checkin",
            "checkins",
            "verified_checkins",
            "verified_with_unlock",
            "unlocks",
            "unlocks_redeemed",
            "held_out",
            "redemptions",
        )
    }
    return {
        "offer_id": offer_id,
        "from": lo,
        "to": end,
        **counts,
        "attribution_hours": ATTRIBUTION_HOURS,
        "rates": {
            "checkin_per_impression": _rate(
                counts["impressions_with_checkin"], counts["impressions"]
            ),
            "verified_per_checkin": _rate(counts["verified_checkins"], counts["checkins"]),
            "unlock_per_verified": _rate(
                counts["verified_with_unlock"], counts["verified_checkins"]
            ),
            "redemption_per_unlock": _rate(counts["unlocks_redeemed"], counts["unlocks"]),
        },
        "time_to_redeem_s": {
            "median": None if row.median_s is None else round(float(row.median_s), 1),
            "p90": None if row.p90_s is None else round(float(row.p90_s), 1),
        },
        "visitors": {"new": int(row.new_visitors), "returning": int(row.returning_visitors)},
        "by_proof": by_proof(row.by_proof or {}, ("verified_checkins", "unlocks", "redemptions")),
    }


_GROUP_SQL = {
    "day": ("to_char(r.redeemed_at AT TIME ZONE v.timezone, 'YYYY-MM-DD')", "day"),
    "hour": ("to_char(r.redeemed_at AT TIME ZONE v.timezone, 'YYYY-MM-DD\"T\"HH24:00')", "hour"),
    "venue": ("v.id::text", "venue_id"),
    "offer": ("o.id::text", "offer_id"),
}


def redemptions_by(
    session: Session,
    merchant_id: uuid.UUID,
    group_by: str,
    start: datetime | None = None,
    end: datetime | None = None,
    offer_id: uuid.UUID | None = None,
    venue_id: uuid.UUID | None = None,
) -> list[dict[str, Any]]:
    """Redemptions counted by local day or hour of the venue where the code was earned (or was
    redeemed, when the till said), by venue, or by offer."""
    if group_by not in _GROUP_SQL:
        raise ValidationError(f"group_by must be one of {', '.join(GROUP_BY)}")
    key, name = _GROUP_SQL[group_by]
    label = {"venue": "max(v.name)", "offer": "max(o.title)"}.get(group_by, "NULL")
    sql = text(
        f"""
        SELECT {key} AS key, {label} AS label, count(*) AS redemptions
        FROM redemptions r
        -- where it was redeemed, or where its code was earned (migration 0023)
        JOIN venues v ON v.id = COALESCE(r.venue_id, r.unlock_venue_id)
        JOIN offers o ON o.id = r.offer_id
        WHERE r.merchant_id = :m
          AND (CAST(:lo AS timestamptz) IS NULL OR r.redeemed_at >= :lo)
          AND (CAST(:hi AS timestamptz) IS NULL OR r.redeemed_at < :hi)
          AND (CAST(:offer AS uuid) IS NULL OR r.offer_id = :offer)
          AND (CAST(:venue AS uuid) IS NULL OR v.id = :venue)
        GROUP BY 1
        ORDER BY 1
        """
    )
    rows = session.execute(
        sql,
        {
            "m": str(merchant_id),
            "lo": start,
            "hi": end,
            "offer": str(offer_id) if offer_id else None,
            "venue": str(venue_id) if venue_id else None,
        },
    ).all()
    out = []
    for row in rows:
        item: dict[str, Any] = {name: row.key}
        if group_by == "venue":
            item["venue_name"] = row.label
        elif group_by == "offer":
            item["offer_title"] = row.label
        item["redemptions"] = int(row.redemptions)
        out.append(item)
    return out


# Treatment and control are fixed at each user's first eligible visit: the first check-in at
# which the offer unlocked for them or held them out. The outcome is another verified check-in at
# any of the offer's venues within the window after it. Every assigned user is counted in
# `users`; those whose window has not ended yet are also `pending`, and the rates, the lift and
# its interval use only the others, so a young offer does not look like it fails to bring
# people back.
_LIFT = text(
    """
    WITH venues AS (SELECT venue_id FROM offer_venues WHERE offer_id = :o),
    eligible AS (
        SELECT u.user_id, c.created_at, false AS held_out
        FROM unlocks u JOIN checkins c ON c.id = u.checkin_id
        WHERE u.offer_id = :o
        UNION ALL
        SELECT h.user_id, c.created_at, true
        FROM holdouts h JOIN checkins c ON c.id = h.checkin_id
        WHERE h.offer_id = :o
    ),
    firsts AS (
        SELECT DISTINCT ON (user_id) user_id, created_at AS t0, held_out
        FROM eligible ORDER BY user_id, created_at
    ),
    outcomes AS (
        SELECT f.held_out,
               f.t0 + make_interval(days => :window) <= now() AS mature,
               EXISTS (
                   SELECT 1 FROM checkins c
                   WHERE c.user_id = f.user_id AND c.status = 'verified'
                     AND c.venue_id IN (SELECT venue_id FROM venues)
                     AND c.created_at > f.t0
                     AND c.created_at <= f.t0 + make_interval(days => :window)
               ) AS returned
        FROM firsts f
    )
    SELECT held_out,
           count(*) AS users,
           count(*) FILTER (WHERE NOT mature) AS pending,
           count(*) FILTER (WHERE mature AND returned) AS returned
    FROM outcomes GROUP BY held_out
    """
)


@dataclass(frozen=True)
class Group:
    """One arm of the experiment: every user assigned to it (`users`), of whom `pending` are
    still inside their window and `measured` are not; `returned` counts among the measured."""

    users: int
    pending: int
    returned: int

    @property
    def measured(self) -> int:
        return self.users - self.pending

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "pending": self.pending,
            "measured": self.measured,
            "returned": self.returned,
            "return_rate": _rate(self.returned, self.measured),
        }


def lift(
    session: Session, merchant_id: uuid.UUID, offer_id: uuid.UUID, window_days: int = 30
) -> dict[str, Any]:
    """Return-visit lift of an offer with a holdout, with a 95% interval (Newcombe), from the
    users whose window has ended (the contract: `users` counts every assigned user, `pending`
    those still inside their window)."""
    _offer_created_at(session, merchant_id, offer_id)
    holdout = session.scalar(
        text("SELECT holdout_pct FROM offers WHERE id = :o"), {"o": str(offer_id)}
    )
    rows = {
        row.held_out: Group(int(row.users), int(row.pending), int(row.returned))
        for row in session.execute(_LIFT, {"o": str(offer_id), "window": window_days})
    }
    treatment = rows.get(False, Group(0, 0, 0))
    control = rows.get(True, Group(0, 0, 0))
    result: dict[str, Any] = {
        "offer_id": offer_id,
        "window_days": window_days,
        "holdout_pct": holdout,
        "treatment": treatment.as_dict(),
        "control": control.as_dict(),
        "lift": None,
        "ci95": None,
        "method": "difference of return rates; 95% CI by Newcombe's hybrid score interval",
    }
    if treatment.measured and control.measured:
        diff = treatment.returned / treatment.measured - control.returned / control.measured
        low, high = newcombe_difference(
            treatment.returned, treatment.measured, control.returned, control.measured
        )
        result["lift"] = round(diff, 4)
        result["ci95"] = [round(low, 4), round(high, 4)]
    return result


_LEAKS = text(
    """
    WITH mine AS (SELECT id FROM offers WHERE merchant_id = :m
                  AND (CAST(:offer AS uuid) IS NULL OR id = :offer)),
    -- the redemptions counted by where the code was earned and redeemed and by the proof of
    -- the check-in behind it (the redemption carries its unlock's venue, time and proof:
    -- migration 0023): every figure on redemptions below is a sum over these few groups. Every
    -- unlock comes from a verified check-in, so every redemption is backed by one.
    red AS (
        SELECT r.unlock_venue_id AS unlocked_venue_id, r.venue_id AS redeemed_venue_id, r.proof,
               count(*) AS n,
               count(*) FILTER (
                   WHERE r.redeemed_at - r.unlocked_at < make_interval(secs => :fast_s)) AS fast
        FROM redemptions r
        WHERE r.merchant_id = :m AND r.offer_id IN (SELECT id FROM mine)
          AND r.redeemed_at >= :lo AND r.redeemed_at < :hi
        GROUP BY 1, 2, 3
    ),
    rejected AS (
        SELECT unnest(c.reason_codes) AS reason
        FROM checkins c JOIN venues v ON v.id = c.venue_id
        WHERE v.merchant_id = :m AND c.status = 'rejected'
          AND c.created_at >= :lo AND c.created_at < :hi
          AND (CAST(:offer AS uuid) IS NULL
               OR c.venue_id IN (SELECT venue_id FROM offer_venues WHERE offer_id = :offer))
    ),
    -- check-ins under strikes or by the merchant's staff (offers/abuse.py), from the partial
    -- index of such check-ins (its predicate is repeated here word for word)
    flagged AS (
        SELECT c.user_id, c.device_id, c.status, c.presence_code_sent, c.strikes,
               c.staff_exclusion
        FROM checkins c JOIN venues v ON v.id = c.venue_id
        WHERE v.merchant_id = :m
          AND (c.strikes <> '{}' OR c.staff_exclusion IS NOT NULL)
          AND c.created_at >= :lo AND c.created_at < :hi
          AND (CAST(:offer AS uuid) IS NULL
               OR c.venue_id IN (SELECT venue_id FROM offer_venues WHERE offer_id = :offer))
    )
    SELECT
        (SELECT COALESCE(sum(n), 0) FROM red) AS redemptions,
        (SELECT COALESCE(sum(fast), 0) FROM red) AS fast,
        -- one distance per pair of venues, not per redemption
        (SELECT COALESCE(sum(red.n), 0) FROM red
         JOIN venues a ON a.id = red.unlocked_venue_id
         JOIN venues b ON b.id = red.redeemed_venue_id
         WHERE ST_Distance(a.location, b.location) > :far_m) AS far,
        -- refusals at this merchant's tills; another merchant's code is unknown to this one,
        -- as the till's answer says (404 either way): telling them apart would let a merchant
        -- learn which of a rival's codes are live
        (SELECT COALESCE(json_object_agg(outcome, n), '{}') FROM (
            SELECT CASE WHEN a.outcome = 'other_merchant' THEN 'unknown'
                        ELSE a.outcome END AS outcome,
                   count(*) AS n
            FROM redemption_attempts a LEFT JOIN unlocks u
              ON u.id = a.unlock_id AND u.merchant_id = :m
            WHERE a.merchant_id = :m AND a.outcome = ANY (CAST(:refusals AS text[]))
              AND a.created_at >= :lo AND a.created_at < :hi
              AND (CAST(:offer AS uuid) IS NULL OR u.offer_id = :offer)
            GROUP BY 1) x) AS refused,
        -- this merchant's codes tried at other merchants' tills (recorded there as
        -- 'other_merchant')
        (SELECT count(*) FROM redemption_attempts a JOIN unlocks u ON u.id = a.unlock_id
         WHERE a.outcome = 'other_merchant' AND u.merchant_id = :m
           AND a.created_at >= :lo AND a.created_at < :hi
           AND (CAST(:offer AS uuid) IS NULL OR u.offer_id = :offer)) AS by_other_merchants,
        (SELECT COALESCE(json_object_agg(reason, n), '{}') FROM (
            SELECT reason, count(*) AS n FROM rejected GROUP BY reason) y) AS rejected,
        (SELECT json_build_object(
             'checkins', count(*) FILTER (WHERE strikes <> '{}'),
             'verified_without_presence_code', count(*) FILTER (
                 WHERE strikes <> '{}' AND status = 'verified' AND NOT presence_code_sent
                   AND staff_exclusion IS NULL),
             -- device ids by their pseudonym: the same count once a user is erased
             'shared_devices', count(DISTINCT {device_key}) FILTER (
                 WHERE 'device_shared' = ANY (strikes)),
             'users_on_many_devices', count(DISTINCT user_id) FILTER (
                 WHERE 'many_devices' = ANY (strikes)),
             'users_with_repeated_rejections', count(DISTINCT user_id) FILTER (
                 WHERE 'repeated_rejections' = ANY (strikes)))
         FROM flagged) AS struck,
        (SELECT COALESCE(json_object_agg(kind, n), '{}') FROM (
            SELECT kind, count(*) AS n FROM flagged, unnest(flagged.strikes) AS kind
            GROUP BY kind) z) AS strike_kinds,
        (SELECT COALESCE(json_object_agg(staff_exclusion, n), '{}') FROM (
            SELECT staff_exclusion, count(*) AS n FROM flagged
            WHERE staff_exclusion IS NOT NULL GROUP BY staff_exclusion) w) AS staff,
        -- the proof behind each redemption's check-in
        (SELECT COALESCE(json_object_agg(proof || '.redemptions', n), '{}') FROM (
            SELECT proof, sum(n) AS n FROM red GROUP BY proof) p) AS redeemed_by_proof
    """.replace("{device_key}", device_key("device_id"))
)

# NFC taps at the merchant's venues (geo/nfc.py records every SUN message received) and the
# staff's member-code attempts: what SUN alone cannot tell is flagged here.
_NFC = text(
    """
    WITH mine AS (
        SELECT v.id FROM venues v WHERE v.merchant_id = :m
          AND (CAST(:offer AS uuid) IS NULL
               OR v.id IN (SELECT venue_id FROM offer_venues WHERE offer_id = :offer))
    ),
    taps AS (
        SELECT t.* FROM nfc_taps t
        WHERE t.venue_id IN (SELECT id FROM mine)
          AND t.created_at >= :lo AND t.created_at < :hi
    ),
    tag_taps AS (SELECT * FROM taps WHERE tag_id IS NOT NULL)
    SELECT
        (SELECT count(*) FROM tag_taps WHERE outcome = 'accepted') AS accepted,
        (SELECT COALESCE(json_object_agg(k, n), '{}') FROM (
            SELECT COALESCE(reason, outcome) AS k, count(*) AS n FROM tag_taps
            WHERE outcome <> 'accepted' GROUP BY 1) r) AS refused,
        (SELECT count(*) FROM tag_taps WHERE counter_gap > 0) AS gap_taps,
        (SELECT COALESCE(sum(counter_gap), 0) FROM tag_taps) AS skipped_reads,
        (SELECT count(*) FROM tag_taps WHERE outcome = 'accepted' AND used_at IS NULL
            AND expires_at <= now()) AS unspent,
        (SELECT count(*) FROM (
            SELECT user_id FROM tag_taps WHERE outcome = 'accepted'
            GROUP BY user_id, tag_id, date_trunc('hour', created_at)
            HAVING count(*) >= :burst) b) AS bursts,
        (SELECT count(*) FROM checkins c JOIN taps t ON t.id = c.nfc_tap_id
         WHERE c.status = 'verified' AND 'outside_geofence' <> ALL (c.reason_codes)
           -- a coarsened fix (core/privacy.py) kept only its distance from the venue
           AND CASE WHEN c.coarsened_at IS NULL
                    THEN NOT ST_DWithin(c.location, (SELECT v.location FROM venues v
                                                     WHERE v.id = c.venue_id), :rough_m)
                    ELSE c.venue_distance_m > :rough_m END) AS rough,
        (SELECT count(*) FROM taps WHERE card_id IS NOT NULL AND outcome = 'accepted')
            AS card_reads,
        (SELECT COALESCE(json_object_agg(outcome, n), '{}') FROM (
            SELECT a.outcome, count(*) AS n FROM staff_checkin_attempts a
            WHERE a.venue_id IN (SELECT id FROM mine)
              AND a.created_at >= :lo AND a.created_at < :hi GROUP BY a.outcome) s)
            AS staff_attempts
    """
)
# Presence codes guessed at the merchant's venues: wrong codes sent with check-ins, and
# check-ins refused because a user, device or venue had sent too many (geo/presence.py).
_PRESENCE_GUESSING = text(
    """
    WITH att AS (
        SELECT a.outcome, a.user_id, a.scope
        FROM presence_code_attempts a JOIN venues v ON v.id = a.venue_id
        WHERE v.merchant_id = :m
          AND (CAST(:offer AS uuid) IS NULL
               OR a.venue_id IN (SELECT venue_id FROM offer_venues WHERE offer_id = :offer))
          AND a.created_at >= :lo AND a.created_at < :hi
    )
    SELECT (SELECT count(*) FROM att WHERE outcome = 'wrong') AS wrong,
           (SELECT count(DISTINCT user_id) FROM att WHERE outcome = 'wrong') AS users,
           (SELECT COALESCE(json_object_agg(scope, n), '{}') FROM (
               SELECT scope, count(*) AS n FROM att WHERE outcome = 'refused' GROUP BY scope
           ) r) AS refused
    """
)


def _presence_guessing(
    session: Session,
    merchant_id: uuid.UUID,
    offer_id: uuid.UUID | None,
    lo: datetime,
    hi: datetime,
) -> dict[str, Any]:
    row = session.execute(
        _PRESENCE_GUESSING,
        {"m": str(merchant_id), "offer": str(offer_id) if offer_id else None, "lo": lo, "hi": hi},
    ).one()
    refused = {k: int(v) for k, v in (row.refused or {}).items()}
    return {
        "wrong": int(row.wrong),
        "users_with_wrong_codes": int(row.users),
        "refused_over_limit": {scope: refused.get(scope, 0) for scope in presence.GUESS_SCOPES},
        "window_minutes": int(presence.WRONG_WINDOW.total_seconds() // 60),
        "limits": dict(presence.MAX_WRONG),
    }


# An accepted tap this many times or more by one user at one tag within a clock hour is a burst
# (a collector gathering URLs); a tap check-in whose fix is farther than this from the venue's
# location relied on the tap radius (indoors, or a fix from somewhere else).
TAP_BURST = 3
ROUGH_FIX_M = 150.0


# Refused attempts at a merchant's tills, as the leak report counts them. A code of another
# merchant counts as `unknown` (it is stored as `other_merchant` for the code's own merchant's
# `codes_tried_by_other_merchants`).
REFUSALS = ("already_redeemed", "expired", "unknown", "wrong_venue")


def leak_report(
    session: Session,
    merchant_id: uuid.UUID,
    start: datetime | None,
    end: datetime | None,
    offer_id: uuid.UUID | None = None,
    fast_seconds: int = 10,
    far_m: float = 1_000.0,
) -> dict[str, Any]:
    """Exclusivity and leaks: how many redemptions a verified check-in backs (all, by
    construction), refused attempts by reason, this merchant's codes tried by other merchants,
    suspiciously fast redemptions or far from the venue where the code was earned, rejected
    check-ins by reason, check-ins under strikes (farming) and check-ins by the merchant's own
    staff."""
    if offer_id is not None:
        _offer_created_at(session, merchant_id, offer_id)
    lo, hi = _period(start, end, EPOCH)
    row = session.execute(
        _LEAKS,
        {
            "m": str(merchant_id),
            "offer": str(offer_id) if offer_id else None,
            "lo": lo,
            "hi": hi,
            "fast_s": fast_seconds,
            "far_m": far_m,
            "refusals": list(redemptions.REFUSALS),
        },
    ).one()
    refused = {k: int(v) for k, v in (row.refused or {}).items()}
    return {
        "offer_id": offer_id,
        "from": start,
        "to": end,
        "redemptions": int(row.redemptions),
        # every unlock comes from a verified check-in (migration 0023 checked the old ones)
        "backed_by_verified_checkin": int(row.redemptions),
        "backed_share": _rate(int(row.redemptions), int(row.redemptions)),
        "refused_attempts": {outcome: refused.get(outcome, 0) for outcome in REFUSALS},
        "codes_tried_by_other_merchants": int(row.by_other_merchants),
        "suspicious": {
            "fast": int(row.fast),
            "fast_seconds": fast_seconds,
            "far": int(row.far),
            "far_m": far_m,
        },
        "rejected_checkins": {k: int(v) for k, v in sorted((row.rejected or {}).items())},
        "strikes": {
            **{k: int(v) for k, v in row.struck.items()},
            "by_kind": {
                kind: int((row.strike_kinds or {}).get(kind, 0)) for kind in abuse.STRIKE_CODES
            },
        },
        "staff_checkins": {
            code: int((row.staff or {}).get(code, 0)) for code in abuse.STAFF_EXCLUSIONS
        },
        "redemptions_by_proof": {
            proof: counts["redemptions"]
            for proof, counts in by_proof(row.redeemed_by_proof or {}, ("redemptions",)).items()
        },
        "nfc": _nfc_report(session, merchant_id, offer_id, lo, hi),
        "presence_codes": _presence_guessing(session, merchant_id, offer_id, lo, hi),
    }


def _nfc_report(
    session: Session,
    merchant_id: uuid.UUID,
    offer_id: uuid.UUID | None,
    lo: datetime,
    hi: datetime,
) -> dict[str, Any]:
    row = session.execute(
        _NFC,
        {
            "m": str(merchant_id),
            "offer": str(offer_id) if offer_id else None,
            "lo": lo,
            "hi": hi,
            "burst": TAP_BURST,
            "rough_m": ROUGH_FIX_M,
        },
    ).one()
    attempts = {k: int(v) for k, v in (row.staff_attempts or {}).items()}
    return {
        "taps_accepted": int(row.accepted),
        "taps_refused": {k: int(v) for k, v in sorted((row.refused or {}).items())},
        "counter_gaps": {"taps": int(row.gap_taps), "skipped_reads": int(row.skipped_reads)},
        "unspent_tap_tokens": int(row.unspent),
        "tap_bursts": int(row.bursts),
        "tap_bursts_threshold": TAP_BURST,
        "rough_fix_tap_checkins": int(row.rough),
        "rough_fix_m": ROUGH_FIX_M,
        "card_reads": int(row.card_reads),
        "staff_checkin_attempts": {
            outcome: attempts.get(outcome, 0)
            for outcome in ("accepted", "member_code_invalid", "tap_invalid", "tap_replayed")
        },
    }


HEALTH_WINDOW_DAYS = 7
MIN_UNLOCKS_FOR_FLAG = 20
# The rejection flag counts people, not check-ins, so one stranger retrying a rejected check-in
# (or a handful probing the verifier) moves it by one person at most; and it waits for enough
# people to say something about the offer.
MIN_USERS_FOR_FLAG = 20
HIGH_TURNED_AWAY_RATE = 0.5

_HEALTH = text(
    """
    SELECT o.id, o.title, o.status,
        (SELECT count(*) FROM unlocks u
         WHERE u.offer_id = o.id AND u.created_at > now() - make_interval(days => :days))
            AS unlocks,
        (SELECT count(*) FROM redemptions r
         WHERE r.offer_id = o.id AND r.redeemed_at > now() - make_interval(days => :days))
            AS redemptions,
        COALESCE(ci.checkins, 0) AS checkins, COALESCE(ci.rejected, 0) AS rejected,
        COALESCE(ci.users, 0) AS users, COALESCE(ci.turned_away, 0) AS turned_away,
        (SELECT COALESCE(json_object_agg(proof, n), '{}') FROM (
            SELECT k.proof, count(*) AS n FROM unlocks u JOIN checkins k ON k.id = u.checkin_id
            WHERE u.offer_id = o.id AND u.created_at > now() - make_interval(days => :days)
            GROUP BY k.proof) p) AS unlocks_by_proof
    FROM offers o
    -- each person who checked in at its venues, with how many of their check-ins were rejected
    CROSS JOIN LATERAL (
        SELECT sum(p.n) AS checkins, sum(p.rejected) AS rejected, count(*) AS users,
               count(*) FILTER (WHERE p.rejected = p.n) AS turned_away
        FROM (
            SELECT c.user_id, count(*) AS n, count(*) FILTER (WHERE c.status = 'rejected')
                   AS rejected
            FROM checkins c
            WHERE c.venue_id IN (SELECT venue_id FROM offer_venues WHERE offer_id = o.id)
              AND c.created_at > now() - make_interval(days => :days)
            GROUP BY c.user_id
        ) p
    ) ci
    WHERE o.merchant_id = :m AND (CAST(:offer AS uuid) IS NULL OR o.id = :offer)
    ORDER BY o.created_at, o.id
    """
)


def offer_health(
    session: Session, merchant_id: uuid.UUID, offer_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    """Flags on offers that look broken or mistrusted over the last week: many unlocks and no
    redemption, or many of the people who checked in at their venues turned away (every one of
    their check-ins rejected)."""
    if offer_id is not None:
        _offer_created_at(session, merchant_id, offer_id)
    rows = session.execute(
        _HEALTH,
        {
            "m": str(merchant_id),
            "offer": str(offer_id) if offer_id else None,
            "days": HEALTH_WINDOW_DAYS,
        },
    ).all()
    # Feedback given in the window on visits that unlocked each offer, from the feedback rollup
    # (offers/feedback.py): one read for every offer instead of a join per offer.
    now = session.execute(text("SELECT now()")).scalar_one()
    rated = feedback.ratings_by_offer(
        session, merchant_id, now - timedelta(days=HEALTH_WINDOW_DAYS), OPEN_END, now
    )
    out = []
    for row in rows:
        ratings = rated.get(row.id, {"feedback": 0, "rating_mean": None})
        rated_visits = int(ratings["feedback"])
        flags = []
        if row.unlocks >= MIN_UNLOCKS_FOR_FLAG and row.redemptions == 0:
            flags.append(
                {
                    "code": "unlocks_not_redeemed",
                    "detail": f"{row.unlocks} unlocks and no redemption in {HEALTH_WINDOW_DAYS} days:"
                    " is the offer honoured at the till, and do customers know how to redeem?",
                }
            )
        users, turned_away = int(row.users), int(row.turned_away)
        turned_away_rate = _rate(turned_away, users)
        if (
            users >= MIN_USERS_FOR_FLAG
            and turned_away_rate is not None
            and turned_away_rate >= HIGH_TURNED_AWAY_RATE
        ):
            flags.append(
                {
                    "code": "high_rejection_rate",
                    "detail": f"{turned_away} of the {users} people who checked in at its venues"
                    f" in {HEALTH_WINDOW_DAYS} days ({turned_away_rate:.0%}) had every check-in"
                    " rejected: check the geofence, accuracy limit and cooldown",
                }
            )
        mean = ratings["rating_mean"]
        rating_mean = None if mean is None else round(float(mean), 2)
        if (
            rated_visits >= feedback.MIN_FEEDBACK_FOR_FLAG
            and rating_mean is not None
            and rating_mean <= feedback.LOW_RATING_MEAN
        ):
            flags.append(
                {
                    "code": "low_rating",
                    "detail": f"the {rated_visits} visits that unlocked it and were rated in"
                    f" {HEALTH_WINDOW_DAYS} days average {rating_mean} stars: read their"
                    " feedback (GET /v1/feedback) to see what disappoints",
                }
            )
        out.append(
            {
                "offer_id": row.id,
                "title": row.title,
                "status": row.status,
                "window_days": HEALTH_WINDOW_DAYS,
                "feedback": rated_visits,
                "rating_mean": rating_mean,
                "unlocks": int(row.unlocks),
                "redemptions": int(row.redemptions),
                "checkins": int(row.checkins),
                "rejected_checkins": int(row.rejected),
                "rejection_rate": _rate(int(row.rejected), int(row.checkins)),
                "checkin_users": users,
                "turned_away_users": turned_away,
                "turned_away_rate": turned_away_rate,
                "unlocks_by_proof": {
                    proof: int((row.unlocks_by_proof or {}).get(proof, 0))
                    for proof in proofs.PROOFS
                },
                "healthy": not flags,
                "flags": flags,
            }
        )
    return out


# ---- the owner's summary ---------------------------------------------------------------------

# Without `from`, the summary covers this many days up to `to` (or now).
SUMMARY_DEFAULT_DAYS = 30
# The longest period a summary may cover (with its previous period, twice that is read).
SUMMARY_MAX_DAYS = 366
# Each offer's and the merchant's lift: return within this many days of the first eligible visit.
SUMMARY_LIFT_WINDOW_DAYS = 30
SUMMARY_MEASURES = (
    "visitors",
    "verified_checkins",
    "unlocks",
    "unlocks_redeemed",
    "redemptions",
    "redemption_rate",
    "lift",
    "cost",
    "cost_per_verified_visit",
)

# Two periods of equal length side by side: `cur` [lo, hi) and `prev` [lo - (hi - lo), lo).
# Counts are at the merchant's venues (or the one venue asked for): verified check-ins where they
# happened, unlocks where they were earned, redemptions where they were redeemed (or earned, when
# the till did not say), as in the redemptions report. The lift pools every offer with a holdout:
# each (offer, user) pair is assigned at its first eligible visit, counted in the period that
# visit fell in, and returned when another verified check-in at the offer's venues followed
# within the window (the offer's own lift, GET .../lift, over one period).
_SUMMARY = text(
    """
    WITH periods(name, lo, hi) AS (
        VALUES ('cur', CAST(:lo AS timestamptz), CAST(:hi AS timestamptz)),
               ('prev', CAST(:plo AS timestamptz), CAST(:lo AS timestamptz))
    ),
    v AS (SELECT id FROM venues WHERE merchant_id = :m
          AND (CAST(:venue AS uuid) IS NULL OR id = :venue)),
    visits AS (
        SELECT p.name, count(*) AS verified, count(DISTINCT c.user_id) AS visitors
        FROM checkins c JOIN periods p ON c.created_at >= p.lo AND c.created_at < p.hi
        WHERE c.venue_id = ANY (ARRAY(SELECT id FROM v)) AND c.status = 'verified'
        GROUP BY p.name
    ),
    ul AS (
        SELECT p.name, u.offer_id, count(*) AS unlocks,
               count(*) FILTER (WHERE u.redeemed_at IS NOT NULL) AS redeemed,
               count(DISTINCT u.user_id) AS visitors
        FROM unlocks u JOIN periods p ON u.created_at >= p.lo AND u.created_at < p.hi
        WHERE u.merchant_id = :m AND u.venue_id IN (SELECT id FROM v)
        GROUP BY p.name, u.offer_id
    ),
    rd AS (
        SELECT p.name, r.offer_id, count(*) AS redemptions
        FROM redemptions r JOIN unlocks u ON u.id = r.unlock_id
        JOIN periods p ON r.redeemed_at >= p.lo AND r.redeemed_at < p.hi
        WHERE r.merchant_id = :m AND COALESCE(r.venue_id, u.venue_id) IN (SELECT id FROM v)
        GROUP BY p.name, r.offer_id
    ),
    held AS (SELECT id FROM offers WHERE merchant_id = :m AND holdout_pct > 0),
    eligible AS (
        SELECT u.offer_id, u.user_id, c.created_at, c.venue_id, false AS held_out
        FROM unlocks u JOIN checkins c ON c.id = u.checkin_id
        WHERE u.merchant_id = :m AND u.offer_id IN (SELECT id FROM held)
        UNION ALL
        SELECT h.offer_id, h.user_id, c.created_at, c.venue_id, true
        FROM holdouts h JOIN checkins c ON c.id = h.checkin_id
        WHERE h.offer_id IN (SELECT id FROM held)
    ),
    firsts AS (
        SELECT DISTINCT ON (offer_id, user_id) offer_id, user_id, created_at AS t0, venue_id,
               held_out
        FROM eligible ORDER BY offer_id, user_id, created_at
    ),
    assigned AS (
        SELECT p.name, f.*,
               f.t0 + make_interval(days => :window) <= now() AS mature,
               EXISTS (
                   SELECT 1 FROM checkins c
                   WHERE c.user_id = f.user_id AND c.status = 'verified'
                     AND c.venue_id IN (SELECT venue_id FROM offer_venues ov
                                        WHERE ov.offer_id = f.offer_id)
                     AND c.created_at > f.t0
                     AND c.created_at <= f.t0 + make_interval(days => :window)
               ) AS returned
        FROM firsts f JOIN periods p ON f.t0 >= p.lo AND f.t0 < p.hi
        WHERE f.venue_id IN (SELECT id FROM v)
    ),
    lift AS (
        SELECT name, offer_id,
               count(*) FILTER (WHERE NOT held_out) AS t_users,
               count(*) FILTER (WHERE NOT held_out AND NOT mature) AS t_pending,
               count(*) FILTER (WHERE NOT held_out AND mature AND returned) AS t_returned,
               count(*) FILTER (WHERE held_out) AS c_users,
               count(*) FILTER (WHERE held_out AND NOT mature) AS c_pending,
               count(*) FILTER (WHERE held_out AND mature AND returned) AS c_returned
        FROM assigned GROUP BY name, offer_id
    )
    SELECT 'visits' AS part, name, NULL::uuid AS offer_id,
           json_build_object('verified', verified, 'visitors', visitors) AS n
    FROM visits
    UNION ALL
    SELECT 'unlocks', name, offer_id,
           json_build_object('unlocks', unlocks, 'redeemed', redeemed, 'visitors', visitors)
    FROM ul
    UNION ALL
    SELECT 'redemptions', name, offer_id, json_build_object('redemptions', redemptions) FROM rd
    UNION ALL
    SELECT 'lift', name, offer_id, row_to_json(lift)::json FROM lift
    """
)


def _lift_figures(treatment: Group, control: Group) -> dict[str, Any]:
    out: dict[str, Any] = {
        "lift": None,
        "ci95": None,
        "treatment": treatment.as_dict(),
        "control": control.as_dict(),
    }
    if treatment.measured and control.measured:
        low, high = newcombe_difference(
            treatment.returned, treatment.measured, control.returned, control.measured
        )
        out["lift"] = round(
            treatment.returned / treatment.measured - control.returned / control.measured, 4
        )
        out["ci95"] = [round(low, 4), round(high, 4)]
    return out


def _change(current: Any, previous: Any) -> dict[str, Any]:
    """The difference from the previous period, and relative to it (null from nothing)."""
    if current is None or previous is None:
        return {"change": None, "change_rate": None}
    change = round(current - previous, 4)
    return {"change": change, "change_rate": round(change / previous, 4) if previous else None}


def summary(
    session: Session,
    merchant_id: uuid.UUID,
    start: datetime | None = None,
    end: datetime | None = None,
    venue_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Is it working? Visitors, verified check-ins, unlocks, redemptions, the redemption rate and
    the pooled lift over a period (default: the last 30 days) at the merchant's venues (or one),
    each beside the previous period of the same length; and the same per offer, to compare."""
    hi = end or now or datetime.now(UTC)
    lo = start or hi - timedelta(days=SUMMARY_DEFAULT_DAYS)
    if hi <= lo:
        raise ValidationError("to must be after from", errors={"to": ["must be after from"]})
    if hi - lo > timedelta(days=SUMMARY_MAX_DAYS):
        raise ValidationError(
            f"a summary covers at most {SUMMARY_MAX_DAYS} days",
            errors={"from": [f"at most {SUMMARY_MAX_DAYS} days before to"]},
        )
    if venue_id is not None:
        found = session.scalar(
            text("SELECT 1 FROM venues WHERE id = :v AND merchant_id = :m"),
            {"v": str(venue_id), "m": str(merchant_id)},
        )
        if found is None:
            raise NotFoundError("no such venue")
    plo = lo - (hi - lo)
    rows = session.execute(
        _SUMMARY,
        {
            "m": str(merchant_id),
            "lo": lo,
            "hi": hi,
            "plo": plo,
            "venue": str(venue_id) if venue_id else None,
            "window": SUMMARY_LIFT_WINDOW_DAYS,
        },
    ).all()
    offers = session.execute(
        text(
            "SELECT id, title, status, holdout_pct, value_per_redemption FROM offers"
            " WHERE merchant_id = :m"
            " ORDER BY created_at, id"
        ),
        {"m": str(merchant_id)},
    ).all()
    zero_lift = {"t_users": 0, "t_pending": 0, "t_returned": 0}
    zero_lift |= {"c_users": 0, "c_pending": 0, "c_returned": 0}

    def blank() -> dict[str, Any]:
        return {"visitors": 0, "unlocks": 0, "unlocks_redeemed": 0, "redemptions": 0, **zero_lift}

    per_offer: dict[str, dict[str, dict[str, Any]]] = {
        str(o.id): {"cur": blank(), "prev": blank()} for o in offers
    }
    merchant_counts = {p: {"verified_checkins": 0, "visitors": 0} for p in ("cur", "prev")}
    for row in rows:
        n = row.n
        if row.part == "visits":
            merchant_counts[row.name] = {
                "verified_checkins": int(n["verified"]),
                "visitors": int(n["visitors"]),
            }
            continue
        figures = per_offer.setdefault(str(row.offer_id), {"cur": blank(), "prev": blank()})[
            row.name
        ]
        if row.part == "unlocks":
            figures["unlocks"] = int(n["unlocks"])
            figures["unlocks_redeemed"] = int(n["redeemed"])
            figures["visitors"] = int(n["visitors"])
        elif row.part == "redemptions":
            figures["redemptions"] = int(n["redemptions"])
        else:
            figures.update({k: int(n[k]) for k in zero_lift})

    values = {str(o.id): o.value_per_redemption for o in offers}

    def cost_of(offer_id: str, counts: dict[str, Any]) -> float | None:
        value = values.get(offer_id)
        return None if value is None else round(float(value) * counts["redemptions"], 2)

    def figures_of(
        counts: dict[str, Any], cost: float | None = None, costed: int | None = None
    ) -> dict[str, Any]:
        """`costed`: the redemptions `cost` counts (of the offers that state a value)."""
        costed = counts["redemptions"] if costed is None else costed
        treatment = Group(counts["t_users"], counts["t_pending"], counts["t_returned"])
        control = Group(counts["c_users"], counts["c_pending"], counts["c_returned"])
        return {
            "visitors": counts["visitors"],
            "verified_checkins": counts.get("verified_checkins"),
            "unlocks": counts["unlocks"],
            "unlocks_redeemed": counts["unlocks_redeemed"],
            "redemptions": counts["redemptions"],
            "redemption_rate": _rate(counts["unlocks_redeemed"], counts["unlocks"]),
            **_lift_figures(treatment, control),
            "cost": cost,
            "cost_per_verified_visit": (
                round(cost / counts["verified_checkins"], 2)
                if cost is not None and counts.get("verified_checkins")
                else None
            ),
            "cost_per_redemption": (
                round(cost / costed, 2) if cost is not None and costed else None
            ),
        }

    def with_changes(cur: dict[str, Any], prev: dict[str, Any]) -> dict[str, Any]:
        return {
            "current": cur,
            "previous": prev,
            "changes": {m: _change(cur[m], prev[m]) for m in SUMMARY_MEASURES},
        }

    totals: dict[str, dict[str, Any]] = {}
    for p in ("cur", "prev"):
        summed = {k: sum(o[p][k] for o in per_offer.values()) for k in blank()}
        # The cost counts the redemptions of offers with a value; without any, there is none.
        valued = [(i, o[p]) for i, o in per_offer.items() if values.get(i) is not None]
        totals[p] = figures_of(
            {**summed, **merchant_counts[p]},
            round(sum(cost_of(i, c) or 0.0 for i, c in valued), 2) if valued else None,
            sum(c["redemptions"] for _, c in valued),
        )
    out_offers = []
    for o in offers:
        counts = per_offer[str(o.id)]
        out_offers.append(
            {
                "offer_id": o.id,
                "title": o.title,
                "status": o.status,
                "holdout_pct": o.holdout_pct,
                "value_per_redemption": o.value_per_redemption,
                **with_changes(
                    figures_of(counts["cur"], cost_of(str(o.id), counts["cur"])),
                    figures_of(counts["prev"], cost_of(str(o.id), counts["prev"])),
                ),
            }
        )
    return {
        "from": lo,
        "to": hi,
        "previous_from": plo,
        "previous_to": lo,
        "venue_id": venue_id,
        "lift_window_days": SUMMARY_LIFT_WINDOW_DAYS,
        **with_changes(totals["cur"], totals["prev"]),
        "offers": out_offers,
    }
