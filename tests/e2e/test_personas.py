"""The demo personas against a real server: the honest ones get their offers, and each cheat is
stopped for the right reason (mobile_stub/personas.py tells the stories)."""

from __future__ import annotations

import pytest

from mobile_stub.client import Client, HttpTransport
from mobile_stub.demo import DemoState, load_demo
from mobile_stub.personas import PERSONAS, Outcome, run_personas

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(live_server: str) -> DemoState:
    transport = HttpTransport(live_server)
    state = load_demo(Client(transport), venues=20, log=lambda _: None)
    transport.close()
    return state


@pytest.fixture(scope="module")
def story(live_server: str, demo: DemoState) -> tuple[dict[str, Outcome], list[str]]:
    lines: list[str] = []
    # A fixed seed: the same GPS noise every run. Walks play 40x faster than real time.
    outcomes = run_personas(
        lambda: HttpTransport(live_server), demo, speedup=40, seed=20261123, log=lines.append
    )
    return {o.persona: o for o in outcomes}, lines


@pytest.fixture(scope="module")
def outcomes(story: tuple[dict[str, Outcome], list[str]]) -> dict[str, Outcome]:
    return story[0]


def test_every_persona_plays_to_the_end(outcomes: dict[str, Outcome]) -> None:
    assert set(outcomes) == {name for name, _, _ in PERSONAS}
    assert {name: o.error for name, o in outcomes.items() if o.error} == {}


def test_the_regular_earns_her_third_coffee_and_redeems_it(outcomes: dict[str, Outcome]) -> None:
    riikka = outcomes["regular"]
    assert {"welcome", "first_visit", "top_visitor", "nth_visit"} <= set(riikka.unlocked)
    assert riikka.redemptions == ["redeemed"]
    # The retry with the same Idempotency-Key changed nothing; a new tap is too soon.
    assert riikka.rejected[-1] == "too_soon"
    assert any("gets the same check-in back" in line for line in riikka.lines)


def test_the_newcomer_waits_for_a_good_fix_and_scans_the_code(outcomes: dict[str, Outcome]) -> None:
    niko = outcomes["newcomer"]
    assert "low_accuracy" in niko.rejected  # the first, coarse network fix
    assert {"first_visit", "presence"} <= set(niko.unlocked)
    assert niko.redemptions == ["redeemed"]


def test_the_group_unlocks_for_every_friend(outcomes: dict[str, Outcome]) -> None:
    friends = outcomes["group"]
    assert friends.unlocked.count("group") == 3
    assert friends.redemptions == ["redeemed"]


def test_the_spoofer_is_stopped_until_he_hides_the_mock_flag(outcomes: dict[str, Outcome]) -> None:
    sami = outcomes["spoofer"]
    assert sami.rejected == ["outside_geofence", "mock_location", "presence_code_invalid"]
    # Honest about the limit: a hidden mock gets ordinary offers, never the presence-code one.
    assert "presence" not in sami.unlocked


def test_the_teleporter_is_stopped_for_impossible_travel(outcomes: dict[str, Outcome]) -> None:
    tero = outcomes["teleporter"]
    assert tero.rejected[-1] == "impossible_travel"
    assert "impossible_travel" not in tero.rejected[:-1]


def test_the_replayer_is_stopped_for_a_stale_fix(outcomes: dict[str, Outcome]) -> None:
    assert outcomes["replayer"].rejected == ["stale_fix", "future_fix"]
    assert outcomes["replayer"].unlocked == []


def test_a_shared_code_redeems_once(outcomes: dict[str, Outcome]) -> None:
    sharers = outcomes["code_sharer"]
    assert sharers.unlocked == ["capped"]
    assert sharers.redemptions == ["redeemed", "already_redeemed"]


def test_the_story_is_told_in_order_with_the_merchants_view(
    story: tuple[dict[str, Outcome], list[str]],
) -> None:
    _, lines = story
    text = "\n".join(lines)
    titles = [title for _, title, _ in PERSONAS]
    assert [text.index(f"== {t} ==") for t in titles] == sorted(
        text.index(f"== {t} ==") for t in titles
    )
    assert "© OpenStreetMap contributors" in lines[0] and "40x faster" in lines[0]
    assert "== The merchant's view (owner key) ==" in text
    assert "1 of 25" in text  # the capped offer's counter


def test_the_indoor_visitor_taps_the_tag_and_gets_the_tap_offer(
    outcomes: dict[str, Outcome],
) -> None:
    iida = outcomes["indoor_tapper"]
    assert iida.rejected == ["low_accuracy"]  # without the tap
    assert "tap" in iida.unlocked
    assert any("proof: nfc_tap" in line for line in iida.lines)


def test_the_collector_is_stopped_by_his_fix_and_by_the_counter(
    outcomes: dict[str, Outcome],
) -> None:
    kari = outcomes["collector"]
    assert kari.unlocked.count("tap") == 1  # his one honest visit
    # From home: outside the tap radius (the demo does not wait a day, so the travel check and
    # the cooldown also refuse it); then the older URL is a replay.
    assert kari.rejected[0] == "outside_geofence" and kari.rejected[-1] == "tap_replayed"


def test_the_festival_guests_are_checked_in_by_staff(outcomes: dict[str, Outcome]) -> None:
    guests = outcomes["festival_guest"]
    assert guests.unlocked.count("tap") == 2
    assert guests.rejected == ["member_code_invalid"]
    assert sum("proof: staff" in line for line in guests.lines) == 2


def test_the_merchant_sees_unlocks_by_proof(story: tuple[dict[str, Outcome], list[str]]) -> None:
    _, lines = story
    text = "\n".join(lines)
    assert "by proof of presence" in text
    # Iida's and Kari's honest tap visits unlocked the tap offer; the guests' staff visits too.
    assert "nfc_tap 2/2/0" in text and "staff 2/2/0" in text
    assert "9 reads skipped by 1 taps" in text


def test_visitors_rate_their_visits_and_the_story_ends_with_the_report(
    story: tuple[dict[str, Outcome], list[str]],
) -> None:
    outcomes, lines = story
    assert outcomes["regular"].feedback == [5]
    assert outcomes["newcomer"].feedback == [4]
    assert outcomes["group"].feedback == [2]
    text = "\n".join(lines)
    assert "Feedback: the merchant's inbox (3 unanswered, oldest first)" in text
    assert "staff reply at once" in text and "staff reply late" in text
    assert "still waiting" in text
    # one answered in time, one late, one overdue: 2 of 3 answered, 1 within the target
    assert "3 feedback, 2 answered (1 within the target), 0 pending, 1 overdue" in text
    assert "response rate 67%" in text
