#!/usr/bin/env bash
# Create .venv with the given Python and install the project with its development tools.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${1:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    { echo "error: Python 3.11 or newer is needed (found $("$PY" --version))" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        # Debian and Ubuntu ship venv in its own package.
        ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        scripts/pg.sh ensure-apt "python$ver-venv"
        "$PY" -m venv .venv
    fi
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
