#!/usr/bin/env bash
# The tools the test suite runs on the OpenAPI document (`make test` runs this): Redocly's and
# Spectral's linters, openapi-typescript and the TypeScript compiler (tests/e2e/test_openapi_tools.py).
#
# tests/openapi/package-lock.json pins them; `npm ci` installs exactly those into
# tests/openapi/node_modules, again only when the lock file changed. npm comes from Debian when it
# is missing (as for the dashboard's assets, scripts/dashboard.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v npm >/dev/null || scripts/pg.sh ensure-apt npm

stamp=tests/openapi/node_modules/.lock-sha256
want=$(sha256sum tests/openapi/package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "openapi tools: npm ci (tests/openapi/package-lock.json)" >&2
    (cd tests/openapi && npm ci --no-audit --no-fund --no-progress --loglevel=error >&2) ||
        die "npm ci failed in tests/openapi/ (npm's messages above)"
    echo "$want" > "$stamp"
fi
