"""A throw-away PostgreSQL server on 127.0.0.1, for proving the state database on PostgreSQL.

Runs Debian's server binaries as the ``postgres`` user (the server refuses root) on a
cluster of its own in a work folder, with trust authentication on loopback only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sharelift.local.ports import LOOPBACK, free_port, log_tail
from tests.servers import TestbedError, prerequisites


def _bin(name: str) -> str:
    """Debian's server binary ``name`` (highest installed version), or an error naming the package."""
    return prerequisites.require(name)


class PostgresServer:
    def __init__(self, workdir: Path, database: str = "sharelift") -> None:
        self.workdir = Path(workdir).absolute()
        self.data = self.workdir / "data"
        self.log = self.workdir / "postgres.log"
        self.database = database
        self.port = 0
        self.host = LOOPBACK

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@{self.host}:{self.port}/{self.database}"

    def _as_postgres(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = [_bin("runuser"), "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, *cmd], capture_output=True, text=True, check=check, timeout=120
        )

    def start(self) -> PostgresServer:
        as_root = ["runuser"] if os.geteuid() == 0 else []
        for program in ["initdb", "pg_ctl", "createdb", *as_root]:
            _bin(program)  # all installed, before anything starts
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        self.port = free_port()
        try:
            self._as_postgres(
                _bin("initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres", "--no-sync"
            )
            self._as_postgres(
                _bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port} -k {self.workdir} -c listen_addresses={LOOPBACK} -c fsync=off",
                "start",
            )
            self._as_postgres(
                _bin("createdb"),
                "-h",
                LOOPBACK,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                self.database,
            )
        except subprocess.CalledProcessError as exc:
            raise TestbedError(
                f"PostgreSQL did not start: {exc.stderr}\n{log_tail(str(self.log))}"
            ) from None
        return self

    def stop(self) -> None:
        if self.data.exists() and self.port:
            self._as_postgres(
                _bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False
            )
            self.port = 0

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
