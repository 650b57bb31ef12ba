#!/usr/bin/env bash
# The project's private PostgreSQL + PostGIS cluster, and the system packages it needs.
#
#   scripts/pg.sh ensure-postgis   install PostgreSQL/PostGIS from the distribution if missing
#   scripts/pg.sh ensure-apt PKG   install a Debian package if missing (used by `make test`)
#   scripts/pg.sh start            start the private cluster in .pg/ (created on first use);
#                                  prints "started" or "running" on stdout
#   scripts/pg.sh stop             stop it
#   scripts/pg.sh url [DB]         the connection URL of the private cluster (database DB, default app)
#
# The cluster lives in .pg/ (ignored by git), listens on 127.0.0.1 only, on a free port chosen on
# first start and kept in .pg/port, with a random password kept in .pg/password.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGDIR="$ROOT/.pg"
DATA="$PGDIR/data"
APP_DB=checkin_offers

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else return 1
    fi
}

pg_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ] && { pg_config --bindir; return 0; }
    return 1
}

pg_major() { "$(pg_bindir)/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/'; }

has_postgis() {
    local major=$1
    [ -f "/usr/share/postgresql/$major/extension/postgis.control" ] && return 0
    command -v pg_config >/dev/null && [ -f "$(pg_config --sharedir)/extension/postgis.control" ]
}

apt_install() {
    command -v apt-get >/dev/null || return 1
    say "installing $* from the distribution's packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || return 1
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

cmd_ensure_postgis() {
    if ! pg_bindir >/dev/null; then
        apt_install postgresql || die "PostgreSQL is not installed and could not be installed here.
Install PostgreSQL 15+ with PostGIS 3 (Debian/Ubuntu: postgresql postgresql-15-postgis-3;
Fedora: postgresql-server postgis; macOS: brew install postgresql postgis), set DATABASE_URL to a
database where you may CREATE EXTENSION postgis, or run everything in containers: docker compose up"
    fi
    local major
    major=$(pg_major)
    has_postgis "$major" && return 0
    apt_install "postgresql-$major-postgis-3" && has_postgis "$major" && return 0
    die "PostGIS 3 for PostgreSQL $major is missing and could not be installed here.
Install it (Debian/Ubuntu: postgresql-$major-postgis-3; Fedora: postgis; macOS: brew install postgis),
set DATABASE_URL to a PostGIS database, or run everything in containers: docker compose up"
}

cmd_ensure_apt() {
    local pkg=$1
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' && return 0
    apt_install "$pkg" || die "could not install $pkg; install it by hand"
}

# initdb and postgres refuse to run as root; as root we run them as the 'postgres' system user.
run_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_in_use() {
    python3 -c 'import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

is_running() { [ -d "$DATA" ] && run_pg "$(pg_bindir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

cmd_start() {
    cmd_ensure_postgis
    local bin
    bin=$(pg_bindir)
    if [ ! -f "$DATA/PG_VERSION" ]; then
        say "creating a private PostgreSQL cluster in .pg/"
        mkdir -p "$PGDIR"
        python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$PGDIR/password"
        if [ "$(id -u)" = 0 ]; then
            chown -R postgres: "$PGDIR"
            runuser -u postgres -- test -w "$PGDIR" || die "the 'postgres' user cannot reach $PGDIR;
make the project's parent folders traversable (chmod o+x) or set DATABASE_URL"
        fi
        chmod 700 "$PGDIR"
        run_pg "$bin/initdb" -D "$DATA" -U postgres --auth=scram-sha-256 \
            --pwfile="$PGDIR/password" -E UTF8 --locale=C.UTF-8 >"$PGDIR/initdb.log" 2>&1 ||
            { cat "$PGDIR/initdb.log" >&2; die "initdb failed"; }
        free_port >"$PGDIR/port"
    fi
    if is_running; then
        echo running
        return 0
    fi
    local port
    port=$(cat "$PGDIR/port")
    if port_in_use "$port"; then
        port=$(free_port)
        echo "$port" >"$PGDIR/port"
    fi
    run_pg "$bin/pg_ctl" -D "$DATA" -l "$PGDIR/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $PGDIR -c max_connections=200" \
        start >&2 || { tail -20 "$PGDIR/server.log" >&2; die "PostgreSQL did not start"; }
    PGPASSWORD=$(cat "$PGDIR/password") "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qtAc \
        "SELECT 1 FROM pg_database WHERE datname = '$APP_DB'" | grep -q 1 ||
        PGPASSWORD=$(cat "$PGDIR/password") "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$APP_DB"
    echo started
}

cmd_stop() {
    is_running || return 0
    run_pg "$(pg_bindir)/pg_ctl" -D "$DATA" -m fast -w stop >&2
}

cmd_url() {
    local db=${1:-$APP_DB}
    echo "postgresql://postgres:$(cat "$PGDIR/password")@127.0.0.1:$(cat "$PGDIR/port")/$db"
}

case "${1:-}" in
    ensure-postgis) cmd_ensure_postgis ;;
    ensure-apt) cmd_ensure_apt "$2" ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    url) cmd_url "${2:-}" ;;
    *) die "usage: $0 ensure-postgis|ensure-apt PKG|start|stop|url [DB]" ;;
esac
