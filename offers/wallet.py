"""Wallet passes for an unlocked code: Apple Wallet (`.pkpass`) and Google Wallet ("save to
wallet" link), built from the unlock as the user's wallet shows it (docs/integrations.md).

- Apple: a zip of `pass.json` (a coupon: the offer, the venue, the expiry, and the code as a
  QR barcode holding `offers.codes.qr_payload`, the till's format), `icon.png`, `manifest.json`
  (SHA-1 of each file, as Apple requires) and `signature`, a detached PKCS#7 signature of the
  manifest made with `cryptography` by the pass type certificate, carrying Apple's WWDR
  intermediate certificate.
- Google: a JWT (RS256, signed with the issuer's service account key) of an `offerObject`, put
  in `https://pay.google.com/gp/v/save/<jwt>`.

Certificates and keys are settings (`api/config.py`); without them the API answers 503
`wallet_not_configured`, never a pass that cannot verify.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.errors import DomainError, NotFoundError
from core.uow import execute
from offers import codes
from offers.redemptions import UNLOCK_STATUS_SQL

GOOGLE_SAVE_URL = "https://pay.google.com/gp/v/save/"


class WalletNotConfiguredError(DomainError):
    status = 503
    code = "wallet_not_configured"
    title = "Wallet passes are not configured"


class UnlockNotActiveError(DomainError):
    status = 410
    code = "unlock_not_active"
    title = "Code no longer valid"


@dataclass(frozen=True)
class PassData:
    unlock_id: uuid.UUID
    code: str
    title: str
    venue_name: str
    merchant_name: str
    lat: float
    lon: float
    expires_at: datetime
    status: str


_UNLOCK = text(
    f"""
    SELECT u.id, u.code, u.expires_at, {UNLOCK_STATUS_SQL} AS status, o.title,
           v.name AS venue_name, m.name AS merchant_name,
           ST_Y(v.location::geometry) AS lat, ST_X(v.location::geometry) AS lon
    FROM unlocks u
    JOIN offers o ON o.id = u.offer_id
    JOIN venues v ON v.id = u.venue_id
    JOIN merchants m ON m.id = u.merchant_id
    WHERE u.id = :id AND u.user_id = :user_id
    """
)


def pass_data(session: Session, user_id: uuid.UUID, unlock_id: uuid.UUID) -> PassData:
    """The user's own unlock, still active: a pass is never made for a spent or expired code."""
    row = execute(session, _UNLOCK, {"id": unlock_id, "user_id": user_id}).one_or_none()
    if row is None:
        raise NotFoundError("no such unlock")
    if row.status != "active":
        raise UnlockNotActiveError(f"this code is {row.status}: no pass is made for it")
    return PassData(
        row.id,
        row.code,
        row.title,
        row.venue_name,
        row.merchant_name,
        float(row.lat),
        float(row.lon),
        row.expires_at,
        row.status,
    )


# ---- Apple Wallet ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AppleSigner:
    pass_type_id: str
    team_id: str
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    wwdr: x509.Certificate

    @classmethod
    def from_pem(
        cls, pass_type_id: str, team_id: str, cert_pem: bytes, key_pem: bytes, wwdr_pem: bytes
    ) -> AppleSigner:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the pass type key must be an RSA key")
        return cls(
            pass_type_id,
            team_id,
            x509.load_pem_x509_certificate(cert_pem),
            key,
            x509.load_pem_x509_certificate(wwdr_pem),
        )


def _png(size: int = 29, rgb: tuple[int, int, int] = (0x1F, 0x6F, 0xEB)) -> bytes:
    """A plain square PNG (Apple requires an icon.png in every pass)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * size
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def apple_pass_json(data: PassData, signer: AppleSigner) -> dict[str, Any]:
    shown = codes.format_code(data.code)
    return {
        "formatVersion": 1,
        "passTypeIdentifier": signer.pass_type_id,
        "teamIdentifier": signer.team_id,
        "serialNumber": str(data.unlock_id),
        "organizationName": data.merchant_name,
        "description": data.title,
        "logoText": data.merchant_name,
        "expirationDate": data.expires_at.isoformat(),
        "relevantDate": data.expires_at.isoformat(),
        "locations": [{"latitude": data.lat, "longitude": data.lon}],
        "barcodes": [
            {
                "format": "PKBarcodeFormatQR",
                "message": codes.qr_payload(data.code),
                "messageEncoding": "iso-8859-1",
                "altText": shown,
            }
        ],
        "coupon": {
            "primaryFields": [{"key": "offer", "label": "Offer", "value": data.title}],
            "secondaryFields": [{"key": "venue", "label": "Venue", "value": data.venue_name}],
            "auxiliaryFields": [
                {
                    "key": "expires",
                    "label": "Expires",
                    "value": data.expires_at.isoformat(),
                    "dateStyle": "PKDateStyleMedium",
                    "timeStyle": "PKDateStyleShort",
                },
                {"key": "code", "label": "Code", "value": shown},
            ],
        },
    }


def apple_pass(data: PassData, signer: AppleSigner) -> bytes:
    """The `.pkpass` file (a zip): pass.json, icon.png, manifest.json, signature."""
    files = {
        "pass.json": json.dumps(apple_pass_json(data, signer), ensure_ascii=False).encode(),
        "icon.png": _png(29),
        "icon@2x.png": _png(58),
    }
    manifest = json.dumps(
        {name: hashlib.sha1(content).hexdigest() for name, content in files.items()},
        sort_keys=True,
    ).encode()
    signature = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(manifest)
        .add_signer(signer.certificate, signer.key, hashes.SHA256())
        .add_certificate(signer.wwdr)
        .sign(
            serialization.Encoding.DER,
            [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
        )
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(name, content)
        z.writestr("manifest.json", manifest)
        z.writestr("signature", signature)
    return out.getvalue()


# ---- Google Wallet --------------------------------------------------------------------------


@dataclass(frozen=True)
class GoogleSigner:
    issuer_id: str
    service_account_email: str
    key: rsa.RSAPrivateKey

    @classmethod
    def from_pem(cls, issuer_id: str, email: str, key_pem: bytes) -> GoogleSigner:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the Google Wallet service account key must be an RSA key")
        return cls(issuer_id, email, key)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def google_claims(data: PassData, signer: GoogleSigner, now: datetime) -> dict[str, Any]:
    shown = codes.format_code(data.code)
    return {
        "iss": signer.service_account_email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": int(now.timestamp()),
        "origins": [],
        "payload": {
            "offerObjects": [
                {
                    "id": f"{signer.issuer_id}.{data.unlock_id}",
                    "classId": f"{signer.issuer_id}.checkin-offers",
                    "state": "ACTIVE",
                    "barcode": {
                        "type": "QR_CODE",
                        "value": codes.qr_payload(data.code),
                        "alternateText": shown,
                    },
                    "validTimeInterval": {"end": {"date": data.expires_at.isoformat()}},
                    "locations": [{"latitude": data.lat, "longitude": data.lon}],
                    "textModulesData": [
                        {"id": "offer", "header": "Offer", "body": data.title},
                        {"id": "venue", "header": "Venue", "body": data.venue_name},
                    ],
                }
            ]
        },
    }


def google_save_url(data: PassData, signer: GoogleSigner, now: datetime) -> str:
    """The "save to Google Wallet" link: a JWT (RS256) of the offer object."""
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    claims = _b64url(json.dumps(google_claims(data, signer, now)).encode())
    signing_input = f"{header}.{claims}".encode()
    signature = signer.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{GOOGLE_SAVE_URL}{header}.{claims}.{_b64url(signature)}"
