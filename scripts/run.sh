#!/usr/bin/env bash
# `make run`: database, migrations, then the API under gunicorn and the webhook delivery worker
# (api/webhook_worker.py) beside it, until Ctrl-C or SIGTERM stops both.
#
# Development settings (docs/configuration.md): APP_ENV=development, and with the private cluster
# the SECRET_KEY kept with it (`scripts/pg.sh secret-key`), so dashboard sessions survive a
# restart. PORT: that port, or without it the first free one from 8000 (scripts/serve.py).
# REPLICAS=N (with the private cluster): N hot standbys made with pg_basebackup serve the reads.
# Ctrl-C and SIGTERM stop gunicorn gracefully: requests in flight finish (GRACEFUL_TIMEOUT, 20 s);
# the webhook worker stops claiming and finishes its deliveries in flight (seconds: its timeouts);
# then the cluster stops too if this run started it. Webhooks to plain http on loopback are
# accepted (WEBHOOKS_ALLOW_HTTP_LOOPBACK=1, for a receiver on this machine) unless set to 0.
#
# Every step that fails stops the run with its own message and a non-zero status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
HOST=${HOST:-127.0.0.1}
export HOST
export APP_ENV=${APP_ENV:-development}
# `make demo` signs a dozen personas up from this machine's address at every run: more sign-ups
# per address than production's default (docs/configuration.md), still a limit.
export RATE_LIMIT_SIGN_IN_PER_IP=${RATE_LIMIT_SIGN_IN_PER_IP:-300/minute}
export WEBHOOKS_ALLOW_HTTP_LOOPBACK=${WEBHOOKS_ALLOW_HTTP_LOOPBACK:-1}

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

started_pg=""
child=""   # the step running now (migrations, the demo)
server=""  # gunicorn
worker=""  # the webhook delivery worker
port_file=$(mktemp)
cleanup() {
    local status=$? pid
    trap - EXIT INT TERM HUP
    for pid in $child $server $worker; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -f "$port_file"
    if [ -n "$started_pg" ]; then scripts/pg.sh stop || true; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# A step in the background, waited for: Ctrl-C reaches this script at once (the step ignores it,
# as background commands do), and cleanup stops the step.
step() {
    "$@" &
    child=$!
    local status=0
    wait "$child" || status=$?
    child=""
    return "$status"
}

[ -x .venv/bin/gunicorn ] || die "no virtual environment in .venv/: start with make run (it runs scripts/venv.sh)"

if [ -z "${DATABASE_URL:-}" ]; then
    pg_state=$(scripts/pg.sh start) || exit 1  # pg.sh has said what went wrong
    if [ "$pg_state" = started ]; then started_pg=1; fi
    DATABASE_URL=$(scripts/pg.sh url) || exit 1
    export DATABASE_URL
    if [ -z "${SECRET_KEY:-}" ]; then
        SECRET_KEY=$(scripts/pg.sh secret-key) || exit 1
        export SECRET_KEY
    fi
    # REPLICAS=N: N hot standbys of the private cluster serve the reads (docs/scaling.md). They
    # stop with the private cluster (`make stop-db`, or the end of a run that started it); their
    # data stays for the next run (`scripts/pg.sh --cluster replica-1 destroy` deletes one).
    if [ "${REPLICAS:-0}" != 0 ] && [ -z "${DATABASE_REPLICA_URLS:-}" ]; then
        [[ $REPLICAS =~ ^[1-9]$ ]] || die "REPLICAS must be a number from 0 to 9, got '$REPLICAS'"
        urls=()
        for i in $(seq 1 "$REPLICAS"); do
            scripts/pg.sh --cluster "replica-$i" standby >/dev/null || exit 1
            urls+=("$(scripts/pg.sh --cluster "replica-$i" url)") || exit 1
        done
        DATABASE_REPLICA_URLS=$(IFS=,; echo "${urls[*]}")
        export DATABASE_REPLICA_URLS
        say "reads go to $REPLICAS hot standby(s) of the private cluster (DATABASE_REPLICA_URLS)"
    fi
fi

# Tags', cards' and member codes' keys derive from it (docs/presence.md): a local one unless set.
if [ -z "${NFC_MASTER_KEY:-}" ]; then
    NFC_MASTER_KEY=$(scripts/devkey.sh) || die "could not make the local NFC master key (scripts/devkey.sh)"
    export NFC_MASTER_KEY
fi

# Alembic's two lines of preamble on every start are left out; what it applies is shown.
migrate_log=$(mktemp)
if ! step .venv/bin/flask --app api.wsgi migrate >"$migrate_log" 2>&1; then
    cat "$migrate_log" >&2
    rm -f "$migrate_log"
    die "the migrations did not run (see above)"
fi
grep -v -e 'Context impl ' -e 'Will assume transactional DDL' "$migrate_log" >&2 || true
rm -f "$migrate_log"

# The webhook delivery worker (docs/integrations.md): it sends what the outbox holds, committed
# before this start included.
.venv/bin/python -m api.webhook_worker &
worker=$!

# Everything else (workers, threads, graceful timeout, logs, the metrics directory shared by
# the workers) comes from api/gunicorn_conf.py and the environment: docs/configuration.md.
.venv/bin/python scripts/serve.py "$port_file" &
server=$!

# serve.py writes the port once it holds it; the socket listens from then on, so one request
# waits in its queue until a worker has loaded the app (a longer timeout, fewer requests).
healthy() {
    .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=15)' \
        "http://127.0.0.1:$PORT/healthz" 2>/dev/null
}
PORT=""
deadline=$((SECONDS + 120))
until [ -n "$PORT" ] && healthy; do
    if ! kill -0 "$server" 2>/dev/null; then
        wait "$server" || true
        server=""
        die "the server did not start (see above)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "the server did not answer /healthz within 2 minutes"
    [ -n "$PORT" ] || PORT=$(cat "$port_file")
    sleep 0.2
done
base="http://$HOST:$PORT"
[ "$HOST" != 0.0.0.0 ] || base="http://127.0.0.1:$PORT"
# The Helsinki demo (mobile_stub/demo.py) on an empty database; DEMO=0 skips it.
if [ "${DEMO:-1}" != 0 ]; then
    step .venv/bin/python -m mobile_stub.demo load --url "http://127.0.0.1:$PORT" ||
        say "warning: the demo could not be loaded; the server runs on (DEMO=0 skips the demo)"
fi
demo_hint=""
[ "$PORT" = 8000 ] || demo_hint=" PORT=$PORT"
cat >&2 <<EOF

checkin-offers is serving on $base
  API docs     $base/docs
  dashboard    $base/dashboard
  demo story   make demo$demo_hint   (in another terminal)
  webhooks     delivered by the worker beside the API (docs/integrations.md)
Ctrl-C stops both.

EOF
status=0
wait "$server" || status=$?
server=""
[ "$status" = 0 ] || die "the server stopped by itself with status $status (see above)"
