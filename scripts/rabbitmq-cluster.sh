#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, beside the broker on 5672 and apart from it,
# for tests/test_cluster.py: nodes lgsp-c1..3@localhost, AMQP on 127.0.0.1:5681..5683,
# distribution on 25681..25683, data under $LGSP_CLUSTER_DIR. Debian's rabbitmq-server runs
# each node as the rabbitmq user, so they share its Erlang cookie with rabbitmqctl.
#
#   scripts/rabbitmq-cluster.sh start        start the three nodes and join them
#   scripts/rabbitmq-cluster.sh kill N       SIGKILL node N (what the test does mid-stream)
#   scripts/rabbitmq-cluster.sh revive N     start node N again; it rejoins with its data
#   scripts/rabbitmq-cluster.sh stop         stop the nodes and remove their data
set -euo pipefail

BASE=${LGSP_CLUSTER_DIR:-/tmp/lgsp-rabbitmq-cluster}
NODES=(1 2 3)

name() { echo "lgsp-c$1@localhost"; }
ctl() { local n=$1; shift; rabbitmqctl -q -n "$(name "$n")" "$@"; }

launch() {
    local n=$1 dir="$BASE/c$1"
    mkdir -p "$dir/mnesia" "$dir/log"
    chmod 755 "$BASE"  # the nodes run as the rabbitmq user, whatever root's umask
    # Only this node's listener: the system config would also bind 5672.
    printf 'listeners.tcp.local = 127.0.0.1:568%s\nloopback_users = none\n' "$n" >"$dir/rabbitmq.conf"
    echo "[]." >"$dir/enabled_plugins.erl"  # no plugins: their ports would clash too
    chown -R rabbitmq:rabbitmq "$dir"
    RABBITMQ_NODENAME="$(name "$n")" \
        RABBITMQ_NODE_PORT="568$n" \
        RABBITMQ_DIST_PORT="2568$n" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins.erl" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$dir/pid" \
        rabbitmq-server -detached >"$dir/start.log" 2>&1
    # await_startup fails at once while the node does not answer at all: ask again.
    for _ in $(seq 120); do
        ctl "$n" await_startup --timeout 60 >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "error: node $(name "$n") did not start; see $dir/log" >&2
    return 1
}

case "${1:-}" in
start)
    for n in "${NODES[@]}"; do launch "$n"; done
    for n in 2 3; do
        ctl "$n" stop_app
        ctl "$n" reset
        ctl "$n" join_cluster "$(name 1)"
        ctl "$n" start_app
    done
    ctl 1 cluster_status
    ;;
kill)
    kill -9 "$(cat "$BASE/c$2/pid")"
    ;;
revive)
    launch "$2"
    ;;
stop)
    for n in "${NODES[@]}"; do ctl "$n" shutdown >/dev/null 2>&1 || true; done
    rm -rf "$BASE"
    ;;
*)
    echo "usage: $0 start | kill N | revive N | stop" >&2
    exit 2
    ;;
esac
