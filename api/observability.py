"""Structured logs: one line per request, per check-in verdict and per redemption outcome, as
JSON for machines or as short text for a person at a terminal (`LOG_FORMAT`).

Every request gets a request id, taken from `X-Request-ID` when the caller sent a sane one
(1 to 128 of `A-Z a-z 0-9 . _ : -`) and generated otherwise, and echoed in the response's
`X-Request-ID`. Every line logged while a request is handled carries it (`RequestContextFilter`).

What is logged is chosen field by field, never a whole request or response: no body, no query
string, no header but `X-Request-ID`, no code, key, token or password. The check-in answer holds
unlock codes, so it is never logged; the verdict is, as reason codes and ids.

Logging is configured by the process's entry point (`api/wsgi.py`, `api/gunicorn_conf.py`), not
by `create_app`: the factory only emits records, so tests see them through pytest's `caplog`.
Both formats render the same records: the text lines show fewer fields, never others.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
import time
import uuid
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from flask import Flask, Response, g, has_request_context, request

from api import metrics
from core.errors import DomainError

if TYPE_CHECKING:  # gunicorn's master imports this module for logging: keep it light
    from core.accounts import MerchantPrincipal
    from offers.checkins import CheckinResult
    from offers.redemptions import RedemptionResult

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_log = logging.getLogger(__name__)
request_log = logging.getLogger("checkin_offers.request")
checkin_log = logging.getLogger("checkin_offers.checkin")
redemption_log = logging.getLogger("checkin_offers.redemption")


# ---- configuration ---------------------------------------------------------------------------


class RequestContextFilter(logging.Filter):
    """Adds the current request's id to every record logged while it is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_request_context():
            request_id = g.get("request_id")
            if request_id is not None:
                record.request_id = request_id
        return True


def resolve_log_format(log_format: str, stream: IO[str] | None = None) -> str:
    """`json` or `text`: `auto` is text when the logs go to a terminal (a person is reading),
    JSON otherwise (a file, a pipe, a container's log collector)."""
    if log_format != "auto":
        return log_format
    stream = sys.stdout if stream is None else stream
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # no stream, or a closed one
        return "json"


def log_config(level: str, log_format: str = "json") -> dict[str, Any]:
    """A `logging.config.dictConfig` dictionary: lines on stdout in `log_format` (`json`, `text`
    or `auto`), for this process and for gunicorn's own messages (`gunicorn_conf.logconfig_dict`
    uses the same dictionary)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestContextFilter}},
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(levelname)s %(name)s %(process)d %(message)s",
                "rename_fields": {
                    "levelname": "level",
                    "name": "logger",
                    "process": "pid",
                    "message": "event",
                },
                "timestamp": "time",
            },
            "text": {"()": TextFormatter},
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": resolve_log_format(log_format),
                "filters": ["request"],
            },
            "discard": {"class": "logging.NullHandler"},
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            # gunicorn's messages go through the root's handler too...
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            # ...but not its access log: the app's `request` line says more (route template,
            # caller, request id), and one line per request is enough.
            "gunicorn.access": {"handlers": ["discard"], "propagate": False},
            # At INFO SQLAlchemy logs every statement with its parameters (codes, hashes):
            # never, whatever LOG_LEVEL says.
            "sqlalchemy": {"level": "WARNING", "handlers": [], "propagate": True},
            # Alembic's plugin chatter at import; `flask ... migrate` sets its own logging.
            "alembic": {"level": "WARNING", "handlers": [], "propagate": True},
        },
    }


def configure_logging(level: str, log_format: str = "json") -> None:
    """Lines on stdout at `level`, in `log_format`, for the whole process."""
    logging.config.dictConfig(log_config(level, log_format))


# What every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}
_LEVELS = {"WARNING": "WARN", "CRITICAL": "CRIT"}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CONVERTER = re.compile(r"<(?:[a-z]+:)?([A-Za-z_]+)>")


class TextFormatter(logging.Formatter):
    """Short lines for a person at a terminal, in local time, like the tools they know:

        14:03:07 INFO  POST /v1/checkins 201 35 ms user=5e6f7a8b
        14:03:07 INFO  checkin verified venue=3fa8c0de user=5e6f7a8b distance=0.0 m unlocked=1
        14:03:09 WARN  gunicorn: Worker (pid:4242) was sent SIGTERM!

    The same records as the JSON lines with fewer of their fields (never one the JSON does not
    have): ids are cut to their first 8 characters, as git shortens commits, and the request id
    is left out. Exceptions follow their line as a normal traceback.
    """

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        level = _LEVELS.get(record.levelname, record.levelname)
        fields = {
            k: v
            for k, v in record.__dict__.items()
            if k not in _RECORD_ATTRS and not k.startswith("_")
        }
        line = f"{when} {level:<5} {self._body(record, fields)}"
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line

    def _body(self, record: logging.LogRecord, fields: dict[str, Any]) -> str:
        message = record.getMessage()
        if record.name == "checkin_offers.request" and message == "request":
            return self._request(fields)
        if record.name == "checkin_offers.checkin" and message == "checkin":
            return self._checkin(fields)
        if record.name == "checkin_offers.redemption" and message == "redemption":
            return self._redemption(fields)
        source = record.name.removeprefix("checkin_offers.").replace("gunicorn.error", "gunicorn")
        head = message if source in ("root", message) else f"{source}: {message}"
        fields.pop("request_id", None)
        return " ".join([head, *(f"{k}={_short(v)}" for k, v in fields.items() if v is not None)])

    @staticmethod
    def _request(f: dict[str, Any]) -> str:
        route = _CONVERTER.sub(r"<\1>", f["route"]) if f.get("route") else "(no route)"
        ms = float(f.get("duration_ms") or 0)
        parts = [
            str(f.get("method")),
            route,
            str(f.get("status")),
            f"{ms:.{0 if ms >= 10 else 1}f} ms",
        ]
        if f.get("key_id"):
            parts.append(f"{f.get('key_role')}={_short(f['key_id'])}")
        if f.get("user_id"):
            parts.append(f"user={_short(f['user_id'])}")
        if f.get("idempotent_replay"):
            parts.append("(replayed)")
        return " ".join(parts)

    @staticmethod
    def _checkin(f: dict[str, Any]) -> str:
        parts = ["checkin", str(f.get("verdict"))]
        if f.get("reasons"):
            parts.append(",".join(f["reasons"]))
        parts += [f"venue={_short(f.get('venue_id'))}", f"user={_short(f.get('user_id'))}"]
        parts.append(f"distance={f.get('distance_m')} m")
        if f.get("presence_verified"):
            parts.append("presence-code")
        if f.get("unlocked_offer_ids"):
            parts.append(f"unlocked={len(f['unlocked_offer_ids'])}")
        if f.get("held_out_offer_ids"):
            parts.append(f"held_out={len(f['held_out_offer_ids'])}")
        return " ".join(parts)

    @staticmethod
    def _redemption(f: dict[str, Any]) -> str:
        parts = ["redemption", str(f.get("outcome")), f"key={_short(f.get('key_id'))}"]
        if f.get("venue_id"):
            parts.append(f"venue={_short(f['venue_id'])}")
        if f.get("offer_id"):
            parts.append(f"offer={_short(f['offer_id'])}")
        return " ".join(parts)


def _short(value: Any) -> str:
    """A field's value in a text line: ids cut to 8 characters, lists joined by commas."""
    if isinstance(value, list | tuple):
        return ",".join(_short(v) for v in value) or "-"
    text = str(value)
    return _UUID.sub(lambda m: m.group(0)[:8], text)


# ---- requests --------------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Request ids, the per-request log line and request metrics."""
    app.before_request(_start)
    app.after_request(_finish)


def request_id() -> str:
    """The current request's id."""
    rid: str = g.get("request_id") or _start_id()
    return rid


def _start_id() -> str:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    rid: str = g.request_id
    return rid


def _start() -> None:
    g.request_started = time.perf_counter()
    _start_id()


def _finish(response: Response) -> Response:
    duration = time.perf_counter() - g.get("request_started", time.perf_counter())
    response.headers[REQUEST_ID_HEADER] = request_id()
    route = request.url_rule.rule if request.url_rule is not None else None
    fields: dict[str, Any] = {
        "request_id": request_id(),
        "method": request.method,
        "route": route,
        "status": response.status_code,
        "duration_ms": round(duration * 1000, 2),
        "remote_addr": request.remote_addr,
    }
    fields.update(_principal())
    if response.headers.get("Idempotent-Replayed") == "true":
        fields["idempotent_replay"] = True
    request_log.info("request", extra=fields)
    recorder = metrics.current()
    if recorder is not None:
        recorder.observe_request(request.method, route, response.status_code, duration)
    return response


def _principal() -> dict[str, str]:
    """Who made the request, by id only (`g.merchant` and `g.user` are set by `api.auth`)."""
    found: dict[str, str] = {}
    merchant = g.get("merchant")
    if merchant is not None:
        found["merchant_id"] = str(merchant.merchant_id)
        found["key_id"] = str(merchant.key_id)
        found["key_role"] = merchant.role
    user = g.get("user")
    if user is not None:
        found["user_id"] = str(user.user_id)
    return found


# ---- domain outcomes -------------------------------------------------------------------------


def checkin_recorded(user_id: uuid.UUID, venue_id: uuid.UUID, result: CheckinResult) -> None:
    """Log and count a check-in's verdict and what it unlocked. Call after the commit."""
    reasons = [reason.code for reason in result.verdict.reasons]
    checkin_log.info(
        "checkin",
        extra={
            "request_id": request_id(),
            "checkin_id": str(result.id),
            "user_id": str(user_id),
            "venue_id": str(venue_id),
            "verdict": result.status,
            "reasons": reasons,
            "distance_m": round(result.verdict.distance_m, 1),
            "presence_verified": result.verdict.presence_verified,
            "proof": result.proof,
            "unlocked_offer_ids": [str(u.offer_id) for u in result.unlocks],
            "held_out_offer_ids": [str(o) for o in result.held_out],
        },
    )
    recorder = metrics.current()
    if recorder is None:
        return
    kinds = result.offer_kinds
    recorder.observe_checkin(
        result.status,
        reasons,
        unlocked=[kinds.get(u.offer_id, "unknown") for u in result.unlocks],
        held_out=[kinds.get(o, "unknown") for o in result.held_out],
    )


def redemption_recorded(
    principal: MerchantPrincipal,
    venue_id: uuid.UUID | None,
    outcome: RedemptionResult | DomainError,
) -> None:
    """Log and count a redemption attempt's outcome (never the code). Call after the commit."""
    fields: dict[str, Any] = {
        "request_id": request_id(),
        "merchant_id": str(principal.merchant_id),
        "key_id": str(principal.key_id),
        "venue_id": str(venue_id) if venue_id is not None else None,
    }
    if isinstance(outcome, DomainError):
        fields["outcome"] = outcome.code
    else:
        fields.update(
            outcome="redeemed",
            redemption_id=str(outcome.id),
            unlock_id=str(outcome.unlock_id),
            offer_id=str(outcome.offer_id),
        )
    redemption_log.info("redemption", extra=fields)
    recorder = metrics.current()
    if recorder is None:
        return
    kind = None if isinstance(outcome, DomainError) else outcome.offer_kind
    recorder.observe_redemption(fields["outcome"], kind)
