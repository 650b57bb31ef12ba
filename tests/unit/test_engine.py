"""The unlock engine: rules, schedules (incl. DST), holdout and the order `decide` applies them in.

Pure: no database, no app. Instants are written in UTC wherever DST matters, so each test states
exactly which moment it means rather than relying on the zone's own resolution of a local time.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offers.engine import (
    Decision,
    OfferTerms,
    VisitFacts,
    decide,
    in_holdout,
    in_schedule,
    rule_met,
)
from offers.rules import (
    EveryCheckin,
    FirstVisit,
    Group,
    NthVisit,
    Rule,
    TopVisitor,
    Window,
    describe_rule,
    rule_from_json,
    window_from_json,
)

HELSINKI = ZoneInfo("Europe/Helsinki")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
ALL_DAYS = frozenset({"mon", "tue", "wed", "thu", "fri", "sat", "sun"})
OFFER_ID = uuid.UUID("11111111-1111-4111-8111-111111111111")
USER_ID = uuid.UUID("22222222-2222-4222-8222-222222222222")


def terms(**changes: object) -> OfferTerms:
    """An always-open, uncapped-enough offer with no holdout; tests change only what they test."""
    base = OfferTerms(
        id=OFFER_ID,
        rule=EveryCheckin(),
        starts_at=None,
        ends_at=None,
        windows=(),
        per_user_cap=1,
        requires_presence_code=False,
        holdout_pct=0.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def facts(**changes: int | None) -> VisitFacts:
    """The facts of a user's first-ever check-in, alone at the venue."""
    base = VisitFacts(
        visits=1,
        visits_within=None,
        user_unlocks=0,
        top_visits=1,
        best_other_visits=0,
        group_size=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def local(tz: ZoneInfo, y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    """A local wall-clock time that is unambiguous (not in a DST gap or fold)."""
    return datetime(y, mo, d, h, mi, tzinfo=tz)


def window(days: str, start: str, end: str) -> Window:
    return window_from_json({"days": days.split(), "start": start, "end": end})


def open_at(windows: tuple[Window, ...], tz: ZoneInfo, now: datetime) -> bool:
    return in_schedule(terms(windows=windows), tz, now)


# --- rules -----------------------------------------------------------------------------------


def test_every_checkin_always_met() -> None:
    assert rule_met(EveryCheckin(), facts())
    assert rule_met(EveryCheckin(), facts(visits=57, user_unlocks=9))


@pytest.mark.parametrize(("visits", "met"), [(1, True), (2, False), (10, False)])
def test_first_visit_only_on_the_first_verified_checkin(visits: int, met: bool) -> None:
    assert rule_met(FirstVisit(), facts(visits=visits)) is met


@pytest.mark.parametrize(
    ("visits", "unlocks", "met"),
    [(1, 0, False), (2, 0, False), (3, 0, True), (4, 0, False), (6, 0, False), (3, 1, False)],
)
def test_nth_visit_once_unlocks_exactly_at_n_and_only_once(
    visits: int, unlocks: int, met: bool
) -> None:
    assert rule_met(NthVisit(3), facts(visits=visits, user_unlocks=unlocks)) is met


@pytest.mark.parametrize(
    ("visits", "met"), [(1, False), (2, False), (3, True), (4, False), (6, True), (9, True)]
)
def test_nth_visit_repeat_unlocks_every_nth(visits: int, met: bool) -> None:
    # Earlier unlocks don't matter to the rule (the per-user cap is a separate check).
    assert rule_met(NthVisit(3, repeat=True), facts(visits=visits, user_unlocks=2)) is met


def test_nth_visit_repeat_zero_visits_is_not_a_multiple() -> None:
    assert not rule_met(NthVisit(3, repeat=True), facts(visits=0))


def test_nth_visit_within_days_counts_only_recent_visits() -> None:
    rule = NthVisit(3, within_days=30)
    assert rule_met(rule, facts(visits=10, visits_within=3))
    assert not rule_met(rule, facts(visits=3, visits_within=2))
    assert not rule_met(rule, facts(visits=10, visits_within=3, user_unlocks=1))


def test_nth_visit_within_days_repeat() -> None:
    rule = NthVisit(2, within_days=7, repeat=True)
    assert rule_met(rule, facts(visits=5, visits_within=4))
    assert not rule_met(rule, facts(visits=4, visits_within=3))


def test_nth_visit_within_days_without_the_count_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="visits_within"):
        rule_met(NthVisit(3, within_days=30), facts(visits=3, visits_within=None))


def test_nth_visit_of_zero_never_unlocks() -> None:
    assert not rule_met(NthVisit(0, repeat=True), facts(visits=0))
    assert not rule_met(NthVisit(0), facts(visits=1))


@pytest.mark.parametrize(
    ("mine", "best_other", "met"), [(5, 4, True), (5, 5, False), (4, 5, False), (2, 0, True)]
)
def test_top_visitor_must_be_strictly_the_most(mine: int, best_other: int, met: bool) -> None:
    rule = TopVisitor(window_days=60)
    assert rule_met(rule, facts(top_visits=mine, best_other_visits=best_other)) is met


@pytest.mark.parametrize(
    ("mine", "best_other", "min_visits", "met"),
    [
        (1, 0, 2, False),  # a first-time visitor on a quiet day is not the regular of the month
        (2, 0, 2, True),
        (2, 1, 2, True),
        (1, 0, 1, True),  # min_visits 1: the most visits is enough
        (3, 2, 4, False),
        (4, 2, 4, True),
        (4, 4, 4, False),  # enough visits, but tied
    ],
)
def test_top_visitor_needs_min_visits(
    mine: int, best_other: int, min_visits: int, met: bool
) -> None:
    rule = TopVisitor(window_days=30, min_visits=min_visits)
    assert rule_met(rule, facts(top_visits=mine, best_other_visits=best_other)) is met


def test_top_visitor_takes_min_visits_from_json_with_the_contracts_default() -> None:
    assert rule_from_json({"kind": "top_visitor"}) == TopVisitor(window_days=60, min_visits=2)
    assert rule_from_json({"kind": "top_visitor", "window_days": 7, "min_visits": 3}) == TopVisitor(
        window_days=7, min_visits=3
    )
    assert describe_rule(rule_from_json({"kind": "top_visitor"})) == (
        "Be the most frequent visitor over 60 days, with at least 2 visits"
    )
    assert describe_rule(TopVisitor(window_days=30, min_visits=1)) == (
        "Be the most frequent visitor over 30 days, with at least 1 visit"
    )


@pytest.mark.parametrize(("size", "met"), [(1, False), (2, False), (3, True), (7, True)])
def test_group_needs_min_people(size: int, met: bool) -> None:
    assert rule_met(Group(min_people=3, within_minutes=15), facts(group_size=size)) is met


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "every_checkin"},
        {"kind": "first_visit"},
        {"kind": "nth_visit", "visits": 1},
        {"kind": "top_visitor", "min_visits": 1},
        {"kind": "group", "min_people": 1, "within_minutes": 5},
    ],
)
def test_every_rule_kind_from_json_is_handled(data: dict[str, object]) -> None:
    rule: Rule = rule_from_json(data)
    assert rule_met(rule, facts())


# --- start / end bounds ----------------------------------------------------------------------


def test_starts_at_is_inclusive_and_ends_at_exclusive() -> None:
    start, end = utc(2026, 5, 1, 12), utc(2026, 5, 8, 12)
    t = terms(starts_at=start, ends_at=end)
    second = timedelta(seconds=1)
    assert not in_schedule(t, HELSINKI, start - second)
    assert in_schedule(t, HELSINKI, start)
    assert in_schedule(t, HELSINKI, end - second)
    assert not in_schedule(t, HELSINKI, end)


def test_bounds_are_instants_whatever_their_zone() -> None:
    t = terms(starts_at=local(HELSINKI, 2026, 5, 1, 12))  # 09:00 UTC
    assert in_schedule(t, NEW_YORK, utc(2026, 5, 1, 9))
    assert not in_schedule(t, NEW_YORK, utc(2026, 5, 1, 8, 59))


def test_each_bound_is_optional() -> None:
    now = utc(2026, 5, 1)
    assert in_schedule(terms(), HELSINKI, now)
    assert in_schedule(terms(ends_at=now + timedelta(days=1)), HELSINKI, now)
    assert in_schedule(terms(starts_at=now - timedelta(days=1)), HELSINKI, now)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        in_schedule(terms(), HELSINKI, datetime(2026, 5, 1, 12))


# --- weekly windows --------------------------------------------------------------------------

# 2026-05-04 is a Monday; 2026-05-08 a Friday.


def test_same_day_window_is_half_open_on_listed_days() -> None:
    w = (window("mon wed", "17:00", "19:00"),)
    assert not open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 4, 16, 59))
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 4, 17, 0))
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 4, 18, 59))
    assert not open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 4, 19, 0))
    assert not open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 5, 17, 30))  # Tuesday
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 6, 17, 30))  # Wednesday


def test_windows_are_read_in_the_venue_time_zone() -> None:
    w = (window("mon", "17:00", "19:00"),)
    assert open_at(w, HELSINKI, utc(2026, 5, 4, 14, 30))  # 17:30 in Helsinki (UTC+3)
    assert not open_at(w, HELSINKI, utc(2026, 5, 4, 17, 30))  # 20:30 in Helsinki
    assert open_at(w, NEW_YORK, utc(2026, 5, 4, 21, 30))  # 17:30 in New York (UTC-4)


def test_any_of_several_windows_opens_the_offer() -> None:
    w = (window("mon", "08:00", "10:00"), window("mon", "17:00", "19:00"))
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 4, 9))
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 4, 18))
    assert not open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 4, 12))


def test_no_windows_means_any_time() -> None:
    assert open_at((), HELSINKI, local(HELSINKI, 2026, 5, 4, 3, 33))


def test_window_crossing_midnight_runs_into_the_next_day() -> None:
    w = (window("fri", "22:00", "02:00"),)
    assert not open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 8, 21, 59))  # Fri
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 8, 22, 0))  # Fri
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 8, 23, 59))  # Fri
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 9, 0, 0))  # Sat
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 9, 1, 30))  # Sat
    assert not open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 9, 2, 0))  # Sat
    assert not open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 9, 22, 30))  # Sat isn't listed


def test_window_crossing_midnight_early_hours_belong_to_the_previous_day() -> None:
    fri_0130 = local(HELSINKI, 2026, 5, 8, 1, 30)
    assert not open_at((window("fri", "22:00", "02:00"),), HELSINKI, fri_0130)
    assert open_at((window("thu", "22:00", "02:00"),), HELSINKI, fri_0130)


def test_window_crossing_midnight_wraps_sunday_into_monday() -> None:
    w = (window("sun", "20:00", "03:00"),)
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 4, 2, 59))  # Mon
    assert not open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 5, 1, 0))  # Tue


def test_window_ending_at_midnight_covers_the_rest_of_the_day() -> None:
    w = (window("fri", "22:00", "00:00"),)
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 8, 23, 59))
    assert not open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 9, 0, 0))


def test_window_with_end_equal_to_start_is_a_full_day_from_start() -> None:
    # rules.Window: `end <= start` crosses midnight, so equal bounds mean 24 hours from `start`.
    w = (window("mon", "06:00", "06:00"),)
    assert not open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 4, 5, 59))
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 4, 6, 0))
    assert open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 5, 5, 59))
    assert not open_at(w, HELSINKI, local(HELSINKI, 2026, 5, 5, 6, 0))


def test_windows_and_bounds_both_apply() -> None:
    t = terms(windows=(window("mon", "17:00", "19:00"),), ends_at=utc(2026, 5, 4, 15))
    assert in_schedule(t, HELSINKI, utc(2026, 5, 4, 14, 30))  # 17:30 local, before the end
    assert not in_schedule(t, HELSINKI, utc(2026, 5, 4, 15, 30))  # 18:30 local, ended


# --- DST: wall-clock semantics ---------------------------------------------------------------

EVENING = (window("mon tue wed thu fri sat sun", "17:00", "19:00"),)


@pytest.mark.parametrize(
    ("tz", "before", "after"),
    [
        # Helsinki: 2026-03-29 03:00 EET -> 04:00 EEST; 2026-10-25 04:00 EEST -> 03:00 EET.
        (HELSINKI, utc(2026, 3, 28, 15, 30), utc(2026, 3, 29, 14, 30)),
        (HELSINKI, utc(2026, 10, 24, 14, 30), utc(2026, 10, 25, 15, 30)),
        # New York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
        (NEW_YORK, utc(2026, 3, 7, 22, 30), utc(2026, 3, 8, 21, 30)),
        (NEW_YORK, utc(2026, 10, 31, 21, 30), utc(2026, 11, 1, 22, 30)),
    ],
)
def test_local_window_holds_at_1730_on_both_sides_of_a_dst_change(
    tz: ZoneInfo, before: datetime, after: datetime
) -> None:
    assert before.astimezone(tz).time() == time(17, 30)
    assert after.astimezone(tz).time() == time(17, 30)
    assert open_at(EVENING, tz, before)
    assert open_at(EVENING, tz, after)


def test_window_follows_wall_clock_not_a_fixed_utc_offset() -> None:
    # 23:30 UTC is 18:30 EST the day before the spring change, 19:30 EDT the day after.
    assert open_at(EVENING, NEW_YORK, utc(2026, 3, 7, 23, 30))
    assert not open_at(EVENING, NEW_YORK, utc(2026, 3, 8, 23, 30))
    # 16:30 UTC is 18:30 EET before the spring change, 19:30 EEST after it.
    assert open_at(EVENING, HELSINKI, utc(2026, 3, 28, 16, 30))
    assert not open_at(EVENING, HELSINKI, utc(2026, 3, 30, 16, 30))


@pytest.mark.parametrize(
    ("tz", "start", "end", "first", "second"),
    [
        # Berlin repeats 02:00-03:00 on 2026-10-25 (CEST then CET).
        (BERLIN, "02:00", "03:00", utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),
        # Helsinki repeats 03:00-04:00 on 2026-10-25 (EEST then EET).
        (HELSINKI, "03:00", "04:00", utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),
        # New York repeats 01:00-02:00 on 2026-11-01 (EDT then EST).
        (NEW_YORK, "01:00", "02:00", utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)),
    ],
)
def test_both_occurrences_of_the_repeated_autumn_hour_count(
    tz: ZoneInfo, start: str, end: str, first: datetime, second: datetime
) -> None:
    w = (window("sun", start, end),)
    first_local, second_local = first.astimezone(tz), second.astimezone(tz)
    assert first_local.replace(tzinfo=None) == second_local.replace(tzinfo=None)
    assert (first_local.fold, second_local.fold) == (0, 1)
    assert open_at(w, tz, first)
    assert open_at(w, tz, second)
    # ... and the window still closes at its wall-clock end after the second occurrence.
    assert not open_at(w, tz, second + timedelta(minutes=30))
    assert not open_at(w, tz, first - timedelta(minutes=31))


def test_window_crossing_midnight_on_the_autumn_night() -> None:
    # Saturday 22:00 to 02:00: both 01:30s of New York's Sunday 2026-11-01 count.
    w = (window("sat", "22:00", "02:00"),)
    assert open_at(w, NEW_YORK, utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    assert open_at(w, NEW_YORK, utc(2026, 11, 1, 6, 30))  # 01:30 EST
    assert not open_at(w, NEW_YORK, utc(2026, 11, 1, 7, 0))  # 02:00 EST


@pytest.mark.parametrize(
    ("tz", "start", "end", "day_start"),
    [
        (HELSINKI, "03:00", "04:00", utc(2026, 3, 28, 22)),  # Helsinki skips 03:00-04:00
        (NEW_YORK, "02:00", "03:00", utc(2026, 3, 8, 5)),  # New York skips 02:00-03:00
    ],
)
def test_window_in_the_spring_gap_never_occurs(
    tz: ZoneInfo, start: str, end: str, day_start: datetime
) -> None:
    w = (window("sun", start, end),)
    minutes = [day_start + timedelta(minutes=m) for m in range(23 * 60)]  # the whole local Sunday
    assert {m.astimezone(tz).date() for m in minutes} == {minutes[0].astimezone(tz).date()}
    assert not any(open_at(w, tz, m) for m in minutes)
    # The same window is open a week later, when the hour exists.
    next_sunday = minutes[0].astimezone(tz).date() + timedelta(days=7)
    hour = int(start[:2])
    assert open_at(w, tz, local(tz, next_sunday.year, next_sunday.month, next_sunday.day, hour, 30))


# --- holdout ---------------------------------------------------------------------------------


def test_holdout_matches_the_documented_hash() -> None:
    # Golden value: SHA-256(offer_id.bytes + user_id.bytes), first 8 bytes as a fraction of 2**64.
    user, offer = uuid.UUID(int=1), uuid.UUID(int=2)
    prefix = hashlib.sha256(offer.bytes + user.bytes).hexdigest()[:16]
    assert prefix == "2cf6b74e206ddbbc"
    point = int(prefix, 16) / 2**64 * 100  # ~17.564
    assert not in_holdout(user, offer, 17.56)
    assert in_holdout(user, offer, 17.57)
    assert 17.56 < point < 17.57


@given(st.uuids(), st.uuids(), st.floats(0, 100))
def test_holdout_is_deterministic(user: uuid.UUID, offer: uuid.UUID, pct: float) -> None:
    assert in_holdout(user, offer, pct) == in_holdout(user, offer, pct)
    assert in_holdout(user, offer, pct) == in_holdout(
        uuid.UUID(str(user)), uuid.UUID(bytes=offer.bytes), pct
    )


@given(st.uuids(), st.uuids())
def test_zero_pct_holds_out_no_one(user: uuid.UUID, offer: uuid.UUID) -> None:
    assert not in_holdout(user, offer, 0)
    assert not in_holdout(user, offer, 0.0)


@given(st.uuids(), st.uuids())
def test_hundred_pct_holds_out_everyone(user: uuid.UUID, offer: uuid.UUID) -> None:
    assert in_holdout(user, offer, 100)


@given(st.uuids(), st.uuids(), st.floats(0, 50), st.floats(0, 50))
def test_holdout_is_monotonic_in_pct(user: uuid.UUID, offer: uuid.UUID, p: float, q: float) -> None:
    low, high = sorted((p, q))
    if in_holdout(user, offer, low):
        assert in_holdout(user, offer, high)
    if not in_holdout(user, offer, high):
        assert not in_holdout(user, offer, low)


@settings(max_examples=25, deadline=None)
@given(st.uuids(), st.floats(0, 50), st.integers(0, 2**32))
def test_share_held_out_is_close_to_pct(offer: uuid.UUID, pct: float, seed: int) -> None:
    rng = random.Random(seed)
    n = 5000
    held = sum(in_holdout(uuid.UUID(int=rng.getrandbits(128)), offer, pct) for _ in range(n))
    # Binomial sd is at most ~0.71 points at n=5000; 3.5 points is about 5 sd.
    assert abs(held / n * 100 - pct) < 3.5


# --- decide ----------------------------------------------------------------------------------

NOW = utc(2026, 5, 4, 14, 30)  # Monday 17:30 in Helsinki


def held_out_user(pct: float) -> uuid.UUID:
    """A user in the holdout of OFFER_ID at `pct` (found deterministically)."""
    for i in range(1000):
        user = uuid.uuid5(OFFER_ID, str(i))
        if in_holdout(user, OFFER_ID, pct):
            return user
    raise AssertionError("no held-out user found")


def not_held_out_user(pct: float) -> uuid.UUID:
    for i in range(1000):
        user = uuid.uuid5(OFFER_ID, str(i))
        if not in_holdout(user, OFFER_ID, pct):
            return user
    raise AssertionError("no treatment user found")


def test_decide_unlocks_when_everything_passes() -> None:
    got = decide(terms(), facts(), HELSINKI, NOW, user_id=USER_ID, presence_verified=False)
    assert got == Decision("unlock", "")


def test_decide_applies_checks_in_order() -> None:
    """Start from an offer that fails every check and fix them one at a time."""
    user = held_out_user(50)
    t = terms(
        rule=NthVisit(3),
        starts_at=NOW + timedelta(hours=1),
        ends_at=NOW + timedelta(days=1),
        windows=(window("mon", "18:00", "19:00"),),
        per_user_cap=1,
        requires_presence_code=True,
        holdout_pct=50.0,
    )
    f = facts(visits=2, user_unlocks=1)

    def run(t: OfferTerms, f: VisitFacts, now: datetime = NOW) -> Decision:
        return decide(t, f, HELSINKI, now, user_id=user, presence_verified=False)

    assert run(t, f) == Decision("locked", "not_started")
    assert run(t, f, NOW + timedelta(days=2)) == Decision("locked", "ended")
    t = replace(t, starts_at=None)
    assert run(t, f) == Decision("locked", "outside_window")
    t = replace(t, windows=(window("mon", "17:00", "19:00"),))
    assert run(t, f) == Decision("locked", "presence_code_required")
    t = replace(t, requires_presence_code=False)
    assert run(t, f) == Decision("locked", "rule_not_met")
    t = replace(t, rule=NthVisit(2, repeat=True))
    assert run(t, f) == Decision("locked", "per_user_cap")
    t = replace(t, per_user_cap=2)
    assert run(t, f) == Decision("held_out", "")
    t = replace(t, holdout_pct=0.0)
    assert run(t, f) == Decision("unlock", "")


def test_presence_code_verified_passes_the_presence_check() -> None:
    t = terms(requires_presence_code=True)
    got = decide(t, facts(), HELSINKI, NOW, user_id=USER_ID, presence_verified=True)
    assert got == Decision("unlock", "")


def test_holdout_only_applies_to_checkins_that_would_unlock() -> None:
    user = held_out_user(50)
    t = terms(rule=FirstVisit(), holdout_pct=50.0)
    assert decide(t, facts(visits=2), HELSINKI, NOW, user_id=user, presence_verified=False) == (
        Decision("locked", "rule_not_met")
    )
    assert decide(t, facts(visits=1), HELSINKI, NOW, user_id=user, presence_verified=False) == (
        Decision("held_out", "")
    )
    other = not_held_out_user(50)
    assert decide(t, facts(visits=1), HELSINKI, NOW, user_id=other, presence_verified=False) == (
        Decision("unlock", "")
    )


@pytest.mark.parametrize(
    ("held", "cap", "outcome"), [(0, 1, "unlock"), (1, 1, "locked"), (2, 3, "unlock")]
)
def test_per_user_cap_counts_unlocks_already_held(held: int, cap: int, outcome: str) -> None:
    t = terms(per_user_cap=cap)
    got = decide(
        t, facts(user_unlocks=held), HELSINKI, NOW, user_id=USER_ID, presence_verified=False
    )
    assert got.outcome == outcome
    assert got.why == ("per_user_cap" if outcome == "locked" else "")
