#!/usr/bin/env bash
# ddblocal.sh start|stop DIR: AWS's DynamoDB Local (in memory) on a free port, for
# the tests that need TransactWriteItems (dynalite has none).
#   start  writes DIR/ddblocal.pid and DIR/ddblocal.port, prints the endpoint URL
#          (http://127.0.0.1:PORT), returns once it answers (bounded: 60 s)
#   stop   stops the process whose PID is in DIR/ddblocal.pid (and only that one)
# DynamoDB Local 1.25 ships inside the npm package amplify-dynamodb-simulator
# (pinned in package.json); it runs on Debian's openjdk-17-jre-headless
# (scripts/install-deps.sh installs both). It has no option to choose its
# listening address: it listens on the port on every interface, is reached on
# 127.0.0.1 only, and runs with -disableTelemetry so that it sends nothing out.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
emu="$root/node_modules/amplify-dynamodb-simulator/emulator"

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
mkdir -p "$dir"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

answers() {
  local code
  code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$1/" \
    -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
    -H 'X-Amz-Target: DynamoDB_20120810.ListTables' -d '{}' 2>/dev/null || true)
  [ -n "$code" ] && [ "$code" != "000" ]
}

start() {
  if [ ! -f "$emu/DynamoDBLocal.jar" ]; then
    echo "ddblocal.sh: $emu/DynamoDBLocal.jar missing: run 'npm ci' in $root" >&2
    exit 1
  fi
  if ! command -v java >/dev/null; then
    echo "ddblocal.sh: java missing (apt-get install openjdk-17-jre-headless)" >&2
    exit 1
  fi
  if [ -f "$dir/ddblocal.pid" ] && kill -0 "$(cat "$dir/ddblocal.pid")" 2>/dev/null; then
    echo "ddblocal.sh: already running (PID $(cat "$dir/ddblocal.pid"))" >&2
    exit 1
  fi
  local port
  port=$(free_port)
  # a small heap: the tests hold a few hundred items (DDBLOCAL_HEAP: the
  # benchmarks hold tens of thousands)
  (cd "$dir" && exec java -Xmx"${DDBLOCAL_HEAP:-256m}" -XX:+UseSerialGC -Djava.library.path="$emu/DynamoDBLocal_lib" \
    -jar "$emu/DynamoDBLocal.jar" -inMemory -sharedDb -disableTelemetry -port "$port" \
    >"$dir/ddblocal.log" 2>&1) &
  local pid=$!
  echo "$pid" >"$dir/ddblocal.pid"
  echo "$port" >"$dir/ddblocal.port"
  for _ in $(seq 1 600); do
    if answers "$port"; then
      echo "http://127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "ddblocal.sh: DynamoDB Local exited; log:" >&2
      cat "$dir/ddblocal.log" >&2
      rm -f "$dir/ddblocal.pid"
      exit 1
    fi
    sleep 0.1
  done
  echo "ddblocal.sh: no answer on port $port after 60 s" >&2
  kill "$pid" 2>/dev/null || true
  rm -f "$dir/ddblocal.pid"
  exit 1
}

stop() {
  [ -f "$dir/ddblocal.pid" ] || return 0
  local pid
  pid=$(cat "$dir/ddblocal.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/ddblocal.pid"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
