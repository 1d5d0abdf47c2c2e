#!/usr/bin/env bash
# Start a private, throwaway PostgreSQL server for the integration tests (idempotent, loopback only, no
# systemd): installs Debian's postgresql if it is missing, runs initdb in DIR as the postgres user, starts it on
# PORT, and creates the database `stratus`. Prints the connection URL. `scripts/postgres.sh stop DIR` stops it.
#   usage: scripts/postgres.sh start DIR PORT | stop DIR
set -euo pipefail
action=${1:?start|stop}
dir=${2:?data directory}
find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}
bin=$(find_bin)
if [ "$action" = stop ]; then
    [ -n "$bin" ] && [ -f "$dir/postmaster.pid" ] && runuser -u postgres -- "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null
    exit 0
fi
port=${3:?port}
if [ -z "$bin" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null
    bin=$(find_bin)
fi
mkdir -p "$dir"
chown postgres "$dir"
if [ ! -f "$dir/PG_VERSION" ]; then
    runuser -u postgres -- "$bin/initdb" -D "$dir" -A trust -U postgres >/dev/null
fi
if [ ! -f "$dir/postmaster.pid" ]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
fi
runuser -u postgres -- "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='stratus'" | grep -q 1 \
    || runuser -u postgres -- "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres stratus
echo "postgresql://postgres@127.0.0.1:$port/stratus"
