#!/usr/bin/env bash
# The newcomer's first command: install everything, then run the demo migration.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/sharelift demo "$@"
