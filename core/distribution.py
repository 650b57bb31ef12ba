"""How each table would be distributed under Citus, the step after one primary
(docs/scaling.md, "Past one primary: Citus"). Citus is not installed here; this table keeps the
design in step with the models: `tests/unit/test_distribution.py` fails when a table is added
without deciding its place, or when a named distribution column is missing.

Kinds: `merchant` (distributed by merchant, colocated), `user` (distributed by user, colocated),
`reference` (copied to every node), `local` (the coordinator's alone). `column` is the
distribution column; None where the table lacks it today and a migration would add it
(`change` says what).
"""

from __future__ import annotations

from typing import NamedTuple


class Placement(NamedTuple):
    kind: str
    column: str | None
    change: str = ""


KINDS = ("merchant", "user", "reference", "local")

DISTRIBUTION: dict[str, Placement] = {
    "merchants": Placement("merchant", "id"),
    "api_keys": Placement(
        "merchant",
        "merchant_id",
        "key lookup by hash is multi-shard: route by a merchant prefix in the key",
    ),
    "device_pairings": Placement("merchant", "merchant_id"),
    "venues": Placement("merchant", "merchant_id"),
    "offers": Placement("merchant", "merchant_id"),
    "offer_status_changes": Placement(
        "merchant", None, "add merchant_id; FK (merchant_id, offer_id)"
    ),
    "offer_venues": Placement("merchant", None, "add merchant_id to the key and both FKs"),
    "checkins": Placement(
        "merchant",
        None,
        "add merchant_id (from the venue); impossible travel reads user_last_fix instead",
    ),
    "nfc_tags": Placement("merchant", "merchant_id"),
    "nfc_taps": Placement(
        "merchant", None, "add merchant_id; drop the FKs to users and user_cards"
    ),
    "staff_checkin_attempts": Placement("merchant", "merchant_id", "drop the FK to users"),
    "merchant_staff_users": Placement("merchant", "merchant_id", "drop the FK to users"),
    "holdouts": Placement("merchant", None, "add merchant_id; drop the FK to users"),
    "unlocks": Placement(
        "merchant", "merchant_id", "drop the FK to users; code lookups need the merchant"
    ),
    "redemptions": Placement("merchant", "merchant_id", "unique (merchant_id, unlock_id)"),
    "redemption_attempts": Placement("merchant", "merchant_id"),
    "impressions": Placement("merchant", None, "add merchant_id; drop the FK to users"),
    "audit_events": Placement("merchant", "merchant_id"),
    "feedback": Placement("merchant", "merchant_id", "drop the FKs to users and checkins"),
    "feedback_replies": Placement("merchant", "merchant_id", "FK (merchant_id, feedback_id)"),
    # kept by triggers on feedback: a shard's triggers see only its merchants' rows, as they need
    "feedback_rollup": Placement("merchant", "merchant_id"),
    "feedback_rollup_responses": Placement("merchant", "merchant_id"),
    "feedback_rollup_offers": Placement("merchant", "merchant_id"),
    "feedback_responses": Placement("merchant", "merchant_id", "FK (merchant_id, feedback_id)"),
    "presence_code_attempts": Placement(
        "merchant", None, "add merchant_id (from the venue); drop the FK to users"
    ),
    "dashboard_sessions": Placement(
        "merchant", None, "add merchant_id (from the key); FK (merchant_id, api_key_id)"
    ),
    "top_visitor_windows": Placement("merchant", None, "add merchant_id (from the venue)"),
    "top_visitor_tallies": Placement(
        "merchant", None, "add merchant_id (from the venue); drop the FK to users"
    ),
    "checkin_visit_counts": Placement(
        "merchant", None, "add merchant_id (from the venue), colocated with the check-ins"
    ),
    "checkin_visit_days": Placement(
        "merchant", None, "add merchant_id (from the venue), colocated with the check-ins"
    ),
    "device_user_checkins": Placement(
        "local", None, "keyed by device across merchants and users: distribute by device_id"
    ),
    "users": Placement("user", "id"),
    "user_tokens": Placement(
        "user",
        "user_id",
        "token lookup by hash is multi-shard: route by a user prefix in the token",
    ),
    "user_cards": Placement("user", "user_id"),
    "member_codes": Placement("user", "user_id"),
    "webhook_endpoints": Placement("merchant", "merchant_id"),
    "webhook_events": Placement("merchant", "merchant_id"),
    "webhook_deliveries": Placement("merchant", None, "add merchant_id; FKs with it"),
    "webhook_attempts": Placement("merchant", None, "add merchant_id; FK with it"),
    "webhook_workers": Placement("local", None, "the delivery workers' heartbeats: stays local"),
    "account_erasures": Placement("user", "user_id"),
    "sign_in_attempts": Placement(
        "local", None, "keyed by handle before there is a user: distribute by handle or use Redis"
    ),
    "idempotency_records": Placement(
        "local", None, "distribute by principal (a text key) or move to Redis"
    ),
    "rate_limit_counters": Placement(
        "local", None, "UNLOGGED counters: Redis (REDIS_URL) at that scale"
    ),
}
