"""No secret reaches the logs: a full run of the real server, then a grep of everything it printed.

A gunicorn of its own (two workers, `LOG_LEVEL=DEBUG` so that the most is logged, metrics on)
serves a whole story: merchant sign-up, keys created, rotated and revoked, venues and offers,
presence codes, users signing up and in with passwords (and failing to), check-ins that unlock
codes (one retried with its idempotency key), redemptions in every typed form of a code, refused
codes, forged and revoked credentials, a metrics scrape, the audit trail, a dashboard sign-in.
Then its whole stdout and stderr must hold none of the secrets, in any form they were sent or
stored in: keys, tokens and their parts, passwords, codes (as shown, compact, lower case, QR
payload), presence codes, the metrics token, the database password, the stored SHA-256 and
Argon2 hashes and the dashboard's session cookie. Revoked and rotated-out keys fail at once on
every worker along the way.

The whole story runs twice: with JSON lines (production) and with the text lines a person sees
at a terminal (`LOG_FORMAT=text`, what `make run` shows), and both logs get the same grep.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, make_url, text

from core.uow import sqlalchemy_url
from mobile_stub.client import ApiError, Client, HttpTransport
from tests.factories import offer_body, venue_body
from tests.servers import start_gunicorn

pytestmark = pytest.mark.e2e

LON, LAT = 22.2666, 60.4518  # Turku, away from the other end-to-end tests
PLACE = {"type": "Point", "coordinates": [LON, LAT]}
METRICS_TOKEN = secrets.token_hex(24)
# A person's fix, a little off the venue's location (which is no one's secret).
FIX_LAT, FIX_LON = LAT + 0.000173, LON + 0.000119


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _refused(call: Any, status: int) -> None:
    with pytest.raises(ApiError) as err:
        call()
    assert err.value.status == status, err.value


def _forms(code: str) -> list[str]:
    compact = code.replace("-", "")
    return [code, compact, code.lower(), compact.lower(), f"CHECKIN-OFFERS:{code}"]


def _key_parts(token: str) -> list[str]:
    """A bearer credential, its secret part and its lookup (`<prefix>_<lookup>_<secret>`)."""
    _prefix, lookup, secret = token.split("_", 2)
    return [token, secret, lookup]


def _story(base: str) -> tuple[list[str], list[str], list[str]]:
    """Drive the service; answer (secrets sent or stored, presence codes, personal data: a
    handle, a device id, a fix's coordinates)."""
    transport = HttpTransport(base)
    api = Client(transport)
    sent: list[str] = []
    presence_codes: list[str] = []
    tag = secrets.token_hex(4)

    owner = api.with_token(api.create_merchant("Log Cafe", f"logs-{tag}@example.com")["api_key"])
    staff_created = owner.create_key("staff", "till")
    analyst_created = owner.create_key("analyst")
    rotated = owner.rotate_key(staff_created["id"])
    staff = owner.with_token(rotated["api_key"])
    _refused(lambda: owner.with_token(staff_created["api_key"]).me(), 401)  # rotated out
    owner.revoke_key(analyst_created["id"])
    for _ in range(4):  # whichever worker answers: revoked at once
        _refused(lambda: owner.with_token(analyst_created["api_key"]).me(), 401)
    sent += [owner.token or "", staff_created["api_key"], rotated["api_key"]]
    sent += [analyst_created["api_key"]]

    venue = owner.create_venue(venue_body(name="Log venue", location=PLACE))
    owner.update_venue(venue["id"], {"name": "Log venue 2"})
    guarded = owner.create_offer(offer_body([venue["id"]], requires_presence_code=True))
    plain = owner.create_offer(offer_body([venue["id"]], title="Plain"))
    owner.activate_offer(guarded["id"])
    owner.activate_offer(plain["id"])
    presence = staff.presence_code(venue["id"])["code"]
    presence_codes.append(presence)

    passwords = [f"pw-{secrets.token_hex(6)}", f"pw-{secrets.token_hex(6)}"]
    sent += passwords
    phone = api.with_token(api.create_user(f"logs_{tag}", passwords[0])["token"])
    phone = api.with_token(api.login(f"LOGS_{tag}", passwords[0]))
    _refused(lambda: api.login(f"logs_{tag}", passwords[1]), 401)  # a wrong password
    _refused(lambda: api.login(f"nobody_{tag}", passwords[1]), 401)
    sent += [phone.token or ""]
    observed_at = _now()

    def tap() -> dict[str, Any]:
        return dict(
            phone.check_in(
                venue["id"],
                LAT,
                LON,
                10,
                observed_at,
                presence_code=presence,
                idempotency_key=f"tap-{tag}",
            )
        )

    checkin, replay = tap(), tap()
    codes = [u["code"] for u in checkin["unlocks"]]
    assert len(codes) == 2 and [u["code"] for u in replay["unlocks"]] == codes
    for entry in phone.wallet():
        sent.append(entry["qr_payload"])

    staff.redeem(codes[0].lower().replace("-", " "), venue["id"])
    _refused(lambda: staff.redeem(codes[0], venue["id"]), 409)
    owner.redeem(codes[1].replace("-", ""), idempotency_key=f"till-{tag}")
    owner.redeem(codes[1].replace("-", ""), idempotency_key=f"till-{tag}")  # replayed
    _refused(lambda: staff.redeem("7K3Q-XM9T-2RK"), 404)
    for code in codes:
        sent += _forms(code)

    forged = [
        (phone.token or "")[:-4] + "AAAA",
        (owner.token or "")[:-4] + "AAAA",
        "cok_000000000000_" + secrets.token_urlsafe(32),
        "not-a-token-" + secrets.token_hex(8),
    ]
    for token in forged:
        for path in ("/v1/merchants/me", "/v1/me/unlocks"):
            answer = requests.get(base + path, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401
    sent += forged

    scrape = requests.get(base + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scrape.status_code == 200
    assert requests.get(base + "/metrics", headers={"Authorization": "Bearer x"}).status_code == 401
    assert owner.audit_trail()["events"]

    # The dashboard: its sign-in form takes a key; its cookie holds it, sealed.
    browser = requests.Session()
    form = browser.get(base + "/dashboard/sign-in").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    signed_in = browser.post(
        base + "/dashboard/sign-in",
        data={"api_key": owner.token, "csrf_token": csrf.group(1)},
        allow_redirects=False,
    )
    assert signed_in.status_code == 302
    assert browser.get(base + "/dashboard/api/merchants/me").status_code == 200
    sent += [c.value for c in browser.cookies if c.value] + [csrf.group(1)]
    browser.close()

    # A person checks in from a phone, downloads their data and leaves (docs/privacy.md).
    handle, device = f"leaver_{tag}", f"device-{secrets.token_hex(6)}"
    leaver = api.with_token(api.create_user(handle, passwords[1])["token"])
    leaver.check_in(venue["id"], FIX_LAT, FIX_LON, 8, _now(), device_id=device)
    leaver.check_in(venue["id"], FIX_LAT + 0.3, FIX_LON, 8, _now(), device_id=device)  # rejected
    exported = leaver.export_me()
    assert exported["account"]["handle"] == handle and len(exported["checkins"]) == 2
    leaver.delete_me()
    _refused(leaver.export_me, 401)
    sent += [leaver.token or ""]
    personal = [handle, device]
    personal += [f"{v:.5f}" for v in (FIX_LAT, FIX_LON, FIX_LAT + 0.3)]
    personal += [repr(v) for v in (FIX_LAT, FIX_LON, FIX_LAT + 0.3)]
    scrape = requests.get(base + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    for value in personal:  # metrics carry no personal data either
        assert value.lower() not in scrape.text.lower(), f"personal data in metrics: {value[:6]}"
    transport.close()
    return sent, presence_codes, personal


def _stored_hashes(database_url: str, lookups: list[str]) -> list[str]:
    """How the stored SHA-256 and Argon2 hashes could look in a log line."""
    engine = create_engine(sqlalchemy_url(database_url))
    found: list[str] = []
    with engine.connect() as conn:
        for (digest,) in conn.execute(
            text(
                "SELECT secret_hash FROM api_keys WHERE lookup = ANY(:l)"
                " UNION ALL SELECT secret_hash FROM user_tokens WHERE lookup = ANY(:l)"
            ),
            {"l": lookups},
        ):
            raw = bytes(digest)
            found += [raw.hex(), base64.b64encode(raw).decode(), "\\x" + raw.hex()]
        found += list(
            conn.scalars(text("SELECT password_hash FROM users WHERE handle LIKE 'logs_%'"))
        )
    engine.dispose()
    return found


# A text line: local time, level, then the message (api/observability.py, TextFormatter).
TEXT_LINE = re.compile(r"\d\d:\d\d:\d\d (DEBUG|INFO |WARN |ERROR|CRIT ) (.*)")
TEXT_REQUEST = re.compile(
    r"(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (/\S*|\(no route\)) (\d{3}) [\d.]+ ms"
)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_full_run_logs_no_secret(live_database_url: str, tmp_path: Path, log_format: str) -> None:
    server = start_gunicorn(
        live_database_url,
        tmp_path / "gunicorn.log",
        env={"LOG_LEVEL": "DEBUG", "METRICS_TOKEN": METRICS_TOKEN, "LOG_FORMAT": log_format},
        workers=2,
    )
    try:
        sent, presence_codes, personal = _story(server.base)
    finally:
        assert server.stop() == 0
    log = server.log()

    if log_format == "json":
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        requests_logged = [entry for entry in lines if entry.get("event") == "request"]
        statuses = {entry["status"] for entry in requests_logged}
    else:
        lines = []
        assert not [line for line in log.splitlines() if line.startswith("{")]
        texts = [m[2] for m in map(TEXT_LINE.fullmatch, log.splitlines()) if m]
        requests_logged = [m for m in map(TEXT_REQUEST.match, texts) if m]
        statuses = {int(m[3]) for m in requests_logged}
        assert any(t.startswith("checkin verified") for t in texts)
        assert any(t.startswith("redemption already_redeemed") for t in texts)
    assert len(requests_logged) > 40
    assert {401, 404, 409}.issubset(statuses)

    lookups = [
        part
        for token in sent
        if token.startswith(("cok_", "cou_"))
        for part in [token.split("_", 2)[1]]
    ]
    password = make_url(sqlalchemy_url(live_database_url)).password
    forbidden = [*sent, METRICS_TOKEN, *_stored_hashes(live_database_url, lookups)]
    forbidden += [
        part for token in sent if token.startswith(("cok_", "cou_")) for part in _key_parts(token)
    ]
    if password:
        forbidden.append(password)
    forbidden = sorted({s for s in forbidden if len(s) >= 8})
    assert len(forbidden) > 40
    for secret in forbidden:
        assert secret not in log, f"a secret is in the log: {secret[:4]}..."
        assert secret.lower() not in log.lower(), f"a secret is in the log: {secret[:4]}..."

    # No handle, device id or coordinates of a person (docs/privacy.md), in any case.
    for value in personal:
        assert value.lower() not in log.lower(), f"personal data in the log: {value[:6]}..."

    # Presence codes are six digits: look for them outside the clock and duration fields.
    for entry in lines:
        rest = json.dumps({k: v for k, v in entry.items() if k not in ("time", "duration_ms")})
        for code in presence_codes:
            assert not re.search(rf"(?<!\d){code}(?!\d)", rest), entry
    for line in log.splitlines():
        if not line.startswith("{"):
            for code in presence_codes:
                assert not re.search(rf"(?<!\d){code}(?!\d)", line), line
