# shellcheck shell=bash
# Functions shared by bench/run.sh and bench/run-backends.sh; sourced, never run.
# The sourcing script sets BENCH_TAG (prefix of its messages), HERE (bench/)
# and THREADS (wrk threads) before it calls them.

die() {
  echo "$BENCH_TAG: $*" >&2
  exit 1
}
log() { echo "$BENCH_TAG: $*" >&2; }

# Prints the script's header comment (from line 2 to `set -euo`) and exits 2.
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

# Dies unless each named variable holds a whole number of seconds.
check_seconds() {
  local v
  for v in "$@"; do
    [[ ${!v} =~ ^[1-9][0-9]{0,3}$ ]] || die "$v must be a whole number of seconds (1..9999), got '${!v}'"
  done
}

# Dies unless each word of $1 is a connection count.
check_conns() {
  local c
  for c in $1; do
    [[ $c =~ ^[1-9][0-9]{0,4}$ ]] || die "BENCH_CONNS: bad connection count '$c'"
  done
}

# Absolute path of the executable $1; dies if it is not one.
abs_bin() {
  [ -x "$1" ] || die "not an executable: $1"
  echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}

# Succeeds when the Debian package $1 is installed.
deb_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# Installs the Debian packages named (all missing ones), with sudo unless root.
apt_install() {
  [ $# -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Stops the PIDs named: TERM, up to 5 s for them to go, then KILL.
stop_pids() {
  local pid i alive
  for pid in "$@"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for ((i = 0; i < 50; i++)); do
    alive=0
    for pid in "$@"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for pid in "$@"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits (bounded) until URL answers with HTTP status $2, while PID $3 lives.
wait_http() {
  local url=$1 want_status=$2 pid=$3 i code
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
    [ "$code" = "$want_status" ] && return 0
    sleep 0.1
  done
  return 1
}

children_of() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

# utime+stime of PID $1 in clock ticks; fails when the process is gone.
pid_ticks() {
  local line rest fields
  line=$(<"/proc/$1/stat") || return 1
  rest=${line##*) } # comm may hold spaces; utime/stime are fields 14/15
  read -r -a fields <<<"$rest"
  echo $((fields[11] + fields[12]))
}

# Extracts field $2 from the "BENCH k=v ..." line in file $1.
bench_field() {
  awk -v k="$2" '/^BENCH / { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$1"
}

run_wrk() { # conns seconds url outfile
  BENCH_USERS=${BENCH_USERS:-1000} timeout $(($2 + 30)) \
    wrk -t"$THREADS" -c"$1" -d"$2"s --timeout 2s --latency -s "$HERE/price.lua" "$3" >"$4" 2>&1
}

fmt_ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }

# Verdict on $1 audit records against $2 answered look-ups at $3 connections.
audit_verdict() {
  local au=$1 an=$2 c=$3
  if [ "$au" -eq "$an" ]; then
    echo "match"
  elif [ "$au" -gt "$an" ] && [ $((au - an)) -le "$c" ]; then
    echo "match: the $((au - an)) extra record(s) belong to requests still in flight when wrk stopped (at most one per connection)"
  else
    echo "**MISMATCH**"
  fi
}
