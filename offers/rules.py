"""Offer rules and schedules as plain values.

A rule is stored as the JSON the merchant sent (validated at the API edge); `rule_from_json` turns
it into one of these dataclasses for the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Any

RULE_KINDS = ("every_checkin", "first_visit", "nth_visit", "top_visitor", "group")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TOP_VISITOR_WINDOW_DAYS = 60
# nth_visit without `repeat`: once, at the Nth visit
DEFAULT_NTH_VISIT_REPEAT = False
# The fewest verified visits over the window that can make someone the top visitor: with one,
# a first-time visitor on a quiet day became "regular of the month".
DEFAULT_TOP_VISITOR_MIN_VISITS = 2


@dataclass(frozen=True)
class EveryCheckin:
    kind: str = "every_checkin"


@dataclass(frozen=True)
class FirstVisit:
    kind: str = "first_visit"


@dataclass(frozen=True)
class NthVisit:
    visits: int
    within_days: int | None = None
    repeat: bool = DEFAULT_NTH_VISIT_REPEAT
    kind: str = "nth_visit"


@dataclass(frozen=True)
class TopVisitor:
    window_days: int = DEFAULT_TOP_VISITOR_WINDOW_DAYS
    min_visits: int = DEFAULT_TOP_VISITOR_MIN_VISITS
    kind: str = "top_visitor"


@dataclass(frozen=True)
class Group:
    min_people: int
    within_minutes: int
    kind: str = "group"


Rule = EveryCheckin | FirstVisit | NthVisit | TopVisitor | Group


def rule_from_json(data: dict[str, Any]) -> Rule:
    kind = data["kind"]
    if kind == "every_checkin":
        return EveryCheckin()
    if kind == "first_visit":
        return FirstVisit()
    if kind == "nth_visit":
        return NthVisit(int(data["visits"]), data.get("within_days"), bool(data.get("repeat")))
    if kind == "top_visitor":
        return TopVisitor(
            int(data.get("window_days", DEFAULT_TOP_VISITOR_WINDOW_DAYS)),
            int(data.get("min_visits", DEFAULT_TOP_VISITOR_MIN_VISITS)),
        )
    if kind == "group":
        return Group(int(data["min_people"]), int(data["within_minutes"]))
    raise ValueError(f"unknown rule kind {kind!r}")


@dataclass(frozen=True)
class Window:
    """A weekly window in the venue's local time; `end <= start` means it crosses midnight."""

    days: frozenset[str]
    start: time
    end: time


def window_from_json(data: dict[str, Any]) -> Window:
    return Window(
        frozenset(data["days"]),
        time.fromisoformat(data["start"]),
        time.fromisoformat(data["end"]),
    )


def describe_rule(rule: Rule) -> str:
    """What it takes to unlock, in plain words (nearby's `unlock`). Nearby shows it as the
    database renders it, `offer_listing()` of migration 0019: a change here needs a migration
    that replaces that function (tests/integration/test_venues.py compares the two)."""
    if isinstance(rule, EveryCheckin):
        return "Check in"
    if isinstance(rule, FirstVisit):
        return "Check in for the first time"
    if isinstance(rule, NthVisit):
        span = f" within {rule.within_days} days" if rule.within_days else ""
        if rule.repeat:
            return f"Check in every {rule.visits} visits{span}"
        return f"Check in {rule.visits} times{span}"
    if isinstance(rule, TopVisitor):
        visits = "visit" if rule.min_visits == 1 else "visits"
        return (
            f"Be the most frequent visitor over {rule.window_days} days, "
            f"with at least {rule.min_visits} {visits}"
        )
    return f"Check in with {rule.min_people} people within {rule.within_minutes} minutes"
