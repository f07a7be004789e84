"""A private Samba ``smbd`` on 127.0.0.1 serving one folder as one share.

Every piece of state (smb.conf, lock/state/cache/private/pid/ncalrpc dirs, the passdb tdb,
logs) lives in ``workdir``, and smbd listens on a free port on 127.0.0.1 only, so several
servers can run side by side without touching ``/etc/samba`` or ``/var/lib/samba``. The one
global side effect is the unix user (a system account without login) that Samba maps the
SMB user to; it is created on first use and left in place for the next server.

smb.conf decisions (measured with Samba 4.17 and smbprotocol 1.17 on this machine):

* Symlinks: Samba 4.17 speaks no SMB3 POSIX extensions in release builds (and smbprotocol
  would not negotiate them), and it never shows a symlink to an SMB2 client as a reparse
  point. With the default ``follow symlinks = yes`` it resolves links inside the share on
  the server side (a link to a folder shows up as a second real folder whose files would
  be copied twice; a link to an ancestor makes the tree endless) and hides links that
  point outside the share or nowhere. We set
  ``follow symlinks = no`` and ``wide links = no``: every symlink is hidden from listings
  and cannot be opened, so nothing is ever followed, least of all out of the share. A
  client cannot see them at all, hence ``SmbSource.features.reports_symlinks = False``.
* Names SMB cannot carry (``? * : < > | " \\`` and control characters): Samba's default
  ``mangled names = illegal`` shows such a file under an 8.3 hash like ``WINC9O~A.TXT``
  (readable, but under the wrong name, and nothing tells the client). We set ``mangled
  names = no``: the real name is listed and cannot be opened (STATUS_OBJECT_NAME_INVALID),
  so ``SmbSource`` yields it with an error saying why. ``map_illegal_names=True`` adds
  ``vfs_catia`` with the macOS "SFM" mapping (what ``vfs_fruit`` uses, ``?`` <-> U+F025):
  those files are then read under their real names. It is not the default because
  catia (Samba 4.17) ends a folder's listing silently at the first name that is not valid
  UTF-8 (measured: every entry after a Latin-1 name vanished). Without catia such a name
  is hidden alone (Samba cannot convert it), which no client can see either way.
* Special files (fifos, sockets, devices) look like empty regular files over SMB2;
  ``hide special files = yes`` keeps them out of listings so they are never copied as
  0-byte objects.
* No caching between the disk and the client: oplocks, level2 oplocks and SMB2 leases
  off, stat cache and getwd cache off, so files a test creates or deletes on disk show at
  once.
* ``case sensitive = yes``: Linux folders may hold ``a.txt`` and ``A.txt``; each name
  opens its own file and no name lookup scans the folder.
* ``ea support = no`` and ``store dos attributes = no``: no xattr read per listed file.
* ``encrypt=True`` makes the share require encryption (``server smb encrypt = required``):
  every message after the tree connect travels in an SMB2 TRANSFORM envelope.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sharelift.addresses import SourceAddress
from sharelift.local.ports import LOOPBACK, free_port, log_tail, wait_for_port
from sharelift.secret import Secret
from tests.servers import TestbedError, prerequisites

# vfs_fruit's macOS mapping of characters NTFS forbids to the Unicode private-use range;
# SmbSource maps them back (keep the two tables in step).
SFM_MAPPINGS = ",".join(
    [f"0x{c:02x}:0x{0xF000 + c:04x}" for c in range(0x01, 0x20)]
    + [
        "0x22:0xf020",  # "
        "0x2a:0xf021",  # *
        "0x3a:0xf022",  # :
        "0x3c:0xf023",  # <
        "0x3e:0xf024",  # >
        "0x3f:0xf025",  # ?
        "0x5c:0xf026",  # backslash
        "0x7c:0xf027",  # |
    ]
)

_STATE_DIRS = ("lock", "state", "cache", "private", "pid", "log", "ncalrpc", "binddns", "winbindd")
# Unix socket paths are limited to 108 bytes; smbd puts sockets under lock/msg.sock/<pid>.
_MAX_SOCKET_DIR = 80


def make_share_dir(prefix: str = "sharelift-smb-") -> Path:
    """A new empty folder in /tmp that Samba's unix user can reach (mode 0755).

    smbd opens the share as that user, who cannot pass pytest's 0700 ``/tmp/pytest-of-root``:
    a ``tmp_path`` cannot be a share. The caller removes the folder when done.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def serving_new_share(work: Path, **options: Any) -> Iterator[SmbServer]:
    """An ``SmbServer`` on a new share folder (``make_share_dir``), removed afterwards."""
    share = make_share_dir()
    try:
        with SmbServer(share, work, **options) as server:
            yield server
    finally:
        shutil.rmtree(share, ignore_errors=True)


class SmbServer:
    """Samba's smbd serving ``share_dir`` as ``\\\\127.0.0.1\\<share>`` on a free port.

    ``share_dir`` and every folder above it must be traversable by the unix user (see
    ``make_share_dir``); ``start()`` checks and says so. ``workdir`` may be anywhere
    (smbd itself runs as root), e.g. a pytest ``tmp_path``.
    """

    host = LOOPBACK

    def __init__(
        self,
        share_dir: Path,
        workdir: Path,
        share: str = "data",
        username: str = "sharelift",
        password: str | Secret | None = None,
        *,
        map_illegal_names: bool = False,
        encrypt: bool = False,
    ) -> None:
        self.share_dir = Path(share_dir).resolve()
        self.workdir = Path(workdir).resolve()
        self.share = share
        self.username = username
        if password is None:
            password = secrets.token_urlsafe(18)
        self.password = password if isinstance(password, Secret) else Secret(password)
        self.map_illegal_names = map_illegal_names
        self.encrypt = encrypt
        self.port = 0
        self._same_port = False
        self.conf_path = self.workdir / "smb.conf"
        self.log_path = self.workdir / "log" / "smbd.log"
        self.out_path = self.workdir / "log" / "smbd.out"
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: object = None
        self._rundir = self.workdir
        self._own_rundir = False
        self._smbd = self._smbpasswd = ""  # found by start()

    def __repr__(self) -> str:
        return f"SmbServer(//{self.host}:{self.port}/{self.share} -> {self.share_dir})"

    # -- life cycle ----------------------------------------------------------------------

    @property
    def vfs_modules(self) -> tuple[str, ...]:
        """The Samba VFS modules this server's share loads (``vfs objects``)."""
        return ("catia",) if self.map_illegal_names else ()

    def _require_installed(self) -> None:
        """Samba's programs and every configured VFS module, or an error naming the package.

        smbd starts without a module it cannot load and then refuses every connection to
        the share: without this check a missing module is a time-out, not a reason.
        """
        self._smbd = prerequisites.require("smbd")
        self._smbpasswd = prerequisites.require("smbpasswd")
        for module in self.vfs_modules:
            prerequisites.require(f"vfs:{module}")

    def start(self, timeout: float = 30.0, *, same_port: bool = False) -> SmbServer:
        """Start smbd; ``same_port``: on the port it had before (a restart that clients
        must find again), not a new free one."""
        if self._proc is not None:
            return self
        self._require_installed()
        self._same_port = same_port and bool(self.port)
        if not self.share_dir.is_dir():
            raise TestbedError(f"share folder {self.share_dir} does not exist")
        for name in _STATE_DIRS:
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir / "private", 0o700)
        # Unix socket paths are limited to 108 bytes: a deep work folder (pytest's tmp_path
        # grows with its run counter) gets a short folder of its own for the socket dirs.
        self._rundir = self.workdir
        if len(str(self.workdir / "lock" / "msg.sock")) > _MAX_SOCKET_DIR:
            self._rundir = Path(tempfile.mkdtemp(prefix="slsmb-", dir="/tmp"))
            self._own_rundir = True
        for name in ("lock", "ncalrpc", "winbindd", "ntp_signd"):
            (self._rundir / name).mkdir(parents=True, exist_ok=True)
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()  # also removes a socket folder made above
            raise

    def _start(self, timeout: float) -> SmbServer:
        uid, gids = self._ensure_unix_user()
        self._check_share_reachable(uid, gids)

        last_error = ""
        for _attempt in range(3):  # a free port can be taken before smbd binds it
            if not self._same_port:
                self.port = free_port()
            self._write_conf()
            self._set_password()
            seen = len(self._log_text())
            self._launch()
            try:
                self._wait_ready(timeout)
                return self
            except TestbedError as exc:
                last_error = str(exc)
                port_taken = "Address already in use" in self._log_text()[seen:]
                self._stop_process()
                if not port_taken:
                    break
        raise TestbedError(last_error)

    def stop(self) -> None:
        """Stop smbd and every helper it forked (its process group). Safe to call twice."""
        self._stop_process()
        if self._own_rundir:
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._rundir, self._own_rundir = self.workdir, False

    def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
            # Children (per-connection smbd, notifyd, cleanupd) exit with the parent;
            # make sure none of our group lingers.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self._group_alive(proc.pid):
                time.sleep(0.05)
            if self._group_alive(proc.pid):
                self._signal_group(proc, signal.SIGKILL)
        out, self._out = self._out, None
        if out is not None:
            out.close()  # type: ignore[attr-defined]

    def kill(self) -> None:
        """SIGKILL smbd and every process of its group (a crash: sessions are lost).
        ``start(same_port=True)`` brings it back."""
        proc, self._proc = self._proc, None
        if proc is not None:
            self._signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=10)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self._group_alive(proc.pid):
                time.sleep(0.05)
        out, self._out = self._out, None
        if out is not None:
            out.close()  # type: ignore[attr-defined]
        if self._own_rundir:
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._rundir, self._own_rundir = self.workdir, False

    def restart(self, downtime: float = 0.0) -> SmbServer:
        """Kill, stay down ``downtime`` seconds, start again on the same port."""
        self.kill()
        time.sleep(downtime)
        return self.start(same_port=True)

    def __enter__(self) -> SmbServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests use ------------------------------------------------------------------

    def source_address(self, name: str = "smb-src", path: str = "") -> SourceAddress:
        return SourceAddress(
            name=name,
            protocol="smb",
            host=self.host,
            share=self.share,
            port=self.port,
            username=self.username,
            password=self.password,
            path=path,
        )

    # -- internals -----------------------------------------------------------------------

    def _write_conf(self) -> None:
        w = self.workdir
        r = self._rundir
        conf = f"""\
# Written by tests.servers.smb.SmbServer; everything stays under {w}.
[global]
  server role = standalone server
  security = user
  smb ports = {self.port}
  interfaces = {LOOPBACK}
  bind interfaces only = yes
  disable netbios = yes
  lock directory = {r}/lock
  state directory = {w}/state
  cache directory = {w}/cache
  private dir = {w}/private
  pid directory = {w}/pid
  ncalrpc dir = {r}/ncalrpc
  binddns dir = {w}/binddns
  winbindd socket directory = {r}/winbindd
  ntp signd socket directory = {r}/ntp_signd
  smb passwd file = {w}/private/smbpasswd
  passdb backend = tdbsam:{w}/private/passdb.tdb
  log file = {w}/log/smbd.log
  max log size = 0
  log level = 1
  map to guest = never
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  registry shares = no
  config backend = file
  usershare path =
  usershare max shares = 0
  smb1 unix extensions = no
  kernel change notify = no
  oplocks = no
  level2 oplocks = no
  kernel oplocks = no
  smb2 leases = no
  stat cache = no
  getwd cache = no

[{self.share}]
  path = {self.share_dir}
  read only = no
  browseable = yes
  guest ok = no
  valid users = {self.username}
  follow symlinks = no
  wide links = no
  mangled names = no
  case sensitive = yes
  preserve case = yes
  short preserve case = yes
  hide special files = yes
  hide dot files = no
  hide unreadable = no
  ea support = no
  store dos attributes = no
  directory name cache size = 0
"""
        if self.encrypt:
            conf += "  server smb encrypt = required\n"
        if self.vfs_modules:
            conf += f"  vfs objects = {' '.join(self.vfs_modules)}\n"
        if "catia" in self.vfs_modules:
            conf += f"  catia:mappings = {SFM_MAPPINGS}\n"
        self.conf_path.write_text(conf)

    def _ensure_unix_user(self) -> tuple[int, set[int]]:
        for _attempt in range(10):
            try:
                pw = pwd.getpwnam(self.username)
                gids = set(os.getgrouplist(self.username, pw.pw_gid))
                return pw.pw_uid, gids
            except KeyError:
                pass
            res = subprocess.run(
                [
                    prerequisites.require("useradd"),
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    self.username,
                ],
                capture_output=True,
                text=True,
            )
            # 9 = the user exists (another server raced us); 10 = /etc/passwd was locked.
            if res.returncode not in (0, 9, 10):
                raise TestbedError(
                    f"cannot create unix user {self.username!r}: {res.stderr.strip()}"
                )
            if res.returncode == 10:
                time.sleep(0.2)
        raise TestbedError(f"cannot create unix user {self.username!r} (/etc/passwd stayed locked)")

    def _check_share_reachable(self, uid: int, gids: set[int]) -> None:
        """Samba opens the share as the unix user: every parent folder must let it pass."""
        for folder in [self.share_dir, *self.share_dir.parents]:
            st = folder.stat()
            if st.st_uid == uid:
                bit = stat.S_IXUSR
            elif st.st_gid in gids:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not st.st_mode & bit:
                raise TestbedError(
                    f"share folder {self.share_dir} is not reachable by unix user "
                    f"{self.username!r}: {folder} has mode {stat.S_IMODE(st.st_mode):04o}. "
                    "Put the share under a folder everyone may traverse (pytest's "
                    "/tmp/pytest-of-root is 0700): tests.servers.smb.make_share_dir()"
                )

    def _set_password(self) -> None:
        pw = self.password.reveal()
        res = subprocess.run(
            [self._smbpasswd, "-c", str(self.conf_path), "-a", "-s", self.username],
            input=f"{pw}\n{pw}\n",
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            msg = (res.stdout + res.stderr).replace(pw, "***").strip()
            raise TestbedError(f"smbpasswd -a {self.username} failed: {msg}")

    def _launch(self) -> None:
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.out_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SMB_CONF", "KRB5"))}
        self._proc = subprocess.Popen(
            [self._smbd, "--foreground", "--no-process-group", "-s", str(self.conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._out,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group: stop() ends smbd and its helpers
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        proc = self._proc
        assert proc is not None
        while not wait_for_port(self.port, timeout=0.5):
            if proc.poll() is not None:
                raise TestbedError(f"smbd exited with code {proc.returncode}:\n{self._logs()}")
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"smbd did not listen on port {self.port} within {timeout:.0f} s:\n{self._logs()}"
                )
        last = ""
        while True:
            if proc.poll() is not None:
                raise TestbedError(f"smbd exited with code {proc.returncode}:\n{self._logs()}")
            try:
                self._probe()
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last = f"{type(exc).__name__}: {exc}".replace(self.password.reveal(), "***")
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"smbd on port {self.port} did not serve share {self.share!r} within "
                    f"{timeout:.0f} s ({last}):\n{self._logs()}"
                )
            time.sleep(0.2)

    def _probe(self) -> None:
        """Log in and list the share root with smbprotocol, the client the tests use."""
        import smbclient

        cache: dict[str, object] = {}
        try:
            with smbclient.scandir(
                rf"\\{self.host}\{self.share}",
                username=self.username,
                password=self.password.reveal(),
                port=self.port,
                connection_cache=cache,
                connection_timeout=5,
            ) as it:
                next(iter(it), None)
        finally:
            smbclient.reset_connection_cache(fail_on_error=False, connection_cache=cache)

    def _log_text(self) -> str:
        """Both logs in full (they are small): to spot what one start attempt wrote."""
        text = ""
        for path in (self.log_path, self.out_path):
            try:
                text += path.read_text(errors="replace")
            except OSError:
                pass
        return text

    def _logs(self) -> str:
        parts = []
        for path in (self.log_path, self.out_path):
            if path.exists():
                parts.append(f"--- {path} ---\n{log_tail(str(path))}")
        return "\n".join(parts) or "(no log)"

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        """True while a process of the group still runs (zombies await init's reaping)."""
        try:
            pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            pids = []
        if not pids:  # no /proc: fall back to signal 0 (zombies count as alive)
            try:
                os.killpg(pgid, 0)
                return True
            except ProcessLookupError:
                return False
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            # fields[0] = state, fields[2] = process group
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
        return False
