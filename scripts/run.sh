#!/usr/bin/env bash
# `make run`: database, migrations, then the API under gunicorn until Ctrl-C or SIGTERM.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PORT=${PORT:-8000}
HOST=${HOST:-127.0.0.1}

started_pg=""
server=""
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if [ -n "$started_pg" ]; then scripts/pg.sh stop || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${DATABASE_URL:-}" ]; then
    [ "$(scripts/pg.sh start)" = started ] && started_pg=1
    DATABASE_URL=$(scripts/pg.sh url)
    export DATABASE_URL
fi

.venv/bin/flask --app api.wsgi migrate

.venv/bin/gunicorn "api.wsgi:app" --bind "$HOST:$PORT" \
    --worker-class gthread --workers "${WEB_CONCURRENCY:-2}" --threads "${THREADS:-8}" \
    --graceful-timeout 20 --access-logfile - &
server=$!

for _ in $(seq 1 100); do
    if .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
        echo "checkin-offers is serving on http://$HOST:$PORT (API docs: http://$HOST:$PORT/docs). Ctrl-C stops it."
        break
    fi
    kill -0 "$server" 2>/dev/null || { echo "error: the server exited" >&2; exit 1; }
    sleep 0.2
done
wait "$server"
