#!/usr/bin/env bash
# The Debian packages of the networking data plane (stratus/network/dataplane/, docs/networking-dataplane.md):
# dnsmasq-base (the DHCP server of each network, run by Stratus in its qdhcp-<network> namespace; the base package,
# so no system dnsmasq service is installed or started), nftables (security groups on the guests' taps, NAT in the
# qrouter-<router> namespaces) and iproute2. Idempotent: apt-get runs only for what is missing.
#   usage: scripts/network.sh install
set -euo pipefail
PACKAGES=(dnsmasq-base nftables iproute2)

install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only if installing from the ones we have fails (missing or stale).
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

case ${1:-} in
    install) install ;;
    *) echo "usage: $0 install" >&2; exit 2 ;;
esac
