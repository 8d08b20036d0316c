#!/usr/bin/env bash
# Query at scale: seeds an audit store with SCALE_COUNT records through the
# store's own write path (bench/audit_seed, built with -DPX_BENCH=ON), serves
# it with `pricing serve`, and measures GET /audit pages of 100 over HTTP with
# wrk: by user, by product, and the second page of each (with a cursor).
# Writes the "## Query at scale" section of bench/RESULTS.md (other sections
# are kept) and removes the store afterwards.
#
# Usage: bench/query-scale.sh PRICING_BIN
# Environment:
#   SCALE_COUNT     records to seed (default 10000000)
#   SCALE_USERS     distinct users (default 10000: 1000 records each at 10 M)
#   SCALE_PRODUCTS  distinct products (default 10000)
#   SCALE_STORES    audit stores to measure, "lsm" and/or "sqlite" (default lsm)
#   SCALE_SECONDS   measured seconds per wrk run (default 10)
#   SCALE_CONNS     wrk connection counts (default "1 8")
#   SCALE_SEEDER    the audit_seed binary (default: build-bench/audit_seed, built when missing)
#   SCALE_DIR       where the stores go (default: a new directory in TMPDIR or /tmp)
#   BENCH_RESULTS   the report (default bench/RESULTS.md)
# Everything started here is stopped on exit, by PID; the store is deleted.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT="$HERE/out"
RESULTS=${BENCH_RESULTS:-$HERE/RESULTS.md}
COUNT=${SCALE_COUNT:-10000000}
USERS=${SCALE_USERS:-10000}
PRODUCTS=${SCALE_PRODUCTS:-10000}
STORES=${SCALE_STORES:-lsm}
SECONDS_RUN=${SCALE_SECONDS:-10}
CONNS=${SCALE_CONNS:-1 8}
export THREADS=1 BENCH_TAG=query-scale
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

check_seconds SECONDS_RUN
check_conns "$CONNS"
[[ $COUNT =~ ^[1-9][0-9]{0,9}$ && $USERS =~ ^[1-9][0-9]{0,6}$ && $PRODUCTS =~ ^[1-9][0-9]{0,4}$ ]] ||
  die "SCALE_COUNT, SCALE_USERS, SCALE_PRODUCTS must be positive integers"
for st in $STORES; do
  case $st in sqlite | lsm) ;; *) die "unknown store $st (sqlite, lsm)" ;; esac
done
PRICING_BIN=${1:-}
[ -n "$PRICING_BIN" ] || usage
PRICING_BIN=$(abs_bin "$PRICING_BIN")
for p in wrk curl python3; do command -v "$p" >/dev/null || die "$p is needed"; done

SEEDER=${SCALE_SEEDER:-$ROOT/build-bench/audit_seed}
if [ ! -x "$SEEDER" ]; then
  log "building bench/audit_seed in build-bench (-DPX_BENCH=ON)"
  cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPX_BENCH=ON \
    -DPX_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build-bench" -j2 --target audit_seed >/dev/null
fi
SEEDER=$(abs_bin "$SEEDER")

mkdir -p "$OUT"
D=${SCALE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pricing-scale.XXXXXX")}
mkdir -p "$D"
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pids "${PIDS[@]+"${PIDS[@]}"}"
  wait 2>/dev/null || true
  rm -rf "$D"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# About 250 bytes a record in the lsm store, 700 in SQLite: want three times that free.
need_kb=$((COUNT * 3 / 4))
[[ " $STORES " == *" sqlite "* ]] && need_kb=$((COUNT * 21 / 10))
avail_kb=$(df -Pk "$D" | awk 'NR == 2 { print $4 }')
[ "$avail_kb" -gt "$need_kb" ] || die "only $((avail_kb / 1024)) MB free in $D, want $((need_kb / 1024)) MB"

declare -A R
row() { # store mode conns file
  local k="$1.$2.$3" f
  for f in requests rps p50_us p99_us max_us ok2xx other; do R[$k.$f]=$(bench_field "$4" "$f"); done
}

# Paths of the first pages and, from their nextCursor, of the second pages.
make_paths() { # port kind(user|product) ids-file out-first out-second
  python3 - "$@" <<'PY'
import json, random, sys, urllib.request
port, kind, ids, first, second = sys.argv[1:6]
random.seed(20261203)
vals = [l.strip() for l in open(ids) if l.strip()]
key = "userId" if kind == "user" else "productId"
pick = random.sample(vals, min(1000, len(vals)))
with open(first, "w") as f:
    for v in pick:
        f.write(f"/audit?{key}={v}&limit=100\n")
n_items = set()
with open(second, "w") as f:
    for v in pick[:200]:
        url = f"http://127.0.0.1:{port}/audit?{key}={v}&limit=100"
        page = json.load(urllib.request.urlopen(url, timeout=30))
        n_items.add(len(page["items"]))
        if page.get("nextCursor"):
            f.write(f"/audit?{key}={v}&limit=100&cursor={page['nextCursor']}\n")
if n_items != {100}:
    sys.exit(f"first pages of {kind} queries hold {sorted(n_items)} items, want 100")
PY
}

for st in $STORES; do
  case $st in
  lsm) spec="lsm:$D/audit-lsm" ;;
  sqlite) spec="sqlite:$D/audit.db" ;;
  esac
  log "$st: seeding $COUNT records ($USERS users, $PRODUCTS products)"
  t0=$(date +%s.%N)
  "$SEEDER" "$spec" "$COUNT" "$USERS" "$PRODUCTS" "$D/users.txt" >"$OUT/scale-seed-$st.txt" 2>"$OUT/scale-seed-$st.err" ||
    die "seeding failed: $(tail -n 3 "$OUT/scale-seed-$st.err")"
  R[$st.seed_s]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
  R[$st.seed_rate]=$(sed -n 's/.*records_per_s=\([0-9]*\).*/\1/p' "$OUT/scale-seed-$st.txt")
  R[$st.size_mb]=$(du -sm "${spec#*:}" | awk '{ print $1 }')
  log "$st: seeded in ${R[$st.seed_s]} s, ${R[$st.size_mb]} MB"
  seq -f 'PROD-%05g' 1 "$PRODUCTS" >"$D/products.txt"
  "$PRICING_BIN" db seed --price-db "sqlite:$D/prices.db" --audit-store "$spec" >"$OUT/scale-dbseed.log" 2>&1 ||
    die "pricing db seed failed: $(tail -n 3 "$OUT/scale-dbseed.log")"
  port=$(free_port)
  LOG_LEVEL=warn "$PRICING_BIN" serve --port "$port" --price-db "sqlite:$D/prices.db" --audit-store "$spec" \
    </dev/null >"$D/serve.log" 2>"$OUT/scale-serve-$st.err" &
  pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/health" 200 "$pid" || die "pricing serve did not start"
  # A store just written in bulk is compacted by the first process that opens it:
  # measure once that work is done (the server under 10 % CPU for 2 s, at most 300 s).
  t0=$(date +%s)
  while :; do
    if ! a=$(pid_ticks "$pid") || ! sleep 2 || ! b=$(pid_ticks "$pid"); then die "pricing serve died"; fi
    [ $((b - a)) -lt $(($(getconf CLK_TCK) / 5)) ] && break
    [ $(($(date +%s) - t0)) -lt 300 ] || { log "$st: still busy after 300 s, measuring anyway"; break; }
  done
  R[$st.settle_s]=$(($(date +%s) - t0))
  log "$st: server idle after ${R[$st.settle_s]} s"
  make_paths "$port" user "$D/users.txt" "$D/p-user" "$D/p-user2" || die "user pages are not pages of 100"
  make_paths "$port" product "$D/products.txt" "$D/p-product" "$D/p-product2" ||
    die "product pages are not pages of 100"
  for mode in user user2 product product2; do
    for c in $CONNS; do
      w="$OUT/scale-wrk-$st-$mode-c$c.txt"
      log "$st: $mode pages, c=$c, ${SECONDS_RUN}s"
      t0=$(pid_ticks "$pid")
      BENCH_PATHS="$D/p-$mode" timeout $((SECONDS_RUN + 30)) wrk -t1 -c"$c" -d"${SECONDS_RUN}s" --timeout 5s \
        --latency -s "$HERE/paths.lua" "http://127.0.0.1:$port" >"$w" 2>&1 || die "wrk failed: $(tail -n 3 "$w")"
      t1=$(pid_ticks "$pid")
      row "$st" "$mode" "$c" "$w"
      R[$st.$mode.$c.cpu]=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="${R[$st.$mode.$c.requests]}" \
        'BEGIN { printf "%.0f", (n > 0) ? t * 1e6 / hz / n : 0 }')
      log "$st: $mode c=$c: p50 ${R[$st.$mode.$c.p50_us]} us, p99 ${R[$st.$mode.$c.p99_us]} us, ${R[$st.$mode.$c.rps]} req/s"
    done
  done
  stop_pids "$pid"
  rm -rf "${spec#*:}" "$D/prices.db"
done

section() {
  echo "## Query at scale"
  echo
  echo "Generated by \`bench/query-scale.sh\` on $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) shared cores, load average"
  echo "$(cut -d' ' -f1-3 /proc/loadavg) at the end. $COUNT records ($USERS users, $PRODUCTS products, so"
  echo "$((COUNT / USERS)) records per user and $((COUNT / PRODUCTS)) per product, timestamps over 30 days) written by"
  echo "\`bench/audit_seed\` through the store's group-commit path, then \`GET /audit?...&limit=100\` through"
  echo "\`pricing serve\` (LOG_LEVEL=warn) with wrk -t1, ${SECONDS_RUN}s per row, a random user or product of"
  echo "1000 per request; \"2nd page\" passes the \`nextCursor\` of the first page. Every answer was a 200"
  echo "unless the \"other\" column says otherwise; CPU-µs/query is the server's. Measuring starts once"
  echo "the server is idle (it compacts the freshly written store first): $(for st in $STORES; do printf '%s after %s s; ' "$st" "${R[$st.settle_s]}"; done)"
  echo
  echo "| store | seed | store size | query | conns | p50 ms | p99 ms | queries/s | CPU-µs/query | other |"
  echo "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  local st mode c k name
  for st in $STORES; do
    for mode in user user2 product product2; do
      case $mode in user) name="by user" ;; user2) name="by user, 2nd page" ;;
      product) name="by product" ;; product2) name="by product, 2nd page" ;; esac
      for c in $CONNS; do
        k=$st.$mode.$c
        printf '| %s | %s s (%s rec/s) | %s MB | %s | %s | %s | %s | %.0f | %s | %s |\n' "$st" "${R[$st.seed_s]}" \
          "${R[$st.seed_rate]}" "${R[$st.size_mb]}" "$name" "$c" "$(fmt_ms "${R[$k.p50_us]}")" \
          "$(fmt_ms "${R[$k.p99_us]}")" "${R[$k.rps]}" "${R[$k.cpu]}" "${R[$k.other]}"
      done
    done
  done
  echo
}

# Replace this section of the report, keep every other one.
tmp=$(mktemp "$OUT/results.XXXXXX")
{
  if [ -f "$RESULTS" ]; then
    awk '/^## / { skip = ($0 == "## Query at scale") } !skip { print }' "$RESULTS"
  fi
  echo
  section
} | cat -s >"$tmp"
mv "$tmp" "$RESULTS"
log "wrote $RESULTS"
