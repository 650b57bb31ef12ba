"""Wallet passes signed with a throwaway test CA: the `.pkpass` signature verifies with
`openssl smime -verify`, the Google JWT with its public key; the pass shows the offer, the venue,
the expiry and the code in the till's QR format; without settings 503, never a broken pass."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient

from mobile_stub.client import Client
from tests.factories import offer_body, venue_body


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(
    subject: str, key: rsa.RSAPrivateKey, issuer: x509.Certificate | None, signer: Any, ca: bool
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def _pem(path: Path, obj: Any) -> str:
    if isinstance(obj, rsa.RSAPrivateKey):
        data = obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    else:
        data = obj.public_bytes(serialization.Encoding.PEM)
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def signing(app: Flask, tmp_path: Path) -> dict[str, Any]:
    """A throwaway root CA (standing in for Apple's chain), a pass certificate it issued, and a
    Google service account key, set as the app's wallet settings."""
    root_key, pass_key, google_key = _key(), _key(), _key()
    root = _cert("Test Root CA", root_key, None, root_key, ca=True)
    wwdr_key = _key()
    wwdr = _cert("Test WWDR", wwdr_key, root, root_key, ca=True)
    cert = _cert("Pass Type ID: pass.test.offers", pass_key, wwdr, wwdr_key, ca=False)
    app.config.update(
        APPLE_PASS_TYPE_ID="pass.test.offers",
        APPLE_TEAM_ID="TEAM123456",
        APPLE_PASS_CERT_FILE=_pem(tmp_path / "pass.pem", cert),
        APPLE_PASS_KEY_FILE=_pem(tmp_path / "pass.key", pass_key),
        APPLE_WWDR_CERT_FILE=_pem(tmp_path / "wwdr.pem", wwdr),
        GOOGLE_WALLET_ISSUER_ID="3388000000012345678",
        GOOGLE_WALLET_SERVICE_ACCOUNT="wallet@test.iam.gserviceaccount.com",
        GOOGLE_WALLET_KEY_FILE=_pem(tmp_path / "google.key", google_key),
    )
    return {"root": _pem(tmp_path / "root.pem", root), "google_public": google_key.public_key()}


@pytest.fixture
def unlocked(owner: Client, mobile: Client) -> dict[str, Any]:
    venue = owner.create_venue(venue_body(name="Cafe Aalto"))
    owner.activate_offer(owner.create_offer(offer_body([venue["id"]], title="Free coffee"))["id"])
    lon, lat = venue["location"]["coordinates"]
    checkin = mobile.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())
    return {"venue": venue, **checkin["unlocks"][0]}


def _get(client: FlaskClient, mobile: Client, path: str) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {mobile.token}"})


def test_an_apple_pass_shows_the_code_and_its_signature_verifies_with_openssl(
    client: FlaskClient,
    mobile: Client,
    signing: dict[str, Any],
    unlocked: dict[str, Any],
    tmp_path: Path,
) -> None:
    answer = _get(client, mobile, f"/v1/me/unlocks/{unlocked['id']}/apple-pass")
    assert answer.status_code == 200
    assert answer.mimetype == "application/vnd.apple.pkpass"
    files = zipfile.ZipFile(io.BytesIO(answer.data))
    assert set(files.namelist()) == {
        "pass.json",
        "icon.png",
        "icon@2x.png",
        "manifest.json",
        "signature",
    }
    manifest = json.loads(files.read("manifest.json"))
    for name, digest in manifest.items():
        assert hashlib.sha1(files.read(name)).hexdigest() == digest
    card = json.loads(files.read("pass.json"))
    assert card["serialNumber"] == unlocked["id"]
    assert card["barcodes"][0]["message"] == unlocked["qr_payload"]  # the till's format
    assert card["barcodes"][0]["altText"] == unlocked["code"]
    assert card["coupon"]["primaryFields"][0]["value"] == "Free coffee"
    assert card["coupon"]["secondaryFields"][0]["value"] == "Cafe Aalto"
    expires = datetime.fromisoformat(card["expirationDate"])
    assert expires == datetime.fromisoformat(unlocked["expires_at"])

    (tmp_path / "manifest.json").write_bytes(files.read("manifest.json"))
    (tmp_path / "signature").write_bytes(files.read("signature"))
    verified = _smime_verify(tmp_path, signing["root"])
    assert verified.returncode == 0, verified.stderr
    assert "Verification successful" in verified.stderr
    # a changed manifest no longer verifies
    (tmp_path / "manifest.json").write_bytes(files.read("manifest.json").replace(b"0", b"1", 1))
    tampered = _smime_verify(tmp_path, signing["root"])
    assert tampered.returncode != 0


def test_a_google_pass_link_is_a_jwt_that_verifies_with_the_public_key(
    client: FlaskClient, mobile: Client, signing: dict[str, Any], unlocked: dict[str, Any]
) -> None:
    answer = _get(client, mobile, f"/v1/me/unlocks/{unlocked['id']}/google-pass")
    assert answer.status_code == 200
    url = answer.get_json()["url"]
    assert url.startswith("https://pay.google.com/gp/v/save/")
    header, claims, signature = url.rsplit("/", 1)[1].split(".")

    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    signing["google_public"].verify(
        decode(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert json.loads(decode(header)) == {"alg": "RS256", "typ": "JWT"}
    body = json.loads(decode(claims))
    assert body["aud"] == "google" and body["typ"] == "savetowallet"
    assert body["iss"] == "wallet@test.iam.gserviceaccount.com"
    (offer,) = body["payload"]["offerObjects"]
    assert offer["id"] == f"3388000000012345678.{unlocked['id']}"
    assert offer["barcode"] == {
        "type": "QR_CODE",
        "value": unlocked["qr_payload"],
        "alternateText": unlocked["code"],
    }
    texts = {m["id"]: m["body"] for m in offer["textModulesData"]}
    assert texts == {"offer": "Free coffee", "venue": "Cafe Aalto"}


def test_without_settings_503_and_for_a_spent_or_foreign_code_no_pass(
    app: Flask,
    client: FlaskClient,
    api: Client,
    owner: Client,
    mobile: Client,
    unlocked: dict[str, Any],
) -> None:
    for kind in ("apple-pass", "google-pass"):
        answer = _get(client, mobile, f"/v1/me/unlocks/{unlocked['id']}/{kind}")
        assert answer.status_code == 503
        assert answer.get_json()["code"] == "wallet_not_configured"
    stranger = api.with_token(api.create_user("stranger", "correct horse")["token"])
    for kind in ("apple-pass", "google-pass"):
        answer = _get(client, stranger, f"/v1/me/unlocks/{unlocked['id']}/{kind}")
        assert answer.status_code == 404
    owner.redeem(unlocked["code"], unlocked["venue"]["id"])
    for kind in ("apple-pass", "google-pass"):
        answer = _get(client, mobile, f"/v1/me/unlocks/{unlocked['id']}/{kind}")
        assert answer.status_code == 410
        assert answer.get_json()["code"] == "unlock_not_active"


def _smime_verify(folder: Path, ca_file: str) -> subprocess.CompletedProcess[str]:
    """`openssl smime -verify` of folder/signature (detached, DER) over folder/manifest.json."""
    return subprocess.run(
        [
            "openssl",
            "smime",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(folder / "signature"),
            "-content",
            str(folder / "manifest.json"),
            "-CAfile",
            ca_file,
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
