#!/usr/bin/env bash
# Three separate RabbitMQ brokers on this machine (not a cluster: three buses, as a province's,
# a ministry's and the national hub's are), beside the broker on 5672 and apart from it, for
# tests/test_bridges.py and docs/inter-level.md: nodes lgsp-b1..3@localhost, AMQP on
# 127.0.0.1:5691..5693, management (for shovels) on 15691..15693, distribution on 25691..25693,
# data under $LGSP_BUSES_DIR. Each has the shovel plugin, which the bridges between them use.
#
#   scripts/rabbitmq-buses.sh start        start the three brokers
#   scripts/rabbitmq-buses.sh stop         stop them and remove their data
set -euo pipefail

BASE=${LGSP_BUSES_DIR:-/tmp/lgsp-rabbitmq-buses}
NODES=(1 2 3)

name() { echo "lgsp-b$1@localhost"; }
ctl() { local n=$1; shift; rabbitmqctl -q -n "$(name "$n")" "$@"; }

launch() {
    local n=$1 dir="$BASE/b$1"
    mkdir -p "$dir/mnesia" "$dir/log"
    chmod 755 "$BASE"  # the nodes run as the rabbitmq user, whatever root's umask
    # Only this node's listeners: the system config would bind 5672 and 15672.
    cat >"$dir/rabbitmq.conf" <<CONF
listeners.tcp.local = 127.0.0.1:569$n
loopback_users = none
management.tcp.ip = 127.0.0.1
management.tcp.port = 1569$n
CONF
    echo "[rabbitmq_management,rabbitmq_shovel,rabbitmq_shovel_management]." >"$dir/enabled_plugins.erl"
    chown -R rabbitmq:rabbitmq "$dir"
    RABBITMQ_NODENAME="$(name "$n")" \
        RABBITMQ_NODE_PORT="569$n" \
        RABBITMQ_DIST_PORT="2569$n" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins.erl" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$dir/pid" \
        rabbitmq-server -detached >"$dir/start.log" 2>&1
}

await() {
    local n=$1
    # await_startup fails at once while the node does not answer at all: ask again.
    for _ in $(seq 120); do
        ctl "$n" await_startup --timeout 60 >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "error: node $(name "$n") did not start; see $BASE/b$n/log" >&2
    return 1
}

case "${1:-}" in
start)
    for n in "${NODES[@]}"; do launch "$n"; done  # side by side: one start-up for all three
    for n in "${NODES[@]}"; do await "$n"; done
    ;;
stop)
    for n in "${NODES[@]}"; do ctl "$n" shutdown >/dev/null 2>&1 || true; done
    rm -rf "$BASE"
    ;;
*)
    echo "usage: $0 start | stop" >&2
    exit 2
    ;;
esac
