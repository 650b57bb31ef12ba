"""Whether one verified check-in unlocks one candidate offer: pure functions, no database, no I/O.

The check-in transaction gathers the counts (`VisitFacts`) in SQL and passes them in, so every
decision here is a plain function of its arguments and can be tested without PostGIS. The offer's
total cap is deliberately not decided here: the caller claims it with one conditional UPDATE, after
`decide` says "unlock", so that concurrent check-ins can never overshoot it.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, time
from fractions import Fraction
from typing import Final, assert_never
from zoneinfo import ZoneInfo

from geo import proof as proofs
from offers.rules import DAYS, EveryCheckin, FirstVisit, Group, NthVisit, Rule, TopVisitor, Window

UNLOCK: Final = "unlock"
HELD_OUT: Final = "held_out"
LOCKED: Final = "locked"

NOT_STARTED: Final = "not_started"
ENDED: Final = "ended"
OUTSIDE_WINDOW: Final = "outside_window"
PRESENCE_CODE_REQUIRED: Final = "presence_code_required"
# The offer's `min_proof` is `nfc_tap` and the check-in carried no verified tap (nor staff).
NFC_TAP_REQUIRED: Final = "nfc_tap_required"
# The reason an offer stays locked for want of each proof level.
PROOF_REQUIRED: Final = {
    proofs.PRESENCE_CODE: PRESENCE_CODE_REQUIRED,
    proofs.NFC_TAP: NFC_TAP_REQUIRED,
}
RULE_NOT_MET: Final = "rule_not_met"
PER_USER_CAP: Final = "per_user_cap"
# The user is registered as the merchant's staff (or used a staff member's device): never unlocks.
MERCHANT_STAFF: Final = "merchant_staff"
# The check-in is under a strike (offers/abuse.py) and carried no accepted presence code.
UNDER_STRIKE: Final = "under_strike"

# The holdout point is the first 64 bits of a SHA-256 digest, read as a fraction of 2**64.
_HOLDOUT_BITS: Final = 64


@dataclass(frozen=True)
class OfferTerms:
    """What the engine needs of an offer, decoupled from the ORM row so the engine stays pure."""

    id: uuid.UUID
    rule: Rule
    starts_at: datetime | None
    ends_at: datetime | None
    windows: tuple[Window, ...]
    per_user_cap: int
    requires_presence_code: bool
    holdout_pct: float  # 0..50
    min_proof: str = proofs.DEFAULT_MIN_PROOF  # geo/proof.py

    @property
    def required_proof(self) -> str:
        return proofs.effective_min_proof(self.min_proof, self.requires_presence_code)


@dataclass(frozen=True)
class VisitFacts:
    """Counts gathered by SQL in the check-in transaction, INCLUDING the current check-in."""

    visits: int  # verified check-ins at any of the offer's venues, all time
    visits_within: (
        int | None
    )  # same within rule.within_days (nth_visit with within_days), else None
    user_unlocks: int  # unlocks this user already holds for this offer (before this check-in)
    top_visits: int  # this user's verified check-ins at this venue over the top_visitor window
    best_other_visits: int  # the highest count of any OTHER user at this venue over that window
    group_size: int  # distinct users (incl. this one) verified here within rule.within_minutes


@dataclass(frozen=True)
class Decision:
    """The outcome for one (check-in, offer) pair; `why` is a stable reason code when locked."""

    outcome: str  # "unlock" | "held_out" | "locked"
    why: str  # for "locked": one of the reason constants above; "" otherwise


def _require_aware(now: datetime) -> None:
    # A naive datetime would silently be read as the server's local time by astimezone().
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def _in_window(window: Window, day: str, previous_day: str, t: time) -> bool:
    """Whether local wall-clock (day, t) is inside a weekly window.

    A window whose end is not after its start crosses midnight: it opens on a listed day and runs
    into the next day, so its early-morning part belongs to the day *before*.
    """
    if window.start < window.end:
        return day in window.days and window.start <= t < window.end
    return (day in window.days and t >= window.start) or (
        previous_day in window.days and t < window.end
    )


def _schedule_block(terms: OfferTerms, tz: ZoneInfo, now: datetime) -> str:
    """The reason the schedule keeps the offer locked at `now`, or "" if it is open."""
    _require_aware(now)
    if terms.starts_at is not None and now < terms.starts_at:
        return NOT_STARTED
    if terms.ends_at is not None and now >= terms.ends_at:
        return ENDED
    if not terms.windows:
        return ""
    # Wall-clock semantics: convert the instant to the venue's local time and compare the naive
    # local time. Both occurrences of a repeated autumn hour map onto the same wall-clock times, and
    # spring-gap times are never produced by a conversion, so DST needs no special casing.
    local = now.astimezone(tz)
    weekday = local.weekday()
    day, previous_day = DAYS[weekday], DAYS[(weekday - 1) % 7]
    t = local.time()
    if any(_in_window(w, day, previous_day, t) for w in terms.windows):
        return ""
    return OUTSIDE_WINDOW


def in_schedule(terms: OfferTerms, tz: ZoneInfo, now: datetime) -> bool:
    """Whether `now` is within [starts_at, ends_at) and, if windows are set, in one of them.

    Windows are read in the venue's time zone `tz` so "17:00-19:00" means local opening hours
    whatever the DST offset. `now` must be timezone-aware.
    """
    return _schedule_block(terms, tz, now) == ""


def _holdout_point(user_id: uuid.UUID, offer_id: uuid.UUID) -> Fraction:
    """A uniform point in [0, 100) fixed per (user, offer), exact so the comparison is exact."""
    digest = hashlib.sha256(offer_id.bytes + user_id.bytes).digest()
    x = int.from_bytes(digest[: _HOLDOUT_BITS // 8], "big")
    return Fraction(x * 100, 1 << _HOLDOUT_BITS)


def in_holdout(user_id: uuid.UUID, offer_id: uuid.UUID, holdout_pct: float) -> bool:
    """Whether the user is in the offer's control group.

    Deterministic per (user, offer) via SHA-256 (not `hash()`, which is salted per process) so a
    user stays in the same group on every check-in, in every worker, across Python versions. The
    comparison is exact, so a user held out at p is held out at every q > p and 0% holds out no one.
    """
    if holdout_pct <= 0:
        return False
    return _holdout_point(user_id, offer_id) < Fraction(holdout_pct)


def rule_met(rule: Rule, facts: VisitFacts) -> bool:
    """Whether the offer's rule is satisfied by this check-in, given counts that include it."""
    if isinstance(rule, EveryCheckin):
        return True
    if isinstance(rule, FirstVisit):
        return facts.visits == 1
    if isinstance(rule, NthVisit):
        if rule.visits < 1:  # validated at the API edge; never unlock rather than divide by zero
            return False
        if rule.within_days:
            if facts.visits_within is None:
                raise ValueError("nth_visit with within_days needs facts.visits_within")
            count = facts.visits_within
        else:
            count = facts.visits
        if rule.repeat:
            return count > 0 and count % rule.visits == 0
        # Once, at the Nth: a later decline in a rolling window must not unlock it a second time.
        return count == rule.visits and facts.user_unlocks == 0
    if isinstance(rule, TopVisitor):
        # Strictly the most (a tie doesn't win), and at least `min_visits` of them.
        return facts.top_visits >= rule.min_visits and facts.top_visits > facts.best_other_visits
    if isinstance(rule, Group):
        return facts.group_size >= rule.min_people
    assert_never(rule)


def counts_toward_group(
    *, presence_verified: bool, under_strike: bool, merchant_staff: bool
) -> bool:
    """Whether a member's check-in counts toward a group's size: not the merchant's staff, and
    not under a strike unless it carried the presence code (or a stronger proof), so one phone
    with several accounts (or staff bringing friends) cannot make up a group."""
    return not merchant_staff and (presence_verified or not under_strike)


def decide(
    terms: OfferTerms,
    facts: VisitFacts,
    tz: ZoneInfo,
    now: datetime,
    *,
    user_id: uuid.UUID,
    presence_verified: bool,
    under_strike: bool = False,
    merchant_staff: bool = False,
    proof: str | None = None,
) -> Decision:
    """Whether this check-in unlocks the offer, is held out, or leaves it locked (and why).

    `proof` is the check-in's proof level (geo/proof.py); without it, `presence_verified` alone
    says whether it reached `presence_code`.

    Order: the merchant's own staff, schedule, proof of presence (the offer's `min_proof`, then
    the presence code a strike adds), rule, per-user cap, then holdout last, so a user is recorded as held out
    only when the check-in would otherwise have unlocked (what the lift analysis compares). The
    total cap is the caller's to claim in SQL.
    """
    if merchant_staff:
        return Decision(LOCKED, MERCHANT_STAFF)
    block = _schedule_block(terms, tz, now)
    if block:
        return Decision(LOCKED, block)
    if proof is None:
        proof = proofs.PRESENCE_CODE if presence_verified else proofs.GPS
    required = terms.required_proof
    if not proofs.satisfies(proof, required):
        return Decision(LOCKED, PROOF_REQUIRED[required])
    if under_strike and not proofs.satisfies(proof, proofs.PRESENCE_CODE):
        return Decision(LOCKED, UNDER_STRIKE)
    if not rule_met(terms.rule, facts):
        return Decision(LOCKED, RULE_NOT_MET)
    if facts.user_unlocks >= terms.per_user_cap:
        return Decision(LOCKED, PER_USER_CAP)
    if in_holdout(user_id, terms.id, terms.holdout_pct):
        return Decision(HELD_OUT, "")
    return Decision(UNLOCK, "")
