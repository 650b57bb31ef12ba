"""Unlock codes: read aloud, typed at a till, scanned from a QR code. Pure functions, no database."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offers.codes import (
    CHECK_SYMBOLS,
    CODE_LENGTH,
    DATA_LENGTH,
    MAX_RAW_LENGTH,
    QR_PREFIX,
    SYMBOLS,
    format_code,
    new_code,
    normalize,
    qr_payload,
)

CANONICAL = re.compile(r"[0-9A-HJKMNP-TV-Z]{10}[0-9A-HJKMNP-TV-Z*~$=U]")
# QR alphanumeric mode: 0-9, A-Z, space and $ % * + - . / :
QR_ALPHANUMERIC = re.compile(r"[0-9A-Z $%*+\-./:]+")


def check_symbol(data: str) -> str:
    """Crockford's mod-37 check symbol, computed independently of the module under test."""
    return CHECK_SYMBOLS[int("".join(f"{SYMBOLS.index(c):05b}" for c in data), 2) % 37]


# A fixed code with a correct check symbol, for examples.
EXAMPLE = "7K3QXM9T2R" + check_symbol("7K3QXM9T2R")


def sample_codes(n: int, seed: int = 37) -> list[str]:
    """Deterministic valid codes over the whole check alphabet (new_code never issues * ~ $ =)."""
    rng = random.Random(seed)
    codes = []
    for _ in range(n):
        data = "".join(rng.choice(SYMBOLS) for _ in range(DATA_LENGTH))
        codes.append(data + check_symbol(data))
    return codes


def test_example_code() -> None:
    assert EXAMPLE == "7K3QXM9T2RK"
    assert format_code(EXAMPLE) == "7K3Q-XM9T-2RK"
    assert qr_payload(EXAMPLE) == "CHECKIN-OFFERS:7K3QXM9T2RK"


def test_new_code_is_canonical_with_a_correct_check_symbol() -> None:
    for _ in range(2000):
        code = new_code()
        assert CANONICAL.fullmatch(code), code
        assert code[-1] == check_symbol(code[:-1])
        assert normalize(code) == code


def test_new_code_never_issues_punctuation_check_symbols() -> None:
    # 4 of 37 check values are * ~ $ =; over 5000 codes one would show up ~540 times.
    assert not any(new_code()[-1] in "*~$=" for _ in range(5000))


def test_new_code_uses_every_symbol_in_every_data_position() -> None:
    codes = [new_code() for _ in range(3000)]
    for position in range(DATA_LENGTH):
        assert {code[position] for code in codes} == set(SYMBOLS), position


def test_100k_codes_are_unique() -> None:
    codes = [new_code() for _ in range(100_000)]
    assert len(set(codes)) == len(codes)


def test_round_trips() -> None:
    for code in [*sample_codes(300), *(new_code() for _ in range(300))]:
        shown = format_code(code)
        assert shown.replace("-", "") == code
        assert [len(group) for group in shown.split("-")] == [4, 4, 3]
        assert normalize(shown) == code
        assert normalize(code) == code
        payload = qr_payload(code)
        assert payload.startswith(QR_PREFIX)
        assert normalize(payload.removeprefix(QR_PREFIX)) == code


def test_qr_payload_of_issued_codes_fits_alphanumeric_mode() -> None:
    for _ in range(2000):
        assert QR_ALPHANUMERIC.fullmatch(qr_payload(new_code()))


@pytest.mark.parametrize(
    "typed",
    [
        "7K3QXM9T2RK",
        "7k3qxm9t2rk",
        "7K3Q-XM9T-2RK",
        "7k3q-xm9t-2rk",
        "7K3Q XM9T 2RK",
        "  7K3Q  XM9T\t2RK \n",
        "7-K-3-Q-X-M-9-T-2-R-K",
        "7K3Q\u2013XM9T\u20142RK",  # en and em dashes from a phone keyboard
        "7K3Q\u00a0XM9T\u20072RK",  # non-breaking spaces from a copy and paste
    ],
)
def test_normalize_ignores_case_spaces_and_dashes(typed: str) -> None:
    assert normalize(typed) == EXAMPLE


def test_normalize_maps_confusables() -> None:
    data = "1A0B1C0D1E"
    code = data + check_symbol(data)
    for typed in ("IA0B1C0D1E", "lAOBiCoDLE", "iaobicodle", "LA0B-ICOD-IE"):
        assert normalize(typed + code[-1]) == code, typed


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "-",
        "   ",
        "7K3QXM9T2R",  # check symbol missing
        "7K3QXM9T2RKK",  # one symbol too many
        "7K3QXM9T2RX",  # wrong check symbol
        "7K3QXM9T2UK",  # U is only a check symbol
        "7K3QXM9T*RK",  # so is *
        "7K3Q_XM9T_2RK",  # unknown separator
        "7K3Q.XM9T.2RK",
        "CHECKIN-OFFERS:7K3QXM9T2RK",  # a QR payload is not a typed code
        "7K3QXM9T2R\u212a",  # Kelvin sign, not K
        "7K3QXM9T2\u00dfK",  # "ß".upper() == "SS"
        "\u0131K3QXM9T2RK",  # dotless i, which upper() turns into "I"
        "7K3QXM9T2R\x00",
        "7K3QXM9T2RK" + " " * MAX_RAW_LENGTH,  # over the cap, even if it would strip to a code
        "7" * 10_000,
        "7K3Q-XM9T-2RK" * 800,
    ],
)
def test_normalize_rejects_malformed_input(typed: str) -> None:
    assert normalize(typed) is None


def test_format_code_and_qr_payload_refuse_non_canonical_codes() -> None:
    for bad in ("7k3qxm9t2rk", "7K3Q-XM9T-2RK", "7K3QXM9T2RX", ""):
        with pytest.raises(ValueError):
            format_code(bad)
        with pytest.raises(ValueError):
            qr_payload(bad)


def test_every_single_symbol_substitution_is_rejected() -> None:
    for code in sample_codes(300):
        for position in range(CODE_LENGTH):
            alphabet = SYMBOLS if position < DATA_LENGTH else CHECK_SYMBOLS
            for symbol in alphabet:
                if symbol != code[position]:
                    typo = code[:position] + symbol + code[position + 1 :]
                    assert normalize(typo) is None, (code, typo)


def test_every_adjacent_transposition_is_rejected() -> None:
    # Including the swap of the last data symbol with the check symbol.
    for code in sample_codes(300, seed=73):
        for position in range(CODE_LENGTH - 1):
            a, b = code[position], code[position + 1]
            if a != b:
                typo = code[:position] + b + a + code[position + 2 :]
                assert normalize(typo) is None, (code, typo)


codes = st.text(alphabet=SYMBOLS, min_size=DATA_LENGTH, max_size=DATA_LENGTH).map(
    lambda data: data + check_symbol(data)
)


@given(codes)
def test_normalize_inverts_format_code(code: str) -> None:
    assert normalize(format_code(code)) == code
    assert normalize(format_code(code).lower()) == code


@given(st.text(max_size=200))
def test_normalize_never_raises_on_random_text(raw: str) -> None:
    result = normalize(raw)
    assert result is None or CANONICAL.fullmatch(result)


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz*~$=- "))
def test_normalize_of_code_like_text_is_canonical_or_none(raw: str) -> None:
    result = normalize(raw)
    if result is not None:
        assert CANONICAL.fullmatch(result)
        assert result[-1] == check_symbol(result[:-1])
