#!/usr/bin/env bash
# The project's private PostgreSQL + PostGIS cluster, and the system packages it needs.
#
#   scripts/pg.sh start            start the private cluster (created on first use); prints
#                                  "started" or "running" on stdout, everything else on stderr
#   scripts/pg.sh stop             stop this checkout's clusters (their data stays)
#   scripts/pg.sh url [DB]         the cluster's connection URL (database DB, default checkin_offers)
#   scripts/pg.sh secret-key       the SECRET_KEY `make run` uses with this cluster (made once)
#   scripts/pg.sh where            the directory that holds the cluster's data and state
#   scripts/pg.sh destroy          stop the cluster and delete its data and state for good
#   scripts/pg.sh list             every cluster on this machine kept outside its checkout (root)
#   scripts/pg.sh --cluster NAME standby
#                                  start NAME as a hot standby of `main` (a read replica made with
#                                  pg_basebackup -R on first use, streaming from main after)
#   scripts/pg.sh ensure-postgis   install PostgreSQL/PostGIS from the distribution if missing
#   scripts/pg.sh ensure-apt PKG   install a Debian package if missing (used by `make test`)
#
# `--cluster NAME` before the command picks another cluster of this checkout (default `main`):
# the fault tests run one they can stop and start. Every cluster of a checkout shares its state
# directory (password, SECRET_KEY) and keeps its own data, port and log.
#
# Where the state lives (docs/operations.md, "The private cluster"):
#   - run by a normal user: in .pg/ inside the checkout. PostgreSQL runs as that user.
#   - run by root: initdb and postgres refuse to run as root, so they run as the `postgres` system
#     user, which may not be able to enter the checkout at all (a clone in /root, mode 700). The
#     state then lives in /var/lib/checkin-offers/<folder>-<hash of the checkout's real path>/,
#     owned by `postgres`, and .pg/cluster in the checkout is a symbolic link to it. The hash keeps
#     two checkouts apart; the link (checked against the `checkout` file next to the data) follows
#     a checkout that was moved, while a copy of a checkout gets a cluster of its own.
#   - a checkout whose .pg/data an earlier version of this script made keeps using it.
#
# A cluster listens on 127.0.0.1 only, with no Unix socket (nothing in /tmp or /run to collide
# on), on a port chosen at random at its first start (20000-31999, below the ports the kernel hands
# out to outgoing connections) and kept in its `port` file; when that port is taken, it moves to
# another. The superuser `postgres` has a random password kept in `password` (mode 600).
#
# Every failure stops with one `error:` line on stderr (and the server's own log lines when
# PostgreSQL itself refused) and a non-zero exit status.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SYSTEM_BASE=/var/lib/checkin-offers  # where root's clusters live
APP_DB=checkin_offers
PG_USER=postgres  # the system user PostgreSQL runs as when this script runs as root

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

as_root() {
    if is_root; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else return 1
    fi
}

# initdb and postgres refuse to run as root; as root they run as the `postgres` system user. The
# lock's descriptor is closed for them: the server must not hold this script's lock after it exits.
run_pg() {
    if is_root; then runuser -u "$PG_USER" -- "$@" 9>&-
    else "$@" 9>&-
    fi
}

random_hex() { od -An -vtx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# ---- PostgreSQL and PostGIS ---------------------------------------------------------------

newest_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    if command -v pg_config >/dev/null; then
        d=$(pg_config --bindir) && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    fi
    return 1
}

major_of() { "$1/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/'; }

# The server binaries of PostgreSQL major version $1, or nothing.
bindir_of_major() {
    local major=$1 d
    d=/usr/lib/postgresql/$major/bin
    [ -x "$d/postgres" ] && { echo "$d"; return 0; }
    d=$(newest_bindir) || return 1
    [ "$(major_of "$d")" = "$major" ] && { echo "$d"; return 0; }
    return 1
}

has_postgis() {
    local major=$1
    [ -f "/usr/share/postgresql/$major/extension/postgis.control" ] && return 0
    command -v pg_config >/dev/null && [ -f "$(pg_config --sharedir)/extension/postgis.control" ]
}

apt_install() {
    command -v apt-get >/dev/null || return 1
    say "installing $* from the distribution's packages"
    # Another checkout may be installing at the same moment: wait for dpkg's lock, do not fail.
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
    as_root "${apt[@]}" update >&2 || return 1
    as_root "${apt[@]}" install -y --no-install-recommends "$@" >&2
}

cmd_ensure_postgis() {
    local bin major
    if ! bin=$(newest_bindir); then
        apt_install postgresql && bin=$(newest_bindir) || die "PostgreSQL is not installed and could not be installed here.
Install PostgreSQL 15+ with PostGIS 3 (Debian/Ubuntu: postgresql postgresql-15-postgis-3;
Fedora: postgresql-server postgis; macOS: brew install postgresql postgis), set DATABASE_URL to a
database where you may CREATE EXTENSION postgis, or run everything in containers: docker compose up"
    fi
    major=$(major_of "$bin")
    ensure_postgis_for "$major"
}

ensure_postgis_for() {
    local major=$1
    has_postgis "$major" && return 0
    apt_install "postgresql-$major-postgis-3" && has_postgis "$major" && return 0
    die "PostGIS 3 for PostgreSQL $major is missing and could not be installed here.
Install it (Debian/Ubuntu: postgresql-$major-postgis-3; Fedora: postgis; macOS: brew install postgis),
set DATABASE_URL to a PostGIS database, or run everything in containers: docker compose up"
}

cmd_ensure_apt() {
    local pkg=$1
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' && return 0
    apt_install "$pkg" || die "could not install $pkg; install it by hand (apt-get install $pkg)"
}

# ---- where a checkout's clusters live ---------------------------------------------------

# STATE: the directory with this checkout's clusters (set by find_state).
STATE=""

system_state_for_checkout() {
    local name hash
    name=$(printf '%s' "${ROOT##*/}" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-32)
    hash=$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)
    echo "$SYSTEM_BASE/$name-$hash"
}

find_state() {
    if ! is_root || [ -f "$ROOT/.pg/data/PG_VERSION" ]; then
        STATE=$ROOT/.pg
        return 0
    fi
    local link=$ROOT/.pg/cluster target owner candidate n=1
    if [ -L "$link" ]; then
        target=$(readlink "$link")
        case "$target" in "$SYSTEM_BASE"/*) ;; *) target="" ;; esac
        if [ -n "$target" ] && [ -d "$target" ]; then
            owner=$(cat "$target/checkout" 2>/dev/null || true)
            if [ "$owner" = "$ROOT" ]; then
                STATE=$target
                return 0
            fi
            # The checkout it names is gone: this one was moved here, and its cluster follows.
            # (It still exists: this is a copy, which gets a cluster of its own below.)
            if [ -z "$owner" ] || [ ! -d "$owner" ]; then
                say "this checkout was moved from ${owner:-elsewhere}; its cluster in $target follows it"
                printf '%s\n' "$ROOT" >"$target/checkout"
                STATE=$target
                return 0
            fi
        fi
    fi
    # Keyed by this checkout's path; taken by a checkout that moved away from this path and
    # still exists: the next free name.
    STATE=$(system_state_for_checkout)
    candidate=$STATE
    while [ -d "$candidate" ]; do
        owner=$(cat "$candidate/checkout" 2>/dev/null || true)
        if [ -z "$owner" ] || [ "$owner" = "$ROOT" ] || [ ! -d "$owner" ]; then break; fi
        n=$((n + 1))
        candidate=$STATE-$n
    done
    STATE=$candidate
    if [ -d "$STATE" ]; then  # this checkout's, or left by one that is gone: this checkout's now
        [ "$owner" = "$ROOT" ] || printf '%s\n' "$ROOT" >"$STATE/checkout"
        if [ -d "$ROOT/.pg" ]; then ln -sfn "$STATE" "$ROOT/.pg/cluster"; fi
    fi
}

# A cluster's own directory: the state directory itself for `main` (the layout earlier versions
# made in .pg/), a folder of its own for any other.
cluster_dir() {
    if [ "$1" = main ]; then echo "$STATE"; else echo "$STATE/clusters/$1"; fi
}

# The state directory, made if missing: owned by whoever runs PostgreSQL, mode 700.
make_state() {
    mkdir -p "$ROOT/.pg"
    chmod 700 "$ROOT/.pg"
    if [ "$STATE" != "$ROOT/.pg" ]; then
        id -u "$PG_USER" >/dev/null 2>&1 ||
            die "running as root, PostgreSQL must run as the '$PG_USER' system user, which does not exist"
        mkdir -p "$SYSTEM_BASE" "$STATE"
        chmod 755 "$SYSTEM_BASE"
        printf '%s\n' "$ROOT" >"$STATE/checkout"
        ln -sfn "$STATE" "$ROOT/.pg/cluster"
    fi
    chmod 700 "$STATE"
    if is_root; then chown "$PG_USER:" "$STATE"; fi
}

# One start, stop or destroy at a time per checkout (two terminals, or make run and make test).
take_lock() {
    command -v flock >/dev/null || return 0
    mkdir -p "$ROOT/.pg"
    exec 9>"$ROOT/.pg/lock"
    flock -w 300 9 || die "another scripts/pg.sh of this checkout has held its lock for 5 minutes"
}

# A secret file of the state directory, made on first use: 32 random bytes in hex, mode 600.
secret_file() {
    local file=$STATE/$1
    if [ ! -s "$file" ]; then
        (umask 077 && { random_hex 32; echo; } >"$file.tmp" && mv "$file.tmp" "$file") ||
            die "cannot write $file"
    fi
    chmod 600 "$file"
    if is_root; then chown "$PG_USER:" "$file"; fi
    echo "$file"
}

# ---- one cluster ------------------------------------------------------------------------

# The postmaster of the cluster in $1 (its data directory), if one runs: its pid file names a live
# process whose command line has that data directory. A pid file left by a server that was killed
# (or by one before a reboot, whose pid another process may have now) does not count.
running_pid() {
    local data=$1 pid arg prev="" real
    pid=$(head -n1 "$data/postmaster.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    if [ ! -d /proc/self ]; then  # no /proc: trust the pid file
        kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
        return 1
    fi
    [ -r "/proc/$pid/cmdline" ] || return 1
    real=$(readlink -f "$data")
    while IFS= read -r -d '' arg; do
        if [ "$prev" = -D ] && [ "$(readlink -f "$arg")" = "$real" ]; then
            echo "$pid"
            return 0
        fi
        prev=$arg
    done <"/proc/$pid/cmdline"
    return 1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 12000))
        port_in_use "$port" || { echo "$port"; return 0; }
    done
    die "found no free port between 20000 and 31999"
}

create_cluster() {
    local name=$1 dir data bin password
    dir=$(cluster_dir "$name")
    data=$dir/data
    bin=$(newest_bindir)
    say "creating a private PostgreSQL cluster in $dir"
    make_state
    mkdir -p "$dir"
    chmod 700 "$dir"
    if is_root; then chown "$PG_USER:" "$dir"; fi
    password=$(secret_file password)
    secret_file secret_key >/dev/null
    rm -rf "$data"
    run_pg "$bin/initdb" -D "$data" -U postgres --auth=scram-sha-256 --pwfile="$password" \
        -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed (its log: $dir/initdb.log)"; }
    pick_port >"$dir/port"
}

# The server binaries for the cluster in $1: those of the major version that made it.
bindir_for() {
    local data=$1 major bin
    major=$(cat "$data/PG_VERSION")
    bin=$(bindir_of_major "$major") || die "the cluster in $data was made by PostgreSQL $major, \
which is not installed here. Install it (Debian/Ubuntu: postgresql-$major postgresql-$major-postgis-3), \
or delete the cluster and its data with: scripts/pg.sh destroy"
    ensure_postgis_for "$major"
    echo "$bin"
}

start_cluster() {
    local name=$1 dir data bin port log size tail_of_log
    dir=$(cluster_dir "$name")
    data=$dir/data
    [ -f "$data/PG_VERSION" ] || create_cluster "$name"
    bin=$(bindir_for "$data")
    if running_pid "$data" >/dev/null; then
        echo running
        return 0
    fi
    if [ -f "$data/postmaster.pid" ]; then
        say "the cluster in $dir was not shut down cleanly; starting it again"
        rm -f "$data/postmaster.pid"
    fi
    port=$(cat "$dir/port" 2>/dev/null || true)
    [[ $port =~ ^[0-9]+$ ]] || port=$(pick_port)
    log=$dir/server.log
    local port_tries=0 waited="" deadline=$((SECONDS + 90))
    while :; do
        if port_in_use "$port"; then
            local taken=$port
            port=$(pick_port)
            say "port $taken is taken now; the cluster moves to port $port"
        fi
        echo "$port" >"$dir/port"
        size=$(stat -c %s "$log" 2>/dev/null || echo 0)
        if run_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 120 \
            -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200" \
            start >"$dir/pg_ctl.log" 2>&1; then
            ensure_database "$bin" "$port"
            echo started
            return 0
        fi
        tail_of_log=$(tail -c +$((size + 1)) "$log" 2>/dev/null || true)
        case "$tail_of_log" in
            *"could not bind"* | *"could not create any TCP/IP sockets"*)
                # Taken between the check and the start: another port, a few times.
                port_tries=$((port_tries + 1))
                [ "$port_tries" -lt 5 ] || break
                port=$(pick_port) ;;
            *"is still in use"*)
                # A killed server's processes are still exiting: wait for them, for a while.
                [ "$SECONDS" -lt "$deadline" ] || break
                [ -n "$waited" ] || say "waiting for the processes of the killed server to exit"
                waited=1
                sleep 1 ;;
            *)
                break ;;
        esac
    done
    tail -n 20 "$log" >&2 2>/dev/null || cat "$dir/pg_ctl.log" >&2
    die "PostgreSQL did not start (its log: $log)"
}

psql_at() {
    local bin=$1 port=$2
    shift 2
    PGPASSWORD=$(cat "$STATE/password") "$bin/psql" -X -q -t -A \
        "host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable" "$@"
}

ensure_database() {
    local bin=$1 port=$2 found
    found=$(psql_at "$bin" "$port" -c "SELECT 1 FROM pg_database WHERE datname = '$APP_DB'") ||
        die "cannot connect to the private cluster on port $port"
    [ "$found" = 1 ] && return 0
    psql_at "$bin" "$port" -c "CREATE DATABASE $APP_DB" >/dev/null ||
        die "could not create the database $APP_DB"
}

stop_cluster() {
    local name=$1 dir data bin
    dir=$(cluster_dir "$name")
    data=$dir/data
    [ -f "$data/PG_VERSION" ] || return 0
    running_pid "$data" >/dev/null || return 0
    bin=$(bindir_of_major "$(cat "$data/PG_VERSION")") || bin=$(newest_bindir)
    run_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 120 stop >"$dir/pg_ctl.log" 2>&1 ||
        { cat "$dir/pg_ctl.log" >&2; die "PostgreSQL did not stop (its data: $data)"; }
}

# Every cluster of this checkout: the others first, then main.
stop_all() {
    local d
    for d in "$STATE"/clusters/*/; do
        if [ -d "$d" ]; then stop_cluster "$(basename "$d")"; fi
    done
    stop_cluster main
}

# ---- commands ---------------------------------------------------------------------------

CLUSTER=main

cmd_start() {
    cmd_ensure_postgis
    find_state
    take_lock
    start_cluster "$CLUSTER"
}

cmd_stop() {
    find_state
    take_lock
    if [ "$CLUSTER" != main ]; then
        stop_cluster "$CLUSTER"
        return 0
    fi
    stop_all
}

# A hot standby of main: its data is a base backup of main's (pg_basebackup -R writes
# standby.signal and primary_conninfo), on a port of its own; it then streams main's WAL.
cmd_standby() {
    [ "$CLUSTER" != main ] || die "name the standby: scripts/pg.sh --cluster NAME standby"
    cmd_ensure_postgis
    find_state
    take_lock
    start_cluster main >/dev/null
    local dir data main_port bin
    dir=$(cluster_dir "$CLUSTER")
    data=$dir/data
    if [ ! -f "$data/PG_VERSION" ]; then
        bin=$(bindir_for "$STATE/data")
        main_port=$(cat "$STATE/port")
        say "making $CLUSTER a hot standby of the private cluster (pg_basebackup from port $main_port)"
        mkdir -p "$dir"
        chmod 700 "$dir"
        if is_root; then chown "$PG_USER:" "$dir"; fi
        rm -rf "$data"
        PGPASSWORD=$(cat "$STATE/password") run_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$main_port" \
            -U postgres -D "$data" -R -X stream -c fast >"$dir/basebackup.log" 2>&1 ||
            { tail -n 20 "$dir/basebackup.log" >&2; die "pg_basebackup failed (its log: $dir/basebackup.log)"; }
        pick_port >"$dir/port"
    fi
    start_cluster "$CLUSTER"
}

cmd_url() {
    local db=${1:-$APP_DB} dir port password
    find_state
    dir=$(cluster_dir "$CLUSTER")
    port=$(cat "$dir/port" 2>/dev/null) && password=$(cat "$STATE/password" 2>/dev/null) ||
        die "this checkout has no private cluster yet (start it: scripts/pg.sh start)"
    echo "postgresql://postgres:$password@127.0.0.1:$port/$db"
}

cmd_secret_key() {
    find_state
    take_lock
    make_state
    cat "$(secret_file secret_key)"
}

cmd_where() {
    find_state
    cluster_dir "$CLUSTER"
}

cmd_destroy() {
    find_state
    take_lock
    local dir
    dir=$(cluster_dir "$CLUSTER")
    if [ "$CLUSTER" != main ]; then
        stop_cluster "$CLUSTER"
        rm -rf "$dir"
        rmdir "$STATE/clusters" 2>/dev/null || true
        return 0
    fi
    stop_all
    case "$STATE" in
        "$ROOT/.pg" | "$SYSTEM_BASE"/*) rm -rf "$STATE" ;;
        *) die "refusing to delete $STATE" ;;
    esac
    rm -rf "$ROOT/.pg"
    say "deleted the private cluster and its data ($STATE)"
}

cmd_list() {
    local d owner
    for d in "$SYSTEM_BASE"/*/; do
        [ -d "$d" ] || continue
        owner=$(cat "$d/checkout" 2>/dev/null || echo "?")
        if [ -d "$owner" ]; then
            printf '%s\t%s\n' "${d%/}" "$owner"
        else
            printf '%s\t%s (gone: delete with rm -rf %s after stopping it)\n' "${d%/}" "$owner" "${d%/}"
        fi
    done
}

usage() {
    die "usage: scripts/pg.sh [--cluster NAME] start|stop|standby|url [DB]|secret-key|where|destroy|list|ensure-postgis|ensure-apt PKG"
}

if [ "${1:-}" = --cluster ]; then
    [[ ${2:-} =~ ^[a-z][a-z0-9_-]{0,30}$ ]] || die "a cluster's name is lower-case letters, digits, - and _"
    CLUSTER=$2
    shift 2
fi
case "${1:-}" in
    ensure-postgis) cmd_ensure_postgis ;;
    ensure-apt) [ -n "${2:-}" ] || usage; cmd_ensure_apt "$2" ;;
    start) cmd_start ;;
    standby) cmd_standby ;;
    stop) cmd_stop ;;
    url) cmd_url "${2:-}" ;;
    secret-key) cmd_secret_key ;;
    where) cmd_where ;;
    destroy) cmd_destroy ;;
    list) cmd_list ;;
    *) usage ;;
esac
