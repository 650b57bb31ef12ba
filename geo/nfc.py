"""NTAG 424 DNA tags at venues and cards of users, and the taps that prove presence.

The use cases:

- `register_tag`, `delete_tag` (owner): a tag's keys are derived from the master key and the new
  row's id (geo/sun.py), answered once, never stored; `list_tags` shows the venue's live tags.
- `register_card`, `remove_card` (the user): the same for a user's card or wristband.
- `accept_tap` (`POST /v1/taps`): verify one SUN message of a venue's tag, accept its read
  counter only if it is above every accepted one of that tag (one conditional UPDATE: of two
  requests with the same counter exactly one wins), and answer a single-use token bound to the
  user and the venue that a check-in spends (offers/checkins.py) within `TAP_TOKEN_TTL`.
- `read_card` (inside a staff check-in's transaction): the same checks for a user's card,
  answering whose card it is.

Every SUN message received is recorded in `nfc_taps` with its outcome, refused ones included (a
refusal commits its record, then raises), so the leak report can count forged, replayed and
skipped reads. A refusal says only `tap_invalid` or `tap_replayed`: which check failed is kept for
the merchant's report, not told to the caller.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import audit
from core.errors import ConflictError, NotFoundError, ValidationError
from core.uow import UnitOfWork, execute
from geo import sun

# A tap token lives at most this long: long enough to take a fix and send the check-in, too short
# to carry it far.
TAP_TOKEN_TTL = timedelta(minutes=2)
# Placeholders of the mirrored values in a tag's URL, as NXP's tools expect them.
PICC_PLACEHOLDER = "0" * sun.PICC_DATA_HEX
CMAC_PLACEHOLDER = "0" * sun.CMAC_HEX


class TapInvalidError(ValidationError):
    code = "tap_invalid"
    title = "Invalid tap"


class TapReplayedError(ConflictError):
    code = "tap_replayed"
    title = "Tap already used"


class TagRegisteredError(ConflictError):
    code = "already_registered"
    title = "Already registered"


@dataclass(frozen=True)
class TapToken:
    tap_token: str
    venue_id: uuid.UUID
    expires_at: datetime


def url_template(base_url: str) -> dict[str, Any]:
    """The URL to program into a tag or card, with the mirrors' placeholders and their offsets
    (characters from the URL's start: add the NDEF record's header length for the file offset).
    It names no tag: the UID inside `picc_data` says which one it is."""
    url = f"{base_url}?picc_data={PICC_PLACEHOLDER}&cmac={CMAC_PLACEHOLDER}"
    return {
        "url_template": url,
        "picc_data_offset": url.index("picc_data=") + len("picc_data="),
        "cmac_offset": url.index("cmac=") + len("cmac="),
    }


def _keys_view(keys: sun.TagKeys) -> dict[str, str]:
    return {
        "sdm_meta_read_key": keys.sdm_meta_read_key.hex().upper(),
        "sdm_file_read_key": keys.sdm_file_read_key.hex().upper(),
    }


def _parse_uid(uid: str) -> bytes:
    try:
        return sun.parse_uid(uid)
    except ValueError as exc:
        raise ValidationError(str(exc), errors={"uid": [str(exc)]}) from None


# ---- venue tags ----------------------------------------------------------------------------

_TAG_COLUMNS = "t.id, t.venue_id, t.uid, t.label, t.last_counter, t.last_tap_at, t.created_at"


def tag_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "venue_id": row.venue_id,
        "uid": bytes(row.uid).hex().upper(),
        "label": row.label,
        "last_counter": row.last_counter if row.last_counter >= 0 else None,
        "last_tap_at": row.last_tap_at,
        "created_at": row.created_at,
    }


def register_tag(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    venue_id: uuid.UUID,
    uid: str,
    label: str | None,
    master_key: bytes,
    base_url: str,
) -> dict[str, Any]:
    """Register a tag at the merchant's venue; answer it with its keys and URL (shown once)."""
    raw_uid = _parse_uid(uid)
    with uow:
        session = uow.session
        venue = execute(
            session,
            text(
                "SELECT id FROM venues WHERE id = :v AND merchant_id = :m AND deleted_at IS NULL"
                " FOR UPDATE"
            ),
            {"v": venue_id, "m": merchant_id},
        ).first()
        if venue is None:
            raise NotFoundError("no such venue")
        tag_id = uuid.uuid4()
        row = execute(
            session,
            text(
                "INSERT INTO nfc_tags (id, merchant_id, venue_id, uid, label, last_counter,"
                " created_at) VALUES (:id, :m, :v, :uid, :label, -1, now())"
                " ON CONFLICT (uid) WHERE deleted_at IS NULL DO NOTHING"
                f" RETURNING {_TAG_COLUMNS.replace('t.', '')}"
            ),
            {"id": tag_id, "m": merchant_id, "v": venue_id, "uid": raw_uid, "label": label},
        ).first()
        if row is None:
            raise TagRegisteredError(
                "this tag is already registered (at one of your venues or another merchant's);"
                " remove it there first: a tag moved to another venue gets new keys"
            )
        view = tag_view(row)
        audit.record(session, merchant_id, actor, "nfc_tag.create", tag_id, audit.diff(None, view))
        uow.commit()
    keys = sun.derive_keys(master_key, sun.TAG, tag_id)
    return {**view, **_keys_view(keys), **url_template(base_url)}


def list_tags(
    session: Session, merchant_id: uuid.UUID, venue_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The venue's live tags (never their keys), oldest first."""
    found = execute(
        session,
        text("SELECT 1 FROM venues WHERE id = :v AND merchant_id = :m AND deleted_at IS NULL"),
        {"v": venue_id, "m": merchant_id},
    ).first()
    if found is None:
        raise NotFoundError("no such venue")
    rows = execute(
        session,
        text(
            f"SELECT {_TAG_COLUMNS} FROM nfc_tags t WHERE t.venue_id = :v"
            " AND t.deleted_at IS NULL ORDER BY t.created_at, t.id"
        ),
        {"v": venue_id},
    ).all()
    return [tag_view(r) for r in rows]


def delete_tag(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, tag_id: uuid.UUID
) -> None:
    """Retire a tag: its taps are `tap_invalid` from now on, and tokens not yet spent die."""
    with uow:
        session = uow.session
        row = execute(
            session,
            text(
                "UPDATE nfc_tags t SET deleted_at = now() WHERE t.id = :id"
                " AND t.merchant_id = :m AND t.deleted_at IS NULL"
                f" RETURNING {_TAG_COLUMNS}"
            ),
            {"id": tag_id, "m": merchant_id},
        ).first()
        if row is None:
            raise NotFoundError("no such tag")
        execute(
            session,
            text(
                "UPDATE nfc_taps SET expires_at = now() WHERE tag_id = :id AND used_at IS NULL"
                " AND expires_at > now()"
            ),
            {"id": tag_id},
        )
        audit.record(
            session, merchant_id, actor, "nfc_tag.delete", tag_id, audit.diff(tag_view(row), None)
        )
        uow.commit()


# ---- taps ----------------------------------------------------------------------------------

# The tag a UID belongs to: its live registration, else its latest removed one (for the record).
_TAG_FOR_TAP = text(
    """
    SELECT t.id, t.venue_id, t.uid, t.last_counter,
           (t.deleted_at IS NULL AND v.deleted_at IS NULL) AS live
    FROM nfc_tags t JOIN venues v ON v.id = t.venue_id
    WHERE t.uid = :uid
    ORDER BY t.deleted_at IS NULL DESC, t.created_at DESC
    LIMIT 1
    """
)
# The counter is accepted only above every accepted one: under READ COMMITTED a concurrent UPDATE
# of the same tag waits for the row lock and re-checks the condition, so of two taps with the
# same counter exactly one gets its row back.
_ACCEPT_COUNTER = text(
    """
    UPDATE nfc_tags SET last_counter = :c, last_tap_at = now()
    WHERE id = :tag AND last_counter < :c AND deleted_at IS NULL
    RETURNING id
    """
)
_RECORD_TAP = text(
    """
    INSERT INTO nfc_taps (id, tag_id, card_id, venue_id, user_id, outcome, reason, counter,
                          counter_gap, token_hash, expires_at, created_at)
    VALUES (:id, :tag_id, :card_id, :venue_id, :user_id, :outcome, :reason, :counter,
            :gap, :token_hash, now() + make_interval(secs => :ttl), now())
    RETURNING expires_at
    """
)


def _record(session: Session, **values: Any) -> Any:
    params = {
        "id": uuid.uuid4(),
        "tag_id": None,
        "card_id": None,
        "venue_id": None,
        "user_id": None,
        "reason": None,
        "counter": None,
        "gap": None,
        "token_hash": None,
        "ttl": 0,
        **values,
    }
    return execute(session, _RECORD_TAP, params).one()


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _claimed_uid(master_key: bytes, picc_data: str) -> bytes | None:
    """The UID a message claims to come from, or None when it is not a message at all."""
    try:
        return sun.read_picc_data(sun.meta_read_key(master_key), picc_data).uid
    except sun.SunError:
        return None


def accept_tap(
    uow: UnitOfWork,
    user_id: uuid.UUID,
    picc_data: str,
    cmac: str,
    master_key: bytes,
    ttl: timedelta = TAP_TOKEN_TTL,
) -> TapToken:
    """Verify a tap on a venue's tag and answer a single-use token for a check-in there."""
    with uow:
        session = uow.session
        uid = _claimed_uid(master_key, picc_data)
        tag = execute(session, _TAG_FOR_TAP, {"uid": uid}).first() if uid else None
        if tag is None or not tag.live:
            _refuse(
                uow,
                TapInvalidError,
                "not a tap of a registered tag (or the tag was removed)",
                tag_id=tag.id if tag else None,
                venue_id=tag.venue_id if tag else None,
                user_id=user_id,
                reason="unknown_tag" if tag is None else "deleted_tag",
            )
        keys = sun.derive_keys(master_key, sun.TAG, tag.id)
        try:
            message = sun.verify(keys, bytes(tag.uid), picc_data, cmac)
        except sun.SunError as exc:
            _refuse(
                uow,
                TapInvalidError,
                "this tap's message does not verify",
                tag_id=tag.id,
                venue_id=tag.venue_id,
                user_id=user_id,
                reason=exc.reason,
            )
        won = execute(session, _ACCEPT_COUNTER, {"tag": tag.id, "c": message.counter}).first()
        if won is None:
            _refuse(
                uow,
                TapReplayedError,
                "this tap was already used: tap the tag again",
                tag_id=tag.id,
                venue_id=tag.venue_id,
                user_id=user_id,
                reason="counter_not_above",
                counter=message.counter,
            )
        token = secrets.token_urlsafe(32)
        recorded = _record(
            session,
            tag_id=tag.id,
            venue_id=tag.venue_id,
            user_id=user_id,
            outcome="accepted",
            counter=message.counter,
            # Reads nobody submitted since the last accepted one (exact unless two taps of one
            # tag race, when it may count one read too many or too few).
            gap=max(0, message.counter - max(int(tag.last_counter), -1) - 1)
            if tag.last_counter >= 0
            else 0,
            token_hash=token_hash(token),
            ttl=ttl.total_seconds(),
        )
        uow.commit()
        return TapToken(token, tag.venue_id, recorded.expires_at)


def _refuse(uow: UnitOfWork, error: type[Exception], detail: str, **values: Any) -> NoReturn:
    """Record a refused message, commit the record, and raise `error`."""
    outcome = "tap_replayed" if error is TapReplayedError else "tap_invalid"
    _record(uow.session, outcome=outcome, **values)
    uow.commit()
    raise error(detail)


# ---- user cards ----------------------------------------------------------------------------

_CARD_COLUMNS = "id, uid, label, last_read_at, created_at"


def card_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "uid": bytes(row.uid).hex().upper(),
        "label": row.label,
        "last_read_at": row.last_read_at,
        "created_at": row.created_at,
    }


def register_card(
    uow: UnitOfWork,
    user_id: uuid.UUID,
    uid: str,
    label: str | None,
    master_key: bytes,
    base_url: str,
) -> dict[str, Any]:
    """Register the user's card or wristband; answer it with its keys and URL (shown once)."""
    raw_uid = _parse_uid(uid)
    with uow:
        card_id = uuid.uuid4()
        row = execute(
            uow.session,
            text(
                "INSERT INTO user_cards (id, user_id, uid, label, last_counter, created_at)"
                " VALUES (:id, :u, :uid, :label, -1, now())"
                " ON CONFLICT (uid) WHERE deleted_at IS NULL DO NOTHING"
                f" RETURNING {_CARD_COLUMNS}"
            ),
            {"id": card_id, "u": user_id, "uid": raw_uid, "label": label},
        ).first()
        if row is None:
            raise TagRegisteredError("this card is already registered; remove it there first")
        view = card_view(row)
        uow.commit()
    keys = sun.derive_keys(master_key, sun.CARD, card_id)
    return {**view, **_keys_view(keys), **url_template(base_url)}


def list_cards(session: Session, user_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = execute(
        session,
        text(
            f"SELECT {_CARD_COLUMNS} FROM user_cards WHERE user_id = :u AND deleted_at IS NULL"
            " ORDER BY created_at, id"
        ),
        {"u": user_id},
    ).all()
    return [card_view(r) for r in rows]


def remove_card(uow: UnitOfWork, user_id: uuid.UUID, card_id: uuid.UUID) -> None:
    """The card stops working at once; its row stays, dated, as the record of the change."""
    with uow:
        row = execute(
            uow.session,
            text(
                "UPDATE user_cards SET deleted_at = now() WHERE id = :id AND user_id = :u"
                " AND deleted_at IS NULL RETURNING id"
            ),
            {"id": card_id, "u": user_id},
        ).first()
        if row is None:
            raise NotFoundError("no such card")
        uow.commit()


_CARD_FOR_READ = text(
    "SELECT id, user_id, uid, last_counter, deleted_at IS NULL AS live FROM user_cards"
    " WHERE uid = :uid ORDER BY deleted_at IS NULL DESC, created_at DESC LIMIT 1"
)
_ACCEPT_CARD_COUNTER = text(
    """
    UPDATE user_cards SET last_counter = :c, last_read_at = now()
    WHERE id = :card AND last_counter < :c AND deleted_at IS NULL
    RETURNING id
    """
)


@dataclass(frozen=True)
class CardRead:
    """The outcome of reading a card: whose it is, or the error to raise once recorded."""

    user_id: uuid.UUID | None
    error: DomainErrorType | None = None
    detail: str = ""


DomainErrorType = type[TapInvalidError] | type[TapReplayedError]


def read_card(
    session: Session,
    picc_data: str,
    cmac: str,
    venue_id: uuid.UUID,
    master_key: bytes,
) -> CardRead:
    """Verify a card's SUN message and accept its counter, inside the caller's transaction.

    Records the read in `nfc_taps` either way and answers the refusal instead of raising it, so
    the caller can commit the record before it raises (a refusal must leave its trace)."""
    uid = _claimed_uid(master_key, picc_data)
    card = execute(session, _CARD_FOR_READ, {"uid": uid}).first() if uid else None
    if card is None or not card.live:
        _record(
            session,
            card_id=card.id if card else None,
            venue_id=venue_id,
            outcome="tap_invalid",
            reason="unknown_card" if card is None else "removed_card",
        )
        return CardRead(None, TapInvalidError, "not a registered card (or it was removed)")
    keys = sun.derive_keys(master_key, sun.CARD, card.id)
    try:
        message = sun.verify(keys, bytes(card.uid), picc_data, cmac)
    except sun.SunError as exc:
        _record(
            session, card_id=card.id, venue_id=venue_id, outcome="tap_invalid", reason=exc.reason
        )
        return CardRead(None, TapInvalidError, "this card's message does not verify")
    won = execute(session, _ACCEPT_CARD_COUNTER, {"card": card.id, "c": message.counter}).first()
    if won is None:
        _record(
            session,
            card_id=card.id,
            venue_id=venue_id,
            outcome="tap_replayed",
            reason="counter_not_above",
            counter=message.counter,
        )
        return CardRead(None, TapReplayedError, "this card read was already used: read it again")
    _record(
        session,
        card_id=card.id,
        venue_id=venue_id,
        user_id=card.user_id,
        outcome="accepted",
        counter=message.counter,
        gap=max(0, message.counter - int(card.last_counter) - 1) if card.last_counter >= 0 else 0,
    )
    return CardRead(card.user_id)
