#!/usr/bin/env bash
# Install Stratus into ./.venv (once) and run the whole cloud in one process on the embedded defaults:
# identity API on 127.0.0.1:5000, compute API on 127.0.0.1:8774, image API on 127.0.0.1:9292, data in ./data.
# The first start prints the admin password (kept in ./data/admin-password); every start writes the clouds.yaml
# entry 'stratus' to ./clouds.yaml. Extra arguments go to `stratus all-in-one` (e.g. --fake-hosts 20,
# --listen 0.0.0.0, --admin-password PASSWORD).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/stratus ] || [ pyproject.toml -nt .venv/.installed ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e .
    touch .venv/.installed
fi
exec .venv/bin/stratus --state-path "${STRATUS_STATE_PATH:-$PWD/data}" all-in-one "$@"
