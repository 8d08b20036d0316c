#!/usr/bin/env bash
# Benchmarks `pricing serve` (audited price look-ups, SQLite stores) against
# nginx returning the same JSON body from its config, on the same machine in
# the same run, and writes bench/RESULTS.md. Raw outputs go to bench/out/.
#
# Usage: bench/run.sh PRICING_BIN
# Environment:
#   BENCH_SECONDS   measured seconds per run (default 10)
#   BENCH_WARMUP    warm-up seconds before each measured run (default 2)
#   BENCH_CONNS     connection counts (default "16 64")
#   BENCH_THREADS   wrk threads (default 2)
#   BENCH_SERVERS   which servers (default "nginx pricing")
#   BENCH_AUDIT_STORES  embedded audit stores pricing runs with, one server each
#                   (default "sqlite lsm"; lsm needs a build with PX_LSM)
#   BENCH_PROFILE_STORE which of them perf profiles (default: the last one)
#   BENCH_PERF      1 = profile pricing with perf when perf works (default 1)
#   BENCH_PERF_SECONDS  perf record length (default 5)
#   BENCH_AUDIT_TABLE   audit table in the SQLite audit store (default: found by name)
#   BENCH_RESULTS   where to write the report (default bench/RESULTS.md)
# Everything started here is stopped on exit, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT="$HERE/out"
RESULTS=${BENCH_RESULTS:-$HERE/RESULTS.md}
SECONDS_RUN=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-16 64}
THREADS=${BENCH_THREADS:-2}
SERVERS=${BENCH_SERVERS:-nginx pricing}
STORES=${BENCH_AUDIT_STORES:-sqlite lsm}
for st in $STORES; do
  case $st in sqlite | lsm) ;; *) echo "run.sh: unknown audit store $st (sqlite, lsm)" >&2; exit 2 ;; esac
done
PROFILE_STORE=${BENCH_PROFILE_STORE:-${STORES##* }}
PERF=${BENCH_PERF:-1}
PERF_SECONDS=${BENCH_PERF_SECONDS:-5}
CLK_TCK=$(getconf CLK_TCK)
NGINX_BODY='{"productId":"PROD-101","price":99.99,"currency":"USD"}'
SAMPLE_USER=3f1c2a4e-9b7d-4c1a-8e2f-5a6b7c8d9e0f
BENCH_TAG=bench
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

want() { [[ " $SERVERS " == *" $1 "* ]]; }

check_seconds SECONDS_RUN WARMUP THREADS PERF_SECONDS
check_conns "$CONNS"

PRICING_BIN=${1:-}
if want pricing; then
  [ -n "$PRICING_BIN" ] || usage
  PRICING_BIN=$(abs_bin "$PRICING_BIN")
fi

# ---------------------------------------------------------------- packages
ensure_packages() {
  local missing=() p
  for p in nginx-light wrk sqlite3 procps python3 curl; do
    if [ "$p" = nginx-light ] && command -v nginx >/dev/null 2>&1; then continue; fi
    if [ "$p" = nginx-light ] && [ -x /usr/sbin/nginx ]; then continue; fi
    deb_installed "$p" || missing+=("$p")
  done
  # Installing nginx may start the distribution's own nginx service: it is not
  # ours, this script never relies on it and never stops it.
  apt_install "${missing[@]+"${missing[@]}"}"
}
ensure_packages
export PATH="$PATH:/usr/sbin:/sbin"
NGINX=$(command -v nginx) || die "nginx not found after install"

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pricing-bench.XXXXXX")
PIDS=()      # every process started here, stopped in cleanup
NGX_PID=""
PX_PID=""           # the profiled pricing server
declare -A PXPID PXPORT

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pids "${PIDS[@]+"${PIDS[@]}"}"
  wait 2>/dev/null || true
  [ -f "$TMP/nginx/error.log" ] && cp "$TMP/nginx/error.log" "$OUT/nginx-error.log" 2>/dev/null
  local st
  for st in $STORES; do
    [ -f "$TMP/pricing-$st.err" ] && cp "$TMP/pricing-$st.err" "$OUT/pricing-$st-stderr.log" 2>/dev/null
    [ -f "$TMP/pricing-$st.log" ] && head -n 20 "$TMP/pricing-$st.log" >"$OUT/pricing-$st-log-head.jsonl" 2>/dev/null
  done
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# PIDs whose CPU time and memory count for a server: nginx master + workers.
server_pids() {
  # shellcheck disable=SC2046 # one PID per word
  case $1 in
  nginx) echo "$NGX_PID" $(children_of "$NGX_PID") ;;
  pricing-*) echo "${PXPID[${1#pricing-}]}" ;;
  esac
}

# utime+stime in clock ticks summed over PIDs.
cpu_ticks() {
  local sum=0 pid t
  for pid in "$@"; do
    t=$(pid_ticks "$pid") || continue
    sum=$((sum + t))
  done
  echo "$sum"
}

# VmHWM (peak RSS) in kB summed over PIDs.
peak_rss_kb() {
  local sum=0 pid v
  for pid in "$@"; do
    v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

# Bytes the PIDs caused to be written to storage (write_bytes in /proc/PID/io).
io_write_bytes() {
  local sum=0 pid v
  for pid in "$@"; do
    v=$(awk '/^write_bytes:/ {print $2}' "/proc/$pid/io" 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

# Resets the peak-RSS mark so each run reports its own peak (best effort).
reset_peak() {
  local pid
  for pid in "$@"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
}

start_nginx() {
  local port=$1 d="$TMP/nginx"
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    server {
        listen 127.0.0.1:$port;
        location = /price {
            default_type application/json;
            return 200 '$NGINX_BODY';
        }
    }
}
EOF
  "$NGINX" -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" </dev/null >"$d/stdout.log" 2>&1 &
  NGX_PID=$!
  PIDS+=("$NGX_PID")
  wait_http "http://127.0.0.1:$port/price" 200 "$NGX_PID" ||
    die "nginx did not start; see $d/error.log: $(tail -n 5 "$d/error.log" 2>/dev/null)"
  local w
  for w in $(children_of "$NGX_PID"); do PIDS+=("$w"); done
  log "nginx master $NGX_PID, workers $(children_of "$NGX_PID" | tr '\n' ' ')on port $port"
}

audit_spec() {
  case $1 in
  sqlite) echo "sqlite:$TMP/audit.db" ;;
  lsm) echo "lsm:$TMP/audit-lsm" ;;
  esac
}

start_pricing() {
  local st=$1 port=$2 spec
  spec=$(audit_spec "$st")
  # The first store seeds the prices; each further audit store is created by
  # `db migrate` (serve never creates a trail by itself).
  local action=seed
  [ -f "$TMP/prices.db" ] && action=migrate
  "$PRICING_BIN" db "$action" --price-db "sqlite:$TMP/prices.db" --audit-store "$spec" \
    --product-store "sqlite:$TMP/products.db" >>"$OUT/seed.log" 2>&1 ||
    die "pricing db $action failed: $(tail -n 5 "$OUT/seed.log")"
  # Logs on, to a file, as in production: their cost is part of the figure.
  "$PRICING_BIN" serve --port "$port" --price-db "sqlite:$TMP/prices.db" \
    --product-store "sqlite:$TMP/products.db" \
    --audit-store "$spec" </dev/null >"$TMP/pricing-$st.log" 2>"$TMP/pricing-$st.err" &
  PXPID[$st]=$!
  PXPORT[$st]=$port
  PIDS+=("${PXPID[$st]}")
  wait_http "http://127.0.0.1:$port/health" 200 "${PXPID[$st]}" ||
    die "pricing serve ($st) did not become healthy: $(tail -n 5 "$TMP/pricing-$st.err" 2>/dev/null)"
  log "pricing serve ($st audit store) ${PXPID[$st]} on port $port"
}

AUDIT_TABLE=${BENCH_AUDIT_TABLE:-}
audit_rows() {
  if [ "$1" = lsm ]; then
    "$PRICING_BIN" audit count --audit-store "$(audit_spec lsm)" --price-db "sqlite:$TMP/prices.db" 2>>"$OUT/audit-count.err" ||
      die "pricing audit count failed: $(tail -n 3 "$OUT/audit-count.err")"
    return 0
  fi
  if [ -z "$AUDIT_TABLE" ]; then
    AUDIT_TABLE=$(sqlite3 -readonly -cmd '.timeout 5000' "$TMP/audit.db" \
      "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%audit%' ORDER BY length(name) LIMIT 1;")
    [ -n "$AUDIT_TABLE" ] || die "no audit table found in $TMP/audit.db (set BENCH_AUDIT_TABLE)"
  fi
  sqlite3 -readonly -cmd '.timeout 5000' "$TMP/audit.db" "SELECT count(*) FROM \"$AUDIT_TABLE\";"
}

# ---------------------------------------------------------------- one run
# Results per run in R[<server>.<conns>.<field>].
declare -A R

run_one() {
  local srv=$1 c=$2 port=$3 k="$1.$2" wout="$OUT/wrk-$1-c$2.txt" pids t0 t1 w0 w1 a0=0 a1=0 l0=0 l1=0
  local url="http://127.0.0.1:$port/price"
  log "$srv c=$c: warm-up ${WARMUP}s"
  run_wrk "$c" "$WARMUP" "$url" "$OUT/wrk-$srv-c$c-warmup.txt" || die "wrk warm-up failed for $srv"
  sleep 0.5
  # shellcheck disable=SC2207
  pids=($(server_pids "$srv"))
  if [[ $srv == pricing-* ]]; then
    a0=$(audit_rows "${srv#pricing-}")
    l0=$(stat -c %s "$TMP/$srv.log")
    curl -s "http://127.0.0.1:$port/metrics" >"$TMP/metrics-$k.0" || true
  fi
  reset_peak "${pids[@]}"
  R[$k.load]=$(cut -d' ' -f1-3 /proc/loadavg)
  t0=$(cpu_ticks "${pids[@]}")
  w0=$(io_write_bytes "${pids[@]}")
  log "$srv c=$c: measuring ${SECONDS_RUN}s"
  run_wrk "$c" "$SECONDS_RUN" "$url" "$wout" || die "wrk failed for $srv c=$c: $(tail -n 3 "$wout")"
  t1=$(cpu_ticks "${pids[@]}")
  w1=$(io_write_bytes "${pids[@]}")
  R[$k.rss]=$(peak_rss_kb "${pids[@]}")
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || die "$srv process $pid died during the c=$c run"
  done
  grep -q '^BENCH ' "$wout" || die "no BENCH line in $wout"
  local fld
  for fld in requests rps p50_us p99_us max_us ok2xx nf404 other err_connect err_read err_write err_timeout; do
    R[$k.$fld]=$(bench_field "$wout" "$fld")
  done
  R[$k.cpu_us_per_req]=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="${R[$k.requests]}" \
    'BEGIN { printf "%.1f", (n > 0) ? (t * 1e6 / hz / n) : 0 }')
  R[$k.wkb_per_req]=$(awk -v b=$((w1 - w0)) -v n="${R[$k.requests]}" \
    'BEGIN { printf "%.2f", (n > 0) ? (b / 1024 / n) : 0 }')
  R[$k.cpu_pct]=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v s="$SECONDS_RUN" \
    'BEGIN { printf "%.0f", t / hz / s * 100 }')
  if [[ $srv == pricing-* ]]; then
    sleep 0.5 # records of requests in flight when wrk stopped
    a1=$(audit_rows "${srv#pricing-}")
    l1=$(stat -c %s "$TMP/$srv.log")
    curl -s "http://127.0.0.1:$port/metrics" >"$TMP/metrics-$k.1" || true
    # Server-side view of the same run: bucket upper bounds of p50 / p99 (ms).
    R[$k.server_q]=$(python3 "$HERE/histq.py" "$TMP/metrics-$k.0" "$TMP/metrics-$k.1" \
      pricing_http_request_duration_seconds pricing_audit_commit_seconds \
      pricing_audit_write_seconds 2>/dev/null |
      awk '{ printf "%s%s p50 <= %s ms, p99 <= %s ms", (NR > 1 ? "; " : ""), $1, $3, $4 }')
    R[$k.audited]=$((a1 - a0))
    R[$k.answered]=$((R[$k.ok2xx] + R[$k.nf404]))
    R[$k.log_bytes_per_req]=$(awk -v b=$((l1 - l0)) -v n="${R[$k.requests]}" \
      'BEGIN { printf "%.0f", (n > 0) ? (b / n) : 0 }')
  fi
  log "$srv c=$c: ${R[$k.rps]} req/s, p99 ${R[$k.p99_us]} us, ${R[$k.cpu_us_per_req]} CPU-us/req${R[$k.audited]:+, audited ${R[$k.audited]} / answered ${R[$k.answered]}}"
}

# ---------------------------------------------------------------- profile
PERF_STATUS="not run"
profile_pricing() {
  local port=$1 wpid
  if [ "$PERF" != 1 ]; then
    PERF_STATUS="perf profiling switched off (BENCH_PERF=0)"
    return 0
  fi
  if ! command -v perf >/dev/null 2>&1 || ! perf stat -e instructions true >/dev/null 2>&1; then
    PERF_STATUS="perf is not available here (\`perf stat -e instructions true\` fails)"
    return 0
  fi
  log "profiling pricing ($PROFILE_STORE audit store) under c=64 for ${PERF_SECONDS}s"
  # timeout is the direct child, so its PID stops wrk too if we exit early.
  BENCH_USERS=${BENCH_USERS:-1000} timeout $((PERF_SECONDS + 30)) \
    wrk -t"$THREADS" -c64 -d$((PERF_SECONDS + 3))s --timeout 2s -s "$HERE/price.lua" \
    "http://127.0.0.1:$port/price" >"$OUT/wrk-pricing-perf.txt" 2>&1 &
  wpid=$!
  PIDS+=("$wpid")
  sleep 1
  if timeout $((PERF_SECONDS + 30)) perf record -q -g -F 499 -p "$PX_PID" -o "$OUT/perf.data" \
    -- sleep "$PERF_SECONDS" >"$OUT/perf-record.log" 2>&1; then
    perf report -i "$OUT/perf.data" --stdio --no-children -g none --sort dso,symbol \
      >"$OUT/perf-report.txt" 2>"$OUT/perf-report.err" || true
    grep -v '^#' "$OUT/perf-report.txt" | grep -v '^[[:space:]]*$' | head -n 15 |
      sed -e 's/[[:space:]-]*$//' >"$OUT/perf-top15.txt" || true
    perf report -i "$OUT/perf.data" --stdio --no-children -g none --sort dso \
      2>/dev/null | grep -v '^#' | grep -v '^[[:space:]]*$' | head -n 10 |
      sed -e 's/[[:space:]-]*$//' >"$OUT/perf-dso.txt" || true
    PERF_STATUS="ok"
  else
    PERF_STATUS="perf record failed: $(tail -n 2 "$OUT/perf-record.log" | tr '\n' ' ')"
  fi
  wait "$wpid" || true
}

# ---------------------------------------------------------------- report
fmt_mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

# Sections of an earlier report that this script does not write (other bench
# scripts add their own "## " sections to the same file): kept as they are.
foreign_sections() {
  [ -f "$RESULTS" ] || return 0
  awk -v conns="$CONNS" '
    BEGIN {
      n = split(conns, cs, " ")
      for (i = 1; i <= n; i++) mine["## " cs[i] " connections"] = 1
      mine["## Machine and run"] = 1; mine["## Goal"] = 1; mine["## How to read this"] = 1
      mine["## Where the time goes (pricing, c=64)"] = 1
      mine["## Where the time goes (pricing, lsm audit store, c=64)"] = 1
      mine["## Where the time goes (pricing, sqlite audit store, c=64)"] = 1
    }
    /^## / { keep = !($0 in mine) && $0 !~ /^## [0-9]+ connections$/ }
    keep { print }' "$RESULTS"
}

write_results() {
  local c k srv goal="" both=0 kept="$TMP/kept.md"
  want nginx && want pricing && both=1
  foreign_sections >"$kept"
  {
    echo "# Benchmark: audited price look-ups vs. nginx"
    echo
    echo "Generated by \`bench/run.sh\` (see bench/README.md). Figures come from one run on a"
    echo "shared machine: compare the ratios within this run, not the absolute numbers."
    echo
    echo "## Machine and run"
    echo
    echo "| | |"
    echo "| --- | --- |"
    echo "| date (UTC) | $(date -u '+%Y-%m-%d %H:%M:%S') |"
    echo "| CPU | $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), nproc $(nproc) |"
    echo "| kernel | $(uname -srm) |"
    echo "| load average at start / end | $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) |"
    echo "| nginx | $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), master + 2 workers, access_log off, body from config |"
    echo "| wrk | $(wrk -v 2>&1 | head -n 1 | awk '{print $2}'), -t$THREADS, ${WARMUP}s warm-up + ${SECONDS_RUN}s measured per run, bench/price.lua |"
    if want pricing; then
      echo "| pricing | $("$PRICING_BIN" version 2>/dev/null | head -n 1 || echo unknown), \`serve\` with sqlite price DB; one server per audit store: $(for st in $STORES; do printf 'pricing-%s (%s) ' "$st" "$(audit_spec "$st" | sed "s|$TMP/||")"; done)|"
      echo "| pricing logs | on (LOG_LEVEL=${LOG_LEVEL:-info}), stdout to a file in the temp dir, ${R[pricing-${STORES%% *}.64.log_bytes_per_req]:-?} bytes per request at c=64 |"
    fi
    echo "| sqlite3 | $(sqlite3 --version | awk '{print $1}') |"
    echo "| source | $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit') $(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo '(work tree has changes)') |"
    echo "| requests | \`GET /price?id=<PROD-00001..PROD-10000 or PROD-101>&userId=<one of ${BENCH_USERS:-1000} UUID v4>\` |"
    echo
    for c in $CONNS; do
      echo "## $c connections"
      echo
      echo "| server | req/s | p50 ms | p99 ms | max ms | CPU-µs/req | server CPU % | peak RSS MB | disk KB written/req | 2xx | 404 | other status | socket errors | load avg |"
      echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
      for srv in nginx $(for st in $STORES; do echo "pricing-$st"; done); do
        want "${srv%%-*}" || continue
        k="$srv.$c"
        printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
          "$srv" "${R[$k.rps]}" "$(fmt_ms "${R[$k.p50_us]}")" "$(fmt_ms "${R[$k.p99_us]}")" \
          "$(fmt_ms "${R[$k.max_us]}")" "${R[$k.cpu_us_per_req]}" "${R[$k.cpu_pct]}" \
          "$(fmt_mb "${R[$k.rss]}")" "${R[$k.wkb_per_req]}" "${R[$k.ok2xx]}" "${R[$k.nf404]}" "${R[$k.other]}" \
          "$((R[$k.err_connect] + R[$k.err_read] + R[$k.err_write] + R[$k.err_timeout]))" "${R[$k.load]}"
      done
      local st p au an verdict
      for st in $STORES; do
        p=pricing-$st
        if [ $both = 1 ]; then
          echo
          echo "$p / nginx: req/s **$(ratio "${R[$p.$c.rps]}" "${R[nginx.$c.rps]}")**," \
            "p99 $(ratio "${R[$p.$c.p99_us]}" "${R[nginx.$c.p99_us]}")×," \
            "CPU-µs/req $(ratio "${R[$p.$c.cpu_us_per_req]}" "${R[nginx.$c.cpu_us_per_req]}")×," \
            "peak RSS $(ratio "${R[$p.$c.rss]}" "${R[nginx.$c.rss]}")×."
        fi
        if want pricing; then
          au=${R[$p.$c.audited]} an=${R[$p.$c.answered]}
          verdict=$(audit_verdict "$au" "$an" "$c")
          echo
          echo "Audit ($st): $au records written during the measured run, $an look-ups answered (2xx + 404) as counted by wrk: $verdict."
        fi
        if [ -n "${R[$p.$c.server_q]:-}" ]; then
          echo
          echo "Server side ($p, its /metrics over the measured run, bucket upper bounds): ${R[$p.$c.server_q]}."
        fi
      done
      echo
    done
    if [ $both = 1 ] && [[ " $CONNS " == *" 64 "* ]]; then
      echo "## Goal"
      echo
      echo "Audited look-ups at 64 connections >= 25% of nginx req/s, p99 < 10 ms, <= 4 KB written"
      echo "to disk per look-up, every record durable before its answer:"
      echo
      local r p99 kb met why
      for st in $STORES; do
        p=pricing-$st met=yes why=()
        r=$(ratio "${R[$p.64.rps]}" "${R[nginx.64.rps]}")
        p99=$(fmt_ms "${R[$p.64.p99_us]}")
        kb=${R[$p.64.wkb_per_req]}
        awk -v r="$r" 'BEGIN { exit !(r >= 0.25) }' || { met=no; why+=("req/s ratio $r < 0.25"); }
        awk -v p="$p99" 'BEGIN { exit !(p < 10) }' || { met=no; why+=("p99 $p99 ms >= 10 ms"); }
        awk -v k="$kb" 'BEGIN { exit !(k <= 4) }' || { met=no; why+=("$kb KB written per look-up > 4"); }
        [ "${R[$p.64.audited]}" -ge "${R[$p.64.answered]}" ] || { met=no; why+=("answered look-ups without audit records"); }
        [ "${R[$p.64.other]}" -eq 0 ] || { met=no; why+=("${R[$p.64.other]} responses other than 2xx/404"); }
        if [ $met = yes ]; then goal="**met**"; else goal="**not met** ($(printf '%s; ' "${why[@]}" | sed 's/; $//'))"; fi
        echo "- $st audit store: $goal (ratio $r, p99 $p99 ms, $kb KB/look-up)."
      done
      echo
    fi
    if want pricing; then
      echo "## Where the time goes (pricing, $PROFILE_STORE audit store, c=64)"
      echo
      if [ "$PERF_STATUS" = ok ]; then
        echo "\`perf record -g -F 499 -p PID\` for ${PERF_SECONDS}s during a separate 64-connection run"
        echo "(not one of the measured runs); top 15 by self time"
        echo "(\`perf report --stdio --no-children -g none --sort dso,symbol\`):"
        echo
        echo '```'
        cat "$OUT/perf-top15.txt"
        echo '```'
        echo
        echo "By shared object (\`--sort dso\`):"
        echo
        echo '```'
        cat "$OUT/perf-dso.txt"
        echo '```'
        echo
        echo "pricing used ${R[pricing-$PROFILE_STORE.64.cpu_pct]:-?} % CPU during the measured c=64 run (200 % = both cores):"
        echo "the rest of its time a request waits (audit commit and fsync), which on-CPU samples do not show."
      else
        echo "$PERF_STATUS."
      fi
      echo
    fi
    echo "## How to read this"
    echo
    echo "- nginx returns a constant body from memory: it is the floor of what one HTTP exchange"
    echo "  costs on this machine. pricing validates the query, reads the price from SQLite, makes"
    echo "  one audit record durable (group-committed SQLite write with fsync) before answering,"
    echo "  and writes one JSON log line per request."
    echo "- wrk runs on the same $(nproc) cores as the servers, so it takes part of the CPU;"
    echo "  CPU-µs/req counts only the server's processes (utime+stime from /proc)."
    echo "- disk KB written/req: write_bytes from /proc/PID/io over the run per request (audit"
    echo "  store pages, WAL and checkpoints, and the log file for pricing)."
    echo "- Raw wrk outputs, perf data and logs of this run are in bench/out/ (not kept in git)."
    if [ -s "$kept" ]; then
      echo
      cat "$kept"
    fi
  } >"$RESULTS.tmp"
  mv "$RESULTS.tmp" "$RESULTS"
  log "wrote $RESULTS"
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT"
# Only this script's own outputs, and only for the servers measured now.
want nginx && rm -f "$OUT"/wrk-nginx-*.txt "$OUT"/nginx-error.log
want pricing && rm -f "$OUT"/wrk-pricing-*.txt "$OUT"/perf* "$OUT"/pricing-*stderr.log \
  "$OUT"/pricing-*log-head.jsonl "$OUT"/pricing-*sample.txt "$OUT"/seed.log "$OUT"/audit-count.err
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
want nginx && { NGX_PORT=$(free_port); start_nginx "$NGX_PORT"; }
if want pricing; then
  for st in $STORES; do
    start_pricing "$st" "$(free_port)"
    # One look-up by hand: status and body, kept with the raw outputs.
    curl -s -i --max-time 5 "http://127.0.0.1:${PXPORT[$st]}/price?id=PROD-101&userId=$SAMPLE_USER" \
      >"$OUT/pricing-$st-sample.txt" || die "pricing ($st) did not answer a sample look-up"
    head -n 1 "$OUT/pricing-$st-sample.txt" | grep -q ' 200' ||
      die "sample look-up did not answer 200: $(head -n 1 "$OUT/pricing-$st-sample.txt")"
  done
  PX_PID=${PXPID[$PROFILE_STORE]:-}
  [ -n "$PX_PID" ] || die "BENCH_PROFILE_STORE=$PROFILE_STORE is not in BENCH_AUDIT_STORES"
fi

for c in $CONNS; do
  want nginx && run_one nginx "$c" "$NGX_PORT"
  if want pricing; then
    for st in $STORES; do run_one "pricing-$st" "$c" "${PXPORT[$st]}"; done
  fi
done
want pricing && profile_pricing "${PXPORT[$PROFILE_STORE]}"
write_results
