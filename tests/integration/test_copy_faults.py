"""Faults in the middle of a run: each becomes a per-file reason, never a crash or bad data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sharelift.engine.copier import run_subtask
from sharelift.engine.jobs import JobSpec
from sharelift.engine.manifest import Manifest
from sharelift.engine.partition import partition
from sharelift.engine.scan import scan
from sharelift.engine.state import StateStore
from sharelift.storage import RetryPolicy, TransferConfig, open_destination, open_source

JOB = JobSpec(name="fault-job", source="src", destination="dst")


def populate(root: Path, n: int = 6) -> list[str]:
    names = [f"f{i}.txt" for i in range(n)]
    for name in names:
        (root / name).write_bytes(name.encode() * 100)
        (root / name).chmod(0o644)
    return names


@pytest.fixture(params=["local", "nfs", "smb"])
def source_address(request, testbed_root: Path, unique_name: str):  # type: ignore[no-untyped-def]
    from sharelift.addresses import SourceAddress

    if request.param == "local":
        root = testbed_root / "faults-local" / unique_name
        root.mkdir(parents=True)
        return root, SourceAddress(name="src", protocol="local", path=str(root))
    server = request.getfixturevalue(f"{request.param}_server")
    base = Path(server.export_dir if request.param == "nfs" else server.share_dir)
    root = base / unique_name
    root.mkdir(mode=0o755)
    return root, server.source_address(path=unique_name)


def test_a_source_file_deleted_during_the_run_fails_alone(
    source_address,
    oss_server,
    tmp_path: Path,
    unique_name: str,  # type: ignore[no-untyped-def]
) -> None:
    root, address = source_address
    names = populate(root)
    bucket = f"fault-{unique_name}"
    oss_server.create_bucket(bucket)
    state = StateStore(f"sqlite:///{tmp_path}/state.db")
    manifest = Manifest(state, JOB.name, "r1")
    with (
        open_source(address) as source,
        open_destination(oss_server.destination_address(bucket=bucket)) as dest,
    ):
        scan(source, JOB, manifest)
        os.unlink(root / names[2])
        (subtask,) = partition(manifest, 1000, 10**12)
        counts = run_subtask(JOB, "r1", subtask, manifest, source, dest, state)
        assert counts == {"copied": len(names) - 1, "failed": 1}
        (failed,) = state.iter_outcomes(JOB.name, "r1", status="failed")
        assert failed["path"] == names[2]
        assert "not found" in failed["reason"]
        assert dest.head(names[2]) is None


def test_a_destination_that_goes_away_fails_each_file_with_the_reason(
    tmp_path: Path, testbed_root: Path, unique_name: str
) -> None:
    from sharelift.addresses import SourceAddress
    from sharelift.local.ossd import OssServer

    root = testbed_root / "faults-dst" / unique_name
    root.mkdir(parents=True)
    names = populate(root, 3)
    server = OssServer(tmp_path / "ossd")
    server.start()
    server.create_bucket("going-away")
    address = server.destination_address(bucket="going-away")
    state = StateStore(f"sqlite:///{tmp_path}/state.db")
    manifest = Manifest(state, JOB.name, "r1")
    with open_source(SourceAddress(name="src", protocol="local", path=str(root))) as source:
        scan(source, JOB, manifest)
        server.stop()
        # Retried briefly (the fault suite, tests/faults, covers servers that come back).
        quick = TransferConfig(retry=RetryPolicy(first_wait=0.05, max_wait=0.1, request_time=0.3))
        with open_destination(address, transfer=quick) as dest:
            (subtask,) = partition(manifest, 1000, 10**12)
            counts = run_subtask(JOB, "r1", subtask, manifest, source, dest, state)
    assert counts == {"failed": len(names)}
    reasons = {o["reason"] for o in state.iter_outcomes(JOB.name, "r1")}
    assert reasons == {"destination unreachable: connection refused"}
    assert server.access_key_secret.reveal() not in str(reasons)


def test_a_large_file_truncated_while_it_is_read_ahead_is_read_again_at_its_new_size(
    source_address,
    oss_server,
    tmp_path: Path,
    unique_name: str,  # type: ignore[no-untyped-def]
) -> None:
    """Files of 8 MiB and more are read on a thread ahead of the put (ReadAhead): a file
    that shrinks under it is noticed, and read again as it is now."""
    from sharelift.storage import read_ahead

    root, address = source_address
    big = root / "big.bin"
    big.write_bytes(os.urandom(read_ahead.MIN_SIZE + 3 * 1024 * 1024))
    big.chmod(0o644)
    bucket = f"shrink-{unique_name}"
    oss_server.create_bucket(bucket)
    state = StateStore(f"sqlite:///{tmp_path}/state.db")
    manifest = Manifest(state, JOB.name, "r1")
    truncated = []

    def shrink_once(_nbytes: int) -> None:
        if not truncated:
            os.truncate(big, 2 * 1024 * 1024 + 5)
            truncated.append(True)

    with (
        open_source(address) as source,
        open_destination(oss_server.destination_address(bucket=bucket)) as dest,
    ):
        scan(source, JOB, manifest)
        (subtask,) = partition(manifest, 1000, 10**12)
        counts = run_subtask(
            JOB, "r1", subtask, manifest, source, dest, state, progress=shrink_once
        )
        assert counts == {"copied": 1}
        with dest.open("big.bin") as stored:
            assert stored.read() == big.read_bytes()
