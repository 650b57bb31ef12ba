"""Check-in verification: does a phone's location fix prove the user is at the venue?

A pure function of its arguments (no database, no clock, no I/O), so every rule can be tested
exhaustively and the caller decides what to load and what to store. The verdict lists every
reason that applies, not just the first, so a rejection can be explained in full and analysed
for fraud later. The reason codes are a public HTTP contract: never rename them.

Distances are geodesic metres on the WGS 84 ellipsoid, right at high latitudes and across the
antimeridian; degrees are never treated as distances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from shapely.geometry import MultiPolygon, Point

from geo.geofence import WGS84, distance_m
from geo.presence import STEP_SECONDS, accepts

# A fix taken longer ago than this may have been taken somewhere else (or replayed).
STALE_AFTER = timedelta(minutes=2)
# Phones' clocks drift; more skew than this means the timestamp cannot be trusted.
FUTURE_TOLERANCE = timedelta(seconds=30)
# Faster than a high-speed train; nobody gets between venues faster than this by land.
MAX_SPEED_KMH = 300.0
# Two fixes closer than this are the same place (GPS jitter, or the same fix sent twice), so
# they never count as travel, whatever their time difference (even none).
SAME_PLACE_M = 5.0

OUTSIDE_GEOFENCE = "outside_geofence"
LOW_ACCURACY = "low_accuracy"
STALE_FIX = "stale_fix"
FUTURE_FIX = "future_fix"
# Dated before the user's latest accepted fix by more than the freshness window (`stale_after`):
# a fix sent out of order, which could otherwise be slotted between two accepted ones.
BACKDATED_FIX = "backdated_fix"
MOCK_LOCATION = "mock_location"
IMPOSSIBLE_TRAVEL = "impossible_travel"
TOO_SOON = "too_soon"
PRESENCE_CODE_INVALID = "presence_code_invalid"
# A tap token was sent and it is not the caller's own, unspent, unexpired one for this venue.
TAP_INVALID = "tap_invalid"
# With a valid tap, a fix this far from the fence is still plausible (indoors GPS is rough).
DEFAULT_TAP_RADIUS_M = 500.0
MIN_TAP_RADIUS_M = 10.0
MAX_TAP_RADIUS_M = 5_000.0
# Every reason code, in the order a verdict lists them.
REASON_CODES = (
    OUTSIDE_GEOFENCE,
    LOW_ACCURACY,
    STALE_FIX,
    FUTURE_FIX,
    BACKDATED_FIX,
    MOCK_LOCATION,
    IMPOSSIBLE_TRAVEL,
    TOO_SOON,
    PRESENCE_CODE_INVALID,
    TAP_INVALID,
)


@dataclass(frozen=True)
class VenueSpec:
    """What verification needs to know of a venue, detached from the database row."""

    fence: MultiPolygon  # lon/lat, WGS 84 (x is longitude)
    center: Point  # the venue's location
    # Set when the fence is a circle around `center`: the exact geodesic circle is then used
    # instead of its polygon approximation (which cuts up to 0.12% of the radius off the edge).
    radius_m: float | None
    cooldown_minutes: int  # 0 disables the cooldown
    max_accuracy_m: float
    presence_secret: bytes
    tap_radius_m: float = DEFAULT_TAP_RADIUS_M


@dataclass(frozen=True)
class Fix:
    """One location fix as the phone reported it; nothing here is trusted."""

    point: Point  # lon/lat
    accuracy_m: float  # radius of the phone's 68% accuracy circle, metres
    observed_at: datetime  # tz-aware; when the phone took the fix
    mock_location: bool
    presence_code: str | None


@dataclass(frozen=True)
class Tap:
    """What the check-in carried of an NFC tap (geo/nfc.py): a token was sent, and whether it
    was the caller's own, unspent, unexpired token for this venue (the caller spent it)."""

    valid: bool


@dataclass(frozen=True)
class PreviousFix:
    """Where and when the user was seen for sure: one of their accepted fixes."""

    point: Point
    observed_at: datetime


@dataclass(frozen=True)
class History:
    """The little of the user's past that the rules need.

    A fix is judged against its neighbours in time, not against whichever accepted fix came
    last: `previous_fix` is the user's accepted fix dated at or just before the new fix's
    `observed_at`, `next_fix` the one dated just after it (None when the new fix is the latest).
    Checking only the latest let back-dated fixes be slotted between two accepted ones that
    were each plausible from the latest alone. `latest_accepted_at` is the `observed_at` of the
    user's latest accepted fix (at least `next_fix`'s; taken from the neighbours when None).
    """

    previous_fix: PreviousFix | None  # the accepted fix just before (or at) this one, any venue
    last_verified_here_at: datetime | None  # the user's last verified check-in at this venue
    next_fix: PreviousFix | None = None  # the accepted fix just after this one, any venue
    latest_accepted_at: datetime | None = None  # when the user's latest accepted fix was taken

    @property
    def latest_at(self) -> datetime | None:
        """When the user's latest accepted fix was taken, whatever the caller passed."""
        known = [
            t
            for t in (
                self.latest_accepted_at,
                self.previous_fix.observed_at if self.previous_fix else None,
                self.next_fix.observed_at if self.next_fix else None,
            )
            if t is not None
        ]
        return max(known) if known else None


@dataclass(frozen=True)
class Reason:
    """Why a fix was refused: a stable code for programs and a detail with the numbers for people."""

    code: str
    detail: str


@dataclass(frozen=True)
class Thresholds:
    """The time and speed limits of verification. The defaults are the contract's; an operator
    may change them (`CHECKIN_*` settings), and the API passes them in."""

    stale_after: timedelta = STALE_AFTER
    future_tolerance: timedelta = FUTURE_TOLERANCE
    max_speed_kmh: float = MAX_SPEED_KMH


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Verdict:
    """Every reason a fix was refused (none when it proves presence) and what was measured."""

    reasons: tuple[Reason, ...]
    distance_m: float  # geodesic metres from the fix to the fence (0 inside)
    presence_verified: bool  # a presence code was sent and accepted
    tap_verified: bool = False  # a valid tap token was spent

    @property
    def verified(self) -> bool:
        return not self.reasons


def verify_fix(
    venue: VenueSpec,
    fix: Fix,
    history: History,
    now: datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    tap: Tap | None = None,
    staff: bool = False,
) -> Verdict:
    """Judge `fix` against every rule and list every one it breaks, in `REASON_CODES` order.

    With a valid `tap`, the fix may be indoors and rough: `outside_geofence` and `low_accuracy`
    give way to a plausibility check (the fix itself, whatever its accuracy, within
    `venue.tap_radius_m` of the fence; beyond it the reason is `outside_geofence`). An invalid
    tap is `tap_invalid`, and the fix is then judged as without one. With `staff` (the merchant's
    staff recorded the visit at the venue: the fix is the venue's location) neither applies;
    every other rule (freshness, order, travel, cooldown) holds for all.

    Travel is judged against both neighbours of the fix in time (`History`), and a fix dated
    more than `thresholds.stale_after` before the user's latest accepted one is `backdated_fix`.

    `now` is the server's time, passed in so the verdict is reproducible. Malformed input
    (naive datetimes, coordinates out of range, an accuracy that is negative or not finite)
    raises `ValueError` rather than being judged: the API validates it before it gets here, and
    refusing loudly is safer than a NaN that slips through every comparison.
    """
    _check_input(venue, fix, history, now)
    distance = fence_distance_m(venue, fix.point)
    presence_verified = fix.presence_code is not None and accepts(
        venue.presence_secret, fix.presence_code, now
    )
    tapped = tap is not None and tap.valid
    if staff:
        placement: tuple[Reason | None, ...] = (None, None)
    elif tapped:
        placement = (_beyond_tap_radius(distance, venue), None)
    else:
        placement = (_outside_geofence(distance, fix), _low_accuracy(venue, fix))
    checks = (
        *placement,
        _stale_fix(fix, now, thresholds.stale_after),
        _future_fix(fix, now, thresholds.future_tolerance),
        _backdated_fix(fix, history.latest_at, thresholds.stale_after),
        _mock_location(fix),
        _impossible_travel(fix, history, thresholds.max_speed_kmh),
        _too_soon(venue, history, now),
        _presence_code_invalid(fix, presence_verified),
        _tap_invalid(tap),
    )
    return Verdict(
        reasons=tuple(r for r in checks if r is not None),
        distance_m=distance,
        presence_verified=presence_verified,
        tap_verified=tapped,
    )


def fence_distance_m(venue: VenueSpec, point: Point) -> float:
    """Geodesic metres from `point` to the venue's fence, 0 inside.

    A circle venue is measured against the true geodesic circle, so the answer does not depend
    on how many sides its stored polygon has.
    """
    if venue.radius_m is not None:
        return max(0.0, geodesic_m(venue.center, point) - venue.radius_m)
    return distance_m(point, venue.fence)


def geodesic_m(a: Point, b: Point) -> float:
    """Metres between two lon/lat points along the WGS 84 ellipsoid."""
    _, _, metres = WGS84.inv(a.x, a.y, b.x, b.y)
    return float(metres)


def _outside_geofence(distance: float, fix: Fix) -> Reason | None:
    # Only refused when even the accuracy circle cannot reach the fence: a fix just outside
    # whose circle reaches in may well have been taken inside.
    if distance <= fix.accuracy_m:
        return None
    return Reason(
        OUTSIDE_GEOFENCE,
        f"the fix is {_metres(distance)} outside the geofence; "
        f"its accuracy is {_metres(fix.accuracy_m)}",
    )


def _beyond_tap_radius(distance: float, venue: VenueSpec) -> Reason | None:
    # The tap proves someone read the tag; the fix only has to make it plausible that it was
    # this caller. Its accuracy circle is no excuse here: a fix from home with a huge claimed
    # accuracy must not reach the venue.
    if distance <= venue.tap_radius_m:
        return None
    return Reason(
        OUTSIDE_GEOFENCE,
        f"the fix is {_metres(distance)} from the venue; with a tap of its tag it must be "
        f"within {_metres(venue.tap_radius_m)}",
    )


def _tap_invalid(tap: Tap | None) -> Reason | None:
    if tap is None or tap.valid:
        return None
    return Reason(
        TAP_INVALID,
        "the tap token is not yours, not for this venue, already used or expired: tap the tag again",
    )


def _low_accuracy(venue: VenueSpec, fix: Fix) -> Reason | None:
    if fix.accuracy_m <= venue.max_accuracy_m:
        return None
    return Reason(
        LOW_ACCURACY,
        f"the fix's accuracy is {_metres(fix.accuracy_m)}; "
        f"this venue needs {_metres(venue.max_accuracy_m)} or better",
    )


def _stale_fix(fix: Fix, now: datetime, stale_after: timedelta) -> Reason | None:
    age = now - fix.observed_at
    if age <= stale_after:
        return None
    return Reason(
        STALE_FIX,
        f"the fix was taken {_duration(age)} ago; "
        f"fixes older than {_duration(stale_after)} are refused",
    )


def _future_fix(fix: Fix, now: datetime, tolerance: timedelta) -> Reason | None:
    ahead = fix.observed_at - now
    if ahead <= tolerance:
        return None
    return Reason(
        FUTURE_FIX,
        f"the fix is dated {_duration(ahead)} after the server's clock; "
        f"at most {_duration(tolerance)} of clock difference is allowed",
    )


def _mock_location(fix: Fix) -> Reason | None:
    if not fix.mock_location:
        return None
    return Reason(MOCK_LOCATION, "the phone reported a mock (simulated) location")


def _backdated_fix(fix: Fix, latest_at: datetime | None, window: timedelta) -> Reason | None:
    """Refuse a fix dated well before the user's latest accepted one.

    A phone sends its fix as it takes it: one dated more than the freshness window before a fix
    already accepted was held back or made up, and out-of-order fixes are what let a cheat slot
    a visit between two others (alternating two venues with back-dated timestamps)."""
    if latest_at is None:
        return None
    behind = latest_at - fix.observed_at
    if behind <= window:
        return None
    return Reason(
        BACKDATED_FIX,
        f"the fix is dated {_duration(behind)} before your latest accepted fix; "
        f"fixes more than {_duration(window)} older than it are refused",
    )


def _impossible_travel(fix: Fix, history: History, max_speed_kmh: float) -> Reason | None:
    """Refuse a fix the user could not have reached from, or left for, its neighbours in time.

    Each neighbour (the accepted fix just before this one's `observed_at`, and the one just
    after) must be reachable: the speed is the geodesic distance over the absolute time between
    the two fixes, the first neighbour that is too far is named. Two fixes within `SAME_PLACE_M`
    of each other are never travel (even at the same instant: the same fix sent twice); two
    fixes further apart at the same instant are always impossible (infinite speed).
    """
    for neighbour in (history.previous_fix, history.next_fix):
        if neighbour is None:
            continue
        reason = _travel_from(fix, neighbour, max_speed_kmh)
        if reason is not None:
            return reason
    return None


def _travel_from(fix: Fix, previous: PreviousFix, max_speed_kmh: float) -> Reason | None:
    distance = geodesic_m(previous.point, fix.point)
    if distance <= SAME_PLACE_M:
        return None
    elapsed = fix.observed_at - previous.observed_at
    seconds = abs(elapsed.total_seconds())
    when = "earlier" if elapsed >= timedelta(0) else "later"
    if seconds == 0:
        return Reason(
            IMPOSSIBLE_TRAVEL,
            f"the previous accepted fix was taken at the same instant {_metres(distance)} away",
        )
    speed_kmh = distance / seconds * 3.6
    if speed_kmh <= max_speed_kmh:
        return None
    which = "previous" if elapsed >= timedelta(0) else "next"
    return Reason(
        IMPOSSIBLE_TRAVEL,
        f"the {which} accepted fix was {_metres(distance)} away and "
        f"{_duration(abs(elapsed))} {when}: that needs {speed_kmh:,.0f} km/h, "
        f"more than {max_speed_kmh:g} km/h",
    )


def _too_soon(venue: VenueSpec, history: History, now: datetime) -> Reason | None:
    last = history.last_verified_here_at
    if venue.cooldown_minutes == 0 or last is None:
        return None
    cooldown = timedelta(minutes=venue.cooldown_minutes)
    elapsed = now - last
    if elapsed >= cooldown:
        return None
    # A last check-in dated after `now` (clock skew between servers) still blocks: fail closed.
    when = f"{_duration(elapsed)} ago" if elapsed >= timedelta(0) else "just now"
    return Reason(
        TOO_SOON,
        f"the last verified check-in here was {when}; this venue allows one every "
        f"{venue.cooldown_minutes} min, so the next is possible in {_duration(cooldown - elapsed)}",
    )


def _presence_code_invalid(fix: Fix, presence_verified: bool) -> Reason | None:
    if fix.presence_code is None or presence_verified:
        return None
    return Reason(
        PRESENCE_CODE_INVALID,
        "the presence code is not the venue's current or previous one "
        f"(codes change every {STEP_SECONDS} s)",
    )


def _check_input(venue: VenueSpec, fix: Fix, history: History, now: datetime) -> None:
    _check_aware("now", now)
    _check_aware("fix.observed_at", fix.observed_at)
    _check_point("fix.point", fix.point)
    if not math.isfinite(fix.accuracy_m) or fix.accuracy_m < 0:
        raise ValueError(f"fix.accuracy_m must be a finite number >= 0, not {fix.accuracy_m!r}")
    if venue.radius_m is not None:
        _check_point("venue.center", venue.center)
        if not math.isfinite(venue.radius_m) or venue.radius_m < 0:
            raise ValueError(f"venue.radius_m must be a finite number >= 0, not {venue.radius_m!r}")
    if venue.cooldown_minutes < 0:
        raise ValueError(f"venue.cooldown_minutes must be >= 0, not {venue.cooldown_minutes!r}")
    for name, neighbour in (("previous_fix", history.previous_fix), ("next_fix", history.next_fix)):
        if neighbour is not None:
            _check_point(f"history.{name}.point", neighbour.point)
            _check_aware(f"history.{name}.observed_at", neighbour.observed_at)
    if history.latest_accepted_at is not None:
        _check_aware("history.latest_accepted_at", history.latest_accepted_at)
    if history.last_verified_here_at is not None:
        _check_aware("history.last_verified_here_at", history.last_verified_here_at)


def _check_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


def _check_point(name: str, point: Point) -> None:
    if point.is_empty:
        raise ValueError(f"{name} is an empty point")
    lon, lat = point.x, point.y
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise ValueError(f"{name} has longitude {lon!r}; it must be between -180 and 180")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise ValueError(f"{name} has latitude {lat!r}; it must be between -90 and 90")


def _metres(value: float) -> str:
    """'412 m', '3.5 m' or '12.3 km': enough digits to see why a boundary was crossed."""
    if value >= 10_000:
        return f"{value / 1000:,.1f} km"
    if value >= 100:
        return f"{value:,.0f} m"
    return f"{value:.1f}".removesuffix(".0") + " m"


def _duration(delta: timedelta) -> str:
    """'45 s' or '150.5 s' up to 10 minutes (so boundaries show), then '12 min', '2 h 5 min'."""
    total = max(0.0, delta.total_seconds())
    if total < 600:
        return f"{total:.1f}".removesuffix(".0") + " s"
    minutes = round(total / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
