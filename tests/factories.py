"""Request bodies for tests: a valid default, changed by keyword."""

from __future__ import annotations

from typing import Any

HELSINKI = {"type": "Point", "coordinates": [24.9384, 60.1699]}


def venue_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Kahvila", "location": HELSINKI, "timezone": "Europe/Helsinki"}
    body.update(overrides)
    return body


def offer_body(venues: list[str], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "venue_ids": venues,
        "title": "Free coffee",
        "rule": {"kind": "every_checkin"},
    }
    body.update(overrides)
    return body
