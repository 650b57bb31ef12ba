"""Bearer secrets (API keys, user tokens) and passwords.

A secret looks like `<prefix>_<lookup>_<secret>`: `lookup` (public, 12 chars) finds the row, and
the SHA-256 of `secret` (32 random bytes) is compared in constant time with the stored hash. The
secret itself is never stored. Passwords use Argon2id (memory-hard, salted).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash of a random password: checking an unknown handle against it costs the same as a real
    check, so a wrong handle and a wrong password take the same time."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class NewSecret:
    token: str
    lookup: str
    secret_hash: bytes


def new_secret(prefix: str) -> NewSecret:
    lookup = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewSecret(f"{prefix}_{lookup}_{secret}", lookup, _digest(secret))


def split_token(token: str, prefix: str) -> tuple[str, str] | None:
    """The (lookup, secret) parts of a well-formed token of this kind, or None."""
    # Printable ASCII only: a token is matched against text columns, which cannot hold a NUL
    # (psycopg2 raises), and nothing we issue has anything else in it.
    if not (token.isascii() and token.isprintable()):
        return None
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != prefix or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: bytes | None) -> bool:
    """Constant-time comparison; a missing row still costs one comparison."""
    expected = stored_hash if stored_hash is not None else b"\0" * 32
    return hmac.compare_digest(_digest(secret), expected) and stored_hash is not None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password: str, stored_hash: str | None) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False
