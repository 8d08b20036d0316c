#!/usr/bin/env bash
# scripts/test.sh BUILD [BUILD_SAN [BUILD_FUZZ]]
#
# Style (banned functions, clang-format), then for each build directory: the
# unit tests (ctest, with a throw-away PostgreSQL) and the end-to-end suite
# against that build's `pricing`, once per store backend combination. The
# second directory, when given, is the ASan+UBSan build: its runs get leak
# detection and abort on the first report. The third is a PX_FUZZ=ON build:
# each libFuzzer harness runs over its seed corpus, then TEST_FUZZ_SECONDS
# (default 5) of new inputs.
#
# Every step ends its output with `N passed, N failed, N skipped` (a step
# without such a line counts as one check) and one `skipped: WHAT: WHY` line per
# skip. The summary shows them per step; its last line is the total,
# `N passed, N failed, N skipped`. Exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  echo "usage: scripts/test.sh BUILD [BUILD_SAN [BUILD_FUZZ]]" >&2
  exit 2
fi

# Debian's python3 with python3-jsonschema and python3-yaml, whatever PATH says.
PYTHON=/usr/bin/python3
SAN_ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
SAN_UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
FUZZ_SECONDS=${TEST_FUZZ_SECONDS:-5}

declare -a SUMMARY=()
FAILED=0
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0
COUNTS_RE='^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$'

# step NAME COMMAND...: runs one step in this shell (so the EXIT trap knows the
# servers it starts), its output shown and kept; records ok/FAIL, duration,
# the counts of its last `N passed, N failed, N skipped` line and its
# `skipped: ` lines. Without a counts line the step is one check. A non-zero
# exit is a failure even when the counts say none.
step() {
  local name=$1
  shift
  local t0=$SECONDS log rc tee_pid p f s note i
  log=$(mktemp)
  echo "==> $name" >&2
  "$@" > >(tee "$log") 2>&1
  rc=$?
  tee_pid=$!
  # tee ends when the step's last writer closes; bounded in case something it
  # started still holds the pipe.
  for i in $(seq 50); do
    kill -0 "$tee_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ $(grep -E "$COUNTS_RE" "$log" | tail -n 1) =~ $COUNTS_RE ]]; then
    p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[3]}
  elif [ "$rc" -eq 0 ]; then
    p=1 f=0 s=0
  else
    p=0 f=1 s=0
  fi
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1 # exited non-zero without a failed test
  note="ok  "
  if [ "$f" -ne 0 ]; then
    note="FAIL"
    FAILED=1
  fi
  TOTAL_PASSED=$((TOTAL_PASSED + p)) TOTAL_FAILED=$((TOTAL_FAILED + f))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + s))
  SUMMARY+=("$note  $name ($((SECONDS - t0))s): $p passed, $f failed, $s skipped")
  while IFS= read -r i; do
    SUMMARY+=("        $i")
  done < <(grep -E '^skipped: ' "$log")
  rm -f "$log"
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

# unit BUILD: ctest, with PX_TEST_PG_URI naming a throw-away PostgreSQL so the
# server tests of test_price_pg run; then the cmocka cases counted
# (ctest-summary.py: ctest alone counts executables and takes a skip for a pass).
unit() {
  local build=$1 rc=0 uri=""
  BK_PG_DIR=$(mktemp -d /tmp/pxpg.XXXXXX) && scripts/pg.sh start "$BK_PG_DIR" >/dev/null &&
    uri=$(cat "$BK_PG_DIR/uri") || rc=1
  if [ $rc = 0 ]; then
    PX_TEST_PG_URI=$uri ctest --test-dir "$build" --output-on-failure || rc=1
    "$PYTHON" scripts/ctest-summary.py "$build" || rc=1
  fi
  backends_down
  return $rc
}

# fuzz BUILD_FUZZ: every libFuzzer harness over its seed corpus plus
# TEST_FUZZ_SECONDS of new inputs, in temporary directories (scripts/fuzz.sh).
fuzz() {
  local build=$1
  if [ -z "$build" ]; then
    echo "skipped: fuzz: no PX_FUZZ build given (make test builds build-fuzz)"
    echo "0 passed, 0 failed, 1 skipped"
    return 0
  fi
  scripts/fuzz.sh "$build" "$FUZZ_SECONDS"
}

# e2e BUILD: the end-to-end runner; the caller sets the store variables.
e2e() {
  "$PYTHON" tests/e2e/run.py --binary "$1/pricing"
}

# ---- backend combinations (price store / audit store) -----------------------
# One function per combination. Each sets PX_E2E_PRICE_DB / PX_E2E_AUDIT_STORE
# (and, when the audit store needs its own reader, PX_E2E_AUDIT_READER), starts
# whatever server the combination needs and stops it again.

# SQLite prices, SQLite audit trail: temporary stores per test class.
e2e_sqlite_sqlite() {
  local build=$1
  PX_E2E_PRICE_DB="" PX_E2E_AUDIT_STORE="" PX_E2E_AUDIT_READER="" PX_E2E_PRODUCT_STORE="" e2e "$build"
}

# The real servers: PostgreSQL 15 (scripts/pg.sh; as the postgres user when
# root) and AWS's DynamoDB Local 1.25 (scripts/ddblocal.sh: the jar of the npm
# package amplify-dynamodb-simulator, pinned by package-lock.json, on
# openjdk-17; a product write is one TransactWriteItems with its event, which
# dynalite does not implement), each in
# its own temporary directory, on 127.0.0.1 and a free port. backends_down stops
# and removes them (by their PID files only); the EXIT trap calls it as well, so
# nothing outlives this script, whatever fails.
BK_PG_DIR=""
BK_DDB_DIR=""
BK_TABLE=audit_e2e
BK_PRODUCTS_TABLE=products_e2e

backends_down() {
  if [ -n "$BK_DDB_DIR" ]; then
    scripts/ddblocal.sh stop "$BK_DDB_DIR/ddblocal" || true
    rm -rf "$BK_DDB_DIR"
    BK_DDB_DIR=""
  fi
  if [ -n "$BK_PG_DIR" ]; then
    scripts/pg.sh destroy "$BK_PG_DIR" || true
    rm -rf "$BK_PG_DIR"
    BK_PG_DIR=""
  fi
}
trap backends_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# e2e_backends BUILD PRICE AUDIT (PRICE: sqlite|pg, AUDIT: sqlite|lsm|dynamodb):
# starts the servers, seeds them with `pricing db seed`, runs the suite in a
# subshell that holds the PX_E2E_* variables (and, with DynamoDB, dummy AWS
# settings instead of any inherited ones), then stops the servers. With
# DynamoDB, records are read back by the AWS CLI (ddb_audit_reader.py), and the
# product catalogue lives in DynamoDB too (PX_E2E_PRODUCT_STORE).
e2e_backends() {
  local build=$1 price=$2 audit=$3 rc=0 work endpoint="" price_db="" audit_store="" reader=""
  local product_store=""
  work=$(mktemp -d) || return 1
  if [ "$price" = pg ]; then
    # Its own directory under /tmp: pg.sh hands it to postgres; the socket lives in it.
    BK_PG_DIR=$(mktemp -d /tmp/pxpg.XXXXXX) && scripts/pg.sh start "$BK_PG_DIR" &&
      price_db=$(cat "$BK_PG_DIR/uri") || rc=1
  fi
  if [ $rc = 0 ] && [ "$audit" = dynamodb ]; then
    BK_DDB_DIR=$(mktemp -d) && endpoint=$(scripts/ddblocal.sh start "$BK_DDB_DIR/ddblocal") || rc=1
    audit_store=dynamodb:$BK_TABLE
    product_store=dynamodb:$BK_PRODUCTS_TABLE
    reader="$PYTHON $PWD/tests/integration/ddb_audit_reader.py"
  fi
  # The write-optimized embedded store, shared by every server the suite starts
  # (each claims its own sub-store in the directory).
  [ "$audit" = lsm ] && audit_store=lsm:$work/audit-lsm
  if [ $rc = 0 ]; then
    (
      if [ -n "$endpoint" ]; then
        for v in $(compgen -e | grep '^AWS_'); do unset "$v"; done
        export AWS_ACCESS_KEY_ID=AKIDPXE2ELOCAL AWS_SECRET_ACCESS_KEY=px-e2e-local-secret \
          AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL_DYNAMODB=$endpoint \
          AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER="" \
          AWS_EC2_METADATA_DISABLED=true
      fi
      export PX_E2E_PRICE_DB=$price_db PX_E2E_AUDIT_STORE=$audit_store PX_E2E_AUDIT_READER=$reader \
        PX_E2E_PRODUCT_STORE=$product_store
      "$build/pricing" db seed --price-db "${price_db:-sqlite:$work/prices.db}" \
        --audit-store "${audit_store:-sqlite:$work/audit.db}" \
        --product-store "${product_store:-sqlite:$work/products.db}" >"$work/seed.log" 2>&1 ||
        { cat "$work/seed.log" >&2; exit 1; }
      e2e "$build"
    ) || rc=1
  fi
  backends_down
  rm -rf "$work"
  return $rc
}

# PostgreSQL prices, SQLite audit trail.
e2e_pg_sqlite() { e2e_backends "$1" pg sqlite; }
# SQLite prices, DynamoDB (DynamoDB Local) audit trail and product catalogue.
e2e_sqlite_dynamodb() { e2e_backends "$1" sqlite dynamodb; }
# PostgreSQL prices, DynamoDB (DynamoDB Local) audit trail and product catalogue.
e2e_pg_dynamodb() { e2e_backends "$1" pg dynamodb; }
# SQLite prices, the write-optimized embedded audit store (RocksDB).
e2e_sqlite_lsm() { e2e_backends "$1" sqlite lsm; }

BACKENDS=(sqlite_sqlite sqlite_lsm pg_sqlite sqlite_dynamodb pg_dynamodb)
# The ASan build runs fewer (time): embedded only, and both servers at once.
BACKENDS_SAN=(sqlite_sqlite pg_dynamodb)

# -----------------------------------------------------------------------------

run_build() {
  local build=$1 sanitized=$2
  if [ ! -x "$build/pricing" ]; then
    SUMMARY+=("FAIL  $build: no $build/pricing: 0 passed, 1 failed, 0 skipped")
    FAILED=1
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    return
  fi
  if [ "$sanitized" = 1 ]; then
    export ASAN_OPTIONS=$SAN_ASAN_OPTIONS UBSAN_OPTIONS=$SAN_UBSAN_OPTIONS
  fi
  step "unit tests ($build)" unit "$build"
  local b list=("${BACKENDS[@]}")
  [ "$sanitized" = 1 ] && list=("${BACKENDS_SAN[@]}")
  for b in "${list[@]}"; do
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
# The arm64 packaging checks cross-build against Debian's arm64 libraries,
# unpacked (never installed) by scripts/arm64-sysroot.sh; PX_TEST_ARM64=0 leaves
# them out, and test_package.py then counts them as skipped with the reason.
if [ "${PX_TEST_ARM64:-1}" != 0 ] && [ ! -f build-sysroot-arm64/usr/lib/aarch64-linux-gnu/libc.so ]; then
  step "arm64 sysroot (Debian arm64 packages, unpacked)" scripts/arm64-sysroot.sh
fi
step "package, infra, smoke ($1)" "$PYTHON" tests/integration/test_package.py --binary "$1/pricing" # packaging (main build only)
step "lambda runtime + emulator ($1)" "$PYTHON" tests/integration/test_lambda.py --binary "$1/pricing" # lambda (main build only)
step "PostgreSQL: seed, serve, faults ($1)" "$PYTHON" tests/integration/test_pg.py --binary "$1/pricing" # backends (main build only)
step "DynamoDB/dynalite: records, faults ($1)" "$PYTHON" tests/integration/test_dynamodb.py "$1/pricing" # backends
step "DynamoDB/dynalite: tamper-evident trail ($1)" "$PYTHON" tests/integration/test_ddb_integrity.py "$1/pricing" # backends
step "DynamoDB Local + dynalite: audit group commit, lost and late answers, taken keys ($1)" "$PYTHON" tests/integration/test_ddb_batch.py "$1/pricing" # backends
step "S3/s3rver: audit export to s3:// ($1)" "$PYTHON" tests/integration/test_s3_export.py "$1/pricing" # backends
step "Secrets Manager/moto: Lambda signing key ($1)" "$PYTHON" tests/integration/test_lambda_secret.py "$1/pricing" # lambda (main build only)
step "config-service on DynamoDB Local ($1)" "$PYTHON" tests/integration/test_config_dynamodb.py "$1/pricing" # backends
step "runbooks: their local commands ($1)" "$PYTHON" tests/integration/test_runbooks.py --binary "$1/pricing" # docs (main build only)
step "scale-out: 2 processes, shared stores ($1)" "$PYTHON" tests/integration/test_scaleout.py --binary "$1/pricing" # backends
step "events: outbox, relay to RabbitMQ, SQS, SNS ($1)" "$PYTHON" tests/integration/test_events.py --binary "$1/pricing" # events (main build only)
if [ $# -ge 2 ]; then
  run_build "$2" 1
fi
step "fuzz: seed corpora + ${FUZZ_SECONDS}s each (${3:-no fuzz build})" fuzz "${3:-}"

echo
echo "summary:"
printf '  %s\n' "${SUMMARY[@]}"
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
[ "$FAILED" -eq 0 ]
