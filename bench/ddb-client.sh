#!/usr/bin/env bash
# The CPU one PutItem round trip costs the client, three ways, against dynalite
# (bench/ddb_client_cost.c): curl_easy_perform per request (the DynamoDB
# client before), CURLOPT_CONNECT_ONLY with curl_easy_send/recv (the client
# now, src/transport/http1_client.c), a bare socket per thread (the floor), and
# the same sockets driven by one epoll thread (the floor with several requests
# in flight per thread). The modes run in turn, BENCH_ROUNDS times, each on
# fresh keep-alive connections.
# Prints one line per run; nothing is written to bench/RESULTS.md.
#
# Usage: bench/ddb-client.sh
# Environment:
#   BENCH_SECONDS   seconds per run (default 5)
#   BENCH_THREADS   client threads, each with its own connection (default 8)
#   BENCH_ROUNDS    rounds of the three modes (default 2)
# dynalite is started here on a free port and stopped by its PID file.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SECONDS_RUN=${BENCH_SECONDS:-5}
THREADS=${BENCH_THREADS:-8}
ROUNDS=${BENCH_ROUNDS:-2}
BENCH_TAG=bench-ddb-client
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
check_seconds SECONDS_RUN THREADS ROUNDS

missing=()
for p in gcc libcurl4-openssl-dev awscli nodejs; do deb_installed "$p" || missing+=("$p"); done
apt_install "${missing[@]+"${missing[@]}"}"
[ -f "$ROOT/node_modules/dynalite/cli.js" ] ||
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
  die "dynalite missing and npm ci failed (scripts/install-deps.sh)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pricing-bench-client.XXXXXX")
UP=0
cleanup() {
  [ "$UP" = 1 ] && "$ROOT/scripts/dynalite.sh" stop "$TMP/ddb" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

gcc -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -pthread -o "$TMP/cost" \
  "$HERE/ddb_client_cost.c" -lcurl || die "ddb_client_cost.c does not build"

for v in $(compgen -e | grep '^AWS_'); do unset "$v"; done
export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-local AWS_REGION=us-east-1 \
  AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
ENDPOINT=$("$ROOT/scripts/dynalite.sh" start "$TMP/ddb") || die "dynalite did not start"
UP=1
PORT=${ENDPOINT##*:}
PORT=${PORT%/}
/usr/bin/aws dynamodb create-table --endpoint-url "$ENDPOINT" --table-name cost \
  --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
  --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
  --billing-mode PAY_PER_REQUEST >/dev/null || die "create-table failed"
log "dynalite $(cat "$TMP/ddb/dynalite.pid") on port $PORT; load average $(cut -d' ' -f1-3 /proc/loadavg)"

for _ in $(seq "$ROUNDS"); do
  for mode in perform connect socket epoll; do
    timeout $((SECONDS_RUN + 30)) "$TMP/cost" "$PORT" cost "$mode" "$THREADS" "$SECONDS_RUN"
  done
done
log "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
