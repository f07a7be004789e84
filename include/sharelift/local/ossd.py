"""``OssServer``: a real ``sharelift ossd`` process on a free loopback port.

    with OssServer(tmp_path / "oss") as oss:
        oss.create_bucket("sharelift-test")
        dst = oss.destination_address(bucket="sharelift-test", prefix="backup/")

The AccessKeySecret (random unless given) reaches the daemon through the environment, never
its command line; ``access_key_secret`` is a ``Secret``. The daemon's stdout/stderr go to
``<data_dir>/ossd.log``, whose tail ``LocalServerError`` carries when the start fails.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from sharelift.addresses import DestinationAddress
from sharelift.local import LocalServerError
from sharelift.local.ports import LOOPBACK, free_port, log_tail, wait_for_port
from sharelift.ossd import SECRET_ENV
from sharelift.secret import Secret

READY_LINE = "ossd listening on "


class OssServer:
    def __init__(
        self,
        data_dir: Path,
        access_key_id: str = "sharelift-test",
        access_key_secret: str | None = None,
        region: str = "cn-hangzhou",
        *,
        fsync: bool = True,
        verbose: bool = False,
        start_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.access_key_id = access_key_id
        self.access_key_secret = Secret(access_key_secret or secrets.token_urlsafe(24))
        self.region = region
        self.host = LOOPBACK
        self.port = 0
        self.fsync = fsync
        self.verbose = verbose
        self.start_timeout = start_timeout
        self.log_path = self.data_dir / "ossd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"OssServer(endpoint={self.endpoint!r}, data_dir={str(self.data_dir)!r})"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # ---- life cycle

    def start(self, *, same_port: bool = False) -> OssServer:
        """Start the daemon; ``same_port``: on the port it had before (a restart that
        clients must find again), not a new free one."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not (same_port and self.port):
            self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "sharelift.cli",
            "ossd",
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--access-key-id",
            self.access_key_id,
            "--region",
            self.region,
        ]
        if not self.fsync:
            cmd.append("--no-fsync")
        if self.verbose:
            cmd.append("--verbose")
        env = dict(os.environ)
        env[SECRET_ENV] = self.access_key_secret.reveal()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise LocalServerError(
                    f"sharelift ossd exited while starting:\n{log_tail(str(self.log_path))}"
                )
            if self._ready(log_offset) and wait_for_port(self.port, timeout=1.0):
                return self
            time.sleep(0.05)
        self.stop()
        raise LocalServerError(
            f"sharelift ossd did not answer on port {self.port} within {self.start_timeout:.0f} s:"
            f"\n{log_tail(str(self.log_path))}"
        )

    def _ready(self, offset: int) -> bool:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return READY_LINE.encode() in f.read()
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the daemon and wait (SIGKILL after ``timeout``). Returns its exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the daemon (a crash: nothing is flushed or answered). ``start(same_port=
        True)`` brings it back where clients expect it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self, downtime: float = 0.0) -> OssServer:
        """Kill, stay down ``downtime`` seconds, start again on the same port."""
        self.kill()
        time.sleep(downtime)
        return self.start(same_port=True)

    def __enter__(self) -> OssServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- clients

    def auth(self, signature_version: Literal["v1", "v4"] = "v4") -> Any:
        import oss2

        secret = self.access_key_secret.reveal()
        if signature_version == "v1":
            return oss2.Auth(self.access_key_id, secret)
        return oss2.AuthV4(self.access_key_id, secret)

    def bucket(
        self, name: str, signature_version: Literal["v1", "v4"] = "v4", **kwargs: Any
    ) -> Any:
        """An ``oss2.Bucket`` for ``name`` on this server."""
        import oss2

        return oss2.Bucket(
            self.auth(signature_version), self.endpoint, name, region=self.region, **kwargs
        )

    def v2_client(self, signature_version: Literal["v1", "v4"] = "v4", **config: Any) -> Any:
        """An ``alibabacloud_oss_v2.Client`` for this server (path style: IP endpoint).

        ``config`` sets more ``Config`` attributes, e.g. ``retry_max_attempts=1``.
        """
        import alibabacloud_oss_v2 as oss

        cfg = oss.config.load_default()
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
            self.access_key_id, self.access_key_secret.reveal()
        )
        cfg.region = self.region
        cfg.endpoint = self.endpoint
        cfg.signature_version = signature_version
        for name, value in config.items():
            setattr(cfg, name, value)
        return oss.Client(cfg)

    def create_bucket(self, name: str) -> Any:
        """Create ``name`` (no error if it exists); returns its ``oss2.Bucket``."""
        bucket = self.bucket(name)
        bucket.create_bucket()
        return bucket

    def destination_address(
        self,
        name: str = "oss-dst",
        bucket: str = "sharelift-test",
        prefix: str = "",
        signature_version: Literal["v1", "v4"] = "v4",
    ) -> DestinationAddress:
        return DestinationAddress(
            name=name,
            kind="oss",
            endpoint=self.endpoint,
            bucket=bucket,
            access_key_id=self.access_key_id,
            access_key_secret=self.access_key_secret,
            prefix=prefix,
            region=self.region,
            signature_version=signature_version,
        )

    def connection_fields(self, bucket: str) -> dict[str, Any]:
        """An Airflow connection of the Alibaba provider's ``oss`` type for ``bucket``
        (keyword arguments of ``AirflowServer.set_connection`` or an ``AIRFLOW_CONN_*`` JSON)."""
        return {
            "conn_type": "oss",
            "schema": bucket,
            "extra": {
                "auth_type": "AK",
                "access_key_id": self.access_key_id,
                "access_key_secret": self.access_key_secret.reveal(),
                "endpoint": self.endpoint,
                "region": self.region,
            },
        }
