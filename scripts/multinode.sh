#!/usr/bin/env bash
# A whole multi-process Stratus cloud on loopback, every service its own process (docs/multinode.md):
# PostgreSQL and RabbitMQ (scripts/postgres.sh, scripts/rabbitmq.sh), one `stratus api` with 2 workers on one set
# of ports (compute, image, embedded identity), 2 schedulers, 2 conductors and 5 computes (fake driver,
# `--host compute-1`..`compute-5`). Each process has its config file in DIR/etc (one per role; the schedulers and
# conductors one each, for their [DEFAULT] host), its log in DIR/log and its pid in DIR/run. The API, conductors and
# computes name the Networking service (the API's embedded one) in [neutron], and the API names Nova in [nova].
#   usage: scripts/multinode.sh up DIR | down DIR
# `up` is idempotent (what runs is left running, the ports of the first `up` are kept in DIR/ports.env), waits
# until os-services shows every service up (and /v2.0/agents each compute host's network agent alive), and prints
# the endpoints and the openstack CLI's environment (DIR/openrc; DIR/clouds.yaml has the cloud `stratus-multinode`).
# `down` stops what `up` started and waits.
# Environment: STRATUS_PYTHON (default: the checkout's .venv/bin/python, else python3), MULTINODE_COMPUTES (5),
# MULTINODE_API_WORKERS (2), MULTINODE_FAKE_HOSTS (each compute simulates this many hosts compute-I-1..N with
# `--fake-hosts N`; default: one host compute-I each), MULTINODE_EXTRA_CONF (INI text appended to every config file),
# MULTINODE_TIMEOUT (120 s for `up` to see every service up).
set -euo pipefail
action=${1:?up|down}
dir=${2:?directory}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
python=${STRATUS_PYTHON:-}
if [ -z "$python" ]; then
    if [ -x "$root/.venv/bin/python" ]; then python=$root/.venv/bin/python; else python=python3; fi
fi
computes=${MULTINODE_COMPUTES:-5}
fake_hosts=${MULTINODE_FAKE_HOSTS:-}
api_workers=${MULTINODE_API_WORKERS:-2}
services="api scheduler-1 scheduler-2 conductor-1 conductor-2"
for i in $(seq 1 "$computes"); do services="$services compute-$i"; done

alive() {  # alive NAME: its pid file names a running process
    local pidfile=$dir/run/$1.pid
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

stop_all() {
    local name pid waited
    for name in $services; do
        alive "$name" && kill -TERM "$(cat "$dir/run/$name.pid")" 2>/dev/null || true
    done
    for name in $services; do
        [ -f "$dir/run/$name.pid" ] || continue
        pid=$(cat "$dir/run/$name.pid")
        waited=0
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 200 ]; do sleep 0.1; waited=$((waited + 1)); done
        if kill -0 "$pid" 2>/dev/null; then
            echo "multinode.sh: $name (pid $pid) did not stop in 20 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$dir/run/$name.pid"
    done
}

if [ "$action" = down ]; then
    [ -d "$dir" ] || exit 0
    stop_all
    [ -d "$dir/rabbitmq" ] && "$here/rabbitmq.sh" stop "$dir/rabbitmq"
    [ -d "$dir/postgres" ] && "$here/postgres.sh" stop "$dir/postgres"
    echo "multinode.sh: stopped"
    exit 0
fi
[ "$action" = up ] || { echo "usage: $0 up DIR | down DIR" >&2; exit 2; }

mkdir -p "$dir/etc" "$dir/log" "$dir/run" "$dir/state"
chmod 755 "$dir"  # the postgres user must enter it to reach its data directory
dir=$(cd "$dir" && pwd)
if [ ! -f "$dir/ports.env" ]; then
    # 20 consecutive free loopback ports: PostgreSQL, RabbitMQ (+1 Erlang distribution, +2 epmd), the APIs
    "$python" - > "$dir/ports.env" <<'EOF'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 60000)
    socks = []
    try:
        for port in range(base, base + 20):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(f"PG_PORT={base}\nMQ_PORT={base + 1}\nCOMPUTE_PORT={base + 10}\nIMAGE_PORT={base + 11}\n"
          f"IDENTITY_PORT={base + 12}\nNETWORK_PORT={base + 13}")
    break
else:
    raise SystemExit("no 20 consecutive free ports")
EOF
fi
# shellcheck disable=SC1091
. "$dir/ports.env"
NETWORK_PORT=${NETWORK_PORT:-$((IDENTITY_PORT + 1))}  # a ports.env written before the networking API
[ -f "$dir/admin-password" ] || (umask 077; "$python" -c "import secrets; print(secrets.token_urlsafe(18))" \
    > "$dir/admin-password")
admin_password=$(cat "$dir/admin-password")

database=$("$here/postgres.sh" start "$dir/postgres" "$PG_PORT" | tail -1)
transport=$("$here/rabbitmq.sh" start "$dir/rabbitmq" "$MQ_PORT" | tail -1)

shared() {  # shared HOST [LINE]: the options every process has; LINE goes into [DEFAULT]
    cat <<EOF
[DEFAULT]
host = $1
${2:-}
state_path = $dir/state
transport_url = $transport
report_interval = 2
service_down_time = 20
rpc_response_timeout = 30
[database]
connection = $database
[conductor]
build_recovery_interval = 10
EOF
}
# A service client's keystoneauth block (a password plugin on the identity API, as admin), then the section's own
# way to its endpoint. [neutron]: how Nova's side reaches the Networking service (the API's embedded one), as
# Nova's docs configure it; the API, the conductors and the computes all use it (networks checked at boot, ports
# made and bound before spawn, a failed build's released). [nova]: how the Networking service reaches Nova
# (os-server-external-events), as Neutron's docs configure it.
service_client() {
    cat <<EOF
[$1]
auth_type = password
auth_url = http://127.0.0.1:$IDENTITY_PORT/v3
username = admin
password = $admin_password
project_name = admin
user_domain_name = Default
project_domain_name = Default
region_name = RegionOne
$2
EOF
}
neutron() { service_client neutron "endpoint_override = http://127.0.0.1:$NETWORK_PORT"; }
nova() { service_client nova "endpoint_type = public"; }
{ shared controller; neutron; nova; cat <<EOF; } > "$dir/etc/api.conf"
[DEFAULT]
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = $COMPUTE_PORT
[api]
auth_strategy = embedded
workers = $api_workers
[image_store]
listen = 127.0.0.1
listen_port = $IMAGE_PORT
[identity]
listen = 127.0.0.1
listen_port = $IDENTITY_PORT
[network_server]
listen = 127.0.0.1
listen_port = $NETWORK_PORT
EOF
for i in 1 2; do
    shared "scheduler-$i" > "$dir/etc/scheduler-$i.conf"
    { shared "conductor-$i"; neutron; } > "$dir/etc/conductor-$i.conf"
done
{ shared compute "compute_driver = fake.FakeDriver"; neutron; } > "$dir/etc/compute.conf"
if [ -n "${MULTINODE_EXTRA_CONF:-}" ]; then  # last in every file: it wins
    for f in "$dir"/etc/*.conf; do printf '%s\n' "$MULTINODE_EXTRA_CONF" >> "$f"; done
fi
chmod 600 "$dir"/etc/*.conf  # they hold the database and broker URLs

start() {  # start NAME CONFIG ARGS...: in its own session, so a terminal's Ctrl-C does not reach it
    local name=$1 config=$2
    shift 2
    alive "$name" && return 0
    STRATUS_ADMIN_PASSWORD=$admin_password setsid "$python" -m stratus.cli --config-file "$config" "$@" \
        >> "$dir/log/$name.log" 2>&1 < /dev/null &
    echo $! > "$dir/run/$name.pid"
}
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
cd "$dir"  # the processes write what they write (the identity bootstrap's clouds.yaml) under DIR
# the API first: its first worker runs the migrations and the identity bootstrap; the others find them done
start api "$dir/etc/api.conf" api
for i in 1 2; do
    start "scheduler-$i" "$dir/etc/scheduler-$i.conf" scheduler
    start "conductor-$i" "$dir/etc/conductor-$i.conf" conductor
done
for i in $(seq 1 "$computes"); do
    start "compute-$i" "$dir/etc/compute.conf" compute --host "compute-$i" ${fake_hosts:+--fake-hosts "$fake_hosts"}
done

cat > "$dir/openrc" <<EOF
export OS_AUTH_URL=http://127.0.0.1:$IDENTITY_PORT/v3
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=admin
export OS_PASSWORD=$admin_password
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=RegionOne
EOF
cat > "$dir/clouds.yaml" <<EOF
clouds:
  stratus-multinode:
    auth:
      auth_url: http://127.0.0.1:$IDENTITY_PORT/v3
      username: admin
      password: $admin_password
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
EOF
chmod 600 "$dir/openrc" "$dir/clouds.yaml"

# wait until os-services lists every scheduler, conductor and compute as up (a dead process: its log's tail)
MN_DIR=$dir MN_SERVICES="$services" MN_FAKE_HOSTS=$fake_hosts MN_TIMEOUT=${MULTINODE_TIMEOUT:-120} "$python" - <<'EOF'
import json, os, sys, time, urllib.error, urllib.request

d = os.environ["MN_DIR"]
env = dict(line.split("=", 1) for line in open(f"{d}/ports.env").read().split())
processes = [n for n in os.environ["MN_SERVICES"].split()]
fake = int(os.environ["MN_FAKE_HOSTS"] or 0)
want = {f"{n}-{i}" for n in processes if n.startswith("compute-") for i in range(1, fake + 1)} if fake else set()
want |= {n for n in processes if n != "api" and not (fake and n.startswith("compute-"))}
password = open(f"{d}/admin-password").read().strip()
identity = f"http://127.0.0.1:{env['IDENTITY_PORT']}/v3/auth/tokens"
compute = f"http://127.0.0.1:{env['COMPUTE_PORT']}/v2.1/os-services"
agents = f"http://127.0.0.1:{env['NETWORK_PORT']}/v2.0/agents"
hosts = {h for h in want if h.startswith("compute-")}
body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": "admin", "domain": {"name": "Default"}, "password": password}}},
    "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}).encode()
deadline = time.monotonic() + float(os.environ["MN_TIMEOUT"])
token, up = None, set()
while time.monotonic() < deadline:
    for name in processes:
        pid = int(open(f"{d}/run/{name}.pid").read())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log = open(f"{d}/log/{name}.log", errors="replace").read()[-3000:]
            sys.exit(f"multinode.sh: {name} exited:\n{log}")
    try:
        if token is None:
            req = urllib.request.Request(identity, body, {"Content-Type": "application/json"})
            token = urllib.request.urlopen(req, timeout=5).headers["X-Subject-Token"]
        req = urllib.request.Request(compute, headers={"X-Auth-Token": token})
        rows = json.load(urllib.request.urlopen(req, timeout=5))["services"]
        up = {r["host"] for r in rows if r["state"] == "up"}
        if want <= up:
            # and each compute host's network agent alive: until it has reported, no port binds to that host
            req = urllib.request.Request(agents, headers={"X-Auth-Token": token})
            alive = {a["host"] for a in json.load(urllib.request.urlopen(req, timeout=5))["agents"] if a["alive"]}
            up -= hosts - alive
            if want <= up:
                sys.exit(0)
    except (OSError, urllib.error.URLError, KeyError, ValueError):
        pass
    time.sleep(0.5)
sys.exit(f"multinode.sh: not up within {os.environ['MN_TIMEOUT']} s: {sorted(want - up)} (logs in {d}/log)")
EOF

cat <<EOF
multinode.sh: up in $dir: api ($api_workers workers), 2 schedulers, 2 conductors, $computes computes${fake_hosts:+ of $fake_hosts simulated hosts each}
  compute API   http://127.0.0.1:$COMPUTE_PORT/v2.1
  image API     http://127.0.0.1:$IMAGE_PORT
  identity API  http://127.0.0.1:$IDENTITY_PORT/v3
  network API   http://127.0.0.1:$NETWORK_PORT/v2.0
  database      $database
  transport     $transport
  openstack CLI: source $dir/openrc  (or OS_CLIENT_CONFIG_FILE=$dir/clouds.yaml OS_CLOUD=stratus-multinode)
EOF
