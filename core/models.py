"""The relational schema: every table, column and index, as typed SQLAlchemy 2 mappings.

Geometry columns carry an explicit SRID. `venues.location` is geography (metres for KNN and
`ST_DWithin`); `venues.geofence` is geometry in EPSG:4326 (containment). Money-like counters such as
`offers.unlocked_count` are claimed with one conditional UPDATE, never read-then-write.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geography, Geometry
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = _now()


class ApiKey(Base):
    """A merchant credential. The secret is shown once; only its SHA-256 is kept.

    `lookup` is a random public prefix of the key used to find the row; the secret part is then
    compared in constant time against `secret_hash`.
    """

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("role IN ('owner', 'staff', 'analyst')", name="role"),)

    id: Mapped[uuid.UUID] = _id()
    merchant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("merchants.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(200))
    lookup: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A till device's key (offers/devices.py): staff work at this one venue and nothing else.
    venue_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("venues.id", ondelete="CASCADE"), index=True
    )
    # When a till device last used its key, to the minute (written at most once a minute).
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DevicePairing(Base):
    """A one-time code an owner shows a till device to pair it with one venue (offers/devices.py).
    Only the code's SHA-256 is kept; it works once (`used_at`), until `expires_at`."""

    __tablename__ = "device_pairings"
    __table_args__ = (
        Index("ix_device_pairings_merchant_id_created_at", "merchant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    venue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    label: Mapped[str | None] = mapped_column(String(200))
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The device key the code was exchanged for.
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )


class DashboardSession(Base):
    """A dashboard sign-in (api/dashboard/session.py): the cookie names this row, and every
    dashboard request finds it; signing out deletes it, so a copied cookie ends with it."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[uuid.UUID] = _id()
    api_key_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_handle_lower", func.lower(text("handle")), unique=True),)

    id: Mapped[uuid.UUID] = _id()
    # Null once the account is erased (core/privacy.py): the row stays, without the person,
    # so that the check-ins, unlocks and holdouts merchants count keep their user.
    handle: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserToken(Base):
    """A mobile user's bearer token; stored like API keys (lookup prefix + SHA-256 of the secret)."""

    __tablename__ = "user_tokens"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    lookup: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Venue(Base):
    __tablename__ = "venues"
    __table_args__ = (
        CheckConstraint("checkin_cooldown_minutes >= 0", name="cooldown"),
        CheckConstraint("max_accuracy_m > 0", name="max_accuracy"),
        # Nearby is a KNN query over live venues only.
        Index(
            "ix_venues_location_live",
            "location",
            postgresql_using="gist",
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_venues_merchant_id_created_at", "merchant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100))
    # Plain text for people ("Mannerheimintie 5, Helsinki"); optional, never geocoded by the API.
    address: Mapped[str | None] = mapped_column(String(300))
    timezone: Mapped[str] = mapped_column(String(64))
    location: Mapped[Any] = mapped_column(
        Geography("POINT", srid=4326, spatial_index=False), nullable=False
    )
    # Polygon fences are stored as given (as MultiPolygon); circles as a polygon approximation
    # for spatial queries, with `radius_m` kept so verification can use the exact circle.
    geofence: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False
    )
    radius_m: Mapped[float | None] = mapped_column(Float)
    checkin_cooldown_minutes: Mapped[int] = mapped_column(Integer)
    max_accuracy_m: Mapped[float] = mapped_column(Float)
    presence_secret: Mapped[bytes] = mapped_column(LargeBinary(20))
    # With a valid NFC tap, a fix within this many metres of the fence is plausible enough
    # (indoors GPS is rough): docs/presence.md.
    tap_radius_m: Mapped[float] = mapped_column(Float, server_default=text("500"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'active', 'paused', 'ended')", name="status"),
        CheckConstraint("holdout_pct >= 0 AND holdout_pct <= 50", name="holdout_pct"),
        CheckConstraint("total_cap IS NULL OR unlocked_count <= total_cap", name="cap"),
        CheckConstraint("min_proof IN ('gps', 'presence_code', 'nfc_tap')", name="min_proof"),
        CheckConstraint("value_per_redemption >= 0", name="value_per_redemption"),
        # `requires_presence_code` is the older spelling of `min_proof` above gps.
        CheckConstraint(
            "requires_presence_code = (min_proof <> 'gps')", name="requires_presence_code"
        ),
        Index("ix_offers_merchant_id_created_at", "merchant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    terms: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    windows: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'"))
    total_cap: Mapped[int | None] = mapped_column(Integer)
    unlocked_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    per_user_cap: Mapped[int] = mapped_column(Integer)
    code_ttl_minutes: Mapped[int] = mapped_column(Integer)
    requires_presence_code: Mapped[bool] = mapped_column(Boolean)
    # The weakest proof of presence that unlocks it (offers/proof.py).
    min_proof: Mapped[str] = mapped_column(String(16), server_default=text("'gps'"))
    holdout_pct: Mapped[float] = mapped_column(Float)
    # What one redemption costs the merchant, in their own currency (the summary's cost per
    # verified visit); exact in the database, a float in Python as the API shows it.
    value_per_redemption: Mapped[float | None] = mapped_column(Numeric(12, 2, asdecimal=False))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'draft'"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    # The offer as nearby lists it, JSON rendered by the database's trigger whenever a field it
    # shows is written (migration 0019); never written or read by the ORM.
    listing: Mapped[Any] = mapped_column(JSON, nullable=True, deferred=True)


class OfferStatusChange(Base):
    """Every status an offer has been in, from when: the funnel counts check-ins only while the
    offer was active."""

    __tablename__ = "offer_status_changes"
    __table_args__ = (Index("ix_offer_status_changes_offer_id_seq", "offer_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = _now()


class OfferVenue(Base):
    __tablename__ = "offer_venues"

    offer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True
    )
    venue_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("venues.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Checkin(Base):
    """Every check-in attempt, verified or rejected; rejections keep their reasons for fraud analysis."""

    __tablename__ = "checkins"
    __table_args__ = (
        CheckConstraint("status IN ('verified', 'rejected')", name="status"),
        CheckConstraint("proof IN ('gps', 'presence_code', 'nfc_tap', 'staff')", name="proof"),
        # impossible travel: the user's latest accepted fix; cooldown: latest at this venue
        Index("ix_checkins_user_id_observed_at", "user_id", "observed_at"),
        Index("ix_checkins_user_id_venue_id_created_at", "user_id", "venue_id", "created_at"),
        # the funnel's check-ins at an offer's venues and offer health's people and rejections
        # there are read from the index alone (migration 0020)
        Index(
            "ix_checkins_venue_id_created_at",
            "venue_id",
            "created_at",
            postgresql_include=["user_id", "status", "id", "proof"],
        ),
        # the leak report and offer health read the status and proof of the check-in behind each
        # unlock or redemption from the index alone (migration 0020)
        Index("ix_checkins_id_status_proof", "id", postgresql_include=["status", "proof"]),
        # the leak report counts rejections by reason from the index alone
        Index(
            "ix_checkins_rejected_venue_id_created_at",
            "venue_id",
            "created_at",
            postgresql_include=["reason_codes"],
            postgresql_where=text("status = 'rejected'"),
        ),
        # strikes (offers/abuse.py): the users of a device, the devices and rejections of a user
        Index(
            "ix_checkins_device_id_created_at",
            "device_id",
            "created_at",
            postgresql_include=["user_id"],
            postgresql_where=text("device_id IS NOT NULL"),
        ),
        Index(
            "ix_checkins_user_id_created_at",
            "user_id",
            "created_at",
            postgresql_include=["device_id", "status"],
        ),
        # the leak report reads check-ins under strikes or by a merchant's staff only
        Index(
            "ix_checkins_flagged_venue_id_created_at",
            "venue_id",
            "created_at",
            postgresql_where=text("strikes <> '{}' OR staff_exclusion IS NOT NULL"),
        ),
        # the retention job (core/privacy.py) walks the check-ins still precise, oldest first
        Index(
            "ix_checkins_precise_created_at",
            "created_at",
            postgresql_where=text("coarsened_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    venue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    location: Mapped[Any] = mapped_column(
        Geography("POINT", srid=4326, spatial_index=False), nullable=False
    )
    accuracy_m: Mapped[float] = mapped_column(Float)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    mock_location: Mapped[bool] = mapped_column(Boolean)
    presence_code_sent: Mapped[bool] = mapped_column(Boolean)
    device_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSONB, server_default=text("'[]'"))
    reason_codes: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default=text("'{}'"))
    # Strikes against the user or device when this check-in was made (offers/abuse.py): while
    # there are any, offers unlock only with the venue's presence code.
    strikes: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default=text("'{}'"))
    # 'staff_user' or 'staff_device' when the user (or a staff member's device) belongs to the
    # venue's merchant: such a check-in never unlocks that merchant's offers.
    staff_exclusion: Mapped[str | None] = mapped_column(String(16))
    # The strongest proof of presence the check-in carried (offers/proof.py), the NFC tap it
    # spent, and for a visit recorded by the merchant's staff, the key that recorded it.
    proof: Mapped[str] = mapped_column(String(16), server_default=text("'gps'"))
    nfc_tap_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("nfc_taps.id", ondelete="SET NULL"), unique=True
    )
    staff_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _now()
    # Set when the fix was coarsened (core/privacy.py: after the retention period, or when the
    # account was erased): `location` is then the venue's, `device_id` is gone, and
    # `venue_distance_m` (the fix's distance from the venue) is all that is left of the fix.
    coarsened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    venue_distance_m: Mapped[float | None] = mapped_column(Float)


class NfcTag(Base):
    """An NTAG 424 DNA tag at a venue. Its SDM keys are derived from the service's master key
    and this row's id (geo/sun.py), never stored. `last_counter` is the highest read counter
    accepted: a tap is accepted only above it, by one conditional UPDATE."""

    __tablename__ = "nfc_tags"
    __table_args__ = (
        # One live registration per physical tag.
        Index(
            "uq_nfc_tags_uid_live", "uid", unique=True, postgresql_where=text("deleted_at IS NULL")
        ),
        Index("ix_nfc_tags_venue_id", "venue_id"),
        # A tap names its tag only by the UID inside it: found by this index, removed ones too.
        Index("ix_nfc_tags_uid", "uid"),
    )

    id: Mapped[uuid.UUID] = _id()
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    venue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    uid: Mapped[bytes] = mapped_column(LargeBinary(7))
    label: Mapped[str | None] = mapped_column(String(200))
    last_counter: Mapped[int] = mapped_column(Integer, server_default=text("-1"))
    last_tap_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserCard(Base):
    """A user's NTAG 424 DNA card or wristband, read by the merchant's staff for a mobile-less
    check-in. Keys derived like a tag's; removing it sets `deleted_at` (the row stays as the
    record of the change)."""

    __tablename__ = "user_cards"
    __table_args__ = (
        Index(
            "uq_user_cards_uid_live",
            "uid",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_user_cards_user_id", "user_id"),
        Index("ix_user_cards_uid", "uid"),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    uid: Mapped[bytes] = mapped_column(LargeBinary(7))
    label: Mapped[str | None] = mapped_column(String(200))
    last_counter: Mapped[int] = mapped_column(Integer, server_default=text("-1"))
    last_read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NfcTap(Base):
    """Every SUN message received, from a venue's tag (`POST /v1/taps`) or a user's card (a
    staff check-in), accepted or refused: the raw data of the leak report's NFC section. An
    accepted tag tap carries a single-use token (only its SHA-256 is kept) that a check-in spends."""

    __tablename__ = "nfc_taps"
    __table_args__ = (
        CheckConstraint("outcome IN ('accepted', 'tap_invalid', 'tap_replayed')", name="outcome"),
        Index("ix_nfc_taps_venue_id_created_at", "venue_id", "created_at"),
        Index("ix_nfc_taps_tag_id_created_at", "tag_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    tag_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("nfc_tags.id", ondelete="CASCADE"))
    card_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user_cards.id", ondelete="CASCADE"), index=True
    )
    venue_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    counter: Mapped[int | None] = mapped_column(Integer)
    # Reads of the tag between the previous accepted one and this one that nobody submitted.
    counter_gap: Mapped[int | None] = mapped_column(Integer)
    token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()


class MemberCode(Base):
    """The member codes a user was shown, per one-minute step, so that staff can find the user
    by the code (`GET /v1/me/member-code` writes them, `POST /v1/staff-checkins` reads them)."""

    __tablename__ = "member_codes"
    __table_args__ = (Index("ix_member_codes_user_id", "user_id"),)

    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class StaffCheckinAttempt(Base):
    """Every staff check-in try with a member code or a card, and how it ended: wrong member
    codes are limited per key and venue from these rows, and the leak report counts them."""

    __tablename__ = "staff_checkin_attempts"
    __table_args__ = (
        Index("ix_staff_checkin_attempts_venue_id_created_at", "venue_id", "created_at"),
        Index("ix_staff_checkin_attempts_api_key_id_created_at", "api_key_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    venue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now()


class PresenceCodeAttempt(Base):
    """A wrong presence code sent with a check-in, or a check-in refused because too many were
    (`geo/presence.py` sets the limits per user, per device and per venue, counted from these
    rows in a sliding window); the leak report counts them as guessing."""

    __tablename__ = "presence_code_attempts"
    __table_args__ = (
        Index("ix_presence_code_attempts_venue_id_created_at", "venue_id", "created_at"),
        Index("ix_presence_code_attempts_user_id_created_at", "user_id", "created_at"),
        Index(
            "ix_presence_code_attempts_device_id_created_at",
            "device_id",
            "created_at",
            postgresql_where=text("device_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    venue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    device_id: Mapped[str | None] = mapped_column(String(200))
    # `wrong` (counted by the limits) or `refused` (over a limit; `scope` says which)
    outcome: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = _now()


class SignInAttempt(Base):
    """A sign-in (or a sign-up for a taken handle) and how it ended, by handle and client
    address: failures are limited per handle from these rows (`core/throttle.py`), and an
    address that signed in to a handle before is known to it."""

    __tablename__ = "sign_in_attempts"
    __table_args__ = (
        Index("ix_sign_in_attempts_handle_created_at", "handle", "created_at"),
        Index("ix_sign_in_attempts_handle_source", "handle", "source", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    handle: Mapped[str] = mapped_column(String(64))  # lower case
    source: Mapped[str] = mapped_column(String(64))  # the client's address
    outcome: Mapped[str] = mapped_column(String(16))  # failed | succeeded | refused
    created_at: Mapped[datetime] = _now()


class MerchantStaffUser(Base):
    """A handle its merchant's owner registered as staff: the account with that handle, now or
    once it signs up (`user_id`, never shown to the merchant), never unlocks that merchant's
    offers."""

    __tablename__ = "merchant_staff_users"
    # The unique index on (merchant, user) also serves the check-in's probe; the one on the
    # handle makes a handle registered once per merchant, whatever its case.
    __table_args__ = (
        UniqueConstraint("merchant_id", "user_id"),
        Index(
            "uq_merchant_staff_users_merchant_id_handle_lower",
            "merchant_id",
            func.lower(text("handle")),
            unique=True,
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    # Null until an account has the handle. Rows written before migration 0006 have a user and
    # may lack the handle (NOT NULL waits for a release after it: docs/operations.md).
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    handle: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()


class CheckinVisitCount(Base):
    """A user's verified check-ins at a venue, all time: the visit count of `first_visit` and
    `nth_visit` without reading the history. Kept by the `checkins` triggers (migration 0017,
    `offers/counters.py`), in the transaction that writes the check-in."""

    __tablename__ = "checkin_visit_counts"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    venue_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("venues.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    visits: Mapped[int] = mapped_column(Integer)


class CheckinVisitDay(Base):
    """A user's verified check-ins at a venue per UTC day: `nth_visit` within `within_days`
    sums whole days here and counts the check-ins of the day the window starts in."""

    __tablename__ = "checkin_visit_days"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    venue_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("venues.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    visits: Mapped[int] = mapped_column(Integer)


class DeviceUserCheckin(Base):
    """The latest check-in (any status) of each user on each device: the strikes' distinct
    users of a device and devices of a user over a window, exactly, in one row per pair."""

    __tablename__ = "device_user_checkins"
    __table_args__ = (Index("ix_device_user_checkins_user_id_last_at", "user_id", "last_at"),)

    device_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TopVisitorWindow(Base):
    """A `top_visitor` window (venue, days) kept as tallies: `top_visitor_tallies` count each
    user's verified check-ins at the venue created after `through`; a check-in advances
    `through` to its own `now() - window` as it goes, taking the check-ins left behind off."""

    __tablename__ = "top_visitor_windows"

    venue_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("venues.id", ondelete="CASCADE"), primary_key=True
    )
    window_days: Mapped[int] = mapped_column(Integer, primary_key=True)
    through: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TopVisitorTally(Base):
    """One user's verified check-ins at a venue after its window's `through`."""

    __tablename__ = "top_visitor_tallies"
    __table_args__ = (
        # the best other visitor: the highest tally, read from the top of the index
        Index(
            "ix_top_visitor_tallies_venue_id_window_days_visits",
            "venue_id",
            "window_days",
            text("visits DESC"),
        ),
    )

    venue_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("venues.id", ondelete="CASCADE"), primary_key=True
    )
    window_days: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    visits: Mapped[int] = mapped_column(Integer)


class Holdout(Base):
    """A check-in that would have unlocked an offer for a user in that offer's holdout group."""

    __tablename__ = "holdouts"

    checkin_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("checkins.id", ondelete="CASCADE"), primary_key=True
    )
    offer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = _now()


class Unlock(Base):
    """A unique, single-use code bound to one user, one offer and one check-in."""

    __tablename__ = "unlocks"
    __table_args__ = (
        CheckConstraint("proof IN ('gps', 'presence_code', 'nfc_tap', 'staff')", name="proof"),
        Index("ix_unlocks_user_id_created_at", "user_id", "created_at"),
        Index("ix_unlocks_offer_id_user_id", "offer_id", "user_id"),
        # an offer's unlocks with the check-in behind each, from the index alone (migration 0020)
        Index(
            "ix_unlocks_offer_id_created_at",
            "offer_id",
            "created_at",
            postgresql_include=["checkin_id"],
        ),
        Index("ix_unlocks_merchant_id_created_at", "merchant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    checkin_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("checkins.id", ondelete="CASCADE"), index=True
    )
    venue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The proof of the (verified) check-in behind it, copied when it is issued: the leak report
    # reads it without visiting the check-in (migration 0023). A check-in's proof never changes.
    proof: Mapped[str] = mapped_column(String(16))


class Redemption(Base):
    __tablename__ = "redemptions"
    __table_args__ = (
        CheckConstraint("proof IN ('gps', 'presence_code', 'nfc_tap', 'staff')", name="proof"),
        Index("ix_redemptions_merchant_id_redeemed_at", "merchant_id", "redeemed_at"),
        Index("ix_redemptions_offer_id_redeemed_at", "offer_id", "redeemed_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    unlock_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("unlocks.id", ondelete="CASCADE"), unique=True
    )
    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    venue_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("venues.id", ondelete="SET NULL"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    redeemed_at: Mapped[datetime] = _now()
    # Its unlock's venue, time and proof, copied when it is redeemed (they never change): the
    # leak report reads the redemptions alone (migration 0023).
    unlock_venue_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    unlocked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    proof: Mapped[str] = mapped_column(String(16))


class RedemptionAttempt(Base):
    """Every redemption try, successful or not, with who tried and where: the raw data of leak analysis."""

    __tablename__ = "redemption_attempts"
    __table_args__ = (
        Index("ix_redemption_attempts_merchant_id_created_at", "merchant_id", "created_at"),
        Index("ix_redemption_attempts_unlock_id", "unlock_id"),
    )

    id: Mapped[uuid.UUID] = _id()
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    unlock_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("unlocks.id", ondelete="CASCADE")
    )
    venue_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("venues.id", ondelete="SET NULL"))
    code_hint: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = _now()


class Impression(Base):
    """An offer listed to a signed-in user by `nearby`, once per user, offer and day (the local
    day at the venue it was first listed with that day): offers/measurement.py."""

    __tablename__ = "impressions"
    __table_args__ = (
        # the funnel's impressions (and their users) from the index alone (migration 0020)
        Index(
            "ix_impressions_offer_id_created_at",
            "offer_id",
            "created_at",
            postgresql_include=["user_id"],
        ),
        UniqueConstraint("offer_id", "user_id", "day"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    venue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = _now()
    # Null only in rows an older version wrote while migration 0007 rolled out.
    day: Mapped[date | None] = mapped_column(Date)


class Feedback(Base):
    """A rating (1-5) and an optional plain-text comment on one verified check-in, by its user,
    within a week of it, once (offers/feedback.py). `first_reply_at` is when the merchant first
    answered, set by the first reply in the reply's own transaction: the inbox and the
    responsiveness report read it instead of aggregating replies."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),
        # the report: a merchant's feedback of a period
        Index("ix_feedback_merchant_id_created_at", "merchant_id", "created_at"),
        # the inbox: a merchant's unanswered feedback, oldest first
        Index(
            "ix_feedback_unanswered_merchant_id_created_at",
            "merchant_id",
            "created_at",
            postgresql_where=text("first_reply_at IS NULL"),
            postgresql_include=["venue_id"],
        ),
        Index("ix_feedback_venue_id_created_at", "venue_id", "created_at"),
        Index("ix_feedback_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    # One feedback per check-in: the unique index is what makes a second one (even a parallel
    # one) `already_given`.
    checkin_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("checkins.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    venue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    first_reply_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FeedbackReply(Base):
    """A merchant's answer to a feedback, with the key that wrote it (also in the audit trail)."""

    __tablename__ = "feedback_replies"
    __table_args__ = (
        Index("ix_feedback_replies_feedback_id_created_at", "feedback_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    feedback_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    author_role: Mapped[str | None] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    # The clock at the insert (offers/feedback.py): replies keep their order.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    )


# ---- the feedback rollup (migration 0015): kept by triggers on `feedback`, read by the
# responsiveness report and offer health (offers/feedback.py, docs/feedback.md). No foreign keys:
# a cascade that deletes feedback runs the triggers after the parents are gone.


class FeedbackRollup(Base):
    """Per merchant, venue (the nil uuid: all the merchant's venues), rating and block of hours (level L: hours [block * 2^L,
    (block + 1) * 2^L) since 1970-01-01 00:00 UTC): feedback, answered, and the sum of times to
    first reply."""

    __tablename__ = "feedback_rollup"

    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    block: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    rating: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    feedback: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    response_us: Mapped[int] = mapped_column(BigInteger)


class FeedbackRollupResponse(Base):
    """Answered feedback per block and bucket of time to first reply (`feedback_response_bucket`):
    where a percentile lies; its value is read from `feedback_responses`."""

    __tablename__ = "feedback_rollup_responses"

    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    block: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    answered: Mapped[int] = mapped_column(Integer)


class FeedbackRollupOffer(Base):
    """Feedback per offer unlocked on the visit, venue, rating and block."""

    __tablename__ = "feedback_rollup_offers"

    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    block: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    venue_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    rating: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    feedback: Mapped[int] = mapped_column(Integer)


class FeedbackResponse(Base):
    """One narrow row per answered feedback: its time to first reply, in seconds and bucket, so
    a percentile's exact value is an index range scan inside one bucket."""

    __tablename__ = "feedback_responses"
    __table_args__ = (
        Index(
            "ix_feedback_responses_merchant_id_bucket_seconds",
            "merchant_id",
            "bucket",
            "seconds",
            postgresql_include=["created_at", "venue_id"],
        ),
        Index(
            "ix_feedback_responses_venue_id_bucket_seconds",
            "venue_id",
            "bucket",
            "seconds",
            postgresql_include=["created_at"],
        ),
    )

    feedback_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("feedback.id", ondelete="CASCADE"), primary_key=True
    )
    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    venue_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seconds: Mapped[float] = mapped_column(Double)
    bucket: Mapped[int] = mapped_column(SmallInteger)


class IdempotencyRecord(Base):
    """The first response to an `Idempotency-Key`, per caller, replayed to retries."""

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("ix_idempotency_records_created_at", "created_at"),)

    principal: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()


class AuditEvent(Base):
    """A state-changing merchant action (venue, offer, key, redemption): who did it, when, and
    what changed (`{field: [old, new]}`). Written in the same transaction as the action
    (`core/audit.py`); it never holds a secret, code or hash."""

    __tablename__ = "audit_events"
    __table_args__ = (
        # the owner's listing, newest first, paged by (created_at, id)
        Index("ix_audit_events_merchant_id_created_at_id", "merchant_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = _id()
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    # The key that acted; null for the owner key issued at sign-up (no key acted yet).
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))
    request_id: Mapped[str | None] = mapped_column(String(128))
    # The clock at the insert, not the transaction's start: events of one transaction keep
    # their order.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    )


class AccountErasure(Base):
    """The record that an account was erased (core/privacy.py): when, by whom (`user` or
    `operator:<name>`) and how many rows of each kind were erased or detached; never the
    erased data."""

    __tablename__ = "account_erasures"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    erased_at: Mapped[datetime] = _now()
    actor: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))


class RateLimitCounter(Base):
    """One fixed-window hit counter of the rate limiter's PostgreSQL storage (`api/ratelimit.py`),
    shared by every worker and host. UNLOGGED: counters need neither crash safety nor replicas."""

    __tablename__ = "rate_limit_counters"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


__all__ = [
    "AccountErasure",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Checkin",
    "CheckinVisitCount",
    "CheckinVisitDay",
    "DevicePairing",
    "DeviceUserCheckin",
    "Feedback",
    "FeedbackReply",
    "FeedbackResponse",
    "FeedbackRollup",
    "FeedbackRollupOffer",
    "FeedbackRollupResponse",
    "Holdout",
    "IdempotencyRecord",
    "Impression",
    "MemberCode",
    "Merchant",
    "MerchantStaffUser",
    "NfcTag",
    "NfcTap",
    "Offer",
    "OfferVenue",
    "RateLimitCounter",
    "Redemption",
    "RedemptionAttempt",
    "StaffCheckinAttempt",
    "TopVisitorTally",
    "TopVisitorWindow",
    "Unlock",
    "User",
    "UserCard",
    "UserToken",
    "Venue",
]


# ---- webhooks (core/webhooks.py, docs/integrations.md) ---------------------------------------


class WebhookEndpoint(Base):
    """Where a merchant wants its events POSTed. The signing secret is kept as issued: the
    worker signs every delivery with it (Standard Webhooks: a symmetric HMAC key), so unlike an
    API key it cannot be stored as a hash. `failing_since` is set when a delivery gave up after
    its retry window, and cleared by the next success."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_merchant_id", "merchant_id"),)

    id: Mapped[uuid.UUID] = _id()
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookEvent(Base):
    """The outbox: one row per event, written in the transaction of the change that caused it
    (only when an endpoint of the merchant subscribes to its type). Its id is the deliveries'
    `webhook-id`, the same on every retry."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_merchant_id_created_at", "merchant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()


class WebhookDelivery(Base):
    """One event for one endpoint: `pending` until a 2xx answer (`delivered`) or until its retry
    window ends (`failed`). The worker claims due rows with `FOR NO KEY UPDATE SKIP LOCKED`."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # each endpoint's pending deliveries, oldest first: the worker's claim (migration 0021)
        Index(
            "ix_webhook_deliveries_endpoint_due",
            "endpoint_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
        UniqueConstraint("event_id", "endpoint_id"),
    )

    id: Mapped[uuid.UUID] = _id()
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = _now()
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # A failed attempt at or after this gives up (`failed`).
    give_up_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookAttempt(Base):
    """Every attempt at a delivery, for the owner's list of deliveries."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery_id_attempted_at", "delivery_id", "attempted_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)


class WebhookWorker(Base):
    """A running delivery worker's heartbeat, for `/readyz`."""

    __tablename__ = "webhook_workers"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = _now()
    heartbeat_at: Mapped[datetime] = _now()
