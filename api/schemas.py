"""Request and response schemas. They translate JSON to plain values and back; they never persist.

Request schemas refuse unknown fields (marshmallow's default `unknown=RAISE`). Geometry is checked
by `geo.geofence`, so every geometry mistake answers the one code `invalid_geometry`.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, date
from typing import Any

import marshmallow as ma
from marshmallow import fields as f
from marshmallow import validate as v

from core.accounts import ROLES
from geo import presence, venues
from geo.geofence import DEFAULT_RADIUS_M, MAX_RADIUS_M, MIN_RADIUS_M
from geo.proof import MIN_PROOFS, PROOFS
from geo.verify import DEFAULT_TAP_RADIUS_M, MAX_TAP_RADIUS_M, MIN_TAP_RADIUS_M, REASON_CODES
from offers import analytics, catalog, checkins
from offers import feedback as feedback_domain
from offers.abuse import STAFF_EXCLUSIONS, STRIKE_CODES
from offers.redemptions import UNLOCK_STATUSES
from offers.rules import (
    DAYS,
    DEFAULT_NTH_VISIT_REPEAT,
    DEFAULT_TOP_VISITOR_MIN_VISITS,
    DEFAULT_TOP_VISITOR_WINDOW_DAYS,
    RULE_KINDS,
)

POSITION_DOC = {
    "type": "array",
    "description": "[longitude, latitude] in WGS 84",
    "example": [24.9384, 60.1699],
    "minItems": 2,
    "maxItems": 2,
    "items": {"type": "number"},
}
POINT_DOC = {
    "type": "object",
    "description": "GeoJSON Point: [longitude, latitude] in WGS 84",
    "required": ["type", "coordinates"],
    "properties": {
        "type": {"type": "string", "enum": ["Point"]},
        "coordinates": POSITION_DOC,
    },
    "example": {"type": "Point", "coordinates": [24.9384, 60.1699]},
}
_RING_DOC = {
    "type": "array",
    "description": "A closed ring: at least 4 positions, the last equal to the first",
    "minItems": 4,
    "items": {"$ref": "#/components/schemas/GeoJsonPosition"},
}
POLYGON_DOC = {
    "type": "object",
    "description": "GeoJSON Polygon (RFC 7946): an outer ring, then any holes",
    "required": ["type", "coordinates"],
    "properties": {
        "type": {"type": "string", "enum": ["Polygon"]},
        "coordinates": {"type": "array", "minItems": 1, "items": _RING_DOC},
    },
    "example": {
        "type": "Polygon",
        "coordinates": [
            [[24.9381, 60.1697], [24.9387, 60.1697], [24.9387, 60.1701], [24.9381, 60.1697]]
        ],
    },
}
MULTIPOLYGON_DOC = {
    "type": "object",
    "description": "GeoJSON MultiPolygon (RFC 7946): polygons, each an outer ring then holes",
    "required": ["type", "coordinates"],
    "properties": {
        "type": {"type": "string", "enum": ["MultiPolygon"]},
        "coordinates": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "array", "minItems": 1, "items": _RING_DOC},
        },
    },
}
GEOFENCE_DESCRIPTION = (
    "GeoJSON Polygon or MultiPolygon (RFC 7946), [longitude, latitude] in WGS 84. Rings are "
    "closed (last position equals the first), do not cross themselves, and the area is between "
    "1 m² and 50 km² within 1 km of the venue's location."
)


# ---- field types: every request field is one of these -------------------------------------
#
# Text: what a person reads (names, titles, labels, categories, handles, codes, ids). Refused
# everywhere: lone surrogates (no UTF-8 encoding, so PostgreSQL cannot store them) and every
# control character (Cc: C0, DEL, C1). Also refused: invisible formatting characters (Cf:
# bidirectional embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069, the marks
# U+200E, U+200F and U+061C, zero-width space U+200B, soft hyphen, word joiner, BOM, tag
# characters, ...) except the zero-width non-joiner and joiner (U+200C, U+200D), which Persian,
# Indic scripts and emoji sequences need; and the line and paragraph separators (U+2028, U+2029).
# Multi-line text (an offer's description and terms) may also hold tab, line feed and carriage
# return. Passwords are only hashed, never shown: they refuse just what cannot be stored (lone
# surrogates and NUL), so no existing password stops working. docs/reliability.md ("Bad input").

_REFUSED_FORMAT = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f"
)
_SEPARATORS = "\u2028\u2029"
_SURROGATES = "\ud800-\udfff"
SINGLE_LINE_REFUSED = re.compile(f"[\x00-\x1f\x7f-\x9f{_REFUSED_FORMAT}{_SEPARATORS}{_SURROGATES}]")
MULTI_LINE_REFUSED = re.compile(
    f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_REFUSED_FORMAT}{_SEPARATORS}{_SURROGATES}]"
)
SECRET_REFUSED = re.compile(f"[\x00{_SURROGATES}]")


def refusal(found: str) -> str:
    """Why a character is refused, naming it by code point (it may not show)."""
    point = ord(found)
    if 0xD800 <= point <= 0xDFFF:
        return f"must be valid Unicode: U+{point:04X} is a lone surrogate, not a character"
    if point == 0:
        return "must not contain NUL characters (U+0000)"
    return (
        f"must not contain control, invisible formatting or bidirectional control characters "
        f"(found U+{point:04X})"
    )


class Text(f.String):
    """Text a person reads, on one line unless `multiline` (see the rules above). The OpenAPI
    document marks each such field `x-text: single-line` or `multi-line`."""

    def __init__(self, *, multiline: bool = False, **kwargs: Any):
        kind = "multi-line" if multiline else "single-line"
        kwargs["metadata"] = {**kwargs.get("metadata", {}), "x-text": kind}
        super().__init__(**kwargs)
        self.refused = MULTI_LINE_REFUSED if multiline else SINGLE_LINE_REFUSED

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        result = super()._deserialize(value, attr, data, **kwargs)
        found = self.refused.search(result)
        if found:
            raise ma.ValidationError(refusal(found.group()))
        return result


class Password(f.String):
    """A secret that is hashed and never shown: only what cannot be stored is refused."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        result = super()._deserialize(value, attr, data, **kwargs)
        found = SECRET_REFUSED.search(result)
        if found:
            raise ma.ValidationError(refusal(found.group()))
        return result


class EmailAddress(Text):
    """An email address, with the rules of Text."""

    default_error_messages = {"invalid": "Not a valid email address."}

    def __init__(self, **kwargs: Any):
        kwargs["metadata"] = {**kwargs.get("metadata", {}), "format": "email"}  # as fields.Email
        super().__init__(**kwargs)
        self.validators.insert(0, v.Email(error=str(self.error_messages["invalid"])))


class Number(f.Float):
    """A JSON number: never a string ("60.1") or a boolean, never NaN or infinite."""

    default_error_messages = {"invalid": "Not a valid number: send a JSON number, not a string."}

    def _validated(self, value: Any) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Integer(f.Integer):
    """A JSON integer: never a string ("5"), a boolean or a number with a fraction."""

    default_error_messages = {
        "invalid": "Not a valid integer: send a JSON integer, not a string or a fraction."
    }

    def __init__(self, **kwargs: Any):
        super().__init__(strict=True, **kwargs)


class Boolean(f.Boolean):
    """JSON true or false only: never 1, 0, "true" or "yes"."""

    default_error_messages = {"invalid": "Not a valid boolean: send true or false."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        # Not `value in {True}`: 1 == True in Python, so sets take 1 for true.
        if value is True or value is False:
            return value
        raise self.make_error("invalid", input=value)


# Query strings are text, so their numbers are parsed, from plain ASCII decimals only: Python's
# int() and float() also take "1_000", " 5 ", "+5", Arabic-Indic digits, "nan" and "1e999".
_QUERY_INTEGER = re.compile(r"-?[0-9]{1,18}")
_QUERY_NUMBER = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,18})?")


class QueryInteger(f.Integer):
    """An integer in a query string: ASCII digits, an optional minus sign."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, str) and not _QUERY_INTEGER.fullmatch(value):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class QueryNumber(f.Float):
    """A number in a query string: ASCII decimal digits with an optional fraction and sign."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, str) and not _QUERY_NUMBER.fullmatch(value):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Instant(f.AwareDateTime):
    """A timestamp with a zone, converted to UTC, in a range PostgreSQL and Python both hold."""

    MIN_YEAR, MAX_YEAR = 1970, 9000
    ZONE_DOC = (
        "ISO 8601 with a zone (`Z` or an offset under 16 hours such as `+02:00`), between the "
        "years 1970 and 9000; a time without a zone is 422"
    )

    def __init__(self, **kwargs: Any):
        metadata = kwargs.get("metadata", {})
        said = metadata.get("description")
        kwargs["metadata"] = {
            **metadata,
            "description": f"{said}. {self.ZONE_DOC}" if said else self.ZONE_DOC,
            "example": metadata.get("example", "2026-12-06T17:30:00+02:00"),
        }
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        result = super()._deserialize(value, attr, data, **kwargs)
        try:
            utc = result.astimezone(UTC)
        except OverflowError:
            utc = None
        if utc is None or not self.MIN_YEAR <= utc.year <= self.MAX_YEAR:
            raise ma.ValidationError(
                f"must be between the years {self.MIN_YEAR} and {self.MAX_YEAR}"
            )
        offset = result.utcoffset()
        if offset is not None and abs(offset.total_seconds()) >= 16 * 3600:
            raise ma.ValidationError("the UTC offset must be less than 16 hours")
        return utc


class UtcDateTime(f.AwareDateTime):
    """Timestamps are answered in UTC, whatever zone they were sent in."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if value is not None:
            value = value.astimezone(UTC)
        return super()._serialize(value, attr, obj, **kwargs)


class Geometry(f.Raw):
    """A GeoJSON geometry, checked by the domain (so its errors are `invalid_geometry`):
    `point`, or a `fence` (Polygon or MultiPolygon, told apart by `type`). The OpenAPI document
    describes each shape fully, so generated clients type the coordinates."""

    def __init__(self, shape: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.shape = shape

    def openapi_property(self, converter: Any) -> dict[str, Any]:
        converter.component("GeoJsonPosition", POSITION_DOC)
        point = converter.component("GeoJsonPoint", POINT_DOC)
        if self.shape == "point":
            return point
        polygon = converter.component("GeoJsonPolygon", POLYGON_DOC)
        multi = converter.component("GeoJsonMultiPolygon", MULTIPOLYGON_DOC)
        return {
            "description": GEOFENCE_DESCRIPTION,
            "oneOf": [polygon, multi],
            "discriminator": {
                "propertyName": "type",
                "mapping": {"Polygon": polygon["$ref"], "MultiPolygon": multi["$ref"]},
            },
        }


def patch_schema(create: type[ma.Schema], name: str) -> type[ma.Schema]:
    """The PATCH twin of a create schema: the same fields and checks, none required and none
    with a default, so a client that sends one field changes only that field (load it with
    `partial=True`). Its OpenAPI schema declares no create-time defaults either: a generated
    client would send them."""
    fields: dict[str, Any] = {}
    for field_name, field in create._declared_fields.items():
        twin = copy.deepcopy(field)
        twin.required = False
        twin.load_default = ma.missing
        twin.metadata = {k: v for k, v in twin.metadata.items() if k != "default"}
        if "(default" in twin.metadata.get("description", ""):
            twin.metadata["description"] = re.sub(
                r"[ ;,]*\(default [^)]*\)|[;,] default [^;.]*", "", twin.metadata["description"]
            )
        fields[field_name] = twin
    doc = "Every field optional; only those sent change (absent ones keep their value)."
    # A subclass, so that the create schema's own checks (validates_schema) hold here too.
    return type(name, (create,), {**fields, "__doc__": doc, "__module__": __name__})


# ---- accounts ----------------------------------------------------------------------------


class MerchantCreateSchema(ma.Schema):
    name = Text(required=True, validate=v.Length(1, 200), metadata={"example": "Cafe Aalto"})
    email = EmailAddress(required=True, validate=v.Length(3, 254))


class MerchantSchema(ma.Schema):
    id = f.UUID(required=True)
    name = f.String(required=True)
    email = f.String(required=True)
    created_at = UtcDateTime(required=True)


class MerchantCreatedSchema(ma.Schema):
    merchant = f.Nested(MerchantSchema, required=True)
    api_key = f.String(required=True, metadata={"description": "An owner key, shown only once"})


class KeyCreateSchema(ma.Schema):
    role = Text(required=True, validate=v.OneOf(ROLES))
    label = Text(load_default=None, allow_none=True, validate=v.Length(0, 200))


class KeySchema(ma.Schema):
    id = f.UUID(required=True)
    role = f.String(required=True, validate=v.OneOf(ROLES))
    label = f.String(allow_none=True)
    created_at = UtcDateTime(required=True)
    revoked_at = UtcDateTime(allow_none=True)
    venue_id = f.UUID(
        allow_none=True,
        metadata={"description": "A till device's key (`GET /v1/devices`): its one venue"},
    )
    last_used_at = UtcDateTime(
        allow_none=True, metadata={"description": "A till device's last request, to the minute"}
    )


class KeyCreatedSchema(KeySchema):
    api_key = f.String(required=True, metadata={"description": "The key's secret, shown only once"})


class KeyListSchema(ma.Schema):
    keys = f.List(f.Nested(KeySchema), required=True)


# Not a handle any test or the demo uses: Schemathesis sends the document's examples to the
# live server that the e2e tests share (tests/e2e/test_openapi_fuzz.py).
HANDLE_EXAMPLE = "doc_example_user"
HANDLE = v.Regexp(r"^[A-Za-z0-9_.-]{3,32}$", error="3 to 32 letters, digits, '_', '.' or '-'")


class UserCreateSchema(ma.Schema):
    handle = Text(required=True, validate=HANDLE, metadata={"example": HANDLE_EXAMPLE})
    password = Password(
        required=True,
        validate=v.Length(8, 256),
        load_only=True,
        metadata={"example": "correct horse"},
    )


class UserSchema(ma.Schema):
    id = f.UUID(required=True)
    handle = f.String(required=True)


class UserCreatedSchema(ma.Schema):
    user = f.Nested(UserSchema, required=True)
    token = f.String(required=True)


class LoginSchema(ma.Schema):
    handle = Text(required=True, validate=v.Length(1, 64), metadata={"example": HANDLE_EXAMPLE})
    password = Password(
        required=True,
        validate=v.Length(1, 256),
        load_only=True,
        metadata={"example": "correct horse"},
    )


class TokenSchema(ma.Schema):
    token = f.String(required=True)


class StaffUserCreateSchema(ma.Schema):
    handle = Text(
        required=True,
        validate=HANDLE,
        metadata={
            "example": "doc_example_staff",
            "description": "The handle of someone who works for the merchant. It is registered "
            "whether or not an account has it yet (the answer does not say): the account with "
            "it, now or once it signs up, never unlocks the merchant's offers",
        },
    )


class StaffUserSchema(ma.Schema):
    id = f.UUID(required=True, metadata={"description": "The registration's id"})
    handle = f.String(required=True, metadata={"description": "The handle as registered"})
    created_at = UtcDateTime(required=True)


class StaffUserListSchema(ma.Schema):
    staff_users = f.List(f.Nested(StaffUserSchema), required=True)


# ---- venues -------------------------------------------------------------------------------


class VenueCreateSchema(ma.Schema):
    name = Text(required=True, validate=v.Length(1, 200), metadata={"example": "Cafe Aalto"})
    category = Text(
        load_default=None,
        allow_none=True,
        validate=v.Length(0, 100),
        metadata={"example": "cafe"},
    )
    address = Text(
        load_default=None,
        allow_none=True,
        validate=v.Length(0, 300),
        metadata={
            "description": "The street address as people write it, shown next to the name "
            "(it tells venues of the same name apart); plain text, not geocoded",
            "example": "Mannerheimintie 5, 00100 Helsinki",
        },
    )
    timezone = Text(
        load_default=venues.DEFAULT_TIMEZONE,
        validate=v.Length(1, 64),
        metadata={"example": "Europe/Helsinki"},
    )
    location = Geometry("point", required=True)
    geofence = Geometry(
        "fence",
        load_default=None,
        metadata={"description": "The fence; without it, a circle of `radius_m`"},
    )
    radius_m = Number(
        load_default=None,
        allow_none=True,
        metadata={
            "description": f"Circle fence around location, {MIN_RADIUS_M:,.0f} to "
            f"{MAX_RADIUS_M:,.0f} m (default {DEFAULT_RADIUS_M:,.0f}; checked with the "
            "geometry: outside the bounds is 422 `invalid_geometry`)",
            # The domain checks it (geo.geofence), so its error code is invalid_geometry.
            "minimum": MIN_RADIUS_M,
            "maximum": MAX_RADIUS_M,
        },
    )
    checkin_cooldown_minutes = Integer(
        load_default=venues.DEFAULT_COOLDOWN_MINUTES,
        validate=v.Range(0, venues.MAX_COOLDOWN_MINUTES),
    )
    max_accuracy_m = Number(
        load_default=venues.DEFAULT_MAX_ACCURACY_M,
        validate=v.Range(venues.MIN_ACCURACY_LIMIT_M, venues.MAX_ACCURACY_LIMIT_M),
    )
    tap_radius_m = Number(
        load_default=DEFAULT_TAP_RADIUS_M,
        validate=v.Range(MIN_TAP_RADIUS_M, MAX_TAP_RADIUS_M),
        metadata={
            "description": "With a tap of the venue's NFC tag, a fix this far from the fence "
            "(or nearer) is plausible enough; default 500"
        },
    )


VenuePatchSchema = patch_schema(VenueCreateSchema, "VenuePatchSchema")


class VenueSchema(ma.Schema):
    id = f.UUID(required=True)
    name = f.String(required=True)
    category = f.String(allow_none=True)
    address = f.String(allow_none=True)
    timezone = f.String(required=True)
    location = Geometry("point", required=True)
    geofence = Geometry("fence", required=True)
    radius_m = f.Float(allow_none=True)
    checkin_cooldown_minutes = f.Integer(required=True)
    max_accuracy_m = f.Float(required=True)
    tap_radius_m = f.Float(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class VenueListSchema(ma.Schema):
    venues = f.List(f.Nested(VenueSchema), required=True)


class NearbyArgsSchema(ma.Schema):
    lat = QueryNumber(required=True, validate=v.Range(-90, 90))
    lon = QueryNumber(required=True, validate=v.Range(-180, 180))
    radius_m = QueryNumber(
        load_default=venues.NEARBY_DEFAULT_RADIUS_M,
        validate=v.Range(venues.NEARBY_MIN_RADIUS_M, venues.NEARBY_MAX_RADIUS_M),
    )
    limit = QueryInteger(
        load_default=venues.NEARBY_DEFAULT_LIMIT, validate=v.Range(1, venues.NEARBY_MAX_LIMIT)
    )


class NearbyOfferSchema(ma.Schema):
    id = f.UUID(required=True)
    title = f.String(required=True)
    rule = f.Nested(lambda: RuleSchema(), required=True)
    unlock = f.String(required=True, metadata={"description": "What it takes to unlock"})
    requires_presence_code = f.Boolean(required=True)
    min_proof = f.String(required=True, validate=v.OneOf(MIN_PROOFS))
    starts_at = UtcDateTime(allow_none=True)
    ends_at = UtcDateTime(allow_none=True)
    windows = f.List(f.Nested(lambda: WindowSchema()), required=True)


class NearbyVenueSchema(ma.Schema):
    id = f.UUID(required=True)
    name = f.String(required=True)
    category = f.String(allow_none=True)
    distance_m = f.Float(required=True)
    location = Geometry("point", required=True)
    offers = f.List(f.Nested(NearbyOfferSchema), required=True)


class NearbySchema(ma.Schema):
    venues = f.List(f.Nested(NearbyVenueSchema), required=True)


class PresenceCodeSchema(ma.Schema):
    code = f.String(required=True)
    valid_until = UtcDateTime(required=True)


# ---- offers -------------------------------------------------------------------------------

RULE_PARAMS: dict[str, tuple[set[str], set[str]]] = {
    # kind: (required, optional)
    "every_checkin": (set(), set()),
    "first_visit": (set(), set()),
    "nth_visit": ({"visits"}, {"within_days", "repeat"}),
    "top_visitor": (set(), {"window_days", "min_visits"}),
    "group": ({"min_people", "within_minutes"}, set()),
}


RULE_DOCS = {
    "every_checkin": "Every verified check-in unlocks it",
    "first_visit": "The user's first verified check-in at any of the offer's venues",
    "nth_visit": "The Nth verified visit (`visits`), counting only those within `within_days` "
    "when set; with `repeat`, every Nth",
    "top_visitor": "The user with the most verified check-ins at the venue over `window_days`, "
    "and at least `min_visits` of them",
    "group": "`min_people` distinct users verified at the venue within `within_minutes`; when "
    "the group is complete, every member gets the offer",
}


class RuleSchema(ma.Schema):
    """`kind` and the parameters of that kind; parameters of other kinds are refused. The OpenAPI
    document shows it as a `oneOf` per kind (`RuleNthVisit`, ...) with `kind` as discriminator."""

    kind = Text(required=True, validate=v.OneOf(RULE_KINDS))
    visits = Integer(validate=v.Range(1, 1_000), metadata={"description": "N"})
    within_days = Integer(
        allow_none=True,
        validate=v.Range(1, 3_650),
        metadata={"description": "Count only the visits of the last `within_days` days"},
    )
    repeat = Boolean(
        metadata={
            "description": "true: every Nth visit; false: once, at the Nth",
            "default": DEFAULT_NTH_VISIT_REPEAT,
        }
    )
    window_days = Integer(
        validate=v.Range(1, 365), metadata={"default": DEFAULT_TOP_VISITOR_WINDOW_DAYS}
    )
    min_visits = Integer(
        validate=v.Range(1, 1_000),
        metadata={
            "description": "top_visitor: the fewest verified visits over `window_days` that can "
            "make someone the top visitor",
            "default": DEFAULT_TOP_VISITOR_MIN_VISITS,
        },
    )
    min_people = Integer(validate=v.Range(2, 100))
    within_minutes = Integer(validate=v.Range(1, 1_440))

    @classmethod
    def openapi_schema(cls, converter: Any) -> dict[str, Any]:
        """One schema per kind, with only its parameters, behind a discriminator."""
        fields = cls._declared_fields
        mapping: dict[str, str] = {}
        for kind in RULE_KINDS:
            required, optional = RULE_PARAMS[kind]
            properties: dict[str, Any] = {"kind": {"type": "string", "enum": [kind]}}
            for name in fields:
                if name in required or name in optional:
                    properties[name] = converter.field2property(fields[name])
            name = "Rule" + "".join(word.title() for word in kind.split("_"))
            mapping[kind] = converter.component(
                name,
                {
                    "type": "object",
                    "description": RULE_DOCS[kind],
                    "required": ["kind", *(n for n in fields if n in required)],
                    "properties": properties,
                    "additionalProperties": False,
                },
            )["$ref"]
        return {
            "description": "What unlocks the offer: `kind` and that kind's parameters",
            "oneOf": [{"$ref": ref} for ref in mapping.values()],
            "discriminator": {"propertyName": "kind", "mapping": mapping},
        }

    @ma.validates_schema
    def _params_of_kind(self, data: dict[str, Any], **_: Any) -> None:
        kind = data.get("kind")
        if kind not in RULE_PARAMS:
            return
        required, optional = RULE_PARAMS[kind]
        errors: dict[str, list[str]] = {}
        for name in required - data.keys():
            errors[name] = [f"required for a {kind} rule"]
        for name in data.keys() - required - optional - {"kind"}:
            errors[name] = [f"not a parameter of a {kind} rule"]
        if errors:
            raise ma.ValidationError(errors)


TIME = v.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="a time of day as HH:MM, 00:00 to 23:59")


class WindowSchema(ma.Schema):
    days = f.List(Text(validate=v.OneOf(DAYS)), required=True, validate=v.Length(1, 7))
    start = Text(required=True, validate=TIME, metadata={"example": "17:00"})
    end = Text(
        required=True,
        validate=TIME,
        metadata={"example": "19:00", "description": "Before start: the window crosses midnight"},
    )

    @ma.validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("start") is not None and data.get("start") == data.get("end"):
            raise ma.ValidationError("end must differ from start", "end")
        days = data.get("days") or []
        if len(set(days)) != len(days):
            raise ma.ValidationError("days must not repeat", "days")


class OfferCreateSchema(ma.Schema):
    venue_ids = f.List(f.UUID(), required=True, validate=v.Length(1, 100))
    title = Text(required=True, validate=v.Length(1, 200), metadata={"example": "Free coffee"})
    description = Text(multiline=True, allow_none=True, validate=v.Length(0, 4_000))
    terms = Text(multiline=True, allow_none=True, validate=v.Length(0, 4_000))
    rule = f.Nested(RuleSchema, required=True)
    starts_at = Instant(allow_none=True)
    ends_at = Instant(allow_none=True)
    windows = f.List(
        f.Nested(WindowSchema),
        validate=v.Length(0, 50),
        metadata={
            "description": "When it can unlock, in the venue's time zone; none: any time",
            "default": catalog.DEFAULTS["windows"],
        },
    )
    total_cap = Integer(
        allow_none=True,
        validate=v.Range(1, 100_000_000),
        metadata={"description": "Unlocks in all; null: no cap"},
    )
    per_user_cap = Integer(
        validate=v.Range(1, 1_000), metadata={"default": catalog.DEFAULTS["per_user_cap"]}
    )
    code_ttl_minutes = Integer(
        validate=v.Range(1, 525_600), metadata={"default": catalog.DEFAULTS["code_ttl_minutes"]}
    )
    requires_presence_code = Boolean(
        metadata={"default": catalog.DEFAULTS["requires_presence_code"]}
    )
    min_proof = Text(
        validate=v.OneOf(MIN_PROOFS),
        metadata={
            "description": "The weakest proof of presence that unlocks it: gps, "
            "presence_code or nfc_tap; staff check-ins satisfy every level, nfc_tap satisfies "
            "presence_code. requires_presence_code: true is the same as presence_code.",
            "default": catalog.DEFAULTS["min_proof"],
        },
    )
    holdout_pct = Number(
        validate=v.Range(0, 50),
        metadata={
            "description": "The share of users held out as a control group, in percent",
            "default": catalog.DEFAULTS["holdout_pct"],
        },
    )
    value_per_redemption = Number(
        allow_none=True,
        validate=v.Range(0, catalog.MAX_VALUE_PER_REDEMPTION),
        metadata={
            "description": "Optional: what one redemption costs the merchant, in their own "
            "currency (rounded to cents); the summary's cost per verified visit reads it",
            "default": catalog.DEFAULTS["value_per_redemption"],
        },
    )


OfferPatchSchema = patch_schema(OfferCreateSchema, "OfferPatchSchema")


class OfferSchema(ma.Schema):
    id = f.UUID(required=True)
    status = f.String(required=True, validate=v.OneOf(catalog.STATUSES))
    venue_ids = f.List(f.UUID(), required=True)
    title = f.String(required=True)
    description = f.String(allow_none=True)
    terms = f.String(allow_none=True)
    rule = f.Nested(RuleSchema, required=True)
    starts_at = UtcDateTime(allow_none=True)
    ends_at = UtcDateTime(allow_none=True)
    windows = f.List(f.Nested(WindowSchema), required=True)
    total_cap = f.Integer(allow_none=True)
    unlocked_count = f.Integer(required=True, metadata={"description": "Unlocks issued so far"})
    per_user_cap = f.Integer(required=True)
    code_ttl_minutes = f.Integer(required=True)
    requires_presence_code = f.Boolean(required=True)
    min_proof = f.String(required=True, validate=v.OneOf(MIN_PROOFS))
    holdout_pct = f.Float(required=True)
    value_per_redemption = f.Float(
        allow_none=True, metadata={"description": "What one redemption costs the merchant"}
    )
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class OfferListSchema(ma.Schema):
    offers = f.List(f.Nested(OfferSchema), required=True)


class OfferListArgsSchema(ma.Schema):
    status = Text(validate=v.OneOf(catalog.STATUSES))


class HealthSchema(ma.Schema):
    status = f.String(required=True)
    database = f.String(required=True)


# ---- check-ins, wallet, redemptions ----------------------------------------------------


class CheckinCreateSchema(ma.Schema):
    venue_id = f.UUID(required=True)
    lat = Number(required=True, validate=v.Range(-90, 90), metadata={"example": 60.1699})
    lon = Number(required=True, validate=v.Range(-180, 180), metadata={"example": 24.9384})
    accuracy_m = Number(
        required=True,
        validate=v.Range(0, 100_000, min_inclusive=False),
        metadata={
            "description": "Radius of the fix's accuracy circle, metres",
            "example": 12.0,
        },
    )
    observed_at = Instant(required=True, metadata={"description": "When the phone took the fix"})
    mock_location = Boolean(load_default=False, metadata={"description": "The OS's mock flag"})
    presence_code = Text(
        load_default=None,
        allow_none=True,
        validate=v.Length(1, 16),
        metadata={"description": "The code shown at the venue, when the user scanned or typed it"},
    )
    device_id = Text(load_default=None, allow_none=True, validate=v.Length(1, 200))
    tap_token = Text(
        load_default=None,
        allow_none=True,
        validate=v.Length(1, 200),
        metadata={
            "description": "From POST /v1/taps at this venue: with it the fix may be indoors "
            "and rough (within the venue's tap_radius_m)"
        },
    )


class ReasonSchema(ma.Schema):
    code = f.String(required=True, validate=v.OneOf(REASON_CODES))
    detail = f.String(required=True)


class LockedSchema(ma.Schema):
    offer_id = f.UUID(required=True)
    title = f.String(required=True)
    code = f.String(required=True, validate=v.OneOf(("presence_code_required", "nfc_tap_required")))
    min_proof = f.String(required=True, validate=v.OneOf(MIN_PROOFS))
    detail = f.String(
        required=True,
        metadata={"description": "What to tell the user, e.g. 'tap the tag at the counter'"},
    )


class IssuedUnlockSchema(ma.Schema):
    id = f.UUID(required=True)
    offer_id = f.UUID(required=True)
    venue_id = f.UUID(required=True)
    title = f.String(required=True)
    code = f.String(
        required=True, metadata={"description": "Show it at the till (e.g. 7K3Q-XM9T-2R5)"}
    )
    qr_payload = f.String(required=True, metadata={"description": "The same code, for a QR code"})
    expires_at = UtcDateTime(required=True)


class StrikeSchema(ma.Schema):
    code = f.String(required=True, validate=v.OneOf(STRIKE_CODES))
    detail = f.String(required=True)


class StaffExclusionSchema(ma.Schema):
    code = f.String(required=True, validate=v.OneOf(STAFF_EXCLUSIONS))
    detail = f.String(required=True)


class VerificationSchema(ma.Schema):
    strikes = f.List(
        f.Nested(StrikeSchema),
        required=True,
        metadata={"description": "Farming patterns seen on this account or device lately"},
    )
    presence_code_required = f.Boolean(
        required=True,
        metadata={
            "description": "While true, offers unlock only on a check-in that carries the "
            "presence code shown at the venue: prompt the user to scan it"
        },
    )
    staff_exclusion = f.Nested(
        StaffExclusionSchema,
        required=True,
        allow_none=True,
        metadata={"description": "Set when the user is the merchant's staff: no offer unlocks"},
    )


class CheckinSchema(ma.Schema):
    id = f.UUID(required=True)
    status = f.String(required=True, validate=v.OneOf(checkins.STATUSES))
    reasons = f.List(f.Nested(ReasonSchema), required=True)
    unlocks = f.List(f.Nested(IssuedUnlockSchema), required=True)
    held_out = f.List(
        f.UUID(),
        required=True,
        metadata={
            "description": "Offers this visit earned but that hold this user out (control group)"
        },
    )
    verification = f.Nested(VerificationSchema, required=True)
    proof = f.String(
        required=True,
        validate=v.OneOf(PROOFS),
        metadata={"description": "The strongest proof of presence the check-in carried"},
    )
    locked = f.List(
        f.Nested(LockedSchema),
        required=True,
        metadata={
            "description": "Offers this verified check-in left locked for want of a stronger "
            "proof of presence, with what to do"
        },
    )
    created_at = UtcDateTime(required=True)


class WalletArgsSchema(ma.Schema):
    status = Text(validate=v.OneOf(UNLOCK_STATUSES))


class WalletEntrySchema(IssuedUnlockSchema):
    status = f.String(required=True, validate=v.OneOf(UNLOCK_STATUSES))
    created_at = UtcDateTime(required=True)
    redeemed_at = UtcDateTime(allow_none=True)


class WalletSchema(ma.Schema):
    unlocks = f.List(f.Nested(WalletEntrySchema), required=True)


class RedemptionCreateSchema(ma.Schema):
    code = Text(
        # A barcode scanner typing into a till may end the code with Tab or Enter: whitespace,
        # ignored like spaces (the code is matched on its 11 symbols only).
        multiline=True,
        required=True,
        validate=v.Length(1, 64),
        metadata={
            "description": "Case-insensitive; spaces and dashes are ignored",
            "example": "7K3Q-XM9T-2R5",
        },
    )
    venue_id = f.UUID(load_default=None, allow_none=True)


class RedemptionSchema(ma.Schema):
    id = f.UUID(required=True)
    unlock_id = f.UUID(required=True)
    offer_id = f.UUID(required=True)
    venue_id = f.UUID(allow_none=True)
    title = f.String(required=True, metadata={"description": "The offer's title, for the till"})
    redeemed_at = UtcDateTime(required=True)


class CodeCheckVenueSchema(ma.Schema):
    id = f.UUID(required=True)
    name = f.String(required=True)


class CodeCheckRedemptionSchema(ma.Schema):
    redeemed_at = UtcDateTime(required=True)
    venue_id = f.UUID(allow_none=True, metadata={"description": "Where it was redeemed"})
    venue_name = f.String(allow_none=True)
    till = f.String(
        allow_none=True, metadata={"description": "The label of the key or device that redeemed it"}
    )


class CodeCheckSchema(ma.Schema):
    outcome = f.String(
        required=True,
        validate=v.OneOf(("valid", "unknown", "wrong_venue", "already_redeemed", "expired")),
        metadata={
            "description": "`valid`: redeeming it now would succeed; otherwise the refusal "
            "`POST /v1/redemptions` would give (another merchant's code is `unknown`)"
        },
    )
    detail = f.String(required=True, metadata={"description": "The outcome in words"})
    code = f.String(
        required=True,
        allow_none=True,
        metadata={"description": "The code's display form; null when `unknown`"},
    )
    offer_id = f.UUID(allow_none=True)
    title = f.String(allow_none=True, metadata={"description": "The offer's title"})
    venues = f.List(
        f.Nested(CodeCheckVenueSchema),
        required=True,
        metadata={"description": "The venues where the offer's codes are good"},
    )
    unlocked_at = UtcDateTime(allow_none=True)
    expires_at = UtcDateTime(allow_none=True)
    redemption = f.Nested(
        CodeCheckRedemptionSchema,
        allow_none=True,
        metadata={"description": "Where and when it was redeemed (`already_redeemed`)"},
    )


class QueryDate(Text):
    """A calendar date in a query string: `YYYY-MM-DD`, ASCII digits, a real day."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
                raise ValueError(text)
            return date.fromisoformat(text)
        except ValueError:
            raise ma.ValidationError("Not a valid date: send YYYY-MM-DD.") from None


class QueryFlag(Text):
    """`true` or `false` in a query string, nothing else."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text not in ("true", "false"):
            raise ma.ValidationError("Send true or false.")
        return text == "true"

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        # As it is written in a query string (the OpenAPI document shows defaults this way).
        if isinstance(value, bool):
            return "true" if value else "false"
        return super()._serialize(value, attr, obj, **kwargs)


class TillDayArgsSchema(ma.Schema):
    date = QueryDate(
        load_default=None,
        metadata={
            "description": "A local date at the venue (YYYY-MM-DD); default: today there",
            "format": "date",
        },
    )


class TillRedemptionSchema(ma.Schema):
    id = f.UUID(required=True)
    redeemed_at = UtcDateTime(required=True)
    offer_id = f.UUID(required=True)
    title = f.String(required=True)
    code = f.String(required=True, metadata={"description": "The redeemed code, display form"})
    till = f.String(allow_none=True, metadata={"description": "The key or device's label"})


class TillCheckinSchema(ma.Schema):
    id = f.UUID(required=True)
    created_at = UtcDateTime(required=True)
    status = f.String(required=True, validate=v.OneOf(("verified", "rejected")))
    reasons = f.List(f.String(), required=True, metadata={"description": "Rejection reason codes"})
    unlocked = f.List(f.String(), required=True, metadata={"description": "Offers it unlocked"})


class TillDaySchema(ma.Schema):
    venue_id = f.UUID(required=True)
    venue_name = f.String(required=True)
    timezone = f.String(required=True)
    date = f.Date(required=True, metadata={"description": "The local date at the venue"})
    redemptions = f.List(
        f.Nested(TillRedemptionSchema),
        required=True,
        metadata={"description": "Redeemed at this venue that day, newest first (at most 200)"},
    )
    redemptions_total = f.Integer(required=True)
    checkins = f.List(
        f.Nested(TillCheckinSchema),
        required=True,
        metadata={"description": "Check-ins at this venue that day, newest first (at most 200)"},
    )
    checkins_total = f.Integer(required=True)


# ---- analytics -----------------------------------------------------------------------------


class PeriodArgsSchema(ma.Schema):
    from_ = Instant(data_key="from", load_default=None, metadata={"description": "Inclusive"})
    to = Instant(load_default=None, metadata={"description": "Exclusive"})


class FunnelRatesSchema(ma.Schema):
    """Each rate is the share of a step that went on to the next: from 0 to 1, null when the
    step is 0."""

    checkin_per_impression = f.Float(
        allow_none=True,
        metadata={"description": "impressions_with_checkin / impressions"},
    )
    verified_per_checkin = f.Float(
        allow_none=True, metadata={"description": "verified_checkins / checkins"}
    )
    unlock_per_verified = f.Float(
        allow_none=True, metadata={"description": "verified_with_unlock / verified_checkins"}
    )
    redemption_per_unlock = f.Float(
        allow_none=True, metadata={"description": "unlocks_redeemed / unlocks"}
    )


class TimeToRedeemSchema(ma.Schema):
    median = f.Float(allow_none=True, metadata={"description": "Seconds from unlock to redemption"})
    p90 = f.Float(allow_none=True)


class VisitorsSchema(ma.Schema):
    new = f.Integer(required=True, metadata={"description": "First verified visit in the period"})
    returning = f.Integer(required=True)


class FunnelSchema(ma.Schema):
    offer_id = f.UUID(required=True)
    from_ = UtcDateTime(data_key="from", attribute="from", required=True)
    to = UtcDateTime(allow_none=True, metadata={"description": "null: up to now"})
    impressions = f.Integer(
        required=True,
        metadata={"description": "Signed-in users shown the offer, once per user and day"},
    )
    impressions_with_checkin = f.Integer(
        required=True,
        metadata={
            "description": "Impressions followed, within `attribution_hours`, by one of the "
            "same user's `checkins`"
        },
    )
    checkins = f.Integer(required=True, metadata={"description": "At its venues while active"})
    verified_checkins = f.Integer(required=True)
    verified_with_unlock = f.Integer(
        required=True, metadata={"description": "Verified check-ins that unlocked the offer"}
    )
    unlocks = f.Integer(required=True)
    unlocks_redeemed = f.Integer(
        required=True, metadata={"description": "Unlocks of the period redeemed since"}
    )
    held_out = f.Integer(required=True)
    redemptions = f.Integer(required=True, metadata={"description": "Redeemed in the period"})
    attribution_hours = f.Integer(required=True)
    rates = f.Nested(FunnelRatesSchema, required=True)
    time_to_redeem_s = f.Nested(TimeToRedeemSchema, required=True)
    visitors = f.Nested(VisitorsSchema, required=True)
    by_proof = f.Dict(
        keys=f.String(validate=v.OneOf(PROOFS)),
        values=f.Dict(keys=f.String(), values=f.Integer()),
        required=True,
        metadata={
            "description": "Per proof of presence (gps, presence_code, nfc_tap, staff): the "
            "verified_checkins, unlocks and redemptions it carried"
        },
    )


class RedemptionsArgsSchema(PeriodArgsSchema):
    group_by = Text(load_default=analytics.GROUP_BY[0], validate=v.OneOf(analytics.GROUP_BY))
    format = Text(
        load_default=None,
        validate=v.OneOf(("json", "csv")),
        metadata={
            "description": "csv answers text/csv with a header row (as does Accept: text/csv). "
            "Generated clients parse the JSON answer: leave it unset with them, and fetch CSV "
            "with a plain request"
        },
    )
    offer_id = f.UUID(load_default=None)
    venue_id = f.UUID(load_default=None)


class RedemptionRowSchema(ma.Schema):
    day = f.String(metadata={"description": "Local date at the venue (group_by=day)"})
    hour = f.String(metadata={"description": "Local hour at the venue (group_by=hour)"})
    venue_id = f.String()
    venue_name = f.String()
    offer_id = f.String()
    offer_title = f.String()
    redemptions = f.Integer(required=True)


class RedemptionsReportSchema(ma.Schema):
    group_by = f.String(required=True)
    rows = f.List(f.Nested(RedemptionRowSchema), required=True)


class LiftArgsSchema(ma.Schema):
    window_days = QueryInteger(load_default=30, validate=v.Range(1, 365))


class LiftGroupSchema(ma.Schema):
    users = f.Integer(
        required=True,
        metadata={
            "description": "Every user assigned to the group (at their first eligible visit)"
        },
    )
    pending = f.Integer(
        required=True,
        metadata={"description": "Of `users`, those still inside their window: not yet measured"},
    )
    measured = f.Integer(
        required=True, metadata={"description": "Of `users`, those whose window has ended"}
    )
    returned = f.Integer(
        required=True,
        metadata={"description": "Of `measured`, those with another verified check-in in it"},
    )
    return_rate = f.Float(
        allow_none=True,
        metadata={"description": "returned / measured; null while nobody is measured"},
    )


class LiftSchema(ma.Schema):
    offer_id = f.UUID(required=True)
    window_days = f.Integer(required=True)
    holdout_pct = f.Float(required=True)
    treatment = f.Nested(LiftGroupSchema, required=True)
    control = f.Nested(LiftGroupSchema, required=True)
    lift = f.Float(
        allow_none=True,
        metadata={
            "description": "Treatment minus control return rate, over measured users only; "
            "null until both groups have some"
        },
    )
    ci95 = f.List(
        f.Float(),
        allow_none=True,
        metadata={
            "description": "[low, high], over measured users only",
            "minItems": 2,
            "maxItems": 2,
        },
    )
    method = f.String(required=True)


class LeakArgsSchema(PeriodArgsSchema):
    offer_id = f.UUID(load_default=None)
    fast_seconds = QueryInteger(load_default=10, validate=v.Range(1, 86_400))
    far_m = QueryNumber(load_default=1_000.0, validate=v.Range(1, 20_000_000))


class SuspiciousSchema(ma.Schema):
    fast = f.Integer(required=True)
    fast_seconds = f.Integer(required=True)
    far = f.Integer(required=True)
    far_m = f.Float(required=True)


class StrikeReportSchema(ma.Schema):
    checkins = f.Integer(
        required=True, metadata={"description": "Check-ins under at least one strike"}
    )
    by_kind = f.Dict(keys=f.String(), values=f.Integer(), required=True)
    verified_without_presence_code = f.Integer(
        required=True,
        metadata={
            "description": "Verified visits under a strike that unlocked nothing for want "
            "of the presence code"
        },
    )
    shared_devices = f.Integer(
        required=True, metadata={"description": "Distinct devices under `device_shared`"}
    )
    users_on_many_devices = f.Integer(required=True)
    users_with_repeated_rejections = f.Integer(required=True)


class LeakReportSchema(ma.Schema):
    offer_id = f.UUID(allow_none=True)
    from_ = UtcDateTime(data_key="from", attribute="from", allow_none=True)
    to = UtcDateTime(allow_none=True)
    redemptions = f.Integer(required=True)
    backed_by_verified_checkin = f.Integer(required=True)
    backed_share = f.Float(allow_none=True)
    refused_attempts = f.Dict(
        keys=f.String(),
        values=f.Integer(),
        required=True,
        metadata={
            "description": "Refused attempts at this merchant's tills by outcome: "
            "`already_redeemed`, `expired`, `unknown` (another merchant's code included), "
            "`wrong_venue`"
        },
    )
    codes_tried_by_other_merchants = f.Integer(
        required=True,
        metadata={"description": "Attempts by other merchants' keys on this merchant's codes"},
    )
    suspicious = f.Nested(SuspiciousSchema, required=True)
    rejected_checkins = f.Dict(keys=f.String(), values=f.Integer(), required=True)
    strikes = f.Nested(StrikeReportSchema, required=True)
    staff_checkins = f.Dict(
        keys=f.String(),
        values=f.Integer(),
        required=True,
        metadata={
            "description": "Check-ins by the merchant's own staff, by `staff_user` or "
            "`staff_device`: they never unlock its offers"
        },
    )
    redemptions_by_proof = f.Dict(
        keys=f.String(validate=v.OneOf(PROOFS)),
        values=f.Integer(),
        required=True,
        metadata={"description": "Redemptions by the proof of the check-in that earned them"},
    )
    nfc = f.Nested(lambda: NfcReportSchema(), required=True)
    presence_codes = f.Nested(
        lambda: PresenceGuessingSchema(),
        required=True,
        metadata={"description": "Guessing of the venues' presence codes"},
    )


class PresenceGuessingSchema(ma.Schema):
    wrong = f.Integer(
        required=True,
        metadata={"description": "Wrong presence codes sent with check-ins at these venues"},
    )
    users_with_wrong_codes = f.Integer(
        required=True, metadata={"description": "Distinct users who sent them"}
    )
    refused_over_limit = f.Dict(
        keys=f.String(validate=v.OneOf(presence.GUESS_SCOPES)),
        values=f.Integer(),
        required=True,
        metadata={
            "description": "Check-ins carrying a code refused (429 `too_many_attempts`) because "
            "the user (`user`), the device (`device`) or the venue (`venue`) had sent `limits` "
            "wrong codes within `window_minutes`: each is guessing, or a guest caught by it"
        },
    )
    window_minutes = f.Integer(required=True)
    limits = f.Dict(keys=f.String(), values=f.Integer(), required=True)


class NfcReportSchema(ma.Schema):
    taps_accepted = f.Integer(required=True)
    taps_refused = f.Dict(
        keys=f.String(),
        values=f.Integer(),
        required=True,
        metadata={
            "description": "Refused taps by why: bad_mac, wrong_uid, wrong_tag_byte, malformed, "
            "unknown_tag, deleted_tag, counter_not_above (replayed)"
        },
    )
    counter_gaps = f.Dict(
        keys=f.String(),
        values=f.Integer(),
        required=True,
        metadata={
            "description": "`taps`: accepted taps that skipped read counters; `skipped_reads`: "
            "reads of the tags nobody submitted (collected URLs, or phones without the app)"
        },
    )
    unspent_tap_tokens = f.Integer(
        required=True, metadata={"description": "Taps never followed by a check-in"}
    )
    tap_bursts = f.Integer(
        required=True,
        metadata={"description": "User-tag-hours with tap_bursts_threshold taps or more"},
    )
    tap_bursts_threshold = f.Integer(required=True)
    rough_fix_tap_checkins = f.Integer(
        required=True,
        metadata={
            "description": "Verified tap check-ins whose fix was farther than rough_fix_m from "
            "the venue (they relied on the tap radius)"
        },
    )
    rough_fix_m = f.Float(required=True)
    card_reads = f.Integer(required=True)
    staff_checkin_attempts = f.Dict(keys=f.String(), values=f.Integer(), required=True)


class FlagSchema(ma.Schema):
    code = f.String(required=True)
    detail = f.String(required=True)


class OfferHealthSchema(ma.Schema):
    offer_id = f.UUID(required=True)
    title = f.String(required=True)
    status = f.String(required=True)
    window_days = f.Integer(required=True)
    unlocks = f.Integer(required=True)
    redemptions = f.Integer(required=True)
    checkins = f.Integer(required=True, metadata={"description": "At its venues, any status"})
    rejected_checkins = f.Integer(required=True)
    rejection_rate = f.Float(
        allow_none=True, metadata={"description": "rejected_checkins / checkins"}
    )
    checkin_users = f.Integer(
        required=True, metadata={"description": "People who checked in at its venues"}
    )
    turned_away_users = f.Integer(
        required=True, metadata={"description": "Of them, those with every check-in rejected"}
    )
    turned_away_rate = f.Float(
        allow_none=True,
        metadata={
            "description": "turned_away_users / checkin_users: what `high_rejection_rate` "
            "reads (from 20 people and 50%)"
        },
    )
    unlocks_by_proof = f.Dict(
        keys=f.String(validate=v.OneOf(PROOFS)), values=f.Integer(), required=True
    )
    feedback = f.Integer(
        required=True,
        metadata={"description": "Feedback given in the window on visits that unlocked it"},
    )
    rating_mean = f.Float(
        allow_none=True,
        required=True,
        metadata={
            "description": "Their mean rating: what `low_rating` reads (from "
            f"{feedback_domain.MIN_FEEDBACK_FOR_FLAG} feedback and "
            f"{feedback_domain.LOW_RATING_MEAN} stars or fewer)"
        },
    )
    healthy = f.Boolean(required=True)
    flags = f.List(f.Nested(FlagSchema), required=True)


class OfferHealthListSchema(ma.Schema):
    offers = f.List(f.Nested(OfferHealthSchema), required=True)


class SummaryArgsSchema(ma.Schema):
    from_ = Instant(
        data_key="from",
        load_default=None,
        metadata={
            "description": "Inclusive; without it, "
            f"{analytics.SUMMARY_DEFAULT_DAYS} days before `to`. At most "
            f"{analytics.SUMMARY_MAX_DAYS} days before `to`"
        },
    )
    to = Instant(load_default=None, metadata={"description": "Exclusive; without it, now"})
    venue_id = f.UUID(
        load_default=None, metadata={"description": "Only what happened at this venue"}
    )


class SummaryFiguresSchema(ma.Schema):
    visitors = f.Integer(
        required=True,
        metadata={
            "description": "Different people with a verified check-in (per offer: who unlocked it)"
        },
    )
    verified_checkins = f.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "At the venues; null per offer (see its funnel)"},
    )
    unlocks = f.Integer(required=True, metadata={"description": "Earned in the period"})
    unlocks_redeemed = f.Integer(
        required=True, metadata={"description": "Of `unlocks`, those redeemed since"}
    )
    redemptions = f.Integer(required=True, metadata={"description": "Redeemed in the period"})
    redemption_rate = f.Float(
        allow_none=True,
        required=True,
        metadata={"description": "unlocks_redeemed / unlocks; null without unlocks"},
    )
    lift = f.Float(
        allow_none=True,
        required=True,
        metadata={
            "description": "Return rate of treated minus held-out customers first eligible in "
            "the period (every offer with a holdout, pooled), over those whose window has "
            "ended; null until both groups have some"
        },
    )
    ci95 = f.List(
        f.Float(),
        allow_none=True,
        required=True,
        metadata={"description": "[low, high] of `lift`", "minItems": 2, "maxItems": 2},
    )
    treatment = f.Nested(LiftGroupSchema, required=True)
    control = f.Nested(LiftGroupSchema, required=True)
    cost = f.Float(
        allow_none=True,
        required=True,
        metadata={
            "description": "Redemptions times the offers' value_per_redemption, over the offers "
            "that state one; null when none does"
        },
    )
    cost_per_verified_visit = f.Float(
        allow_none=True,
        required=True,
        metadata={"description": "cost / verified_checkins; null per offer and without either"},
    )
    cost_per_redemption = f.Float(
        allow_none=True, required=True, metadata={"description": "cost / redemptions"}
    )


class SummaryChangeSchema(ma.Schema):
    change = f.Float(
        allow_none=True, metadata={"description": "current minus previous; null if either is"}
    )
    change_rate = f.Float(
        allow_none=True,
        metadata={"description": "change / previous; null when previous is 0 or null"},
    )


class SummaryComparisonMixin(ma.Schema):
    current = f.Nested(SummaryFiguresSchema, required=True)
    previous = f.Nested(
        SummaryFiguresSchema,
        required=True,
        metadata={"description": "The period of equal length just before"},
    )
    changes = f.Dict(
        keys=f.String(validate=v.OneOf(analytics.SUMMARY_MEASURES)),
        values=f.Nested(SummaryChangeSchema),
        required=True,
        metadata={"description": "Per measure: " + ", ".join(analytics.SUMMARY_MEASURES)},
    )


class SummaryOfferSchema(SummaryComparisonMixin):
    offer_id = f.UUID(required=True)
    title = f.String(required=True)
    status = f.String(required=True)
    holdout_pct = f.Float(required=True)
    value_per_redemption = f.Float(allow_none=True, required=True)


class SummarySchema(SummaryComparisonMixin):
    from_ = UtcDateTime(data_key="from", attribute="from", required=True)
    to = UtcDateTime(required=True)
    previous_from = UtcDateTime(required=True)
    previous_to = UtcDateTime(required=True)
    venue_id = f.UUID(allow_none=True, required=True)
    lift_window_days = f.Integer(required=True)
    offers = f.List(
        f.Nested(SummaryOfferSchema),
        required=True,
        metadata={"description": "Every offer of the merchant, oldest first"},
    )


# ---- proof of presence: NFC tags, taps, cards, member codes, staff check-ins -------------

HEX32 = v.Regexp(r"^[0-9A-Fa-f]{32}$", error="32 hex digits")
HEX16 = v.Regexp(r"^[0-9A-Fa-f]{16}$", error="16 hex digits")
PICC_DOC = {"description": "From the tag's URL", "example": "EF963FF7828658A599F3041510671E88"}
CMAC_DOC = {"description": "From the tag's URL", "example": "94EED9EE65337086"}
UID_DOC = {"description": "The tag's 7-byte UID: 14 hex digits", "example": "04DE5F1EACC040"}


class NfcTagCreateSchema(ma.Schema):
    uid = Text(required=True, validate=v.Length(14, 20), metadata=UID_DOC)
    label = Text(load_default=None, allow_none=True, validate=v.Length(1, 200))


class NfcTagSchema(ma.Schema):
    id = f.UUID(required=True)
    venue_id = f.UUID(required=True)
    uid = f.String(required=True)
    label = f.String(allow_none=True)
    last_counter = f.Integer(
        allow_none=True, metadata={"description": "The highest read counter accepted"}
    )
    last_tap_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(required=True)


class KeysShownOnceMixin(ma.Schema):
    sdm_meta_read_key = f.String(
        required=True, metadata={"description": "AES-128, 32 hex: shown once, never again"}
    )
    sdm_file_read_key = f.String(
        required=True, metadata={"description": "AES-128, 32 hex: shown once, never again"}
    )
    url_template = f.String(
        required=True,
        metadata={
            "description": "The URL to program, its picc_data and cmac mirrored over the zeros"
        },
    )
    picc_data_offset = f.Integer(
        required=True, metadata={"description": "Where picc_data's zeros start in the URL"}
    )
    cmac_offset = f.Integer(
        required=True, metadata={"description": "Where cmac's zeros start in the URL"}
    )


class NfcTagCreatedSchema(NfcTagSchema, KeysShownOnceMixin):
    pass


class NfcTagListSchema(ma.Schema):
    nfc_tags = f.List(f.Nested(NfcTagSchema), required=True)


class TapCreateSchema(ma.Schema):
    picc_data = Text(required=True, validate=HEX32, metadata=PICC_DOC)
    cmac = Text(required=True, validate=HEX16, metadata=CMAC_DOC)


class TapSchema(ma.Schema):
    tap_token = f.String(
        required=True, metadata={"description": "Send it with POST /v1/checkins; single use"}
    )
    venue_id = f.UUID(required=True)
    expires_at = UtcDateTime(required=True)


class CardCreateSchema(ma.Schema):
    uid = Text(required=True, validate=v.Length(14, 20), metadata=UID_DOC)
    label = Text(load_default=None, allow_none=True, validate=v.Length(1, 200))


class CardSchema(ma.Schema):
    id = f.UUID(required=True)
    uid = f.String(required=True)
    label = f.String(allow_none=True)
    last_read_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(required=True)


class CardCreatedSchema(CardSchema, KeysShownOnceMixin):
    pass


class CardListSchema(ma.Schema):
    cards = f.List(f.Nested(CardSchema), required=True)


class MemberCodeSchema(ma.Schema):
    code = f.String(required=True, metadata={"description": "8 digits", "example": "40338314"})
    valid_until = UtcDateTime(
        required=True,
        metadata={"description": "When the next code starts; this one works a minute more"},
    )


class CardReadSchema(ma.Schema):
    picc_data = Text(required=True, validate=HEX32, metadata=PICC_DOC)
    cmac = Text(required=True, validate=HEX16, metadata=CMAC_DOC)


class StaffCheckinCreateSchema(ma.Schema):
    venue_id = f.UUID(required=True)
    member_code = Text(
        load_default=None,
        allow_none=True,
        validate=v.Length(1, 20),
        metadata={"description": "The 8 digits the guest shows"},
    )
    card = f.Nested(
        CardReadSchema,
        load_default=None,
        allow_none=True,
        metadata={"description": "What the guest's card or wristband said when read"},
    )

    @ma.validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("member_code") is None) == (data.get("card") is None):
            raise ma.ValidationError("send either member_code or card", "member_code")


class StaffCheckinSchema(CheckinSchema):
    """The check-in recorded for the guest: what the guest's own answer says, and never who the
    guest is (no user id: a merchant learns no one's account, as with staff registrations)."""


# ---- feedback from verified visits ---------------------------------------------------------


class FeedbackCreateSchema(ma.Schema):
    rating = Integer(
        required=True,
        validate=v.Range(feedback_domain.RATING_MIN, feedback_domain.RATING_MAX),
        metadata={"description": "Stars, 1 to 5"},
    )
    comment = Text(
        multiline=True,
        load_default=None,
        allow_none=True,
        validate=v.Length(0, feedback_domain.COMMENT_MAX_CHARS),
        metadata={"description": "Plain text, never rendered as HTML; blank is no comment"},
    )


class FeedbackSchema(ma.Schema):
    id = f.UUID(required=True)
    checkin_id = f.UUID(required=True)
    venue_id = f.UUID(required=True)
    rating = f.Integer(required=True)
    comment = f.String(allow_none=True, required=True)
    created_at = UtcDateTime(required=True)


class ReplyCreateSchema(ma.Schema):
    body = Text(
        multiline=True,
        required=True,
        validate=v.Length(1, feedback_domain.REPLY_MAX_CHARS),
        metadata={"description": "Plain text, never rendered as HTML"},
    )


class ReplySchema(ma.Schema):
    id = f.UUID(required=True)
    feedback_id = f.UUID(required=True)
    body = f.String(required=True)
    created_at = UtcDateTime(required=True)
    author_role = f.String(
        allow_none=True, metadata={"description": "The role of the key that wrote it"}
    )


class UserReplySchema(ma.Schema):
    id = f.UUID(required=True)
    feedback_id = f.UUID(required=True)
    body = f.String(required=True)
    created_at = UtcDateTime(required=True)


class MyFeedbackSchema(FeedbackSchema):
    venue_name = f.String(required=True)
    replies = f.List(f.Nested(UserReplySchema), required=True)


class MyFeedbackListSchema(ma.Schema):
    feedback = f.List(f.Nested(MyFeedbackSchema), required=True)


class FeedbackListArgsSchema(ma.Schema):
    status = Text(load_default=None, validate=v.OneOf(feedback_domain.STATUSES))
    venue_id = f.UUID(load_default=None)
    rating = QueryInteger(
        load_default=None,
        validate=v.Range(feedback_domain.RATING_MIN, feedback_domain.RATING_MAX),
    )
    limit = QueryInteger(
        load_default=feedback_domain.LIST_LIMIT_DEFAULT,
        validate=v.Range(1, feedback_domain.LIST_LIMIT_MAX),
    )
    offset = QueryInteger(load_default=0, validate=v.Range(0, 1_000_000))


class VisitUnlockSchema(ma.Schema):
    offer_id = f.UUID(required=True)
    title = f.String(required=True)
    status = f.String(required=True, validate=v.OneOf(UNLOCK_STATUSES))


class VisitSchema(ma.Schema):
    checked_in_at = UtcDateTime(required=True)
    proof = f.String(required=True, validate=v.OneOf(PROOFS))
    unlocks = f.List(
        f.Nested(VisitUnlockSchema),
        required=True,
        metadata={"description": "What the visit unlocked, and whether it was redeemed"},
    )


class MerchantFeedbackSchema(FeedbackSchema):
    venue_name = f.String(required=True)
    status = f.String(required=True, validate=v.OneOf(feedback_domain.STATUSES))
    first_reply_at = UtcDateTime(allow_none=True, required=True)
    waiting_s = f.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "Unanswered: seconds since it was given"},
    )
    first_response_s = f.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "Answered: seconds from feedback to the first reply"},
    )
    visit = f.Nested(VisitSchema, required=True)
    replies = f.List(f.Nested(ReplySchema), required=True)


class MerchantFeedbackListSchema(ma.Schema):
    feedback = f.List(f.Nested(MerchantFeedbackSchema), required=True)


class ResponsivenessArgsSchema(PeriodArgsSchema):
    target_hours = QueryNumber(
        load_default=feedback_domain.DEFAULT_TARGET_HOURS,
        validate=v.Range(0, feedback_domain.MAX_TARGET_HOURS, min_inclusive=False),
        metadata={"description": "The target for a first reply, in hours (0.25: 15 minutes)"},
    )
    venue_id = f.UUID(load_default=None)
    format = Text(
        load_default=None,
        validate=v.OneOf(("json", "csv")),
        metadata={
            "description": "csv answers text/csv with a header row (as does Accept: text/csv)"
        },
    )


class FirstResponseSchema(ma.Schema):
    median = f.Float(allow_none=True, metadata={"description": "Seconds, over answered feedback"})
    p90 = f.Float(allow_none=True)
    mean = f.Float(allow_none=True)


class RatingSummarySchema(ma.Schema):
    mean = f.Float(allow_none=True)
    count_by_star = f.Dict(
        keys=f.String(), values=f.Integer(), required=True, metadata={"example": {"1": 0, "5": 3}}
    )


class ResponsivenessFiguresSchema(ma.Schema):
    feedback = f.Integer(required=True)
    answered = f.Integer(required=True, metadata={"description": "With at least one reply now"})
    unanswered = f.Integer(required=True)
    pending = f.Integer(
        required=True, metadata={"description": "Unanswered and younger than the target"}
    )
    overdue = f.Integer(required=True, metadata={"description": "Unanswered and older"})
    answered_within_target = f.Integer(required=True)
    response_rate = f.Float(
        allow_none=True,
        required=True,
        metadata={"description": "answered / (answered + overdue); null when both are 0"},
    )
    within_target_rate = f.Float(
        allow_none=True,
        required=True,
        metadata={"description": "answered_within_target / (answered + overdue)"},
    )
    first_response_s = f.Nested(FirstResponseSchema, required=True)
    rating = f.Nested(RatingSummarySchema, required=True)


class VenueResponsivenessSchema(ResponsivenessFiguresSchema):
    venue_id = f.UUID(required=True)
    venue_name = f.String(required=True)


class OfferRatingSchema(ma.Schema):
    offer_id = f.UUID(required=True)
    title = f.String(required=True)
    feedback = f.Integer(required=True)
    rating = f.Nested(RatingSummarySchema, required=True)


class ResponsivenessSchema(ResponsivenessFiguresSchema):
    from_ = UtcDateTime(data_key="from", attribute="from", required=True)
    to = UtcDateTime(allow_none=True)
    target_hours = f.Float(required=True)
    by_venue = f.List(f.Nested(VenueResponsivenessSchema), required=True)
    by_offer = f.List(
        f.Nested(OfferRatingSchema),
        required=True,
        metadata={"description": "Ratings of visits that unlocked each offer"},
    )
    benchmarks = f.Dict(
        required=True,
        metadata={
            "description": "facebook_very_responsive (7 days: response rate >= 0.9 and mean "
            "first response <= 15 min: `meets`) and yelp_response_time (30 days: the median "
            "first response), over windows ending now"
        },
    )
