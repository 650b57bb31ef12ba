# checkin-offers API: applies the database migrations, then serves with gunicorn on port 8000.
# Needs DATABASE_URL (postgresql://user:pass@host:5432/db on PostgreSQL 15 + PostGIS 3) and
# SECRET_KEY (`openssl rand -hex 32`): the image runs as production, which refuses to start
# without one (docs/configuration.md; docker-compose.yml declares development instead).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONPATH=/app

WORKDIR /app

# Only what the service needs; README.m[d] copies README.md when it exists and nothing otherwise.
COPY pyproject.toml alembic.ini README.m[d] ./
COPY api ./api
COPY core ./core
COPY geo ./geo
COPY offers ./offers
COPY mobile_stub ./mobile_stub
COPY migrations ./migrations

# Every dependency ships a manylinux wheel (psycopg2-binary, shapely, pyproj), so no compiler.
# The code runs from /app (PYTHONPATH), where `migrate` finds alembic.ini and migrations/;
# the install brings the dependencies. Build leftovers are removed from the source tree.
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent app

USER 10001:10001

EXPOSE 8000

# 503 (database down) raises in urlopen, so the check fails just as it does for no answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Migrations first (the service must not serve an old schema), then exec so gunicorn is PID 1 and
# gets SIGTERM for its 20 s graceful shutdown (Compose's stop_grace_period outlasts it).
# api/gunicorn_conf.py validates the configuration, logs JSON lines on stdout (LOG_FORMAT=auto and
# no terminal; one per request, from the app: no gunicorn access log) and shares metrics between the workers; WEB_CONCURRENCY,
# THREADS and the rest come from the environment (docs/configuration.md).
# --worker-tmp-dir /dev/shm: gunicorn's worker heartbeat files on the container's overlay
# filesystem can stall workers.
CMD ["sh", "-c", "flask --app api.wsgi migrate && exec gunicorn api.wsgi:app --config python:api.gunicorn_conf --bind 0.0.0.0:8000 --worker-class gthread --graceful-timeout 20 --worker-tmp-dir /dev/shm"]
