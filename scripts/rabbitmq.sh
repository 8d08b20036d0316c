#!/usr/bin/env bash
# rabbitmq.sh start|stop|pause|resume DIR: a private RabbitMQ node (Debian's rabbitmq-server)
# for the tests, on 127.0.0.1 and free ports, with everything under DIR: its own
# node name, Mnesia directory, logs, configuration file, Erlang cookie (HOME=DIR)
# and its own epmd (ERL_EPMD_PORT): the system service is never used or touched.
#   start  writes DIR/amqp.url (amqp://guest:guest@127.0.0.1:PORT/%2F), prints it,
#          returns once the node accepts AMQP connections (bounded: 60 s)
#   pause  stops the broker application (connections refused, node kept: a broker outage)
#   resume starts it again on the same port, with the same data
#   stop   stops that node and its epmd, by the PIDs recorded in DIR only
set -euo pipefail
usage() { echo "usage: $0 start|stop|pause|resume DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
bin=/usr/lib/rabbitmq/bin

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

node_env() {
  export HOME=$dir
  export ERL_EPMD_PORT RABBITMQ_NODENAME RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT
  ERL_EPMD_PORT=$(cat "$dir/epmd.port")
  RABBITMQ_NODENAME=$(cat "$dir/node.name")
  RABBITMQ_NODE_PORT=$(cat "$dir/amqp.port")
  RABBITMQ_DIST_PORT=$(cat "$dir/dist.port")
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log
  export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  export RABBITMQ_PID_FILE=$dir/rabbit.pid RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
  export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
}

start() {
  if [ ! -x "$bin/rabbitmq-server" ]; then
    echo "rabbitmq.sh: $bin/rabbitmq-server missing (apt-get install rabbitmq-server)" >&2
    exit 1
  fi
  free_port >"$dir/amqp.port"
  free_port >"$dir/dist.port"
  free_port >"$dir/epmd.port"
  echo "pxtest$$@localhost" >"$dir/node.name"
  printf '%s\n' "listeners.tcp.1 = 127.0.0.1:$(cat "$dir/amqp.port")" \
    "loopback_users = none" "log.console = false" "log.file.level = warning" \
    "disk_free_limit.absolute = 50MB" >"$dir/rabbitmq.conf"
  echo "[]." >"$dir/enabled_plugins"
  echo "[]." >"$dir/advanced.config"
  : >"$dir/rabbitmq-env.conf"
  mkdir -p "$dir/log" "$dir/mnesia"
  node_env
  "$bin/rabbitmq-server" >"$dir/server.log" 2>&1 &
  echo $! >"$dir/server.pid"
  local url="amqp://guest:guest@127.0.0.1:$RABBITMQ_NODE_PORT/%2F"
  for _ in $(seq 1 600); do
    if amqp-declare-queue -u "$url" -q pxprobe >/dev/null 2>&1; then
      echo "$url" >"$dir/amqp.url"
      echo "$url"
      return 0
    fi
    if ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
      echo "rabbitmq.sh: rabbitmq-server exited; log:" >&2
      tail -n 30 "$dir/server.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "rabbitmq.sh: no AMQP answer within 60 s" >&2
  exit 1
}

stop() {
  [ -f "$dir/node.name" ] || return 0
  node_env
  "$bin/rabbitmqctl" -q stop >/dev/null 2>&1 || true
  local pid
  for f in server.pid rabbit.pid; do
    [ -f "$dir/$f" ] || continue
    pid=$(cat "$dir/$f")
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # the epmd this node started, on its own port: ask it to stop
  epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
}

ctl_app() {
  node_env
  "$bin/rabbitmqctl" -q "$1" >/dev/null
}

case $cmd in
  start) start ;;
  stop) stop ;;
  pause) ctl_app stop_app ;;
  resume) ctl_app start_app ;;
  *) usage ;;
esac
