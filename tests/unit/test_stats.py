"""The lift interval: Newcombe's hybrid score interval for a difference of proportions."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offers.stats import newcombe_difference, wilson


def test_matches_newcombes_published_examples() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10.
    assert newcombe_difference(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert newcombe_difference(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=5e-5)


def test_wilson_known_value() -> None:
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)


@given(
    st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
@settings(max_examples=300, database=None)
def test_interval_contains_the_estimate_and_stays_in_range(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    low, high = newcombe_difference(a[0], a[1], b[0], b[1])
    estimate = a[0] / a[1] - b[0] / b[1]
    assert -1.0 <= low <= estimate + 1e-12 and estimate - 1e-12 <= high <= 1.0


def test_coverage_is_close_to_95_percent() -> None:
    rng = random.Random(7)
    p1, p2, n = 0.35, 0.2, 120
    trials, covered = 2_000, 0
    for _ in range(trials):
        x1 = sum(rng.random() < p1 for _ in range(n))
        x2 = sum(rng.random() < p2 for _ in range(n))
        low, high = newcombe_difference(x1, n, x2, n)
        covered += low <= p1 - p2 <= high
    assert 0.93 <= covered / trials <= 0.97
