"""Read replicas: hot standbys of the primary, kept by PostgreSQL's own streaming replication
(`DATABASE_REPLICA_URLS`, docs/scaling.md).

Each worker keeps, per replica, a pool and what it last learned of the replica's health: `up`
(in rotation), `lagging` (its replay is more than `REPLICA_MAX_LAG_SECONDS` behind, or it is not
streaming from the primary), `down` (it
did not answer) or `not_standby` (it is not in recovery: promoted, or misconfigured). A replica's
health is checked at most every `REPLICA_CHECK_SECONDS`, by the request that needs it next, one
thread at a time (the others go on with what is known); a replica that fails a query is `down`
at once. A replica out of rotation is checked again on the same schedule and put back when
healthy.

The read-your-writes rule is a fence on the primary's WAL position (`fence()`): a read that must
see earlier writes first asks the primary for `pg_current_wal_flush_lsn()` (a function call, no
table read), then reads a replica only once its `pg_last_wal_replay_lsn()` has passed that
position. Every commit the caller saw acknowledged before this request began lies below it, on
any worker or host (a commit is acknowledged once its WAL is flushed; the flush position, not the
insert position, which runs ahead with WAL no standby can have yet): no state is kept per caller, so the API servers stay stateless.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.uow import make_engine, sqlalchemy_url

UP, LAGGING, DOWN, NOT_STANDBY, UNKNOWN = "up", "lagging", "down", "not_standby", "unknown"
STATES = (UP, LAGGING, DOWN, NOT_STANDBY, UNKNOWN)
# Why a read that could go to a replica went to the primary (the reads metric's `reason`).
REASONS = ("replica", "no_replica", "behind", "replica_failed")

# What a replica says of itself: whether it is a standby, how far it has received and replayed
# the primary's WAL, and whether it is streaming (its WAL receiver runs: a replica just started,
# or cut off from the primary, cannot know how far behind it is, and is out of rotation).
HEALTH = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn()::text,"
    " pg_last_wal_replay_lsn()::text, EXISTS (SELECT 1 FROM pg_stat_wal_receiver)"
)
REPLAYED = text("SELECT pg_last_wal_replay_lsn()::text")
PRIMARY_POSITION = text("SELECT pg_current_wal_flush_lsn()::text")


def lsn(value: str | None) -> int | None:
    """A `pg_lsn` as text (`16/B374D848`) as a number, to compare."""
    if not value:
        return None
    high, _, low = value.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def display_name(url: str) -> str:
    """host:port/database: a replica's name in metrics, logs and `/readyz` (never the password)."""
    parts = make_url(sqlalchemy_url(url))
    return f"{parts.host}:{parts.port or 5432}/{parts.database}"


@dataclass
class Replica:
    name: str
    engine: Engine
    sessions: sessionmaker[Session]
    state: str = UNKNOWN
    lag_seconds: float | None = None
    replayed: int = 0  # the highest replay position seen: it only moves forward
    # (received position, when) at each check where it had received WAL it had not replayed
    backlog: deque[tuple[int, float]] = field(default_factory=deque)
    checked_at: float = -1e9
    error: str | None = None
    checking: threading.Lock = field(default_factory=threading.Lock)


class ReplicaSet:
    def __init__(self, config: Mapping[str, Any]):
        self.max_lag = float(config["REPLICA_MAX_LAG_SECONDS"])
        self.interval = float(config["REPLICA_CHECK_SECONDS"])
        self.fresh_wait = int(config["REPLICA_FRESH_WAIT_MS"]) / 1000
        self.replicas: list[Replica] = []
        for url in config["DATABASE_REPLICA_URLS"] or ():
            engine = make_engine(
                url,
                pool_size=config["DB_POOL_SIZE"],
                max_overflow=config["DB_MAX_OVERFLOW"],
                # Reads only, each statement its own transaction: no BEGIN and ROLLBACK round
                # trips (READ COMMITTED takes a snapshot per statement anyway).
                autocommit=True,
                # A replica that does not answer must not hold a request for long.
                connect_timeout=2,
            )
            self.replicas.append(
                Replica(display_name(url), engine, sessionmaker(engine, expire_on_commit=False))
            )
        self._turn = itertools.count()
        self.on_state: Any = None  # metrics hook: called with a replica after each check

    # ---- health ------------------------------------------------------------------------

    def check(self, replica: Replica) -> None:
        """Ask the replica how it is, and take it out of rotation or put it back."""
        try:
            with replica.engine.connect() as conn:
                in_recovery, received, replayed, streaming = conn.execute(HEALTH).one()
        except Exception as error:  # any failure at all: out of rotation, never a 500
            replica.state, replica.lag_seconds = DOWN, None
            replica.error = type(error).__name__
            replica.backlog.clear()
            replica.engine.dispose()
        else:
            replica.error = None
            replica.replayed = max(replica.replayed, lsn(replayed) or 0)
            replica.lag_seconds = self._lag(replica, lsn(received))
            if not in_recovery:
                replica.state = NOT_STANDBY
            elif not streaming:
                replica.state, replica.lag_seconds = LAGGING, None
                replica.backlog.clear()
            elif replica.lag_seconds > self.max_lag:
                replica.state = LAGGING
            else:
                replica.state = UP
        replica.checked_at = time.monotonic()
        if self.on_state is not None:
            self.on_state(replica)

    @staticmethod
    def _lag(replica: Replica, received: int | None) -> float:
        """How long the replica has held WAL it has not replayed: the time since the first
        check that saw it receive a position it has still not replayed (0 when it has replayed
        all it has received). Measured against its own receipt, not against the age of the last
        transaction it replayed, which reads as seconds of lag on a primary that was idle for
        seconds and then wrote."""
        now = time.monotonic()
        backlog = replica.backlog
        while backlog and backlog[0][0] <= replica.replayed:
            backlog.popleft()
        if (
            received is not None
            and received > replica.replayed
            and (not backlog or backlog[-1][0] < received)
        ):
            backlog.append((received, now))
        return now - backlog[0][1] if backlog else 0.0

    def refresh(self, replica: Replica, *, force: bool = False) -> None:
        """Check the replica if its last check is older than the interval (one thread does)."""
        if not force and time.monotonic() - replica.checked_at < self.interval:
            return
        # Another thread is checking it: go on with what is known, or wait for the first check.
        if not replica.checking.acquire(blocking=force or replica.state == UNKNOWN):
            return
        try:
            if force or time.monotonic() - replica.checked_at >= self.interval:
                self.check(replica)
        finally:
            replica.checking.release()

    def mark_down(self, replica: Replica, error: BaseException) -> None:
        replica.state, replica.lag_seconds = DOWN, None
        replica.error = type(error).__name__
        replica.checked_at = time.monotonic()
        replica.engine.dispose()
        if self.on_state is not None:
            self.on_state(replica)

    def in_rotation(self) -> list[Replica]:
        for replica in self.replicas:
            self.refresh(replica)
        return [r for r in self.replicas if r.state == UP]

    def status(self) -> list[dict[str, Any]]:
        """Each replica freshly checked, for `/readyz`."""
        for replica in self.replicas:
            self.refresh(replica, force=True)
        return [
            {"name": r.name, "state": r.state, "lag_seconds": r.lag_seconds} for r in self.replicas
        ]

    # ---- choosing ------------------------------------------------------------------------

    def choose(self, fence: int | None) -> tuple[Replica | None, str]:
        """A replica in rotation (round robin) that has replayed up to `fence` (waiting up to
        `REPLICA_FRESH_WAIT_MS` for one), or None with the reason to read the primary."""
        healthy = self.in_rotation()
        if not healthy:
            return None, "no_replica"
        start = next(self._turn)
        ordered = [healthy[(start + i) % len(healthy)] for i in range(len(healthy))]
        if fence is None:
            return ordered[0], "replica"
        deadline = time.monotonic() + self.fresh_wait
        pause = 0.001
        while True:
            for replica in ordered:
                if replica.replayed >= fence:
                    return replica, "replica"
                try:
                    with replica.engine.connect() as conn:
                        replayed = lsn(conn.execute(REPLAYED).scalar_one()) or 0
                except Exception as error:
                    self.mark_down(replica, error)
                    continue
                replica.replayed = max(replica.replayed, replayed)
                if replica.replayed >= fence:
                    return replica, "replica"
            ordered = [r for r in ordered if r.state == UP]
            if not ordered or time.monotonic() + pause > deadline:
                return None, "behind" if ordered else "replica_failed"
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def dispose(self) -> None:
        for replica in self.replicas:
            replica.engine.dispose()
