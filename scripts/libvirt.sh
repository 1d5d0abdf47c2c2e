#!/usr/bin/env bash
# Run a private, throwaway libvirtd + virtlogd with QEMU for the integration tests and benchmarks (idempotent,
# no systemd, unix sockets only, no TCP). Everything the daemons read or write lives under DIR: each runs in a
# mount namespace of its own where DIR/etc, DIR/run, DIR/lib, DIR/log and DIR/cache are bind-mounted over
# /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt, so the host's own
# libvirt is never used (only those five directories are created, empty, as mount points if missing) and
# daemons in different DIRs coexist. Guests run as root, without cgroups, namespaces or a security driver, and
# must use <domain type='qemu'> (TCG): this machine's /dev/kvm has no VT-x behind it. libvirtd runs under
# `tini -s`, a subreaper that reaps the QEMU processes at once: PID 1 here reaps orphans only now and then,
# and libvirt waits for a QEMU zombie to go before `virsh destroy` returns.
#   usage: scripts/libvirt.sh install [VENV]   apt-get the packages (and libvirt-python into VENV, if given)
#          scripts/libvirt.sh start DIR [NETNS]  install, start the daemons; the last line printed is the URI:
#                                              qemu+unix:///system?socket=DIR/run/libvirt-sock
#                                              With NETNS, libvirtd (and so every QEMU and its taps) runs in that
#                                              network namespace, made if missing: the compute host's
#                                              stratus-host-<host> of the network data plane, whose bridges the
#                                              guests' <interface type='bridge'> name. The socket is a file, so
#                                              clients in any namespace reach it. A daemon already running in DIR
#                                              is kept as it is (stop it to move it to another namespace).
#                                              Each DIR's libvirtd has a host UUID of its own (DIR/host-uuid, made
#                                              once), so two daemons here are two hosts to libvirt (migrations).
#          scripts/libvirt.sh stop DIR         destroy the running guests, stop both daemons (fine if none run)
# Logs: DIR/libvirtd.log, DIR/virtlogd.log (daemons), DIR/log/qemu/NAME.log (each guest's QEMU).
# DIR/run/libvirt-sock must stay under 108 bytes (the unix socket path limit): keep DIR short.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
source "$(dirname "$(readlink -f "$0")")/lib/proc.sh"
action=${1:?install [VENV] | start DIR [NETNS] | stop DIR}
self=$(readlink -f "$0")
PACKAGES=(qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
          pkg-config busybox-static cpio tini e2fsprogs)
# DIR/<sub> is mounted over <target> inside the daemons' mount namespace.
MOUNTS=(etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt cache:/var/cache/libvirt)

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
    # libvirtd looks this user up at start even though qemu.conf makes guests run as root.
    getent passwd libvirt-qemu >/dev/null \
        || useradd --system --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
    local venv=${1:-}
    if [ -n "$venv" ] && ! "$venv/bin/python" -c 'import libvirt' 2>/dev/null; then
        "$venv/bin/pip" install -q libvirt-python   # builds against libvirt-dev in ~10 s
    fi
}

# pid_of NAME: the live daemon NAME of this DIR, from its pid file; fails if none.
pid_of() {
    pid_from "$dir/run/$1.pid" "$1"
}

# spawn NAME ARGS...: start a daemon detached (own session; stdio to DIR/NAME.log and the lock closed, so a
# caller that captures this script's output is not held open) in a mount namespace of its own set up by `_ns`
# (a slave of the host's: later host mounts show inside, the bind mounts do not leak out).
spawn() {
    local name=$1 netns=()
    shift
    # `ip netns exec` also mounts that namespace's /sys, which libvirtd reads to find bridges and taps.
    if [ "$name" = libvirtd ] && [ -n "$ns" ]; then
        netns=(ip netns exec "$ns")
    fi
    setsid -f "${netns[@]}" unshare --mount --propagation slave -- "$self" _ns "$dir" tini -s -- "$name" "$@" \
        </dev/null >>"$dir/$name.log" 2>&1 9>&-
}

# fail MESSAGE: report a daemon that did not come up, with the end of its logs, and give up.
fail() {
    echo "libvirt.sh: $1" >&2
    tail -n 30 "$dir/virtlogd.log" "$dir/libvirtd.log" "$dir/log/libvirtd.log" >&2 2>/dev/null || true
    exit 1
}

write_configs() {
    # Each DIR is a host of its own to libvirt: its own host UUID (kept in DIR/host-uuid across restarts), not the
    # machine's SMBIOS one that every daemon here would share, and that a migration between two of them refuses.
    [ -s "$dir/host-uuid" ] || cat /proc/sys/kernel/random/uuid >"$dir/host-uuid"
    cat >"$dir/etc/virtlogd.conf" <<EOF
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
EOF
    cat >"$dir/etc/libvirtd.conf" <<EOF
# Private test daemon: unix sockets in /run/libvirt (= $dir/run) only, root-only, no authentication.
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_ro_perms = "0770"
unix_sock_rw_perms = "0770"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
host_uuid = "$(cat "$dir/host-uuid")"
EOF
    cat >"$dir/etc/qemu.conf" <<EOF
# Guests run as root with no confinement: this is a container without cgroup delegation, SELinux or AppArmor.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "logd"
EOF
}

start() {
    install
    local sock="$dir/run/libvirt-sock" m i
    local uri="qemu+unix:///system?socket=$sock"
    if pid_of libvirtd >/dev/null && pid_of virtlogd >/dev/null && virsh -c "$uri" version >/dev/null 2>&1; then
        echo "$uri"
        return
    fi
    [ ${#sock} -lt 108 ] || fail "$sock is too long for a unix socket path (108 bytes at most): use a shorter DIR"
    for m in "${MOUNTS[@]}"; do
        mkdir -p "$dir/${m%%:*}" "${m#*:}"
    done
    write_configs
    if ! pid_of virtlogd >/dev/null; then
        rm -f "$dir/run/virtlogd.pid" "$dir/run/virtlogd-sock" "$dir/run/virtlogd-admin-sock"
        spawn virtlogd -f /etc/libvirt/virtlogd.conf -p "$dir/run/virtlogd.pid"
        for ((i = 0; i < 100; i++)); do
            [ -S "$dir/run/virtlogd-sock" ] && break
            sleep 0.1
        done
        [ -S "$dir/run/virtlogd-sock" ] || fail "virtlogd did not start in 10 s"
    fi
    if ! pid_of libvirtd >/dev/null; then
        if [ -n "$ns" ] && [ ! -e "/run/netns/$ns" ]; then
            ip netns add "$ns"
            ip -n "$ns" link set lo up
        fi
        rm -f "$dir/run/libvirtd.pid"
        spawn libvirtd -f /etc/libvirt/libvirtd.conf -p "$dir/run/libvirtd.pid"
    fi
    for ((i = 0; i < 300; i++)); do
        virsh -c "$uri" version >/dev/null 2>&1 && { echo "$uri"; return; }
        if [ "$i" -gt 20 ] && ! pid_of libvirtd >/dev/null; then
            fail "libvirtd exited during start-up"
        fi
        sleep 0.1
    done
    fail "libvirtd did not answer on $uri in 30 s"
}

stop() {
    local uri="qemu+unix:///system?socket=$dir/run/libvirt-sock" pid name f
    if pid=$(pid_of libvirtd); then
        for name in $(timeout 30 virsh -c "$uri" list --name 2>/dev/null); do
            timeout 30 virsh -c "$uri" destroy "$name" >/dev/null 2>&1 || true
        done
        kill -TERM "$pid"
        wait_gone "$pid" libvirtd 30
    fi
    # QEMU processes left behind (libvirtd crashed or was killed): their pid files are in DIR/run/qemu.
    for f in "$dir"/run/qemu/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null) || continue
        if alive "$pid" qemu-system-x86; then
            kill -KILL "$pid"
            wait_gone "$pid" qemu-system-x86 5
        fi
    done
    if pid=$(pid_of virtlogd); then
        kill -TERM "$pid"
        wait_gone "$pid" virtlogd 30
    fi
}

case $action in
    install) install "${2:-}" ;;
    start|stop)
        dir=$(realpath -m "${2:?directory}")
        ns=${3:-}
        [ "$action" = stop ] && [ ! -d "$dir" ] && exit 0
        mkdir -p "$dir"
        exec 9>"$dir/.lock"   # one start or stop at a time per DIR
        flock 9
        "$action"
        ;;
    _ns)
        # Internal: inside the new mount namespace, put DIR's directories in place and run the daemon.
        dir=$2
        shift 2
        for m in "${MOUNTS[@]}"; do
            mount --bind "$dir/${m%%:*}" "${m#*:}"
        done
        exec "$@"
        ;;
    *) echo "usage: $0 install [VENV] | start DIR [NETNS] | stop DIR" >&2; exit 2 ;;
esac
