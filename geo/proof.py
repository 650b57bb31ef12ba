"""Proof levels: how strongly a check-in proved the user was at the venue.

From weakest to strongest: `gps` (a location fix only: the phone's word), `presence_code` (the
rotating code shown at the venue), `nfc_tap` (a verified SUN message of the venue's NTAG 424 DNA
tag, geo/sun.py) and `staff` (the merchant's staff recorded the visit in person). An offer's
`min_proof` is one of the first three; a proof satisfies every level at or below its own, so
`staff` satisfies all and `nfc_tap` satisfies `presence_code`. The names are a public HTTP
contract: never rename them.
"""

from __future__ import annotations

from typing import Final

GPS: Final = "gps"
PRESENCE_CODE: Final = "presence_code"
NFC_TAP: Final = "nfc_tap"
STAFF: Final = "staff"
# Every proof, weakest first.
PROOFS: Final = (GPS, PRESENCE_CODE, NFC_TAP, STAFF)
# What an offer may require (staff is a way to satisfy them, not a requirement).
MIN_PROOFS: Final = (GPS, PRESENCE_CODE, NFC_TAP)
DEFAULT_MIN_PROOF: Final = GPS

_RANK = {proof: rank for rank, proof in enumerate(PROOFS)}

# What the app can show the user when an offer needs a stronger proof than the check-in carried.
HINTS: Final = {
    PRESENCE_CODE: "scan or type the code shown at the venue",
    NFC_TAP: "tap the tag at the counter",
}


def satisfies(proof: str, min_proof: str) -> bool:
    """Whether a check-in carrying `proof` meets an offer's `min_proof`."""
    return _RANK[proof] >= _RANK[min_proof]


def strongest(*proofs: str) -> str:
    return max(proofs, key=_RANK.__getitem__)


def effective_min_proof(min_proof: str, requires_presence_code: bool) -> str:
    """An offer's level, honouring the older `requires_presence_code` flag too."""
    return strongest(min_proof, PRESENCE_CODE) if requires_presence_code else min_proof
