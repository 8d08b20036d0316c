#!/usr/bin/env bash
# fauxqs.sh start|stop DIR: a local SQS + SNS (fauxqs, pinned by package-lock.json)
# on 127.0.0.1 and a free port, for the tests.
#   start  writes DIR/fauxqs.pid and DIR/fauxqs.port, prints the endpoint URL,
#          returns once it answers (bounded: 30 s)
#   stop   stops the process whose PID is in DIR/fauxqs.pid (and only that one)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cli="$root/node_modules/fauxqs/dist/cli.js"
usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
mkdir -p "$dir"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  if [ ! -f "$cli" ]; then
    echo "fauxqs.sh: $cli missing: run 'npm ci' in $root (or make deps)" >&2
    exit 1
  fi
  local port
  port=$(free_port)
  FAUXQS_PORT=$port FAUXQS_HOST=127.0.0.1 FAUXQS_DEFAULT_REGION=us-east-1 \
    node "$cli" >"$dir/fauxqs.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/fauxqs.pid"
  echo "$port" >"$dir/fauxqs.port"
  for _ in $(seq 1 300); do
    code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/" \
      -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: AmazonSQS.ListQueues' \
      -d '{}' 2>/dev/null || true)
    if [ -n "$code" ] && [ "$code" != "000" ]; then
      echo "http://127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "fauxqs.sh: fauxqs exited; log:" >&2
      cat "$dir/fauxqs.log" >&2
      rm -f "$dir/fauxqs.pid"
      exit 1
    fi
    sleep 0.1
  done
  echo "fauxqs.sh: no answer within 30 s" >&2
  exit 1
}

stop() {
  [ -f "$dir/fauxqs.pid" ] || return 0
  local pid
  pid=$(cat "$dir/fauxqs.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/fauxqs.pid"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
