#!/usr/bin/env bash
# Prints this checkout's development NFC master key (setting NFC_MASTER_KEY, docs/presence.md),
# made on first use like the private cluster's password: 32 random bytes as hex in
# .local/nfc_master_key (ignored by git, readable by its owner only). For `make run`, the demo
# and the benchmark; production sets NFC_MASTER_KEY from its secret store instead.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FILE="$ROOT/.local/nfc_master_key"
if [ ! -s "$FILE" ]; then
    mkdir -p "$ROOT/.local"
    chmod 700 "$ROOT/.local"
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >"$FILE.tmp")
    mv "$FILE.tmp" "$FILE"
fi
cat "$FILE"
