"""What proof of presence costs the server: a tap's SUN verification, and a tap check-in next to
a GPS check-in.

    make bench-presence              # or: .venv/bin/python -m bench.presence [--n 400]

(`make bench` runs it too, at the end, and puts its figures in the report.)

1. The verification alone, in this process: the per-tag key derivation (HKDF-SHA256) and the SUN
   checks of geo/sun.py (AES-128-CBC decryption of `picc_data`, the session key's AES-CMAC, the
   SDM MAC's AES-CMAC, two constant-time comparisons), as CPU time per tap over many taps.
2. Whole requests through the app in this process (Flask's test client, the app's real pools) on a
   throwaway database with the schema at head: `POST /v1/checkins` with a GPS fix, `POST
   /v1/taps`, and `POST /v1/checkins` spending the tap's token. Each is timed as wall time and as
   this process's CPU time per request (the service's Python work, plus the test client's own
   small share; PostgreSQL's work runs in its own processes and shows in the wall time only).
   Each user checks in once per venue with the cooldown off, so every check-in is verified and
   unlocks the venue's offer: the same work in both kinds, but for the proof.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import create_engine, make_url, text

from api import create_app, db
from api.cli import alembic_config
from core.uow import sqlalchemy_url
from geo import sun
from mobile_stub.client import Client, FlaskTransport
from mobile_stub.ntag import SoftTag, random_uid

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
HELSINKI = {"type": "Point", "coordinates": [24.9384, 60.1699]}


def verification_cpu_us(n: int) -> dict[str, float]:
    """CPU microseconds per tap: key derivation and SUN verification, each and together."""
    master = secrets.token_bytes(32)
    tag_id = uuid.uuid4()
    keys = sun.derive_keys(master, sun.TAG, tag_id)
    uid = random_uid()
    tag = SoftTag(uid, keys.sdm_meta_read_key.hex(), keys.sdm_file_read_key.hex())
    reads = []
    for _ in range(n):
        query = dict(p.split("=") for p in tag.read().split("?")[1].split("&"))
        reads.append((query["picc_data"], query["cmac"]))
    raw_uid = bytes.fromhex(uid)

    def per_call(work: Callable[[int], object]) -> float:
        started = time.process_time()
        for i in range(n):
            work(i)
        return (time.process_time() - started) / n * 1e6

    derive = per_call(lambda i: sun.derive_keys(master, sun.TAG, tag_id))
    verify = per_call(lambda i: sun.verify(keys, raw_uid, *reads[i]))
    both = per_call(
        lambda i: sun.verify(sun.derive_keys(master, sun.TAG, tag_id), raw_uid, *reads[i])
    )
    return {
        "derive_keys_us": round(derive, 1),
        "verify_us": round(verify, 1),
        "tap_verification_us": round(both, 1),
    }


def _database(server_url: str, name: str) -> str:
    server = make_url(sqlalchemy_url(server_url))
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    config = alembic_config(url)
    config.attributes["skip_logging"] = True
    command.upgrade(config, "head")
    return url


def _drop(server_url: str, name: str) -> None:
    server = make_url(sqlalchemy_url(server_url))
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _timed(calls: list[Callable[[], Any]]) -> dict[str, float]:
    walls: list[float] = []
    cpu_started = time.process_time()
    for call in calls:
        started = time.perf_counter()
        call()
        walls.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu_started) / len(calls)
    walls.sort()
    return {
        "requests": len(calls),
        "cpu_ms": round(cpu * 1e3, 3),
        "wall_median_ms": round(statistics.median(walls) * 1e3, 3),
        "wall_p90_ms": round(walls[int(0.9 * (len(walls) - 1))] * 1e3, 3),
    }


def requests_cost(server_url: str, n: int) -> dict[str, Any]:
    """Per-request CPU and wall time of a GPS check-in, a tap and a tap check-in."""
    name = f"co_bench_presence_{secrets.token_hex(3)}"
    url = _database(server_url, name)
    os.environ.setdefault("NFC_MASTER_KEY", secrets.token_hex(32))
    app = create_app({"DATABASE_URL": url, "RATE_LIMIT_ENABLED": False})
    try:
        api = Client(FlaskTransport(app.test_client()))
        owner = api.with_token(api.create_merchant("Bench", "bench@example.com")["api_key"])
        venues = [
            owner.create_venue(
                {"name": f"V{i}", "location": HELSINKI, "checkin_cooldown_minutes": 0}
            )
            for i in range(2)
        ]
        gps_venue, tap_venue = venues
        for venue, min_proof in ((gps_venue, "gps"), (tap_venue, "nfc_tap")):
            offer = owner.create_offer(
                {
                    "venue_ids": [venue["id"]],
                    "title": "Bench",
                    "rule": {"kind": "every_checkin"},
                    "per_user_cap": 1000,
                    "min_proof": min_proof,
                }
            )
            owner.activate_offer(offer["id"])
        uid = random_uid()
        tag = SoftTag.programmed(owner.register_nfc_tag(tap_venue["id"], uid), uid)
        users = [
            api.with_token(api.create_user(f"b{i}_{secrets.token_hex(3)}", "bench-pass")["token"])
            for i in range(n)
        ]
        lon, lat = HELSINKI["coordinates"]

        def gps(user: Client) -> Callable[[], Any]:
            return lambda: user.check_in(
                gps_venue["id"], lat, lon, 10, datetime.now(UTC).isoformat()
            )

        gps_cost = _timed([gps(u) for u in users])
        reads = [tag.read() for _ in users]
        tokens: list[str] = []

        def tap(user: Client, read: str) -> Callable[[], Any]:
            return lambda: tokens.append(user.tap(read)["tap_token"])

        tap_cost = _timed([tap(u, r) for u, r in zip(users, reads, strict=True)])

        def tap_checkin(user: Client, token: str) -> Callable[[], Any]:
            def call() -> Any:
                result = user.check_in(
                    tap_venue["id"], lat, lon, 10, datetime.now(UTC).isoformat(), tap_token=token
                )
                assert result["proof"] == "nfc_tap" and result["unlocks"], result
                return result

            return call

        tap_checkin_cost = _timed([tap_checkin(u, t) for u, t in zip(users, tokens, strict=True)])
        return {
            "gps_checkin": gps_cost,
            "tap": tap_cost,
            "tap_checkin": tap_checkin_cost,
            "tap_and_checkin_cpu_ms": round(tap_cost["cpu_ms"] + tap_checkin_cost["cpu_ms"], 3),
        }
    finally:
        db.dispose(app)
        _drop(server_url, name)


def measure(server_url: str, n: int = 400, verifications: int = 20_000) -> dict[str, Any]:
    return {
        "verification": verification_cpu_us(verifications),
        "requests": requests_cost(server_url, n),
    }


def markdown(result: dict[str, Any]) -> list[str]:
    v, r = result["verification"], result["requests"]
    lines = [
        "## Proof of presence (bench/presence.py)",
        "",
        f"Tap verification alone: {v['tap_verification_us']} µs of CPU per tap "
        f"(key derivation {v['derive_keys_us']} µs, SUN checks {v['verify_us']} µs).",
        "",
        "| request (in-process, one at a time) | CPU ms | wall median ms | wall p90 ms |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (
        ("gps_checkin", "POST /v1/checkins, GPS"),
        ("tap", "POST /v1/taps"),
        ("tap_checkin", "POST /v1/checkins, with the tap's token"),
    ):
        row = r[name]
        lines.append(
            f"| {label} | {row['cpu_ms']} | {row['wall_median_ms']} | {row['wall_p90_ms']} |"
        )
    lines.append("")
    lines.append(
        f"A tap check-in (tap + check-in) costs {r['tap_and_checkin_cpu_ms']} ms of CPU against "
        f"{r['gps_checkin']['cpu_ms']} ms for a GPS check-in."
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400, help="requests of each kind")
    parser.add_argument("--verifications", type=int, default=20_000)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        parser.error("DATABASE_URL must name a PostgreSQL server where databases can be created")
    result = measure(server_url, args.n, args.verifications)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "presence.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(markdown(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
