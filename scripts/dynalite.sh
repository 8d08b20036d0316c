#!/usr/bin/env bash
# dynalite.sh start|stop|restart DIR: a local DynamoDB (dynalite, in memory) on
# 127.0.0.1 and a free port, for the tests.
#   start   writes DIR/dynalite.pid and DIR/dynalite.port, prints the endpoint URL,
#           returns once it answers (bounded: 20 s)
#   stop    stops the process whose PID is in DIR/dynalite.pid (and only that one)
#   restart stop, then start on the same port (data is lost: it lives in memory)
# dynalite comes from package-lock.json (npm ci, or scripts/install-deps.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cli="$root/node_modules/dynalite/cli.js"

usage() { echo "usage: $0 start|stop|restart DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
mkdir -p "$dir"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# true when something answers DynamoDB's protocol on the port (an error document counts)
answers() {
  local code
  code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$1/" \
    -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'X-Amz-Target: DynamoDB_20120810.ListTables' -d '{}' 2>/dev/null || true)
  [ -n "$code" ] && [ "$code" != "000" ]
}

start() {
  local port=${1:-}
  if [ ! -f "$cli" ]; then
    echo "dynalite.sh: $cli missing: run 'npm ci' in $root" >&2
    exit 1
  fi
  if [ -f "$dir/dynalite.pid" ] && kill -0 "$(cat "$dir/dynalite.pid")" 2>/dev/null; then
    echo "dynalite.sh: already running (PID $(cat "$dir/dynalite.pid"))" >&2
    exit 1
  fi
  [ -n "$port" ] || port=$(free_port)
  # createTableMs 50: tables become ACTIVE quickly in tests
  node "$cli" --host 127.0.0.1 --port "$port" --createTableMs 50 --deleteTableMs 50 \
    >"$dir/dynalite.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/dynalite.pid"
  echo "$port" >"$dir/dynalite.port"
  for _ in $(seq 1 200); do
    if answers "$port"; then
      echo "http://127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "dynalite.sh: dynalite exited; log:" >&2
      cat "$dir/dynalite.log" >&2
      rm -f "$dir/dynalite.pid"
      exit 1
    fi
    sleep 0.1
  done
  echo "dynalite.sh: no answer on port $port after 20 s" >&2
  kill "$pid" 2>/dev/null || true
  rm -f "$dir/dynalite.pid"
  exit 1
}

stop() {
  [ -f "$dir/dynalite.pid" ] || return 0
  local pid
  pid=$(cat "$dir/dynalite.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/dynalite.pid"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  restart)
    port=$(cat "$dir/dynalite.port" 2>/dev/null || true)
    stop
    start "$port"
    ;;
  *) usage ;;
esac
