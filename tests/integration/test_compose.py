"""The container setup: docker-compose.yml checked by a real Compose parser (Debian's docker-compose,
v1, which `make test` installs), and the image's files run the way the image runs them.

No Docker daemon is needed: `docker-compose config` only parses and validates, and the image is
simulated by a copy of exactly what the Dockerfile copies (less .dockerignore), served by its own
CMD and checked by its own HEALTHCHECK.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from api.config import ConfigError, load
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


# --- docker-compose.yml ----------------------------------------------------------------------


@cache
def docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail(
            "docker-compose is not installed; these tests validate docker-compose.yml with it. "
            "`make test` installs it (apt-get install --no-install-recommends docker-compose)",
            pytrace=False,
        )
    return path


# What the person running `docker compose up` may have set in the shell and the file passes on.
PASSED_THROUGH = ("SECRET_KEY", "LOG_FORMAT", "NFC_MASTER_KEY")


def compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """docker-compose as it runs in a shell where none of PASSED_THROUGH is set but `env`."""
    environ = {k: v for k, v in os.environ.items() if k not in PASSED_THROUGH}
    return subprocess.run(
        [docker_compose(), "-f", str(COMPOSE_FILE), *args],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _yaml_to_data(text: str) -> Any:
    """PyYAML from this environment if there is one, else from docker-compose's own interpreter
    (Compose v1 is a Python program that depends on PyYAML; it has no JSON output)."""
    try:
        import yaml
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    first_line = Path(docker_compose()).read_text(errors="replace").partition("\n")[0]
    interpreter = shlex.split(first_line.removeprefix("#!"))
    assert "python" in " ".join(interpreter), f"cannot find docker-compose's Python: {first_line}"
    converted = subprocess.run(
        [
            *interpreter,
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(converted.stdout)


@cache
def compose_config() -> dict[str, Any]:
    """The configuration as Compose resolved it (defaults filled in, short forms expanded)."""
    result = compose("config")
    assert result.returncode == 0, result.stderr
    config = _yaml_to_data(result.stdout)
    assert isinstance(config, dict)
    return config


def service(name: str) -> dict[str, Any]:
    services = compose_config()["services"]
    assert name in services, f"no service {name!r} in docker-compose.yml"
    return dict(services[name])


def test_compose_file_is_valid() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_compose_services() -> None:
    result = compose("config", "--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"api", "db", "webhooks"}


def test_the_webhook_worker_runs_the_api_image_against_the_same_database() -> None:
    worker, api = service("webhooks"), service("api")
    assert worker["build"] == api["build"]
    assert worker["command"] == ["python", "-m", "api.webhook_worker"]
    assert worker["environment"]["DATABASE_URL"] == api["environment"]["DATABASE_URL"]
    assert worker["depends_on"]["api"]["condition"] == "service_healthy"  # migrated by then
    grace = worker["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) >= 15, "in-flight deliveries finish on stop"


def test_the_images_own_files_run_the_webhook_worker(tmp_path: Path, database_url: str) -> None:
    """The worker's module and its signing library are in the image: `--once` sends what is
    due (nothing here) and exits 0."""
    app_dir = image_tree(tmp_path / "app")
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(app_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "image-test-" + "k" * 40,
        "NFC_MASTER_KEY": "cd" * 32,
    }
    done = subprocess.run(
        [sys.executable, "-m", "api.webhook_worker", "--once"],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "sent 0 due deliveries" in done.stdout  # its log lines, like the API's


def test_db_is_postgis_with_a_named_volume_and_a_healthcheck() -> None:
    db = service("db")
    assert db["image"].startswith("postgis/postgis:15-3")
    env = db["environment"]
    assert env["POSTGRES_PASSWORD"]
    assert env["POSTGRES_DB"] == "checkin_offers"
    volumes = compose_config().get("volumes") or {}
    assert any(str(v).split(":")[0] in volumes for v in db["volumes"]), db["volumes"]
    assert "pg_isready" in db["healthcheck"]["test"]


def test_db_port_is_not_published_on_the_host() -> None:
    assert not service("db").get("ports")


def test_api_is_built_here_and_waits_for_a_healthy_db() -> None:
    api = service("api")
    assert Path(api["build"]["context"]).resolve() == ROOT
    assert api["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert [(p["published"], p["target"]) for p in api["ports"]] == [(8000, 8000)]


def test_api_database_url_matches_the_db_service() -> None:
    url = service("api")["environment"]["DATABASE_URL"]
    env = service("db")["environment"]
    user = env.get("POSTGRES_USER", "postgres")
    assert url == f"postgresql://{user}:{env['POSTGRES_PASSWORD']}@db:5432/{env['POSTGRES_DB']}"


def test_api_starts_out_of_the_box_as_development_with_no_secret_written_down() -> None:
    """`docker compose up` with nothing set: the api service's environment passes the same
    validation gunicorn runs at start (development makes up the missing SECRET_KEY), while the
    same environment as production is refused, so the file can never hand a fixed secret, or
    none, to a production deployment."""
    env = {k: str(v) for k, v in service("api")["environment"].items()}
    assert env["APP_ENV"] == "development"
    assert env["SECRET_KEY"] == ""  # nothing written in the file: made up at each start
    config = load(environ=env)
    assert config["APP_ENV"] == "development" and config["SECRET_KEY"] is None
    with pytest.raises(ConfigError, match="SECRET_KEY is not set: in production"):
        load(environ={**env, "APP_ENV": "production"})


def test_api_takes_secret_key_and_log_format_from_the_shell() -> None:
    """A key kept in the shell (or in .env) keeps dashboard sessions across restarts."""
    key = "0123456789abcdef" * 4
    result = compose("config", SECRET_KEY=key, LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    env = _yaml_to_data(result.stdout)["services"]["api"]["environment"]
    assert (env["SECRET_KEY"], env["LOG_FORMAT"]) == (key, "json")
    assert load(environ={k: str(v) for k, v in env.items()})["SECRET_KEY"] == key


def test_api_has_a_healthcheck_on_healthz() -> None:
    healthcheck = service("api")["healthcheck"]
    assert not healthcheck.get("disable")
    assert "http://127.0.0.1:8000/healthz" in " ".join(healthcheck["test"])


def test_api_stop_grace_period_outlasts_gunicorn_graceful_timeout() -> None:
    period = service("api").get("stop_grace_period", "10s")
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", period)
    assert match, period
    assert int(match[1] or 0) * 60 + int(match[2] or 0) > 20


# --- Dockerfile and .dockerignore --------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    result = []
    for line in logical:
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def args_of(keyword: str) -> list[str]:
    return [args for k, args in instructions() if k == keyword]


def copy_sources() -> list[str]:
    sources = []
    for args in args_of("COPY") + args_of("ADD"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        sources.extend(words[:-1])
    return sources


def image_tree(into: Path) -> Path:
    """The files the image would hold at /app: every COPY source, less what .dockerignore
    excludes from the build context."""
    patterns = [
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]

    def ignored(relative: str) -> bool:
        name = relative.rsplit("/", 1)[-1]
        return any(
            fnmatch.fnmatchcase(relative, p)
            or (p.startswith("**/") and fnmatch.fnmatchcase(name, p[3:]))
            for p in patterns
        )

    for source in copy_sources():
        for path in sorted(ROOT.glob(source)):
            relative = path.relative_to(ROOT).as_posix()
            if ignored(relative):
                continue
            if path.is_file():
                (into / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into / relative)
                continue
            for file in sorted(path.rglob("*")):
                rel = file.relative_to(ROOT).as_posix()
                if file.is_file() and not any(ignored(part) for part in _prefixes(rel)):
                    (into / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, into / rel)
    return into


def _prefixes(relative: str) -> list[str]:
    parts = relative.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build_context() -> None:
    patterns = {
        line.strip().rstrip("/").removeprefix("**/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    for local in (".venv", ".pg", ".git", ".env", "__pycache__", ".pytest_cache", "tests"):
        assert local in patterns, f".dockerignore must keep {local} out of the build context"


def test_the_image_runs_as_an_unprivileged_user() -> None:
    users = args_of("USER")
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_the_images_own_files_migrate_serve_and_pass_the_healthcheck(
    tmp_path: Path, database_url: str
) -> None:
    """What the image would hold, run the way the image runs it: the CMD's migrate and
    gunicorn (bound to a free port here) from a copy of exactly the COPY'd files, then the
    HEALTHCHECK's own command. A package or file the Dockerfile forgets to copy, a .dockerignore
    that drops one, or a broken CMD fails here."""
    app_dir = image_tree(tmp_path / "app")
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(app_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "image-test-" + "k" * 40,
        "NFC_MASTER_KEY": "cd" * 32,
        "WEB_CONCURRENCY": "1",
    }
    # Every module the app loads comes from the image's copy, not from this checkout.
    probe = (
        "import sys, api.wsgi; root = sys.argv[1]; "
        "files = {getattr(m, '__file__', None) or '' for m in list(sys.modules.values())}; "
        "print('\\n'.join(sorted(f for f in files "
        "if f.startswith(root) and not f.startswith(sys.prefix))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT) + "/"],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "", f"loaded from the checkout, not the image:\n{loaded.stdout}"

    (cmd,) = args_of("CMD")
    argv = json.loads(cmd)  # exec form: no extra shell wrapped around it by Docker
    port = free_port()
    script = argv[-1].replace("0.0.0.0:8000", f"127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in script, "the CMD binds port 8000, as EXPOSE says"
    assert args_of("EXPOSE") == ["8000"]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*argv[:-1], script],
            cwd=app_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        (healthcheck,) = args_of("HEALTHCHECK")
        check = json.loads(healthcheck.partition("CMD")[2].strip())
        check = [a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in check]
        check[0] = sys.executable if check[0] == "python" else check[0]

        def healthy() -> bool:
            assert server.poll() is None, log.read_text()
            return subprocess.run(check, env=env, capture_output=True, timeout=10).returncode == 0

        wait_for(healthy, "the image's healthcheck to pass", timeout=90, every=0.5)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0, f"no clean shutdown on SIGTERM:\n{log.read_text()}"
    assert "database schema is up to date" in log.read_text()  # the CMD migrated first


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
