"""Member codes: the rotating 8-digit code a user shows staff for a check-in without their phone
doing anything else (`GET /v1/me/member-code`, `POST /v1/staff-checkins`).

A user's code is HOTP (RFC 4226, `geo.presence.hotp`) of the one-minute time step under a
per-user secret derived from the service's master key, so nothing secret is stored. Staff type
the code, not the user's name: to find the user, every code a user is shown is written to
`member_codes` (step, code, user); a code is accepted during its minute and the next one (the
previous minute's code still works, and a code can be used again within that time: cooldowns
decide about repeated visits). Two users showing the same code in the same two minutes (about one
chance in 50,000 per lookup with 1,000 users showing codes at once) cannot be told apart: such a
code is refused as invalid, and the next minute's codes differ.

Guessing is limited where it is tried: `MAX_WRONG` wrong codes per API key and venue, and
`MAX_WRONG_PER_VENUE` per venue whatever the key, within `WRONG_WINDOW` (offers/checkins.py
counts them), after which the key is refused at that venue until the oldest wrong code leaves
the window. docs/presence.md computes the odds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.uow import UnitOfWork, execute
from geo.presence import hotp

DIGITS = 8
STEP_SECONDS = 60
MAX_WRONG = 10
# All of a merchant's keys together at one venue: another key does not bring a fresh budget.
MAX_WRONG_PER_VENUE = 30
WRONG_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class MemberCode:
    code: str
    valid_until: datetime


def member_secret(master_key: bytes, user_id: uuid.UUID) -> bytes:
    """The user's HOTP secret (20 bytes, as RFC 4226 recommends for HMAC-SHA1)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=20,
        salt=user_id.bytes,
        info=b"checkin-offers member code v1",
    ).derive(master_key)


def code_at_step(master_key: bytes, user_id: uuid.UUID, step: int) -> str:
    return hotp(member_secret(master_key, user_id), step, digits=DIGITS)


_NOW_STEP = text(
    f"SELECT floor(extract(epoch FROM clock_timestamp()) / {STEP_SECONDS})::bigint AS step"
)
_SHOWN = text(
    """
    WITH old AS (
        DELETE FROM member_codes WHERE user_id = :u AND step < :step - 1
    )
    INSERT INTO member_codes (step, code, user_id) VALUES (:step, :code, :u)
    ON CONFLICT DO NOTHING
    """
)
_OWNERS = text(
    "SELECT DISTINCT user_id FROM member_codes WHERE code = :code AND step BETWEEN :step - 1 AND :step"
)


def current_member_code(uow: UnitOfWork, user_id: uuid.UUID, master_key: bytes) -> MemberCode:
    """The user's code now, recorded so staff can find the user by it."""
    with uow:
        step = int(execute(uow.session, _NOW_STEP).scalar_one())
        code = code_at_step(master_key, user_id, step)
        execute(uow.session, _SHOWN, {"u": user_id, "step": step, "code": code})
        uow.commit()
    valid_until = datetime.fromtimestamp((step + 1) * STEP_SECONDS, UTC)
    return MemberCode(code, valid_until)


def owner_of(session: Session, code: str) -> uuid.UUID | None:
    """The user shown `code` this minute or the previous one, or None (unknown, or shown to
    more than one user)."""
    cleaned = code.replace(" ", "").replace("-", "")
    if len(cleaned) != DIGITS or not cleaned.isdigit() or not cleaned.isascii():
        return None
    step = int(execute(session, _NOW_STEP).scalar_one())
    owners = execute(session, _OWNERS, {"code": cleaned, "step": step}).scalars().all()
    if len(owners) != 1:
        return None
    return uuid.UUID(str(owners[0]))
