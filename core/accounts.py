"""Accounts: merchants with role-carrying API keys, mobile users with passwords and tokens.

The use cases (`create_merchant`, `create_api_key`, `revoke_api_key`, `rotate_api_key`,
`create_user`, `login`) take a unit of work, change, record merchant-side changes in the audit
trail and commit. Secrets are answered once and never recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit, throttle
from core.errors import ConflictError, HandleTakenError, NotFoundError, UnauthorizedError
from core.models import ApiKey, Merchant, User, UserToken
from core.secrets import (
    hash_password,
    new_secret,
    password_matches,
    secret_matches,
    split_token,
)
from core.uow import UnitOfWork, execute

ROLES = ("owner", "staff", "analyst")
KEY_PREFIX = "cok"
TOKEN_PREFIX = "cou"
TOKEN_TTL = timedelta(days=30)


@dataclass(frozen=True)
class MerchantPrincipal:
    merchant_id: uuid.UUID
    key_id: uuid.UUID
    role: str
    # A till device's key is bound to one venue (offers/devices.py); other keys have none.
    venue_id: uuid.UUID | None = None
    last_used_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class UserPrincipal:
    user_id: uuid.UUID
    token_id: uuid.UUID


def key_view(key: ApiKey) -> dict[str, Any]:
    """What the audit trail shows of a key (never its secret)."""
    view: dict[str, Any] = {"role": key.role, "label": key.label, "revoked_at": key.revoked_at}
    if key.venue_id is not None:
        view["venue_id"] = key.venue_id
    return view


def create_merchant(
    uow: UnitOfWork, actor: audit.Actor, name: str, email: str
) -> tuple[Merchant, ApiKey, str]:
    """A merchant and its first owner key (the only time the key's secret is shown). `actor`
    is nobody for a sign-up over HTTP, the operator at the command line."""
    with uow:
        merchant = Merchant(name=name, email=email)
        uow.session.add(merchant)
        uow.session.flush()
        audit.record(
            uow.session,
            merchant.id,
            actor,
            "merchant.create",
            merchant.id,
            audit.diff(None, {"name": name, "email": email}),
        )
        key, token = _new_key(uow, actor, merchant.id, "owner", "owner key created at sign-up")
        uow.commit()
        return merchant, key, token


def create_api_key(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, role: str, label: str | None
) -> tuple[ApiKey, str]:
    """Another key for a merchant, with a role; its secret is answered this once."""
    with uow:
        if uow.session.get(Merchant, merchant_id) is None:
            raise NotFoundError("no such merchant")
        key, token = _new_key(uow, actor, merchant_id, role, label)
        uow.commit()
        return key, token


def _new_key(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, role: str, label: str | None
) -> tuple[ApiKey, str]:
    key, token = new_key(uow.session, merchant_id, role, label)
    audit.record(
        uow.session, merchant_id, actor, "key.create", key.id, audit.diff(None, key_view(key))
    )
    return key, token


def new_key(
    session: Session,
    merchant_id: uuid.UUID,
    role: str,
    label: str | None,
    venue_id: uuid.UUID | None = None,
) -> tuple[ApiKey, str]:
    """A key row and its secret, inside the caller's use case (which records the audit event:
    `key.create`, or `device.pair` for a till device's key bound to `venue_id`)."""
    secret = new_secret(KEY_PREFIX)
    key = ApiKey(
        merchant_id=merchant_id,
        role=role,
        label=label,
        lookup=secret.lookup,
        secret_hash=secret.secret_hash,
        venue_id=venue_id,
    )
    session.add(key)
    session.flush()
    return key, secret.token


class KeyRevokedError(ConflictError):
    code = "key_revoked"
    title = "Key revoked"


class LastOwnerKeyError(ConflictError):
    code = "last_owner_key"
    title = "Last owner key"


def _lock_key(session: Session, merchant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    key = session.scalar(
        select(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.merchant_id == merchant_id)
        .with_for_update()
        .execution_options(populate_existing=True)  # as committed by the lock's last holder
    )
    if key is None:
        raise NotFoundError("no such key")
    return key


def _lock_merchant_keys(session: Session, merchant_id: uuid.UUID) -> None:
    """One revocation of a merchant's keys at a time: the merchant's row is locked until the
    commit, so the owner keys counted next are the ones that will remain. `FOR NO KEY UPDATE`
    leaves the row free for the foreign-key checks of every other insert (check-ins, unlocks)."""
    session.execute(
        select(Merchant.id).where(Merchant.id == merchant_id).with_for_update(key_share=True)
    )


def revoke_api_key(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, key_id: uuid.UUID
) -> tuple[ApiKey, bool]:
    """Revoke a key: it fails from the commit on (every request looks the key up; nothing caches
    it). Revoking it again changes nothing; the flag says whether this call revoked it.

    The merchant's last live owner key cannot be revoked (409 `last_owner_key`): nothing could
    create an owner key again, and the merchant would be locked out for good. Revocations of one
    merchant's keys take turns (`_lock_merchant_keys`), so two owners revoking each other's keys
    at once leave one of them."""
    with uow:
        _lock_merchant_keys(uow.session, merchant_id)
        key = _lock_key(uow.session, merchant_id, key_id)
        if key.revoked_at is not None:
            return key, False
        if key.role == "owner" and not _other_owner_keys(uow.session, merchant_id, key.id):
            raise LastOwnerKeyError(
                "this is the merchant's last owner key: revoking it would lock the merchant "
                "out for good. Create another owner key first (rotate this one if its secret "
                "leaked)"
            )
        before = key_view(key)
        key.revoked_at = datetime.now(UTC)
        uow.session.flush()
        audit.record(
            uow.session, merchant_id, actor, "key.revoke", key.id, audit.diff(before, key_view(key))
        )
        uow.commit()
        return key, True


def _other_owner_keys(session: Session, merchant_id: uuid.UUID, key_id: uuid.UUID) -> int:
    count: int | None = session.scalar(
        select(func.count())
        .select_from(ApiKey)
        .where(
            ApiKey.merchant_id == merchant_id,
            ApiKey.role == "owner",
            ApiKey.revoked_at.is_(None),
            ApiKey.id != key_id,
        )
    )
    return count or 0


def rotate_api_key(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, key_id: uuid.UUID
) -> tuple[ApiKey, str]:
    """A new secret for the same key (id, role, label); the old secret fails from the commit on.
    A revoked key stays revoked: 409 `key_revoked`. Rotation cannot lock a merchant out: the
    key stays live and its new secret is in the answer."""
    with uow:
        key = _lock_key(uow.session, merchant_id, key_id)
        if key.revoked_at is not None:
            raise KeyRevokedError("this key is revoked; create a new one instead")
        secret = new_secret(KEY_PREFIX)
        key.lookup = secret.lookup
        key.secret_hash = secret.secret_hash
        uow.session.flush()
        # The secrets, old and new, are never recorded: the event says only that it happened.
        audit.record(uow.session, merchant_id, actor, "key.rotate", key.id)
        uow.commit()
        return key, secret.token


# Every authenticated request runs one of these: plain SQL for the columns needed (an ORM
# entity load cost a fifth of a check-in's Python time).
# A till device's key fails once its venue is deleted.
_API_KEY = text(
    "SELECT k.id, k.merchant_id, k.role, k.secret_hash, k.revoked_at, k.venue_id,"
    " k.last_used_at, v.deleted_at AS venue_deleted_at"
    " FROM api_keys k LEFT JOIN venues v ON v.id = k.venue_id WHERE k.lookup = :lookup"
)
_USER_TOKEN = text(
    "SELECT id, user_id, secret_hash, revoked_at, expires_at FROM user_tokens"
    " WHERE lookup = :lookup"
)


def authenticate_key(session: Session, token: str) -> MerchantPrincipal | None:
    parts = split_token(token, KEY_PREFIX)
    if parts is None:
        return None
    lookup, secret = parts
    key = execute(session, _API_KEY, {"lookup": lookup}).first()
    ok = secret_matches(secret, key.secret_hash if key else None)
    if not ok or key is None or key.revoked_at is not None or key.venue_deleted_at is not None:
        return None
    return MerchantPrincipal(key.merchant_id, key.id, key.role, key.venue_id, key.last_used_at)


_HANDLE_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('handle:' || lower(:h), 0))")

# A merchant may have registered the handle as its staff before the account existed
# (offers/abuse.py): the new account takes those registrations up.
_CLAIM_STAFF_REGISTRATIONS = text(
    "UPDATE merchant_staff_users SET user_id = :user_id"
    " WHERE user_id IS NULL AND lower(handle) = lower(:handle)"
)


def lock_handle(session: Session, handle: str) -> None:
    """Until the commit, one transaction at a time works on this handle (in any case): a
    sign-up, or a merchant registering it as staff, so neither misses the other."""
    execute(session, _HANDLE_LOCK, {"h": handle})


def create_user(
    uow: UnitOfWork,
    handle: str,
    password: str,
    ttl: timedelta = TOKEN_TTL,
    source: str = "unknown",
) -> tuple[User, str]:
    """A mobile user and a first token. A taken handle (case-insensitively) is 409, and counts
    as a failed sign-in of that handle from `source` (the client's address); a handle under
    the sign-in throttle (`core/throttle.py`) is 429 before the password is hashed. Merchants'
    staff registrations of the handle, made before the account existed, now apply to it."""
    with uow:
        refusal = throttle.check_sign_up(uow.session, handle, source)
        uow.commit()
    if refusal is not None:
        raise refusal
    password_hash = hash_password(password)  # slow on purpose: before the transaction starts
    with uow:
        lock_handle(uow.session, handle)
        taken = uow.session.scalar(select(User.id).where(func.lower(User.handle) == handle.lower()))
        if taken is not None:
            throttle.handle_taken(uow.session, handle, source)
            uow.commit()
            raise HandleTakenError(f"the handle {handle!r} is taken")
        user = User(handle=handle, password_hash=password_hash)
        uow.session.add(user)
        try:
            uow.session.flush()
        except IntegrityError as exc:  # a concurrent sign-up took it between check and insert
            raise HandleTakenError(f"the handle {handle!r} is taken") from exc
        execute(
            uow.session, _CLAIM_STAFF_REGISTRATIONS, {"user_id": str(user.id), "handle": handle}
        )
        throttle.signed_up(uow.session, handle, source)
        token = _issue_token(uow.session, user.id, ttl)
        uow.commit()
        return user, token


def login(
    uow: UnitOfWork,
    handle: str,
    password: str,
    ttl: timedelta = TOKEN_TTL,
    source: str = "unknown",
) -> str:
    """A new token for a handle and its password; anything wrong is the same 401.

    Throttled per handle (`core/throttle.py`, `source` is the client's address): the attempt is
    recorded as a failure before the password is checked (429 `too_many_attempts` when the
    handle is over its limit for this address), and the Argon2 check runs outside any
    transaction, between the two units."""
    with uow:
        attempt = throttle.begin_sign_in(uow.session, handle, source)
        row = uow.session.execute(
            select(User.id, User.password_hash).where(func.lower(User.handle) == handle.lower())
        ).first()
        uow.commit()
    if isinstance(attempt, throttle.SignInThrottledError):
        raise attempt
    if not password_matches(password, row.password_hash if row else None) or row is None:
        raise UnauthorizedError("wrong handle or password")
    with uow:
        throttle.succeeded(uow.session, handle, attempt)
        token = _issue_token(uow.session, row.id, ttl)
        uow.commit()
        return token


def _issue_token(session: Session, user_id: uuid.UUID, ttl: timedelta) -> str:
    secret = new_secret(TOKEN_PREFIX)
    session.add(
        UserToken(
            user_id=user_id,
            lookup=secret.lookup,
            secret_hash=secret.secret_hash,
            expires_at=datetime.now(UTC) + ttl,
        )
    )
    session.flush()
    return secret.token


def authenticate_user(session: Session | Connection, token: str) -> UserPrincipal | None:
    parts = split_token(token, TOKEN_PREFIX)
    if parts is None:
        return None
    lookup, secret = parts
    row = execute(session, _USER_TOKEN, {"lookup": lookup}).first()
    ok = secret_matches(secret, row.secret_hash if row else None)
    if not ok or row is None or row.revoked_at is not None:
        return None
    if row.expires_at <= datetime.now(UTC):
        return None
    return UserPrincipal(row.user_id, row.id)
