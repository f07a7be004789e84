"""The fault suite's tools: a tree to copy, one subtask's copy through the engine, and the
check every test ends with (each object downloaded and compared with its source file).

Retries here are short (``QUICK``): waits of 0.05 s doubling to 1 s, a request given up
after 30 s, a file after 60 s; outages in these tests last 5 s. A table of what each test
measured (files ok / corrupt / failed, seconds) is appended to ``$SHARELIFT_FAULT_TABLE``
when that is set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sharelift.engine.copier import run_subtask
from sharelift.engine.jobs import JobSpec
from sharelift.engine.manifest import Manifest
from sharelift.engine.partition import partition
from sharelift.engine.scan import scan
from sharelift.engine.state import StateStore
from sharelift.storage import RetryPolicy, TransferConfig, open_destination, open_source

JOB = JobSpec(name="faults", source="src", destination="dst")
QUICK = RetryPolicy(first_wait=0.05, max_wait=1.0, request_time=30.0, file_time=60.0)
# Parts of 256 KiB from 2 MiB: the tree's 3 MiB files go up in 12 parts; its 1.5 MiB files
# are streamed in one PUT; the rest are small enough to be sent from memory.
TRANSFER = TransferConfig(
    multipart_threshold=2 * 1024 * 1024, part_size=256 * 1024, max_parallel_parts=4, retry=QUICK
)


def make_tree(root: Path, small: int = 150, seed: int = 1) -> dict[str, bytes]:
    """``small`` files of 0-64 KiB in a few folders, two streamed and two multipart files."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(small):
        files[f"d{i % 5}/f{i:04d}.bin"] = rng.randbytes(rng.choice((0, 1, 700, 4096, 65536)))
    for name in ("big/stream-a.bin", "big/stream-b.bin"):
        files[name] = rng.randbytes(1536 * 1024)
    for name in ("big/multi-a.bin", "big/multi-b.bin"):
        files[name] = rng.randbytes(3 * 1024 * 1024)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.parent.chmod(0o755)
        path.write_bytes(data)
        path.chmod(0o644)
    return files


@dataclass
class Tally:
    """What a copy left behind, checked object by object."""

    ok: int = 0
    corrupt: int = 0  # an object whose bytes differ from its source's
    failed: int = 0
    missing: int = 0  # recorded copied, but no object
    empty_reasons: int = 0
    leftover_uploads: int = 0  # incomplete multipart uploads left in the bucket
    seconds: float = 0.0
    reasons: list[str] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=dict)


@dataclass
class Copy:
    tmp_path: Path
    source_root: Path
    source_address: Any
    destination_address: Any
    transfer: TransferConfig = TRANSFER
    run_id: str = "r1"

    def run(
        self,
        *,
        progress: Callable[[int], None] | None = None,
        on_file: Callable[[Any], None] | None = None,
    ) -> tuple[dict[str, int], float]:
        state = StateStore(f"sqlite:///{self.tmp_path}/state.db")
        manifest = Manifest(state, JOB.name, self.run_id)
        started = time.monotonic()
        with (
            open_source(self.source_address) as source,
            open_destination(self.destination_address, transfer=self.transfer) as dest,
        ):
            scan(source, JOB, manifest)
            (subtask,) = partition(manifest, 100_000, 10**12)
            counts = run_subtask(
                JOB,
                self.run_id,
                subtask,
                manifest,
                source,
                dest,
                state,
                progress=progress,
                on_file=on_file,
            )
        return dict(counts), time.monotonic() - started

    def check(self, direct_address: Any, seconds: float) -> Tally:
        """Every file recorded copied is compared, byte for byte, with its source file now;
        every file not copied must have a reason. ``direct_address`` reaches the bucket
        without any fault in the way."""
        state = StateStore(f"sqlite:///{self.tmp_path}/state.db")
        tally = Tally(seconds=round(seconds, 1))
        with open_destination(direct_address) as dest:
            for row in state.iter_outcomes(JOB.name, self.run_id):
                path = row["path"]
                if row["status"] == "copied":
                    try:
                        with dest.open(path) as stored:
                            got = stored.read()
                    except FileNotFoundError:
                        tally.missing += 1
                        continue
                    want = (self.source_root / path).read_bytes()
                    if hashlib.sha256(got).digest() == hashlib.sha256(want).digest():
                        tally.ok += 1
                    else:
                        tally.corrupt += 1
                else:
                    tally.failed += 1
                    tally.reasons.append(row["reason"] or "")
                    if not (row["reason"] or "").strip():
                        tally.empty_reasons += 1
                    if dest.head(path) is not None:
                        # A failed file must not leave bytes that could pass for it.
                        with dest.open(path) as stored:
                            got = stored.read()
                        if got != (self.source_root / path).read_bytes():
                            tally.corrupt += 1
            tally.leftover_uploads = sum(1 for _ in dest.incomplete_uploads())
        return tally

    def retry(self, direct_address: Any) -> tuple[dict[str, int], Tally]:
        """A retry run of this copy's run, without the fault in the way: its manifest is
        exactly the run's error list (``sharelift.engine.retry``), copied to
        ``direct_address``. Returns the retry's counts and its check."""
        from sharelift.engine.retry import build_retry_manifest

        retry = dataclasses.replace(self, destination_address=direct_address)
        retry.run_id = f"{self.run_id}-retry"
        state = StateStore(f"sqlite:///{self.tmp_path}/state.db")
        if state.get_run(JOB.name, self.run_id) is None:
            state.upsert_run(JOB.name, self.run_id, state="Failed")
        manifest = Manifest(state, JOB.name, retry.run_id)
        started = time.monotonic()
        with (
            open_source(self.source_address) as source,
            open_destination(direct_address, transfer=self.transfer) as dest,
        ):
            build_retry_manifest(source, state, JOB.name, self.run_id, manifest)
            (subtask,) = partition(manifest, 100_000, 10**12)
            counts = run_subtask(JOB, retry.run_id, subtask, manifest, source, dest, state)
        seconds = time.monotonic() - started
        return dict(counts), retry.check(direct_address, seconds)


def assert_retry_finishes(copy: Copy, direct_address: Any, tally: Tally) -> Tally:
    """What every fault must allow: a retry copies exactly the files that failed (nothing
    twice), each byte-identical, and leaves no file failed and no upload behind."""
    counts, retried = copy.retry(direct_address)
    assert counts.get("copied", 0) == tally.failed, counts
    assert sum(counts.values()) == tally.failed, counts
    assert (retried.ok, retried.failed, retried.corrupt, retried.missing) == (
        tally.failed,
        0,
        0,
        0,
    ), retried.reasons
    assert retried.leftover_uploads == 0
    return retried


def record(name: str, tally: Tally) -> None:
    target = os.environ.get("SHARELIFT_FAULT_TABLE")
    if target:
        row = {"fault": name, **asdict(tally)}
        row["reasons"] = sorted(set(tally.reasons))[:5]
        with open(target, "a") as f:
            f.write(json.dumps(row) + "\n")


@pytest.fixture
def local_tree(testbed_root: Path, unique_name: str) -> Iterator[tuple[Path, Any]]:
    from sharelift.addresses import SourceAddress

    root = testbed_root / "faults" / unique_name
    root.mkdir(parents=True, mode=0o755)
    yield root, SourceAddress(name="src", protocol="local", path=str(root))


@pytest.fixture
def own_nfs(testbed_root: Path, unique_name: str):  # type: ignore[no-untyped-def]
    from tests.servers.nfs import NfsServer

    export = testbed_root / f"nfs-{unique_name}"
    export.mkdir(mode=0o755)
    work = testbed_root / f"nfs-work-{unique_name}"
    work.mkdir(mode=0o755)
    with NfsServer(export, work) as server:
        yield server


@pytest.fixture
def own_smb(testbed_root: Path, unique_name: str):  # type: ignore[no-untyped-def]
    from tests.servers.smb import SmbServer

    share = testbed_root / f"smb-{unique_name}"
    share.mkdir(mode=0o755)
    work = testbed_root / f"smb-work-{unique_name}"
    work.mkdir(mode=0o755)
    with SmbServer(share, work) as server:
        yield server
