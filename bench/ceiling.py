"""The database's own ceiling: pgbench running the very statements the service sends.

The statements are not written by hand. `capture` sends real requests through the Flask app
(in-process) against the bench database and records every statement exactly as psycopg2 sent it
(`cursor.query`, parameters already interpolated: psycopg2 always sends literal SQL over the
simple query protocol, which is what `pgbench -M simple` does too; a check-in's two calls of
migration 0018's PL/pgSQL functions replay as those calls, and the functions' plans stay in
each pgbench connection as they stay in each of the service's pooled connections). `template`
then turns the values that must differ per transaction into pgbench variables:

- the user (its UUID, its token's lookup) becomes `:u`, drawn at random from the last quarter
  of the users, which the load generator leaves alone (a pgbench check-in would make its user
  too recent, or too far away, for the load's next one);
- every UUID the app generated (check-in, unlock, redemption, attempt ids), the unlock code and
  the `Idempotency-Key` get a per-transaction unique tail `:c`;
- a redemption's code and unlock id walk the pgbench pool of live codes (`'B...'`), so every
  transaction redeems a fresh code, as the service's load does.

Each operation gets several captured scripts (different venues, points, offers), chosen at
random by pgbench, wrapped in `BEGIN; ... COMMIT;` when the service sent them in a transaction
(a read-only request's ROLLBACK costs what a COMMIT does; statements the service sends in
autocommit mode run alone, as they do there). What is *not* in the ceiling: the service's own
work between statements (Python, JSON, HTTP) and the connection pool's occasional liveness ping
of an idle connection. That is the point: the ratio is how much of the database's
capacity the service turns into answers.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url, text

from bench import dataset
from bench.dataset import TAIL_BASE, Plan

_OUR_UUID = re.compile(r"000000(\d\d)-0000-4000-8000-(\d{12})")
_ANY_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Captured:
    op: str
    statements: list[str]
    status: int
    body: bytes
    transactional: bool  # sent inside BEGIN ... COMMIT (psycopg2 not in autocommit mode)


def capture(app: Any, calls: list[tuple[str, Callable[[Any], Any]]]) -> list[Captured]:
    """Run each call (op name, function of a Flask test client) and record its statements."""
    engines = (app.extensions["engine"], app.extensions["autocommit_engine"])
    seen: list[str] = []
    in_transaction: list[bool] = []

    def record(conn: Any, cursor: Any, statement: Any, params: Any, ctx: Any, many: Any) -> None:
        query = cursor.query
        seen.append(query.decode() if isinstance(query, bytes) else str(query))
        in_transaction.append(not cursor.connection.autocommit)

    for engine in engines:
        event.listen(engine, "after_cursor_execute", record)
    client = app.test_client()
    out = []
    try:
        for op, call in calls:
            seen.clear()
            in_transaction.clear()
            response = call(client)
            out.append(
                Captured(
                    op, list(seen), response.status_code, response.get_data(), any(in_transaction)
                )
            )
    finally:
        for engine in engines:
            event.remove(engine, "after_cursor_execute", record)
    return out


def template(
    captured: Captured,
    *,
    user: int | None = None,
    code: str | None = None,
    unlock_tail: int | None = None,
    idempotency_key: str | None = None,
) -> str:
    """A pgbench script of the captured statements, values made per-transaction variables."""
    fresh: dict[str, str] = {}

    def our(match: re.Match[str]) -> str:
        kind, tail = int(match.group(1)), int(match.group(2))
        if user is not None and kind in (dataset.USER, dataset.TOKEN) and tail == TAIL_BASE + user:
            return f"{kind:08d}-0000-4000-8000-:u"
        if unlock_tail is not None and kind == dataset.UNLOCK and tail == unlock_tail:
            return f"{kind:08d}-0000-4000-8000-:unlock_tail"
        return match.group(0)

    def other(match: re.Match[str]) -> str:
        value = match.group(0)
        if value.startswith("000000") and "-0000-4000-" in value:
            return value
        slot = fresh.setdefault(value, f"{len(fresh) + 1:08d}-0000-4000-9000-:c")
        return slot

    lines = []
    for statement in captured.statements:
        sql = _OUR_UUID.sub(our, statement)
        sql = _ANY_UUID.sub(other, sql)
        if user is not None:
            sql = sql.replace(f"'{TAIL_BASE + user}'", "':u'")
        if code is not None:
            formatted = f"{code[:4]}-{code[4:8]}-{code[8:]}"
            for form in (code, formatted):
                sql = sql.replace(form, "P:c" if unlock_tail is None else "B:code_tail")
        for unlock_code in re.findall(r"ARRAY\['([0-9A-Z]{11})'\]", sql):
            sql = sql.replace(unlock_code, "P:c")  # codes the check-in issued
        if idempotency_key is not None:
            sql = sql.replace(idempotency_key, "k:c")
        sql = re.sub(r"--[^\n]*", "", sql)  # comments would swallow the rest once on one line
        lines.append(" ".join(sql.split()) + ";")
    head = ["\\set n :n + 1", "\\set c :base + :client_id * 10000000 + :n"]
    if user is not None:
        head.append("\\set u 100000000000 + random(:ufirst, :users - 1)")
    if unlock_tail is not None:
        head += [
            "\\set jj (:client_id * :share + :n) % :pool",
            "\\set code_tail 100000000000 + :jj",
            "\\set unlock_tail 100000000000 + :pgfirst + :jj",
        ]
    body = ["BEGIN;", *lines, "COMMIT;"] if captured.transactional else lines
    return "\n".join(head + body) + "\n"


def pgbench_bin() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    raise RuntimeError("pgbench not found (Debian: postgresql-client)")


@dataclass
class PgbenchResult:
    tps: float
    latency_ms: float
    transactions: int
    failed: int


def run_pgbench(
    url: str,
    scripts: list[str],
    clients: int,
    seconds: float,
    variables: dict[str, int],
) -> PgbenchResult:
    parsed = make_url(url)
    with tempfile.TemporaryDirectory(prefix="co-pgbench-") as tmp:
        args = [
            pgbench_bin(),
            "-n",
            "-M",
            "simple",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(max(1, round(seconds))),
            "-h",
            parsed.host or "127.0.0.1",
            "-p",
            str(parsed.port or 5432),
            "-U",
            parsed.username or "postgres",
        ]
        for name, value in {"n": 0, **variables}.items():
            args += ["-D", f"{name}={value}"]
        for i, script in enumerate(scripts):
            path = Path(tmp) / f"s{i}.sql"
            path.write_text(script)
            args += ["-f", f"{path}@1"]
        args.append(parsed.database or "postgres")
        env = {"PGPASSWORD": parsed.password or "", "PGOPTIONS": "-c jit=off -c timezone=UTC"}
        done = subprocess.run(args, capture_output=True, text=True, env={**_base_env(), **env})
    out = done.stdout + done.stderr
    tps = re.search(r"tps = ([\d.]+) \(without", out)
    lat = re.search(r"latency average = ([\d.]+) ms", out)
    txs = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if done.returncode != 0 or not tps:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{out[-3000:]}")
    return PgbenchResult(
        float(tps.group(1)),
        float(lat.group(1)) if lat else 0.0,
        int(txs.group(1)) if txs else 0,
        int(failed.group(1)) if failed else 0,
    )


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def next_nonce(engine: Any) -> int:
    """A fresh 9-digit-block base for this run's generated ids (12 decimal digits in all)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO bench_meta VALUES ('nonce', '0') ON CONFLICT (key) DO UPDATE"
                " SET value = to_jsonb((bench_meta.value #>> '{}')::int + 1)"
            )
        )
        nonce = int(
            conn.execute(text("SELECT value #>> '{}' FROM bench_meta WHERE key = 'nonce'")).scalar()
        )
    return 2 * TAIL_BASE + (nonce % 700) * 10**9


def make_codes_live(engine: Any, first: int, count: int) -> None:
    """Make a pool of generated unlocks (ids `first` to `first + count - 1`) redeemable again:
    earlier runs on a reused database redeemed some."""
    ids = [dataset.ident(dataset.UNLOCK, i) for i in range(first, first + count)]
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM redemptions WHERE unlock_id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": ids},
        )
        conn.execute(
            text(
                "UPDATE unlocks SET redeemed_at = NULL WHERE id = ANY(CAST(:ids AS uuid[]))"
                " AND redeemed_at IS NOT NULL"
            ),
            {"ids": ids},
        )


def meta(engine: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        value = conn.execute(text("SELECT value FROM bench_meta WHERE key = 'plan'")).scalar()
    return dict(value) if isinstance(value, dict) else json.loads(value)


__all__ = ["Captured", "Plan", "capture", "meta", "next_nonce", "run_pgbench", "template"]
