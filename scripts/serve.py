"""Take the server's port, then become gunicorn on it (`scripts/run.sh`, `make run`).

    serve.py PORT_FILE

Binding the port here, before gunicorn starts, makes choosing a port and taking it one step:
two `make run` started at once (two checkouts) cannot both see port 8000 free and then fight over
it. With `PORT` set, that port or a clear error; without it, the first free port from 8000 up.
The chosen port is written to PORT_FILE for run.sh, and gunicorn serves on the bound socket
(`--bind fd://N`), with everything else from `api/gunicorn_conf.py` as always.

gunicorn gets a process group of its own, so Ctrl-C in the terminal reaches run.sh alone, which
then stops gunicorn with SIGTERM: a graceful stop (gunicorn takes SIGINT as a quick one).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

FIRST_PORT = 8000
TRIES = 100


def take_port(host: str, wanted: int | None, first: int = FIRST_PORT) -> socket.socket:
    """A listening socket on `wanted`, or on the first free port from `first` when None."""
    ports = [wanted] if wanted is not None else range(first, first + TRIES)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in ports:
        sock = socket.socket(family, socket.SOCK_STREAM)
        # As gunicorn does: a server that just stopped (TIME_WAIT) does not block the port, one
        # that listens does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and wanted is None:
                continue
            if exc.errno == errno.EADDRINUSE:
                raise SystemExit(
                    f"error: port {port} is in use; choose another one: make run PORT=9000"
                ) from None
            raise SystemExit(f"error: cannot listen on {host}:{port}: {exc.strerror}") from None
        sock.listen(2048)
        return sock
    raise SystemExit(f"error: no free port from {first} to {first + TRIES - 1}; set PORT")


def main(argv: list[str]) -> None:
    (port_file,) = argv
    host = os.environ.get("HOST", "127.0.0.1")
    raw = os.environ.get("PORT", "").strip()
    if raw and not (raw.isdigit() and 0 < int(raw) < 65536):
        raise SystemExit(f"error: PORT must be a port number, got {raw!r}")
    sock = take_port(host, int(raw) if raw else None)
    port = sock.getsockname()[1]
    Path(port_file).write_text(f"{port}\n")
    os.set_inheritable(sock.fileno(), True)
    os.environ["PORT"] = str(port)  # what api/gunicorn_conf.py validates and reports
    os.setpgrp()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    os.execv(
        gunicorn,
        [
            gunicorn,
            "--config",
            "python:api.gunicorn_conf",
            "--bind",
            f"fd://{sock.fileno()}",
            "api.wsgi:app",
        ],
    )


if __name__ == "__main__":
    main(sys.argv[1:])
