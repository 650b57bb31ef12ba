"""Presence codes are TOTP exactly as RFC 6238 (and HOTP as RFC 4226) specify."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from geo import presence

# The RFCs' shared secret: the ASCII digits "1234567890" twice (20 bytes, for HMAC-SHA1).
RFC_SECRET = b"12345678901234567890"


@pytest.mark.parametrize(
    ("counter", "code"),
    [
        (0, "755224"),
        (1, "287082"),
        (2, "359152"),
        (3, "969429"),
        (4, "338314"),
        (5, "254676"),
        (6, "287922"),
        (7, "162583"),
        (8, "399871"),
        (9, "520489"),
    ],
)
def test_hotp_matches_rfc_4226_appendix_d(counter: int, code: str) -> None:
    assert presence.hotp(RFC_SECRET, counter) == code


@pytest.mark.parametrize(
    ("unix_time", "code"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_totp_matches_rfc_6238_appendix_b_sha1(unix_time: int, code: str) -> None:
    """The RFC's vectors use a 30-second step and 8 digits (ours: 60 s and 6)."""
    assert presence.hotp(RFC_SECRET, unix_time // 30, digits=8) == code


def test_the_code_rotates_every_step_and_the_previous_one_is_still_accepted() -> None:
    secret = presence.new_secret()
    start = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)  # on a step boundary
    code, valid_until = presence.current_code(secret, start)
    assert valid_until == start + timedelta(seconds=presence.STEP_SECONDS)
    assert code == presence.hotp(secret, int(start.timestamp()) // presence.STEP_SECONDS)
    assert presence.accepts(secret, code, start + timedelta(seconds=59))
    assert presence.accepts(secret, code, valid_until + timedelta(seconds=59))  # the previous
    assert not presence.accepts(secret, code, valid_until + timedelta(seconds=60))
    assert not presence.accepts(secret, "٠١٢٣٤٥", start)  # non-ASCII digits: refused, no error
