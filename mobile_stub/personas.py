"""Scripted personas: simulated phones that use the demo like people do, and cheats that try not to.

Each persona is a function that acts through the public API only (`Client`) with a `Phone`, and
writes its story: where it checked in, what unlocked, what was rejected and why, what was
redeemed. `run_personas` runs them side by side against a server and prints the stories.

Walks play `speedup` times faster than real time (30 by default) so the demo takes seconds, not
minutes. The server sees the fixes' real timestamps, so a 1.4 m/s walk looks like 42 m/s
(151 km/h) to it: still under the 300 km/h at which it calls travel impossible. The story says so.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from mobile_stub.city import City, Route, load_city
from mobile_stub.client import ApiError, Checkin, Client, Offer, Transport, Venue
from mobile_stub.demo import DemoState
from mobile_stub.geodesy import LatLon, distance_m, offset
from mobile_stub.ntag import SoftTag, random_uid
from mobile_stub.phone import WALKING_SPEED_MPS, Fix, Phone, SystemClock

MAX_SPEED_KMH = 300.0  # the server's impossible-travel limit (docs/checkins.md)
# The fastest play that keeps a walk well under that limit (1.4 m/s x 40 = 202 km/h).
MAX_SPEEDUP = 40.0
PASSWORD = "demo-password"


@dataclass
class Outcome:
    """What one persona achieved: offer names unlocked (from `DemoState.offers`), reasons its
    check-ins were rejected, and the till's answers to its codes."""

    persona: str
    title: str
    lines: list[str] = field(default_factory=list)
    unlocked: list[str] = field(default_factory=list)
    held_out: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    redemptions: list[str] = field(default_factory=list)
    feedback: list[int] = field(default_factory=list)  # the stars this persona gave
    error: str | None = None

    def say(self, text: str) -> None:
        self.lines.append(text)


class Demo:
    """The running demo as the personas see it: the API, the merchant's keys, the venues."""

    def __init__(
        self,
        transport_factory: Callable[[], Transport],
        state: DemoState,
        *,
        speedup: float,
        seed: int,
        city: City | None = None,
    ):
        self.transport_factory = transport_factory
        self.transports: list[Transport] = []
        self.state = state
        self.speedup = speedup
        self.seed = seed
        self.city = city or load_city()
        self.owner = self.client(state.keys["owner"])
        self.venues: dict[str, Venue] = {
            role: self.owner.get_venue(venue_id) for role, venue_id in state.venues.items()
        }
        by_id = {o["id"]: o for o in self.owner.list_offers()}
        self.offers: dict[str, Offer] = {n: by_id[i] for n, i in state.offers.items() if i in by_id}
        self.offer_names = {offer_id: name for name, offer_id in state.offers.items()}
        self.offer_titles = {o["id"]: o["title"] for o in self.offers.values()}

    def client(self, token: str | None = None) -> Client:
        """A client on its own connection (personas run in parallel)."""
        transport = self.transport_factory()
        self.transports.append(transport)
        return Client(transport, token)

    def close(self) -> None:
        for transport in self.transports:
            close = getattr(transport, "close", None)
            if close is not None:
                close()

    def staff(self) -> Client:
        """The till and the screen at the counter."""
        return self.client(self.state.keys["staff"])

    def new_user(self, first_name: str) -> Client:
        handle = f"{first_name.lower()}_{secrets.token_hex(3)}"
        api = self.client()
        return api.with_token(api.create_user(handle, PASSWORD)["token"])

    def phone(self, position: LatLon, n: int) -> Phone:
        return Phone(position, clock=SystemClock(self.speedup), seed=self.seed * 100 + n)

    def start_point(self, venue: LatLon, metres: float) -> LatLon:
        """A street corner about `metres` of walking from `venue`."""
        return self.city.streets.node_at_walking_distance(venue, metres)

    def route(self, start: LatLon, end: LatLon) -> Route:
        return self.city.streets.route(start, end)

    def offer_title(self, name: str) -> str:
        return self.offer_titles.get(self.state.offers.get(name, ""), name)


def inside(venue: Venue) -> LatLon:
    """A spot inside the venue: its location (the loader puts it inside footprints)."""
    lon, lat = venue["location"]["coordinates"]
    return LatLon(lat, lon)


# ---- telling the story ---------------------------------------------------------------------

# Rejections that a person who is really there gets now and then (an honest fix lies outside
# its accuracy circle about a third of the time): the app waits for a better fix and retries.
RETRYABLE = {"outside_geofence", "low_accuracy"}


@dataclass(frozen=True)
class Attempt:
    """One check-in request: the answer, and the fix and Idempotency-Key it was sent with."""

    result: Checkin
    fix: Fix
    key: str

    @property
    def verified(self) -> bool:
        return self.result["status"] == "verified"


def check_in(
    demo: Demo,
    out: Outcome,
    user: Client,
    venue: Venue,
    fix: Fix,
    what: str,
    *,
    presence_code: str | None = None,
    tap_token: str | None = None,
) -> Attempt:
    """Check in like the app does (a fresh Idempotency-Key per tap) and tell what happened."""
    key = str(uuid.uuid4())
    result = user.check_in(
        venue["id"],
        **fix.check_in_args(),
        presence_code=presence_code,
        tap_token=tap_token,
        idempotency_key=key,
    )
    mock = ", mock flag set" if fix.mock_location else ""
    tapped = ", with a tap token" if tap_token else ""
    out.say(f"{what} at {venue['name']} [fix ±{fix.accuracy_m:.0f} m{mock}{tapped}]")
    if result["status"] == "rejected":
        for reason in result["reasons"]:
            out.rejected.append(reason["code"])
            out.say(f"    REJECTED {reason['code']}: {reason['detail']}")
        return Attempt(result, fix, key)
    out.unlocked.extend(demo.offer_names.get(u["offer_id"], u["title"]) for u in result["unlocks"])
    unlocked = ", ".join(f'"{u["title"]}" {u["code"]}' for u in result["unlocks"])
    proof = f" (proof: {result.get('proof', 'gps')})"
    out.say(
        f"    verified{proof}; unlocked {unlocked}"
        if unlocked
        else f"    verified{proof}; nothing new"
    )
    for lock in result.get("locked", []):
        out.say(f'    still locked: "{lock["title"]}": {lock["detail"]}')
    for offer_id in result["held_out"]:
        out.held_out.append(demo.offer_names.get(offer_id, offer_id))
        out.say(
            f'    held out of "{demo.offer_titles.get(offer_id, offer_id)}": this user is in its '
            "control group, so nothing unlocks (this is how the offer's lift is measured)"
        )
    return Attempt(result, fix, key)


def check_in_for_real(
    demo: Demo,
    out: Outcome,
    user: Client,
    venue: Venue,
    phone: Phone,
    what: str,
    *,
    presence_code: str | None = None,
    attempts: int = 3,
) -> Attempt:
    """Check in with a fresh fix; on a rejection that a better fix can fix, wait and retry."""
    attempt = check_in(demo, out, user, venue, phone.fix(), what, presence_code=presence_code)
    for _ in range(attempts - 1):
        codes = {r["code"] for r in attempt.result["reasons"]}
        if attempt.verified or not codes <= RETRYABLE:
            break
        phone.wait(15)
        out.say("the app waits 15 s for a better fix and tries again (a new key: a new attempt)")
        attempt = check_in(demo, out, user, venue, phone.fix(), what, presence_code=presence_code)
    return attempt


def unlock_of(attempt: Attempt, demo: Demo, name: str) -> str | None:
    """The code `attempt` unlocked for the offer called `name`, if any."""
    for unlock in attempt.result["unlocks"]:
        if demo.offer_names.get(unlock["offer_id"]) == name:
            return unlock["code"]
    return None


def redeem(out: Outcome, staff: Client, code: str, venue: Venue, who: str) -> None:
    try:
        redemption = staff.redeem(code, venue["id"], idempotency_key=str(uuid.uuid4()))
    except ApiError as refusal:
        out.redemptions.append(refusal.code)
        out.say(f"{who} shows {code} at the till: REFUSED {refusal.code} ({refusal.detail})")
        return
    out.redemptions.append("redeemed")
    out.say(f'{who} shows {code} at the till: redeemed "{redemption["title"]}"')


def rate(out: Outcome, user: Client, attempt: Attempt, stars: int, comment: str, who: str) -> None:
    """Rate a verified visit in the app afterwards, as the app asks."""
    if not attempt.verified:
        return
    user.give_feedback(attempt.result["id"], stars, comment)
    out.feedback.append(stars)
    out.say(f'{who} rates the visit {"★" * stars}{"☆" * (5 - stars)}: "{comment}"')


def walk(
    demo: Demo,
    out: Outcome,
    phone: Phone,
    route: Route,
    to: str,
    *,
    who: str = "walks",
    companions: Sequence[Phone] = (),
) -> None:
    """Walk `route` along the streets; `companions` keep pace a metre or two to the side."""
    started = time.monotonic()
    fixes = []
    for step in phone.walk(route.points):
        fixes.append(step.fix)
        for i, companion in enumerate(companions):
            companion.position = offset(step.position, 1.5 * (i + 1), 0)
    seconds = route.length_m / WALKING_SPEED_MPS
    streets = ", ".join(route.streets[:4]) or "footpaths"
    accuracies = [f.accuracy_m for f in fixes]
    out.say(
        f"{who} {route.length_m:.0f} m to {to} along {streets}: {_minutes(seconds)} at "
        f"{WALKING_SPEED_MPS * 3.6:.0f} km/h, played in {time.monotonic() - started:.0f} s "
        f"({demo.speedup:g}x faster); the phone reported {len(fixes)} fixes of "
        f"±{min(accuracies):.0f}-{max(accuracies):.0f} m on the way"
    )


def _minutes(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s" if m else f"{s} s"


# ---- the personas ----------------------------------------------------------------------------


def regular(demo: Demo, out: Outcome) -> None:
    """Riikka comes to her cafe every day, redeems her third coffee, and walks on."""
    cafe, stop = demo.venues["regular_cafe"], demo.venues["second_stop"]
    user = demo.new_user("Riikka")
    phone = demo.phone(inside(cafe), 1)
    phone.go_inside()
    visits = []
    for visit in (1, 2, 3):
        visits.append(check_in_for_real(demo, out, user, cafe, phone, f"visit {visit}"))
        phone.wait(60)
    out.say(
        "    (this demo cafe has no cooldown, so that visits on three days fit into the demo; "
        f"the other demo venues allow one verified check-in every "
        f"{stop['checkin_cooldown_minutes']} min, a real cafe perhaps one a day)"
    )
    code = unlock_of(visits[-1], demo, "nth_visit")
    if code:
        redeem(out, demo.staff(), code, cafe, "Riikka")
    rate(
        out, user, visits[-1], 5, "Third coffee on the house and the bun was still warm.", "Riikka"
    )

    walk(demo, out, phone, demo.route(inside(cafe), inside(stop)), stop["name"])
    phone.go_inside(inside(stop))
    first = check_in_for_real(demo, out, user, stop, phone, "checks in")
    # The answer is lost (a tunnel, a timeout): the app sends the same request with the same key.
    retry = user.check_in(stop["id"], **first.fix.check_in_args(), idempotency_key=first.key)
    same = "the same check-in" if retry["id"] == first.result["id"] else "ANOTHER check-in (a bug)"
    out.say(
        "the answer is lost in a tunnel; the app retries with the same Idempotency-Key and gets "
        f"{same} back: nothing is done twice"
    )
    phone.wait(20)
    check_in(demo, out, user, stop, phone.fix(), "taps check-in again (a new key)")


def newcomer(demo: Demo, out: Outcome) -> None:
    """Niko is new in town: he finds an offer nearby, walks there, and scans the code inside."""
    venue = demo.venues["newcomer_restaurant"]
    start = demo.start_point(inside(venue), 300)
    user = demo.new_user("Niko")
    phone = demo.phone(start, 2)
    here = phone.fix()
    listed = user.nearby(here.lat, here.lon, radius_m=400, limit=100)
    with_offers = [v for v in listed if v["offers"]]
    out.say(f"opens the app on a street corner: {len(with_offers)} venues with offers within 400 m")
    for v in with_offers:
        if v["id"] == venue["id"]:
            out.say(f"    picks {v['name']}, {v['distance_m']:.0f} m away:")
            for offer in v["offers"]:
                code = ", with the code shown inside" if offer["requires_presence_code"] else ""
                out.say(f'      "{offer["title"]}": {offer["unlock"]}{code}')
    walk(demo, out, phone, demo.route(start, inside(venue)), venue["name"])
    phone.go_inside(inside(venue))
    check_in(demo, out, user, venue, phone.coarse_fix(), "checks in at once on a network fix")
    phone.wait(20)
    out.say("the app waits 20 s for GPS to settle indoors")
    code = demo.staff().presence_code(venue["id"])["code"]
    out.say(f"scans the presence code {code} shown on the screen at the counter")
    attempt = check_in_for_real(demo, out, user, venue, phone, "checks in", presence_code=code)
    dessert = unlock_of(attempt, demo, "presence")
    if dessert:
        redeem(out, demo.staff(), dessert, venue, "Niko")
    rate(out, user, attempt, 4, "Good food. Took me a while to find the code screen.", "Niko")


def group(demo: Demo, out: Outcome) -> None:
    """Aino, Eero and Lumi meet on a corner and walk to the pub together."""
    pub = demo.venues["group_pub"]
    meet = demo.start_point(inside(pub), 200)
    names = ("Aino", "Eero", "Lumi")
    users = {name: demo.new_user(name) for name in names}
    phones = {name: demo.phone(meet, 3 + i) for i, name in enumerate(names)}
    out.say("meet on a street corner")
    leader, *others = names
    route = demo.route(meet, inside(pub))
    walk(
        demo,
        out,
        phones[leader],
        route,
        pub["name"],
        who="walk together",
        companions=[phones[n] for n in others],
    )
    completed_by = None
    for i, name in enumerate(names):
        phones[name].go_inside(offset(inside(pub), 2.0 * i, 1.0))
        attempt = check_in_for_real(demo, out, users[name], pub, phones[name], f"{name} checks in")
        if completed_by is None and unlock_of(attempt, demo, "group"):
            completed_by = name
        phones[name].wait(10)
    codes = {}
    for name in names:
        wallet = users[name].wallet()
        mine = [e for e in wallet if demo.offer_names.get(e["offer_id"]) == "group"]
        if mine:
            codes[name] = mine[0]["code"]
            out.say(f'{name}\'s wallet: "{mine[0]["title"]}" {mine[0]["code"]}')
    # The first two got the group offer when the third completed the group, not from their own
    # check-ins: count it from the wallets.
    out.unlocked = [n for n in out.unlocked if n != "group"] + ["group"] * len(codes)
    rule = demo.offers["group"]["rule"]
    if completed_by == names[-1]:
        out.say("    (the third friend completed the group, and every member got the offer)")
    elif completed_by is not None:
        out.say(
            f"    ({completed_by} completed a group with people verified here in the last "
            f"{rule['within_minutes']} min (earlier demo runs?): they count too)"
        )
    if "Lumi" in codes:
        redeem(out, demo.staff(), codes["Lumi"], pub, "Lumi")
    rate(out, users["Lumi"], attempt, 2, "Far too loud, and the bar forgot our order.", "Lumi")


def spoofer(demo: Demo, out: Outcome) -> None:
    """Sami wants the dessert without leaving his sofa in Kallio."""
    venue = demo.venues["newcomer_restaurant"]
    home = offset(inside(venue), 300, 2_400)
    user = demo.new_user("Sami")
    phone = demo.phone(home, 7)
    phone.go_inside()
    check_in(demo, out, user, venue, phone.fix(), "checks in from his sofa 2.4 km away")
    phone.use_mock_app(inside(venue))
    check_in(demo, out, user, venue, phone.fix(), "installs a fake-GPS app and checks in")
    phone.use_mock_app(inside(venue), hide_flag=True)
    check_in(
        demo,
        out,
        user,
        venue,
        phone.fix(),
        "roots the phone to hide the mock flag and guesses presence code 123456",
        presence_code="123456",
    )
    check_in(demo, out, user, venue, phone.fix(), "tries again without a code")
    presence = demo.offer_title("presence")
    out.say(
        "    limits: the server cannot tell a well-hidden fake position from GPS, so ordinary "
        f'offers can be had this way; "{presence}" needs the code shown inside and stays locked'
    )


def teleporter(demo: Demo, out: Outcome) -> None:
    """Tero checks in for real, then jumps across town with a fake position."""
    here, there = demo.venues["teleport_from"], demo.venues["teleport_to"]
    user = demo.new_user("Tero")
    phone = demo.phone(inside(here), 8)
    phone.go_inside()
    check_in_for_real(demo, out, user, here, phone, "checks in for real")
    phone.wait(30)
    phone.use_mock_app(inside(there), hide_flag=True)
    metres = distance_m(inside(here), inside(there))
    what = f"a moment later, with a hidden fake position {metres:,.0f} m away, checks in"
    check_in(demo, out, user, there, phone.fix(), what)
    minimum = metres / (MAX_SPEED_KMH / 3.6)
    out.say(
        f"    limits: waiting more than {minimum:.0f} s between fake check-ins this far apart "
        "beats this rule; presence codes are the defence there"
    )


def replayer(demo: Demo, out: Outcome) -> None:
    """Reeta recorded a genuine fix in the store yesterday and replays it from home."""
    venue = demo.venues["replay_shop"]
    user = demo.new_user("Reeta")
    phone = demo.phone(inside(venue), 9)
    phone.go_inside()
    recorded = phone.fix()
    yesterday = recorded.redated(recorded.observed_at - timedelta(days=1))
    check_in(demo, out, user, venue, yesterday, "replays yesterday's genuine fix")
    ahead = recorded.redated(recorded.observed_at + timedelta(minutes=10))
    check_in(demo, out, user, venue, ahead, "re-dates it 10 minutes into the future")
    out.say(
        "    limits: an old fix re-dated to the present is a plain spoof; "
        "only offers that need the presence code resist it"
    )


def code_sharer(demo: Demo, out: Outcome) -> None:
    """Kalle unlocks a code and sends a screenshot of it to his friend Ville."""
    shop = demo.venues["sharer_shop"]
    kalle, ville = demo.new_user("Kalle"), demo.new_user("Ville")
    phone = demo.phone(inside(shop), 10)
    phone.go_inside()
    attempt = check_in_for_real(demo, out, kalle, shop, phone, "Kalle checks in")
    code = unlock_of(attempt, demo, "capped")
    if code is None:
        out.say("    nothing to share (is the offer's cap used up?)")
        return
    out.say(f"Kalle sends a screenshot of {code} to Ville")
    out.say(
        f"Ville's app has {len(ville.wallet())} codes: a code belongs to the user who earned it"
    )
    staff = demo.staff()
    redeem(out, staff, code, shop, "Kalle")
    redeem(out, staff, code, shop, "Ville, with the screenshot,")
    out.say(
        "    limits: at the till a code is a bearer secret: had Ville gone first, his use would "
        "have been the one redeemed. What holds is one redemption per code, and a record of "
        "every attempt (key, venue, time) for the merchant's leak report"
    )


def tag_at(demo: Demo, name: str) -> SoftTag:
    """The software NTAG 424 DNA `name`, programmed with the keys the demo kept, its counter
    where the server last saw it (as a real tag's would be, give or take unsubmitted reads)."""
    spec = demo.state.tags[name]
    tag = SoftTag(
        spec["uid"], spec["sdm_meta_read_key"], spec["sdm_file_read_key"], spec["url_template"]
    )
    venue_id = demo.venues[spec["venue_role"]]["id"]
    counters = {t["id"]: t["last_counter"] for t in demo.owner.list_nfc_tags(venue_id)}
    tag.counter = counters.get(spec["id"]) or 0
    return tag


def tap(out: Outcome, user: Client, url: str, who: str) -> str | None:
    """Send a tag's URL for a tap token; tell what the server said."""
    try:
        token = user.tap(url)["tap_token"]
    except ApiError as refusal:
        out.rejected.append(refusal.code)
        out.say(f"{who} sends a tag URL: REFUSED {refusal.code} ({refusal.detail})")
        return None
    out.say(f"{who} sends the tag's URL: a tap token for 2 minutes")
    return token


def indoor_tapper(demo: Demo, out: Outcome) -> None:
    """Iida sits deep inside the bar; GPS bounces off the walls, so she taps the tag."""
    bar = demo.venues["tap_bar"]
    user = demo.new_user("Iida")
    phone = demo.phone(inside(bar), 11)
    here = inside(bar)
    rough = offset(here, 0, 180)  # the phone thinks she is 180 m up the street
    fix = Fix(rough.lat, rough.lon, 260.0, phone.clock.now(), False)
    check_in(demo, out, user, bar, fix, "checks in with the phone's indoor fix")
    counter = tag_at(demo, "counter")
    token = tap(out, user, counter.read(), "Iida holds her phone to the tag at the counter and")
    fix = Fix(rough.lat, rough.lon, 260.0, phone.clock.now(), False)
    check_in(demo, out, user, bar, fix, "checks in again, same rough fix", tap_token=token)
    out.say(
        "    with a tap of the venue's tag the fix only has to be plausible (within the venue's "
        "tap radius, 500 m): the tag proves the phone was at the counter"
    )


def collector(demo: Demo, out: Outcome) -> None:
    """Kari taps the door tag once honestly, then ten times to collect URLs, and tries them from
    home the next day."""
    bar = demo.venues["tap_bar"]
    user = demo.new_user("Kari")
    door = tag_at(demo, "door")
    phone = demo.phone(inside(bar), 12)
    token = tap(out, user, door.read(), "Kari taps the door tag and")
    fix = Fix(*_lat_lon(inside(bar)), 15.0, phone.clock.now(), False)
    check_in(demo, out, user, bar, fix, "checks in", tap_token=token)
    collected = [door.read() for _ in range(10)]
    out.say("Kari taps the tag ten more times and keeps the URLs instead of sending them")
    home = offset(inside(bar), 1_500, 1_500)
    out.say(
        "the next day, at home about 2 km away (the demo does not wait a day: the travel check "
        "and the cooldown see it too):"
    )
    token = tap(out, user, collected[-1], "Kari")
    at_home = Fix(home.lat, home.lon, 12.0, phone.clock.now(), False)
    check_in(demo, out, user, bar, at_home, "checks in from home", tap_token=token)
    tap(out, user, collected[3], "Kari tries an older URL:")
    out.say(
        "    limits: SUN carries no time, so the newest collected URL was accepted; the fix gave "
        "him away. With a spoofed fix it would pass: the leak report shows the reads he skipped "
        "(a counter gap of 9), and any guest's tap in between would have killed all ten URLs"
    )


def festival_guest(demo: Demo, out: Outcome) -> None:
    """Fanni wears a wristband with an NFC chip; her friend Matti shows his member code. The
    staff at the gate check them in; neither phone does anything."""
    bar = demo.venues["tap_bar"]
    fanni, matti = demo.new_user("Fanni"), demo.new_user("Matti")
    uid = random_uid()
    band = SoftTag.programmed(dict(fanni.register_card(uid, "festival wristband")), uid)
    out.say("Fanni registers her wristband in the app once (its keys are shown once)")
    staff = demo.staff()
    for who, user, how in (
        ("Fanni", fanni, {"card_url": band.read()}),
        ("Matti", matti, {"member_code": matti.member_code()["code"]}),
    ):
        kind = "reads Fanni's wristband" if "card_url" in how else "types Matti's member code"
        result = staff.staff_check_in(bar["id"], idempotency_key=str(uuid.uuid4()), **how)
        titles = [u["title"] for u in result["unlocks"]]
        out.unlocked.extend(
            demo.offer_names.get(u["offer_id"], u["title"]) for u in result["unlocks"]
        )
        out.say(
            f"staff at {bar['name']} {kind}: {result['status']} (proof: {result['proof']}); "
            f"unlocked {', '.join(titles) or 'nothing'}; in {who}'s wallet: "
            f"{len(user.wallet())} code(s)"
        )
    try:
        staff.staff_check_in(bar["id"], member_code="00000000")
    except ApiError as refusal:
        out.rejected.append(refusal.code)
        out.say(f"a mistyped member code: REFUSED {refusal.code}")


def _lat_lon(point: LatLon) -> tuple[float, float]:
    return point.lat, point.lon


PERSONAS: list[tuple[str, str, Callable[[Demo, Outcome], None]]] = [
    ("regular", "Riikka, a regular", regular),
    ("newcomer", "Niko, new in town", newcomer),
    ("group", "Aino, Eero and Lumi, friends", group),
    ("spoofer", "Sami, a spoofer at home", spoofer),
    ("teleporter", "Tero, a teleporter", teleporter),
    ("replayer", "Reeta, a replayer of old fixes", replayer),
    ("code_sharer", "Kalle and Ville, code sharers", code_sharer),
    ("indoor_tapper", "Iida, indoors with poor GPS, taps the tag", indoor_tapper),
    ("collector", "Kari, a collector of tag URLs", collector),
    ("festival_guest", "Fanni and Matti, festival guests checked in by staff", festival_guest),
]


def _play(demo: Demo, persona: str, title: str, script: Callable[[Demo, Outcome], None]) -> Outcome:
    out = Outcome(persona, title)
    try:
        script(demo, out)
    except Exception as error:  # one persona's failure must not hide the others' stories
        out.error = f"{type(error).__name__}: {error}"
        out.say(f"FAILED: {out.error}")
    return out


def merchant_answers(demo: Demo) -> list[str]:
    """The staff answer the oldest feedback at once and the next one late; the rest waits. A
    day does not fit in a demo, so the report's target (a query parameter, 24 hours by default)
    is set just above the time the quick answer took: the late one misses it, the unanswered
    one is overdue. The story ends with the responsiveness report."""
    staff = demo.staff()
    inbox = staff.list_feedback(status="unanswered")
    lines = [f"== Feedback: the merchant's inbox ({len(inbox)} unanswered, oldest first) =="]
    if not inbox:
        return lines
    quick, *rest = inbox
    staff.reply_to_feedback(quick["id"], "Thank you! See you tomorrow.")
    [answered] = [f for f in staff.list_feedback(status="answered") if f["id"] == quick["id"]]
    took = answered["first_response_s"]
    target_s = took + 3
    lines.append(
        f"  {quick['rating']}★ at {quick['venue_name']}: staff reply at once ({took} s after it "
        'was given): "Thank you! See you tomorrow."'
    )

    def wait_until_older_than_target() -> None:
        ages = [f["waiting_s"] for f in staff.list_feedback(status="unanswered")]
        if ages:
            time.sleep(max(0.0, target_s + 1 - min(ages)))

    wait_until_older_than_target()
    if rest:
        late, *rest = rest
        body = "Sorry we let you down: your next round is on us."
        staff.reply_to_feedback(late["id"], body)
        lines.append(f'  {late["rating"]}★ at {late["venue_name"]}: staff reply late: "{body}"')
    for item in rest:
        lines.append(f"  {item['rating']}★ at {item['venue_name']}: still waiting")
    report = demo.owner.responsiveness(target_hours=round(target_s / 3600, 6))
    fr = report["first_response_s"]
    fb = report["benchmarks"]["facebook_very_responsive"]
    lines += [
        f"== The responsiveness report (target {target_s} s, for the demo; 24 h by default) ==",
        f"  {report['feedback']} feedback, {report['answered']} answered "
        f"({report['answered_within_target']} within the target), {report['pending']} pending, "
        f"{report['overdue']} overdue: response rate {_percent(report['response_rate'])}",
        f"  first reply: median {fr['median']} s, p90 {fr['p90']} s; mean rating "
        f"{report['rating']['mean']} {report['rating']['count_by_star']}",
        f"  Facebook's very responsive mark (90% answered within 15 min on average, 7 days): "
        f"{'met' if fb['meets'] else 'not met'}",
    ]
    return lines


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.0%}"


def merchant_view(demo: Demo) -> list[str]:
    """The offers' counters as the merchant sees them, and a funnel when analytics answer."""
    lines = ["== The merchant's view (owner key) ==", f"  {'unlocked':<10} {'rule':<14} offer"]
    offers = {o["id"]: o for o in demo.owner.list_offers()}
    for offer_id in demo.state.offers.values():
        offer = offers[offer_id]
        count = f"{offer['unlocked_count']}"
        if offer["total_cap"]:
            count += f" of {offer['total_cap']}"
        lines.append(f"  {count:<10} {offer['rule']['kind']:<14} {offer['title']}")
    try:
        funnel = demo.owner.offer_funnel(demo.state.offers["welcome"])
    except ApiError:
        return lines  # no analytics on this server (yet)
    steps = ("impressions", "checkins", "verified_checkins", "unlocks", "redemptions")
    lines.append(
        f'  funnel of "{demo.offer_title("welcome")}" so far: '
        + ", ".join(f"{funnel.get(k)} {k.replace('_', ' ')}" for k in steps)
    )
    lines.append("  by proof of presence (verified check-ins / unlocks / redemptions):")
    for name in ("welcome", "tap"):
        if name not in demo.state.offers:
            continue
        split = demo.owner.offer_funnel(demo.state.offers[name]).get("by_proof", {})
        cells = ", ".join(
            f"{proof} {c['verified_checkins']}/{c['unlocks']}/{c['redemptions']}"
            for proof, c in split.items()
        )
        lines.append(f'    "{demo.offer_title(name)}": {cells}')
    nfc = demo.owner.leak_report().get("nfc")
    if nfc:
        lines.append(
            f"  NFC: {nfc['taps_accepted']} taps accepted, refused {nfc['taps_refused'] or 'none'}, "
            f"{nfc['counter_gaps']['skipped_reads']} reads skipped by "
            f"{nfc['counter_gaps']['taps']} taps (collected URLs?), "
            f"{nfc['rough_fix_tap_checkins']} tap check-ins with a fix over "
            f"{nfc['rough_fix_m']:g} m away, staff check-ins {nfc['staff_checkin_attempts']}"
        )
    return lines


def run_personas(
    transport_factory: Callable[[], Transport],
    state: DemoState,
    *,
    speedup: float = 30.0,
    seed: int = 1,
    only: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[Outcome]:
    """Run the personas side by side and print each one's story, in order, as it ends."""
    demo = Demo(transport_factory, state, speedup=speedup, seed=seed)
    chosen = [p for p in PERSONAS if only is None or p[0] in only]
    apparent = WALKING_SPEED_MPS * speedup * 3.6
    log(
        f"{len(chosen)} personas in central {demo.city.name} (map data {demo.city.attribution}). "
        f"Walks play {speedup:g}x faster than real time, so a walk looks like {apparent:.0f} km/h "
        f"to the server (its limit is {MAX_SPEED_KMH:g} km/h). Seed {seed}."
    )
    try:
        with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
            futures = [pool.submit(_play, demo, *p) for p in chosen]
            outcomes = []
            for future in futures:
                outcome = future.result()
                outcomes.append(outcome)
                log("")
                log(f"== {outcome.title} ==")
                for line in outcome.lines:
                    log(f"  {line}")
        log("")
        for line in merchant_view(demo):
            log(line)
        if any(o.feedback for o in outcomes):
            log("")
            for line in merchant_answers(demo):
                log(line)
    finally:
        demo.close()
    return outcomes
