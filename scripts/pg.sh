#!/usr/bin/env bash
# pg.sh: a throw-away PostgreSQL cluster for tests.
#
#   scripts/pg.sh start DIR    initdb DIR/data (first time), start on 127.0.0.1 with a free
#                              port (kept in DIR/port, reused by later starts), create the
#                              database and user "pricing" with a random password; writes
#                              DIR/uri (postgresql://pricing:PASS@127.0.0.1:PORT/pricing)
#                              and DIR/pid (the postmaster)
#   scripts/pg.sh stop DIR     fast shutdown (data kept, so `start` brings it back)
#   scripts/pg.sh restart DIR  stop + start, same port
#   scripts/pg.sh pause DIR    SIGSTOP the postmaster and its children (a hung server)
#   scripts/pg.sh resume DIR   SIGCONT them
#   scripts/pg.sh destroy DIR  stop and remove DIR
#   scripts/pg.sh createdb DIR NAME   another empty database owned by "pricing"; prints its URI
#   scripts/pg.sh psql DIR [ARGS...]  psql as the superuser on database "pricing" (checks)
#
# Runs the server as "postgres" through runuser when started as root (DIR is
# chowned to it), directly otherwise. The socket lives in DIR (-k), so DIR
# must be short enough for a socket path (~100 bytes). Tests only: fsync off.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
    echo "usage: $0 start|stop|restart|pause|resume|destroy|createdb|psql DIR" >&2
    exit 2
fi

as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

postmaster_pid() {
    [[ -s $dir/data/postmaster.pid ]] && head -n 1 "$dir/data/postmaster.pid"
}

running() {
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

init_cluster() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$dir"
    fi
    as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    local port
    port=$(free_port)
    echo "$port" >"$dir/port"
    as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
shared_buffers = 16MB
log_min_messages = warning
EOF
}

start() {
    local first=0
    if [[ ! -f $dir/data/PG_VERSION ]]; then
        init_cluster
        first=1
    fi
    dir=$(cd "$dir" && pwd)
    local port
    port=$(cat "$dir/port")
    if ! running; then
        as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 30 start >/dev/null
    fi
    if [[ $first -eq 1 ]]; then
        local pass
        pass=$(/usr/bin/python3 -c 'import secrets; print(secrets.token_hex(12))')
        as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres \
            -d postgres -v pass="$pass" >/dev/null <<'EOF'
CREATE ROLE pricing LOGIN PASSWORD :'pass';
CREATE DATABASE pricing OWNER pricing;
EOF
        echo "postgresql://pricing:$pass@127.0.0.1:$port/pricing" >"$dir/uri"
        chmod 600 "$dir/uri"
    fi
    postmaster_pid >"$dir/pid"
}

stop() {
    [[ -f $dir/data/PG_VERSION ]] || return 0
    resume_all 2>/dev/null || true
    if running; then
        as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
    fi
}

# The postmaster and its direct children (every backend and helper process).
cluster_pids() {
    local pm
    pm=$(postmaster_pid) || return 1
    echo "$pm"
    ps -o pid= --ppid "$pm" || true
}

pause_all() {
    local p
    for p in $(cluster_pids); do kill -STOP "$p"; done
}

resume_all() {
    local p
    for p in $(cluster_pids); do kill -CONT "$p"; done
}

superuser_psql() {
    local db=$1
    shift
    as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$(cat "$dir/port")" -U postgres \
        -d "$db" "$@"
}

case $cmd in
start) start ;;
stop) stop ;;
restart)
    stop
    start
    ;;
pause) pause_all ;;
resume) resume_all ;;
destroy)
    stop
    rm -rf "$dir"
    ;;
createdb)
    name=${3:-}
    if [[ ! $name =~ ^[a-z][a-z0-9_]{0,30}$ ]]; then
        echo "usage: $0 createdb DIR NAME (NAME: [a-z][a-z0-9_]*)" >&2
        exit 2
    fi
    dir=$(cd "$dir" && pwd)
    superuser_psql postgres -c "CREATE DATABASE $name OWNER pricing" >/dev/null
    sed "s#/pricing\$#/$name#" "$dir/uri"
    ;;
psql)
    dir=$(cd "$dir" && pwd)
    superuser_psql pricing "${@:3}"
    ;;
*)
    echo "usage: $0 start|stop|restart|pause|resume|destroy|createdb|psql DIR" >&2
    exit 2
    ;;
esac
