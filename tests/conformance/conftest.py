"""Every backend, behind the same fixtures, so one suite checks them all.

A source environment is a fresh folder on disk that a backend shows (directly, or through
nfs-ganesha or Samba); tests create files there with plain ``os`` calls and read them
back through the backend. A destination environment is an empty bucket or folder.
Adding a backend means adding one branch here; the suite itself does not change.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.storage import Destination, Source, TransferConfig, open_destination, open_source

# "smb" reads on the SMB source's fast path; "smb-smbprotocol" with that path turned off,
# so the path it falls back to keeps the same contract.
SOURCE_BACKENDS = ["local", "nfs", "smb", "smb-smbprotocol"]
DESTINATION_BACKENDS = ["local", "oss"]

# Small limits so that "a file above the multipart threshold" costs a few MiB, not GBs.
TEST_TRANSFER = dict(multipart_threshold=1024 * 1024, part_size=256 * 1024, max_parallel_parts=3)


def _as_nobody(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a child process without root's right to read everything."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def target() -> None:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            child.send(("ok", fn()))
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            child.send(("error", exc))

    proc = ctx.Process(target=target)
    proc.start()
    status, value = parent.recv()
    proc.join(10)
    if status == "error":
        raise value
    return value


@dataclass
class SourceEnv:
    backend: str
    root: Path
    address: SourceAddress
    mtime_precision_ns: int = 1
    _sources: list[Source] = field(default_factory=list)

    def source(self, **changes: Any) -> Source:
        import dataclasses

        src = open_source(dataclasses.replace(self.address, **changes) if changes else self.address)
        self._sources.append(src)
        return src

    def run_unprivileged(self, fn: Callable[[], Any]) -> Any:
        """Local reads as root ignore permissions; servers squash/map us to a plain user."""
        if self.backend == "local" and os.geteuid() == 0:
            return _as_nobody(fn)
        return fn()

    def close(self) -> None:
        for src in self._sources:
            src.close()


@pytest.fixture(params=SOURCE_BACKENDS)
def source_env(
    request: pytest.FixtureRequest, testbed_root: Path, unique_name: str
) -> Iterator[SourceEnv]:
    backend = request.param
    if backend == "local":
        root = testbed_root / "local-src" / unique_name
        root.mkdir(parents=True, mode=0o755)
        (testbed_root / "local-src").chmod(0o755)
        env = SourceEnv(
            backend, root, SourceAddress(name="local-src", protocol="local", path=str(root))
        )
    elif backend == "nfs":
        server = request.getfixturevalue("nfs_server")
        root = Path(server.export_dir) / unique_name
        root.mkdir(mode=0o755)
        env = SourceEnv(backend, root, server.source_address(path=unique_name))
    else:
        if backend == "smb-smbprotocol":
            from sharelift.storage.smb_source import FAST_READS_ENV

            request.getfixturevalue("monkeypatch").setenv(FAST_READS_ENV, "0")
        server = request.getfixturevalue("smb_server")
        root = Path(server.share_dir) / unique_name
        root.mkdir(mode=0o755)
        env = SourceEnv(
            backend, root, server.source_address(path=unique_name), mtime_precision_ns=100
        )
    try:
        yield env
    finally:
        env.close()
        for dirpath, dirnames, _ in os.walk(root):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class DestinationEnv:
    backend: str
    address: DestinationAddress
    transfer: TransferConfig
    checkpoint_dir: Path
    resumable: bool
    _dests: list[Destination] = field(default_factory=list)

    def destination(self, **changes: Any) -> Destination:
        import dataclasses

        address = dataclasses.replace(self.address, **changes) if changes else self.address
        dest = open_destination(address, transfer=self.transfer)
        self._dests.append(dest)
        return dest

    def close(self) -> None:
        for dest in self._dests:
            dest.close()


@pytest.fixture(params=DESTINATION_BACKENDS)
def destination_env(
    request: pytest.FixtureRequest, testbed_root: Path, unique_name: str, tmp_path: Path
) -> Iterator[DestinationEnv]:
    backend = request.param
    checkpoints = tmp_path / "checkpoints"
    transfer = TransferConfig(**TEST_TRANSFER, checkpoint_dir=str(checkpoints))
    if backend == "local":
        root = testbed_root / "local-dst" / unique_name
        root.mkdir(parents=True)
        address = DestinationAddress(
            name="local-dst", kind="local", path=str(root), prefix="pre/fix/"
        )
        env = DestinationEnv(backend, address, transfer, checkpoints, resumable=False)
    else:
        server = request.getfixturevalue("oss_server")
        bucket = f"conf-{unique_name}"
        server.create_bucket(bucket)
        address = server.destination_address(bucket=bucket, prefix="pre/fix/")
        env = DestinationEnv(backend, address, transfer, checkpoints, resumable=True)
    try:
        yield env
    finally:
        env.close()
