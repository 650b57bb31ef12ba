"""The sign-in throttle: failed sign-ins are limited per handle, without letting a stranger lock
the handle's owner out.

Every sign-in (`POST /v1/users/token`) and every sign-up for a taken handle (`POST /v1/users`)
is a row of `sign_in_attempts` with the handle (lower case), the client's address and how it
ended; the limits are counted from those rows in a sliding window, so they hold across workers
and hosts:

- **Per handle**: after `MAX_FAILURES_PER_HANDLE` failures within `FAILURE_WINDOW`, from
  anywhere, the handle refuses attempts from addresses it does not know: 429
  `too_many_attempts` with `Retry-After`, before the password is checked (no Argon2 spent, no
  answer learnt), until the oldest failure leaves the window. That bounds a guesser with many
  addresses to 40 guesses an hour per account.
- **Known addresses** are exempt from the handle's limit: an address the handle signed in (or
  signed up) from successfully within `KNOWN_SOURCE_DAYS`. So an attack from elsewhere never locks the owner
  out from where they usually are, and from a new address they wait at most `FAILURE_WINDOW`
  after the attack stops. A known address still has its own limit,
  `MAX_FAILURES_PER_SOURCE` failures per handle within the window (someone else behind the
  same address), and the per-address budget of the rate limiter (`RATE_LIMIT_SIGN_IN_PER_IP`).
- **Parallel guesses** cannot overshoot: a sign-in writes its row as a failure under the
  handle's lock before the password is checked, and turns it into a success afterwards, so an
  attempt in flight already counts. Sign-ups for a taken handle learn nothing about the
  password; they are checked before the Argon2 hash and recorded when refused, not reserved.

Rows older than `KNOWN_SOURCE_DAYS` are deleted at the handle's next successful sign-in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.errors import TooManyAttemptsError
from core.uow import execute

FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_HANDLE = 10
MAX_FAILURES_PER_SOURCE = 5
KNOWN_SOURCE_DAYS = 30
FAILED, SUCCEEDED, REFUSED = "failed", "succeeded", "refused"


class SignInThrottledError(TooManyAttemptsError):
    title = "Too many failed sign-ins"


@dataclass(frozen=True)
class Attempt:
    """A sign-in in flight: its row, recorded as a failure until `succeeded`."""

    id: uuid.UUID


_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('sign-in:' || :h, 0))")
# The `MAX`-th most recent failure of the handle (and of the handle from this address) still
# inside the window, and whether the address is known to the handle.
_STATE = text(
    """
    SELECT clock_timestamp() AS now,
        (SELECT a.created_at FROM sign_in_attempts a
         WHERE a.handle = :h AND a.outcome = 'failed'
           AND a.created_at > clock_timestamp() - make_interval(secs => :window_s)
         ORDER BY a.created_at DESC OFFSET :handle_nth LIMIT 1) AS handle_since,
        (SELECT a.created_at FROM sign_in_attempts a
         WHERE a.handle = :h AND a.source = :source AND a.outcome = 'failed'
           AND a.created_at > clock_timestamp() - make_interval(secs => :window_s)
         ORDER BY a.created_at DESC OFFSET :source_nth LIMIT 1) AS source_since,
        EXISTS (SELECT 1 FROM sign_in_attempts a
                WHERE a.handle = :h AND a.source = :source AND a.outcome = 'succeeded'
                  AND a.created_at > clock_timestamp() - make_interval(days => :known_days))
            AS known
    """
)
_RECORD = text(
    """
    INSERT INTO sign_in_attempts (id, handle, source, outcome, created_at)
    VALUES (:id, :h, :source, :outcome, clock_timestamp())
    """
)
_SUCCEED = text(
    """
    WITH old AS (
        DELETE FROM sign_in_attempts
        WHERE handle = :h AND created_at < clock_timestamp() - make_interval(days => :known_days)
    )
    UPDATE sign_in_attempts SET outcome = 'succeeded' WHERE id = :id
    """
)


def _key(handle: str) -> str:
    return handle.lower()


def _refusal(session: Session, handle: str, source: str) -> SignInThrottledError | None:
    row = execute(
        session,
        _STATE,
        {
            "h": _key(handle),
            "source": source,
            "window_s": FAILURE_WINDOW.total_seconds(),
            "handle_nth": MAX_FAILURES_PER_HANDLE - 1,
            "source_nth": MAX_FAILURES_PER_SOURCE - 1,
            "known_days": KNOWN_SOURCE_DAYS,
        },
    ).one()
    since = row.source_since
    if since is None and not row.known:
        since = row.handle_since
    if since is None:
        return None
    wait = max(1, int((since + FAILURE_WINDOW - row.now).total_seconds()) + 1)
    minutes = int(FAILURE_WINDOW.total_seconds() // 60)
    return SignInThrottledError(
        f"too many failed sign-ins for this handle within {minutes} min: try again in {wait} s",
        wait,
    )


def _record(session: Session, handle: str, source: str, outcome: str) -> uuid.UUID:
    attempt_id = uuid.uuid4()
    execute(
        session,
        _RECORD,
        {"id": attempt_id, "h": _key(handle), "source": source, "outcome": outcome},
    )
    return attempt_id


def begin_sign_in(session: Session, handle: str, source: str) -> Attempt | SignInThrottledError:
    """Under the handle's lock: refuse (recording the refusal) or record the attempt as a
    failure until `succeeded` says otherwise. The caller commits either way."""
    execute(session, _LOCK, {"h": _key(handle)})
    refusal = _refusal(session, handle, source)
    if refusal is not None:
        _record(session, handle, source, REFUSED)
        return refusal
    return Attempt(_record(session, handle, source, FAILED))


def succeeded(session: Session, handle: str, attempt: Attempt) -> None:
    """The password was right: the attempt is a success, and the address is known from now."""
    execute(
        session, _SUCCEED, {"id": attempt.id, "h": _key(handle), "known_days": KNOWN_SOURCE_DAYS}
    )


def check_sign_up(session: Session, handle: str, source: str) -> SignInThrottledError | None:
    """A sign-up's check before its Argon2 hash: the handle's limits as for a sign-in (the
    refusal is recorded; the caller commits)."""
    refusal = _refusal(session, handle, source)
    if refusal is not None:
        _record(session, handle, source, REFUSED)
    return refusal


def signed_up(session: Session, handle: str, source: str) -> None:
    """A new account: the address it signed up from is known to the handle."""
    _record(session, handle, source, SUCCEEDED)


def handle_taken(session: Session, handle: str, source: str) -> None:
    """A sign-up for a taken handle counts as a failure of that handle."""
    _record(session, handle, source, FAILED)
