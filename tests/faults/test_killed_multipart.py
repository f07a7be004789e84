"""Big files half-uploaded: a killed copy resumes its parts; a file that fails for good
leaves no incomplete upload and no checkpoint behind.

The copy runs the engine's subtask (``run_subtask``) on a tree of one 10 MiB file (40
parts of 256 KiB) and a few small ones, through ``FaultProxy`` in front of ossd; the proxy
counts the parts sent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import oss2
import pytest

from sharelift.engine.state import StateStore
from sharelift.storage import RetryPolicy
from tests.faults.conftest import JOB, TRANSFER, Copy, Tally, assert_retry_finishes, record
from tests.faults.copy_subtask import SECRET_ENV, args_for
from tests.faults.proxy import FaultProxy, Faults

REPO = Path(__file__).resolve().parents[2]
BIG = "big/huge.bin"
PARTS = 40


@pytest.fixture
def big_tree(oss_server, local_tree, tmp_path: Path, unique_name: str):  # type: ignore[no-untyped-def]
    root, source_address = local_tree
    files = {BIG: os.urandom(PARTS * TRANSFER.part_size)}
    files.update({f"small/s{i}.txt": f"small {i}".encode() for i in range(3)})
    for rel, data in files.items():
        (root / rel).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    bucket = f"k-{unique_name}"
    oss_server.create_bucket(bucket)
    checkpoints = tmp_path / "checkpoints"
    with FaultProxy(oss_server.port) as proxy:
        copy = Copy(
            tmp_path,
            root,
            source_address,
            proxy.destination_address(oss_server, bucket=bucket),
            dataclasses.replace(TRANSFER, checkpoint_dir=str(checkpoints)),
        )
        yield {
            "copy": copy,
            "proxy": proxy,
            "files": files,
            "bucket": oss_server.bucket(bucket, "v4"),
            "checkpoints": checkpoints,
            "secret": oss_server.access_key_secret,
            "direct": oss_server.destination_address(bucket=bucket),
        }


def incomplete_uploads(bucket: Any) -> list[str]:
    return [u.key for u in oss2.MultipartUploadIterator(bucket)]


def checkpoint_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def outcome(copy: Copy, path: str) -> dict[str, Any]:
    state = StateStore(f"sqlite:///{copy.tmp_path}/state.db")
    try:
        return next(r for r in state.iter_outcomes(JOB.name, copy.run_id) if r["path"] == path)
    finally:
        state.close()


def test_a_copy_killed_mid_multipart_resumes_its_parts_and_leaves_nothing_behind(
    big_tree: dict[str, Any],
) -> None:
    copy, proxy = big_tree["copy"], big_tree["proxy"]
    # Slow every request so that the kill lands half-way through the big file's parts.
    proxy.faults = Faults(delay_rate=1.0, delay=0.1)
    env = dict(os.environ, **{SECRET_ENV: big_tree["secret"].reveal()})
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.copy_subtask", args_for(copy)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while proxy.parts < 12 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.poll() is None, f"the copy ended before it was killed: {child.stderr!r}"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        if child.stderr is not None:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    sent_before_kill = proxy.parts
    # Killed: the upload and its checkpoint stay for the next try.
    assert incomplete_uploads(big_tree["bucket"]) == [BIG]
    assert len(checkpoint_files(big_tree["checkpoints"])) == 1

    proxy.faults = Faults()
    proxy.parts = 0
    copy.run()  # the same run again
    resent = proxy.parts
    assert resent < PARTS, "every part was sent again: nothing resumed"
    assert resent <= PARTS - sent_before_kill + 4  # at most the parts in flight at the kill
    assert outcome(copy, BIG)["status"] == "copied"
    got = big_tree["bucket"].get_object(BIG).read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(big_tree["files"][BIG]).digest()
    assert incomplete_uploads(big_tree["bucket"]) == []
    assert checkpoint_files(big_tree["checkpoints"]) == []
    # Every object is its source's bytes. (Files the killed copy had already finished
    # are recorded as skipped by the second pass: how a resumed run counts them is the
    # run's business, not the upload's.)
    for rel, data in big_tree["files"].items():
        assert big_tree["bucket"].get_object(rel).read() == data, rel
    tally = Tally(ok=len(big_tree["files"]), seconds=round(time.monotonic() - started, 1))
    tally.injected = {"parts sent before the kill": sent_before_kill, "parts sent again": resent}
    record("copy SIGKILLed mid-multipart, same run again", tally)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(403, "HTTP 403 AccessDenied"), (503, "HTTP 503")],
    ids=["403-permanent", "503-budget-spent"],
)
def test_a_big_file_that_fails_for_good_leaves_no_incomplete_upload_and_no_checkpoint(
    big_tree: dict[str, Any], status: int, reason: str
) -> None:
    copy, proxy = big_tree["copy"], big_tree["proxy"]
    short = RetryPolicy(first_wait=0.05, max_wait=0.2, request_time=1.0, file_time=2.0)
    copy.transfer = dataclasses.replace(copy.transfer, retry=short)
    proxy.faults = Faults(part_status=status)
    counts, _ = copy.run()
    failed = outcome(copy, BIG)
    assert failed["status"] == "failed"
    assert reason in failed["reason"]
    assert incomplete_uploads(big_tree["bucket"]) == []
    assert checkpoint_files(big_tree["checkpoints"]) == []
    # The small files are unaffected.
    assert counts.get("copied") == 3
    tally = copy.check(big_tree["direct"], 0.0)
    assert (tally.failed, tally.corrupt, tally.leftover_uploads) == (1, 0, 0)
    assert_retry_finishes(copy, big_tree["direct"], tally)
