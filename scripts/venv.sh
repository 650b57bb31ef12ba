#!/usr/bin/env bash
# Create .venv with Python 3.11 or newer and install the project with its development tools.
#
#   scripts/venv.sh [PYTHON]    PYTHON: the interpreter to use (`make ... PYTHON=python3.12`);
#                               otherwise python3.11, then python3, whichever is 3.11 or newer.
#
# Without any Python 3 on Debian or Ubuntu, python3 is installed from the distribution (3.11 on
# Debian 12). A Python that is too old is named, with what to do, and nothing is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

recent_enough() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

find_python() {
    local candidate
    for candidate in "$@"; do
        if command -v "$candidate" >/dev/null && recent_enough "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

wanted=${1:-python3.11}
if ! PY=$(find_python "$wanted" python3.11 python3); then
    if ! command -v python3 >/dev/null && ! command -v "$wanted" >/dev/null &&
        command -v apt-get >/dev/null; then
        scripts/pg.sh ensure-apt python3
    fi
    PY=$(find_python "$wanted" python3.11 python3) || {
        found=""
        for candidate in "$wanted" python3; do
            if command -v "$candidate" >/dev/null; then
                found="$candidate is $("$candidate" --version 2>&1 || echo 'not working')"
                break
            fi
        done
        die "Python 3.11 or newer is needed${found:+ ($found)}.
Install it (Debian 12: apt-get install python3 python3-venv; Ubuntu 22.04: apt-get install
python3.11 python3.11-venv; elsewhere: https://www.python.org/downloads/) and run this again,
or name one: make run PYTHON=/path/to/python3.11"
    }
fi

# A .venv made by a Python that is gone or too old is made again.
if [ -e .venv ] && ! recent_enough .venv/bin/python; then
    say "the virtual environment in .venv/ does not work with Python 3.11+; making it again"
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        # Debian and Ubuntu ship venv in its own package.
        ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        scripts/pg.sh ensure-apt "python$ver-venv"
        "$PY" -m venv .venv || die "could not create the virtual environment in .venv/ with $PY"
    fi
fi
say "installing the project and its development tools into .venv/ (pip; a minute or two the first time)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# pip's and setuptools' chatter goes to a log shown only when something fails.
if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "could not install the project's Python packages into .venv/ (pip's last lines above)"
fi
