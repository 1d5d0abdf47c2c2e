#!/usr/bin/env bash
# Install Stratus and the openstack and nova clients into ./.venv (once; uv, else pip: scripts/lib/install.sh) and
# run the whole cloud in one process on the embedded defaults: identity API on 127.0.0.1:5000, compute API on
# 127.0.0.1:8774, image API on 127.0.0.1:9292, data in ./data ($STRATUS_STATE_PATH). The first start prints the admin
# password (kept in ./data/admin-password); every start writes the clouds.yaml entry 'stratus' to ./clouds.yaml.
# Extra arguments go to `stratus all-in-one` (e.g. --fake-hosts 20, --listen 0.0.0.0, --admin-password PASSWORD,
# --config-file stratus.conf).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/install.sh
# Stratus and the clients the README uses (.venv/bin/openstack, .venv/bin/nova); again when pyproject.toml changes
if [ ! -x .venv/bin/stratus ] || [ ! -x .venv/bin/openstack ] || [ ! -x .venv/bin/nova ] ||
    [ pyproject.toml -nt .venv/.installed ]; then
    venv_install .venv -e '.[clients]'
    touch .venv/.installed
fi
exec .venv/bin/stratus --state-path "${STRATUS_STATE_PATH:-$PWD/data}" all-in-one "$@"
