"""`Idempotency-Key` over HTTP for check-ins and redemptions (`core/idempotency.py` does the work).

The key comes from the header and is scoped to the caller; the request is identified by its
method, path and body. Views pass the use case and how to render its answer; this module turns
the answer, first or replayed, into a response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, request

from api.errors import PROBLEM_CONTENT_TYPE
from core import idempotency
from core.errors import ValidationError
from core.uow import UnitOfWork

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = idempotency.MAX_KEY_LENGTH


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


KEPT_HEADERS = ("Retry-After",)


def run(
    uow: UnitOfWork,
    principal: str,
    body: dict[str, Any],
    work: Callable[[], Response],
) -> Response:
    """Run `work` (a view's call of a use case, rendered) once per key; answer or replay."""

    kept: dict[str, str] = {}

    def answer() -> idempotency.Answer:
        response = work()
        # Headers that say something about this answer (a refusal's `Retry-After`) are kept;
        # a replay answers the stored status and body only.
        for name in KEPT_HEADERS:
            if name in response.headers:
                kept[name] = response.headers[name]
        return idempotency.Answer(response.status_code, response.get_data(as_text=True))

    result = idempotency.run_once(
        uow,
        principal,
        header_key(),
        idempotency.request_hash(request.method, request.path, body),
        answer,
    )
    mimetype = PROBLEM_CONTENT_TYPE if result.status >= 400 else "application/json"
    response = Response(result.body, status=result.status, mimetype=mimetype)
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        response.headers.update(kept)
    return response
