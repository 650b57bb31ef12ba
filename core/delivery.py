"""The webhook delivery worker: takes due deliveries from the outbox and POSTs them, signed.

Why `SELECT ... FOR NO KEY UPDATE SKIP LOCKED` and not a job library such as procrastinate: the
outbox rows are already the queue (written by the use cases' own transactions, listed and
replayed by the owner), so a job table next to them would be a second copy of the same state,
with its own schema and its own worker process model to keep in step. One claim query does the
job: parallel workers (threads here, processes or hosts too) each lock a different delivery, and
a worker that dies releases its locks with its connection, so the delivery is sent again (at
least once). The row stays locked while it is sent: never two attempts at one delivery at once.

Each thread loops: claim one due delivery (its endpoint's row locked too, so one delivery per
endpoint is in flight and a slow receiver holds one thread, not all), check the URL again (DNS
may have changed since registration) and connect to the address it checked, POST with short
timeouts and no redirects, read at most `MAX_RESPONSE_BYTES` of the answer, record the attempt,
commit. Signatures come from the `standardwebhooks` package (the specification's own Python
implementation), not hand-written HMAC code.

SIGTERM or SIGINT stops the claim loop; deliveries in flight finish (bounded by the timeouts),
then the worker removes its heartbeat and exits.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import urllib3
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from core import webhooks
from core.uow import UnitOfWork
from core.webhooks import Claimed, Outcome, Resolver, UrlPolicy, WebhookUrlError

log = logging.getLogger("checkin_offers.webhooks")

USER_AGENT = "checkin-offers-webhooks/1"
# While the database is unreachable: the longest wait between tries, and how often it is logged.
OUTAGE_MAX_WAIT_S = 5.0
OUTAGE_LOG_EVERY = 60


def sign(secret: str, webhook_id: str, at: datetime, payload: bytes) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, payload),
    }


def send(
    claimed: Claimed,
    policy: UrlPolicy,
    resolver: Resolver = webhooks.resolve,
    *,
    connect_timeout: float = webhooks.CONNECT_TIMEOUT_S,
    read_timeout: float = webhooks.READ_TIMEOUT_S,
    ca_certs: str | None = None,
) -> Outcome:
    """One attempt: check the URL (again), POST to the address checked, never follow a
    redirect. Never raises for what the receiver or the network does."""
    started = time.monotonic()

    def outcome(status: int | None, error: str | None) -> Outcome:
        return Outcome(status, error, int((time.monotonic() - started) * 1000))

    try:
        target = webhooks.check_url(claimed.url, policy, resolver)
    except WebhookUrlError as refused:
        return outcome(None, f"refused: {refused.detail}")
    payload = webhooks.body(claimed)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **sign(claimed.secret, str(claimed.event_id), datetime.now(UTC), payload),
    }
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    address = target.addresses[0]
    kwargs: dict[str, object] = {"timeout": timeout, "retries": False, "maxsize": 1}
    if target.scheme == "https":
        # Connect to the checked address; TLS still verifies the certificate for the host name.
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,  # None: the system's trusted CAs
            **kwargs,  # type: ignore[arg-type]
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, **kwargs)  # type: ignore[arg-type]
    host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=payload,
            headers={**headers, "host": host_header},
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            response.read(webhooks.MAX_RESPONSE_BYTES, decode_content=False)
        finally:
            response.release_conn()
        status = response.status
        error = None
        if 300 <= status < 400:
            error = "redirects are not followed"
        elif not 200 <= status < 300:
            error = f"answered {status}"
        return outcome(status, error)
    except (urllib3.exceptions.HTTPError, OSError) as failure:
        return outcome(None, f"{type(failure).__name__}: {failure}"[: webhooks.MAX_ERROR_LENGTH])
    finally:
        pool.close()


OutcomeHook = Callable[[Claimed, Outcome, str], None]


class Worker:
    """Delivery threads over one session factory, until `stop()`."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        policy: UrlPolicy,
        *,
        threads: int = 4,
        idle_sleep_s: float = 1.0,
        resolver: Resolver = webhooks.resolve,
        on_outcome: OutcomeHook | None = None,
        name: str | None = None,
        connect_timeout_s: float = webhooks.CONNECT_TIMEOUT_S,
        read_timeout_s: float = webhooks.READ_TIMEOUT_S,
        ca_certs: str | None = None,
    ):
        self._factory = session_factory
        self.policy = policy
        self.threads = threads
        self.idle_sleep_s = idle_sleep_s
        self.resolver = resolver
        self.on_outcome = on_outcome
        self.timeouts = (connect_timeout_s, read_timeout_s)
        self.ca_certs = ca_certs
        self.id = uuid.uuid4()
        self.name = name or f"{socket.gethostname()}:{threading.get_native_id()}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def run_once(self) -> bool:
        """Claim and send one due delivery, in one transaction. False when none was due."""
        with UnitOfWork(self._factory) as uow:
            claimed = webhooks.claim(uow.session)
            if claimed is None:
                return False
            outcome = send(
                claimed,
                self.policy,
                self.resolver,
                connect_timeout=self.timeouts[0],
                read_timeout=self.timeouts[1],
                ca_certs=self.ca_certs,
            )
            status = webhooks.record_attempt(uow.session, claimed, outcome)
            uow.commit()
        log.info(
            "webhook %s %s to endpoint %s: %s%s",
            claimed.type,
            claimed.event_id,
            claimed.endpoint_id,
            status,
            f" ({outcome.error})" if outcome.error else "",
        )
        if self.on_outcome is not None:
            self.on_outcome(claimed, outcome, status)
        return True

    def drain(self) -> int:
        """Send everything due now, in this thread (tests, the CLI's `--once`)."""
        sent = 0
        while self.run_once():
            sent += 1
        return sent

    def _loop(self) -> None:
        """Claim and send until stopped. The database going away (a restart, a failover) is
        waited out: the first error of an outage is logged (then every `OUTAGE_LOG_EVERY`th),
        the waits grow to `OUTAGE_MAX_WAIT_S` so a long outage is not hammered, and the return
        is logged; the pool reconnects by itself (core/uow.py)."""
        failures = 0
        while not self._stop.is_set():
            try:
                busy = self.run_once()
                if failures:
                    log.info(
                        "webhook worker: database reachable again after %d failed tries", failures
                    )
                    failures = 0
            except DBAPIError as error:  # the database restarts: wait, then carry on
                failures += 1
                if failures % OUTAGE_LOG_EVERY == 1:
                    log.warning("webhook worker: database error, retrying: %s", error.orig)
                busy = False
            except Exception:
                log.exception("webhook worker: unexpected error")
                busy = False
            if not busy:
                wait = self.idle_sleep_s * 2 ** max(0, failures - 1)
                self._stop.wait(min(wait, max(OUTAGE_MAX_WAIT_S, self.idle_sleep_s)))

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                with UnitOfWork(self._factory) as uow:
                    webhooks.heartbeat(uow.session, self.id, self.name)
                    uow.commit()
            except DBAPIError as error:
                log.warning("webhook worker: heartbeat failed: %s", error.orig)
            self._stop.wait(webhooks.WORKER_HEARTBEAT_S)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._beat, name="webhook-beat", daemon=True)]
        self._threads += [
            threading.Thread(target=self._loop, name=f"webhook-{i}", daemon=True)
            for i in range(self.threads)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; wait for deliveries in flight; remove the heartbeat."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        try:
            with UnitOfWork(self._factory) as uow:
                webhooks.stopped(uow.session, self.id)
                uow.commit()
        except DBAPIError:
            pass

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()
