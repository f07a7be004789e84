#!/usr/bin/env bash
# Installs everything sharelift needs on a Debian machine, as root, idempotently:
# the Debian packages of the test-bed servers and clients, then the Python virtual
# environment at .venv with sharelift (editable) and its development tools.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  # Installed with --no-install-recommends: a package that arrives only as a Recommends never
  # does, so each package below is the one that ships the file the test bed or the product
  # loads (tests/servers/prerequisites.py holds the test bed's list; a unit test
  # checks that every package named there is named here).
  # build and Python (libc6-dev is only a Recommends of gcc)
  gcc libc6-dev pkg-config python3 python3-venv python3-dev
  # NFS: userspace server (ganesha.nfsd), its VFS FSAL (libfsalvfs.so), the portmapper;
  # the client library the libnfs binding links to (libnfs.so.13) and builds against
  nfs-ganesha nfs-ganesha-vfs rpcbind libnfs13 libnfs-dev libnfs-utils
  # SMB: the server (smbd), smbpasswd, client tools
  samba samba-common-bin smbclient
  # Samba VFS modules (catia maps names SMB cannot carry): only a Recommends of samba
  samba-vfs-modules
  # useradd (Samba's unix user); setpriv and runuser (test-bed daemons, PostgreSQL as postgres)
  passwd util-linux
  # PostgreSQL: the state database's tested alternative to SQLite (initdb, pg_ctl, createdb
  # come with the versioned server package this one depends on)
  postgresql
  # Redis: the broker of a Celery deployment
  redis-server
  # reference tool for the benchmark
  rclone
  # ps/kill in process checks
  procps
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "sharelift: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "sharelift: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts these daemons on install; the test bed runs its own copies on other ports.
for svc in smbd nmbd nfs-ganesha; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" >/dev/null 2>&1 || true
  fi
done

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "sharelift: creating the virtual environment at .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.sharelift-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "sharelift: installing Python packages (pyproject.toml) into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  touch "$stamp"
fi
echo "sharelift: installed ($(.venv/bin/sharelift --version 2>/dev/null || echo sharelift))"
