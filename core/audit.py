"""The audit trail: every state-changing merchant action, with who did it, when and what changed.

An event is inserted in the action's own transaction, so it commits or rolls back with the change
it describes: there is no change without its event, nor an event without its change. `changes`
maps each changed field to `[old, new]`: `[null, value]` for a created object, `[value, null]`
for a deleted one. Secrets never go in (`record` drops any field named like one, whatever the
caller passes): no key, token, code, password, hash or presence secret.

Actions (`ACTIONS`) are `<object type>.<verb>`; the actor is the API key that acted (its id and
role), an operator at the command line (role `operator`, request id `cli:<user>`), or none for
what a merchant's sign-up creates.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from core.errors import NotFoundError
from core.models import AuditEvent
from core.uow import execute

ACTIONS = (
    "merchant.create",
    "venue.create",
    "venue.update",
    "venue.delete",
    "offer.create",
    "offer.update",
    "offer.activate",
    "offer.pause",
    "offer.end",
    "key.create",
    "key.revoke",
    "key.rotate",
    "redemption.create",
    "staff_user.create",
    "staff_user.delete",
    "nfc_tag.create",
    "nfc_tag.delete",
    "device_pairing.create",
    "device.pair",
    "device.revoke",
    "feedback_reply.create",
    "webhook.create",
    "webhook.delete",
    "webhook_delivery.replay",
)

# Never recorded, whatever a caller passes.
SECRET_FIELDS = frozenset(
    {
        "api_key",
        "code",
        "lookup",
        "password",
        "password_hash",
        "presence_code",
        "presence_secret",
        "qr_payload",
        "secret",
        "secret_hash",
        "sdm_file_read_key",
        "sdm_meta_read_key",
        "token",
    }
)

# Bookkeeping that changes with every write: not a change anyone made.
UNTRACKED_FIELDS = frozenset({"id", "created_at", "updated_at"})


@dataclass(frozen=True)
class Actor:
    """Who acted: an API key (its id and role), an operator at the command line (role
    `operator`), or nobody for what a sign-up creates; and the request it came in."""

    key_id: uuid.UUID | None
    role: str | None
    request_id: str | None = None

    @classmethod
    def operator(cls, who: str) -> Actor:
        """A person running an admin command (`flask ... revoke-key`): `who` names them."""
        return cls(None, "operator", f"cli:{who}")


def jsonable(value: Any) -> Any:
    """A JSON value for what a use case or a schema holds (ids, instants, enums, nested data)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        return [jsonable(v) for v in value]
    raise TypeError(f"cannot record a {type(value).__name__} in the audit trail")


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """`{field: [old, new]}` for every field whose value differs (None stands for absent)."""
    old, new = jsonable(before or {}), jsonable(after or {})
    return {
        field: [old.get(field), new.get(field)]
        for field in sorted(old.keys() | new.keys())
        if field not in UNTRACKED_FIELDS and old.get(field) != new.get(field)
    }


_INSERT = insert(AuditEvent.__table__)  # type: ignore[arg-type]  # the mapped Table


def record(
    session: Session,
    merchant_id: uuid.UUID,
    actor: Actor,
    action: str,
    object_id: uuid.UUID,
    changes: Mapping[str, list[Any]] | None = None,
) -> None:
    """Insert an event in the action's transaction: it commits (or not) with the action. One
    plain INSERT: an ORM object would cost a unit-of-work flush (docs/performance.md). The
    object's type is the action's first part (`offer` of `offer.activate`)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    execute(
        session,
        _INSERT,
        {
            "id": uuid.uuid4(),
            "merchant_id": merchant_id,
            "actor_key_id": actor.key_id,
            "actor_role": actor.role,
            "action": action,
            "object_type": action.partition(".")[0],
            "object_id": object_id,
            "changes": {
                k: jsonable(v) for k, v in (changes or {}).items() if k not in SECRET_FIELDS
            },
            "request_id": actor.request_id,
        },
    )


def list_events(
    session: Session,
    merchant_id: uuid.UUID,
    *,
    limit: int,
    before: uuid.UUID | None = None,
    object_id: uuid.UUID | None = None,
) -> list[AuditEvent]:
    """The merchant's events, newest first; `before` (an event's id) pages back from it."""
    query = select(AuditEvent).where(AuditEvent.merchant_id == merchant_id)
    if before is not None:
        cursor = session.execute(
            select(AuditEvent.created_at, AuditEvent.id).where(
                AuditEvent.id == before, AuditEvent.merchant_id == merchant_id
            )
        ).one_or_none()
        if cursor is None:
            raise NotFoundError("no such audit event (before)")
        query = query.where(
            tuple_(AuditEvent.created_at, AuditEvent.id) < tuple_(cursor.created_at, cursor.id)
        )
    if object_id is not None:
        query = query.where(AuditEvent.object_id == object_id)
    query = query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
    return list(session.scalars(query))
