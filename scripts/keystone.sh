#!/usr/bin/env bash
# Run a private, throwaway Keystone for the integration tests and for trying Stratus behind a real Keystone
# (`[api] auth_strategy = keystone`, docs/keystone.md): idempotent, no systemd, loopback only. Keystone (the
# `keystone` package from PyPI) and gunicorn live in a venv of their own, so Keystone's dependencies never touch
# Stratus's; the server is `keystone.wsgi.api:application` under gunicorn (1 worker, 4 threads) on 127.0.0.1:PORT.
# Everything else lives under DIR: DIR/keystone.conf (SQLite DIR/keystone.db, fernet tokens with their keys in
# DIR/fernet-keys, DIR/fernet-receipts and DIR/credential-keys, default policies, cheap bcrypt: this Keystone is for
# tests), DIR/admin-password (mode 0600), DIR/keystone.pid, and the logs DIR/keystone.log (Keystone),
# DIR/gunicorn.log (the server) and DIR/setup.log (keystone-manage). The first start runs `keystone-manage db_sync`,
# `fernet_setup`, `credential_setup` and `bootstrap`: user `admin` with the admin role on project `admin` (domain
# Default), the identity service and its endpoints in region RegionOne. The admin password is
# $KEYSTONE_ADMIN_PASSWORD if set (a later start with another one resets it), else the one in DIR/admin-password,
# else a new random one.
#   usage: scripts/keystone.sh install [VENV]   keystone and gunicorn into VENV (default $KEYSTONE_VENV, else
#                                               ~/.cache/stratus/keystone-venv); skipped when there already;
#                                               prints VENV
#          scripts/keystone.sh start DIR PORT   install, set up DIR, serve; the last line printed is the auth URL:
#                                               http://127.0.0.1:PORT/v3
#          scripts/keystone.sh stop DIR         stop the server (fine if none runs)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
source "$(dirname "$(readlink -f "$0")")/lib/proc.sh"
action=${1:?install [VENV] | start DIR PORT | stop DIR}
KEYSTONE_VERSION=30.0.0   # 2026.1; Python 3.10 to 3.13
GUNICORN_VERSION=27.0.1
PACKAGES=("keystone==$KEYSTONE_VERSION" "gunicorn==$GUNICORN_VERSION")
venv=${KEYSTONE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/stratus/keystone-venv}

install() {
    [ "$(cat "$venv/.installed" 2>/dev/null)" = "${PACKAGES[*]}" ] && [ -x "$venv/bin/gunicorn" ] && return 0
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive   # Debian keeps venv's pip bootstrap in python3-venv
        apt-get install -y -qq python3-venv >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq python3-venv >/dev/null; }
    fi
    mkdir -p "$(dirname "$venv")"
    python3 -m venv --clear "$venv"
    if ! "$venv/bin/pip" install -q --disable-pip-version-check "${PACKAGES[@]}" >"$venv/install.log" 2>&1; then
        tail -n 30 "$venv/install.log" >&2
        echo "keystone.sh: could not install ${PACKAGES[*]} into $venv (log: $venv/install.log)" >&2
        exit 1
    fi
    echo "${PACKAGES[*]}" >"$venv/.installed"
}

# pid_of: the live server of this DIR, from its pid file; fails if none.
pid_of() {
    pid_from "$dir/keystone.pid" gunicorn
}

# answers URL: GET URL succeeds (the venv's Python: a fresh Debian has no curl).
answers() {
    "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" \
        2>/dev/null
}

fail() {
    echo "keystone.sh: $1" >&2
    tail -n 30 "$dir/setup.log" "$dir/gunicorn.log" "$dir/keystone.log" >&2 2>/dev/null || true
    exit 1
}

manage() {
    PYTHONWARNINGS=ignore "$venv/bin/keystone-manage" --config-file "$dir/keystone.conf" "$@" >>"$dir/setup.log" 2>&1
}

write_config() {
    cat >"$dir/keystone.conf" <<EOF
# A throwaway Keystone for tests (scripts/keystone.sh): SQLite, fernet tokens, default policies.
[DEFAULT]
log_file = $dir/keystone.log
[database]
connection = sqlite:///$dir/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = $dir/fernet-keys
[fernet_receipts]
key_repository = $dir/fernet-receipts
[credential]
key_repository = $dir/credential-keys
[identity]
# bcrypt's cheapest cost: every password login hashes once (the default 12 takes ~0.25 s)
password_hash_rounds = 4
EOF
    # keystone.wsgi.api parses sys.argv with oslo.config: hide gunicorn's arguments from it.
    cat >"$dir/keystone_wsgi.py" <<EOF
import sys

sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
EOF
}

start() {
    install
    local url="http://127.0.0.1:$port/v3" password stamp pid i setup=()
    if [ -n "${KEYSTONE_ADMIN_PASSWORD:-}" ]; then
        password=$KEYSTONE_ADMIN_PASSWORD
    elif [ -s "$dir/admin-password" ]; then
        password=$(cat "$dir/admin-password")
    else
        password=$("$venv/bin/python" -c 'import secrets; print(secrets.token_hex(16))')
    fi
    # what `bootstrap` was last run with: it writes the endpoints (with PORT) and resets the password
    stamp="$port $(printf '%s' "$password" | sha256sum | cut -d' ' -f1)"
    if pid=$(pid_of); then
        if [ "$(cat "$dir/.bootstrapped" 2>/dev/null)" = "$stamp" ] && answers "$url"; then
            echo "$url"
            return
        fi
        stop
    fi
    (umask 077 && printf '%s\n' "$password" >"$dir/admin-password")
    write_config
    if [ ! -f "$dir/.setup-done" ]; then
        : >"$dir/setup.log"
        manage fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" &
        setup+=($!)
        manage credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" &
        setup+=($!)
        manage db_sync || fail "keystone-manage db_sync failed"
        wait "${setup[0]}" || fail "keystone-manage fernet_setup failed"
        wait "${setup[1]}" || fail "keystone-manage credential_setup failed"
        touch "$dir/.setup-done"
    fi
    if [ "$(cat "$dir/.bootstrapped" 2>/dev/null)" != "$stamp" ]; then
        OS_BOOTSTRAP_PASSWORD=$password manage bootstrap --bootstrap-region-id RegionOne \
            --bootstrap-admin-url "$url" --bootstrap-internal-url "$url" --bootstrap-public-url "$url" \
            || fail "keystone-manage bootstrap failed"
        echo "$stamp" >"$dir/.bootstrapped"
    fi
    rm -f "$dir/keystone.pid"
    OS_KEYSTONE_CONFIG_FILES="$dir/keystone.conf" PYTHONWARNINGS=ignore setsid -f "$venv/bin/gunicorn" \
        --bind "127.0.0.1:$port" --workers 1 --threads 4 --preload --no-control-socket \
        --pid "$dir/keystone.pid" --error-logfile - --pythonpath "$dir" --chdir "$dir" \
        keystone_wsgi:application </dev/null >>"$dir/gunicorn.log" 2>&1 9>&-
    for ((i = 0; i < 600; i++)); do
        answers "$url" && { echo "$url"; return; }
        if [ "$i" -gt 50 ] && ! pid_of >/dev/null; then
            fail "gunicorn exited during start-up"
        fi
        sleep 0.1
    done
    fail "Keystone did not answer on $url in 60 s"
}

stop() {
    local pid
    pid=$(pid_of) || return 0
    kill -INT "$pid"   # gunicorn's quick shutdown: TERM would wait for idle keep-alive connections
    wait_gone "$pid" gunicorn 10
}

case $action in
    install)
        [ -n "${2:-}" ] && venv=$(realpath -m "$2")
        install
        echo "$venv"
        ;;
    start|stop)
        dir=$(realpath -m "${2:?directory}")
        [ "$action" = stop ] && [ ! -d "$dir" ] && exit 0
        [ "$action" = start ] && port=${3:?port}
        mkdir -p "$dir"
        exec 9>"$dir/.lock"   # one start or stop at a time per DIR
        flock 9
        "$action"
        ;;
    *) echo "usage: $0 install [VENV] | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
