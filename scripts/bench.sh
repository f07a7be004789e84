#!/usr/bin/env bash
# The benchmark in one command from a clean clone (as root on Debian): installs what is
# missing (the same idempotent set-up as the tests), then runs bench/run.py with the
# arguments given, e.g. `bash scripts/bench.sh --quick`. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python bench/run.py "$@"
