# shellcheck shell=bash
# Process helpers the component scripts (ceph.sh, libvirt.sh, keystone.sh) share; sourced, not run.

# alive PID NAME: PID is a live (not zombie) process called NAME (its /proc comm, at most 15 characters).
alive() {
    local pid=$1 stat comm
    [ -n "$pid" ] && { read -r stat <"/proc/$pid/stat" && read -r comm <"/proc/$pid/comm"; } 2>/dev/null || return 1
    stat=${stat##*) }
    [ "$comm" = "$2" ] && [ "${stat%% *}" != Z ]
}

# pid_from FILE NAME: the pid FILE holds, if that is a live process called NAME; fails otherwise.
pid_from() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    alive "$pid" "$2" && echo "$pid"
}

# wait_gone PID NAME SECONDS: wait for it to exit, then SIGKILL it.
wait_gone() {
    local i
    for ((i = 0; i < $3 * 50; i++)); do
        alive "$1" "$2" || return 0
        sleep 0.02
    done
    kill -KILL "$1" 2>/dev/null || true
}
