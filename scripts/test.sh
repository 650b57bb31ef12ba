#!/usr/bin/env bash
# `make test`: database, then the whole test suite against throwaway databases (tests/conftest.py
# creates one per run on the server and drops it afterwards). Arguments go to pytest.
#
# Every step that fails stops here with its own message and a non-zero status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The Compose file is validated by a real Compose parser in the suite.
command -v docker-compose >/dev/null || scripts/pg.sh ensure-apt docker-compose
# The rate-limit test also runs against a Redis server of its own (tests/e2e/test_ratelimit.py).
command -v redis-server >/dev/null || scripts/pg.sh ensure-apt redis-server
# The dashboard's browser tests drive Debian's Chromium (Playwright cannot download browsers here).
scripts/pg.sh ensure-apt chromium

started_pg=""
cleanup() {
    local status=$?
    trap - EXIT
    if [ -n "$started_pg" ]; then scripts/pg.sh stop || true; fi
    exit "$status"
}
trap cleanup EXIT

if [ -z "${DATABASE_URL:-}" ]; then
    pg_state=$(scripts/pg.sh start) || exit 1  # pg.sh has said what went wrong
    if [ "$pg_state" = started ]; then started_pg=1; fi
    DATABASE_URL=$(scripts/pg.sh url postgres) || exit 1
    export DATABASE_URL
fi
# The suite creates its own databases on this server; it never touches DATABASE_URL's own database.
# It runs the app as production does, with a SECRET_KEY of its own (tests/conftest.py).
.venv/bin/python -m pytest "$@"
