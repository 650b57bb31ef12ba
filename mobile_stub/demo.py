"""The Helsinki demo: real venues and offers loaded through the API, and personas that use them.

    python -m mobile_stub.demo load [--url URL] [--venues 120]   # what `make run` does
    python -m mobile_stub.demo run  [--url URL] [--speedup 30]   # what `make demo` does

`load` creates, through the public API only, a demo merchant with owner, staff and analyst keys,
about 120 real venues of central Helsinki from OpenStreetMap (© OpenStreetMap contributors,
ODbL 1.0) and offers of every rule kind, and saves the keys in `.demo.json` (git-ignored). It
loads nothing when `.demo.json` already holds keys that work on the server, nor when the database
already has other venues in central Helsinki. `run` loads the demo if needed, then runs the
personas (`mobile_stub.personas`) and prints their story.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mobile_stub.city import City, Place, load_city
from mobile_stub.client import ApiError, Client, HttpTransport
from mobile_stub.geodesy import LatLon, distance_m
from mobile_stub.ntag import random_uid

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_STATE = Path(".demo.json")
DEFAULT_VENUES = 120
CENTRE = LatLon(60.1700, 24.9440)  # Aleksanterinkatu, between the station and the Senate Square
MERCHANT_NAME = "Helsinki Demo Collective"
CIRCLE_RADIUS_M = 25.0  # for venues without a footprint: a shop front and its doorway
# Short, so that trying the demo by hand is not a one-visit-an-hour affair; the regular's cafe
# has none at all, so that her three visits fit into the demo.
COOLDOWN_MINUTES = 5
MAX_VENUES_PER_OFFER = 100  # the API's limit
AMENITY_TAGS = ("cafe", "restaurant", "pub", "bar", "fast_food", "ice_cream")

Log = Callable[[str], None]


@dataclass
class DemoState:
    """What the personas need to find the demo again: keys, and venue and offer ids by role."""

    merchant_id: str
    merchant_name: str
    keys: dict[str, str]  # role -> secret (shown once by the API; kept here)
    venues: dict[str, str]  # persona role -> venue id
    offers: dict[str, str]  # offer name -> offer id
    venue_count: int
    # NFC tags by name: venue role, id, UID, keys and URL template as registered (the keys are
    # shown once by the API; the personas' software tags are programmed with them)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> DemoState | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        """Saved readable only by its owner: the keys are secrets."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f, indent=2)
            f.write("\n")

    def works_on(self, api: Client) -> bool:
        """Its owner key is valid on this server and its venues are still there (and it is a
        demo with NFC tags: older ones lack the tap personas' venue)."""
        if "tap_bar" not in self.venues or not self.tags:
            return False
        owner = api.with_token(self.keys["owner"])
        try:
            owner.me()
            for venue_id in self.venues.values():
                owner.get_venue(venue_id)
        except ApiError:
            return False
        return True


# ---- choosing venues ---------------------------------------------------------------------------


def pick_roles(city: City) -> dict[str, Place]:
    """The venues the personas use, chosen by fixed rules from the data (so always the same)."""
    taken: set[str] = set()

    def pick(wanted: Callable[[Place], bool], near: LatLon = CENTRE) -> Place:
        candidates = [p for p in city.places if p.osm not in taken and wanted(p)]
        best = min(candidates, key=lambda p: distance_m(p.position, near))
        taken.add(best.osm)
        return best

    roles: dict[str, Place] = {}
    roles["regular_cafe"] = pick(lambda p: p.category == "cafe")
    cafe = roles["regular_cafe"].position
    roles["second_stop"] = pick(
        lambda p: (
            p.category in ("cafe", "ice_cream", "fast_food")
            and 180 <= distance_m(p.position, cafe) <= 320
        )
    )
    roles["newcomer_restaurant"] = pick(lambda p: p.category == "restaurant")
    roles["group_pub"] = pick(lambda p: p.category in ("pub", "bar") and p.footprint is not None)
    roles["sharer_shop"] = pick(lambda p: p.is_shop and p.footprint is None)
    roles["replay_shop"] = pick(lambda p: p.is_shop and p.footprint is not None)
    # The bar with NFC tags (one at the counter, one at the door) and a festival gate's staff.
    roles["tap_bar"] = pick(lambda p: p.category in ("pub", "bar") and p.footprint is not None)
    roles["teleport_from"] = pick(lambda p: p.category == "cafe")
    start = roles["teleport_from"].position
    roles["teleport_to"] = max(
        (p for p in city.places if p.osm not in taken and not p.is_shop),
        key=lambda p: distance_m(p.position, start),
    )
    return roles


def pick_venues(city: City, count: int) -> tuple[dict[str, Place], list[Place]]:
    """The personas' venues, those with footprints, then those nearest the centre: `count` in
    all (at least the personas' venues)."""
    roles = pick_roles(city)
    chosen = {p.osm: p for p in roles.values()}
    by_distance = sorted(city.places, key=lambda p: distance_m(p.position, CENTRE))
    for place in [p for p in by_distance if p.footprint is not None] + by_distance:
        if len(chosen) >= count:
            break
        chosen.setdefault(place.osm, place)
    return roles, list(chosen.values())


def venue_body(city: City, place: Place, cooldown_minutes: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": place.name,
        "category": place.category,
        "address": f"{place.address}, {city.name}" if place.address else None,
        "timezone": city.timezone,
        "location": {"type": "Point", "coordinates": [place.position.lon, place.position.lat]},
        "checkin_cooldown_minutes": cooldown_minutes,
    }
    if place.footprint is not None:
        body["geofence"] = place.footprint
    else:
        body["radius_m"] = CIRCLE_RADIUS_M
    return body


def offer_bodies(
    roles: dict[str, Place], places: list[Place], ids: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """One offer of every rule kind, and one each with a presence code, a holdout, a total cap."""

    def ids_of(selected: Iterable[Place]) -> list[str]:
        return [ids[p.osm] for p in selected][:MAX_VENUES_PER_OFFER]

    def where(*categories: str) -> list[Place]:
        return [p for p in places if p.category in categories]

    cafes, restaurants = where("cafe"), where("restaurant")
    return {
        "welcome": {
            "title": "10% off your order",
            "rule": {"kind": "every_checkin"},
            "venue_ids": ids_of(where(*AMENITY_TAGS)),
        },
        "first_visit": {
            "title": "First visit: a cinnamon bun on the house",
            "rule": {"kind": "first_visit"},
            "venue_ids": ids_of(cafes + restaurants),
        },
        "nth_visit": {
            "title": "Every 3rd coffee on the house",
            "rule": {"kind": "nth_visit", "visits": 3, "repeat": True},
            "per_user_cap": 100,
            "venue_ids": ids_of(cafes),
        },
        "top_visitor": {
            "title": "Regular of the month: lunch on us",
            "rule": {"kind": "top_visitor", "window_days": 30},
            "venue_ids": ids_of([roles["regular_cafe"]]),
        },
        "group": {
            "title": "Three friends, one free pitcher",
            "rule": {"kind": "group", "min_people": 3, "within_minutes": 30},
            "venue_ids": ids_of(where("pub", "bar")),
        },
        "presence": {
            "title": "Dessert on the house: scan the code at the counter",
            "rule": {"kind": "every_checkin"},
            "requires_presence_code": True,
            "venue_ids": ids_of(restaurants),
        },
        "tap": {
            "title": "A free drink: tap the tag at the bar",
            "rule": {"kind": "every_checkin"},
            "min_proof": "nfc_tap",
            "per_user_cap": 100,
            "venue_ids": ids_of([roles["tap_bar"]]),
        },
        "holdout": {
            "title": "Free refill (an A/B test: half of the visitors are held out)",
            "rule": {"kind": "every_checkin"},
            "holdout_pct": 50,
            "venue_ids": ids_of([roles["second_stop"], *where("ice_cream", "fast_food")]),
        },
        "capped": {
            "title": "A tote bag for the first 25 visitors",
            "rule": {"kind": "every_checkin"},
            "total_cap": 25,
            "venue_ids": ids_of([p for p in places if p.is_shop]),
        },
    }


# ---- loading -----------------------------------------------------------------------------------


def load_demo(api: Client, venues: int = DEFAULT_VENUES, log: Log = print) -> DemoState:
    """Create the demo merchant, its keys, `venues` venues and the offers, all through the API."""
    city = load_city()
    started = time.monotonic()
    created = api.create_merchant(MERCHANT_NAME, "demo@helsinki.example")
    owner = api.with_token(created["api_key"])
    keys = {"owner": created["api_key"]}
    for role in ("staff", "analyst"):
        keys[role] = owner.create_key(role, f"demo {role}")["api_key"]

    roles, places = pick_venues(city, venues)
    ids: dict[str, str] = {}
    footprints = 0
    for place in places:
        cooldown = 0 if place is roles["regular_cafe"] else COOLDOWN_MINUTES
        body = venue_body(city, place, cooldown)
        try:
            ids[place.osm] = owner.create_venue(body)["id"]
            footprints += "geofence" in body
        except ApiError as error:
            if error.code != "invalid_geometry":
                raise
            # A footprint the API refuses: fence the venue with a circle instead.
            body.pop("geofence")
            body["radius_m"] = CIRCLE_RADIUS_M
            ids[place.osm] = owner.create_venue(body)["id"]

    offers: dict[str, str] = {}
    for name, body in offer_bodies(roles, places, ids).items():
        offers[name] = owner.create_offer(body)["id"]
        owner.activate_offer(offers[name])

    # NTAG 424 DNA tags at the bar: the keys are shown once, so the demo keeps them to program
    # its software tags (mobile_stub/ntag.py).
    tags: dict[str, dict[str, str]] = {}
    for name in ("counter", "door"):
        uid = random_uid()
        registered = owner.register_nfc_tag(ids[roles["tap_bar"].osm], uid, f"bar {name}")
        tags[name] = {
            "venue_role": "tap_bar",
            "id": registered["id"],
            "uid": uid,
            "sdm_meta_read_key": registered["sdm_meta_read_key"],
            "sdm_file_read_key": registered["sdm_file_read_key"],
            "url_template": registered["url_template"],
        }

    log(
        f"Demo: loaded {len(places)} venues of central {city.name} from OpenStreetMap "
        f"({footprints} fenced by their footprints, the others by {CIRCLE_RADIUS_M:g} m circles) "
        f"{len(offers)} active offers and {len(tags)} NFC tags for {MERCHANT_NAME!r} in "
        f"{time.monotonic() - started:.1f} s. Map data {city.attribution}."
    )
    return DemoState(
        merchant_id=created["merchant"]["id"],
        merchant_name=MERCHANT_NAME,
        keys=keys,
        venues={role: ids[place.osm] for role, place in roles.items()},
        offers=offers,
        venue_count=len(places),
        tags=tags,
    )


def ensure_demo(
    api: Client, state_path: Path, venues: int = DEFAULT_VENUES, log: Log = print
) -> DemoState | None:
    """The demo of `state_path` if it works on this server; else load it, unless the database
    already has venues in central Helsinki (then None: the demo never mixes with real data)."""
    state = DemoState.read(state_path)
    if state is not None and state.works_on(api):
        log(f"Demo: already loaded ({state.venue_count} venues, keys from {state_path}).")
        return state
    if api.nearby(CENTRE.lat, CENTRE.lon, radius_m=3_000, limit=1):
        log(
            "Demo: not loaded: this database already has venues in central Helsinki and "
            f"{state_path} holds no keys that work here. Use an empty database to get the demo."
        )
        return None
    state = load_demo(api, venues, log)
    state.write(state_path)
    return state


def print_keys(state: DemoState, state_path: Path, log: Log = print) -> None:
    log(f"  merchant     {state.merchant_name} ({state.merchant_id})")
    for role in ("owner", "staff", "analyst"):
        log(f"  {role + ' key':<12} {state.keys[role]}")
    log(f"  (saved in {state_path}; `make demo` runs the personas against this server)")


# ---- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mobile_stub.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=("load", "run"))
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the API (default {DEFAULT_URL})")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="where the keys are kept")
    parser.add_argument("--venues", type=int, default=DEFAULT_VENUES, help="venues to load")
    parser.add_argument(
        "--speedup", type=float, default=30.0, help="how much faster than real time walks play"
    )
    parser.add_argument("--seed", type=int, default=None, help="for the same GPS noise every run")
    parser.add_argument(
        "--only", action="append", metavar="PERSONA", help="run only this persona (repeatable)"
    )
    args = parser.parse_args(argv)

    # The personas need the loader's state, so they import this module: import them late.
    from mobile_stub.personas import MAX_SPEEDUP, PERSONAS, run_personas

    names = [name for name, _, _ in PERSONAS]
    if args.only and not set(args.only) <= set(names):
        parser.error(f"--only takes {', '.join(names)}")

    if not 1 <= args.speedup <= MAX_SPEEDUP:
        parser.error(f"--speedup must be between 1 and {MAX_SPEEDUP:g}")
    with closing(HttpTransport(args.url)) as transport:
        api = Client(transport)
        try:
            api.health()
        except (ApiError, OSError) as error:
            print(
                f"error: no checkin-offers server answers at {args.url} ({error})", file=sys.stderr
            )
            print("start one with `make run` (another terminal), or pass --url", file=sys.stderr)
            return 1
        state = ensure_demo(api, args.state, args.venues)
    if state is None:
        return 0 if args.command == "load" else 1
    if args.command == "load":
        print_keys(state, args.state)
        return 0
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    outcomes = run_personas(
        lambda: HttpTransport(args.url), state, speedup=args.speedup, seed=seed, only=args.only
    )
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
