"""The simulated phone (`mobile_stub.phone`): noise and accuracy as phones report them, fix ages,
walks at walking speed, and the OS's mock flag. Pure: simulated time, seeded randomness."""

from __future__ import annotations

import inspect
import statistics
import time
from datetime import timedelta
from itertools import pairwise

import pytest

from mobile_stub.client import Client
from mobile_stub.geodesy import LatLon, distance_m, offset, path_length_m
from mobile_stub.phone import (
    COARSE,
    INDOORS,
    MAX_ERROR_PER_ACCURACY,
    OUTDOORS,
    WALKING_SPEED_MPS,
    Environment,
    ManualClock,
    Phone,
    SystemClock,
)

SENATE_SQUARE = LatLon(60.1695, 24.9522)
SAMPLES = 3_000


def fixes(env: Environment, seed: int = 1) -> tuple[ManualClock, Phone, list]:
    clock = ManualClock()
    phone = Phone(SENATE_SQUARE, clock=clock, seed=seed, environment=env)
    return clock, phone, [phone.fix() for _ in range(SAMPLES)]


@pytest.mark.parametrize("env", [OUTDOORS, INDOORS, COARSE], ids=lambda e: e.name)
def test_accuracy_and_noise_stay_within_the_environments_bounds(env: Environment) -> None:
    _, _, sample = fixes(env)
    low, high = env.accuracy_range_m
    assert all(low <= f.accuracy_m <= high for f in sample)
    errors = [distance_m(SENATE_SQUARE, f.position) / f.accuracy_m for f in sample]
    # The error is never wild, and the accuracy circle holds about 68% of true positions.
    assert max(errors) <= MAX_ERROR_PER_ACCURACY + 1e-6
    within = sum(e <= 1 for e in errors) / len(errors)
    assert 0.63 <= within <= 0.73
    assert statistics.median(f.accuracy_m for f in sample) == pytest.approx(
        env.accuracy_median_m, rel=0.1
    )


def test_indoors_is_worse_than_outdoors_and_a_network_fix_worse_still() -> None:
    medians = [
        statistics.median(f.accuracy_m for f in fixes(env)[2])
        for env in (OUTDOORS, INDOORS, COARSE)
    ]
    assert medians[0] * 2 < medians[1] and medians[1] * 4 < medians[2]
    # A network fix is worse than the 100 m a venue accepts by default.
    assert all(f.accuracy_m > 100 for f in fixes(COARSE)[2])


@pytest.mark.parametrize("env", [OUTDOORS, INDOORS], ids=lambda e: e.name)
def test_a_fix_is_a_little_old_never_from_the_future(env: Environment) -> None:
    clock, _, sample = fixes(env)
    ages = [clock.now() - f.observed_at for f in sample]
    low, high = env.age_range_s
    assert all(timedelta(seconds=low) <= age <= timedelta(seconds=high) for age in ages)
    assert max(ages) > timedelta(seconds=high * 0.9)  # ages vary across the range


def test_the_same_seed_gives_the_same_fixes() -> None:
    assert fixes(INDOORS, seed=7)[2] == fixes(INDOORS, seed=7)[2]
    assert fixes(INDOORS, seed=7)[2] != fixes(INDOORS, seed=8)[2]


def test_a_walk_moves_at_walking_speed_and_reports_fixes_on_the_way() -> None:
    clock = ManualClock()
    route = [
        SENATE_SQUARE,
        offset(SENATE_SQUARE, 120, 0),
        offset(SENATE_SQUARE, 120, 85),
        offset(SENATE_SQUARE, 40, 200),
    ]
    phone = Phone(route[0], clock=clock, seed=3, environment=INDOORS)
    start = clock.now()
    steps = list(phone.walk(route, fix_every_s=5))

    assert phone.position == route[-1]
    assert phone.environment is OUTDOORS
    elapsed = (steps[-1].time - start).total_seconds()
    assert elapsed == pytest.approx(path_length_m(route) / WALKING_SPEED_MPS, rel=1e-6)
    previous = (start, route[0])
    for step in steps:
        seconds = (step.time - previous[0]).total_seconds()
        assert 0 < seconds <= 5 + 1e-9
        # Never faster than walking (slower in a straight line only when turning a corner).
        assert distance_m(previous[1], step.position) / seconds <= WALKING_SPEED_MPS * 1.0001
        assert step.fix.observed_at <= step.time
        assert distance_m(step.position, step.fix.position) <= 3 * step.fix.accuracy_m + 1e-6
        previous = (step.time, step.position)
    assert len(steps) >= path_length_m(route) / (WALKING_SPEED_MPS * 5)
    assert all(a.time < b.time for a, b in pairwise(steps))


def test_a_walk_plays_faster_on_a_sped_up_clock() -> None:
    phone = Phone(SENATE_SQUARE, clock=SystemClock(speedup=2_000), seed=1)
    route = [SENATE_SQUARE, offset(SENATE_SQUARE, 0, 280)]  # 200 s of walking
    started = time.monotonic()
    steps = list(phone.walk(route))
    real = time.monotonic() - started
    assert 0.08 <= real < 2
    seen = (steps[-1].time - steps[0].time).total_seconds()
    # The server sees the walk at `speedup` times walking speed.
    assert distance_m(steps[0].position, steps[-1].position) / seen > WALKING_SPEED_MPS * 100


def test_a_mock_location_app_sets_the_flag_unless_the_phone_hides_it() -> None:
    venue = offset(SENATE_SQUARE, 2_000, 0)
    phone = Phone(SENATE_SQUARE, clock=ManualClock(), seed=1)
    assert phone.fix().mock_location is False

    phone.use_mock_app(venue)
    fix = phone.fix()
    assert fix.mock_location is True
    assert fix.position == venue  # mock apps report exactly where they are told

    phone.use_mock_app(venue, hide_flag=True)
    assert phone.fix().mock_location is False
    assert phone.fix().position == venue

    phone.stop_mock_app()
    fix = phone.fix()
    assert fix.mock_location is False
    assert distance_m(SENATE_SQUARE, fix.position) <= 3 * fix.accuracy_m


def test_a_fix_fits_the_clients_check_in_call() -> None:
    fix = Phone(SENATE_SQUARE, clock=ManualClock(), seed=1).fix()
    args = fix.check_in_args()
    assert set(args) <= set(inspect.signature(Client.check_in).parameters)
    assert args["observed_at"].endswith("+00:00")
    assert isinstance(args["mock_location"], bool)


def test_a_sped_up_clock_refuses_to_run_slow() -> None:
    with pytest.raises(ValueError):
        SystemClock(speedup=0.5)
