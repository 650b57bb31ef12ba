"""Unlock codes that a person reads aloud or types at a till.

A code is 10 random Crockford base32 symbols (50 bits, far more than the 40 bits needed to make
guessing hopeless) plus Crockford's mod-37 check symbol. Crockford's alphabet leaves out I, L, O
and U, so nothing is ambiguous when read aloud, and the check symbol (37 is prime) catches every
single mistyped symbol and every swap of two neighbouring symbols before the database is asked.

The canonical form (what is stored and compared) is 11 uppercase symbols without separators,
e.g. ``7K3QXM9T2RK``; `format_code` gives the display form ``7K3Q-XM9T-2RK`` and `normalize`
turns whatever a person typed back into the canonical form, or None.
"""

from __future__ import annotations

import secrets

#: Crockford's base32 alphabet: the value of a symbol is its index.
SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Crockford's check alphabet: base32 plus five extra symbols for the values 32..36.
CHECK_SYMBOLS = SYMBOLS + "*~$=U"
DATA_LENGTH = 10  # 10 symbols x 5 bits = 50 bits of entropy
CODE_LENGTH = DATA_LENGTH + 1
GROUP = 4
QR_PREFIX = "CHECKIN-OFFERS:"
#: Longer raw input is rejected before any work: a formatted code is 13 characters, so this leaves
#: room for stray spaces but not for a 10 kB paste.
MAX_RAW_LENGTH = 64

_DATA_VALUES = {symbol: value for value, symbol in enumerate(SYMBOLS)}
_CHECK_VALUES = {symbol: value for value, symbol in enumerate(CHECK_SYMBOLS)}
# Separators people type: dashes, including the typographic ones phone keyboards substitute.
_DASHES = str.maketrans(dict.fromkeys("-\u2010\u2011\u2012\u2013\u2014\u2212"))
# Crockford's decoding rules: I and L read as 1, O as 0.
_CONFUSABLES = str.maketrans({"I": "1", "L": "1", "O": "0"})
# Check values whose symbol is punctuation (* ~ $ =) are never issued: they are awkward to read
# aloud and to type on a till, and ~ and = are outside the QR alphanumeric character set.
ISSUED_CHECK_VALUES = frozenset(range(32)) | {CHECK_SYMBOLS.index("U")}


def _value(data: str) -> int:
    value = 0
    for symbol in data:
        value = value * 32 + _DATA_VALUES[symbol]
    return value


def _check_symbol(data: str) -> str:
    return CHECK_SYMBOLS[_value(data) % 37]


def new_code() -> str:
    """A fresh random code in canonical form (from `secrets`: codes unlock real value).

    Draws whose check symbol would be punctuation are redrawn, which keeps every issued code
    alphanumeric at a cost of 0.17 bits (49.8 bits of entropy remain).
    """
    while True:
        value = secrets.randbits(5 * DATA_LENGTH)
        if value % 37 in ISSUED_CHECK_VALUES:
            break
    data = "".join(SYMBOLS[(value >> shift) & 31] for shift in range(5 * DATA_LENGTH - 5, -1, -5))
    return data + CHECK_SYMBOLS[value % 37]


def normalize(raw: str) -> str | None:
    """The canonical form of a code as a person typed it, or None if it is not a valid code.

    Case, whitespace and dashes are ignored and Crockford's confusables (I, L -> 1; O -> 0) are
    mapped, so a till never rejects a code for how it was typed; the check symbol must match, so a
    typo is reported at once instead of looking like an unknown code.
    """
    code = clean(raw)
    if code is None or len(code) != CODE_LENGTH:
        return None
    data, check = code[:DATA_LENGTH], code[DATA_LENGTH]
    if any(symbol not in _DATA_VALUES for symbol in data) or check not in _CHECK_VALUES:
        return None
    if _check_symbol(data) != check:
        return None
    return code


def clean(raw: str) -> str | None:
    """What a person typed, without case, spaces or dashes, with Crockford's confusables mapped
    (I, L -> 1; O -> 0); None for anything too long or not ASCII. The alphabet is the caller's
    to check: unlock codes (`normalize`) and till pairing codes (offers/devices.py) share this."""
    if len(raw) > MAX_RAW_LENGTH:
        return None
    code = "".join(raw.split()).translate(_DASHES)
    # ASCII before upper(): "ß".upper() is "SS" and the dotless i's upper() is "I"; neither may pass.
    if not code.isascii():
        return None
    return code.upper().translate(_CONFUSABLES)


def random_symbols(length: int) -> str:
    """`length` random symbols of the alphabet (from `secrets`), e.g. a till pairing code."""
    return "".join(secrets.choice(SYMBOLS) for _ in range(length))


def _require_canonical(code: str) -> None:
    if normalize(code) != code:
        raise ValueError(f"not a canonical unlock code: {code[:MAX_RAW_LENGTH]!r}")


def format_code(code: str) -> str:
    """The display form, in dash-separated groups of 4 (``7K3Q-XM9T-2RK``): short groups are
    easier to read aloud and to copy, and `normalize` accepts this form back.

    Raises ValueError for anything but a canonical code: displaying garbage is a bug upstream.
    """
    _require_canonical(code)
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def qr_payload(code: str) -> str:
    """The text a QR code should encode for `code`: ``CHECKIN-OFFERS:7K3QXM9T2RK``.

    The prefix tells a scanner the text is one of our codes (not a URL or somebody else's code),
    and for every code `new_code` issues the whole payload is uppercase letters, digits, ``-`` and
    ``:``, all inside the QR alphanumeric mode's character set, which stores 5.5 bits per character
    instead of 8, so the symbol stays small and easy to scan. The code is the canonical form without dashes; a scanner
    strips the prefix and passes the rest to `normalize`.

    Raises ValueError for anything but a canonical code.
    """
    _require_canonical(code)
    return QR_PREFIX + code
