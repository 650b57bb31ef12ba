"""Rotating presence codes, shown at the venue (screen, refreshed QR, NFC tag).

TOTP (RFC 6238) over a per-venue secret with a 60-second step and 6 digits. The previous step's
code is still accepted, so a code read just before it changes works.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from datetime import UTC, datetime, timedelta

STEP_SECONDS = 60
DIGITS = 6

# Guessing. Six digits with two codes valid at once: a random guess hits with probability
# 2 / 10**6. Wrong codes are limited in a sliding window per user (all venues), per device (the
# check-in's `device_id`, all users and venues) and per venue (all users): with as many wrong
# codes in the last `WRONG_WINDOW` as the limit, a check-in carrying a code is refused
# (429 `too_many_attempts`) until the oldest of them leaves the window. The per-venue limit is
# what bounds a guesser with many accounts and devices; docs/presence.md computes the odds.
WRONG_WINDOW = timedelta(minutes=15)
MAX_WRONG_PER_USER = 5
MAX_WRONG_PER_DEVICE = 5
MAX_WRONG_PER_VENUE = 30
GUESS_SCOPES = ("user", "device", "venue")
MAX_WRONG = {
    "user": MAX_WRONG_PER_USER,
    "device": MAX_WRONG_PER_DEVICE,
    "venue": MAX_WRONG_PER_VENUE,
}


def new_secret() -> bytes:
    return secrets.token_bytes(20)


def code_at(secret: bytes, when: datetime) -> str:
    return hotp(secret, _step(when))


def current_code(secret: bytes, now: datetime) -> tuple[str, datetime]:
    """The code shown now and the instant it stops being the current one."""
    step = _step(now)
    valid_until = datetime.fromtimestamp((step + 1) * STEP_SECONDS, UTC)
    return hotp(secret, step), valid_until


def accepts(secret: bytes, code: str, now: datetime) -> bool:
    """True for the current code or the previous step's (one step of clock skew)."""
    step = _step(now)
    candidate = code.strip()
    if not candidate.isascii():  # compare_digest takes ASCII strings only
        return False
    matches = [hmac.compare_digest(hotp(secret, s), candidate) for s in (step, step - 1)]
    return any(matches)


def _step(when: datetime) -> int:
    return int(when.timestamp()) // STEP_SECONDS


def hotp(secret: bytes, counter: int, digits: int = DIGITS) -> str:
    """HOTP (RFC 4226) with HMAC-SHA1; TOTP (RFC 6238) is HOTP of the time step."""
    digest = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)
