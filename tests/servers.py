"""A real server process, started the way `scripts/run.sh` starts it: gunicorn with
`api/gunicorn_conf.py`, gthread workers, on a port of its own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (a graceful stop) and wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def start_gunicorn(
    database_url: str,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    workers: int = 2,
    threads: int = 8,
    graceful_timeout: int = 5,
) -> Server:
    """gunicorn on a free port, answering `/healthz`; its stdout and stderr go to `log_path`."""
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(gunicorn),
                "--config",
                "python:api.gunicorn_conf",
                "api.wsgi:app",
                "--bind",
                f"127.0.0.1:{port}",
                "--worker-class",
                "gthread",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--graceful-timeout",
                str(graceful_timeout),
            ],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{server.base}/healthz", timeout=1).close()
            return server
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(server.log()) from None
            time.sleep(0.1)


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition, as a scraper reads it (0 when absent)."""
    wanted = dict(labels)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return float(sample.value)
    return 0.0
