#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, beside the broker on 5672 and apart from it,
# for tests/test_cluster.py: nodes lgsp-c1..3@localhost, AMQP on 127.0.0.1:5681..5683,
# distribution on 25681..25683, data under $LGSP_CLUSTER_DIR (scripts/rabbitmq-node.sh starts each).
#
#   scripts/rabbitmq-cluster.sh start        start the three nodes and join them
#   scripts/rabbitmq-cluster.sh kill N       SIGKILL node N (what the test does mid-stream)
#   scripts/rabbitmq-cluster.sh revive N     start node N again; it rejoins with its data
#   scripts/rabbitmq-cluster.sh stop         stop the nodes and remove their data
set -euo pipefail

BASE=${LGSP_CLUSTER_DIR:-/tmp/lgsp-rabbitmq-cluster}
NODES=(1 2 3)

# shellcheck source=scripts/rabbitmq-node.sh
. "$(dirname "${BASH_SOURCE[0]}")/rabbitmq-node.sh"

name() { echo "lgsp-c$1@localhost"; }
ctl() { local n=$1; shift; node_ctl "$(name "$n")" "$@"; }

launch() {
    # No plugins: their ports would clash.
    node_launch "$(name "$1")" "$BASE/c$1" "568$1" "2568$1" "[]"
    node_await "$(name "$1")" "$BASE/c$1"
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
