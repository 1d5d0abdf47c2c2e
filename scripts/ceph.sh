#!/usr/bin/env bash
# Run a private, throwaway single-node Ceph cluster (Debian's Ceph 16.2 "pacific") for the RBD integration tests
# and benchmarks (idempotent, no systemd, loopback only, no authentication): mon.a, mgr.x and osd.0, the OSD
# keeping its data in memory (memstore, 1 GiB at most), so nothing survives a stop. Every start that does not
# find the cluster running and healthy wipes DIR's state and builds a fresh cluster (keeping the fsid in
# DIR/ceph.conf) with two RBD pools, `images` and `vms` (size 1, 8 PGs each), in ~3 s. Everything lives under
# DIR: DIR/ceph.conf (the only config: give it to clients, e.g. `ceph -c`, rados.Rados(conffile=), qemu's
# rbd:POOL/IMAGE:conf=), DIR/mon, DIR/mgr, DIR/osd (the daemons' data), DIR/run (pid files, admin sockets),
# DIR/log (daemon logs; NAME.out: a daemon's stderr; start.out: this script's clients'), DIR/crash.
# The monitor listens on 127.0.0.1:PORT (msgr1) and 127.0.0.1:PORT+1 (msgr2); mgr and OSD on 127.0.0.1 ports
# from 6800 up. A bare 127.0.0.1:PORT works as a monitor address without DIR/ceph.conf (qemu's
# rbd:POOL/IMAGE:mon_host=127.0.0.1\:PORT, libvirt's <host name='127.0.0.1' port='PORT'/>).
#   usage: scripts/ceph.sh install [VENV]    apt-get the packages; with VENV, make Debian's `rados` and `rbd`
#                                             modules importable in VENV's Python (symlinks in its site-packages)
#          scripts/ceph.sh start DIR [PORT]  install, start the cluster (PORT: default the one in DIR/ceph.conf,
#                                             else the first free pair from 6789 up) and print the fsid, then, on
#                                             the last line, the config file: DIR/ceph.conf
#          scripts/ceph.sh stop DIR          stop osd.0, mgr.x, mon.a in that order (fine if none run)
# Clusters in different DIRs, with different PORTs (two apart at least), run side by side.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
source "$(dirname "$(readlink -f "$0")")/lib/proc.sh"
action=${1:?install [VENV] | start DIR [PORT] | stop DIR}
PACKAGES=(ceph-mon ceph-osd ceph-mgr python3-rados python3-rbd qemu-block-extra)
# Debian's CPython 3 extension modules (python3-rados, python3-rbd); no working binding exists on PyPI.
DIST_PACKAGES=/usr/lib/python3/dist-packages
# Daemons in the order they are stopped: NAME:EXECUTABLE.
DAEMONS=(osd.0:ceph-osd mgr.x:ceph-mgr mon.a:ceph-mon)
POOLS=(images vms)
# Optional mgr modules the mgr does not load (none is enabled here): it imports every module in its module path
# at start-up, ~0.2 s each on this machine, and the cluster is not ready before the mgr is; the others (the
# always-on ones the mon requires, e.g. balancer, devicehealth, pg_autoscaler, rbd_support) load in ~2 s.
MGR_SKIP=(alerts influx insights iostat localpool mirroring nfs osd_perf_query osd_support prometheus restful
          selftest snap_schedule stats telegraf test_orchestrator zabbix)
MGR_MODULES=/usr/share/ceph/mgr
TIMEOUT=${CEPH_TIMEOUT:-60}   # seconds for the cluster to become healthy
# CEPH_MEMSTORE_BYTES: the OSD's memory for data (default 1 GiB), read when a cluster is (re)built

install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        # Refresh the package lists only if installing from the ones we have fails (missing or stale).
        if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
            apt-get update -qq >/dev/null
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        fi
    fi
    local venv=${1:-}
    [ -n "$venv" ] || return 0
    "$venv/bin/python" -c 'import rados, rbd' 2>/dev/null && return 0
    # The modules are built for Debian's python3.11 but import in any CPython with the same ABI tag (the venv's
    # may be another build, e.g. pyenv's): link just these two into the venv's site-packages (not all of
    # dist-packages, which would shadow the venv's own packages).
    local site suffix m
    read -r site suffix < <("$venv/bin/python" -c \
        'import sysconfig; print(sysconfig.get_path("platlib"), sysconfig.get_config_var("EXT_SUFFIX"))')
    for m in rados rbd; do
        [ -f "$DIST_PACKAGES/$m$suffix" ] || {
            echo "ceph.sh: no $DIST_PACKAGES/$m$suffix: $venv's Python is not the 3.x Debian built python3-$m for" >&2
            exit 1
        }
        ln -sfn "$DIST_PACKAGES/$m$suffix" "$site/$m$suffix"
    done
    "$venv/bin/python" -c 'import rados, rbd'
}

# pid_of NAME:EXECUTABLE: the live daemon NAME of this DIR, from its pid file; fails if none.
pid_of() {
    pid_from "$dir/run/${1%%:*}.pid" "${1#*:}"
}

# spawn NAME:EXECUTABLE: start the daemon in the foreground (-f: no fork of its own, writes its pid file all the
# same) but detached (own session; stderr to DIR/log/NAME.out and the lock closed, so a caller that captures
# this script's output is not held open). --no-mon-config: all the config is in DIR/ceph.conf; without it a
# daemon first fetches the mon's config in a throwaway session, after which Ceph 16.2 starts its real session
# with a zero fsid in its monmap until the mon's map arrives, and the mon refuses commands sent meanwhile
# ("wrong fsid"; osd.0 would die at start-up now and then).
spawn() {
    local name=${1%%:*} exe=${1#*:}
    setsid -f "$exe" -c "$conf" -i "${name#*.}" -f --no-mon-config </dev/null >>"$dir/log/$name.out" 2>&1 9>&-
}

die() {
    echo "ceph.sh: $1" >&2
    exit 1
}

# fail MESSAGE: report a cluster that did not come up, with the end of its logs, stop it and give up.
fail() {
    echo "ceph.sh: $1" >&2
    local f
    for f in "$dir"/log/*.out "$dir"/log/mon.a.log "$dir"/log/osd.0.log "$dir"/log/mgr.x.log; do
        [ -s "$f" ] && { echo "==> $f <==" >&2; tail -n 15 "$f" >&2; }
    done
    stop
    exit 1
}

# conf_get KEY: KEY's value in DIR/ceph.conf (empty if none).
conf_get() {
    if [ -f "$conf" ]; then sed -n "s/^$1 = //p" "$conf" | head -1; fi
}

port_free() {
    ! ss -Hltn "sport = :$1" | grep -q .
}

write_conf() {
    cat >"$conf" <<EOF
# Single-node throwaway cluster made by scripts/ceph.sh: loopback only, no authentication, one OSD in memory.
[global]
fsid = $fsid
# mon.a: msgr2 on PORT+1 for clients with this file (with msgr2 a client's connect returns only once it has the
# mon's map; a msgr1 client may send its first command too early, with a zero fsid, and be refused), msgr1 on
# PORT for a bare 127.0.0.1:PORT (qemu's mon_host, libvirt's <host>: any port but 3300 means msgr1).
mon host = [v2:127.0.0.1:$((port + 1)),v1:127.0.0.1:$port]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
# (only a health warning without cephx)
auth allow insecure global id reclaim = false
run dir = $dir/run
crash dir = $dir/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# No health warning, nor a mon that shuts itself down, when the disk is nearly full.
mon data avail warn = 1
mon data avail crit = 0
# Daemons report to the mgr, and the mgr to the mon, every second (not 5): \`ceph -s\` is current sooner.
mgr stats period = 1
mon mgr digest period = 1

[mon]
mon data = $dir/mon
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
mon cluster log file = $dir/log/\$cluster.\$channel.log
# Commit a proposal 0.1 s after the previous (default 1 s), e.g. for each RBD snapshot and a pool's first clone.
paxos propose interval = 0.1
# No mgr modules beyond the always-on ones (the default would enable restful, iostat and nfs).
mgr initial modules =

[mgr]
mgr data = $dir/mgr
# Symbolic links to the modules in $MGR_MODULES but the optional ones it would load for nothing.
mgr module path = $dir/mgr-modules
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log

[osd]
osd data = $dir/osd
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
# Data in memory, 1 GiB at most unless CEPH_MEMSTORE_BYTES says (used as written); gone when the OSD stops.
osd objectstore = memstore
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-1073741824}
EOF
}

# ready: all daemons run, the pools are there and the cluster is healthy (see PYTHON_SETUP).
ready() {
    local d
    for d in "${DAEMONS[@]}"; do
        pid_of "$d" >/dev/null || return 1
    done
    timeout 10 /usr/bin/python3 - check "$conf" 0 "${POOLS[@]}" <<<"$PYTHON_SETUP" 2>/dev/null
}

# python3 - setup|check CONF SECONDS POOL...: with `setup`, create the pools that are missing and `rbd pool
# init` them; then wait up to SECONDS (0: just check) for what `ceph -s` shows to be healthy: HEALTH_OK or
# HEALTH_WARN, a mgr, 1 OSD up and in, every PG active+clean, and the pools there. Exit status 0 if so, 1 if
# not, 2 (at once) if a daemon of the cluster exits meanwhile. Run by Debian's python3 (python3-rados and -rbd).
PYTHON_SETUP='
import json, os, sys, threading, time
import rados, rbd
mode, conf, wait, pools = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
deadline = time.monotonic() + wait
rundir = os.path.join(os.path.dirname(conf), "run")

def dead():
    for name in ("mon.a", "mgr.x", "osd.0"):
        try:
            pid = open(os.path.join(rundir, name + ".pid")).read().strip()
            if open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()[0] != "Z":
                continue
        except (OSError, IndexError):
            pass
        return name

def healthy(r):
    ret, out, _ = r.mon_command(json.dumps({"prefix": "status", "format": "json"}), b"")
    if ret != 0:
        return False
    s = json.loads(out)
    osd, pg = s["osdmap"], s["pgmap"]
    states = {x["state_name"]: x["count"] for x in pg.get("pgs_by_state", [])}
    return (s["health"]["status"] in ("HEALTH_OK", "HEALTH_WARN") and s["mgrmap"]["available"]
            and osd["num_osds"] == osd["num_up_osds"] == osd["num_in_osds"] == 1
            and pg["num_pgs"] > 0 and states.get("active+clean", 0) == pg["num_pgs"])

def init_pools(r, errors):
    try:
        for pool in pools:
            with r.open_ioctx(pool) as ioctx:
                rbd.RBD().pool_init(ioctx, False)   # blocks until the PGs are active
    except Exception as e:
        errors.append(e)

with rados.Rados(conffile=conf, conf={"client_mount_timeout": "10"}) as r:
    if mode == "setup":
        for pool in pools:
            if not r.pool_exists(pool):
                ret, _, err = r.mon_command(json.dumps({"prefix": "osd pool create", "pool": pool}), b"")
                if ret != 0:
                    sys.exit("osd pool create %s: %s" % (pool, err))
        errors = []
        t = threading.Thread(target=init_pools, args=(r, errors), daemon=True)
        t.start()
    elif not all(r.pool_exists(pool) for pool in pools):
        sys.exit(1)
    while True:
        name = dead()
        if name:
            sys.stderr.write("%s exited\n" % name)
            os._exit(2)
        if mode == "check" or not t.is_alive():
            if mode == "setup" and errors:
                sys.exit("rbd pool init: %s" % errors[0])
            if healthy(r):
                sys.exit(0)
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.1)
'

stop() {
    local d pid
    for d in "${DAEMONS[@]}"; do
        if pid=$(pid_of "$d"); then
            kill -TERM "$pid"
            wait_gone "$pid" "${d#*:}" 10
        fi
    done
}

start() {
    install
    conf=$dir/ceph.conf
    local old_port
    old_port=$(conf_get "mon host")
    old_port=${old_port##*v1:127.0.0.1:}
    old_port=${old_port%]}
    fsid=$(conf_get fsid)
    port=${port:-$old_port}
    if [ -n "$fsid" ] && ready; then
        [ "$port" = "$old_port" ] || die "already running with its monitor on port $old_port: stop it first"
        echo "$fsid"
        echo "$conf"
        return
    fi
    stop   # whatever part of an earlier cluster still runs
    if [ -z "$port" ]; then
        port=6789
        until port_free "$port" && port_free $((port + 1)); do port=$((port + 2)); done
    fi
    if ! port_free "$port" || ! port_free $((port + 1)); then
        die "port $port or $((port + 1)) is in use"
    fi
    fsid=${fsid:-$(cat /proc/sys/kernel/random/uuid)}
    rm -rf "$dir/mon" "$dir/mgr" "$dir/mgr-modules" "$dir/osd" "$dir/run" "$dir/log" "$dir/crash" "$dir/monmap"
    mkdir -p "$dir/mon" "$dir/mgr" "$dir/mgr-modules" "$dir/osd" "$dir/run" "$dir/log" "$dir/crash"
    write_conf
    local m
    for m in "$MGR_MODULES"/*; do
        [[ " ${MGR_SKIP[*]} " == *" ${m##*/} "* ]] || ln -s "$m" "$dir/mgr-modules/"
    done
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$((port + 1)),v1:127.0.0.1:$port]" "$dir/monmap" >/dev/null
    ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/monmap" >>"$dir/log/mon.a.out" 2>&1 || fail "ceph-mon --mkfs failed"
    spawn mon.a:ceph-mon
    spawn mgr.x:ceph-mgr   # the slowest to come up (it loads its Python modules): start it at once
    # No device_health_metrics pool (the mgr's devicehealth module would make one); module options are only
    # read from the mon's config database.
    timeout 20 ceph -c "$conf" --connect-timeout 15 config set mgr mgr/devicehealth/enable_monitoring false --force \
        2>>"$dir/log/start.out" || fail "the monitor did not answer on 127.0.0.1:$port"
    local uuid
    uuid=$(cat /proc/sys/kernel/random/uuid)
    ceph -c "$conf" osd new "$uuid" 0 >/dev/null 2>>"$dir/log/start.out" || fail "ceph osd new failed"
    ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" --no-mon-config >>"$dir/log/osd.0.out" 2>&1 || fail "ceph-osd --mkfs failed"
    spawn osd.0:ceph-osd
    local rc=0
    timeout $((TIMEOUT + 10)) /usr/bin/python3 - setup "$conf" "$TIMEOUT" "${POOLS[@]}" <<<"$PYTHON_SETUP" \
        2>>"$dir/log/start.out" || rc=$?
    case $rc in
        0) ;;
        2) fail "$(tail -n 1 "$dir/log/start.out") during start-up" ;;
        *) fail "the cluster was not healthy within $TIMEOUT s: $(ceph -c "$conf" --connect-timeout 5 -s 2>&1 || true)" ;;
    esac
    echo "$fsid"
    echo "$conf"
}

case $action in
    install) install "${2:-}" ;;
    start|stop)
        dir=$(realpath -m "${2:?directory}")
        port=${3:-}
        [ -z "$port" ] || [[ $port =~ ^[0-9]+$ ]] || { echo "ceph.sh: PORT must be a number" >&2; exit 2; }
        [ "$action" = stop ] && [ ! -d "$dir" ] && exit 0
        mkdir -p "$dir"
        exec 9>"$dir/.lock"   # one start or stop at a time per DIR
        flock 9
        "$action"
        ;;
    *) echo "usage: $0 install [VENV] | start DIR [PORT] | stop DIR" >&2; exit 2 ;;
esac
