"""The container setup: docker-compose.yml checked by a real Compose parser (Debian's docker-compose,
v1, which `make test` installs), and the Dockerfile and .dockerignore by simple text parsing.

No database and no Docker daemon needed: `docker-compose config` only parses and validates.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# What the image may be built from, and nothing else (README.md is optional).
IMAGE_SOURCES = {
    "api",
    "core",
    "geo",
    "offers",
    "mobile_stub",
    "migrations",
    "alembic.ini",
    "pyproject.toml",
}
MIGRATE = "flask --app api.wsgi migrate"


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


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [docker_compose(), "-f", str(COMPOSE_FILE), *args],
        cwd=ROOT,
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
    assert set(result.stdout.split()) == {"api", "db"}


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


def test_dockerfile_base_user_port() -> None:
    assert args_of("FROM") == ["python:3.11-slim"]
    users = args_of("USER")
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert args_of("EXPOSE") == ["8000"]
    assert any("pip install --no-cache-dir ." in args for args in args_of("RUN"))


def test_dockerfile_copies_only_existing_project_paths() -> None:
    sources = copy_sources()
    plain = {s.rstrip("/") for s in sources if not any(c in s for c in "*?[")}
    globs = [s for s in sources if any(c in s for c in "*?[")]
    assert plain == IMAGE_SOURCES
    for path in plain:
        assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which does not exist"
    # The only optional file: README.md, copied when present by a pattern that may match nothing.
    assert all(fnmatch.fnmatchcase("README.md", pattern) for pattern in globs), globs


def test_dockerignore_keeps_what_the_image_needs_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert not [p for p in patterns if p.startswith("!")], "no re-includes expected"
    for source in [*IMAGE_SOURCES, "README.md"]:
        excluded = [p for p in patterns if fnmatch.fnmatchcase(source, p.rstrip("/"))]
        assert not excluded, f".dockerignore excludes {source}, which the Dockerfile copies"
    for needed in (".venv", ".pg", ".git", "tests", "__pycache__", ".pytest_cache"):
        assert any(p.rstrip("/").removeprefix("**/") == needed for p in patterns), needed


def test_dockerfile_healthcheck_uses_urllib_on_healthz() -> None:
    (healthcheck,) = args_of("HEALTHCHECK")
    assert "urllib.request" in healthcheck
    assert "http://127.0.0.1:8000/healthz" in healthcheck


def test_dockerfile_cmd_migrates_then_execs_gunicorn() -> None:
    (cmd,) = args_of("CMD")
    argv = json.loads(cmd)  # exec form: no extra shell wrapped around it by Docker
    assert argv[:2] == ["sh", "-c"]
    script = argv[2]
    assert script.startswith(f"{MIGRATE} && exec gunicorn "), script
    gunicorn = shlex.split(script.partition(" && exec ")[2])
    assert gunicorn[:2] == ["gunicorn", "api.wsgi:app"]
    options = dict(zip(gunicorn[2::2], gunicorn[3::2], strict=False))
    assert options["--bind"] == "0.0.0.0:8000"
    assert options["--worker-class"] == "gthread"
    assert options["--graceful-timeout"] == "20"
    assert options["--config"] == "python:api.gunicorn_conf"
    # The app logs one JSON line per request (api/observability.py): no gunicorn access log.
    assert "--access-logfile" not in options
    assert "ENTRYPOINT" not in dict(instructions())
