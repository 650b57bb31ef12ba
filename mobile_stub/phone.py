"""A simulated phone: location fixes as a real phone's OS reports them.

- Every fix has GPS noise, and an `accuracy_m` that is, as on Android and iOS, the radius of the
  circle that holds the true position about 68% of the time. Outdoors it is a few metres;
  indoors (walls, a roof) it is tens of metres, and a coarse network fix (cell towers, Wi-Fi) is
  hundreds.
- A fix is a little old when the app gets it (`observed_at` is before now).
- Walks follow a `Route` at walking speed and report fixes along the way.
- A mock-location app replaces the position and sets the OS's mock flag; a rooted phone can hide
  the flag.

Time comes from a `Clock`: `SystemClock` is the real clock, optionally played faster than real
time (walks and fix ages shrink together); `ManualClock` is simulated time, for tests.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from mobile_stub.geodesy import LatLon, distance_m, offset, towards

# The accuracy circle holds 68% of fixes: for a 2D Gaussian error with standard deviation s on
# each axis, P(r <= R) = 1 - exp(-R^2 / 2s^2) = 0.68 gives R = 1.51 s.
SIGMA_PER_ACCURACY = 1 / math.sqrt(-2 * math.log(1 - 0.68))
# Errors beyond this many times the accuracy are drawn again: a GPS fix is occasionally worse
# than its accuracy says, but not wildly so.
MAX_ERROR_PER_ACCURACY = 3.0
WALKING_SPEED_MPS = 1.4  # about 5 km/h


class Clock(Protocol):
    def now(self) -> datetime:
        """The phone's idea of the current time (UTC)."""

    def sleep(self, seconds: float) -> None:
        """Let `seconds` of the phone's time pass."""

    def scaled(self, seconds: float) -> timedelta:
        """How much of `now()` `seconds` of the phone's time is."""


class SystemClock:
    """The real clock. With `speedup` > 1, the phone's time plays that many times faster: a
    5-minute walk passes in 300 / speedup real seconds (and fixes are stamped in real time)."""

    def __init__(self, speedup: float = 1.0):
        if speedup < 1:
            raise ValueError("speedup must be at least 1")
        self.speedup = speedup

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) / self.speedup)

    def scaled(self, seconds: float) -> timedelta:
        return timedelta(seconds=seconds / self.speedup)


class ManualClock:
    """Simulated time: `sleep` just moves it on."""

    def __init__(self, start: datetime | None = None):
        self.t = start or datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += timedelta(seconds=max(0.0, seconds))

    def scaled(self, seconds: float) -> timedelta:
        return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Environment:
    """How good fixes are somewhere: reported accuracy (a log-normal around `accuracy_median_m`,
    kept within `accuracy_range_m`) and the age of a fix when the app gets it."""

    name: str
    accuracy_median_m: float
    accuracy_range_m: tuple[float, float]
    age_range_s: tuple[float, float]


OUTDOORS = Environment("outdoors", 6.0, (3.0, 20.0), (0.0, 2.0))
INDOORS = Environment("indoors", 22.0, (8.0, 65.0), (0.0, 8.0))
# A network (cell/Wi-Fi) fix, what a phone answers first when GPS has no view of the sky.
COARSE = Environment("coarse network fix", 200.0, (101.0, 800.0), (0.0, 15.0))


@dataclass(frozen=True)
class Fix:
    """One location fix, as the OS reports it to the app."""

    lat: float
    lon: float
    accuracy_m: float
    observed_at: datetime
    mock_location: bool = False

    @property
    def position(self) -> LatLon:
        return LatLon(self.lat, self.lon)

    def check_in_args(self) -> dict[str, Any]:
        """The fix as `Client.check_in` takes it: `check_in(venue_id, **fix.check_in_args())`."""
        return {
            "lat": round(self.lat, 7),
            "lon": round(self.lon, 7),
            "accuracy_m": round(self.accuracy_m, 1),
            "observed_at": self.observed_at.isoformat(),
            "mock_location": self.mock_location,
        }

    def redated(self, observed_at: datetime) -> Fix:
        return replace(self, observed_at=observed_at)


@dataclass(frozen=True)
class WalkStep:
    """Where the walker truly is at `time`, and the fix the phone reports there."""

    time: datetime
    position: LatLon
    fix: Fix


@dataclass
class MockProvider:
    """A mock-location app: it reports `position` exactly, with a plausible accuracy."""

    position: LatLon
    accuracy_m: float = 5.0
    hide_flag: bool = False  # a rooted phone can hide the OS's mock flag


class Phone:
    """A phone at a true position. `fix()` is what its location API answers."""

    def __init__(
        self,
        position: LatLon,
        *,
        clock: Clock | None = None,
        seed: int | None = None,
        environment: Environment = OUTDOORS,
    ):
        self.position = position
        self.clock: Clock = clock or SystemClock()
        self.rng = random.Random(seed)
        self.environment = environment
        self.mock: MockProvider | None = None

    # ---- fixes ----

    def fix(self, environment: Environment | None = None) -> Fix:
        """A fresh fix here: noisy, with its accuracy, a little old; or the mock app's."""
        env = environment or self.environment
        age = self.clock.scaled(self.rng.uniform(*env.age_range_s))
        observed_at = self.clock.now() - age
        if self.mock is not None:
            spot = self.mock.position
            return Fix(
                spot.lat, spot.lon, self.mock.accuracy_m, observed_at, not self.mock.hide_flag
            )
        accuracy = self.accuracy(env)
        east, north = self.error(accuracy)
        noisy = offset(self.position, east, north)
        return Fix(noisy.lat, noisy.lon, accuracy, observed_at, False)

    def coarse_fix(self) -> Fix:
        """What the OS answers first indoors: a network fix, hundreds of metres wide."""
        return self.fix(COARSE)

    def accuracy(self, env: Environment) -> float:
        low, high = env.accuracy_range_m
        return min(high, max(low, self.rng.lognormvariate(math.log(env.accuracy_median_m), 0.35)))

    def error(self, accuracy_m: float) -> tuple[float, float]:
        """Metres east and north of the true position, within `MAX_ERROR_PER_ACCURACY`."""
        sigma = accuracy_m * SIGMA_PER_ACCURACY
        while True:
            east, north = self.rng.gauss(0, sigma), self.rng.gauss(0, sigma)
            if math.hypot(east, north) <= MAX_ERROR_PER_ACCURACY * accuracy_m:
                return east, north

    # ---- moving ----

    def walk(
        self,
        points: list[LatLon],
        *,
        speed_mps: float = WALKING_SPEED_MPS,
        fix_every_s: float = 5.0,
    ) -> Iterator[WalkStep]:
        """Walk along `points` at `speed_mps` (outdoors), reporting a fix every `fix_every_s`.

        Time passes on the phone's clock as the walker moves: on a `SystemClock` with a speedup
        the walk plays that much faster, so the server sees that speed multiplied.
        """
        self.environment = OUTDOORS
        self.position = points[0]
        step_m = speed_mps * fix_every_s
        for target in points[1:]:
            while self.position != target:
                leg = min(step_m, distance_m(self.position, target))
                self.clock.sleep(leg / speed_mps)
                self.position = towards(self.position, target, leg)
                yield WalkStep(self.clock.now(), self.position, self.fix())

    def go_inside(self, position: LatLon | None = None) -> None:
        """Step indoors (at `position`, e.g. a spot inside the venue): fixes get worse."""
        if position is not None:
            self.position = position
        self.environment = INDOORS

    def wait(self, seconds: float) -> None:
        self.clock.sleep(seconds)

    def use_mock_app(self, position: LatLon, *, hide_flag: bool = False) -> None:
        """Start a mock-location app that puts the phone at `position`."""
        self.mock = MockProvider(position, hide_flag=hide_flag)

    def stop_mock_app(self) -> None:
        self.mock = None
