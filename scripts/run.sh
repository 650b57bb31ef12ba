#!/usr/bin/env bash
# `make run`: database, migrations, then the API under gunicorn until Ctrl-C or SIGTERM.
# SIGTERM and Ctrl-C stop gunicorn gracefully: requests in flight finish (GRACEFUL_TIMEOUT, 20 s).
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

# Tags', cards' and member codes' keys derive from it (docs/presence.md): a local one unless set.
NFC_MASTER_KEY=${NFC_MASTER_KEY:-$(scripts/devkey.sh)}
export NFC_MASTER_KEY
.venv/bin/flask --app api.wsgi migrate

# Everything else (workers, threads, graceful timeout, JSON logs, the metrics directory shared by
# the workers) comes from api/gunicorn_conf.py and the environment: docs/configuration.md.
export HOST PORT
.venv/bin/gunicorn --config python:api.gunicorn_conf "api.wsgi:app" &
server=$!

for _ in $(seq 1 100); do
    if .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
        echo "checkin-offers is serving on http://$HOST:$PORT (API docs: http://$HOST:$PORT/docs). Ctrl-C stops it."
        # The Helsinki demo (mobile_stub/demo.py) on an empty database; DEMO=0 skips it.
        [ "${DEMO:-1}" = 0 ] || .venv/bin/python -m mobile_stub.demo load --url "http://127.0.0.1:$PORT" ||
            echo "warning: the demo could not be loaded; the server runs on (DEMO=0 skips the demo)" >&2
        break
    fi
    kill -0 "$server" 2>/dev/null || { echo "error: the server exited" >&2; exit 1; }
    sleep 0.2
done
wait "$server"
