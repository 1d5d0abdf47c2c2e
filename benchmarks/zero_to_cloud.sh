#!/usr/bin/env bash
# Zero to cloud: a fresh clone of this repository to the first ACTIVE server, with the README's commands as a
# newcomer types them: ./scripts/all-in-one.sh in the background, then in a second shell `. .venv/bin/activate`,
# `export OS_CLOUD=stratus`, the image, flavor list, key pair and `openstack server create --wait`. Prints the time of
# each step from the start of the clone. It uses the default ports (5000, 8774, 9292): nothing may listen there.
#
#   benchmarks/zero_to_cloud.sh [WORKDIR]     (default /tmp/zero-to-cloud; removed first)
#
# The pip and uv caches are the user's unless ZTC_CACHE=DIR names a directory for both (an empty one: as on a machine
# that never installed anything; the same again: warm). STRATUS_INSTALLER=pip measures the install with pip.
set -euo pipefail
source=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/zero-to-cloud}
rm -rf "$work"
mkdir -p "$work"
if [ -n "${ZTC_CACHE:-}" ]; then
    export PIP_CACHE_DIR=$ZTC_CACHE/pip UV_CACHE_DIR=$ZTC_CACHE/uv
fi
for port in 5000 8774 9292; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "zero_to_cloud: something listens on 127.0.0.1:$port already" >&2
        exit 1
    fi
done
start=$(date +%s.%N)
mark() { printf '%-44s %6.1f s\n' "$1" "$(echo "$(date +%s.%N) - $start" | bc)"; }

git clone -q "$source" "$work/stratus"
mark "git clone"
cd "$work/stratus"
./scripts/all-in-one.sh >"$work/all-in-one.log" 2>&1 &
cloud=$!
trap 'kill "$cloud" 2>/dev/null || true; wait "$cloud" 2>/dev/null || true' EXIT
until [ -x .venv/bin/stratus ] && [ -f .venv/.installed ]; do
    kill -0 "$cloud" 2>/dev/null || { cat "$work/all-in-one.log" >&2; exit 1; }
    sleep 0.1
done
mark "installed (stratus, openstack, nova in .venv)"
until .venv/bin/python -c 'import urllib.request as u; u.urlopen("http://127.0.0.1:8774/"); u.urlopen("http://127.0.0.1:5000/v3")' \
    2>/dev/null; do
    kill -0 "$cloud" 2>/dev/null || { cat "$work/all-in-one.log" >&2; exit 1; }
    sleep 0.1
done
mark "APIs answer"
# the README's walkthrough, in a second shell
# shellcheck disable=SC1091
. .venv/bin/activate
export OS_CLOUD=stratus
head -c 64M /dev/zero >disk.raw
openstack image create --file disk.raw --disk-format raw --container-format bare --public my-image >/dev/null
mark "image uploaded (64 MiB)"
openstack flavor list >/dev/null
openstack keypair create my-key >my-key.pem
mark "flavor list, key pair"
openstack server create --image my-image --flavor m1.tiny --key-name my-key --wait my-server -f value -c status
mark "first server ACTIVE"
