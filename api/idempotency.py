"""`Idempotency-Key` for check-ins and redemptions.

The first request with a key inserts a row (caller, key, hash of the request) in the same
transaction as its work, and stores its response there before committing. A retry's INSERT
conflicts on the primary key: it waits for the first transaction to finish, then replays the
stored response. So parallel retries change nothing and all get the first answer (same ids, same
status). The same key with a different request is 422 `idempotency_key_reused`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from flask import Response, request
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.errors import PROBLEM_CONTENT_TYPE
from core.errors import ValidationError
from core.uow import execute

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class IdempotencyKeyReusedError(ValidationError):
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


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


def header_key() -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationError(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters",
            errors={HEADER: [f"1 to {MAX_KEY_LENGTH} printable characters"]},
        )
    return key


def run(
    session: Session,
    principal: str,
    body: dict[str, Any],
    work: Callable[[], Response],
) -> Response:
    """Run `work` (which must not commit) once per key; commit; answer or replay."""
    key = header_key()
    if key is None:
        response = work()
        session.commit()
        return response
    digest = hashlib.sha256(
        json.dumps([request.method, request.path, body], sort_keys=True, default=str).encode()
    ).digest()
    params = {"principal": principal, "key": key}
    if execute(session, _CLAIM, {**params, "hash": digest}).first() is None:
        stored = execute(session, _LOOKUP, params).one()
        session.rollback()
        if bytes(stored.request_hash) != digest:
            raise IdempotencyKeyReusedError(
                f"this {HEADER} was already used with a different request"
            )
        return _replay(stored.status_code, stored.response_body)
    response = work()
    execute(
        session,
        _STORE,
        {**params, "status": response.status_code, "body": response.get_data(as_text=True)},
    )
    session.commit()
    return response


def _replay(status: int, body: Any) -> Response:
    mimetype = PROBLEM_CONTENT_TYPE if status >= 400 else "application/json"
    response = Response(json.dumps(body), status=status, mimetype=mimetype)
    response.headers["Idempotent-Replayed"] = "true"
    return response
