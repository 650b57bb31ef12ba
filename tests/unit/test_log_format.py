"""The two log formats (`LOG_FORMAT`): which one a process picks, and what a text line holds."""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import uuid

from api.observability import TextFormatter, log_config, resolve_log_format

USER = uuid.UUID("5e6f7a8b-0000-4000-8000-000000000001")
VENUE = uuid.UUID("3fa8c0de-0000-4000-8000-000000000002")
KEY = uuid.UUID("1a2b3c4d-0000-4000-8000-000000000003")
LINE = re.compile(r"\d\d:\d\d:\d\d (DEBUG|INFO |WARN |ERROR|CRIT ) (.*)", re.DOTALL)


def record(
    name: str, message: str, level: int = logging.INFO, **extra: object
) -> logging.LogRecord:
    """A record as `logger.info(message, extra=extra)` makes it."""
    made = logging.LogRecord(name, level, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def text(made: logging.LogRecord) -> str:
    match = LINE.fullmatch(TextFormatter().format(made))
    assert match, TextFormatter().format(made)
    return match[2]


def test_auto_is_text_at_a_terminal_and_json_anywhere_else() -> None:
    main, secondary = os.openpty()
    with open(secondary, "w") as terminal:
        assert resolve_log_format("auto", terminal) == "text"
        assert resolve_log_format("json", terminal) == "json"
    os.close(main)
    assert resolve_log_format("auto", io.StringIO()) == "json"
    with open(os.devnull, "w") as devnull:
        assert resolve_log_format("auto", devnull) == "json"
        assert resolve_log_format("text", devnull) == "text"
    closed = io.StringIO()
    closed.close()
    assert resolve_log_format("auto", closed) == "json"


def test_the_handler_uses_the_chosen_format() -> None:
    assert log_config("INFO", "text")["handlers"]["stdout"]["formatter"] == "text"
    assert log_config("INFO", "json")["handlers"]["stdout"]["formatter"] == "json"
    expected = "text" if sys.stdout.isatty() else "json"
    assert log_config("INFO", "auto")["handlers"]["stdout"]["formatter"] == expected


def test_a_request_line_reads_like_an_access_log() -> None:
    fields = {
        "request_id": "req-secret-looking-0123",
        "method": "POST",
        "route": "/v1/venues/<uuid:venue_id>/presence-code",
        "status": 201,
        "duration_ms": 35.27,
        "remote_addr": "203.0.113.9",
        "merchant_id": str(uuid.uuid4()),
        "key_id": str(KEY),
        "key_role": "staff",
    }
    line = text(record("checkin_offers.request", "request", **fields))
    assert line == "POST /v1/venues/<venue_id>/presence-code 201 35 ms staff=1a2b3c4d"
    quick = text(record("checkin_offers.request", "request", **fields | {"duration_ms": 2.04}))
    assert " 2.0 ms " in quick
    user = text(
        record(
            "checkin_offers.request",
            "request",
            method="POST",
            route="/v1/checkins",
            status=201,
            duration_ms=12.0,
            user_id=str(USER),
            idempotent_replay=True,
        )
    )
    assert user == "POST /v1/checkins 201 12 ms user=5e6f7a8b (replayed)"
    unknown = text(
        record("checkin_offers.request", "request", method="GET", route=None, status=404)
    )
    assert unknown.startswith("GET (no route) 404 ")


def test_check_in_and_redemption_lines_say_what_happened() -> None:
    rejected = text(
        record(
            "checkin_offers.checkin",
            "checkin",
            request_id="r1",
            checkin_id=str(uuid.uuid4()),
            user_id=str(USER),
            venue_id=str(VENUE),
            verdict="rejected",
            reasons=["outside_geofence", "stale_fix"],
            distance_m=2380.4,
            presence_verified=False,
            unlocked_offer_ids=[],
            held_out_offer_ids=[],
        )
    )
    assert rejected == (
        "checkin rejected outside_geofence,stale_fix venue=3fa8c0de user=5e6f7a8b distance=2380.4 m"
    )
    verified = text(
        record(
            "checkin_offers.checkin",
            "checkin",
            verdict="verified",
            reasons=[],
            user_id=str(USER),
            venue_id=str(VENUE),
            distance_m=0.0,
            presence_verified=True,
            unlocked_offer_ids=[str(uuid.uuid4())] * 2,
            held_out_offer_ids=[str(uuid.uuid4())],
        )
    )
    assert verified.endswith("presence-code unlocked=2 held_out=1")
    refused = text(
        record(
            "checkin_offers.redemption",
            "redemption",
            merchant_id=str(uuid.uuid4()),
            key_id=str(KEY),
            venue_id=None,
            outcome="already_redeemed",
        )
    )
    assert refused == "redemption already_redeemed key=1a2b3c4d"


def test_other_lines_name_their_source_and_keep_their_fields() -> None:
    assert text(record("gunicorn.error", "Booting worker with pid: %s")) == (
        "gunicorn: Booting worker with pid: %s"
    )
    warned = record(
        "api.dashboard.session", "session %s", logging.WARNING, request_id="r", tenant=str(VENUE)
    )
    warned.args = ("expired",)
    assert TextFormatter().format(warned).split(" ", 1)[1] == (
        "WARN  api.dashboard.session: session expired tenant=3fa8c0de"
    )


def test_an_exception_follows_its_line_as_a_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("api", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    first, *rest = TextFormatter().format(failed).splitlines()
    assert first.endswith("ERROR api: failed")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"
