"""Rate limits hold across gunicorn's worker processes: with PostgreSQL (the default) and Redis.

A gunicorn with two workers and tight limits: per API key 20, per user (all tokens) 15, per client IP
30 a minute. Bursts of parallel requests, each on a connection of its own so that both workers
answer (the server's log says which process answered each), get exactly the limit through: a
limiter counting per worker would let up to twice as many through. Client addresses come from
`X-Forwarded-For` (`TRUSTED_PROXIES=1`), a fresh one per scenario, so the scenarios do not share
the per-IP budget.

Redis: a `redis-server` of this test's own on a free port (the test fails when the binary
is missing; `make test` installs it). When it dies, the service keeps answering, counting in each worker's
memory, instead of failing.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.servers import Server, free_port, start_gunicorn

pytestmark = pytest.mark.e2e

LIMITS = {
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_PER_KEY": "20/minute",
    "RATE_LIMIT_PER_USER": "15/minute",
    "RATE_LIMIT_PER_IP": "30/minute",
    "TRUSTED_PROXIES": "1",
}
NEARBY = "/v1/venues/nearby?lat=65.01&lon=25.47"


def _address() -> str:
    """A client address of the documentation range, different for every scenario and run."""
    return f"198.51.{random.randrange(256)}.{random.randrange(1, 255)}"


@dataclass
class Burst:
    statuses: dict[int, int]
    workers: set[int]  # the pids of the worker processes that answered
    refused: requests.Response | None


def _burst(server: Server, path: str, n: int, headers: dict[str, str]) -> Burst:
    """`n` requests at once, each on its own connection (so on whichever worker accepts it)."""
    tag = f"burst-{random.randrange(10**12)}"

    def one(i: int) -> requests.Response:
        sent = {**headers, "Connection": "close", "X-Request-ID": f"{tag}-{i}"}
        return requests.get(server.base + path, headers=sent, timeout=30)

    with ThreadPoolExecutor(max_workers=n) as pool:
        responses = list(pool.map(one, range(n)))
    statuses: dict[int, int] = {}
    for response in responses:
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    workers = set()
    for line in server.log().splitlines():
        if tag in line and line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == "request" and entry["request_id"].startswith(tag):
                workers.add(entry["pid"])
    refused = next((r for r in responses if r.status_code == 429), None)
    return Burst(statuses, workers, refused)


def _post(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(
        base + path, json=body, headers={"X-Forwarded-For": _address()}, timeout=30
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _check_refusal(response: requests.Response | None, limit: str, what: str) -> None:
    assert response is not None
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["code"]) == (429, "rate_limited")
    assert what in problem["detail"] and limit in problem["detail"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["RateLimit-Remaining"] == "0"
    assert 0 <= int(response.headers["RateLimit-Reset"]) <= 60


def _until_both_workers(scenario: Callable[[], Burst], attempts: int = 5) -> Burst:
    """Run a scenario (each time with a fresh caller) until both workers answered its burst:
    the OS may hand one worker every connection of a burst. Every run must be exact."""
    for _ in range(attempts):
        burst = scenario()
        if len(burst.workers) == 2:
            return burst
    raise AssertionError(f"one worker answered every burst of {attempts}")


def _limits_hold(server: Server) -> None:
    """Each limit lets exactly its number of requests through, over both workers."""
    base = server.base

    def keyed() -> Burst:
        tag = random.randrange(10**9)
        owner_key = _post(base, "/v1/merchants", {"name": "L", "email": f"l{tag}@example.com"})[
            "api_key"
        ]
        auth = {"Authorization": f"Bearer {owner_key}", "X-Forwarded-For": _address()}
        burst = _burst(server, "/v1/merchants/me", 30, auth)
        assert burst.statuses == {200: 20, 429: 10}
        _check_refusal(burst.refused, "20/minute", "API key")
        return burst

    def users() -> Burst:
        body = {"handle": f"l{random.randrange(10**9)}", "password": "pass-word-1"}
        token = _post(base, "/v1/users", body)["token"]
        auth = {"Authorization": f"Bearer {token}", "X-Forwarded-For": _address()}
        burst = _burst(server, "/v1/me/unlocks", 25, auth)
        assert burst.statuses == {200: 15, 429: 10}
        _check_refusal(burst.refused, "15/minute", "this user (all")
        return burst

    def anonymous() -> Burst:
        address = _address()
        burst = _burst(server, NEARBY, 45, {"X-Forwarded-For": address})
        assert burst.statuses == {200: 30, 429: 15}
        _check_refusal(burst.refused, "30/minute", "address")
        # ... and it stays refused, whichever worker answers.
        later = _burst(server, NEARBY, 6, {"X-Forwarded-For": address})
        assert later.statuses == {429: 6}
        return burst

    for scenario in (keyed, users, anonymous):
        _until_both_workers(scenario)


def test_limits_hold_across_two_workers_with_postgresql(
    live_database_url: str, tmp_path: Path
) -> None:
    server = start_gunicorn(live_database_url, tmp_path / "gunicorn.log", env=LIMITS, workers=2)
    try:
        _limits_hold(server)
    finally:
        assert server.stop() == 0


# ---- Redis -----------------------------------------------------------------------------------


class Redis:
    def __init__(self, directory: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is missing: `make test` installs Debian's redis-server")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while self.command("PING") != "+PONG":
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *words: str) -> str:
        """One inline command's reply line, or '' when the server does not answer."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                conn.sendall((" ".join(words) + "\r\n").encode())
                return conn.recv(4096).decode().split("\r\n")[0]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path)
    yield server
    server.stop()


def test_limits_hold_across_two_workers_with_redis(
    live_database_url: str, tmp_path: Path, redis: Redis
) -> None:
    server = start_gunicorn(
        live_database_url,
        tmp_path / "gunicorn.log",
        env={**LIMITS, "REDIS_URL": redis.url},
        workers=2,
    )
    try:
        _limits_hold(server)
        keys = int(redis.command("DBSIZE").lstrip(":"))
        assert keys >= 5  # the counters are in Redis (not in PostgreSQL, not in memory)

        redis.stop()  # the storage is gone: the service answers, counting in memory
        fallback = _burst(server, NEARBY, 4, {"X-Forwarded-For": _address()})
        assert fallback.statuses == {200: 4}
        assert "falling back to in-memory storage" in server.log()
    finally:
        assert server.stop() == 0
