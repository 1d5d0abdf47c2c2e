#!/usr/bin/env bash
# Run a private, throwaway RabbitMQ broker (Debian's rabbitmq-server) for the multi-process integration tests
# (idempotent, no systemd, loopback only). Everything lives under DIR: DIR/mnesia (the broker's data, kept across
# a stop and start, so durable queues survive a restart), DIR/log, DIR/rabbitmq.conf, DIR/.erlang.cookie (HOME is
# DIR), DIR/run (pid files). The broker takes AMQP on 127.0.0.1:PORT, its Erlang distribution on 127.0.0.1:PORT+1
# and its own epmd (the Erlang port mapper, started and stopped here) on 127.0.0.1:PORT+2, under the node name
# stratus-PORT@localhost, so brokers in different DIRs with ports three apart run side by side and never meet a
# system RabbitMQ (5672, 25672, epmd 4369). No plugins (the management plugin alone adds ~2 s to a start). The
# user is RabbitMQ's own guest:guest, which it accepts on loopback only.
#   usage: scripts/rabbitmq.sh install         apt-get rabbitmq-server if it is missing (never starts its service)
#          scripts/rabbitmq.sh start DIR PORT   install, start (if not running) and wait until it takes AMQP
#                                                connections; prints the transport URL rabbit://guest:guest@...
#          scripts/rabbitmq.sh stop DIR         stop the broker and the epmd this script started; fine if none runs
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
source "$(dirname "$(readlink -f "$0")")/lib/proc.sh"
action=${1:?install | start DIR PORT | stop DIR}
SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server   # the plain script: runs as the caller (the sbin wrapper switches user)
TIMEOUT=${RABBITMQ_TIMEOUT:-60}                 # seconds for the broker to take connections

die() {
    echo "rabbitmq.sh: $1" >&2
    exit 1
}

install() {
    [ -x "$SERVER" ] && return 0
    [ "$(id -u)" = 0 ] || die "rabbitmq-server is not installed and installing it needs root (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # The package's postinst would start the system broker (on all interfaces): a policy-rc.d that denies every
    # start keeps it from doing so where the machine has none of its own.
    local policy=/usr/sbin/policy-rc.d own_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    fi
    if ! apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
    fi
    [ -z "$own_policy" ] || rm -f "$policy"
}

# amqp_ready PORT: the broker on 127.0.0.1:PORT answers an AMQP 0-9-1 protocol header with a frame (its
# connection.start, type 1); a listener that is open but not serving yet does not.
amqp_ready() {
    timeout 2 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "AMQP\0\0\x09\x01" >&3
        [ "$(head -c 1 <&3 | od -An -tx1 | tr -d " ")" = 01 ]' _ "$1" 2>/dev/null
}

stop() {
    local pid
    if pid=$(pid_from "$dir/run/rabbitmq.pid" beam.smp); then
        kill -TERM "$pid" 2>/dev/null || true   # the node stops cleanly on SIGTERM (queues, mnesia flushed)
        wait_gone "$pid" beam.smp 30
    fi
    if pid=$(pid_from "$dir/run/epmd.pid" epmd); then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" epmd 5
    fi
    rm -f "$dir/run/rabbitmq.pid" "$dir/run/epmd.pid"
}

if [ "$action" = install ]; then
    install
    exit 0
fi
dir=${2:?data directory}
if [ "$action" = stop ]; then
    stop
    exit 0
fi
[ "$action" = start ] || die "unknown action $action (install | start DIR PORT | stop DIR)"
port=${3:?port}
dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
url="rabbit://guest:guest@127.0.0.1:$port/"
if pid_from "$dir/run/rabbitmq.pid" beam.smp >/dev/null && amqp_ready "$port"; then
    echo "$url"
    exit 0
fi
install
mkdir -p "$dir/run" "$dir/log" "$dir/mnesia"
export HOME=$dir   # the Erlang cookie: DIR/.erlang.cookie, not the caller's
export ERL_EPMD_PORT=$((port + 2)) ERL_EPMD_ADDRESS=127.0.0.1
if ! pid_from "$dir/run/epmd.pid" epmd >/dev/null; then
    # our own epmd, in the foreground of a detached session, so its pid is known and stop can end it
    setsid bash -c 'echo $$ >"$1"; exec epmd -port "$2" -address 127.0.0.1' _ "$dir/run/epmd.pid" "$ERL_EPMD_PORT" \
        </dev/null >>"$dir/log/epmd.out" 2>&1 9>&- &
    for _ in $(seq 100); do
        pid_from "$dir/run/epmd.pid" epmd >/dev/null && break
        sleep 0.02
    done
fi
cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$port
loopback_users.guest = true
log.file.level = warning
log.console = false
disk_free_limit.absolute = 50MB
EOF
: >"$dir/enabled_plugins.conf"
: >"$dir/rabbitmq-env.conf"
t0=$(date +%s%N)
RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_NODENAME="stratus-$port@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port" \
    RABBITMQ_DIST_PORT=$((port + 1)) RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_PID_FILE="$dir/run/rabbitmq.pid" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins.conf" \
    RABBITMQ_ENABLED_PLUGINS="" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    setsid -f "$SERVER" </dev/null >>"$dir/log/server.out" 2>&1 9>&-
for ((i = 0; i < TIMEOUT * 10; i++)); do
    if amqp_ready "$port"; then
        echo "rabbitmq.sh: broker on 127.0.0.1:$port took connections after $((($(date +%s%N) - t0) / 1000000)) ms" >&2
        echo "$url"
        exit 0
    fi
    sleep 0.1
done
echo "rabbitmq.sh: the broker did not take AMQP connections on 127.0.0.1:$port within ${TIMEOUT} s" >&2
tail -n 20 "$dir/log/server.out" >&2 || true
stop
exit 1
