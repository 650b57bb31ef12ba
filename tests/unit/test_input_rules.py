"""The rules every request passes before a view sees it: the bounded JSON parser
(`api/jsonbody.py`) and the strict field types (`api/schemas.py`). The HTTP answers they make, on
every operation, are in tests/integration/test_bad_input.py."""

from __future__ import annotations

import json
import sys
import unicodedata
from typing import Any

import marshmallow as ma
import pytest

from api import jsonbody
from api.schemas import (
    MULTI_LINE_REFUSED,
    SINGLE_LINE_REFUSED,
    Boolean,
    Integer,
    Number,
    Password,
    QueryInteger,
    QueryNumber,
    Text,
)

# ---- the JSON parser -------------------------------------------------------------------------


def nested(depth: int) -> str:
    """An object holding arrays, `depth` containers deep in all."""
    return '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def test_nesting_up_to_the_bound_is_read_and_one_more_is_refused() -> None:
    assert jsonbody.loads(nested(jsonbody.MAX_DEPTH))["a"] is not None
    with pytest.raises(jsonbody.JsonTooDeepError) as refused:
        jsonbody.loads(nested(jsonbody.MAX_DEPTH + 1))
    assert refused.value.status == 400 and refused.value.code == "json_too_deep"


def siblings(depth: int) -> str:
    """`depth` levels where each level also holds a closed array before the next one opens, so
    no run of opening brackets is longer than 2."""
    return "[[]," * (depth - 1) + "[]" + "]" * (depth - 1)


def test_nesting_is_measured_whatever_the_shape() -> None:
    assert jsonbody.loads(siblings(jsonbody.MAX_DEPTH))
    assert jsonbody.loads("[" + ",".join([siblings(jsonbody.MAX_DEPTH - 1)] * 50) + "]")
    for text in (siblings(jsonbody.MAX_DEPTH + 1), '{"a": {"b": ' + siblings(31) + "}}"):
        with pytest.raises(jsonbody.JsonTooDeepError):
            jsonbody.loads(text)


def test_nesting_past_pythons_recursion_limit_is_the_same_refusal() -> None:
    depth = 10 * sys.getrecursionlimit()
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        with pytest.raises(jsonbody.JsonTooDeepError):
            jsonbody.loads(text)


def test_brackets_inside_strings_are_text_not_nesting() -> None:
    text = json.dumps({"name": "[" * 100 + "{" * 100})
    assert jsonbody.loads(text) == {"name": "[" * 100 + "{" * 100}


def test_lone_surrogates_are_refused_where_they_are() -> None:
    with pytest.raises(jsonbody.JsonValueError) as refused:
        jsonbody.loads(
            '{"name": "a\\ud800", "rule": {"kind": "\\udfff"}, "tags": ["ok", "\\uDBFF"]}'
        )
    assert refused.value.status == 422 and refused.value.code == "validation_error"
    assert set(refused.value.errors or {}) == {"name", "rule.kind", "tags.1"}
    assert "U+D800 is a lone surrogate" in refused.value.errors["name"][0]  # type: ignore[index]


def test_a_lone_surrogate_in_a_member_name_is_refused() -> None:
    with pytest.raises(jsonbody.JsonValueError) as refused:
        jsonbody.loads('{"rule": {"ki\\ud800nd": 1}}')
    assert list(refused.value.errors or {}) == ["rule"]


def test_surrogate_pairs_and_escaped_backslashes_are_ordinary_text() -> None:
    assert jsonbody.loads('{"name": "\\ud83d\\ude00 caf\\u00e9"}') == {"name": "\U0001f600 café"}
    assert jsonbody.loads('{"name": "\\\\ud800"}') == {"name": "\\ud800"}


def test_integer_literals_have_at_most_100_digits() -> None:
    limit = jsonbody.MAX_INTEGER_DIGITS
    assert jsonbody.loads(f'{{"n": {"9" * limit}}}') == {"n": int("9" * limit)}
    assert jsonbody.loads(f'{{"n": -{"9" * limit}}}') == {"n": -int("9" * limit)}
    for literal in ("9" * (limit + 1), "-" + "9" * (limit + 1), "1" * 5000):
        with pytest.raises(jsonbody.JsonValueError) as refused:
            jsonbody.loads(f'{{"venue": {{"location": [{literal}, 1]}}}}')
        assert list(refused.value.errors or {}) == ["venue.location.0"]
    # Long fractions and exponents are floats, which Python reads at any length.
    assert jsonbody.loads("[" + "1" * 5000 + ".5, 1e999]") == [float("inf"), float("inf")]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(literal: str) -> None:
    with pytest.raises(json.JSONDecodeError, match="is not a JSON number"):
        jsonbody.loads(f'{{"lat": {literal}}}')


def test_bytes_that_are_not_utf8_are_not_json() -> None:
    with pytest.raises(json.JSONDecodeError, match="not UTF-8"):
        jsonbody.loads(b'{"name": "caf\xe9"}')
    with pytest.raises(json.JSONDecodeError):
        jsonbody.loads(b"")


def test_the_errors_are_value_errors_for_flasks_silent_get_json() -> None:
    for error in (jsonbody.JsonTooDeepError, jsonbody.JsonValueError):
        assert issubclass(error, ValueError)


# ---- text ------------------------------------------------------------------------------------


def refused_by_rule(point: int) -> bool:
    """The documented rule, from the Unicode database of this Python: controls, format
    characters but ZWNJ and ZWJ, surrogates, and the line and paragraph separators."""
    category = unicodedata.category(chr(point))
    if point in (0x200C, 0x200D):
        return False
    return category in ("Cc", "Cf", "Cs", "Zl", "Zp")


def test_the_single_line_pattern_is_exactly_the_documented_rule() -> None:
    """Checked over every code point, so a Python with a newer Unicode that adds a format
    character fails here until the pattern has it."""
    wrong = [
        f"U+{point:04X}"
        for point in range(0x110000)
        if bool(SINGLE_LINE_REFUSED.match(chr(point))) != refused_by_rule(point)
    ]
    assert wrong == []


def test_multi_line_text_differs_only_by_tab_and_line_breaks() -> None:
    for point in range(0x3000):
        single = bool(SINGLE_LINE_REFUSED.match(chr(point)))
        multi = bool(MULTI_LINE_REFUSED.match(chr(point)))
        assert multi == (single and chr(point) not in "\t\n\r"), f"U+{point:04X}"


class Sample(ma.Schema):
    name = Text()
    description = Text(multiline=True)
    password = Password()


@pytest.mark.parametrize(
    "text",
    [
        "Kahvila Äijä",
        "日本語の店",
        "مقهى",  # right-to-left text is text; only the invisible controls are refused
        "קפה",
        "\u06a9\u0627\u0641\u0647\u200c\u0646\u0627\u062f\u0631\u06cc",  # ZWNJ: Persian needs it
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # ZWJ: one family emoji
        "\u2764\ufe0f",  # a variation selector
        "Bar \u00a0 & Grill",  # a no-break space is a space
    ],
)
def test_text_people_write_is_accepted(text: str) -> None:
    assert Sample().load({"name": text}) == {"name": text}


@pytest.mark.parametrize(
    "char",
    [
        "\x00",
        "\x07",
        "\t",
        "\n",
        "\r",
        "\x1b",  # the start of a terminal escape sequence
        "\x7f",
        "\x85",
        "\u061c",
        "\u200b",
        "\u200e",
        "\u200f",
        "\u202a",
        "\u202e",  # RIGHT-TO-LEFT OVERRIDE
        "\u2066",
        "\u2069",
        "\u2028",
        "\u2029",
        "\ufeff",
        "\U000e0041",  # a tag character: invisible ASCII
        "\ud800",
    ],
)
def test_controls_and_invisible_formatting_are_refused_on_one_line(char: str) -> None:
    with pytest.raises(ma.ValidationError) as refused:
        Sample().load({"name": f"Cafe{char}Noir"})
    message = refused.value.messages["name"][0]  # type: ignore[call-overload]
    assert f"U+{ord(char):04X}" in message


def test_multi_line_text_takes_tabs_and_line_breaks_but_not_the_rest() -> None:
    text = "Line one\r\nLine two\n\tindented"
    assert Sample().load({"description": text}) == {"description": text}
    for char in ("\u202e", "\x00", "\x0b", "\u2028", "\ud800"):
        with pytest.raises(ma.ValidationError):
            Sample().load({"description": f"a{char}b"})


def test_passwords_refuse_only_what_cannot_be_stored() -> None:
    strange = "tab\there \u202e\x07 \u200b"
    assert Sample().load({"password": strange}) == {"password": strange}
    for char in ("\x00", "\ud800"):
        with pytest.raises(ma.ValidationError):
            Sample().load({"password": f"secret{char}secret"})


# ---- numbers and booleans ------------------------------------------------------------------


class Strict(ma.Schema):
    number = Number()
    integer = Integer()
    flag = Boolean()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("number", "60.1"),
        ("number", "60"),
        ("number", True),
        ("number", float("nan")),
        ("number", float("inf")),
        ("number", [60.1]),
        ("integer", "5"),
        ("integer", 5.0),
        ("integer", 5.5),
        ("integer", True),
        ("flag", 1),
        ("flag", 0),
        ("flag", 1.0),
        ("flag", "true"),
        ("flag", "yes"),
        ("flag", None),
    ],
)
def test_numbers_and_booleans_take_json_numbers_and_booleans_only(field: str, value: Any) -> None:
    with pytest.raises(ma.ValidationError) as refused:
        Strict().load({field: value})
    assert field in refused.value.messages


def test_json_numbers_and_booleans_are_taken() -> None:
    assert Strict().load({"number": 60, "integer": 5, "flag": False}) == {
        "number": 60.0,
        "integer": 5,
        "flag": False,
    }
    assert Strict().load({"number": -0.5, "flag": True}) == {"number": -0.5, "flag": True}


class Query(ma.Schema):
    limit = QueryInteger()
    lat = QueryNumber()


@pytest.mark.parametrize(
    "value", ["1_0", " 5", "5 ", "+5", "\u0665", "\uff15", "0x10", "5.0", "", "9" * 19, "1e3"]
)
def test_query_integers_are_plain_ascii_digits(value: str) -> None:
    with pytest.raises(ma.ValidationError):
        Query().load({"limit": value})


@pytest.mark.parametrize(
    "value", ["nan", "inf", "-Infinity", "1e999", "1_0.5", " 60.1", "\u0666\u0660", "60,1", ".5"]
)
def test_query_numbers_are_plain_ascii_decimals(value: str) -> None:
    with pytest.raises(ma.ValidationError):
        Query().load({"lat": value})


def test_query_numbers_that_are_plain_decimals_are_taken() -> None:
    assert Query().load({"limit": "20", "lat": "-60.1699"}) == {"limit": 20, "lat": -60.1699}
    assert Query().load({"lat": "24"}) == {"lat": 24.0}
