#!/usr/bin/env bash
# Refuses functions our style bans (STYLE.md §14) in src/.
set -euo pipefail
cd "$(dirname "$0")/.."
if hits=$(grep -rnE '\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|strtok|gets)\s*\(' src); then
  echo "lint: banned functions in src/:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "lint: ok"
