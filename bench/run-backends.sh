#!/usr/bin/env bash
# Benchmarks `pricing serve` with its production stores: prices in PostgreSQL 15
# (scripts/pg.sh, a throw-away cluster) and the audit trail in DynamoDB, served
# in turn by dynalite (scripts/dynalite.sh) and by AWS's DynamoDB Local
# (scripts/ddblocal.sh), with the same wrk load as bench/run.sh
# (bench/price.lua). Reports the service's own CPU-µs per request separately
# from PostgreSQL's and the DynamoDB server's, and appends (or replaces) the
# section "PostgreSQL + DynamoDB" in bench/RESULTS.md. Raw outputs go to bench/out/.
#
# Usage: bench/run-backends.sh PRICING_BIN
# Environment:
#   BENCH_SECONDS   measured seconds per run (default 10)
#   BENCH_WARMUP    warm-up seconds before each measured run (default 2)
#   BENCH_CONNS     connection counts (default "16 64")
#   BENCH_THREADS   wrk threads (default 2)
#   BENCH_USERS     size of the user-id pool (default 1000)
#   BENCH_DDB       DynamoDB servers, in turn (default "dynalite ddblocal")
#   BENCH_RESULTS   the report the section goes into (default bench/RESULTS.md)
# Everything started here is stopped on exit, by PID (PostgreSQL by its data
# directory, dynalite and DynamoDB Local by their PID files).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT="$HERE/out"
RESULTS=${BENCH_RESULTS:-$HERE/RESULTS.md}
SECONDS_RUN=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-16 64}
THREADS=${BENCH_THREADS:-2}
CLK_TCK=$(getconf CLK_TCK)
AWS=/usr/bin/aws # Debian's AWS CLI v2, whatever PATH says
TABLE=bench_audit
SECTION="## PostgreSQL + DynamoDB"
OLD_SECTION="## PostgreSQL + dynalite" # this section's name before DynamoDB Local was added
DDBS=${BENCH_DDB:-dynalite ddblocal}
# DynamoDB Local keeps every record of the run in its heap: 256 MB (the tests'
# default) runs out at about 60,000 records
export DDBLOCAL_HEAP=${DDBLOCAL_HEAP:-1g}
BENCH_TAG=bench-backends
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

check_seconds SECONDS_RUN WARMUP THREADS
check_conns "$CONNS"
for d in $DDBS; do
  case $d in dynalite | ddblocal) ;; *) die "BENCH_DDB: dynalite and/or ddblocal, not $d" ;; esac
done

PRICING_BIN=${1:-}
[ -n "$PRICING_BIN" ] || usage
PRICING_BIN=$(abs_bin "$PRICING_BIN")

# ---------------------------------------------------------------- packages
ensure_packages() {
  local missing=() p
  for p in wrk postgresql awscli procps python3 curl; do
    deb_installed "$p" || missing+=("$p")
  done
  apt_install "${missing[@]+"${missing[@]}"}"
  [ -f "$ROOT/node_modules/dynalite/cli.js" ] ||
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    die "dynalite missing and npm ci failed (scripts/install-deps.sh)"
  case " $DDBS " in
  *" ddblocal "*)
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    [ -f "$ROOT/node_modules/amplify-dynamodb-simulator/emulator/DynamoDBLocal.jar" ] ||
      die "DynamoDB Local missing: run 'make deps' (scripts/install-deps.sh)"
    ;;
  esac
}
ensure_packages
mkdir -p "$OUT"

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pricing-bench-be.XXXXXX")
PGDIR="" # its own directory under /tmp: pg.sh hands it to postgres, the socket lives in it
DDB="" # the DynamoDB server of the current round: dynalite or ddblocal
DDB_DIR=""
DDB_UP=0
PX_PID=""

ddb_stop() {
  if [ "$DDB_UP" = 1 ]; then
    "$ROOT/scripts/$DDB.sh" stop "$DDB_DIR" || true
    DDB_UP=0
  fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -z "$PX_PID" ] || stop_pids "$PX_PID"
  wait 2>/dev/null || true
  ddb_stop
  if [ -n "$PGDIR" ]; then
    "$ROOT/scripts/pg.sh" destroy "$PGDIR" || true
    rm -rf "$PGDIR"
  fi
  [ -f "$TMP/pricing.err" ] && cp "$TMP/pricing.err" "$OUT/backends-pricing-stderr.log" 2>/dev/null
  [ -f "$TMP/pricing.log" ] && head -n 20 "$TMP/pricing.log" >"$OUT/backends-pricing-log-head.jsonl" 2>/dev/null
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Dummy credentials for the local servers; nothing inherited from the caller's AWS setup.
for v in $(compgen -e | grep '^AWS_'); do unset "$v"; done
export AWS_ACCESS_KEY_ID=AKIDBENCHLOCAL AWS_SECRET_ACCESS_KEY=bench-local-secret \
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null \
  AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true

# PIDs whose CPU time counts for a component. PostgreSQL: the postmaster and its
# children (one backend per pooled connection, plus helpers).
component_pids() {
  case $1 in
  pricing) echo "$PX_PID" ;;
  postgres)
    local pm
    pm=$(head -n 1 "$PGDIR/data/postmaster.pid")
    # shellcheck disable=SC2046 # one PID per word
    echo "$pm" $(children_of "$pm")
    ;;
  dynamodb) cat "$DDB_DIR/$DDB.pid" ;;
  esac
}

# "pid ticks" lines (utime+stime in clock ticks) for the PIDs of a component.
tick_snapshot() {
  local pid t
  for pid in $(component_pids "$1"); do
    t=$(pid_ticks "$pid" 2>/dev/null) || continue
    echo "$pid $t"
  done
}

# CPU ticks between two snapshots; a process born in between counts from zero.
tick_delta() {
  awk 'NR == FNR { t0[$1] = $2; next } { d += $2 - (($1 in t0) ? t0[$1] : 0) } END { print d + 0 }' "$1" "$2"
}

# Audit records in the table, counted by the AWS CLI (a consistent scan).
audit_rows() {
  "$AWS" dynamodb scan --table-name "$TABLE" --select COUNT --consistent-read \
    --endpoint-url "$ENDPOINT" --region us-east-1 --output text --query Count |
    awk '{ s += $1 } END { print s + 0 }'
}

# ---------------------------------------------------------------- servers
PGDIR=$(mktemp -d /tmp/pxpg.XXXXXX)
"$ROOT/scripts/pg.sh" start "$PGDIR" >/dev/null || die "PostgreSQL did not start"
PG_URI=$(cat "$PGDIR/uri")
log "PostgreSQL $(cat "$PGDIR/pid") on port $(cat "$PGDIR/port")"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# One round: the DynamoDB server $1 started empty, the table seeded, a fresh
# `pricing serve` measured at every connection count, then both stopped.
start_round() {
  DDB=$1
  DDB_DIR="$TMP/$DDB"
  ENDPOINT=$("$ROOT/scripts/$DDB.sh" start "$DDB_DIR") || die "$DDB did not start"
  DDB_UP=1
  export AWS_ENDPOINT_URL_DYNAMODB=$ENDPOINT
  log "$DDB $(cat "$DDB_DIR/$DDB.pid") at $ENDPOINT"
  (cd "$TMP" && "$PRICING_BIN" db seed --price-db "$PG_URI" --audit-store "dynamodb:$TABLE") \
    >"$OUT/backends-seed-$DDB.log" 2>&1 || die "pricing db seed failed: $(tail -n 5 "$OUT/backends-seed-$DDB.log")"
  PORT=$(free_port)
  # Logs on, to a file, as in production (and as bench/run.sh): their cost is in the figure.
  (cd "$TMP" && exec "$PRICING_BIN" serve --port "$PORT" --price-db "$PG_URI" \
    --audit-store "dynamodb:$TABLE") </dev/null >"$TMP/pricing.log" 2>"$TMP/pricing.err" &
  PX_PID=$!
  wait_http "http://127.0.0.1:$PORT/health" 200 "$PX_PID" ||
    die "pricing serve did not become healthy: $(tail -n 5 "$TMP/pricing.err" 2>/dev/null)"
  log "pricing serve $PX_PID on port $PORT"
}

stop_round() {
  stop_pids "$PX_PID"
  PX_PID=""
  ddb_stop
}

# ---------------------------------------------------------------- runs
declare -A R
COMPONENTS="pricing postgres dynamodb"

run_one() {
  local c=$1 k=$DDB.$1 url="http://127.0.0.1:$PORT/price" wout="$OUT/wrk-backends-$DDB-c$1.txt" a0 a1 comp
  log "$DDB c=$c: warm-up ${WARMUP}s"
  run_wrk "$c" "$WARMUP" "$url" "$OUT/wrk-backends-$DDB-c$c-warmup.txt" || die "wrk warm-up failed"
  sleep 0.5
  a0=$(audit_rows)
  R[$k.load]=$(cut -d' ' -f1-3 /proc/loadavg)
  curl -s "http://127.0.0.1:$PORT/metrics" >"$TMP/metrics.0" || true
  for comp in $COMPONENTS; do tick_snapshot "$comp" >"$TMP/t0-$comp"; done
  log "$DDB c=$c: measuring ${SECONDS_RUN}s"
  run_wrk "$c" "$SECONDS_RUN" "$url" "$wout" || die "wrk failed for c=$c: $(tail -n 3 "$wout")"
  for comp in $COMPONENTS; do tick_snapshot "$comp" >"$TMP/t1-$comp"; done
  curl -s "http://127.0.0.1:$PORT/metrics" >"$TMP/metrics.1" || true
  # records per DynamoDB write request over the run: the batch-size histogram's sum / count
  R[$k.batch]=$(awk '
    FNR == 1 { f++ }
    /^pricing_audit_batch_size_sum / { s[f] = $2 }
    /^pricing_audit_batch_size_count / { n[f] = $2 }
    END { d = n[2] - n[1]; if (d > 0) printf "%.2f", (s[2] - s[1]) / d; else print "n/a" }' \
    "$TMP/metrics.0" "$TMP/metrics.1")
  kill -0 "$PX_PID" 2>/dev/null || die "pricing died during the c=$c run"
  grep -q '^BENCH ' "$wout" || die "no BENCH line in $wout"
  local fld
  for fld in requests rps p50_us p99_us max_us ok2xx nf404 other err_connect err_read err_write err_timeout; do
    R[$k.$fld]=$(bench_field "$wout" "$fld")
  done
  for comp in $COMPONENTS; do
    local t
    t=$(tick_delta "$TMP/t0-$comp" "$TMP/t1-$comp")
    R[$k.$comp.ticks]=$t
    R[$k.$comp.us]=$(awk -v t="$t" -v hz="$CLK_TCK" -v n="${R[$k.requests]}" \
      'BEGIN { printf "%.1f", (n > 0) ? (t * 1e6 / hz / n) : 0 }')
    R[$k.$comp.pct]=$(awk -v t="$t" -v hz="$CLK_TCK" -v s="$SECONDS_RUN" \
      'BEGIN { printf "%.0f", t / hz / s * 100 }')
  done
  sleep 1 # records of requests in flight when wrk stopped
  a1=$(audit_rows)
  R[$k.audited]=$((a1 - a0))
  R[$k.answered]=$((R[$k.ok2xx] + R[$k.nf404]))
  log "$DDB c=$c: ${R[$k.rps]} req/s, p99 ${R[$k.p99_us]} us; CPU-us/req pricing ${R[$k.pricing.us]}," \
    "postgres ${R[$k.postgres.us]}, $DDB ${R[$k.dynamodb.us]}; audited ${R[$k.audited]} / answered ${R[$k.answered]}"
}

for d in $DDBS; do
  start_round "$d"
  for c in $CONNS; do run_one "$c"; done
  stop_round
done

# ---------------------------------------------------------------- report
ddb_version() {
  case $1 in
  dynalite) echo "dynalite $(node -p "require('$ROOT/node_modules/dynalite/package.json').version") (node $(node --version), in memory)" ;;
  ddblocal) echo "DynamoDB Local $(node -p "require('$ROOT/node_modules/amplify-dynamodb-simulator/package.json').version" 2>/dev/null | sed 's/^/(amplify-dynamodb-simulator /; s/$/)/') ($(java -version 2>&1 | head -n 1), -inMemory)" ;;
  esac
}

section() {
  local c k d au an verdict
  echo "$SECTION"
  echo
  echo "Generated by \`bench/run-backends.sh\` (\`make bench-backends\`): the same wrk load"
  echo "(bench/price.lua, -t$THREADS, ${WARMUP}s warm-up + ${SECONDS_RUN}s measured per run) against \`pricing serve\` with"
  echo "prices in PostgreSQL $("/usr/lib/postgresql/15/bin/postgres" --version | awk '{print $3}')"
  echo "(pool of SERVER_THREADS + 2 connections) and the audit trail in DynamoDB, served in turn by:"
  for d in $DDBS; do echo "$(ddb_version "$d");"; done
  echo "each started empty with a fresh \`pricing serve\`, all on this machine's $(nproc) cores with wrk."
  echo "Date (UTC) $(date -u '+%Y-%m-%d %H:%M:%S'), load average at start / end $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg),"
  echo "source $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit')$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ' (work tree has changes)')."
  echo
  echo "CPU-µs/req: utime+stime from /proc/PID/stat over the measured run, divided by the"
  echo "requests wrk completed: pricing (our process), PostgreSQL (postmaster and its"
  echo "backends), the DynamoDB server (the node or java process)."
  echo
  echo "| DynamoDB server | conns | req/s | p50 ms | p99 ms | max ms | pricing CPU-µs/req | PostgreSQL CPU-µs/req | DynamoDB server CPU-µs/req | pricing / PostgreSQL / DynamoDB CPU % | 2xx | 404 | other status | socket errors | load avg |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |"
  for d in $DDBS; do
    for c in $CONNS; do
      k=$d.$c
      printf '| %s | %s | %.0f | %s | %s | %s | **%s** | %s | %s | %s / %s / %s | %s | %s | %s | %s | %s |\n' \
        "$d" "$c" "${R[$k.rps]}" "$(fmt_ms "${R[$k.p50_us]}")" "$(fmt_ms "${R[$k.p99_us]}")" \
        "$(fmt_ms "${R[$k.max_us]}")" "${R[$k.pricing.us]}" "${R[$k.postgres.us]}" "${R[$k.dynamodb.us]}" \
        "${R[$k.pricing.pct]}" "${R[$k.postgres.pct]}" "${R[$k.dynamodb.pct]}" \
        "${R[$k.ok2xx]}" "${R[$k.nf404]}" "${R[$k.other]}" \
        "$((R[$k.err_connect] + R[$k.err_read] + R[$k.err_write] + R[$k.err_timeout]))" "${R[$k.load]}"
    done
  done
  echo
  for d in $DDBS; do
    for c in $CONNS; do
      k=$d.$c au=${R[$k.audited]} an=${R[$k.answered]}
      verdict=$(audit_verdict "$au" "$an" "$c")
      echo "Audit, $d, c=$c: $au records written during the measured run (counted with \`aws dynamodb scan --select COUNT\`), $an look-ups answered (2xx + 404): $verdict; ${R[$k.batch]} records per DynamoDB write request (\`pricing_audit_batch_size\` on /metrics)."
      echo
    done
  done
  echo "- The DynamoDB server is the bottleneck: one node (dynalite) or java (DynamoDB Local)"
  echo "  process on the same 2 cores answering every write; the requests per second here are"
  echo "  its, not the service's. The figure the service owns is its own CPU-µs per request"
  echo "  (bold), to compare with the embedded stores' CPU-µs/req above; it includes signing"
  echo "  each DynamoDB request (SigV4), the HTTP exchanges with DynamoDB and the PostgreSQL"
  echo "  protocol, instead of the embedded stores' in-process work."
  echo "- Real DynamoDB and PostgreSQL run elsewhere, so their CPU is not on the service's"
  echo "  machine; what moves is the latency of each look-up (one PostgreSQL read and one"
  echo "  DynamoDB write before the answer)."
  echo "- Raw wrk outputs of this run: bench/out/wrk-backends-*.txt (not kept in git)."
  echo
}

# Appends the section, replacing the one an earlier run left (up to the next
# "## " heading), and leaves every other section as it is.
write_results() {
  local new="$TMP/section.md" merged="$TMP/results.md"
  section >"$new"
  if [ -f "$RESULTS" ]; then
    awk -v h="$SECTION" -v o="$OLD_SECTION" '
      $0 == h || $0 == o { skip = 1; next }
      skip && /^## / { skip = 0 }
      !skip { print }' "$RESULTS" >"$merged"
    # one blank line between the previous section and ours
    sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$merged"
    {
      cat "$merged"
      echo
      cat "$new"
    } >"$RESULTS.tmp"
  else
    cp "$new" "$RESULTS.tmp"
  fi
  mv "$RESULTS.tmp" "$RESULTS"
  log "wrote the section \"${SECTION#\#\# }\" of $RESULTS"
}
write_results
