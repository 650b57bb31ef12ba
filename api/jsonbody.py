"""One parser for every JSON request body: bounded, strict, and refusing what no layer can hold.

Python's `json` module takes documents the rest of the service cannot: nesting thousands deep
(the parser itself then raises `RecursionError`), integer literals past Python's int-to-string
limit (`ValueError`), lone UTF-16 surrogates (`"\\ud800"`, which PostgreSQL's UTF-8 cannot
encode), and the non-JSON literals `NaN` and `Infinity`. Every body the API reads goes through
`loads` here instead: the views' schemas through `Parser` (the webargs parser of every
`Blueprint` below), the dashboard's own JSON calls through `JSONProvider` (`request.get_json`).

What it answers (docs/reliability.md, "Bad input"):

- not JSON (syntax, bad UTF-8, `NaN`, `Infinity`): 400 `bad_request`;
- nested deeper than `MAX_DEPTH` arrays and objects: 400 `json_too_deep`;
- a lone surrogate in a string or member name, or an integer literal of more than
  `MAX_INTEGER_DIGITS` digits: 422 `validation_error` with `errors` by field (the JSON path);
- a body of another media type than JSON on an operation that takes JSON: 415
  `unsupported_media_type`, with `Accept-Post` or `Accept-Patch: application/json`.

The checks are C-speed scans of the raw bytes; only a document they find something in is walked
in Python, to name the fields. Figures: docs/reliability.md.
"""

from __future__ import annotations

import json
import re
from typing import Any

import flask_smorest
from flask import Request
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser

from core.errors import DomainError, ValidationError

# The deepest body the API takes is a MultiPolygon geofence: 6 levels (body, geofence,
# coordinates, polygon, ring, position). 32 leaves room and is still far from any recursion limit.
MAX_DEPTH = 32
# No number the API takes comes near 10^100; a double holds nothing past 309 digits and Python
# refuses to read integers past 4,300 (sys.get_int_max_str_digits).
MAX_INTEGER_DIGITS = 100

JSON_MEDIA_TYPE = "application/json"

# The scans that decide whether a parsed document needs a look (on the raw bytes, C speed).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_STRING_LITERAL = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OBJECTS_AS_ARRAYS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_DIGITS_AS_NINES = bytes.maketrans(b"0123456789", b"9" * 10)
_LONG_RUN_OF_DIGITS = b"9" * (MAX_INTEGER_DIGITS + 1)
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonTooDeepError(DomainError, ValueError):
    """A ValueError too, so that `request.get_json(silent=True)` takes it as bad JSON."""

    status = 400
    code = "json_too_deep"
    title = "JSON nested too deep"


class JsonValueError(ValidationError, ValueError):
    """Valid JSON with values no field can take (lone surrogates, absurdly long integers)."""


class UnsupportedMediaTypeError(DomainError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported Media Type"

    def __init__(self, detail: str, *, headers: dict[str, str]):
        super().__init__(detail)
        self.headers = headers


class _LongInteger(str):
    """An integer literal too long to read: kept as its text until `_walk` reports where."""


def _integer(literal: str) -> int | _LongInteger:
    if len(literal) - literal.startswith("-") > MAX_INTEGER_DIGITS:
        return _LongInteger(literal)
    return int(literal)


def _no_constant(name: str) -> Any:
    raise _NotJsonError(name)


class _NotJsonError(Exception):
    pass


_DECODER = json.JSONDecoder(parse_int=_integer, parse_constant=_no_constant)


def loads(data: bytes | str) -> Any:
    """The JSON document in `data`, or the error that says what is wrong with it (above).

    Syntax errors are `json.JSONDecodeError`, as from `json.loads` (a ValueError); the rest are
    domain errors that render as problem+json with their own code.
    """
    if isinstance(data, bytes):
        raw = data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError(
                f"not UTF-8 ({exc.reason})", data.decode("utf-8", "replace"), exc.start
            ) from None
    else:
        raw, text = data.encode("utf-8", "surrogatepass"), data
    try:
        document = _DECODER.decode(text)
    except RecursionError:
        raise _too_deep() from None
    except _NotJsonError as exc:
        name = str(exc)
        raise json.JSONDecodeError(
            f"{name} is not a JSON number", text, max(text.find(name), 0)
        ) from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _deeper_than_max(raw):
        raise _too_deep()
    if (
        _SURROGATE_ESCAPE.search(raw)
        or _LONG_RUN_OF_DIGITS in raw.translate(_DIGITS_AS_NINES)
        or (raw is not data and LONE_SURROGATE.search(text))
    ):
        _walk(document)
    return document


def _deeper_than_max(raw: bytes) -> bool:
    """Whether a well-formed document nests deeper than MAX_DEPTH, in C-speed steps only: keep
    the brackets outside strings, then take away the innermost pairs, one level a pass. About
    as costly as parsing the document, at worst."""
    skeleton = _STRING_LITERAL.sub(b"", raw).translate(_OBJECTS_AS_ARRAYS, _NOT_BRACKETS)
    if b"[" * (MAX_DEPTH + 1) in skeleton:
        return True
    for _ in range(MAX_DEPTH):
        skeleton = skeleton.replace(b"[]", b"")
        if not skeleton:
            return False
    return True


def _too_deep() -> JsonTooDeepError:
    return JsonTooDeepError(
        f"the request body nests arrays and objects more than {MAX_DEPTH} levels deep"
    )


def _walk(document: Any) -> None:
    """Refuse lone surrogates and overlong integers, by JSON path (`rule.kind`, `tags.1`).
    Iterative: the document is at most MAX_DEPTH deep by now, but no recursion is needed."""
    errors: dict[str, list[str]] = {}
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict | list):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, inner in items:
                name = _path_part(key)
                if isinstance(key, str) and LONE_SURROGATE.search(key):
                    errors.setdefault(path or "_schema", []).append(
                        f"the member name {name!r} is not valid Unicode (a lone surrogate)"
                    )
                stack.append((inner, f"{path}.{name}" if path else name))
        elif isinstance(value, _LongInteger):
            digits = len(value) - value.startswith("-")
            errors.setdefault(path or "_schema", []).append(
                f"a number of {digits} digits; numbers have at most {MAX_INTEGER_DIGITS}"
            )
        elif isinstance(value, str) and (found := LONE_SURROGATE.search(value)):
            errors.setdefault(path or "_schema", []).append(
                f"not valid Unicode: U+{ord(found.group()):04X} is a lone surrogate, not a "
                "character (send surrogate pairs only as a pair)"
            )
    if errors:
        errors = dict(sorted(errors.items()))
        raise JsonValueError(
            "the request is not valid: "
            + "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items()),
            errors=errors,
        )


def _path_part(key: Any) -> str:
    """A member name or index as it appears in a field path, lone surrogates escaped."""
    return str(key).encode("utf-8", "backslashreplace").decode("utf-8")


# ---- where bodies are read -------------------------------------------------------------------


class Parser(FlaskParser):
    """webargs' Flask parser, reading JSON bodies with `loads` and refusing other media types."""

    def _raw_load_json(self, req: Request) -> Any:
        data = req.get_data(cache=True)
        if not core.is_json(req.mimetype):
            if not data:  # nothing sent: the schema says which fields are missing
                return core.missing
            raise _unsupported(req)
        return loads(data)


def _unsupported(req: Request) -> UnsupportedMediaTypeError:
    sent = req.mimetype or "no Content-Type"
    headers = {"Accept-Patch" if req.method == "PATCH" else "Accept-Post": JSON_MEDIA_TYPE}
    return UnsupportedMediaTypeError(
        f"the request body must be JSON (Content-Type: {JSON_MEDIA_TYPE}), not {sent}",
        headers=headers,
    )


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, parsing arguments with `Parser`: every API blueprint is one
    (tests/integration/test_bad_input.py checks that each registered blueprint is). Operations
    that take a JSON body list its 400 (not JSON, too deep) and 415 in the OpenAPI document."""

    ARGUMENTS_PARSER = Parser()

    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any) -> Any:
        parse = super().arguments(schema, location=location, **kwargs)
        if location != "json":
            return parse

        def decorator(func: Any) -> Any:
            view = parse(func)
            responses = view._apidoc["arguments"]["responses"]
            responses[400] = "BAD_REQUEST"
            responses[415] = "UNSUPPORTED_MEDIA_TYPE"
            return view

        return decorator


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading with `loads` (for `request.get_json`) and keeping keys in order."""

    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)
