#!/usr/bin/env bash
# Install Stratus with its test dependencies into ./.venv and run every check: ruff, then the whole pytest
# suite (unit tests, and functional tests that start real all-in-one clouds and drive them over HTTP with
# openstacksdk, the openstack CLI and tempest's response schemas), and integration tests against the real
# components the tests start themselves: PostgreSQL (scripts/postgres.sh) and libvirtd with QEMU
# (scripts/libvirt.sh, booting the guest scripts/test-guest.sh builds from Debian packages, and the cloud-init
# guest scripts/cloud-guest.sh debootstraps from the same mirror: ~3 minutes once, then cached), and two single-node
# Ceph clusters (scripts/ceph.sh) for the RBD image store and disks, a Keystone (scripts/keystone.sh), and a
# RabbitMQ (scripts/rabbitmq.sh) for every service in its own process.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/install.sh
if [ ! -x .venv/bin/pytest ] || [ pyproject.toml -nt .venv/.installed-test ]; then
    venv_install .venv -e '.[test]'   # the same installer as all-in-one.sh (uv, else pip)
    touch .venv/.installed-test
fi
if [ "$(id -u)" = 0 ]; then
    # qemu, libvirtd and libvirt's headers from Debian, then libvirt-python (built against them) into the venv
    scripts/libvirt.sh install .venv
    # Ceph (mon, mgr, osd), qemu's rbd driver, and Debian's rados/rbd modules made importable in the venv
    scripts/ceph.sh install .venv
    # dnsmasq and nftables for the network data plane (its namespaces, DHCP servers, security groups and NAT)
    scripts/network.sh install
    # RabbitMQ (Debian's rabbitmq-server; its system service is never started) for the multi-process tests
    scripts/rabbitmq.sh install
    # The cloud-init guest (debootstrap: minutes of downloads and unpacking on a fresh machine) is built in the
    # background while the suites before it run; its test fixture runs the same script, which waits on the
    # build's lock and finds the result (or the reason it failed) cached.
    guest_cache="${XDG_CACHE_HOME:-$HOME/.cache}/stratus/cloud-guest"
    mkdir -p "$guest_cache"
    scripts/cloud-guest.sh "$guest_cache" >"$guest_cache.prebuild.log" 2>&1 &
fi
# Keystone and gunicorn from PyPI into a venv of their own (~/.cache/stratus/keystone-venv; skipped when there)
scripts/keystone.sh install >/dev/null
.venv/bin/ruff check stratus tests benchmarks
if [ "$#" -gt 0 ]; then
    exec .venv/bin/pytest -q --durations=40 "$@"
fi
# The whole suite runs as two pytest processes side by side, the integration tests (real daemons, guests, the
# kernel's namespaces: one at a time among themselves) and the rest (unit tests, and functional tests, whose
# clouds each have their own ports and state directory and touch no kernel state). Much of each waits on other
# processes (clouds, daemons, TCG guests), so on this 2-core machine the pair takes far less than one after the
# other. Each has its own pytest temporary tree; their lines are prefixed, and both results are printed at the end.
work=$(mktemp -d "${TMPDIR:-/tmp}/stratus-test-XXXXXX")
part() {
    local name=$1
    shift
    set +e
    .venv/bin/pytest -q -p no:cacheprovider --durations=25 --basetemp="$work/$name" "$@" 2>&1 \
        | tee "$work/$name.log" | sed -u "s/^/[$name] /"
    echo "${PIPESTATUS[0]}" >"$work/$name.rc"
}
part integration tests/integration &
part rest tests --ignore=tests/integration &
wait
status=0
for name in rest integration; do
    rc=$(cat "$work/$name.rc")
    echo "== $name: $(tail -n 1 "$work/$name.log") (exit $rc)"
    [ "$rc" = 0 ] || status=1
done
if [ "$status" = 0 ]; then
    rm -rf "$work"
else  # the failed tests' clouds, logs and tempest workspaces, for a look afterwards
    echo "== kept for the failures: $work"
fi
exit "$status"
