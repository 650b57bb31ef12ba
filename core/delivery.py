"""The webhook delivery worker: takes due deliveries from the outbox and POSTs them, signed.

Why `SELECT ... FOR NO KEY UPDATE SKIP LOCKED` and not a job library such as procrastinate: the
outbox rows are already the queue (written by the use cases' own transactions, listed and
replayed by the owner), so a job table next to them would be a second copy of the same state,
with its own schema and its own worker process model to keep in step. One claim query does the
job: parallel workers (threads here, processes or hosts too) each lock a different delivery, and
a worker that dies releases its locks with its connection, so the delivery is sent again (at
least once). The row stays locked while it is sent: never two attempts at one delivery at once.

Each thread loops: claim a batch of due deliveries of one endpoint (up to `BATCH`; the
endpoint's row locked too, so one delivery per endpoint is in flight and a slow receiver holds
one thread, not all), and for each one after another: check the URL again (DNS may have changed
since registration) and connect to the address it checked (reusing the thread's kept-alive
connection only when it was opened to that same address, `Connections`), POST with short
timeouts and no redirects, read at most `MAX_RESPONSE_BYTES` of the answer; then record every
attempt in one statement and commit once (the claim and the record are prepared once per
database connection: `core.webhooks._Prepared`). A failed attempt ends the batch early. Signatures come from the `standardwebhooks` package (the specification's own Python
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
from collections import OrderedDict
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


# A receiver's connection is kept open between deliveries (per worker thread) this long idle at
# most, for this many receivers at most (the least recently used goes first).
KEEPALIVE_IDLE_S = 30.0
KEEPALIVE_MAX = 32

# Due deliveries of one endpoint claimed, sent and recorded together (one transaction).
BATCH = 10

_Key = tuple[str, str, int, str | None]  # scheme, host name, port, CA bundle
_Kept = tuple[str, urllib3.HTTPConnectionPool, float]  # the checked address, its pool, last used


class Connections:
    """One worker thread's kept-alive receiver connections: one per receiver (scheme, host name,
    port), each bound to the address that was checked when it was opened. Taken for a delivery
    only after the URL was checked again and resolved to that same address; a connection whose
    receiver now resolves elsewhere is closed, as is one idle for `idle_s`. A connection is kept
    only after a 2xx answer read to its end (any error, timeout, other status or capped body
    closes it). Not shared between threads."""

    def __init__(self, idle_s: float = KEEPALIVE_IDLE_S, max_kept: int = KEEPALIVE_MAX):
        self.idle_s = idle_s
        self.max_kept = max_kept
        self._kept: OrderedDict[_Key, _Kept] = OrderedDict()

    def take(self, key: _Key, address: str) -> urllib3.HTTPConnectionPool | None:
        """The kept connection to `key` at `address`, or None (one to another address is closed)."""
        self.expire()
        kept = self._kept.pop(key, None)
        if kept is None:
            return None
        if kept[0] != address:
            kept[1].close()
            return None
        return kept[1]

    def keep(self, key: _Key, address: str, pool: urllib3.HTTPConnectionPool) -> None:
        self._kept[key] = (address, pool, time.monotonic())
        while len(self._kept) > self.max_kept:
            _, (_, oldest, _) = self._kept.popitem(last=False)
            oldest.close()

    def expire(self) -> None:
        """Close the connections idle for longer than `idle_s`."""
        limit = time.monotonic() - self.idle_s
        for key in [k for k, (_, _, used) in self._kept.items() if used < limit]:
            self._kept.pop(key)[1].close()

    def close(self) -> None:
        while self._kept:
            self._kept.popitem()[1][1].close()

    def __len__(self) -> int:
        return len(self._kept)


def _pool(
    target: webhooks.Target, address: str, ca_certs: str | None
) -> urllib3.HTTPConnectionPool:
    """A pool of one connection to the checked `address` (never resolving again)."""
    kwargs: dict[str, object] = {"retries": False, "maxsize": 1, "block": False}
    if target.scheme == "https":
        # Connect to the checked address; TLS still verifies the certificate for the host name.
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,  # None: the system's trusted CAs
            **kwargs,  # type: ignore[arg-type]
        )
    return urllib3.HTTPConnectionPool(address, target.port, **kwargs)  # type: ignore[arg-type]


def send(
    claimed: Claimed,
    policy: UrlPolicy,
    resolver: Resolver = webhooks.resolve,
    *,
    connect_timeout: float = webhooks.CONNECT_TIMEOUT_S,
    read_timeout: float = webhooks.READ_TIMEOUT_S,
    ca_certs: str | None = None,
    connections: Connections | None = None,
) -> Outcome:
    """One attempt: check the URL (again), POST to the address checked, never follow a
    redirect. Never raises for what the receiver or the network does. With `connections`, a
    connection kept from an earlier delivery to the same receiver at the same checked address
    is reused, and this one is kept if it ends well; without, a new one is opened and closed."""
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
    host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
    headers["host"] = host_header
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    address = target.addresses[0]
    key: _Key = (target.scheme, target.host, target.port, ca_certs)
    pool = connections.take(key, address) if connections is not None else None
    reused = pool is not None
    keep = False
    try:
        while True:
            if pool is None:
                pool = _pool(target, address, ca_certs)
            try:
                response = pool.urlopen(
                    "POST",
                    target.path,
                    body=payload,
                    headers=headers,
                    redirect=False,
                    preload_content=False,
                    assert_same_host=False,
                    timeout=timeout,
                )
                break
            except urllib3.exceptions.ProtocolError:
                # A kept connection the receiver closed meanwhile (no answer came): once more on
                # a new one. At least once allows it; the webhook-id is the same.
                if not reused:
                    raise
                reused = False
                pool.close()
                pool = None
        try:
            response.read(webhooks.MAX_RESPONSE_BYTES, decode_content=False)
            complete = response.closed  # read to its end
        finally:
            response.release_conn()
        status = response.status
        error = None
        if 300 <= status < 400:
            error = "redirects are not followed"
        elif not 200 <= status < 300:
            error = f"answered {status}"
        keep = connections is not None and error is None and complete
        return outcome(status, error)
    except (urllib3.exceptions.HTTPError, OSError) as failure:
        return outcome(None, f"{type(failure).__name__}: {failure}"[: webhooks.MAX_ERROR_LENGTH])
    finally:
        if pool is not None:
            if keep and connections is not None:
                connections.keep(key, address, pool)
            else:
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
        batch: int = BATCH,
        keep_alive: bool = True,
    ):
        self._factory = session_factory
        self.batch = batch
        self.keep_alive = keep_alive
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

    def run_once(self, connections: Connections | None = None) -> int:
        """Claim a batch of due deliveries of one endpoint (up to `batch`), send them one after
        another, record every attempt in one statement and commit once. Returns how many were
        sent (0: none was due). The batch stops early at the first attempt that is not
        delivered (the rest stay due, as they were) and when the worker is stopping.
        `connections`: this thread's kept-alive receiver connections (None: a new one each)."""
        sent: list[tuple[Claimed, Outcome]] = []
        with UnitOfWork(self._factory) as uow:
            for claimed in webhooks.claim_batch(uow.session, self.batch):
                if sent and (self._stop.is_set() or not sent[-1][1].delivered):
                    break
                outcome = send(
                    claimed,
                    self.policy,
                    self.resolver,
                    connect_timeout=self.timeouts[0],
                    read_timeout=self.timeouts[1],
                    ca_certs=self.ca_certs,
                    connections=connections,
                )
                sent.append((claimed, outcome))
            if not sent:
                return 0
            statuses = webhooks.record_attempts(uow.session, sent)
            uow.commit()
        for (claimed, outcome), status in zip(sent, statuses, strict=True):
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
        return len(sent)

    def drain(self) -> int:
        """Send everything due now, in this thread (tests, the CLI's `--once`)."""
        sent = 0
        connections = Connections() if self.keep_alive else None
        try:
            while n := self.run_once(connections):
                sent += n
        finally:
            if connections is not None:
                connections.close()
        return sent

    def _loop(self) -> None:
        """Claim and send until stopped. The database going away (a restart, a failover) is
        waited out: the first error of an outage is logged (then every `OUTAGE_LOG_EVERY`th),
        the waits grow to `OUTAGE_MAX_WAIT_S` so a long outage is not hammered, and the return
        is logged; the pool reconnects by itself (core/uow.py)."""
        connections = Connections() if self.keep_alive else None
        try:
            self._claim_loop(connections)
        finally:
            if connections is not None:
                connections.close()

    def _claim_loop(self, connections: Connections | None) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                busy = self.run_once(connections) > 0
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
                if connections is not None:
                    connections.expire()
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
