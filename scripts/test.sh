#!/usr/bin/env bash
# The whole test suite: installs what is missing, then runs pytest. The tests start and
# stop their own servers (nfs-ganesha, Samba, sharelift ossd) on free 127.0.0.1 ports.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit $?
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "sharelift: pytest collected no tests" >&2
  exit 0
fi
exit "$rc"
