#!/usr/bin/env bash
# Compares two pricing binaries on the same load at the same time: both serve
# (SQLite prices, lsm audit store, each in its own temp directory), then short
# wrk runs alternate between them, so a busy machine weighs on both alike.
# Prints, per run, requests, CPU-µs per request (on-CPU time of every thread
# of the server, from /proc/PID/task/*/schedstat, nanosecond resolution) and
# p99, then the mean CPU-µs per request of each binary.
#
# Usage: bench/compare.sh PRICING_A PRICING_B
# Environment:
#   COMPARE_ROUNDS   runs per binary (default 5)
#   COMPARE_SECONDS  seconds per run (default 4)
#   COMPARE_CONNS    wrk connections (default 64, -t2, bench/price.lua)
# Everything started here is stopped on exit, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${COMPARE_ROUNDS:-5}
SECONDS_RUN=${COMPARE_SECONDS:-4}
CONNS=${COMPARE_CONNS:-64}
THREADS=2
BENCH_TAG=compare
export THREADS BENCH_TAG
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
check_seconds SECONDS_RUN
check_conns "$CONNS"
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "COMPARE_ROUNDS must be 1..99"
[ $# -eq 2 ] || usage
declare -A BIN PID PORT SUM
BIN[A]=$(abs_bin "$1")
BIN[B]=$(abs_bin "$2")

W=$(mktemp -d "${TMPDIR:-/tmp}/pricing-compare.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pids "${PIDS[@]+"${PIDS[@]}"}"
  wait 2>/dev/null || true
  rm -rf "$W"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# On-CPU microseconds of every thread of PID $1.
cpu_us() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s / 1000 }'; }

for v in A B; do
  mkdir -p "$W/$v"
  "${BIN[$v]}" db seed --price-db "sqlite:$W/$v/prices.db" --audit-store "lsm:$W/$v/audit" \
    >"$W/$v/seed.log" 2>&1 || die "$v: db seed failed: $(tail -n 3 "$W/$v/seed.log")"
  PORT[$v]=$(free_port)
  "${BIN[$v]}" serve --port "${PORT[$v]}" --price-db "sqlite:$W/$v/prices.db" \
    --audit-store "lsm:$W/$v/audit" </dev/null >"$W/$v/log" 2>"$W/$v/err" &
  PID[$v]=$!
  PIDS+=("${PID[$v]}")
  wait_http "http://127.0.0.1:${PORT[$v]}/health" 200 "${PID[$v]}" || die "$v did not start"
  run_wrk "$CONNS" 2 "http://127.0.0.1:${PORT[$v]}/price" "$W/warmup" || die "$v: warm-up failed"
  SUM[$v]=0
done
for ((r = 1; r <= ROUNDS; r++)); do
  for v in A B; do
    t0=$(cpu_us "${PID[$v]}")
    run_wrk "$CONNS" "$SECONDS_RUN" "http://127.0.0.1:${PORT[$v]}/price" "$W/wrk" || die "$v: wrk failed"
    t1=$(cpu_us "${PID[$v]}")
    n=$(bench_field "$W/wrk" requests)
    [ "${n:-0}" -gt 0 ] || die "$v: no requests completed"
    per=$(awk -v t=$((t1 - t0)) -v n="$n" 'BEGIN { printf "%.1f", t / n }')
    SUM[$v]=$(awk -v s="${SUM[$v]}" -v p="$per" 'BEGIN { print s + p }')
    echo "$v$r requests=$n cpu_us_per_req=$per p99_ms=$(fmt_ms "$(bench_field "$W/wrk" p99_us)")"
  done
done
for v in A B; do
  awk -v v="$v" -v s="${SUM[$v]}" -v n="$ROUNDS" -v b="${BIN[$v]}" \
    'BEGIN { printf "%s mean cpu_us_per_req=%.1f (%s)\n", v, s / n, b }'
done
