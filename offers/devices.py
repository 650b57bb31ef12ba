"""Till devices: a phone or tablet at one venue's till, paired by its owner with a one-time code.

A till device holds a staff API key bound to one venue (`api_keys.venue_id`). It may redeem and
check codes at that venue, read that venue's presence code and the till's list of the day there,
and nothing else (`scoped_venue`, enforced by the API for every route, docs/devices.md). It is
revoked like any key, at once: every request looks the key up.

Pairing: an owner asks for a pairing code for a venue (`create_pairing`): 8 random Crockford
symbols (40 bits), valid for `PAIRING_TTL` and once. Only its SHA-256 is stored. The device
exchanges it for its key (`pair_device`) with one conditional UPDATE, so of any number of
devices racing with one code exactly one is paired. The key's secret is answered that once.

Round trips: `create_pairing` locks nothing (venue read, insert, audit); `pair_device` claims the
code (one UPDATE that also checks the venue is live), inserts the key, links it, and audits.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core import accounts, audit
from core.errors import ForbiddenError, NotFoundError, ValidationError
from core.models import ApiKey, DevicePairing, Venue
from core.uow import UnitOfWork, execute
from geo import venues
from offers import codes

PAIRING_TTL = timedelta(minutes=10)
PAIRING_CODE_LENGTH = 8
#: A device's last use is written at most this often (one UPDATE per device per minute).
LAST_USE_RESOLUTION = timedelta(minutes=1)
DEVICE_ROLE = "staff"


class PairingCodeInvalidError(ValidationError):
    """Wrong, used or expired: one answer for all three, so a guess learns nothing."""

    code = "pairing_code_invalid"
    title = "Pairing code invalid"


class VenueNotPairedError(ForbiddenError):
    code = "venue_not_paired"
    title = "Another venue"


class DeviceNotAllowedError(ForbiddenError):
    code = "device_not_allowed"
    title = "Not for a till device"


@dataclass(frozen=True)
class Pairing:
    id: uuid.UUID
    venue_id: uuid.UUID
    venue_name: str
    label: str | None
    code: str  # display form, e.g. 7K3Q-XM9T; shown to the owner this once
    expires_at: datetime


@dataclass(frozen=True)
class Device:
    id: uuid.UUID  # the device's API key
    label: str | None
    venue_id: uuid.UUID
    venue_name: str
    venue_timezone: str
    paired_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def _display(code: str) -> str:
    half = PAIRING_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def normalize_pairing_code(raw: str) -> str | None:
    """The canonical form of a typed pairing code (case, spaces, dashes and Crockford's
    confusables forgiven, as for unlock codes), or None."""
    code = codes.clean(raw)
    if code is None or len(code) != PAIRING_CODE_LENGTH:
        return None
    if any(symbol not in codes.SYMBOLS for symbol in code):
        return None
    return code


def create_pairing(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    venue_id: uuid.UUID,
    label: str | None,
) -> Pairing:
    """A one-time code that pairs one till device with this venue, valid for `PAIRING_TTL`.
    The code is answered this once; only its hash is kept."""
    with uow:
        venue = venues.get_venue(uow.session, merchant_id, venue_id)
        code = codes.random_symbols(PAIRING_CODE_LENGTH)
        pairing = DevicePairing(
            merchant_id=merchant_id,
            venue_id=venue_id,
            label=label,
            code_hash=_hash(code),
            expires_at=datetime.now(UTC) + PAIRING_TTL,
        )
        uow.session.add(pairing)
        uow.session.flush()
        audit.record(
            uow.session,
            merchant_id,
            actor,
            "device_pairing.create",
            pairing.id,
            audit.diff(
                None, {"venue_id": venue_id, "label": label, "expires_at": pairing.expires_at}
            ),
        )
        uow.commit()
        return Pairing(pairing.id, venue_id, venue.name, label, _display(code), pairing.expires_at)


# Claims the code: unused, unexpired, and its venue still live. Exactly one caller wins.
_CLAIM = text(
    """
    UPDATE device_pairings p SET used_at = now()
    FROM venues v
    WHERE p.code_hash = :code_hash AND p.used_at IS NULL AND p.expires_at > now()
      AND v.id = p.venue_id AND v.deleted_at IS NULL
    RETURNING p.id, p.merchant_id, p.venue_id, p.label, v.name AS venue_name,
              v.timezone AS venue_timezone
    """
)


_LINK = text("UPDATE device_pairings SET api_key_id = :api_key_id WHERE id = :id")


def pair_device(uow: UnitOfWork, actor: audit.Actor, raw_code: str) -> tuple[Device, str]:
    """Exchange a pairing code for the device's own key (staff, bound to the code's venue),
    answered this once. A wrong, used or expired code, or one whose venue was deleted since:
    422 `pairing_code_invalid`. `actor` is nobody yet (its request id is kept): the event's
    actor is the new device itself, and it names the pairing, whose creation is on record with
    the owner's key."""
    code = normalize_pairing_code(raw_code)
    if code is None:
        raise PairingCodeInvalidError("not a pairing code: it has 8 letters and digits")
    with uow:
        claimed = execute(uow.session, _CLAIM, {"code_hash": _hash(code)}).one_or_none()
        if claimed is None:
            raise PairingCodeInvalidError(
                "this pairing code is wrong, used or expired: ask for a new one"
            )
        merchant_id = uuid.UUID(str(claimed.merchant_id))
        venue_id = uuid.UUID(str(claimed.venue_id))
        key, token = accounts.new_key(
            uow.session, merchant_id, DEVICE_ROLE, claimed.label, venue_id=venue_id
        )
        execute(uow.session, _LINK, {"id": claimed.id, "api_key_id": key.id})
        audit.record(
            uow.session,
            merchant_id,
            audit.Actor(key.id, DEVICE_ROLE, actor.request_id),
            "device.pair",
            key.id,
            audit.diff(
                None,
                {**accounts.key_view(key), "pairing_id": claimed.id},
            ),
        )
        uow.commit()
        device = Device(
            key.id,
            key.label,
            venue_id,
            claimed.venue_name,
            claimed.venue_timezone,
            key.created_at,
            None,
            None,
        )
        return device, token


_DEVICES = (
    select(ApiKey, Venue.id, Venue.name, Venue.timezone)
    .join(Venue, Venue.id == ApiKey.venue_id)
    .order_by(ApiKey.revoked_at.is_not(None), Venue.name, ApiKey.created_at, ApiKey.id)
)


def _device(key: ApiKey, venue_id: uuid.UUID, venue_name: str, venue_timezone: str) -> Device:
    return Device(
        key.id,
        key.label,
        venue_id,
        venue_name,
        venue_timezone,
        key.created_at,
        key.last_used_at,
        key.revoked_at,
    )


def list_devices(
    session: Session, merchant_id: uuid.UUID, *, include_revoked: bool = False
) -> list[Device]:
    """The merchant's till devices: working ones first, by venue, then (if asked) revoked."""
    query = _DEVICES.where(ApiKey.merchant_id == merchant_id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return [_device(*row) for row in session.execute(query)]


def get_device(session: Session, merchant_id: uuid.UUID, device_id: uuid.UUID) -> Device:
    row = session.execute(
        _DEVICES.where(ApiKey.merchant_id == merchant_id, ApiKey.id == device_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError("no such device")
    return _device(*row)


def revoke_device(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, device_id: uuid.UUID
) -> Device:
    """Revoke a till device: its next request fails (every request looks its key up). Again:
    nothing changes. A device may revoke itself (unpairing)."""
    with uow:
        key = uow.session.scalar(
            select(ApiKey)
            .where(
                ApiKey.id == device_id,
                ApiKey.merchant_id == merchant_id,
                ApiKey.venue_id.is_not(None),
            )
            .with_for_update()
        )
        if key is None:
            raise NotFoundError("no such device")
        if key.revoked_at is None:
            before = accounts.key_view(key)
            key.revoked_at = datetime.now(UTC)
            uow.session.flush()
            audit.record(
                uow.session,
                merchant_id,
                actor,
                "device.revoke",
                key.id,
                audit.diff(before, accounts.key_view(key)),
            )
        uow.commit()
        return get_device(uow.session, merchant_id, device_id)


# ---- the venue scope, for every request a key makes ----------------------------------------


def scoped_venue(
    device_venue_id: uuid.UUID | None, requested: uuid.UUID | None
) -> uuid.UUID | None:
    """The venue a request acts at. A key with no venue acts where it asks; a till device acts
    at its own venue (when it names none, that one) and is refused anywhere else (403
    `venue_not_paired`)."""
    if device_venue_id is None:
        return requested
    if requested is not None and requested != device_venue_id:
        raise VenueNotPairedError("this till device is paired to another venue")
    return device_venue_id


_TOUCH = text(
    "UPDATE api_keys SET last_used_at = now() WHERE id = :id"
    " AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => :every))"
)


def note_use(
    session: Session, key_id: uuid.UUID, last_used_at: datetime | None, now: datetime
) -> None:
    """Write a device's last use, at most once per `LAST_USE_RESOLUTION` (the statement checks
    again, so concurrent requests write it once). Called right after the key was looked up,
    before the request's own work: it commits at once, so the use is kept whatever the request
    does next (a refused request was a use too)."""
    if last_used_at is not None and now - last_used_at < LAST_USE_RESOLUTION:
        return
    execute(session, _TOUCH, {"id": key_id, "every": LAST_USE_RESOLUTION.total_seconds()})
    session.commit()
