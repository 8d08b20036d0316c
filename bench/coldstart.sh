#!/usr/bin/env bash
# Cold start of the Lambda custom runtime as `make package` ships it, measured
# with `pricing emulate` (the local Runtime API) in the same run as:
#   - a trivial static runtime (bench/trivial_runtime.c, `cc -static`): the floor,
#     a GET /next + POST loop with no loader, no library, no store;
#   - a Node.js 20 handler doing the same job (bench/node-lambda: the Runtime API
#     loop on node:http, SQLite through better-sqlite3);
#   - optionally another artifact (COLD_BASELINE, e.g. the previous release's zip).
#
# For each runtime:
#   - COLD_RUNS (default 20) cold starts, one event each (`emulate --event`):
#     median and p90 of Init Duration (exec of bootstrap -> its first /next) and
#     of exec -> first response posted (Init Duration + Duration), median RSS
#     after that one invocation;
#   - one process serving COLD_INVOCATIONS (default 10,000) invocations through
#     the API Gateway front: VmRSS after 1 and after all of them.
# Results go to bench/out/coldstart.txt and replace the "## Cold start" section
# of bench/RESULTS.md (the rest of that file is left as it is).
#
# Usage: bench/coldstart.sh [ARTIFACT [EMULATOR]]
#   ARTIFACT  the Lambda zip (default: dist/pricing-<version>-linux-<arch>.zip of
#             `make package`) or an executable bootstrap
#   EMULATOR  a development build with `emulate` and `db seed` (default build/pricing;
#             the packaged bootstrap has no HTTP server)
# Environment: COLD_RUNS, COLD_INVOCATIONS, COLD_NODE=0 (skip Node.js),
#              COLD_BASELINE (a second zip or bootstrap), COLD_RESULTS (default
#              bench/RESULTS.md).
# Everything started here is stopped on exit, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
case "$(uname -m)" in x86_64) ARCH=x86_64 ;; aarch64|arm64) ARCH=arm64 ;; *) ARCH=$(uname -m) ;; esac
VERSION=$(sed -n 's/^project(pricing VERSION \([0-9][0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
ARTIFACT=$(realpath "${1:-$ROOT/dist/pricing-$VERSION-linux-$ARCH.zip}")
BIN=$(realpath "${2:-$ROOT/build/pricing}")
RUNS=${COLD_RUNS:-20}
INVOCATIONS=${COLD_INVOCATIONS:-10000}
RESULTS=${COLD_RESULTS:-$HERE/RESULTS.md}
NODE_DIR="$HERE/node-lambda"
OUT="$HERE/out"
PY=/usr/bin/python3

[ -e "$ARTIFACT" ] || { echo "coldstart: no $ARTIFACT (make package first)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "coldstart: no executable $BIN (make build first)" >&2; exit 1; }
"$BIN" emulate --help >/dev/null 2>&1 || { echo "coldstart: $BIN has no emulate (a development build)" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/px-coldstart-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# unpack NAME ZIP|EXE: a directory holding bootstrap (+ lib/), as Lambda's /var/task.
unpack() {
  mkdir -p "$WORK/$1"
  if [ "$(head -c 2 "$2")" = PK ]; then
    (cd "$WORK/$1" && unzip -q "$2") || { echo "coldstart: cannot unzip $2" >&2; exit 1; }
    chmod 0755 "$WORK/$1/bootstrap"
  else
    cp "$2" "$WORK/$1/bootstrap"
  fi
  echo "$WORK/$1/bootstrap"
}

unset AWS_LAMBDA_RUNTIME_API _HANDLER TABLE_AUDIT AUDIT_RETENTION_DAYS METRICS_NAMESPACE \
  METRICS_SERVICE AUDIT_TIMEOUT_MS PRICE_TIMEOUT_MS
export PRICE_DB="sqlite:$WORK/prices.db" AUDIT_STORE="sqlite:$WORK/audit.db"
# The gateway's authorizer is not part of the measurement: every runtime gets the same open event.
export AUTH_MODE=none LOG_LEVEL=info
"$BIN" db seed >/dev/null
"$BIN" generate-event apigateway http-api --path /price \
  --query "id=PROD-101&userId=3f1c2a4e-9b7d-4c1a-8e2f-5a6b7c8d9e0f" >"$WORK/event.json"

mkdir -p "$WORK/trivial"
${CC:-cc} -static -O2 -o "$WORK/trivial/bootstrap" "$HERE/trivial_runtime.c" ||
  { echo "coldstart: cannot build bench/trivial_runtime.c statically (libc6-dev)" >&2; exit 1; }
RUNTIMES=("trivial:$WORK/trivial/bootstrap" "c:$(unpack c "$ARTIFACT")")
[ -z "${COLD_BASELINE:-}" ] || RUNTIMES+=("before:$(unpack before "$(realpath "$COLD_BASELINE")")")
NODE_NOTE=""
if [ "${COLD_NODE:-1}" != 0 ]; then
  if ! command -v node >/dev/null; then
    NODE_NOTE="Node.js not installed: no comparison."
  elif [ -d "$NODE_DIR/node_modules/better-sqlite3" ] ||
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund >"$OUT/coldstart-npm.log" 2>&1); then
    RUNTIMES+=("node:$NODE_DIR/bootstrap")
  else
    NODE_NOTE="npm ci in bench/node-lambda failed (better-sqlite3 builds natively; see bench/out/coldstart-npm.log): no comparison."
  fi
fi

# cold1 NAME BOOTSTRAP: one one-event cold start; its REPORT line appended to a file.
cold1() {
  local name=$1 boot=$2
  "$BIN" emulate --bootstrap "$boot" --event "$WORK/event.json" >"$WORK/answer.json" \
    2>"$WORK/emulate.log" || { echo "coldstart: $name run failed" >&2; tail -5 "$WORK/emulate.log" >&2; exit 1; }
  grep -q '"statusCode":200' "$WORK/answer.json" || { echo "coldstart: $name: no 200" >&2; cat "$WORK/answer.json" >&2; exit 1; }
  grep '"msg":"REPORT' "$WORK/emulate.log" >>"$OUT/coldstart-$name-reports.jsonl"
  # The runtime's own share of its init (configuration, stores), when it says so.
  grep -o '"initMs":"[0-9.]*"' "$WORK/emulate.log" | head -1 | tr -dc '0-9.\n' \
    >>"$OUT/coldstart-$name-main.txt" || true
}

# warm NAME BOOTSTRAP: one process, INVOCATIONS requests through the front; prints "rss1 rssN".
warm() {
  local name=$1 boot=$2 port
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  LOG_LEVEL=error "$BIN" emulate --bootstrap "$boot" --port "$port" >"$OUT/coldstart-$name-warm.log" 2>&1 &
  local epid=$!
  PIDS+=("$epid")
  "$PY" - "$port" "$epid" "$INVOCATIONS" <<'EOF'
import glob, http.client, socket, sys, time
port, epid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        time.sleep(0.05)
def child():
    for p in glob.glob("/proc/%d/task/*/children" % epid):
        kids = open(p).read().split()
        if kids:
            return int(kids[0])
def rss(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
users = ["3f1c2a4e-9b7d-4c1a-8e2f-5a6b7c8d9e%02x" % i for i in range(16)]
first = None
for i in range(1, n + 1):
    c.request("GET", "/price?id=PROD-101&userId=" + users[i % 16])
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit("status %d at invocation %d" % (r.status, i))
    if i == 1:
        pid = child()
        first = rss(pid)
print(first, rss(pid))
EOF
  kill "$epid" 2>/dev/null || true
  wait "$epid" 2>/dev/null || true
}

summary() { # NAME -> "init_p50 init_p90 first_p50 first_p90 rss1_p50"
  "$PY" - "$OUT/coldstart-$1-reports.jsonl" <<'EOF'
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
init = sorted(float(r["initDurationMs"]) for r in rs)
first = sorted(float(r["initDurationMs"]) + float(r["durationMs"]) for r in rs)
rss = sorted(int(r["rssKB"]) for r in rs)
p90 = lambda v: v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
print("%.1f %.1f %.1f %.1f %d" % (statistics.median(init), p90(init), statistics.median(first),
                                  p90(first), statistics.median(rss)))
EOF
}

declare -A ROW
for entry in "${RUNTIMES[@]}"; do
  name=${entry%%:*}
  : >"$OUT/coldstart-$name-reports.jsonl"
  : >"$OUT/coldstart-$name-main.txt"
done
# Round-robin, one cold start of each runtime in turn: a load change on the shared
# machine hits every runtime alike, so same-run differences stay meaningful.
echo "coldstart: $RUNS cold starts of each of ${#RUNTIMES[@]} runtimes, interleaved" >&2
for ((r = 0; r < RUNS; r++)); do
  for entry in "${RUNTIMES[@]}"; do
    cold1 "${entry%%:*}" "${entry#*:}"
  done
done
for entry in "${RUNTIMES[@]}"; do
  name=${entry%%:*}
  boot=${entry#*:}
  echo "coldstart: $name: $INVOCATIONS invocations in one process" >&2
  read -r rss1 rssn < <(warm "$name" "$boot")
  read -r i50 i90 f50 f90 r1 < <(summary "$name")
  ROW[$name]="$i50|$i90|$f50|$f90|$r1|$rss1|$rssn"
done

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", a - b }'; }
IFS='|' read -r t_i50 _ t_f50 _ _ _ _ <<<"${ROW[trivial]}"
{
  echo "## Cold start"
  echo
  echo "\`bench/coldstart.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r); \`pricing emulate\`"
  echo "as the Runtime API (init = exec of bootstrap to its first \`/next\`; first answer = exec to"
  echo "the first response posted); $RUNS cold starts of each runtime, interleaved, one event each"
  echo "(GET /price, SQLite price read + audit record made durable); then one process answering"
  echo "$INVOCATIONS requests through the API Gateway front. The artifact is \`$(basename "$ARTIFACT")\`"
  echo "as \`make package\` builds it, unzipped as Lambda does."
  echo
  echo "| runtime | init p50 | init p90 | init − trivial | first answer p50 | first answer p90 | first answer − trivial | RSS after 1 | RSS after $INVOCATIONS |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for entry in "${RUNTIMES[@]}"; do
    name=${entry%%:*}
    IFS='|' read -r i50 i90 f50 f90 r1 rss1 rssn <<<"${ROW[$name]}"
    case "$name" in
      trivial) label="trivial static runtime (no store, fixed answer)" ;;
      c) label="pricing bootstrap (static but for glibc)" ;;
      before) label="pricing bootstrap, $(basename "$COLD_BASELINE")" ;;
      node) label="Node.js $(node --version) + better-sqlite3" ;;
    esac
    echo "| $label | $i50 ms | $i90 ms | $(minus "$i50" "$t_i50") ms | $f50 ms | $f90 ms | $(minus "$f50" "$t_f50") ms | $(mb "$rss1") MB | $(mb "$rssn") MB |"
  done
  echo
  [ -n "$NODE_NOTE" ] && echo "$NODE_NOTE" && echo
  main_ms=$("$PY" -c 'import statistics,sys; v=[float(l) for l in open(sys.argv[1]) if l.strip()]; print("%.1f" % statistics.median(v) if v else "?")' "$OUT/coldstart-c-main.txt")
  nso=$(ldd "$WORK/c/bootstrap" 2>/dev/null | wc -l)
  echo "Of the packaged runtime's init, its own work (configuration, opening the SQLite stores,"
  echo "the Runtime API client) takes a median $main_ms ms; the rest is exec and the dynamic loader"
  echo "mapping $nso objects (glibc's and the vDSO). The machine was shared with other builds"
  echo "during the run (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)): absolute"
  echo "figures move with the load, the same-run differences to the trivial runtime are the ones"
  echo "to trust. Raw REPORT lines: \`bench/out/coldstart-*\`."
  echo
  echo "RSS counts the process's own memory and the file pages it touched; the growth between"
  echo "the last two columns is SQLite's page cache filling (bounded, 2 MB per connection by"
  echo "default), not a leak: tests/integration/test_lambda.py checks RSS is flat once it is full."
} >"$OUT/coldstart.txt"

# Replace our section, keep the rest of the file.
"$PY" - "$RESULTS" "$OUT/coldstart.txt" <<'EOF'
import os, re, sys
path, section = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read() if os.path.exists(path) else ""
m = re.search(r"^## Cold start\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
if m:
    text = text[:m.start()] + section + ("\n" if text[m.end():] else "") + text[m.end():]
else:
    text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + section
open(path, "w").write(text)
EOF
cat "$OUT/coldstart.txt"
