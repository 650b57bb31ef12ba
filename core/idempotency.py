"""Idempotent use cases: a retry with the same key and request replays the first answer.

The first request with a key inserts a row (caller, key, hash of the request) in the same
transaction as its work, and stores its answer there before committing. A retry's INSERT
conflicts on the primary key: it waits for the first transaction to finish, then replays the
stored answer. So parallel retries change nothing and all get the first answer (same ids, same
status). The same key with a different request is 422 `idempotency_key_reused`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from core.errors import ValidationError
from core.uow import UnitOfWork, execute

MAX_KEY_LENGTH = 255


class IdempotencyKeyReusedError(ValidationError):
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


@dataclass(frozen=True)
class Answer:
    """What a use case answered: a status and a JSON body (text), replayed or not."""

    status: int
    body: str
    replayed: bool = False


_CLAIM = text(
    """
    INSERT INTO idempotency_records (principal, key, request_hash, created_at)
    VALUES (:principal, :key, :hash, now())
    ON CONFLICT (principal, key) DO NOTHING
    RETURNING key
    """
)
_LOOKUP = text(
    "SELECT request_hash, status_code, response_body FROM idempotency_records"
    " WHERE principal = :principal AND key = :key"
)
_STORE = text(
    "UPDATE idempotency_records SET status_code = :status, response_body = CAST(:body AS jsonb)"
    " WHERE principal = :principal AND key = :key"
)


def run_once(
    uow: UnitOfWork,
    principal: str,
    key: str | None,
    request_hash: bytes,
    work: Callable[[], Answer],
) -> Answer:
    """Run `work` (a use case and the rendering of its answer) once per `(principal, key)`.

    The claim, the use case's changes and the stored answer commit together: the use case's
    own `commit()` is held until the answer is stored. Without a key, `work` simply runs.
    An exception from `work` rolls everything back, the claim included, so a retry runs again.
    """
    if key is None:
        return work()
    params = {"principal": principal, "key": key}
    with uow:
        if execute(uow.session, _CLAIM, {**params, "hash": request_hash}).first() is None:
            stored = execute(uow.session, _LOOKUP, params).one()
            if bytes(stored.request_hash) != request_hash:
                raise IdempotencyKeyReusedError(
                    "this Idempotency-Key was already used with a different request"
                )
            return Answer(stored.status_code, json.dumps(stored.response_body), replayed=True)
        with uow.held():
            answer = work()
        execute(uow.session, _STORE, {**params, "status": answer.status, "body": answer.body})
        uow.commit()
        return answer


def request_hash(*parts: Any) -> bytes:
    """A stable digest of what identifies a request (method, path, body)."""
    return hashlib.sha256(json.dumps(list(parts), sort_keys=True, default=str).encode()).digest()
