"""The check-in use case: verify presence, record the visit, unlock what it earns, issue codes.

All of it happens in the caller's one transaction, in a fixed number of round trips whatever the
number of offers at the venue:

1. one call of `checkin_venue_and_history` (migration 0018): `pg_advisory_xact_lock` on the
   user, so one user's parallel check-ins see each other (cooldown, per-user caps, visit
   counts), then, in a snapshot taken after the lock, the venue, the user's history (the
   accepted fixes just before and after this one's `observed_at`, the latest accepted fix, the
   last visit here), the counts behind the strikes and staff exclusion (`offers.abuse`), and
   the database clock;
3. the pure verdict (`geo.verify.verify_fix`) and assessment (`offers.abuse.assess`), then one
   INSERT of the check-in with its strikes;
4. if verified: one call of `checkin_candidates` (migration 0018) for every active offer at
   the venue with the facts its rule needs; the pure decision per offer (`offers.engine.decide`);
5. one conditional UPDATE claiming the total caps of all offers to unlock
   (`unlocked_count + n <= total_cap`), one INSERT of the unlocks and one of the holdouts;
6. if verified: one INSERT of the webhook events (`checkin.verified`, `unlock.created`) and
   their deliveries into the outbox (`core.webhooks.emit`), which stores nothing when none of
   the merchant's endpoints subscribes. They commit with the check-in or not at all.

The two big reads are PL/pgSQL functions because PostgreSQL keeps a function's plans for the
life of the connection, where psycopg2's literal SQL is planned again on every check-in
(planning them cost more than running them: docs/performance.md, "Planning once").

A check-in with a `tap_token` spends it with one conditional UPDATE after step 1 (the caller's
own, unspent, unexpired token for this venue, or none); a GPS-only check-in makes no extra trip.
A check-in with a `presence_code` takes two more advisory locks (its device's, its venue's) and
counts the wrong codes in the window with one query before the verdict (`geo.presence` sets the
limits), and records a wrong code with one INSERT after it.

`staff_check_in` is the same use case for a visit the merchant's staff record at the venue
(a member code or a card read, `proof` `staff`): it finds the user first (guess-limited for
member codes), then runs the same steps on the user's behalf, the fix being the venue's location.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import shapely.wkb
from shapely.geometry import MultiPolygon, Point
from sqlalchemy import text
from sqlalchemy.orm import Session

from core import audit, webhooks
from core.errors import NotFoundError, UnauthorizedError, ValidationError
from core.errors import TooManyAttemptsError as _TooManyAttempts
from core.uow import UnitOfWork, execute
from geo import members, nfc
from geo import presence as codes_shown
from geo import proof as proofs
from geo.verify import (
    DEFAULT_THRESHOLDS,
    Fix,
    History,
    PreviousFix,
    Tap,
    Thresholds,
    VenueSpec,
    Verdict,
    verify_fix,
)
from offers import codes
from offers.abuse import (
    DEFAULT_ABUSE_THRESHOLDS,
    AbuseFacts,
    AbuseThresholds,
    Assessment,
    assess,
)
from offers.engine import PROOF_REQUIRED, OfferTerms, VisitFacts, counts_toward_group, decide
from offers.rules import (
    DEFAULT_TOP_VISITOR_WINDOW_DAYS,
    Group,
    rule_from_json,
    window_from_json,
)

VERIFIED, REJECTED = "verified", "rejected"
STATUSES = (VERIFIED, REJECTED)


@dataclass(frozen=True)
class CheckinInput:
    venue_id: uuid.UUID
    lat: float
    lon: float
    accuracy_m: float
    observed_at: datetime
    mock_location: bool = False
    presence_code: str | None = None
    device_id: str | None = None
    tap_token: str | None = None


@dataclass(frozen=True)
class Locked:
    """An offer this verified check-in left locked for want of a stronger proof of presence."""

    offer_id: uuid.UUID
    title: str
    code: str  # offers.engine: presence_code_required | nfc_tap_required
    min_proof: str
    detail: str  # what the app can tell the user to do


@dataclass(frozen=True)
class IssuedUnlock:
    id: uuid.UUID
    offer_id: uuid.UUID
    title: str
    code: str
    expires_at: datetime
    venue_id: uuid.UUID


@dataclass
class CheckinResult:
    id: uuid.UUID
    status: str
    verdict: Verdict
    created_at: datetime
    assessment: Assessment = field(default_factory=lambda: Assessment((), None))
    unlocks: list[IssuedUnlock] = field(default_factory=list)
    held_out: list[uuid.UUID] = field(default_factory=list)
    # The rule kind of every offer considered (metrics count unlocks by kind).
    offer_kinds: dict[uuid.UUID, str] = field(default_factory=dict)
    # The strongest proof of presence the check-in carried (geo/proof.py).
    proof: str = proofs.GPS
    locked: list[Locked] = field(default_factory=list)
    user_id: uuid.UUID | None = None


# A transaction-scoped advisory lock on a key (a check-in's own, on the user, is taken inside
# `checkin_venue_and_history` with the key 'user:<id>': core/privacy.py takes that one too).
_USER_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")

# The user's advisory lock, then the venue, the user's history (the accepted fixes just before and
# after this one's `observed_at`, the latest accepted fix, the last visit here), the counts behind
# the strikes and staff exclusion (`offers.abuse`, from the counters of `offers/counters.py`) and
# the database clock: migration 0018's PL/pgSQL function, whose plans each connection keeps (the
# statement as literal SQL cost more to plan than to run). `now()` is passed in, so tests can
# run it at a simulated clock.
_VENUE_AND_HISTORY = text(
    """
    SELECT * FROM checkin_venue_and_history(
        CAST(:venue_id AS uuid), CAST(:user_id AS uuid), CAST(:device_id AS varchar),
        CAST(:observed_at AS timestamptz), CAST(:window_days AS int),
        CAST(:rejection_hours AS int), CAST(:staff_device_days AS int), now())
    """
)

_INSERT_CHECKIN = text(
    """
    INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at,
                          mock_location, presence_code_sent, device_id, status, reasons,
                          reason_codes, strikes, staff_exclusion, proof, nfc_tap_id,
                          staff_key_id, created_at)
    VALUES (:id, :user_id, :venue_id,
            ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :accuracy_m, :observed_at,
            :mock_location, :presence_code_sent, :device_id, :status, CAST(:reasons AS jsonb),
            :reason_codes, :strikes, :staff_exclusion, :proof, :nfc_tap_id, :staff_key_id, now())
    """
)

# Every active offer at the venue with the facts its rule needs, from the counters of
# `offers/counters.py` (this check-in included: it was inserted in the same transaction, at
# `now()`, and its triggers counted it; `top_visitor_figures` is migration 0017's):
# migration 0018's `checkin_candidates`, whose plans each connection keeps.
_CANDIDATES = text(
    """
    SELECT * FROM checkin_candidates(
        CAST(:venue_id AS uuid), CAST(:user_id AS uuid), CAST(:top_window_days AS int), now())
    """
)

# Claim the total caps of several offers at once. Under READ COMMITTED a concurrent claim waits
# for the row lock and re-evaluates the condition, so the cap holds exactly.
_CLAIM = text(
    """
    UPDATE offers o SET unlocked_count = o.unlocked_count + c.n
    FROM unnest(CAST(:ids AS uuid[]), CAST(:ns AS int[])) AS c(id, n)
    WHERE o.id = c.id AND o.status = 'active'
      AND (o.total_cap IS NULL OR o.unlocked_count + c.n <= o.total_cap)
    RETURNING o.id
    """
)

_INSERT_UNLOCKS = text(
    """
    INSERT INTO unlocks (id, offer_id, user_id, checkin_id, venue_id, merchant_id, code,
                         created_at, expires_at, proof)
    SELECT u.id, u.offer_id, u.user_id, u.checkin_id, :venue_id, :merchant_id, u.code,
           now(), now() + make_interval(mins => u.ttl), u.proof
    FROM unnest(CAST(:ids AS uuid[]), CAST(:offer_ids AS uuid[]), CAST(:user_ids AS uuid[]),
                CAST(:checkin_ids AS uuid[]), CAST(:codes AS text[]), CAST(:ttls AS int[]),
                CAST(:proofs AS text[]))
         AS u(id, offer_id, user_id, checkin_id, code, ttl, proof)
    ON CONFLICT (code) DO NOTHING
    RETURNING id, expires_at
    """
)

_INSERT_HOLDOUTS = text(
    """
    INSERT INTO holdouts (checkin_id, offer_id, user_id, created_at)
    SELECT h.checkin_id, h.offer_id, h.user_id, now()
    FROM unnest(CAST(:checkin_ids AS uuid[]), CAST(:offer_ids AS uuid[]),
                CAST(:user_ids AS uuid[])) AS h(checkin_id, offer_id, user_id)
    ON CONFLICT DO NOTHING
    """
)


@dataclass
class _Grant:
    offer_id: uuid.UUID
    title: str
    user_id: uuid.UUID
    checkin_id: uuid.UUID
    ttl_minutes: int
    proof: str  # the check-in's (unlocks.proof)


_SPEND_TAP = text(
    """
    UPDATE nfc_taps SET used_at = now()
    WHERE token_hash = :hash AND user_id = :user_id AND venue_id = :venue_id
      AND outcome = 'accepted' AND used_at IS NULL AND expires_at > now()
    RETURNING id
    """
)


@dataclass(frozen=True)
class StaffVisit:
    """A visit the merchant's staff record at the venue: the key that recorded it."""

    key_id: uuid.UUID | None


class PresenceCodeGuessingError(_TooManyAttempts):
    title = "Too many wrong presence codes"


def check_in(
    uow: UnitOfWork,
    user_id: uuid.UUID,
    data: CheckinInput,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    abuse: AbuseThresholds = DEFAULT_ABUSE_THRESHOLDS,
) -> CheckinResult:
    """Record one check-in and everything it unlocks, in one transaction: all of it or none.

    A check-in carrying a presence code while too many wrong ones were sent (by this user, from
    this device or at this venue) is refused before the code is checked: the refusal's record
    commits, then `PresenceCodeGuessingError` (429) is raised."""
    with uow:
        try:
            result = _check_in(uow.session, user_id, data, thresholds, abuse)
        except PresenceCodeGuessingError:
            uow.commit()
            raise
        uow.commit()
        return result


# One guess-limited check-in at a time per device and per venue (after the user's lock, always
# in this order), so parallel guesses see each other's wrong codes.
_GUESS_LOCKS = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(:device_key, 0)),"
    " pg_advisory_xact_lock(hashtextextended(:venue_key, 0))"
)
_GUESS_LOCK_VENUE = text("SELECT pg_advisory_xact_lock(hashtextextended(:venue_key, 0))")
# For each scope, the `MAX_WRONG`-th most recent wrong code still inside the window, if any:
# while there is one, that scope may not try another code.
_NTH_WRONG_CODE = text(
    """
    SELECT clock_timestamp() AS now,
        (SELECT a.created_at FROM presence_code_attempts a
         WHERE a.user_id = :user_id AND a.outcome = 'wrong'
           AND a.created_at > clock_timestamp() - make_interval(secs => :window_s)
         ORDER BY a.created_at DESC OFFSET :user_nth LIMIT 1) AS "user",
        (SELECT a.created_at FROM presence_code_attempts a
         WHERE a.device_id = CAST(:device_id AS varchar) AND a.outcome = 'wrong'
           AND a.created_at > clock_timestamp() - make_interval(secs => :window_s)
         ORDER BY a.created_at DESC OFFSET :device_nth LIMIT 1) AS device,
        (SELECT a.created_at FROM presence_code_attempts a
         WHERE a.venue_id = :venue_id AND a.outcome = 'wrong'
           AND a.created_at > clock_timestamp() - make_interval(secs => :window_s)
         ORDER BY a.created_at DESC OFFSET :venue_nth LIMIT 1) AS venue
    """
)
_RECORD_CODE_ATTEMPT = text(
    """
    INSERT INTO presence_code_attempts (id, venue_id, user_id, device_id, outcome, scope,
                                        created_at)
    VALUES (:id, :venue_id, :user_id, :device_id, :outcome, :scope, clock_timestamp())
    """
)
_SCOPE_WORDS = {"user": "from your account", "device": "from this device", "venue": "at this venue"}


def _record_code_attempt(
    session: Session, user_id: uuid.UUID, data: CheckinInput, outcome: str, scope: str | None
) -> None:
    execute(
        session,
        _RECORD_CODE_ATTEMPT,
        {
            "id": uuid.uuid4(),
            "venue_id": str(data.venue_id),
            "user_id": str(user_id),
            "device_id": data.device_id,
            "outcome": outcome,
            "scope": scope,
        },
    )


def _limit_code_guessing(session: Session, user_id: uuid.UUID, data: CheckinInput) -> None:
    """Refuse a check-in carrying a presence code when its user, device or venue already sent
    as many wrong codes as allowed in the window (`geo.presence`), recording the refusal."""
    venue_key = f"presence-code:venue:{data.venue_id}"
    if data.device_id is not None:
        execute(
            session,
            _GUESS_LOCKS,
            {"device_key": f"presence-code:device:{data.device_id}", "venue_key": venue_key},
        )
    else:
        execute(session, _GUESS_LOCK_VENUE, {"venue_key": venue_key})
    window = codes_shown.WRONG_WINDOW
    row = execute(
        session,
        _NTH_WRONG_CODE,
        {
            "user_id": str(user_id),
            "device_id": data.device_id,
            "venue_id": str(data.venue_id),
            "window_s": window.total_seconds(),
            **{f"{s}_nth": codes_shown.MAX_WRONG[s] - 1 for s in codes_shown.GUESS_SCOPES},
        },
    ).one()
    waits = {
        scope: (since + window - row.now).total_seconds()
        for scope in codes_shown.GUESS_SCOPES
        if (since := getattr(row, scope)) is not None
    }
    if not waits:
        return
    scope = max(waits, key=lambda s: waits[s])
    wait = max(1, int(waits[scope]) + 1)
    _record_code_attempt(session, user_id, data, "refused", scope)
    raise PresenceCodeGuessingError(
        f"{codes_shown.MAX_WRONG[scope]} wrong presence codes {_SCOPE_WORDS[scope]} within "
        f"{int(window.total_seconds() // 60)} min: try the code again in {wait} s, or check in "
        "without it",
        wait,
    )


def _check_in(
    session: Session,
    user_id: uuid.UUID,
    data: CheckinInput,
    thresholds: Thresholds,
    abuse: AbuseThresholds,
    staff: StaffVisit | None = None,
) -> CheckinResult:
    row = execute(  # takes the user's lock first
        session,
        _VENUE_AND_HISTORY,
        {
            "venue_id": str(data.venue_id),
            "user_id": str(user_id),
            "device_id": data.device_id,
            # a staff visit is dated by the database's clock (its fix is the venue, now)
            "observed_at": None if staff is not None else data.observed_at,
            "window_days": abuse.window_days,
            "rejection_hours": abuse.rejection_hours,
            "staff_device_days": abuse.staff_device_days,
        },
    ).one_or_none()
    if row is None:
        raise NotFoundError("no such venue")
    if row.user_erased:  # erased while this request was in flight (core/privacy.py)
        raise UnauthorizedError("this account has been deleted")
    now: datetime = row.now
    if staff is not None:  # staff saw the user at the venue: the fix is the venue's location
        data = CheckinInput(data.venue_id, row.lat, row.lon, 0.0, now)
    elif data.presence_code is not None:
        _limit_code_guessing(session, user_id, data)
    tap: Tap | None = None
    tap_id: uuid.UUID | None = None
    if data.tap_token is not None:
        spent = execute(
            session,
            _SPEND_TAP,
            {
                "hash": nfc.token_hash(data.tap_token),
                "user_id": str(user_id),
                "venue_id": str(data.venue_id),
            },
        ).first()
        tap = Tap(valid=spent is not None)
        tap_id = spent.id if spent is not None else None
    venue = VenueSpec(
        fence=_multipolygon(row.geofence),
        center=Point(row.lon, row.lat),
        radius_m=row.radius_m,
        cooldown_minutes=row.checkin_cooldown_minutes,
        max_accuracy_m=row.max_accuracy_m,
        presence_secret=bytes(row.presence_secret),
        tap_radius_m=row.tap_radius_m,
    )
    previous = (
        PreviousFix(Point(row.prev_lon, row.prev_lat), row.prev_observed_at)
        if row.prev_observed_at is not None
        else None
    )
    following = (
        PreviousFix(Point(row.next_lon, row.next_lat), row.next_observed_at)
        if row.next_observed_at is not None
        else None
    )
    verdict = verify_fix(
        venue,
        Fix(
            point=Point(data.lon, data.lat),
            accuracy_m=data.accuracy_m,
            observed_at=data.observed_at,
            mock_location=data.mock_location,
            presence_code=data.presence_code,
        ),
        History(
            previous_fix=previous,
            last_verified_here_at=row.last_here_at,
            next_fix=following,
            latest_accepted_at=row.latest_observed_at,
        ),
        now,
        thresholds,
        tap=tap,
        staff=staff is not None,
    )
    assessment = assess(
        AbuseFacts(
            device_users=int(row.device_users),
            user_devices=int(row.user_devices),
            recent_rejections=int(row.recent_rejections),
            staff_user=bool(row.staff_user),
            staff_device=bool(row.staff_device)
            or (staff is not None and _uses_staff_device(session, user_id, row, abuse)),
        ),
        abuse,
    )
    if data.presence_code is not None and not verdict.presence_verified:
        _record_code_attempt(session, user_id, data, "wrong", None)
    proof = proof_of(verdict, staff is not None)
    checkin_id = uuid.uuid4()
    status = VERIFIED if verdict.verified else REJECTED
    execute(
        session,
        _INSERT_CHECKIN,
        {
            "id": str(checkin_id),
            "user_id": str(user_id),
            "venue_id": str(data.venue_id),
            "lon": data.lon,
            "lat": data.lat,
            "accuracy_m": data.accuracy_m,
            "observed_at": data.observed_at,
            "mock_location": data.mock_location,
            "presence_code_sent": data.presence_code is not None,
            "device_id": data.device_id,
            "status": status,
            "reasons": json.dumps([{"code": r.code, "detail": r.detail} for r in verdict.reasons]),
            "reason_codes": [r.code for r in verdict.reasons],
            "strikes": [s.code for s in assessment.strikes],
            "staff_exclusion": assessment.staff_exclusion.code
            if assessment.staff_exclusion
            else None,
            "proof": proof,
            "nfc_tap_id": str(tap_id) if tap_id else None,
            "staff_key_id": str(staff.key_id) if staff and staff.key_id else None,
        },
    )
    result = CheckinResult(
        checkin_id, status, verdict, now, assessment, proof=proof, user_id=user_id
    )
    if verdict.verified:
        issued = _unlock(
            session, result, user_id, data.venue_id, row.merchant_id, ZoneInfo(row.timezone), now
        )
        webhooks.emit(
            session,
            row.merchant_id,
            [(webhooks.CHECKIN_VERIFIED, _checkin_event(result, data.venue_id))]
            + [
                (webhooks.UNLOCK_CREATED, _unlock_event(uid, g, expires_at, data.venue_id, now))
                for uid, g, _code, expires_at in issued
            ],
        )
    return result


def _checkin_event(result: CheckinResult, venue_id: uuid.UUID) -> dict[str, Any]:
    """A verified check-in as a merchant's webhook receives it: no user, no location."""
    return {
        "id": result.id,
        "venue_id": venue_id,
        "status": result.status,
        "proof": result.proof,
        "unlock_ids": [u.id for u in result.unlocks],
        "created_at": result.created_at,
    }


def _unlock_event(
    unlock_id: uuid.UUID, grant: _Grant, expires_at: datetime, venue_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """An unlock as a merchant's webhook receives it: never its code (a bearer secret)."""
    return {
        "id": unlock_id,
        "offer_id": grant.offer_id,
        "venue_id": venue_id,
        "checkin_id": grant.checkin_id,
        "title": grant.title,
        "expires_at": expires_at,
        "created_at": now,
    }


def proof_of(verdict: Verdict, staff: bool) -> str:
    """The strongest proof a check-in carried (whether or not it was verified)."""
    if staff:
        return proofs.STAFF
    if verdict.tap_verified:
        return proofs.NFC_TAP
    if verdict.presence_verified:
        return proofs.PRESENCE_CODE
    return proofs.GPS


# Staff cannot check in the devices of staff either: the user's recent devices, used by any of
# the merchant's registered staff accounts.
_STAFF_DEVICE_OF_USER = text(
    """
    SELECT EXISTS (
        SELECT 1 FROM device_user_checkins mine
        JOIN device_user_checkins theirs ON theirs.device_id = mine.device_id
        JOIN merchant_staff_users s
          ON s.user_id = theirs.user_id AND s.merchant_id = :merchant_id
        WHERE mine.user_id = :user_id
          AND mine.last_at > now() - make_interval(days => :days)
          AND theirs.last_at > now() - make_interval(days => :days)
    )
    """
)


def _uses_staff_device(
    session: Session, user_id: uuid.UUID, row: Any, abuse: AbuseThresholds
) -> bool:
    return bool(
        execute(
            session,
            _STAFF_DEVICE_OF_USER,
            {
                "merchant_id": str(row.merchant_id),
                "user_id": str(user_id),
                "days": abuse.staff_device_days,
            },
        ).scalar_one()
    )


# ---- staff check-ins ------------------------------------------------------------------------


class MemberCodeInvalidError(ValidationError):
    code = "member_code_invalid"
    title = "Invalid member code"


class TooManyAttemptsError(_TooManyAttempts):
    title = "Too many wrong member codes"


@dataclass(frozen=True)
class StaffCheckinInput:
    venue_id: uuid.UUID
    member_code: str | None = None
    picc_data: str | None = None
    cmac: str | None = None


_STAFF_VENUE = text(
    "SELECT id FROM venues WHERE id = :venue_id AND merchant_id = :merchant_id"
    " AND deleted_at IS NULL"
)
# The `MAX_WRONG`-th most recent wrong member code of this key at this venue, and the
# `MAX_WRONG_PER_VENUE`-th of any key there, if still inside the window: while either is, the
# key may not try another code there (a merchant's extra keys share the venue's budget).
_NTH_WRONG = text(
    """
    SELECT clock_timestamp() AS now,
        (SELECT created_at + make_interval(secs => :window_s) FROM staff_checkin_attempts
         WHERE api_key_id = :key_id AND venue_id = :venue_id
           AND outcome = 'member_code_invalid'
           AND created_at > clock_timestamp() - make_interval(secs => :window_s)
         ORDER BY created_at DESC OFFSET :nth LIMIT 1) AS key_until,
        (SELECT created_at + make_interval(secs => :window_s) FROM staff_checkin_attempts
         WHERE venue_id = :venue_id AND outcome = 'member_code_invalid'
           AND created_at > clock_timestamp() - make_interval(secs => :window_s)
         ORDER BY created_at DESC OFFSET :venue_nth LIMIT 1) AS venue_until
    """
)
_RECORD_ATTEMPT = text(
    """
    INSERT INTO staff_checkin_attempts (id, merchant_id, api_key_id, venue_id, method, outcome,
                                        user_id, created_at)
    VALUES (:id, :merchant_id, :key_id, :venue_id, :method, :outcome, :user_id, now())
    """
)


def staff_check_in(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    data: StaffCheckinInput,
    master_key: bytes,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    abuse: AbuseThresholds = DEFAULT_ABUSE_THRESHOLDS,
) -> CheckinResult:
    """Record a visit the merchant's staff saw at its venue, for the user whose member code or
    card they read, through the same rules as any check-in (`proof` `staff`).

    A refusal (a wrong member code, a bad or replayed card read) commits its record, then
    raises: wrong codes are counted for the guessing limit, and the leak report sees them."""
    method = "member_code" if data.member_code is not None else "card"
    with uow:
        session = uow.session
        if (
            execute(
                session, _STAFF_VENUE, {"venue_id": data.venue_id, "merchant_id": merchant_id}
            ).first()
            is None
        ):
            raise NotFoundError("no such venue")

        def attempt(outcome: str, user_id: uuid.UUID | None = None) -> None:
            execute(
                session,
                _RECORD_ATTEMPT,
                {
                    "id": uuid.uuid4(),
                    "merchant_id": merchant_id,
                    "key_id": actor.key_id,
                    "venue_id": data.venue_id,
                    "method": method,
                    "outcome": outcome,
                    "user_id": user_id,
                },
            )

        user_id: uuid.UUID | None
        if data.member_code is not None:
            # One member code at a time per venue, so parallel guesses count each other.
            execute(session, _USER_LOCK, {"k": f"member-code:venue:{data.venue_id}"})
            locked = execute(
                session,
                _NTH_WRONG,
                {
                    "key_id": actor.key_id,
                    "venue_id": data.venue_id,
                    "window_s": members.WRONG_WINDOW.total_seconds(),
                    "nth": members.MAX_WRONG - 1,
                    "venue_nth": members.MAX_WRONG_PER_VENUE - 1,
                },
            ).one()
            until = max((t for t in (locked.key_until, locked.venue_until) if t), default=None)
            if until is not None:
                wait = max(1, int((until - locked.now).total_seconds()) + 1)
                most = (
                    f"{members.MAX_WRONG} wrong member codes with this key"
                    if locked.venue_until is None
                    else f"{members.MAX_WRONG_PER_VENUE} wrong member codes"
                )
                raise TooManyAttemptsError(
                    f"{most} at this venue within "
                    f"{int(members.WRONG_WINDOW.total_seconds() // 60)} min: try again in "
                    f"{wait} s, or read the guest's card",
                    wait,
                )
            user_id = members.owner_of(session, data.member_code)
            if user_id is None:
                attempt("member_code_invalid")
                uow.commit()
                raise MemberCodeInvalidError(
                    "this member code is not valid now: ask the guest to show the current one"
                )
        else:
            read = nfc.read_card(
                session,
                data.picc_data or "",
                data.cmac or "",
                data.venue_id,
                master_key,
            )
            if read.error is not None:
                attempt(read.error.code)
                uow.commit()
                raise read.error(read.detail)
            user_id = read.user_id
        assert user_id is not None
        attempt("accepted", user_id)
        result = _check_in(
            session,
            user_id,
            CheckinInput(data.venue_id, 0.0, 0.0, 0.0, datetime.now().astimezone()),
            thresholds,
            abuse,
            staff=StaffVisit(actor.key_id),
        )
        uow.commit()
        return result


def _unlock(
    session: Session,
    result: CheckinResult,
    user_id: uuid.UUID,
    venue_id: uuid.UUID,
    merchant_id: uuid.UUID,
    tz: ZoneInfo,
    now: datetime,
) -> list[tuple[uuid.UUID, _Grant, str, datetime]]:
    """Decide and insert the unlocks; answers every unlock issued (group members' too)."""
    grants: list[_Grant] = []
    holdouts: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = []  # checkin, offer, user
    candidates = execute(
        session,
        _CANDIDATES,
        {
            "venue_id": str(venue_id),
            "user_id": str(user_id),
            "top_window_days": DEFAULT_TOP_VISITOR_WINDOW_DAYS,
        },
    ).all()
    for offer in candidates:
        result.offer_kinds[offer.id] = str(offer.rule["kind"])
        terms = OfferTerms(
            id=offer.id,
            rule=rule_from_json(offer.rule),
            starts_at=offer.starts_at,
            ends_at=offer.ends_at,
            windows=tuple(window_from_json(w) for w in offer.windows),
            per_user_cap=offer.per_user_cap,
            requires_presence_code=offer.requires_presence_code,
            holdout_pct=offer.holdout_pct,
            min_proof=offer.min_proof,
        )
        if isinstance(terms.rule, Group):
            members = offer.members or []
            # Each member is judged by their own latest check-in here (its presence code,
            # strikes and staff exclusion); the merchant's staff and members under a strike
            # without the presence code do not count toward the group.
            size = sum(
                counts_toward_group(
                    presence_verified=proofs.satisfies(m["proof"], proofs.PRESENCE_CODE),
                    under_strike=bool(m["strikes"]),
                    merchant_staff=bool(m["staff"]),
                )
                for m in members
            )
            # Everyone verified here within the window, the caller included, who has not
            # already been given this offer by the same group.
            for member in members:
                if member["recent"]:
                    continue
                member_id = uuid.UUID(member["user_id"])
                facts = VisitFacts(
                    visits=0,
                    visits_within=None,
                    user_unlocks=int(member["unlocks"]),
                    top_visits=0,
                    best_other_visits=0,
                    group_size=size,
                )
                decision = decide(
                    terms,
                    facts,
                    tz,
                    now,
                    user_id=member_id,
                    presence_verified=proofs.satisfies(member["proof"], proofs.PRESENCE_CODE),
                    under_strike=bool(member["strikes"]),
                    merchant_staff=bool(member["staff"]),
                    proof=member["proof"],
                )
                checkin = uuid.UUID(member["checkin_id"])
                if decision.outcome == "unlock":
                    grants.append(
                        _Grant(
                            offer.id,
                            offer.title,
                            member_id,
                            checkin,
                            offer.code_ttl_minutes,
                            member["proof"],
                        )
                    )
                elif decision.outcome == "held_out":
                    holdouts.append((checkin, offer.id, member_id))
            continue
        facts = VisitFacts(
            visits=int(offer.visits),
            visits_within=int(offer.visits_within)
            if terms.rule.kind == "nth_visit" and offer.rule.get("within_days")
            else None,
            user_unlocks=int(offer.user_unlocks),
            top_visits=int(offer.top_visits),
            best_other_visits=int(offer.best_other_visits),
            group_size=0,
        )
        decision = decide(
            terms,
            facts,
            tz,
            now,
            user_id=user_id,
            presence_verified=result.verdict.presence_verified,
            under_strike=bool(result.assessment.strikes),
            merchant_staff=result.assessment.staff_exclusion is not None,
            proof=result.proof,
        )
        required = terms.required_proof
        if decision.why == PROOF_REQUIRED.get(required):
            result.locked.append(
                Locked(offer.id, offer.title, decision.why, required, proofs.HINTS[required])
            )
        if decision.outcome == "unlock":
            grants.append(
                _Grant(
                    offer.id, offer.title, user_id, result.id, offer.code_ttl_minutes, result.proof
                )
            )
        elif decision.outcome == "held_out":
            holdouts.append((result.id, offer.id, user_id))

    if holdouts:
        execute(
            session,
            _INSERT_HOLDOUTS,
            {
                "checkin_ids": [str(h[0]) for h in holdouts],
                "offer_ids": [str(h[1]) for h in holdouts],
                "user_ids": [str(h[2]) for h in holdouts],
            },
        )
        result.held_out = [h[1] for h in holdouts if h[2] == user_id]
    if not grants:
        return []
    wanted: dict[uuid.UUID, int] = {}
    for grant in grants:
        wanted[grant.offer_id] = wanted.get(grant.offer_id, 0) + 1
    claimed = {
        uuid.UUID(str(offer_id))
        for offer_id in execute(
            session, _CLAIM, {"ids": [str(i) for i in wanted], "ns": list(wanted.values())}
        ).scalars()
    }
    grants = [g for g in grants if g.offer_id in claimed]
    issued = _insert_unlocks(session, grants, venue_id, merchant_id)
    result.unlocks = [
        IssuedUnlock(uid, g.offer_id, g.title, code, expires_at, venue_id)
        for uid, g, code, expires_at in issued
        if g.user_id == user_id
    ]
    return issued


def _insert_unlocks(
    session: Session, grants: list[_Grant], venue_id: uuid.UUID, merchant_id: uuid.UUID
) -> list[tuple[uuid.UUID, _Grant, str, datetime]]:
    """Insert the unlocks with fresh codes; a code that collides (about 1 in 2**50 per code
    issued before) is simply drawn again."""
    issued: list[tuple[uuid.UUID, _Grant, str, datetime]] = []
    pending = grants
    while pending:
        ids = [uuid.uuid4() for _ in pending]
        drawn = [codes.new_code() for _ in pending]
        rows = execute(
            session,
            _INSERT_UNLOCKS,
            {
                "venue_id": str(venue_id),
                "merchant_id": str(merchant_id),
                "ids": [str(i) for i in ids],
                "offer_ids": [str(g.offer_id) for g in pending],
                "user_ids": [str(g.user_id) for g in pending],
                "checkin_ids": [str(g.checkin_id) for g in pending],
                "codes": drawn,
                "ttls": [g.ttl_minutes for g in pending],
                "proofs": [g.proof for g in pending],
            },
        ).all()
        inserted = {uuid.UUID(str(r.id)): r.expires_at for r in rows}
        retry = []
        for uid, grant, code in zip(ids, pending, drawn, strict=True):
            if uid in inserted:
                issued.append((uid, grant, code, inserted[uid]))
            else:
                retry.append(grant)
        pending = retry
    return issued


def _multipolygon(wkb: Any) -> MultiPolygon:
    shape = shapely.wkb.loads(bytes(wkb))
    if not isinstance(shape, MultiPolygon):
        raise TypeError("a venue's geofence is a MULTIPOLYGON")
    return shape
