"""Accounts: merchant sign-up and API keys, user sign-up and tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select, update

from api import auth, db
from api.schemas import (
    KeyCreatedSchema,
    KeyCreateSchema,
    KeyListSchema,
    KeySchema,
    LoginSchema,
    MerchantCreatedSchema,
    MerchantCreateSchema,
    MerchantSchema,
    TokenSchema,
    UserCreatedSchema,
    UserCreateSchema,
)
from core import accounts
from core.errors import NotFoundError
from core.models import ApiKey, Merchant

blp = Blueprint("accounts", __name__, url_prefix="/v1", description="Merchants, API keys, users")


def _token_ttl() -> timedelta:
    return timedelta(days=current_app.config["USER_TOKEN_TTL_DAYS"])


@blp.route("/merchants")
class Merchants(MethodView):
    @blp.arguments(MerchantCreateSchema)
    @blp.response(201, MerchantCreatedSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Sign up a merchant; answers an owner API key, shown only this once."""
        session = db.session()
        merchant, _key, token = accounts.create_merchant(session, data["name"], data["email"])
        session.commit()
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
    @blp.arguments(KeyCreateSchema)
    @blp.response(201, KeyCreatedSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a key with a role; its secret is shown only this once."""
        session = db.session()
        key, token = accounts.create_api_key(
            session, auth.current_merchant().merchant_id, data["role"], data["label"]
        )
        session.commit()
        return {
            "id": key.id,
            "role": key.role,
            "label": key.label,
            "created_at": key.created_at,
            "revoked_at": None,
            "api_key": token,
        }


@blp.route("/merchants/me/keys/<uuid:key_id>")
class Key(MethodView):
    @auth.merchant("owner")
    @blp.response(200, KeySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, key_id: uuid.UUID) -> ApiKey:
        """Revoke a key; it stops working at once."""
        session = db.session()
        key = session.scalar(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                ApiKey.merchant_id == auth.current_merchant().merchant_id,
            )
            .values(revoked_at=datetime.now(UTC))
            .returning(ApiKey)
        )
        if key is None:
            raise NotFoundError("no such key")
        session.commit()
        return key


@blp.route("/users")
class Users(MethodView):
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserCreatedSchema)
    @blp.alt_response(409, response="CONFLICT")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Sign up a mobile user; answers a token. A taken handle is 409 `handle_taken`."""
        session = db.session()
        user, token = accounts.create_user(session, data["handle"], data["password"], _token_ttl())
        session.commit()
        return {"user": user, "token": token}


@blp.route("/users/token")
class UserToken(MethodView):
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Sign in: a new token for a handle and password."""
        session = db.session()
        token = accounts.login(session, data["handle"], data["password"], _token_ttl())
        session.commit()
        return {"token": token}
