"""The pure parts of replica routing (api/replicas.py): WAL positions compare as numbers, a
replica's name never carries its password, and with no replica in rotation a read is sent to the
primary with its reason. Routing on a real standby: tests/e2e/test_replicas.py."""

from __future__ import annotations

from api.replicas import DOWN, ReplicaSet, display_name, lsn

CONFIG = {
    "REPLICA_MAX_LAG_SECONDS": 1.0,
    "REPLICA_CHECK_SECONDS": 60.0,
    "REPLICA_FRESH_WAIT_MS": 0,
    "DB_POOL_SIZE": 1,
    "DB_MAX_OVERFLOW": 0,
}


def test_wal_positions_compare_as_numbers() -> None:
    assert lsn("0/3E442C8") == 0x3E442C8
    assert lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert lsn("1/0") > lsn("0/FFFFFFFF")  # type: ignore[operator]
    assert lsn(None) is None and lsn("") is None


def test_a_replica_is_named_without_its_password() -> None:
    name = display_name("postgresql://u:secret@db-replica-1:5433/checkin_offers")
    assert name == "db-replica-1:5433/checkin_offers"
    assert display_name("postgres://u:pw@h/db") == "h:5432/db"


def test_with_every_replica_out_of_rotation_reads_go_to_the_primary() -> None:
    replicas = ReplicaSet(
        {**CONFIG, "DATABASE_REPLICA_URLS": ("postgresql://u:pw@127.0.0.1:1/db",)}
    )
    [replica] = replicas.replicas
    replicas.mark_down(replica, ConnectionRefusedError())  # checked just now: not again for 60 s
    assert replica.state == DOWN
    assert replicas.choose(None) == (None, "no_replica")
    assert replicas.choose(123) == (None, "no_replica")
    replicas.dispose()


def test_lag_is_how_long_the_replica_has_held_wal_it_has_not_replayed(monkeypatch) -> None:
    replicas = ReplicaSet(
        {**CONFIG, "DATABASE_REPLICA_URLS": ("postgresql://u:pw@127.0.0.1:1/db",)}
    )
    [replica] = replicas.replicas
    clock = [100.0]
    monkeypatch.setattr("api.replicas.time.monotonic", lambda: clock[0])

    replica.replayed = 10
    assert replicas._lag(replica, 10) == 0  # replayed all it received
    assert replicas._lag(replica, 50) == 0  # received more just now: no lag seen yet
    clock[0] = 101.0
    assert replicas._lag(replica, 80) == 1.0  # still has not replayed 50, received at 100
    clock[0] = 103.0
    assert replicas._lag(replica, 90) == 3.0  # paused: it keeps growing
    replica.replayed = 60  # replayed past 50, not 80 (seen at 101)
    assert replicas._lag(replica, 90) == 2.0
    replica.replayed = 90
    assert replicas._lag(replica, 90) == 0  # caught up
    # An idle primary that writes again: the replica replays it within the check, no lag.
    clock[0] = 200.0
    replica.replayed = 95
    assert replicas._lag(replica, 95) == 0
    replicas.dispose()
