"""Check-in farming: strikes that raise the bar, and a merchant's staff kept from its own offers.

A strike is a pattern in the recorded check-ins that farming leaves and honest use rarely does:

- `device_shared`: the check-in's device was used by `device_users` or more distinct accounts
  (this one included) over the last `window_days`: one phone farming many accounts;
- `many_devices`: the user checked in from `user_devices` or more distinct devices (this one
  included) over the last `window_days`: one account farmed from many phones, or a device id
  made up afresh for each try;
- `repeated_rejections`: the user had `rejections` or more rejected check-ins in the last
  `rejection_hours` before this one: someone probing the verifier.

Strikes are derived in SQL inside the check-in's transaction, the distinct devices and users
from `device_user_checkins` (the latest check-in of each pair, kept by triggers on `checkins`
in the same transactions: `offers/counters.py`, exact against counting the check-ins in
tests/integration/test_counters.py), and recorded on the check-in row. They expire by
themselves when the pattern leaves the window. While a check-in is under any strike its visit
unlocks offers only if it carried the venue's current presence code, which needs someone at the
venue whatever the phone says; the check-in itself is still judged and recorded as usual (the
contract's rejection codes do not change).

A merchant's owner may register the handles of the people who work for it as staff
(`merchant_staff_users`). A check-in by the account with a registered handle (`staff_user`), or
from a device such an account checked in from over the last `staff_device_days` (`staff_device`),
never unlocks that merchant's offers; other merchants' offers are unaffected. A registration
answers the same whether an account has the handle or not, and never shows the account's id:
otherwise any merchant could probe which handles exist and collect people's ids. A handle no
account has yet waits for the account that signs up with it (`core.accounts.create_user`).

Device ids are reported by the phone, so they can be left out or made up; a made-up id per try
shows as `many_devices`, and leaving it out escapes the device strikes only (documented in
docs/checkins.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core import audit
from core.accounts import lock_handle
from core.errors import ConflictError, NotFoundError
from core.models import MerchantStaffUser, User
from core.uow import UnitOfWork

DEVICE_SHARED: Final = "device_shared"
MANY_DEVICES: Final = "many_devices"
REPEATED_REJECTIONS: Final = "repeated_rejections"
# Every strike code, in the order a check-in lists them.
STRIKE_CODES: Final = (DEVICE_SHARED, MANY_DEVICES, REPEATED_REJECTIONS)

STAFF_USER: Final = "staff_user"
STAFF_DEVICE: Final = "staff_device"
STAFF_EXCLUSIONS: Final = (STAFF_USER, STAFF_DEVICE)

# A family may share a tablet and a person may own a phone and a tablet; a third account on one
# device, or a third device for one account, within a week is what farming looks like.
DEVICE_USERS: Final = 3
USER_DEVICES: Final = 3
WINDOW_DAYS: Final = 7
# Five rejections in a day is more than a bad GPS fix retried a few times.
REJECTIONS: Final = 5
REJECTION_HOURS: Final = 24
# How long a device a staff member used stays linked to the merchant's staff.
STAFF_DEVICE_DAYS: Final = 30


@dataclass(frozen=True)
class AbuseThresholds:
    """The limits of the strikes; the defaults are the module's constants."""

    device_users: int = DEVICE_USERS
    user_devices: int = USER_DEVICES
    window_days: int = WINDOW_DAYS
    rejections: int = REJECTIONS
    rejection_hours: int = REJECTION_HOURS
    staff_device_days: int = STAFF_DEVICE_DAYS


DEFAULT_ABUSE_THRESHOLDS = AbuseThresholds()


@dataclass(frozen=True)
class AbuseFacts:
    """Counts the check-in transaction gathers in SQL before it records the check-in."""

    device_users: int  # distinct users of this device in the window, this one included (1 if none)
    user_devices: int  # distinct devices of this user in the window, this one included
    recent_rejections: int  # the user's rejected check-ins in the rejection window, before this
    staff_user: bool  # the user is registered as staff of the venue's merchant
    staff_device: bool  # a staff account of the venue's merchant used this device lately


@dataclass(frozen=True)
class Strike:
    """A stable code for programs and a detail with the numbers for people."""

    code: str
    detail: str


@dataclass(frozen=True)
class Assessment:
    """What the abuse rules make of one check-in."""

    strikes: tuple[Strike, ...]
    staff_exclusion: Strike | None

    @property
    def presence_code_required(self) -> bool:
        """Whether offers unlock only with the venue's presence code."""
        return bool(self.strikes)


def assess(facts: AbuseFacts, thresholds: AbuseThresholds = DEFAULT_ABUSE_THRESHOLDS) -> Assessment:
    """The strikes and staff exclusion of a check-in, from counts that SQL gathered."""
    strikes: list[Strike] = []
    if facts.device_users >= thresholds.device_users:
        strikes.append(
            Strike(
                DEVICE_SHARED,
                f"this device was used by {facts.device_users} accounts in the last "
                f"{thresholds.window_days} days; from {thresholds.device_users}, offers unlock "
                "only with the presence code shown at the venue",
            )
        )
    if facts.user_devices >= thresholds.user_devices:
        strikes.append(
            Strike(
                MANY_DEVICES,
                f"this account was used on {facts.user_devices} devices in the last "
                f"{thresholds.window_days} days; from {thresholds.user_devices}, offers unlock "
                "only with the presence code shown at the venue",
            )
        )
    if facts.recent_rejections >= thresholds.rejections:
        strikes.append(
            Strike(
                REPEATED_REJECTIONS,
                f"this account had {facts.recent_rejections} rejected check-ins in the last "
                f"{thresholds.rejection_hours} h; from {thresholds.rejections}, offers unlock only "
                "with the presence code shown at the venue",
            )
        )
    exclusion = None
    if facts.staff_user:
        exclusion = Strike(
            STAFF_USER, "this account is registered as staff of the venue's merchant"
        )
    elif facts.staff_device:
        exclusion = Strike(
            STAFF_DEVICE,
            "a staff account of the venue's merchant checked in from this device in the last "
            f"{thresholds.staff_device_days} days",
        )
    return Assessment(tuple(strikes), exclusion)


# ---- a merchant's staff accounts -----------------------------------------------------------


class AlreadyStaffError(ConflictError):
    code = "already_staff"
    title = "Already registered as staff"


@dataclass(frozen=True)
class StaffUser:
    """A staff registration as its merchant sees it: the handle, never the account behind it."""

    id: uuid.UUID
    handle: str
    created_at: datetime


def _staff_view(entry: StaffUser) -> dict[str, Any]:
    return {"handle": entry.handle}


def add_staff_user(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, handle: str
) -> StaffUser:
    """Register `handle` as the merchant's staff, whether or not an account has it yet (the
    answer is the same either way). Registered already, in any case: 409 `already_staff`.

    One statement inserts the registration with the account that has the handle, if any; the
    handle's lock (shared with sign-up) keeps a sign-up with that handle from slipping between
    them unlinked."""
    with uow:
        session = uow.session
        lock_handle(session, handle)
        account = (
            select(User.id).where(func.lower(User.handle) == func.lower(handle)).scalar_subquery()
        )
        row = session.execute(
            insert(MerchantStaffUser)
            .values(id=uuid.uuid4(), merchant_id=merchant_id, handle=handle, user_id=account)
            .on_conflict_do_nothing()
            .returning(MerchantStaffUser.id, MerchantStaffUser.created_at)
        ).one_or_none()
        if row is None:
            raise AlreadyStaffError(f"{handle!r} is already registered as staff")
        entry = StaffUser(row.id, handle, row.created_at)
        audit.record(
            session,
            merchant_id,
            actor,
            "staff_user.create",
            entry.id,
            audit.diff(None, _staff_view(entry)),
        )
        uow.commit()
        return entry


# Rows written before migration 0006 may lack the handle: their account's is shown instead.
_SHOWN_HANDLE = func.coalesce(MerchantStaffUser.handle, User.handle, "")


def list_staff_users(session: Session, merchant_id: uuid.UUID) -> list[StaffUser]:
    """The merchant's staff registrations, oldest first."""
    rows = session.execute(
        select(MerchantStaffUser.id, _SHOWN_HANDLE.label("handle"), MerchantStaffUser.created_at)
        .outerjoin(User, User.id == MerchantStaffUser.user_id)
        .where(MerchantStaffUser.merchant_id == merchant_id)
        .order_by(MerchantStaffUser.created_at, MerchantStaffUser.id)
    ).all()
    return [StaffUser(r.id, r.handle, r.created_at) for r in rows]


def remove_staff_user(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, entry_id: uuid.UUID
) -> StaffUser:
    """Unregister a staff handle (its account's past check-ins keep their record)."""
    with uow:
        session = uow.session
        row = session.execute(
            select(
                MerchantStaffUser.id, _SHOWN_HANDLE.label("handle"), MerchantStaffUser.created_at
            )
            .outerjoin(User, User.id == MerchantStaffUser.user_id)
            .where(MerchantStaffUser.id == entry_id, MerchantStaffUser.merchant_id == merchant_id)
            .with_for_update(of=MerchantStaffUser)
        ).one_or_none()
        if row is None:
            raise NotFoundError("no such staff user")
        session.execute(delete(MerchantStaffUser).where(MerchantStaffUser.id == entry_id))
        entry = StaffUser(row.id, row.handle, row.created_at)
        audit.record(
            session,
            merchant_id,
            actor,
            "staff_user.delete",
            entry.id,
            audit.diff(_staff_view(entry), None),
        )
        uow.commit()
        return entry
