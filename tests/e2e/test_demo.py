"""Loading the Helsinki demo through the API (`mobile_stub.demo`), as `make run` does: once, on an
empty database only, with its keys saved for `make demo`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mobile_stub.client import ApiError, Client, HttpTransport
from mobile_stub.demo import CENTRE, DemoState, ensure_demo, load_demo, main

pytestmark = pytest.mark.e2e


def test_the_demo_loads_a_merchant_with_keys_venues_and_active_offers(live_api: Client) -> None:
    state = load_demo(live_api, venues=12, log=lambda _: None)

    owner = live_api.with_token(state.keys["owner"])
    assert owner.me()["name"] == "Helsinki Demo Collective"
    assert sorted(k["role"] for k in owner.list_keys()) == ["analyst", "owner", "staff"]
    venues = owner.list_venues()
    assert len(venues) == state.venue_count == 12
    assert {v["id"] for v in venues} >= set(state.venues.values())
    # Footprints where OpenStreetMap has them, circles otherwise.
    assert any(v["radius_m"] is None for v in venues)
    assert any(v["radius_m"] == 25 for v in venues)
    offers = owner.list_offers()
    assert {o["id"] for o in offers} == set(state.offers.values())
    assert all(o["status"] == "active" for o in offers)
    assert {o["rule"]["kind"] for o in offers} == {
        "every_checkin",
        "first_visit",
        "nth_visit",
        "top_visitor",
        "group",
    }
    # The staff key reads presence codes (the screen at the counter) but cannot edit venues.
    staff = live_api.with_token(state.keys["staff"])
    assert staff.presence_code(state.venues["newcomer_restaurant"])["code"].isdigit()
    with pytest.raises(ApiError) as err:
        staff.update_venue(state.venues["newcomer_restaurant"], {"name": "Hacked"})
    assert err.value.status == 403


def test_on_an_empty_database_the_demo_is_loaded_once(api: Client, tmp_path: Path) -> None:
    path = tmp_path / ".demo.json"
    lines: list[str] = []
    state = ensure_demo(api, path, venues=10, log=lines.append)

    assert state is not None and state.venue_count == 10
    assert DemoState.read(path) == state
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the keys are secrets
    assert lines[0].startswith("Demo: loaded 10 venues of central Helsinki")

    assert ensure_demo(api, path, venues=10, log=lines.append) == state
    assert lines[-1].startswith("Demo: already loaded")
    assert len(api.with_token(state.keys["owner"]).list_venues()) == 10


def test_a_database_with_other_venues_in_helsinki_is_left_alone(
    api: Client, owner: Client, tmp_path: Path
) -> None:
    owner.create_venue(
        {
            "name": "Cafe Aalto",
            "location": {"type": "Point", "coordinates": [CENTRE.lon, CENTRE.lat]},
        }
    )
    lines: list[str] = []
    assert ensure_demo(api, tmp_path / ".demo.json", log=lines.append) is None
    assert "not loaded" in lines[0]
    assert not (tmp_path / ".demo.json").exists()


def test_the_load_command_prints_the_saved_keys(
    live_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = HttpTransport(live_server)
    state = load_demo(Client(transport), venues=8, log=lambda _: None)
    transport.close()
    path = tmp_path / ".demo.json"
    state.write(path)

    assert main(["load", "--url", live_server, "--state", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Demo: already loaded" in out
    for key in state.keys.values():
        assert key in out


def test_the_run_command_says_when_no_server_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--url", "http://127.0.0.1:9"]) == 1
    assert "no checkin-offers server answers" in capsys.readouterr().err
