#!/usr/bin/env bash
# Audit integrity on vs off, in one run (docs/internals/audit-integrity.md):
# (and "chain": the hash chain without a key, so without checkpoints)
# `pricing serve` answering GET /price (bench/price.lua under wrk) with the
# tamper-evident chain and signed checkpoints ("on": AUDIT_SIGNING_KEY_FILE
# set) and without them ("off": no key, PX_BENCH_AUDIT_INTEGRITY=off, a
# benchmark-only setting under which no record hash is computed), alternated
# round by round so the machine's load falls on both alike; then
# `pricing audit verify` on the "on" trail, in records/s. Writes (replaces) the
# section "## Audit integrity on vs off" of bench/RESULTS.md; raw output in
# bench/out/integrity/.
#
# Usage: bench/integrity.sh PRICING_BIN
# Environment:
#   BENCH_SECONDS   measured seconds per run (default 10)
#   BENCH_WARMUP    warm-up seconds before each run (default 2)
#   BENCH_CONNS     connections (default 32)
#   BENCH_THREADS   wrk threads (default 2)
#   BENCH_ROUNDS    on/chain/off triples per store (default 3)
#   BENCH_INTEGRITY_STORES  audit stores (default "lsm sqlite")
#   BENCH_RESULTS   report to update (default bench/RESULTS.md)
# Everything started here is stopped on exit, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT="$HERE/out/integrity"
RESULTS=${BENCH_RESULTS:-$HERE/RESULTS.md}
SECONDS_RUN=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-32}
THREADS=${BENCH_THREADS:-2}
ROUNDS=${BENCH_ROUNDS:-3}
STORES=${BENCH_INTEGRITY_STORES:-lsm sqlite}
BENCH_TAG=bench-integrity
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

[ $# -eq 1 ] || usage
check_seconds SECONDS_RUN WARMUP THREADS ROUNDS
check_conns "$CONNS"
[ "$ROUNDS" -le 10 ] || die "BENCH_ROUNDS: at most 10"
for st in $STORES; do
  case $st in sqlite | lsm) ;; *) die "unknown audit store $st (sqlite, lsm)" ;; esac
done
PRICING_BIN=$(abs_bin "$1")
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  [ ${#PIDS[@]} -eq 0 ] || stop_pids "${PIDS[@]}"
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$OUT"
rm -f "$OUT"/*.txt

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START=$(loadavg)
"$PRICING_BIN" audit keygen --out "$TMP/sign" >/dev/null
"$PRICING_BIN" db seed --price-db "sqlite:$TMP/prices.db" --product-store "sqlite:$TMP/products.db" \
  --audit-store "sqlite:$TMP/seed-audit.db" >"$OUT/seed.log" 2>&1 ||
  die "db seed failed: $(tail -n 5 "$OUT/seed.log")"

spec() { # store mode
  case $1 in
  sqlite) echo "sqlite:$TMP/audit-$2.db" ;;
  lsm) echo "lsm:$TMP/audit-$2" ;;
  esac
}

# One measured run: prints "rps p50_ms p99_ms load".
run_one() { # store mode round
  local st=$1 mode=$2 r=$3 port pid sp env_mode=()
  sp=$(spec "$st" "$mode")
  port=$(free_port)
  case $mode in
  on) env_mode=(AUDIT_SIGNING_KEY_FILE="$TMP/sign.key") ;;
  chain) env_mode=(PX_BENCH_AUDIT_INTEGRITY=on) ;; # hashed, no key: no checkpoints
  off) env_mode=(PX_BENCH_AUDIT_INTEGRITY=off) ;;
  esac
  env -u AUDIT_SIGNING_KEY_FILE -u PX_BENCH_AUDIT_INTEGRITY "${env_mode[@]}" AUDIT_CREATE=1 \
    "$PRICING_BIN" serve --port "$port" --price-db "sqlite:$TMP/prices.db" \
    --product-store "sqlite:$TMP/products.db" --audit-store "$sp" \
    </dev/null >"$TMP/serve-$st-$mode.log" 2>"$TMP/serve-$st-$mode.err" &
  pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/health" 200 "$pid" ||
    die "serve ($st, $mode) did not start: $(tail -n 5 "$TMP/serve-$st-$mode.err")"
  local url="http://127.0.0.1:$port"
  run_wrk "$CONNS" "$WARMUP" "$url" "$OUT/warm-$st-$mode-$r.txt" || true
  local load t0 t1
  load=$(loadavg)
  t0=$(pid_ticks "$pid")
  run_wrk "$CONNS" "$SECONDS_RUN" "$url" "$OUT/$st-$mode-$r.txt" ||
    die "wrk failed: $(tail -n 3 "$OUT/$st-$mode-$r.txt")"
  t1=$(pid_ticks "$pid")
  stop_pids "$pid"
  local f="$OUT/$st-$mode-$r.txt"
  # CPU time the server spent per answered request: less sensitive than req/s
  # to what else the shared machine runs.
  local cpu
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$(bench_field "$f" requests)" \
    'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
  local other
  other=$(($(bench_field "$f" other) + $(bench_field "$f" err_connect) + $(bench_field "$f" err_timeout)))
  [ "$other" -eq 0 ] || log "$st $mode round $r: $other non-2xx answers or socket errors"
  echo "$(bench_field "$f" rps) $cpu $(fmt_ms "$(bench_field "$f" p50_us)") $(fmt_ms "$(bench_field "$f" p99_us)") $load"
}

declare -A RPS CPU
CLK_TCK=$(getconf CLK_TCK)
ROWS=""
for st in $STORES; do
  for ((r = 1; r <= ROUNDS; r++)); do
    # Alternate which mode goes first, so neither always meets the same moment.
    order="on chain off"
    [ $((r % 2)) -eq 0 ] && order="off chain on"
    for mode in $order; do
      read -r rps cpu p50 p99 l1 l2 l3 < <(run_one "$st" "$mode" "$r")
      log "$st $mode round $r: $rps req/s, $cpu CPU-us/req, p99 $p99 ms (load $l1 $l2 $l3)"
      RPS[$st-$mode]="${RPS[$st-$mode]:-} $rps"
      CPU[$st-$mode]="${CPU[$st-$mode]:-} $cpu"
      ROWS+="| $st | $mode | $r | ${rps%.*} | $cpu | $p50 | $p99 | $l1 $l2 $l3 |"$'\n'
    done
  done
done

mean() { awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.0f", s / NF }' <<<"$1"; }
range() { awk '{ lo = $1; hi = $1; for (i = 2; i <= NF; i++) { if ($i < lo) lo = $i; if ($i > hi) hi = $i }; printf "%.0f-%.0f", lo, hi }' <<<"$1"; }

SUMMARY=""
VERIFY=""
for st in $STORES; do
  on=$(mean "${RPS[$st-on]}")
  off=$(mean "${RPS[$st-off]}")
  pct=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%+.1f", (a - b) * 100 / b }')
  con=$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.1f", s / NF }' <<<"${CPU[$st-on]}")
  coff=$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.1f", s / NF }' <<<"${CPU[$st-off]}")
  cpct=$(awk -v a="$con" -v b="$coff" 'BEGIN { printf "%+.1f", (a - b) * 100 / b }')
  cch=$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.1f", s / NF }' <<<"${CPU[$st-chain]}")
  SUMMARY+="| $st | $(range "${RPS[$st-off]}") (mean $off) | $(range "${RPS[$st-on]}") (mean $on) | $pct % | $coff | $cch | $con | $cpct % |"$'\n'
  # verify the trail written with integrity on
  sp=$(spec "$st" on)
  t0=$(date +%s.%N)
  vout=$(env -u PX_BENCH_AUDIT_INTEGRITY "$PRICING_BIN" audit verify --audit-store "$sp" \
    --public-key "$TMP/sign.pub" 2>&1) || die "audit verify of the $st trail failed: $vout"
  t1=$(date +%s.%N)
  echo "$vout" >"$OUT/verify-$st.txt"
  n=$(sed -n 's/.*: OK: \([0-9]*\) records checked.*/\1/p' <<<"$vout")
  cps=$(sed -n 's/.*, \([0-9]*\) signed checkpoints.*/\1/p' <<<"$vout")
  rs=$(sed -n 's/.*; \([0-9]*\) records\/s$/\1/p' <<<"$vout")
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  VERIFY+="| $st | $n | $cps | $rs | $wall | $(loadavg) |"$'\n'
done
LOAD_END=$(loadavg)

SECTION=$(
  cat <<EOF
## Audit integrity on vs off

Generated by \`bench/integrity.sh\` ($(date -u '+%Y-%m-%d %H:%M:%S') UTC, source
$(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo unknown)). The machine is shared (2 cores, other
builds and tests running), so the load average is printed with every run; only
the ratio between the two modes within this run means anything, and the server's
CPU time per request is steadier under that load than req/s. wrk -t$THREADS
-c$CONNS, ${WARMUP}s warm-up + ${SECONDS_RUN}s measured per run, bench/price.lua, $ROUNDS
on/off pairs per store, alternating which goes first. **on**: hash chain per
record plus signed checkpoints (AUDIT_SIGNING_KEY_FILE set). **off**: no
signing key and \`PX_BENCH_AUDIT_INTEGRITY=off\` (benchmark only: no record hash
computed; the chain columns are still written). **chain**: the hash chain
without a signing key (no checkpoints), to tell the two costs apart. Load
average at start / end:
$LOAD_START / $LOAD_END.

| store | off req/s | on req/s | on vs off | off CPU-µs/req | chain only CPU-µs/req | on CPU-µs/req | on vs off (CPU) |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$SUMMARY
| store | mode | round | req/s | server CPU-µs/req | p50 ms | p99 ms | load avg |
| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |
$ROWS
\`pricing audit verify\` on the "on" trail just written (its own records/s
figure; wall time includes opening the store and checking every checkpoint's
signature):

| store | records | signed checkpoints | records/s | wall s | load avg after |
| --- | ---: | ---: | ---: | ---: | --- |
$VERIFY
EOF
)

# Replace the section (up to the next "## " heading) or append it.
python3 - "$RESULTS" "$SECTION" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2].rstrip("\n") + "\n"
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
pat = re.compile(r"^## Audit integrity on vs off\n.*?(?=^## |\Z)", re.S | re.M)
if pat.search(text):
    text = pat.sub(lambda m: section + "\n", text, count=1)
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
log "wrote the section to $RESULTS"
