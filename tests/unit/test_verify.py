"""Check-in verification (`geo.verify`): every rule alone, together, at its boundary, and as
properties over venues anywhere on Earth, including near the poles and across the antimeridian.

Pure unit tests: no database, no Flask.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, box

from geo.geofence import CIRCLE_SEGMENTS, WGS84, circle
from geo.presence import accepts, code_at
from geo.verify import (
    FUTURE_TOLERANCE,
    MAX_SPEED_KMH,
    REASON_CODES,
    STALE_AFTER,
    Fix,
    History,
    PreviousFix,
    VenueSpec,
    Verdict,
    verify_fix,
)

# Mid-step, so the previous step's code is 60 s old and the one before 120 s.
NOW = datetime(2025, 3, 14, 12, 0, 30, tzinfo=UTC)
SECRET = b"0123456789abcdefghij"
BERLIN = Point(13.4050, 52.5200)
NO_HISTORY = History(previous_fix=None, last_verified_here_at=None)
# The contract: these codes, in this order.
ALL_CODES = [
    "outside_geofence",
    "low_accuracy",
    "stale_fix",
    "future_fix",
    "backdated_fix",
    "mock_location",
    "impossible_travel",
    "too_soon",
    "presence_code_invalid",
]
# 1 - cos(pi / n): how far inside the true circle the middle of a polygon side lies, per metre.
CHORD_SAG = 1 - math.cos(math.pi / CIRCLE_SEGMENTS)
PROPERTY = settings(max_examples=150, deadline=None, database=None)


def circle_venue(center: Point = BERLIN, radius_m: float = 50.0, **changes: object) -> VenueSpec:
    venue = VenueSpec(
        fence=circle(center, radius_m),
        center=center,
        radius_m=radius_m,
        cooldown_minutes=60,
        max_accuracy_m=100.0,
        presence_secret=SECRET,
    )
    return replace(venue, **changes)  # type: ignore[arg-type]


def polygon_venue(center: Point = BERLIN, half_deg: float = 0.001, **changes: object) -> VenueSpec:
    """A lon/lat square around `center` (about 136 m by 222 m in Berlin)."""
    square = box(center.x - half_deg, center.y - half_deg, center.x + half_deg, center.y + half_deg)
    venue = VenueSpec(
        fence=MultiPolygon([square]),
        center=center,
        radius_m=None,
        cooldown_minutes=60,
        max_accuracy_m=100.0,
        presence_secret=SECRET,
    )
    return replace(venue, **changes)  # type: ignore[arg-type]


def fix_at(point: Point = BERLIN, **changes: object) -> Fix:
    fix = Fix(
        point=point,
        accuracy_m=10.0,
        observed_at=NOW,
        mock_location=False,
        presence_code=None,
    )
    return replace(fix, **changes)  # type: ignore[arg-type]


def moved(point: Point, bearing: float, metres: float) -> Point:
    lon, lat, _ = WGS84.fwd(point.x, point.y, bearing, metres)
    return Point(lon, lat)


def geodesic(a: Point, b: Point) -> float:
    return float(WGS84.inv(a.x, a.y, b.x, b.y)[2])


def codes(verdict: Verdict) -> list[str]:
    return [reason.code for reason in verdict.reasons]


def previously(point: Point, ago: timedelta) -> History:
    return History(previous_fix=PreviousFix(point, NOW - ago), last_verified_here_at=None)


# --- a good fix -------------------------------------------------------------------------------


@pytest.mark.parametrize("venue", [circle_venue(), polygon_venue()], ids=["circle", "polygon"])
def test_a_fix_at_the_venue_is_verified(venue: VenueSpec) -> None:
    verdict = verify_fix(venue, fix_at(), NO_HISTORY, NOW)

    assert verdict.verified
    assert verdict.reasons == ()
    assert verdict.distance_m == 0.0
    assert not verdict.presence_verified


def test_reason_codes_are_the_public_contract() -> None:
    assert list(REASON_CODES) == [
        *ALL_CODES,
        "tap_invalid",
    ]  # tap_invalid: tests/unit/test_proof.py


# --- each reason alone ------------------------------------------------------------------------

EACH_REASON = {
    "outside_geofence": (circle_venue(), fix_at(moved(BERLIN, 45, 500)), NO_HISTORY),
    "low_accuracy": (circle_venue(), fix_at(accuracy_m=150.0), NO_HISTORY),
    "stale_fix": (
        circle_venue(),
        fix_at(observed_at=NOW - STALE_AFTER - timedelta(seconds=1)),
        NO_HISTORY,
    ),
    "future_fix": (
        circle_venue(),
        fix_at(observed_at=NOW + FUTURE_TOLERANCE + timedelta(seconds=1)),
        NO_HISTORY,
    ),
    "backdated_fix": (
        circle_venue(),
        fix_at(),
        History(
            previous_fix=None,
            last_verified_here_at=None,
            latest_accepted_at=NOW + STALE_AFTER + timedelta(seconds=1),
        ),
    ),
    "mock_location": (circle_venue(), fix_at(mock_location=True), NO_HISTORY),
    "impossible_travel": (
        circle_venue(),
        fix_at(),
        previously(moved(BERLIN, 180, 100_000), timedelta(minutes=10)),
    ),
    "too_soon": (
        circle_venue(),
        fix_at(),
        History(previous_fix=None, last_verified_here_at=NOW - timedelta(minutes=30)),
    ),
    "presence_code_invalid": (circle_venue(), fix_at(presence_code="not-a-code"), NO_HISTORY),
}


@pytest.mark.parametrize("code", ALL_CODES)
def test_each_reason_alone(code: str) -> None:
    venue, fix, history = EACH_REASON[code]

    verdict = verify_fix(venue, fix, history, NOW)

    assert codes(verdict) == [code]
    assert not verdict.verified
    assert verdict.reasons[0].detail


@pytest.mark.parametrize(
    ("observed_at", "absent"),
    [
        (NOW - timedelta(minutes=5), {"future_fix"}),
        (NOW + timedelta(minutes=5), {"stale_fix", "backdated_fix"}),
    ],
)
def test_every_reason_at_once_is_listed_in_order(observed_at: datetime, absent: set[str]) -> None:
    # A fix cannot be both stale and from the future, and one from the future is not dated
    # before the latest accepted fix (now): so "every" is eight or seven of the nine.
    venue = circle_venue()
    fix = fix_at(
        moved(BERLIN, 0, 5_000),
        accuracy_m=200.0,
        observed_at=observed_at,
        mock_location=True,
        presence_code="garbage",
    )
    history = History(
        previous_fix=PreviousFix(Point(2.3522, 48.8566), NOW - timedelta(minutes=6)),  # Paris
        last_verified_here_at=NOW - timedelta(minutes=1),
        latest_accepted_at=NOW,
    )

    verdict = verify_fix(venue, fix, history, NOW)

    assert codes(verdict) == [code for code in ALL_CODES if code not in absent]
    assert len({reason.detail for reason in verdict.reasons}) == len(ALL_CODES) - len(absent)
    assert not verdict.presence_verified


def test_several_reasons_without_the_others() -> None:
    fix = fix_at(moved(BERLIN, 90, 1_000), mock_location=True, presence_code="123")

    verdict = verify_fix(circle_venue(), fix, NO_HISTORY, NOW)

    assert codes(verdict) == ["outside_geofence", "mock_location", "presence_code_invalid"]


def test_details_carry_the_numbers() -> None:
    fix = fix_at(moved(BERLIN, 45, 462), accuracy_m=30.0)  # 412 m beyond a 50 m circle

    (reason,) = verify_fix(circle_venue(), fix, NO_HISTORY, NOW).reasons

    assert reason.detail == "the fix is 412 m outside the geofence; its accuracy is 30 m"


# --- geofence and accuracy --------------------------------------------------------------------


@pytest.mark.parametrize(("accuracy", "outside"), [(30.5, False), (29.5, True)])
def test_circle_accuracy_boundary(accuracy: float, outside: bool) -> None:
    venue = circle_venue(radius_m=50.0)
    fix = fix_at(moved(BERLIN, 123, 80.0), accuracy_m=accuracy)  # 30 m outside

    verdict = verify_fix(venue, fix, NO_HISTORY, NOW)

    assert verdict.distance_m == pytest.approx(30.0, abs=1e-6)
    assert codes(verdict) == (["outside_geofence"] if outside else [])


@pytest.mark.parametrize(("accuracy", "outside"), [(30.5, False), (29.5, True)])
def test_polygon_accuracy_boundary(accuracy: float, outside: bool) -> None:
    venue = polygon_venue(half_deg=0.001)
    east_edge = Point(BERLIN.x + 0.001, BERLIN.y)
    fix = fix_at(moved(east_edge, 90, 30.0), accuracy_m=accuracy)

    verdict = verify_fix(venue, fix, NO_HISTORY, NOW)

    assert verdict.distance_m == pytest.approx(30.0, abs=0.05)
    assert codes(verdict) == (["outside_geofence"] if outside else [])


def test_a_fix_exactly_as_far_out_as_its_accuracy_is_accepted() -> None:
    fix = fix_at(moved(BERLIN, 0, 80.0))
    distance = verify_fix(circle_venue(), fix, NO_HISTORY, NOW).distance_m

    verdict = verify_fix(circle_venue(), replace(fix, accuracy_m=distance), NO_HISTORY, NOW)

    assert verdict.verified


def test_a_circle_venue_uses_the_true_circle_not_its_polygon() -> None:
    # Halfway between two polygon vertices the polygon's side lies 1.2 m inside a 1 km circle.
    venue = circle_venue(radius_m=1_000.0)
    fix = fix_at(moved(BERLIN, 180 / CIRCLE_SEGMENTS, 999.5), accuracy_m=0.0)

    as_circle = verify_fix(venue, fix, NO_HISTORY, NOW)
    as_polygon = verify_fix(replace(venue, radius_m=None), fix, NO_HISTORY, NOW)

    assert as_circle.verified
    assert as_circle.distance_m == 0.0
    assert as_polygon.distance_m == pytest.approx(1_000 * CHORD_SAG - 0.5, abs=0.05)
    assert codes(as_polygon) == ["outside_geofence"]


def test_inside_a_polygon_is_distance_zero_whatever_the_accuracy() -> None:
    verdict = verify_fix(
        polygon_venue(),
        fix_at(Point(BERLIN.x + 0.0009, BERLIN.y - 0.0009), accuracy_m=0.0),
        NO_HISTORY,
        NOW,
    )

    assert verdict.verified
    assert verdict.distance_m == 0.0


@pytest.mark.parametrize("kind", ["circle", "polygon"])
def test_across_the_antimeridian_a_venue_is_metres_away(kind: str) -> None:
    center = Point(179.9999, 0.0)
    venue = (
        circle_venue(center) if kind == "circle" else replace(circle_venue(center), radius_m=None)
    )
    fix = fix_at(Point(-179.9999, 0.0), accuracy_m=5.0)

    verdict = verify_fix(venue, fix, NO_HISTORY, NOW)

    assert geodesic(center, fix.point) == pytest.approx(22.26, abs=0.01)
    assert verdict.verified
    assert verdict.distance_m == 0.0


@pytest.mark.parametrize("kind", ["circle", "polygon"])
def test_just_outside_across_the_antimeridian(kind: str) -> None:
    center = Point(179.9999, 60.0)
    venue = (
        circle_venue(center) if kind == "circle" else replace(circle_venue(center), radius_m=None)
    )
    fix = fix_at(moved(center, 90, 150.0), accuracy_m=20.0)  # 100 m outside, at lon -179.99...

    verdict = verify_fix(venue, fix, NO_HISTORY, NOW)

    assert fix.point.x < -179.99
    assert verdict.distance_m == pytest.approx(100.0, abs=0.1)
    assert codes(verdict) == ["outside_geofence"]


@pytest.mark.parametrize("kind", ["circle", "polygon"])
def test_high_latitude_distances_are_metres_not_degrees(kind: str) -> None:
    center = Point(25.0, 84.0)  # one degree of longitude is only 11.7 km here
    venue = (
        circle_venue(center) if kind == "circle" else replace(circle_venue(center), radius_m=None)
    )

    inside = verify_fix(venue, fix_at(moved(center, 90, 45.0)), NO_HISTORY, NOW)
    outside = verify_fix(venue, fix_at(moved(center, 90, 90.0)), NO_HISTORY, NOW)

    assert inside.verified
    assert outside.distance_m == pytest.approx(40.0, abs=0.1)
    assert codes(outside) == ["outside_geofence"]


# --- accuracy, time, mock ---------------------------------------------------------------------


def test_accuracy_equal_to_the_venues_limit_is_accepted() -> None:
    verdict = verify_fix(
        circle_venue(max_accuracy_m=25.0), fix_at(accuracy_m=25.0), NO_HISTORY, NOW
    )

    assert verdict.verified


def test_low_accuracy_detail() -> None:
    verdict = verify_fix(
        circle_venue(max_accuracy_m=25.0), fix_at(accuracy_m=80.0), NO_HISTORY, NOW
    )

    assert codes(verdict) == ["low_accuracy"]
    assert (
        verdict.reasons[0].detail == "the fix's accuracy is 80 m; this venue needs 25 m or better"
    )


@pytest.mark.parametrize(
    ("observed_at", "expected"),
    [
        (NOW - STALE_AFTER, []),
        (NOW - STALE_AFTER - timedelta(milliseconds=1), ["stale_fix"]),
        (NOW - timedelta(hours=3), ["stale_fix"]),
        (NOW + FUTURE_TOLERANCE, []),
        (NOW + FUTURE_TOLERANCE + timedelta(milliseconds=1), ["future_fix"]),
        (NOW + timedelta(days=1), ["future_fix"]),
    ],
)
def test_fix_age_boundaries(observed_at: datetime, expected: list[str]) -> None:
    verdict = verify_fix(circle_venue(), fix_at(observed_at=observed_at), NO_HISTORY, NOW)

    assert codes(verdict) == expected


def test_time_zones_do_not_matter() -> None:
    tokyo = timezone(timedelta(hours=9))
    fix = fix_at(observed_at=(NOW - timedelta(seconds=90)).astimezone(tokyo))

    assert verify_fix(circle_venue(), fix, NO_HISTORY, NOW).verified


def test_stale_detail() -> None:
    fix = fix_at(observed_at=NOW - timedelta(seconds=150))

    (reason,) = verify_fix(circle_venue(), fix, NO_HISTORY, NOW).reasons

    assert reason.detail == "the fix was taken 150 s ago; fixes older than 120 s are refused"


# --- impossible travel ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metres", "ago", "impossible"),
    [
        (100_000, timedelta(minutes=10), True),  # 600 km/h
        (10_000, timedelta(minutes=10), False),  # 60 km/h
        (49_000, timedelta(minutes=10), False),  # 294 km/h
        (51_000, timedelta(minutes=10), True),  # 306 km/h
        (1_000_000, timedelta(hours=4), False),  # 250 km/h
        (1_000_000, timedelta(hours=3), True),  # 333 km/h
    ],
)
def test_impossible_travel_from_the_previous_fix(
    metres: float, ago: timedelta, impossible: bool
) -> None:
    history = previously(moved(BERLIN, 250, metres), ago)

    verdict = verify_fix(circle_venue(), fix_at(), history, NOW)

    assert codes(verdict) == (["impossible_travel"] if impossible else [])


def test_impossible_travel_detail() -> None:
    history = previously(moved(BERLIN, 250, 100_000), timedelta(minutes=10))

    (reason,) = verify_fix(circle_venue(), fix_at(), history, NOW).reasons

    assert reason.detail == (
        "the previous accepted fix was 100.0 km away and 10 min earlier: "
        "that needs 600 km/h, more than 300 km/h"
    )


@pytest.mark.parametrize(
    ("metres", "impossible"),
    [(0.0, False), (4.0, False), (50.0, True), (5_000_000.0, True)],
)
def test_travel_at_the_same_instant(metres: float, impossible: bool) -> None:
    # The same fix sent twice (or GPS jitter) is not travel; being elsewhere at once is.
    history = previously(moved(BERLIN, 10, metres), timedelta(0))

    verdict = verify_fix(circle_venue(), fix_at(), history, NOW)

    assert codes(verdict) == (["impossible_travel"] if impossible else [])


@pytest.mark.parametrize(("metres", "impossible"), [(100_000, True), (10_000, False)])
def test_travel_to_the_next_fix_dated_after_this_one(metres: float, impossible: bool) -> None:
    # Out of order: being at both places 100 s apart is judged the same either way round.
    history = History(
        previous_fix=None,
        last_verified_here_at=None,
        next_fix=PreviousFix(moved(BERLIN, 300, metres / 6), NOW + timedelta(seconds=100)),
    )
    fix = fix_at()

    verdict = verify_fix(circle_venue(), fix, history, NOW)

    assert codes(verdict) == (["impossible_travel"] if impossible else [])
    if impossible:
        assert "next accepted fix" in verdict.reasons[0].detail
        assert "later" in verdict.reasons[0].detail


def test_a_fix_must_be_reachable_from_both_neighbours_in_time() -> None:
    # Accepted: Berlin at -100 s, and 10 km east at +100 s (10 km in 200 s: 180 km/h). A fix
    # back in Berlin at 0 s is plausible after the previous one but not before the next one
    # (10 km in 100 s: 360 km/h); judged against the latest alone it looked fine.
    east = moved(BERLIN, 90, 10_000)
    history = History(
        previous_fix=PreviousFix(BERLIN, NOW - timedelta(seconds=100)),
        last_verified_here_at=None,
        next_fix=PreviousFix(east, NOW + timedelta(seconds=20)),
    )

    verdict = verify_fix(circle_venue(), fix_at(), history, NOW)

    assert codes(verdict) == ["impossible_travel"]
    assert verdict.reasons[0].detail.startswith("the next accepted fix was 10.0 km away")
    # And the previous neighbour is judged as before.
    history = replace(history, previous_fix=PreviousFix(east, NOW - timedelta(seconds=20)))
    (reason,) = verify_fix(circle_venue(), fix_at(), history, NOW).reasons
    assert reason.detail.startswith("the previous accepted fix was 10.0 km away")


@pytest.mark.parametrize(
    ("behind", "refused"),
    [(STALE_AFTER, False), (STALE_AFTER + timedelta(seconds=1), True), (timedelta(0), False)],
)
def test_a_fix_dated_well_before_the_latest_accepted_one_is_backdated(
    behind: timedelta, refused: bool
) -> None:
    # The window is the freshness window (`stale_after`), and it is inclusive like the others.
    history = History(
        previous_fix=None,
        last_verified_here_at=None,
        next_fix=PreviousFix(BERLIN, NOW + behind),
    )

    verdict = verify_fix(circle_venue(), fix_at(), history, NOW)

    assert codes(verdict) == (["backdated_fix"] if refused else [])
    if refused:
        assert verdict.reasons[0].detail == (
            "the fix is dated 121 s before your latest accepted fix; "
            "fixes more than 120 s older than it are refused"
        )


def test_back_dated_fixes_alternating_two_venues_do_not_verify() -> None:
    # The cheat that worked: venues 10 km apart, a check-in every 10 s, each fix at A dated
    # 25 s ahead and each at B 105 s back, so every fix was 130 s (277 km/h) from the latest
    # accepted one, which was all the old rule looked at.
    a, b = BERLIN, moved(BERLIN, 90, 10_000)
    accepted: list[PreviousFix] = []
    verified = []
    for i in range(6):
        now = NOW + timedelta(seconds=10 * i)
        place, offset = (a, timedelta(seconds=25)) if i % 2 == 0 else (b, -timedelta(seconds=105))
        fix = fix_at(place, observed_at=now + offset)
        before = [f for f in accepted if f.observed_at <= fix.observed_at]
        after = [f for f in accepted if f.observed_at > fix.observed_at]
        history = History(
            previous_fix=max(before, key=lambda f: f.observed_at, default=None),
            last_verified_here_at=None,
            next_fix=min(after, key=lambda f: f.observed_at, default=None),
            latest_accepted_at=max((f.observed_at for f in accepted), default=None),
        )
        verdict = verify_fix(circle_venue(place), fix, history, now)
        verified.append(verdict.verified)
        if verdict.verified:
            accepted.append(PreviousFix(place, fix.observed_at))
        else:  # dated too far back, or (at the window's edge) too far from its next neighbour
            assert codes(verdict) in (["backdated_fix"], ["impossible_travel"])

    assert verified == [True, False, True, False, True, False]


def test_travel_across_the_antimeridian_is_short() -> None:
    center = Point(179.9999, -16.5)  # Fiji
    history = previously(Point(-179.9999, -16.5), timedelta(seconds=1))

    verdict = verify_fix(circle_venue(center), fix_at(center), history, NOW)

    assert verdict.verified


def test_the_speed_limit_is_300_kmh() -> None:
    assert MAX_SPEED_KMH == 300.0


# --- cooldown ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cooldown", "ago", "too_soon"),
    [
        (60, timedelta(minutes=59, seconds=59), True),
        (60, timedelta(minutes=60), False),
        (60, timedelta(days=2), False),
        (60, -timedelta(minutes=5), True),  # dated after now: clock skew fails closed
        (0, timedelta(seconds=1), False),  # cooldown 0 disables the rule
        (0, timedelta(0), False),
    ],
)
def test_cooldown(cooldown: int, ago: timedelta, too_soon: bool) -> None:
    venue = circle_venue(cooldown_minutes=cooldown)
    history = History(previous_fix=None, last_verified_here_at=NOW - ago)

    verdict = verify_fix(venue, fix_at(), history, NOW)

    assert codes(verdict) == (["too_soon"] if too_soon else [])


def test_cooldown_needs_a_previous_check_in_here() -> None:
    assert verify_fix(circle_venue(cooldown_minutes=1440), fix_at(), NO_HISTORY, NOW).verified


def test_too_soon_detail() -> None:
    history = History(previous_fix=None, last_verified_here_at=NOW - timedelta(minutes=20))

    (reason,) = verify_fix(circle_venue(), fix_at(), history, NOW).reasons

    assert reason.detail == (
        "the last verified check-in here was 20 min ago; this venue allows one every 60 min, "
        "so the next is possible in 40 min"
    )


# --- presence codes ---------------------------------------------------------------------------

CURRENT = code_at(SECRET, NOW)
PREVIOUS = code_at(SECRET, NOW - timedelta(seconds=60))
OLD = code_at(SECRET, NOW - timedelta(seconds=120))


def test_the_codes_used_here_are_distinct() -> None:
    assert len({CURRENT, PREVIOUS, OLD}) == 3
    assert not accepts(SECRET, OLD, NOW)


@pytest.mark.parametrize(
    ("code", "accepted"),
    [
        (CURRENT, True),
        (PREVIOUS, True),
        (f" {CURRENT}\n", True),
        (OLD, False),
        (code_at(SECRET, NOW + timedelta(seconds=60)), False),  # next step: not shown yet
        (code_at(b"another venue's secret", NOW), False),
        ("", False),
        ("abcdef", False),
        ("1234567890", False),
        ("💥", False),
    ],
)
def test_presence_code(code: str, accepted: bool) -> None:
    verdict = verify_fix(circle_venue(), fix_at(presence_code=code), NO_HISTORY, NOW)

    assert verdict.presence_verified is accepted
    assert codes(verdict) == ([] if accepted else ["presence_code_invalid"])


def test_no_presence_code_is_neither_verified_nor_invalid() -> None:
    verdict = verify_fix(circle_venue(), fix_at(presence_code=None), NO_HISTORY, NOW)

    assert verdict.verified
    assert not verdict.presence_verified


def test_a_valid_presence_code_is_reported_even_when_other_rules_fail() -> None:
    verdict = verify_fix(
        circle_venue(), fix_at(presence_code=CURRENT, mock_location=True), NO_HISTORY, NOW
    )

    assert verdict.presence_verified
    assert codes(verdict) == ["mock_location"]


# --- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fix",
    [
        fix_at(accuracy_m=math.nan),
        fix_at(accuracy_m=math.inf),
        fix_at(accuracy_m=-1.0),
        fix_at(Point(181.0, 0.0)),
        fix_at(Point(0.0, math.nan)),
        fix_at(observed_at=NOW.replace(tzinfo=None)),
    ],
    ids=["nan-accuracy", "inf-accuracy", "negative-accuracy", "lon-181", "nan-lat", "naive-time"],
)
def test_malformed_input_is_refused_loudly(fix: Fix) -> None:
    with pytest.raises(ValueError):
        verify_fix(circle_venue(), fix, NO_HISTORY, NOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_fix(circle_venue(), fix_at(), NO_HISTORY, NOW.replace(tzinfo=None))


# --- properties -------------------------------------------------------------------------------

LATITUDES = st.floats(min_value=-85.0, max_value=85.0)
LONGITUDES = st.one_of(
    st.floats(min_value=-180.0, max_value=180.0),
    st.floats(min_value=179.0, max_value=180.0),
    st.floats(min_value=-180.0, max_value=-179.0),
)
BEARINGS = st.floats(min_value=0.0, max_value=360.0, exclude_max=True)
TOLERANCE_M = 0.5


@st.composite
def circle_cases(draw: st.DrawFn) -> tuple[Point, float, float, float, float]:
    """A venue anywhere, and a fix `distance` from its center, often near the accuracy edge."""
    center = Point(draw(LONGITUDES), draw(LATITUDES))
    radius = draw(st.floats(min_value=10.0, max_value=10_000.0))
    accuracy = draw(st.floats(min_value=0.0, max_value=1_000.0))
    margin = draw(st.one_of(st.floats(-3.0, 3.0), st.floats(-25_000.0, 25_000.0)))
    distance = max(0.0, radius + accuracy + margin)
    return center, radius, draw(BEARINGS), distance, accuracy


@PROPERTY
@given(circle_cases())
def test_property_circle_outside_iff_beyond_radius_plus_accuracy(
    case: tuple[Point, float, float, float, float],
) -> None:
    center, radius, bearing, distance, accuracy = case
    venue = circle_venue(center, radius, max_accuracy_m=math.inf)
    fix = fix_at(moved(center, bearing, distance), accuracy_m=accuracy)

    verdict = verify_fix(venue, fix, NO_HISTORY, NOW)

    assert verdict.distance_m == pytest.approx(max(0.0, distance - radius), abs=1e-3)
    assert set(codes(verdict)) <= {"outside_geofence"}
    excess = distance - radius - accuracy
    if abs(excess) > TOLERANCE_M:
        assert ("outside_geofence" in codes(verdict)) is (excess > 0)


@PROPERTY
@given(circle_cases())
def test_property_polygon_distance_matches_the_geodesic_circle(
    case: tuple[Point, float, float, float, float],
) -> None:
    # The same circle as a 64-gon: geofence.distance_m must agree with the true circle up to
    # how far the polygon's sides cut inside it, anywhere on Earth.
    center, radius, bearing, distance, accuracy = case
    venue = replace(circle_venue(center, radius, max_accuracy_m=math.inf), radius_m=None)
    fix = fix_at(moved(center, bearing, distance), accuracy_m=accuracy)

    verdict = verify_fix(venue, fix, NO_HISTORY, NOW)

    exact = max(0.0, distance - radius)
    assert exact - 0.01 <= verdict.distance_m <= exact + radius * CHORD_SAG + 0.01
    if distance - radius - accuracy > TOLERANCE_M:
        assert "outside_geofence" in codes(verdict)
    if distance + radius * CHORD_SAG - radius - accuracy < -TOLERANCE_M:
        assert codes(verdict) == []


def _haversine_m(a: Point, b: Point) -> float:
    """Great-circle metres on a sphere: an independent, ellipsoid-free estimate."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a.x, a.y, b.x, b.y))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


@PROPERTY
@given(
    west=st.floats(min_value=0.0, max_value=0.01),
    east=st.floats(min_value=0.0, max_value=0.01),
    lat=LATITUDES,
    dlat=st.floats(min_value=-0.001, max_value=0.001),
    polygon=st.booleans(),
)
def test_property_across_the_antimeridian_the_distance_is_small(
    west: float, east: float, lat: float, dlat: float, polygon: bool
) -> None:
    center = Point(180.0 - west, lat)
    fix_point = Point(-180.0 + east, lat + dlat)
    venue = circle_venue(center, 50.0, max_accuracy_m=math.inf)
    if polygon:
        venue = replace(venue, radius_m=None)
    history = previously(center, timedelta(minutes=1))  # at most 2.4 km in a minute: < 300 km/h

    verdict = verify_fix(venue, fix_at(fix_point, accuracy_m=0.0), history, NOW)

    straight = _haversine_m(center, fix_point)
    assert straight < 2_500.0
    assert verdict.distance_m < 2_500.0
    assert verdict.distance_m == pytest.approx(max(0.0, straight - 50.0), rel=0.01, abs=1.0)
    assert "impossible_travel" not in codes(verdict)


OFFSETS = st.floats(min_value=-900.0, max_value=900.0).map(lambda s: timedelta(seconds=s))


@st.composite
def any_check_in(draw: st.DrawFn) -> tuple[VenueSpec, Fix, History]:
    center = Point(draw(LONGITUDES), draw(LATITUDES))
    if draw(st.booleans()):
        venue = circle_venue(center, draw(st.floats(10.0, 2_000.0)))
    else:
        venue = polygon_venue(center, draw(st.floats(0.0001, 0.01)))
    venue = replace(
        venue,
        cooldown_minutes=draw(st.integers(0, 240)),
        max_accuracy_m=draw(st.floats(1.0, 500.0)),
    )
    code = draw(
        st.one_of(
            st.none(),
            st.just(CURRENT),
            st.just(PREVIOUS),
            st.just(OLD),
            st.text(max_size=8),
        )
    )
    fix = Fix(
        point=moved(center, draw(BEARINGS), draw(st.floats(0.0, 5_000.0))),
        accuracy_m=draw(st.floats(0.0, 1_000.0)),
        observed_at=NOW + draw(OFFSETS),
        mock_location=draw(st.booleans()),
        presence_code=code,
    )
    previous = draw(
        st.one_of(
            st.none(),
            st.builds(
                lambda bearing, metres, offset: PreviousFix(
                    moved(center, bearing, metres), NOW + offset
                ),
                BEARINGS,
                st.floats(0.0, 200_000.0),
                OFFSETS,
            ),
        )
    )
    last_here = draw(st.one_of(st.none(), OFFSETS.map(lambda offset: NOW - offset * 20)))
    return venue, fix, History(previous_fix=previous, last_verified_here_at=last_here)


@PROPERTY
@given(any_check_in())
def test_property_deterministic_ordered_and_without_duplicates(
    case: tuple[VenueSpec, Fix, History],
) -> None:
    venue, fix, history = case

    verdict = verify_fix(venue, fix, history, NOW)

    assert verify_fix(venue, fix, history, NOW) == verdict
    found = codes(verdict)
    assert len(found) == len(set(found))
    assert found == [code for code in ALL_CODES if code in found]
    assert verdict.verified is (not found)
    assert all(reason.detail for reason in verdict.reasons)
    assert verdict.distance_m >= 0.0
    # The rules that need no geometry, restated independently.
    last = history.last_verified_here_at
    sent = fix.presence_code
    expected = {
        "low_accuracy": fix.accuracy_m > venue.max_accuracy_m,
        "stale_fix": NOW - fix.observed_at > timedelta(minutes=2),
        "future_fix": fix.observed_at - NOW > timedelta(seconds=30),
        "mock_location": fix.mock_location,
        "too_soon": venue.cooldown_minutes > 0
        and last is not None
        and NOW - last < timedelta(minutes=venue.cooldown_minutes),
        "presence_code_invalid": sent is not None and sent.strip() not in (CURRENT, PREVIOUS),
        "backdated_fix": history.previous_fix is not None
        and history.previous_fix.observed_at - fix.observed_at > timedelta(minutes=2),
        "outside_geofence": verdict.distance_m > fix.accuracy_m,
    }
    for code, applies in expected.items():
        assert (code in found) is applies, code
    assert verdict.presence_verified is (sent is not None and sent.strip() in (CURRENT, PREVIOUS))
    if history.previous_fix is None:
        assert "impossible_travel" not in found
