"""A software NXP NTAG 424 DNA, as a venue's tag or a guest's card: what the phone (or the till's
reader) gets when it reads one.

Programmed like a real tag with the URL template and the two SDM keys the service answered at
registration, it mirrors on every read, as NXP AN12196 describes, `picc_data` (AES-128-CBC with a
zero IV under the SDM meta read key of 0xC7, the UID, the 3-byte little-endian read counter and
random padding) and `cmac` (the odd bytes of AES-CMAC over empty input under the session MAC key,
itself AES-CMAC under the SDM file read key of 3C C3 00 01 00 80 || UID || counter), after
incrementing its read counter. AES and CMAC come from the `cryptography` package; this module
imports nothing from the service (it is the tag's side of the protocol, written from the note).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

_PICC_DATA_TAG = 0xC7
_SV2_PREFIX = bytes.fromhex("3CC300010080")
_MAX_COUNTER = (1 << 24) - 1


def random_uid() -> str:
    """A UID as NXP's 7-byte UIDs look (0x04 is NXP's manufacturer byte), 14 hex digits."""
    return "04" + os.urandom(6).hex().upper()


def _cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


@dataclass
class SoftTag:
    """One tag: UID, keys, URL template and read counter (0 before the first read)."""

    uid: str
    sdm_meta_read_key: str = "00" * 16
    sdm_file_read_key: str = "00" * 16
    url_template: str = "https://example.invalid/tap?picc_data=" + "0" * 32 + "&cmac=" + "0" * 16
    counter: int = 0
    reads: list[str] = field(default_factory=list)

    @classmethod
    def programmed(cls, registered: dict[str, object], uid: str) -> SoftTag:
        """A blank tag programmed with what `register_nfc_tag` / `register_card` answered."""
        return cls(
            uid=uid,
            sdm_meta_read_key=str(registered["sdm_meta_read_key"]),
            sdm_file_read_key=str(registered["sdm_file_read_key"]),
            url_template=str(registered["url_template"]),
        )

    def read(self) -> str:
        """One read (a phone held to the tag): the URL with this read's SUN message."""
        if self.counter >= _MAX_COUNTER:
            raise RuntimeError("the tag's read counter is exhausted")
        self.counter += 1
        uid = bytes.fromhex(self.uid)
        ctr = self.counter.to_bytes(3, "little")
        plain = bytes([_PICC_DATA_TAG]) + uid + ctr + os.urandom(5)
        meta = bytes.fromhex(self.sdm_meta_read_key)
        encryptor = Cipher(algorithms.AES(meta), modes.CBC(bytes(16))).encryptor()
        picc = (encryptor.update(plain) + encryptor.finalize()).hex().upper()
        session = _cmac(bytes.fromhex(self.sdm_file_read_key), _SV2_PREFIX + uid + ctr)
        mac = _cmac(session, b"")[1::2].hex().upper()
        url = self.url_template.replace("picc_data=" + "0" * 32, "picc_data=" + picc).replace(
            "cmac=" + "0" * 16, "cmac=" + mac
        )
        self.reads.append(url)
        return url
