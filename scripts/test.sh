#!/usr/bin/env bash
# scripts/test.sh BUILD [BUILD_SAN]
#
# Style (banned functions, clang-format), then for each build directory: the
# unit tests (ctest) and the end-to-end suite against that build's `pricing`,
# once per store backend combination. The second directory, when given, is the
# ASan+UBSan build: its runs get leak detection and abort on the first report.
# Prints a summary; exits non-zero when any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: scripts/test.sh BUILD [BUILD_SAN]" >&2
  exit 2
fi

# Debian's python3 with python3-jsonschema and python3-yaml, whatever PATH says.
PYTHON=/usr/bin/python3
SAN_ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
SAN_UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

declare -a SUMMARY=()
FAILED=0

# step NAME COMMAND...: runs one step, records ok/FAIL with its duration (and
# the e2e counts when the step ran the e2e runner).
step() {
  local name=$1
  shift
  local t0=$SECONDS note=""
  echo "==> $name" >&2
  E2E_LAST=""
  if "$@"; then
    note="ok  "
  else
    note="FAIL"
    FAILED=1
  fi
  SUMMARY+=("$note  $name ($((SECONDS - t0))s)${E2E_LAST:+: $E2E_LAST}")
}

lint() {
  scripts/lint.sh
}

format_check() {
  local files=()
  local f
  while IFS= read -r f; do
    [ -f "$f" ] && files+=("$f")
  done < <(git ls-files --cached --others --exclude-standard -- 'src/*.[ch]' 'tests/*.[ch]')
  if [ ${#files[@]} -eq 0 ]; then
    echo "format: no files" >&2
    return 1
  fi
  local out
  if out=$(clang-format --dry-run --Werror "${files[@]}" 2>&1); then
    echo "format: ok (${#files[@]} files)" >&2
    return 0
  fi
  echo "format: these files need clang-format -i (violations):" >&2
  printf '%s\n' "$out" | grep -oE '^[^:]+\.[ch]:' | sort | uniq -c | sed 's/:$//' >&2
  return 1
}

unit() {
  local build=$1
  ctest --test-dir "$build" --output-on-failure
}

# e2e BUILD: the end-to-end runner; the caller sets the store variables.
# Its last line ("N passed, N failed") goes into the summary.
E2E_LAST=""
e2e() {
  local build=$1 log rc
  log=$(mktemp)
  "$PYTHON" tests/e2e/run.py --binary "$build/pricing" | tee "$log"
  rc=${PIPESTATUS[0]}
  E2E_LAST=$(tail -n 1 "$log")
  rm -f "$log"
  return "$rc"
}

# ---- backend combinations (price store / audit store) -----------------------
# One function per combination. Each sets PX_E2E_PRICE_DB / PX_E2E_AUDIT_STORE
# (and, when the audit store needs its own reader, PX_E2E_AUDIT_READER), starts
# whatever server the combination needs and stops it again.

# SQLite prices, SQLite audit trail: temporary stores per test class.
e2e_sqlite_sqlite() {
  local build=$1
  PX_E2E_PRICE_DB="" PX_E2E_AUDIT_STORE="" PX_E2E_AUDIT_READER="" e2e "$build"
}

# Add e2e_pg_sqlite, e2e_sqlite_dynamodb, e2e_pg_dynamodb here and list them in
# BACKENDS below.

BACKENDS=(sqlite_sqlite)

# -----------------------------------------------------------------------------

run_build() {
  local build=$1 sanitized=$2
  if [ ! -x "$build/pricing" ]; then
    SUMMARY+=("FAIL  $build: no $build/pricing")
    FAILED=1
    return
  fi
  if [ "$sanitized" = 1 ]; then
    export ASAN_OPTIONS=$SAN_ASAN_OPTIONS UBSAN_OPTIONS=$SAN_UBSAN_OPTIONS
  fi
  step "unit tests ($build)" unit "$build"
  local b
  for b in "${BACKENDS[@]}"; do
    step "e2e $b ($build)" "e2e_$b" "$build"
  done
  if [ "$sanitized" = 1 ]; then
    unset ASAN_OPTIONS UBSAN_OPTIONS
  fi
}

is_sanitized() {
  grep -q '^PX_SANITIZE:BOOL=ON' "$1/CMakeCache.txt" 2>/dev/null
}

step "lint" lint
step "format-check" format_check

run_build "$1" "$(is_sanitized "$1" && echo 1 || echo 0)"
step "package, infra, smoke ($1)" "$PYTHON" tests/integration/test_package.py --binary "$1/pricing" # packaging (main build only)
if [ $# -eq 2 ]; then
  run_build "$2" 1
fi

echo
echo "summary:"
printf '  %s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then
  echo "test.sh: FAILED"
  exit 1
fi
echo "test.sh: all passed"
