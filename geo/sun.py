"""Secure Unique NFC (SUN) messages of NXP NTAG 424 DNA tags, verified as NXP AN12196 specifies.

A tag programmed for SUN rewrites its URL on every read with two mirrored values:

- `picc_data`: AES-128-CBC with a zero IV, under the tag's SDM meta read key, of one block: the
  PICC data tag byte (0xC7: UID and read counter mirrored, 7-byte UID), the 7-byte UID, the 3-byte
  little-endian SDM read counter, and 5 bytes of padding the tag fills as it likes;
- `cmac`: the SDM MAC. The session MAC key is AES-CMAC, under the SDM file read key, of
  SV2 = 3C C3 00 01 00 80 || UID || counter (little-endian); the MAC is AES-CMAC under that
  session key of the mirrored file data between the MAC input offset and the MAC, which for the
  plain SUN URL (no mirrored file data, MAC input offset = MAC offset) is the empty input; the
  8 odd-indexed bytes of the 16-byte CMAC (1, 3, ..., 15) are the 8 bytes sent.

Everything here is a pure function over bytes: AES and CMAC come from the `cryptography`
package (no hand-written cipher), the comparison of MACs is constant-time, and every failure is
one `SunError` whose `reason` says which check failed (for the leak report; callers answer the
same `tap_invalid` whatever it is, so an attacker learns nothing from the answer).

The keys are not stored: they are derived from the service's master key (setting
`NFC_MASTER_KEY`, kept outside the database) with HKDF-SHA256 (RFC 5869). The SDM meta read key,
which only hides the UID and counter, is one for the whole service, so a message says by itself
which tag sent it (the UID inside `picc_data`); the SDM file read key, which makes the MAC that
cannot be forged, is the tag's or card's own, from its row id. docs/presence.md explains why.
"""

from __future__ import annotations

import hmac
import re
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 16
UID_BYTES = 7
COUNTER_BYTES = 3
MAX_COUNTER = (1 << (8 * COUNTER_BYTES)) - 1
PICC_DATA_HEX = 32  # one AES block
CMAC_HEX = 16  # eight bytes
# PICCDataTag: bit 7 UID mirrored, bit 6 SDMReadCtr mirrored, bits 3..0 the UID's length (7).
PICC_DATA_TAG = 0xC7
# The constant part of the session vector SV2 for the SDM file read MAC key (AN12196, 3.3).
_SV2_PREFIX = bytes.fromhex("3CC300010080")
_ZERO_IV = bytes(16)
_HEX = re.compile(r"[0-9A-Fa-f]*")

# What the keys are derived for: a venue's tag or a user's card never share a key, even with
# equal row ids (they never are: ids are random UUIDs).
TAG = "tag"
CARD = "card"
KINDS = (TAG, CARD)

# Why a message was refused (kept for the leak report, never shown to the caller).
MALFORMED = "malformed"
WRONG_TAG_BYTE = "wrong_tag_byte"
WRONG_UID = "wrong_uid"
BAD_MAC = "bad_mac"


class SunError(Exception):
    """The message is not one the tag made with these keys."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TagKeys:
    """The two application keys a tag's SDM uses (AES-128)."""

    sdm_meta_read_key: bytes
    sdm_file_read_key: bytes


@dataclass(frozen=True)
class PiccData:
    """What `picc_data` decrypts to."""

    uid: bytes  # 7 bytes
    counter: int  # the SDM read counter, 0 .. 2**24 - 1


@dataclass(frozen=True)
class SunMessage:
    """A verified read: the tag's UID and its read counter at that read."""

    uid: bytes
    counter: int


def meta_read_key(master_key: bytes) -> bytes:
    """The service's SDM meta read key, shared by every tag and card: with it the server reads
    which tag a message comes from (its UID) before it knows that tag's own key."""
    return _hkdf(master_key, None, "checkin-offers ntag424 sdm meta read v1")


def derive_keys(master_key: bytes, kind: str, object_id: uuid.UUID) -> TagKeys:
    """The SDM keys of one tag or card: the service's meta read key, and a file read key of its
    own from HKDF-SHA256 with the row id as salt and the kind as info. A re-registered tag gets a
    new row id and so a new MAC key: a deleted registration's taps can never verify again, even
    if the tag was not reprogrammed."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    file_read = _hkdf(master_key, object_id.bytes, f"checkin-offers ntag424 sdm {kind} file v1")
    return TagKeys(meta_read_key(master_key), file_read)


def _hkdf(master_key: bytes, salt: bytes | None, info: str) -> bytes:
    if len(master_key) < KEY_BYTES:
        raise ValueError("the master key must be at least 16 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info.encode()).derive(
        master_key
    )


def read_picc_data(meta_key: bytes, picc_data_hex: str) -> PiccData:
    """The UID and counter a message claims (not yet verified: its MAC says whether the tag
    made it); `SunError` for anything that is not a well-formed message under this key."""
    return decrypt_picc_data(meta_key, _hex(picc_data_hex, PICC_DATA_HEX))


def parse_uid(text: str) -> bytes:
    """A UID as 14 hex digits (any case, optional colons or spaces between bytes)."""
    cleaned = re.sub(r"[\s:]", "", text)
    if len(cleaned) != 2 * UID_BYTES or not _HEX.fullmatch(cleaned):
        raise ValueError("a UID is 7 bytes: 14 hex digits")
    return bytes.fromhex(cleaned)


def decrypt_picc_data(meta_read_key: bytes, picc_data: bytes) -> PiccData:
    """Decrypt `picc_data` (AES-128-CBC, zero IV) and read the tag byte, UID and counter."""
    if len(picc_data) != 16:
        raise SunError(MALFORMED)
    decryptor = Cipher(algorithms.AES(meta_read_key), modes.CBC(_ZERO_IV)).decryptor()
    plain = decryptor.update(picc_data) + decryptor.finalize()
    if plain[0] != PICC_DATA_TAG:
        raise SunError(WRONG_TAG_BYTE)
    uid = plain[1 : 1 + UID_BYTES]
    counter = int.from_bytes(plain[1 + UID_BYTES : 1 + UID_BYTES + COUNTER_BYTES], "little")
    return PiccData(uid, counter)


def session_mac_key(file_read_key: bytes, uid: bytes, counter: int) -> bytes:
    """KSesSDMFileReadMAC = AES-CMAC(SDM file read key, SV2)."""
    sv2 = _SV2_PREFIX + uid + counter.to_bytes(COUNTER_BYTES, "little")
    return _cmac(file_read_key, sv2)


def sdm_mac(file_read_key: bytes, uid: bytes, counter: int, mac_input: bytes = b"") -> bytes:
    """The 8 bytes a tag sends: the odd-indexed bytes of AES-CMAC(session key, mac_input)."""
    full = _cmac(session_mac_key(file_read_key, uid, counter), mac_input)
    return full[1::2]


def verify(keys: TagKeys, expected_uid: bytes, picc_data_hex: str, cmac_hex: str) -> SunMessage:
    """Verify one SUN message of the tag whose UID is `expected_uid`; raise `SunError` if the
    message is malformed, not from that tag, or its MAC does not match."""
    picc_data = _hex(picc_data_hex, PICC_DATA_HEX)
    mac = _hex(cmac_hex, CMAC_HEX)
    picc = decrypt_picc_data(keys.sdm_meta_read_key, picc_data)
    expected = sdm_mac(keys.sdm_file_read_key, picc.uid, picc.counter)
    # Both checks always run, so a wrong UID and a wrong MAC take the same time.
    mac_ok = hmac.compare_digest(expected, mac)
    uid_ok = hmac.compare_digest(picc.uid, expected_uid)
    if not uid_ok:
        raise SunError(WRONG_UID)
    if not mac_ok:
        raise SunError(BAD_MAC)
    return SunMessage(picc.uid, picc.counter)


def _hex(text: str, length: int) -> bytes:
    if len(text) != length or not _HEX.fullmatch(text):
        raise SunError(MALFORMED)
    return bytes.fromhex(text)


def _cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()
