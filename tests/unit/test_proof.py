"""Proof levels (geo/proof.py) and what a tap changes in verification (geo/verify.py): a valid
tap trades the geofence and accuracy checks for the tap radius, and nothing else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point

from geo import proof
from geo.geofence import circle
from geo.verify import Fix, History, PreviousFix, Tap, VenueSpec, verify_fix
from offers.engine import (
    NFC_TAP_REQUIRED,
    PRESENCE_CODE_REQUIRED,
    UNDER_STRIKE,
    OfferTerms,
    VisitFacts,
    decide,
)
from offers.rules import EveryCheckin

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
CENTER = Point(24.9384, 60.1699)
DEG_PER_M = 1 / 111_320  # of latitude


def venue(tap_radius_m: float = 500.0) -> VenueSpec:
    return VenueSpec(
        fence=circle(CENTER, 50.0),
        center=CENTER,
        radius_m=50.0,
        cooldown_minutes=0,
        max_accuracy_m=100.0,
        presence_secret=b"s" * 20,
        tap_radius_m=tap_radius_m,
    )


def fix(north_m: float = 0.0, accuracy_m: float = 10.0, **kwargs: object) -> Fix:
    point = Point(CENTER.x, CENTER.y + north_m * DEG_PER_M)
    return Fix(point, accuracy_m, kwargs.pop("observed_at", NOW), False, None)  # type: ignore[arg-type]


NO_HISTORY = History(None, None)


def codes(verdict: object) -> list[str]:
    return [r.code for r in verdict.reasons]  # type: ignore[attr-defined]


def test_levels_are_ordered_and_staff_satisfies_all() -> None:
    assert proof.PROOFS == ("gps", "presence_code", "nfc_tap", "staff")
    for required in proof.MIN_PROOFS:
        assert proof.satisfies("staff", required)
        assert proof.satisfies(required, required)
    assert proof.satisfies("nfc_tap", "presence_code")
    assert not proof.satisfies("presence_code", "nfc_tap")
    assert not proof.satisfies("gps", "presence_code")
    assert proof.effective_min_proof("gps", True) == "presence_code"
    assert proof.effective_min_proof("nfc_tap", True) == "nfc_tap"


def test_a_valid_tap_replaces_geofence_and_accuracy_by_the_tap_radius() -> None:
    indoors = fix(north_m=300, accuracy_m=200)
    assert codes(verify_fix(venue(), indoors, NO_HISTORY, NOW)) == [
        "outside_geofence",
        "low_accuracy",
    ]
    tapped = verify_fix(venue(), indoors, NO_HISTORY, NOW, tap=Tap(valid=True))
    assert tapped.verified and tapped.tap_verified
    # Beyond the radius, whatever the accuracy claimed.
    far = verify_fix(venue(), fix(north_m=700, accuracy_m=5_000), NO_HISTORY, NOW, tap=Tap(True))
    assert codes(far) == ["outside_geofence"]
    assert not far.verified


def test_an_invalid_tap_is_its_own_reason_and_relaxes_nothing() -> None:
    verdict = verify_fix(venue(), fix(north_m=300), NO_HISTORY, NOW, tap=Tap(valid=False))
    assert codes(verdict) == ["outside_geofence", "tap_invalid"]
    assert not verdict.tap_verified


def test_every_other_reason_still_applies_with_a_tap() -> None:
    stale = fix(observed_at=NOW - timedelta(minutes=5))
    assert codes(verify_fix(venue(), stale, NO_HISTORY, NOW, tap=Tap(True))) == ["stale_fix"]
    far_away_before = History(
        PreviousFix(Point(CENTER.x + 1.0, CENTER.y), NOW - timedelta(minutes=1)), None
    )
    travelled = verify_fix(venue(), fix(), far_away_before, NOW, tap=Tap(True))
    assert codes(travelled) == ["impossible_travel"]


@settings(max_examples=200, deadline=None, database=None)
@given(
    north_m=st.floats(min_value=0, max_value=2_000),
    accuracy_m=st.floats(min_value=1, max_value=10_000),
    radius=st.floats(min_value=10, max_value=5_000),
)
def test_with_a_tap_only_the_distance_to_the_fence_decides_placement(
    north_m: float, accuracy_m: float, radius: float
) -> None:
    verdict = verify_fix(
        venue(radius), fix(north_m, accuracy_m), NO_HISTORY, NOW, tap=Tap(valid=True)
    )
    assert "low_accuracy" not in codes(verdict)
    assert ("outside_geofence" in codes(verdict)) == (verdict.distance_m > radius)


TERMS = dict(
    id=uuid.UUID(int=1),
    rule=EveryCheckin(),
    starts_at=None,
    ends_at=None,
    windows=(),
    per_user_cap=5,
    holdout_pct=0,
)
FACTS = VisitFacts(1, None, 0, 0, 0, 0)
TZ = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("min_proof", "flag", "carried", "outcome"),
    [
        ("gps", False, "gps", "unlock"),
        ("gps", True, "gps", PRESENCE_CODE_REQUIRED),
        ("presence_code", False, "gps", PRESENCE_CODE_REQUIRED),
        ("presence_code", True, "presence_code", "unlock"),
        ("presence_code", True, "nfc_tap", "unlock"),
        ("nfc_tap", True, "presence_code", NFC_TAP_REQUIRED),
        ("nfc_tap", True, "nfc_tap", "unlock"),
        ("nfc_tap", True, "staff", "unlock"),
    ],
)
def test_an_offer_unlocks_only_at_its_level(
    min_proof: str, flag: bool, carried: str, outcome: str
) -> None:
    terms = OfferTerms(**TERMS, requires_presence_code=flag, min_proof=min_proof)  # type: ignore[arg-type]
    decision = decide(
        terms, FACTS, TZ, NOW, user_id=uuid.UUID(int=2), presence_verified=False, proof=carried
    )
    assert (decision.outcome if decision.outcome == "unlock" else decision.why) == outcome


def test_a_tap_or_staff_lifts_a_strike_like_the_presence_code() -> None:
    terms = OfferTerms(**TERMS, requires_presence_code=False)  # type: ignore[arg-type]
    for carried, outcome in (("gps", UNDER_STRIKE), ("nfc_tap", ""), ("staff", "")):
        decision = decide(
            terms,
            FACTS,
            TZ,
            NOW,
            user_id=uuid.UUID(int=2),
            presence_verified=False,
            under_strike=True,
            proof=carried,
        )
        assert decision.why == outcome
