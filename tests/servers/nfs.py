"""nfs-ganesha on 127.0.0.1, exporting a local folder: the NFS test bed.

``NfsServer(export_dir, workdir).start()`` runs ``ganesha.nfsd`` in the foreground as a
child process, with its configuration, pid file, log and NFSv4 recovery folder in
``workdir`` and its NFS and MOUNT services on free loopback ports. Several servers can run
at once (tests and a benchmark): nothing they write is shared, except what rpcbind needs
(below).

Configuration choices (each one fixed a real failure or a wrong answer in the tests):

* **NFSv3 and v4, TCP only, on ``Bind_Addr = 127.0.0.1``**, ``NFS_Port``/``MNT_Port`` from
  ``free_port()``. NLM, RQUOTA and UDP are off: they would want fixed or extra ports.
  ``mount_path_pseudo = true`` lets an NFSv3 client mount the export by its pseudo path
  (``/export``) instead of the folder's real path.
* **No grace period**: ``Graceless = true``. In grace ganesha refuses NFSv4 OPENs that
  are not reclaims. Measured: with ``Graceless = false`` and a 90 s grace period, reads
  still worked at once here, because ganesha lifts grace early when its (fresh) recovery
  folder lists no clients to reclaim; ``Graceless`` keeps it so with a reused workdir.
* **No metadata caching**: ``Attr_Expiration_Time = 0`` on the export (ganesha then
  re-reads attributes on every use; with the default of 60 s a ``stat`` right after a
  file grew on disk still returned the old size) and ``MDCACHE { Dir_Chunk = 0; }``,
  which turns the
  dirent cache off. That cache is revalidated by the folder's change time, whose
  resolution is one kernel tick, so two changes to one folder within a few ms could
  leave a listing stale; without it READDIRPLUS asks the filesystem every time, which
  also made repeated walks faster (``bench/results/findings.md``). Note that libnfs has a client-side directory cache of its own (the one
  that showed stale sizes in the first experiments): ``NfsSource`` turns it off.
* **Root squash** (``Squash = root_squash``, anonymous uid/gid 65534): tests run as root,
  and a chmod-000 file must really be unreadable to the client.
* **rpcbind is required**: with NFSv3 enabled ganesha 4.3 registers NFS and MOUNT with the
  portmapper and exits (silently, after "Cannot register NFS V3 on TCP") when that fails.
  Our clients never ask the portmapper (they pass ``nfsport``/``mountport``), so rpcbind
  only has to be there while ganesha starts. If one answers on 127.0.0.1:111 (a system
  rpcbind) it is used and left alone. Otherwise ``start()`` runs ``rpcbind -f`` itself,
  starts ganesha, and stops its rpcbind again once ganesha answers. An exclusive lock on
  ``$TMPDIR/sharelift-testbed-rpcbind.lock`` serialises that sequence between processes,
  so two servers starting at once never see each other's rpcbind vanish mid-registration.
  Caveats: ganesha unregisters NFS/MOUNT from a shared rpcbind when it starts and stops,
  which would disturb a kernel NFS server registered on the same machine; rpcbind itself
  leaves ``/run/rpcbind.sock`` and warm-start files in ``/run/rpcbind`` (both harmless).
* **Nothing outlives the caller**: ganesha runs in a new session, so a Ctrl-C in the
  terminal does not reach it before ``stop()`` does, and under ``setpriv --pdeathsig
  TERM`` so that it gets SIGTERM if the process that started it dies without calling
  ``stop()`` (checked with SIGKILL). The death signal follows the *thread* that started
  it: start servers from a thread that lives as long as they do. rpcbind drops root for
  ``_rpc``, which clears that signal, so our rpcbind is also recorded in
  ``$TMPDIR/sharelift-testbed-rpcbind.pid`` and the next start stops one left behind.
* **D-Bus is not needed**: without a system bus ganesha logs "dbus_bus_get failed" at
  CRIT level and carries on (D-Bus is only its admin interface). Kerberos is switched off
  (``NFS_KRB5 { Active_krb5 = false; }``); the NFSv4 callback set-up still logs that
  ``/etc/krb5.keytab`` has no entry, which is harmless. (``Nb_Worker`` is not set: in
  ganesha 4 it only applies to 9P and is reported as deprecated.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from sharelift.addresses import SourceAddress
from sharelift.local.ports import LOOPBACK, free_port, log_tail, wait_for_port
from tests.servers import TestbedError, prerequisites

GANESHA = "ganesha.nfsd"
RPCBIND = "rpcbind"
PORTMAPPER_PORT = 111
ANONYMOUS_ID = 65534

install_hint = (
    "nfs-ganesha is not installed: as root run `bash scripts/install.sh` (it installs the "
    "Debian packages nfs-ganesha, nfs-ganesha-vfs and rpcbind)"
)


def ganesha_available() -> bool:
    """True when ganesha.nfsd and rpcbind are installed (tests skip otherwise; a missing
    VFS FSAL is an error at ``start()`` naming its package, not a skip)."""
    return prerequisites.available(GANESHA) and prerequisites.available(RPCBIND)


def _fsal_plugins_dir() -> str:
    """Where libfsalvfs.so lives (Debian: /usr/lib/x86_64-linux-gnu/ganesha)."""
    return os.path.dirname(prerequisites.require("fsal-vfs"))


def _with_parent_death_signal(argv: list[str]) -> list[str]:
    """Run ``argv`` so that it gets SIGTERM when its parent dies (util-linux setpriv)."""
    if not prerequisites.available("setpriv"):
        return argv
    setpriv = prerequisites.require("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv]


def _quote(value: str) -> str:
    if '"' in value or "\n" in value:
        raise TestbedError(f"cannot put {value!r} in a ganesha configuration file")
    return f'"{value}"'


@contextlib.contextmanager
def _startup_lock() -> Iterator[None]:
    """Serialise 'rpcbind up -> ganesha registers -> rpcbind down' across processes."""
    path = os.path.join(tempfile.gettempdir(), "sharelift-testbed-rpcbind.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _process_start_time(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _process_name(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


class _Rpcbind:
    """A portmapper for the duration of a ganesha start: the system's, or our own.

    Used only under ``_startup_lock``. Our own rpcbind is recorded (pid and start time) in
    ``$TMPDIR/sharelift-testbed-rpcbind.pid`` while it runs: rpcbind drops root for user
    ``_rpc``, which clears its parent-death signal, so if the process that started it is
    killed during the start-up window the next start finds the record and stops it.
    """

    record = os.path.join(tempfile.gettempdir(), "sharelift-testbed-rpcbind.pid")

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def _stop_stale(self) -> None:
        """Stop an rpcbind a crashed start left behind (we hold the lock: it is stale)."""
        try:
            with open(self.record) as f:
                pid_text, started = f.read().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return
        if _process_name(pid) == "rpcbind" and _process_start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _process_start_time(pid) == started:
                time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.record)

    def ensure(self) -> None:
        self._stop_stale()
        if wait_for_port(PORTMAPPER_PORT, timeout=0.2):
            return  # a system rpcbind: use it, never stop it
        binary = prerequisites.require(RPCBIND)
        log = open(self.workdir / "rpcbind.log", "ab")  # noqa: SIM115 - closed below
        try:
            # -f: stay in the foreground, so this process owns it and can stop it.
            # No -w: do not pick up registrations from an earlier rpcbind's state files.
            self.proc = subprocess.Popen(
                _with_parent_death_signal([binary, "-f"]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        started = _process_start_time(self.proc.pid)
        if started is not None:
            with open(self.record, "w") as f:
                f.write(f"{self.proc.pid} {started}\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if wait_for_port(PORTMAPPER_PORT, timeout=0.1):
                return
            if self.proc.poll() is not None:
                break
        tail = log_tail(str(self.workdir / "rpcbind.log"))
        self.stop()
        raise TestbedError(f"rpcbind did not start on port {PORTMAPPER_PORT}:\n{tail}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            _terminate(proc, timeout=5)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.record)


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, wait, SIGKILL: the process is gone when this returns."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(10)


class NfsServer:
    """nfs-ganesha exporting ``export_dir`` as ``export_path`` on free 127.0.0.1 ports."""

    host = LOOPBACK

    def __init__(
        self,
        export_dir: Path | str,
        workdir: Path | str,
        export_path: str = "/export",
        *,
        read_only: bool = False,
    ) -> None:
        if not export_path.startswith("/"):
            raise ValueError(f"export_path must start with '/' (got {export_path!r})")
        self.export_dir = Path(export_dir).resolve()
        self.workdir = Path(workdir).resolve()
        self.export_path = export_path
        self.read_only = read_only
        self.nfs_port = 0
        self.mount_port = 0
        self.config_path = self.workdir / "ganesha.conf"
        self.log_path = self.workdir / "ganesha.log"
        self.pid_path = self.workdir / "ganesha.pid"
        self.recovery_dir = self.workdir / "recovery"
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = f"running on {self.host}:{self.nfs_port}" if self.running else "stopped"
        return f"NfsServer({str(self.export_dir)!r} as {self.export_path!r}, {state})"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- configuration -------------------------------------------------------------

    def config_text(self) -> str:
        plugins_line = f"    Plugins_Dir = {_quote(_fsal_plugins_dir())};\n"
        access = "RO" if self.read_only else "RW"
        return f"""# Written by tests.servers.nfs.NfsServer; see that module for the reasons.
NFS_CORE_PARAM {{
    Bind_Addr = {LOOPBACK};
    NFS_Port = {self.nfs_port};
    MNT_Port = {self.mount_port};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Protocols = 3, 4;
    mount_path_pseudo = true;
{plugins_line}}}

NFSV4 {{
    Graceless = true;
    Lease_Lifetime = 10;
    Grace_Period = 10;
    RecoveryBackend = fs;
    RecoveryRoot = {_quote(str(self.recovery_dir))};
}}

NFS_KRB5 {{
    Active_krb5 = false;
}}

MDCACHE {{
    # No dirent cache: it is revalidated by the folder's change time (one kernel tick of
    # resolution), so quick successive changes could list stale. Also faster here.
    Dir_Chunk = 0;
}}

EXPORT {{
    Export_Id = 1;
    Path = {_quote(str(self.export_dir))};
    Pseudo = {_quote(self.export_path)};
    Access_Type = {access};
    Squash = root_squash;
    Anonymous_Uid = {ANONYMOUS_ID};
    Anonymous_Gid = {ANONYMOUS_ID};
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    Attr_Expiration_Time = 0;
    FSAL {{
        Name = VFS;
    }}
}}

LOG {{
    Default_Log_Level = EVENT;
}}
"""

    # -- life cycle --------------------------------------------------------------------

    def start(self, timeout: float = 60.0, *, same_ports: bool = False) -> NfsServer:
        """Start ganesha and wait until a libnfs client can mount the export.

        ``same_ports``: on the NFS and MOUNT ports it had before (a restart that clients
        must find again), not new free ones."""
        if self.running:
            return self
        # Installed? A clear error naming the Debian package, not a start that times out.
        binary = prerequisites.require(GANESHA)
        _fsal_plugins_dir()
        if not self.export_dir.is_dir():
            raise TestbedError(f"export folder {self.export_dir} does not exist")
        if self.export_dir.stat().st_mode & 0o005 != 0o005:
            # Clients are squashed to nobody: a 0700 folder (pytest's tmp_path) mounts but
            # cannot be listed. Allowed (a test may want exactly that), but say so.
            warnings.warn(
                f"{self.export_dir} is not readable by others; NFS clients (squashed to "
                "uid 65534) will not be able to list it",
                stacklevel=2,
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.recovery_dir.mkdir(parents=True, exist_ok=True)
        for stale in (self.log_path, self.pid_path):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

        deadline = time.monotonic() + timeout
        last_error = ""
        keep = same_ports and bool(self.nfs_port and self.mount_port)
        for _attempt in range(3):  # a free port can be taken by someone else before we bind
            if not keep:
                self.nfs_port = free_port()
                self.mount_port = free_port()
                while self.mount_port == self.nfs_port:
                    self.mount_port = free_port()
            self.config_path.write_text(self.config_text())
            with _startup_lock():
                rpcbind = _Rpcbind(self.workdir)
                rpcbind.ensure()
                try:
                    self._spawn(binary)
                    last_error = self._wait_ready(deadline)
                finally:
                    # ganesha has registered (or died); our own rpcbind is no longer needed.
                    rpcbind.stop()
            if not last_error:
                return self
            self.stop()
            if "Address already in use" not in last_error or time.monotonic() > deadline:
                break
        raise TestbedError(
            f"nfs-ganesha did not start ({last_error}); log {self.log_path}:\n"
            + log_tail(str(self.log_path))
        )

    def _spawn(self, binary: str) -> None:
        out = open(self.workdir / "ganesha.stdout", "ab")  # noqa: SIM115 - closed below
        try:
            self._proc = subprocess.Popen(
                _with_parent_death_signal(
                    [
                        binary,
                        "-F",  # foreground: our child, so stop() can wait for it
                        "-f",
                        str(self.config_path),
                        "-L",
                        str(self.log_path),
                        "-p",
                        str(self.pid_path),
                        "-N",
                        "NIV_EVENT",
                    ]
                ),
                cwd=str(self.workdir),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal does not hit it first
            )
        finally:
            out.close()

    def _wait_ready(self, deadline: float) -> str:
        """'' once a client mounts the export, else why not."""
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return f"ganesha.nfsd exited with status {self._proc.returncode}"
            if self._log_says("Address already in use"):
                return "Address already in use"
            if wait_for_port(self.nfs_port, timeout=0.1) and wait_for_port(
                self.mount_port, timeout=0.1
            ):
                problem = self._probe_mount()
                if not problem:
                    return ""
                last = problem
            else:
                last = "NFS ports not listening"
            time.sleep(0.1)
        return f"timed out: {last}"

    def _log_says(self, text: str) -> bool:
        try:
            return text in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def _probe_mount(self) -> str:
        """Mount and list the export root with libnfs; '' on success."""
        try:
            import libnfs
        except ImportError:  # no client library here: the open ports will have to do
            return ""
        ctx = libnfs.nfs_init_context()
        if ctx is None:
            return "libnfs could not create a context"
        try:
            # Options only in the URL: libnfs does not decode %-escapes in URL paths.
            url = libnfs.nfs_parse_url_incomplete(ctx, self._options_url())
            if url is None:
                return f"libnfs refused the URL: {libnfs.nfs_get_error(ctx)}"
            libnfs.nfs_destroy_url(url)
            if libnfs.nfs_mount(ctx, self.host, self.export_path) != 0:
                return f"mount failed: {libnfs.nfs_get_error(ctx)}"
            st = libnfs.nfs_stat_64()
            if libnfs.nfs_stat64(ctx, "/", st) != 0:
                return f"stat of the export root failed: {libnfs.nfs_get_error(ctx)}"
            return ""
        finally:
            libnfs.nfs_destroy_context(ctx)

    def stop(self) -> None:
        """Stop ganesha (SIGTERM, then SIGKILL) and wait for it. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        _terminate(proc, timeout=15)
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()

    def kill(self) -> None:
        """SIGKILL ganesha (a crash). ``start(same_ports=True)`` brings it back."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=15)
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()

    def restart(self, downtime: float = 0.0) -> NfsServer:
        """Kill, stay down ``downtime`` seconds, start again on the same ports."""
        self.kill()
        time.sleep(downtime)
        return self.start(same_ports=True)

    def __enter__(self) -> NfsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last resort if a caller forgot stop(): never leave a daemon behind.
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()

    # -- addresses ---------------------------------------------------------------------

    def _options_url(self) -> str:
        return (
            f"nfs://{self.host}/?nfsport={self.nfs_port}&mountport={self.mount_port}"
            "&version=3&autoreconnect=0"
        )

    def url(self, version: int = 3) -> str:
        """The libnfs URL of the export root, for tools and benchmarks (``nfs-ls``,
        ``nfs-cp``). libnfs does not decode %-escapes: an export path with '?' or '#'
        has no URL; ``NfsSource`` mounts by path instead."""
        return (
            f"nfs://{self.host}{self.export_path}?nfsport={self.nfs_port}"
            f"&mountport={self.mount_port}&version={version}"
        )

    def source_address(self, name: str = "nfs-src", path: str = "") -> SourceAddress:
        return SourceAddress(
            name=name,
            protocol="nfs",
            host=self.host,
            share=self.export_path,
            port=self.nfs_port,
            mount_port=self.mount_port,
            path=path,
        )


def ganesha_processes() -> list[int]:
    """Pids of every ganesha.nfsd on this machine (for checks that none is left behind)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "ganesha.nfsd":
                    pids.append(int(entry))
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ESRCH, errno.EACCES):
                raise
    return pids
