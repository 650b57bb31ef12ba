#!/usr/bin/env bash
# The dashboard's front-end assets (`make run` and `make test` run this).
#
# dashboard/package-lock.json pins the npm packages (Leaflet, Leaflet-Geoman, qrcode-generator,
# world-atlas, topojson-client, and axe-core for the browser tests). `npm ci` installs exactly
# those into dashboard/node_modules (again only when the lock file changed), then
# dashboard/build.mjs copies their distribution files into api/dashboard/static/vendor/ and builds
# the offline basemap in api/dashboard/static/basemap/. Those outputs are committed, so the app
# serves the dashboard where there is no Node.js (the Docker image); the build rewrites only files
# that differ, and `scripts/dashboard.sh --check` fails if they differ from the lock file's.
#
# Without npm the committed assets are used as they are: the app runs, but the browser tests need
# axe-core from node_modules, so `make test` installs Debian's npm when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

mode=build
need_npm=""
for arg in "$@"; do
    case "$arg" in
        --check) mode=check ;;
        --for-tests) need_npm=1 ;;
        *) echo "usage: scripts/dashboard.sh [--check] [--for-tests]" >&2; exit 2 ;;
    esac
done

if ! command -v npm >/dev/null; then
    if [ -n "$need_npm" ]; then
        scripts/pg.sh ensure-apt npm
    else
        [ -f api/dashboard/static/vendor/leaflet/leaflet.js ] ||
            die "npm is missing and so are the dashboard's assets"
        echo "dashboard: npm not found; serving the committed assets in api/dashboard/static" >&2
        exit 0
    fi
fi

stamp=dashboard/node_modules/.lock-sha256
want=$(sha256sum dashboard/package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "dashboard: npm ci (dashboard/package-lock.json)" >&2
    (cd dashboard && npm ci --no-audit --no-fund --no-progress --loglevel=error >&2) ||
        die "npm ci failed in dashboard/ (npm's messages above)"
    echo "$want" > "$stamp"
fi

if [ "$mode" = check ]; then
    node dashboard/build.mjs --check ||
        die "api/dashboard/static differs from dashboard/package-lock.json: run scripts/dashboard.sh"
else
    node dashboard/build.mjs || die "the dashboard's build (dashboard/build.mjs) failed"
fi
