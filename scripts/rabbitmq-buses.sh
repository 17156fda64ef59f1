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

# shellcheck source=scripts/rabbitmq-node.sh
. "$(dirname "${BASH_SOURCE[0]}")/rabbitmq-node.sh"

name() { echo "lgsp-b$1@localhost"; }
ctl() { local n=$1; shift; node_ctl "$(name "$n")" "$@"; }

launch() {
    node_launch "$(name "$1")" "$BASE/b$1" "569$1" "2569$1" \
        "[rabbitmq_management,rabbitmq_shovel,rabbitmq_shovel_management]" \
        "management.tcp.ip = 127.0.0.1" "management.tcp.port = 1569$1"
}

await() { node_await "$(name "$1")" "$BASE/b$1"; }

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
