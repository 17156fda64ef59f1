# Sourced by scripts/rabbitmq-cluster.sh and scripts/rabbitmq-buses.sh: one RabbitMQ node of
# this machine's Debian package, beside the broker on 5672 and apart from it, with its own name,
# ports, config, plugins and data. Debian's rabbitmq-server runs each node as the rabbitmq user,
# so the nodes share its Erlang cookie with rabbitmqctl.

# node_ctl NODE ARGS...: rabbitmqctl on NODE (e.g. lgsp-c1@localhost).
node_ctl() { local node=$1; shift; rabbitmqctl -q -n "$node" "$@"; }

# node_launch NODE DIR AMQP_PORT DIST_PORT PLUGINS [CONFIG LINES...]: start NODE detached with
# its data in DIR, listening on AMQP_PORT only, with PLUGINS (an Erlang list, e.g. "[]").
node_launch() {
    local node=$1 dir=$2 amqp=$3 dist=$4 plugins=$5
    shift 5
    mkdir -p "$dir/mnesia" "$dir/log"
    chmod 755 "$(dirname "$dir")"  # the nodes run as the rabbitmq user, whatever root's umask
    # Only this node's listeners: the system config would bind 5672 (and 15672).
    printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n' "$amqp" >"$dir/rabbitmq.conf"
    for line in "$@"; do printf '%s\n' "$line" >>"$dir/rabbitmq.conf"; done
    echo "$plugins." >"$dir/enabled_plugins.erl"
    chown -R rabbitmq:rabbitmq "$dir"
    RABBITMQ_NODENAME="$node" \
        RABBITMQ_NODE_PORT="$amqp" \
        RABBITMQ_DIST_PORT="$dist" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins.erl" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$dir/pid" \
        rabbitmq-server -detached >"$dir/start.log" 2>&1
}

# node_await NODE DIR: wait until NODE has started (its log in DIR says why if it does not).
node_await() {
    local node=$1 dir=$2
    # await_startup fails at once while the node does not answer at all: ask again.
    for _ in $(seq 120); do
        node_ctl "$node" await_startup --timeout 60 >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "error: node $node did not start; see $dir/log" >&2
    return 1
}
