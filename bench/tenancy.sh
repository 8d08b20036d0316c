#!/usr/bin/env bash
# Look-ups with TENANCY=on against TENANCY=off in the same run (CONTRACT §12):
# two `pricing serve` processes on one seeded price file (the default tenant
# in product_prices, tenant "acme" seeded with `db seed --tenant` into
# tenant_prices, the same 10,005 products), each with its own SQLite audit
# trail; the on server is asked for tenant acme with X-Tenant-ID
# (AUTH_MODE=none), so every look-up goes through tenant resolution, the
# tenant's statement and keys. Runs alternate off, on, off, on ... so that
# drift of a shared machine falls on both. Appends a "## Tenancy" section to
# BENCH_RESULTS (default bench/RESULTS.md), replacing an earlier one.
#
# Usage: bench/tenancy.sh PRICING_BIN
# Environment:
#   BENCH_SECONDS  measured seconds per run (default 10)
#   BENCH_WARMUP   warm-up seconds per server (default 2)
#   BENCH_CONNS    connections (default 64)
#   BENCH_ROUNDS   off/on pairs (default 3)
#   BENCH_THREADS  wrk threads (default 2)
# Everything started here is stopped on exit, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT="$HERE/out"
RESULTS=${BENCH_RESULTS:-$HERE/RESULTS.md}
SECONDS_RUN=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-64}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${BENCH_THREADS:-2}
BENCH_TAG=bench-tenancy
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
check_seconds SECONDS_RUN WARMUP THREADS ROUNDS
check_conns "$CONNS"
PRICING_BIN=${1:-}
[ -n "$PRICING_BIN" ] || usage
PRICING_BIN=$(abs_bin "$PRICING_BIN")
command -v wrk >/dev/null 2>&1 || die "wrk not found (bench/run.sh installs it)"

mkdir -p "$OUT"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  stop_pids "${PIDS[@]+"${PIDS[@]}"}"
  rm -rf "$TMP"
}
trap cleanup EXIT

stores() { # audit file name
  echo --price-db "sqlite:$TMP/prices.db" --product-store "sqlite:$TMP/products.db" \
    --config-store "sqlite:$TMP/config.db" --audit-store "sqlite:$TMP/$1"
}
# shellcheck disable=SC2046
"$PRICING_BIN" db seed $(stores audit-off.db) >"$OUT/tenancy-seed.log" 2>&1 ||
  die "db seed failed: $(tail -n 3 "$OUT/tenancy-seed.log")"
# shellcheck disable=SC2046
"$PRICING_BIN" db seed --tenant acme $(stores audit-on.db) >>"$OUT/tenancy-seed.log" 2>&1 ||
  die "db seed --tenant failed: $(tail -n 3 "$OUT/tenancy-seed.log")"

declare -A PORT
start() { # off|on
  local mode=$1 port
  port=$(free_port)
  # shellcheck disable=SC2046
  TENANCY=$mode "$PRICING_BIN" serve --port "$port" $(stores "audit-$mode.db") \
    </dev/null >"$TMP/serve-$mode.log" 2>"$TMP/serve-$mode.err" &
  PIDS+=("$!")
  wait_http "http://127.0.0.1:$port/health" 200 "$!" || die "serve ($mode) did not start"
  PORT[$mode]=$port
}
start off
start on
tenant_of() { [ "$1" = on ] && echo acme || echo ""; }

for mode in off on; do
  BENCH_TENANT=$(tenant_of $mode) run_wrk "$CONNS" "$WARMUP" "http://127.0.0.1:${PORT[$mode]}/price" \
    "$OUT/tenancy-$mode-warmup.txt" || die "warm-up failed ($mode)"
done
declare -A RPS P50 P99
for ((r = 1; r <= ROUNDS; r++)); do
  for mode in off on; do
    f="$OUT/tenancy-$mode-r$r.txt"
    BENCH_TENANT=$(tenant_of $mode) run_wrk "$CONNS" "$SECONDS_RUN" \
      "http://127.0.0.1:${PORT[$mode]}/price" "$f" || die "wrk failed ($mode, round $r)"
    [ "$(bench_field "$f" other)" = 0 ] || die "unexpected statuses ($mode, round $r): $f"
    RPS[$mode.$r]=$(bench_field "$f" rps)
    P50[$mode.$r]=$(bench_field "$f" p50_us)
    P99[$mode.$r]=$(bench_field "$f" p99_us)
    log "round $r $mode: ${RPS[$mode.$r]} req/s, p50 ${P50[$mode.$r]} us, p99 ${P99[$mode.$r]} us"
  done
done

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { local k=$1 mode=$2 r v=(); for ((r = 1; r <= ROUNDS; r++)); do eval "v+=(\"\${$k[$mode.$r]}\")"; done; median "${v[@]}"; }
off_rps=$(col RPS off); on_rps=$(col RPS on)
off_p50=$(col P50 off); on_p50=$(col P50 on)
off_p99=$(col P99 off); on_p99=$(col P99 on)
delta=$(awk -v a="$on_rps" -v b="$off_rps" 'BEGIN { printf "%+.1f", (a / b - 1) * 100 }')

section=$(
  echo "## Tenancy"
  echo
  echo "\`bench/tenancy.sh\` ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t$THREADS -c$CONNS," \
    "${SECONDS_RUN}s per run, $ROUNDS alternating off/on rounds, medians): \`GET /price\` on" \
    "SQLite stores with \`TENANCY=off\` against \`TENANCY=on\` for tenant \`acme\`" \
    "(\`X-Tenant-ID\`, prices in \`tenant_prices\`, audit keys \`T#acme#…\`), same process build," \
    "same data, every look-up audited."
  echo
  echo "| | req/s | p50 ms | p99 ms |"
  echo "| --- | ---: | ---: | ---: |"
  echo "| TENANCY=off | $off_rps | $(fmt_ms "$off_p50") | $(fmt_ms "$off_p99") |"
  echo "| TENANCY=on (acme) | $on_rps | $(fmt_ms "$on_p50") | $(fmt_ms "$on_p99") |"
  echo
  echo "On vs off: $delta % req/s (per round: $(for ((r = 1; r <= ROUNDS; r++)); do
    printf '%s/%s ' "${RPS[off.$r]}" "${RPS[on.$r]}"; done)req/s off/on); load average" \
    "at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
)
if [ -f "$RESULTS" ]; then
  # Every other section stays byte for byte; an earlier "## Tenancy" goes.
  awk '/^## Tenancy$/ { skip = 1; next } /^## / { skip = 0 } !skip' "$RESULTS" >"$TMP/results"
  { cat "$TMP/results"; [ -z "$(tail -n 1 "$TMP/results")" ] || echo; echo "$section"; } >"$RESULTS"
else
  echo "$section" >"$RESULTS"
fi
log "off $off_rps req/s, on $on_rps req/s ($delta %); written to $RESULTS"
