"""A new user's first steps, for real: a fresh clone in a directory only its owner may enter.

On a fresh Debian server people work as root in /root (mode 700), where the `postgres` user, which
runs PostgreSQL for root, cannot enter: the private cluster used to live there and failed to
start, and the scripts went on to a stack trace. Each test here clones this repository
(`git clone`, then this checkout's uncommitted and new files on top, so the scripts under test
are the ones in the working tree) into such a directory and runs the scripts as a user would:

- the cluster script: start, url, a psycopg2 connection with PostGIS, stop, start again, destroy;
- its awkward cases: its port taken while it was stopped, a stale `postmaster.pid` (a server
  killed, a reboot that gave its pid to another process), a `kill -9` of the server;
- `scripts/run.sh` (`make run`) in two clones at once, one at a terminal (text logs, Ctrl-C) and
  one on pipes (JSON logs, SIGTERM), then again, with the dashboard session still valid;
- setup steps that fail: one `error:` line, a non-zero status, no traceback.

The clones share this checkout's virtual environment (a symbolic link: creating one needs the
network and a minute), and everything they start is stopped and deleted at the end, clusters
included (`scripts/pg.sh destroy`).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
import requests

from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AS_ROOT = os.geteuid() == 0
# What the person's shell would not have set; the suite's own environment has some of them.
NOT_SET = (
    "DATABASE_URL",
    "SECRET_KEY",
    "NFC_MASTER_KEY",
    "APP_ENV",
    "LOG_FORMAT",
    "PORT",
    "HOST",
    "DEMO",
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_SET}
    return {**env, **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Clone:
    """A clone of this repository in a private directory (mode 700)."""

    def __init__(self, parent: Path, name: str, *, existing: bool = False):
        self.path = parent / name
        if existing:
            return
        parent.mkdir(parents=True, exist_ok=True)
        parent.chmod(0o700)
        subprocess.run(
            ["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(self.path)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout.split(b"\0")
        for name_bytes in filter(None, listed):
            source = ROOT / os.fsdecode(name_bytes)
            if source.is_file():
                target = self.path / os.fsdecode(name_bytes)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        (self.path / ".venv").symlink_to(ROOT / ".venv")
        self.path.chmod(0o700)

    def pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.path / "scripts" / "pg.sh"), *args],
            cwd=self.path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def url(self, db: str = "checkin_offers") -> str:
        return self.pg("url", db).stdout.strip()

    def where(self) -> Path:
        return Path(self.pg("where").stdout.strip())

    def port(self) -> int:
        return int((self.where() / "port").read_text())

    def destroy(self) -> None:
        done = self.pg("destroy", check=False)
        assert done.returncode == 0, done.stderr
        assert not self.where().exists()


@pytest.fixture
def clones(tmp_path: Path) -> Iterator[Callable[..., Clone]]:
    made: list[Clone] = []

    def make(name: str, existing: bool = False) -> Clone:
        clone = Clone(tmp_path / "home", name, existing=existing)
        made.append(clone)
        return clone

    yield make
    for clone in made:
        clone.destroy()


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(url, connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _refused(url: str) -> bool:
    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.OperationalError:
        return True
    return False


def _postgres_can_enter(path: Path) -> bool:
    done = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(path)])
    return done.returncode == 0


# ---- the cluster script ----------------------------------------------------------------------


def test_a_clone_in_a_private_directory_gets_a_working_cluster(
    clones: Callable[..., Clone],
) -> None:
    clone = clones("checkin-offers")
    if AS_ROOT:  # the situation that failed: PostgreSQL's user cannot enter the clone
        assert not _postgres_can_enter(clone.path)

    started = clone.pg("start")
    assert started.stdout == "started\n"
    assert "creating a private PostgreSQL cluster" in started.stderr
    assert "error" not in started.stderr
    url = clone.url()
    assert re.fullmatch(r"postgresql://postgres:[0-9a-f]{64}@127\.0\.0\.1:\d+/checkin_offers", url)
    _query(url, "CREATE EXTENSION IF NOT EXISTS postgis")
    assert _query(url, "SELECT ST_AsText(ST_MakePoint(24.94, 60.17))") == [("POINT(24.94 60.17)",)]
    _query(url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")

    where = clone.where()
    if AS_ROOT:
        assert where.parent == Path("/var/lib/checkin-offers")
        assert os.readlink(clone.path / ".pg" / "cluster") == str(where)
        assert (where / "checkout").read_text().strip() == str(clone.path)
        assert where.stat().st_uid == (where / "data").stat().st_uid != 0
    else:
        assert where == clone.path / ".pg"
    for secret in ("password", "secret_key"):
        assert stat.S_IMODE((where / secret).stat().st_mode) == 0o600
    assert not list(where.glob(".s.PGSQL.*"))  # TCP only: no socket file to collide on

    assert clone.pg("start").stdout == "running\n"
    clone.pg("stop")
    assert _refused(url)
    assert clone.pg("start").stdout == "started\n"
    assert _query(url, "SELECT n FROM kept") == [(42,)]  # the same data, the same password
    clone.destroy()
    assert _refused(url)
    assert not (clone.path / ".pg").exists()
    missing = clone.pg("url", check=False)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == (
        "error: this checkout has no private cluster yet (start it: scripts/pg.sh start)\n"
    )


def test_the_cluster_survives_a_taken_port_a_stale_pid_file_and_kill_9(
    clones: Callable[..., Clone],
) -> None:
    clone = clones("co")
    clone.pg("start")
    clone.pg("stop")

    # Its port taken by another program while it was stopped: it moves, and says so.
    old_port = clone.port()
    with socket.socket() as squatter:
        # As servers do: the stopped cluster's own connections may still hold the port in
        # TIME_WAIT (when a backend closed first), which a plain bind refuses.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        moved = clone.pg("start")
    assert f"port {old_port} is taken now; the cluster moves to port" in moved.stderr
    assert clone.port() != old_port
    assert f":{clone.port()}/" in clone.url()
    assert _query(clone.url(), "SELECT 1") == [(1,)]

    # A pid file left behind, naming a live process that is not PostgreSQL (after a reboot).
    clone.pg("stop")
    pid_file = clone.where() / "data" / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{clone.where() / 'data'}\n")
    again = clone.pg("start")
    assert again.stdout == "started\n"
    assert "was not shut down cleanly" in again.stderr
    assert _query(clone.url(), "SELECT 1") == [(1,)]

    # The server killed outright.
    postmaster = int(pid_file.read_text().split()[0])
    os.kill(postmaster, signal.SIGKILL)
    wait_for(lambda: _refused(clone.url()), "the killed server to let go of its port", timeout=60)
    assert clone.pg("start").stdout == "started\n"
    assert _query(clone.url(), "SELECT 1") == [(1,)]


def test_two_clones_started_at_once_get_clusters_of_their_own(
    clones: Callable[..., Clone],
) -> None:
    one, two = clones("app"), clones("app-copy")
    starts = [
        subprocess.Popen(
            [str(c.path / "scripts" / "pg.sh"), "start"],
            cwd=c.path,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in (one, two)
    ]
    outputs = [p.communicate(timeout=300) for p in starts]
    assert [p.returncode for p in starts] == [0, 0], outputs
    assert [out for out, _ in outputs] == ["started\n", "started\n"]
    assert one.where() != two.where() and one.port() != two.port()
    assert one.url() != two.url()
    _query(one.url(), "CREATE TABLE mine (n int)")
    assert _query(two.url(), "SELECT to_regclass('mine') IS NULL") == [(True,)]


def test_a_copy_of_a_checkout_gets_its_own_cluster_and_a_moved_one_keeps_its_own(
    clones: Callable[..., Clone],
) -> None:
    original = clones("original")
    original.pg("start")
    _query(original.url(), "CREATE TABLE marker (n int)")
    original.pg("stop")
    shutil.copytree(original.path, original.path.with_name("copy"), symlinks=True)
    copy = clones("copy", existing=True)
    assert copy.pg("start").stdout == "started\n"
    original.pg("start")
    assert copy.where() != original.where() and copy.port() != original.port()
    if AS_ROOT:  # the data is not in the checkout: the copy starts empty, not on the original's
        assert _query(copy.url(), "SELECT to_regclass('marker') IS NULL") == [(True,)]
    copy.pg("stop")
    original.pg("stop")

    moved = original.path.with_name("moved")
    original.path.rename(moved)
    original.path = moved
    started = original.pg("start")
    assert started.stdout == "started\n"
    if AS_ROOT:
        assert "this checkout was moved from" in started.stderr
    assert _query(original.url(), "SELECT to_regclass('marker') IS NULL") == [(False,)]


# ---- make run, twice at once -------------------------------------------------------------------


class Run:
    """`scripts/run.sh` in a clone, its output collected; at a terminal when `tty`."""

    def __init__(self, clone: Clone, port: int, tty: bool, demo: bool = False):
        self.clone = clone
        self.port = port
        self.output = b""
        env = _env(PORT=str(port), DEMO="1" if demo else "0", WEB_CONCURRENCY="2", THREADS="2")
        command = [str(clone.path / "scripts" / "run.sh")]
        if tty:
            main, secondary = os.openpty()
            # setsid --ctty: run.sh leads a session whose terminal is ours, as in a real terminal,
            # so the Ctrl-C typed below reaches its foreground process group.
            self.proc = subprocess.Popen(
                ["setsid", "--ctty", *command],
                cwd=clone.path,
                env=env,
                stdin=secondary,
                stdout=secondary,
                stderr=secondary,
            )
            os.close(secondary)
            self.terminal: int | None = main
        else:
            self.proc = subprocess.Popen(
                command, cwd=clone.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            self.terminal = None
            main = self.proc.stdout.fileno()  # type: ignore[union-attr]
        self.groups: list[int] = []
        self.reader = threading.Thread(target=self._read, args=(main,), daemon=True)
        self.reader.start()
        self.base = f"http://127.0.0.1:{port}"

    def _read(self, fd: int) -> None:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed with its last process
                return
            if not chunk:
                return
            self.output += chunk

    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r\n", "\n")

    def wait_serving(self) -> None:
        wait_for(
            lambda: "checkin-offers is serving on" in self.text() or self.proc.poll() is not None,
            f"run.sh in {self.clone.path.name} to serve",
            timeout=240,
            every=0.2,
        )
        assert self.proc.poll() is None, self.text()
        # gunicorn runs in a process group of its own (scripts/serve.py): kept for kill().
        self.groups = [
            int(pid)
            for pid in subprocess.run(
                ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
            ).stdout.split()
        ]

    def ctrl_c(self) -> None:
        assert self.terminal is not None
        os.write(self.terminal, b"\x03")

    def wait(self) -> int:
        status = self.proc.wait(timeout=120)
        self.reader.join(timeout=10)
        self._close()
        return status

    def _close(self) -> None:
        if self.terminal is not None:
            os.close(self.terminal)
            self.terminal = None
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.reader.join(timeout=10)
            self.proc.stdout.close()

    def kill(self) -> None:
        """Stop run.sh and whatever it started, whatever state it is in (for cleanup)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for group in self.groups:  # a server run.sh failed to stop
            for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group, sig)
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline and _group_alive(group):
                    time.sleep(0.2)
        self._close()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _sign_in(base: str) -> requests.Session:
    """A merchant signed in on the dashboard: the session cookie SECRET_KEY signs."""
    key = requests.post(
        f"{base}/v1/merchants", json={"name": "New Cafe", "email": "new@example.com"}, timeout=30
    ).json()["api_key"]
    browser = requests.Session()
    form = browser.get(f"{base}/dashboard/sign-in", timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    signed_in = browser.post(
        f"{base}/dashboard/sign-in",
        data={"api_key": key, "csrf_token": csrf.group(1)},
        allow_redirects=False,
        timeout=30,
    )
    assert signed_in.status_code == 302
    assert browser.get(f"{base}/dashboard/api/merchants/me", timeout=30).status_code == 200
    return browser


def test_make_run_in_two_clones_at_once_and_again(clones: Callable[..., Clone]) -> None:
    at_terminal, on_pipes = clones("one"), clones("two")
    runs = [
        Run(at_terminal, _free_port(), tty=True, demo=True),  # `make run` as it comes
        Run(on_pipes, _free_port(), tty=False),
    ]
    try:
        for run in runs:
            run.wait_serving()
        for run in runs:
            assert requests.get(f"{run.base}/healthz", timeout=30).status_code == 200
        assert at_terminal.where() != on_pipes.where()
        assert at_terminal.port() != on_pipes.port()
        browser = _sign_in(runs[0].base)
        _sign_in(runs[1].base)

        # A person at a terminal reads short lines; a pipe (a log collector) gets JSON.
        terminal, piped = runs[0].text(), runs[1].text()
        assert re.search(r"^\d\d:\d\d:\d\d INFO  POST /v1/merchants 201 ", terminal, re.M)
        assert "Demo: loaded 120 venues" in terminal and "owner key    cok_" in terminal
        assert not re.search(r"^\{", terminal, re.M)
        assert re.search(r'^\{.*"event": "request"', piped, re.M)
        for out in (terminal, piped):
            assert "Traceback" not in out and "error:" not in out

        # Ctrl-C at the terminal: run.sh stops gunicorn with SIGTERM (graceful), then its cluster.
        runs[0].ctrl_c()
        runs[1].proc.send_signal(signal.SIGTERM)
        assert runs[0].wait() == 130
        assert runs[1].wait() == 143
        assert "Handling signal: term" in runs[0].text()
        assert "Handling signal: int" not in runs[0].text()
        for clone in (at_terminal, on_pipes):
            assert _refused(clone.url())  # the run started the cluster, so it stopped it

        # The SECRET_KEY is kept with the cluster: the session survives a restart.
        key_file = at_terminal.where() / "secret_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        again = Run(at_terminal, runs[0].port, tty=False)
        runs.append(again)
        again.wait_serving()
        assert (
            browser.get(f"{again.base}/dashboard/api/merchants/me", timeout=30).status_code == 200
        )
        again.proc.send_signal(signal.SIGTERM)
        assert again.wait() == 143
    finally:
        for run in runs:
            run.kill()


def test_make_run_takes_the_next_free_port_when_8000_is_taken() -> None:
    """scripts/serve.py binds the port before gunicorn starts: the first free one from 8000
    (here from a free port, to leave 8000 alone), or the one named, or a clear error."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("serve", ROOT / "scripts" / "serve.py")
    assert spec is not None and spec.loader is not None
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    first = _free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first))
        taken.listen()
        with serve.take_port("127.0.0.1", None, first) as chosen:
            assert chosen.getsockname()[1] > first
        with pytest.raises(SystemExit) as refused:
            serve.take_port("127.0.0.1", first)
    assert (
        str(refused.value)
        == f"error: port {first} is in use; choose another one: make run PORT=9000"
    )


# ---- setup steps that fail -------------------------------------------------------------------


def _one_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    """Stopped, with one `error:` line saying `expected`, and no stack trace."""
    assert done.returncode != 0
    everything = done.stdout + done.stderr
    assert "Traceback" not in everything, everything
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    for words in expected:
        assert words in done.stderr, done.stderr


def test_a_failing_setup_step_stops_everything_with_one_message(
    clones: Callable[..., Clone],
) -> None:
    clone = clones("broken")
    # A cluster made by a PostgreSQL that is not installed (an upgrade, a copied directory).
    data = clone.path / ".pg" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("9\n")
    for script in ("run.sh", "test.sh"):
        done = subprocess.run(
            [str(clone.path / "scripts" / script)],
            cwd=clone.path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        _one_error(done, "made by PostgreSQL 9, which is not installed here", "pg.sh destroy")
        assert done.stdout == ""

    # What the empty port file once led to: a configuration error, not the driver's trace.
    done = subprocess.run(
        [str(clone.path / "scripts" / "run.sh")],
        cwd=clone.path,
        env=_env(DATABASE_URL="postgresql://postgres:@127.0.0.1:/checkin_offers"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    _one_error(done, "DATABASE_URL has no valid port", "the migrations did not run")


def test_an_old_python_is_named_and_nothing_is_installed(tmp_path: Path) -> None:
    """No Python 3.11 anywhere on PATH (stand-ins answer like Debian 11's Python 3.9)."""
    clone = Clone(tmp_path / "home", "old-python")
    (clone.path / ".venv").unlink()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python3", "python3.11"):
        stand_in = bin_dir / name
        stand_in.write_text(
            '#!/bin/sh\n[ "$1" = --version ] && { echo "Python 3.9.2"; exit 0; }\nexit 1\n'
        )
        stand_in.chmod(0o755)
    done = subprocess.run(
        [str(clone.path / "scripts" / "venv.sh"), "python3.11"],
        cwd=clone.path,
        env=_env(PATH=f"{bin_dir}:{os.environ['PATH']}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    _one_error(done, "Python 3.11 or newer is needed (python3.11 is Python 3.9.2)")
    assert not (clone.path / ".venv").exists()
