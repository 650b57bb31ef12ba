"""Accounts: merchant sign-up and API keys, user sign-up and tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import current_app, request
from flask.views import MethodView
from sqlalchemy import select

from api import audit, auth, db, openapi
from api.jsonbody import Blueprint
from api.observability import request_id
from api.schemas import (
    KeyCreatedSchema,
    KeyCreateSchema,
    KeyListSchema,
    KeySchema,
    LoginSchema,
    MerchantCreatedSchema,
    MerchantCreateSchema,
    MerchantSchema,
    StaffUserCreateSchema,
    StaffUserListSchema,
    StaffUserSchema,
    TokenSchema,
    UserCreatedSchema,
    UserCreateSchema,
)
from core import accounts
from core.audit import Actor
from core.errors import NotFoundError
from core.models import ApiKey, Merchant
from offers import abuse

blp = Blueprint("accounts", __name__, url_prefix="/v1", description="Merchants, API keys, users")


def _source() -> str:
    """The client's address (through `TRUSTED_PROXIES` proxies), as the sign-in throttle
    knows it."""
    return (request.remote_addr or "unknown")[:64]


def _token_ttl() -> timedelta:
    return timedelta(days=current_app.config["USER_TOKEN_TTL_DAYS"])


def _link(name: str, path: str, method: str, parameter: str) -> dict[str, Any]:
    """An OpenAPI link from a created object's `id` to the operation that takes it."""
    operation_id = openapi.OPERATIONS[f"{method.upper()} {path}"].id
    return {name: {"operationId": operation_id, "parameters": {parameter: "$response.body#/id"}}}


@blp.route("/merchants")
class Merchants(MethodView):
    @blp.arguments(MerchantCreateSchema())
    @blp.response(201, MerchantCreatedSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Sign up a merchant; answers an owner API key, shown only this once."""
        signup = Actor(None, None, request_id())  # no key acted yet
        merchant, _key, token = accounts.create_merchant(
            db.uow(), signup, data["name"], data["email"]
        )
        return {"merchant": merchant, "api_key": token}


@blp.route("/merchants/me")
class MerchantMe(MethodView):
    @auth.merchant("owner", "staff", "analyst")
    @blp.response(200, MerchantSchema)
    def get(self) -> Merchant:
        """The merchant the key belongs to."""
        merchant = db.session().get(Merchant, auth.current_merchant().merchant_id)
        if merchant is None:
            raise NotFoundError("no such merchant")
        return merchant


@blp.route("/merchants/me/keys")
class Keys(MethodView):
    @auth.merchant("owner")
    @blp.response(200, KeyListSchema)
    def get(self) -> dict[str, Any]:
        """The merchant's API keys (never their secrets)."""
        keys = db.session().scalars(
            select(ApiKey)
            .where(ApiKey.merchant_id == auth.current_merchant().merchant_id)
            .order_by(ApiKey.created_at, ApiKey.id)
        )
        return {"keys": list(keys)}

    @auth.merchant("owner")
    @blp.arguments(KeyCreateSchema())
    @blp.response(201, KeyCreatedSchema)
    @blp.doc(
        responses={
            201: {"links": _link("RevokeKey", "/v1/merchants/me/keys/{key_id}", "delete", "key_id")}
        }
    )
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a key with a role; its secret is shown only this once."""
        key, token = accounts.create_api_key(
            db.uow(),
            audit.current_actor(),
            auth.current_merchant().merchant_id,
            data["role"],
            data["label"],
        )
        return _key_created(key, token)


@blp.route("/merchants/me/keys/<uuid:key_id>")
class Key(MethodView):
    @auth.merchant("owner")
    @blp.response(200, KeySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def delete(self, key_id: uuid.UUID) -> ApiKey:
        """Revoke a key; it stops working at once. Revoking it again changes nothing. The
        merchant's last live owner key cannot be revoked: 409 `last_owner_key` (create another
        owner key first)."""
        key, _revoked = accounts.revoke_api_key(
            db.uow(), audit.current_actor(), auth.current_merchant().merchant_id, key_id
        )
        return key


@blp.route("/merchants/me/keys/<uuid:key_id>/rotate")
class KeyRotation(MethodView):
    @auth.merchant("owner")
    @blp.response(200, KeyCreatedSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, key_id: uuid.UUID) -> dict[str, Any]:
        """Rotate a key: a new secret for the same key (id, role, label), shown only this once.
        The old secret fails at once, this request's own included if it rotates itself. A
        revoked key: 409 `key_revoked`."""
        key, token = accounts.rotate_api_key(
            db.uow(), audit.current_actor(), auth.current_merchant().merchant_id, key_id
        )
        return _key_created(key, token)


def _key_created(key: ApiKey, token: str) -> dict[str, Any]:
    return {
        "id": key.id,
        "role": key.role,
        "label": key.label,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "api_key": token,
    }


@blp.route("/merchants/me/staff-users")
class StaffUsers(MethodView):
    @auth.merchant("owner")
    @blp.response(200, StaffUserListSchema)
    def get(self) -> dict[str, Any]:
        """The handles registered as the merchant's staff (never whether an account has one)."""
        return {
            "staff_users": abuse.list_staff_users(db.session(), auth.current_merchant().merchant_id)
        }

    @auth.merchant("owner")
    @blp.arguments(StaffUserCreateSchema())
    @blp.response(201, StaffUserSchema)
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(
        responses={
            201: {
                "links": _link(
                    "RemoveStaffUser",
                    "/v1/merchants/me/staff-users/{staff_user_id}",
                    "delete",
                    "staff_user_id",
                )
            }
        }
    )
    def post(self, data: dict[str, Any]) -> abuse.StaffUser:
        """Register a handle as the merchant's staff: the account with it, now or once it signs
        up, never unlocks the merchant's own offers (nor do check-ins from devices it used).
        The answer is the same whether an account has the handle or not, and never shows the
        account's id. Registered already (in any case): 409 `already_staff`."""
        return abuse.add_staff_user(
            db.uow(), audit.current_actor(), auth.current_merchant().merchant_id, data["handle"]
        )


@blp.route("/merchants/me/staff-users/<uuid:staff_user_id>")
class StaffUser(MethodView):
    @auth.merchant("owner")
    @blp.response(200, StaffUserSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, staff_user_id: uuid.UUID) -> abuse.StaffUser:
        """Unregister a staff handle; its account's past check-ins keep their record."""
        return abuse.remove_staff_user(
            db.uow(), audit.current_actor(), auth.current_merchant().merchant_id, staff_user_id
        )


@blp.route("/users")
class Users(MethodView):
    @blp.arguments(UserCreateSchema())
    @blp.response(201, UserCreatedSchema)
    @blp.alt_response(409, response="CONFLICT")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Sign up a mobile user; answers a token. A taken handle is 409 `handle_taken` and
        counts as a failed sign-in of that handle. Sign-ups and sign-ins share a budget per
        client address (429 `rate_limited`); a handle under the sign-in throttle is 429
        `too_many_attempts` with `Retry-After`."""
        user, token = accounts.create_user(
            db.uow(), data["handle"], data["password"], _token_ttl(), _source()
        )
        return {"user": user, "token": token}


@blp.route("/users/token")
class UserToken(MethodView):
    @blp.arguments(LoginSchema())
    @blp.response(200, TokenSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Sign in: a new token for a handle and password. Throttled: after 10 failed sign-ins
        of a handle within 15 minutes, addresses the handle has not signed in from are refused
        (429 `too_many_attempts`, with `Retry-After`) until the oldest failure is 15 minutes
        old, while addresses it signed in from in the last 30 days go on (5 failures each);
        sign-ins and sign-ups share a budget per client address (429 `rate_limited`)."""
        return {
            "token": accounts.login(
                db.uow(), data["handle"], data["password"], _token_ttl(), _source()
            )
        }
