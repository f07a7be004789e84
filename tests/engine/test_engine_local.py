"""The engine end to end on local folders: scan, partition, copy, verify, report."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.checksum import crc64
from sharelift.engine.jobs import JobSpec
from sharelift.engine.manifest import Manifest
from sharelift.engine.partition import partition
from sharelift.engine.report import REPORT_ROOT
from sharelift.engine.runner import run_job
from sharelift.engine.scan import scan
from sharelift.storage import open_source


def make_tree(root: Path, n: int = 25) -> dict[str, bytes]:
    files = {}
    for i in range(n):
        rel = f"d{i % 3}/file {i:03d}#.bin"
        data = os.urandom(100 + i)
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files[rel] = data
    return files


@pytest.fixture
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    files = make_tree(src)
    return (
        files,
        SourceAddress(name="src-local", protocol="local", path=str(src)),
        DestinationAddress(name="dst-local", kind="local", path=str(dst), prefix="to/"),
        tmp_path / "work",
        dst,
    )


def read_list(dst: Path, job: str, run_id: str, kind: str) -> list[list[str]]:
    text = (dst / REPORT_ROOT / job / run_id / f"{job}_{kind}_list.txt").read_text()
    return [line.split("\t") for line in text.splitlines()]


@contextlib.contextmanager
def copied_subtask(env):  # type: ignore[no-untyped-def]
    """The job scanned and copied in one subtask; yields (job, destination, state)."""
    from sharelift.engine.copier import run_subtask
    from sharelift.engine.state import StateStore
    from sharelift.storage import open_destination

    _, src, dst, work, _ = env
    job = JobSpec(name="local-job", source="src-local", destination="dst-local")
    state = StateStore(f"sqlite:///{work}/state.db")
    manifest = Manifest(state, job.name, "run1")
    with open_source(src) as source, open_destination(dst) as destination:
        scan(source, job, manifest)
        (subtask,) = partition(manifest, 1000, 10**12)
        run_subtask(job, "run1", subtask, manifest, source, destination, state)
        yield job, destination, state


def test_a_full_run_copies_every_file_and_lists_it(env) -> None:  # type: ignore[no-untyped-def]
    files, src, dst, work, dst_root = env
    job = JobSpec(name="local-job", source="src-local", destination="dst-local", subtask_files=10)
    summary = run_job(job, src, dst, work_dir=str(work), run_id="run1")
    assert summary["state"] == "Completed"
    assert summary["files_copied"] == len(files)
    assert summary["subtasks"] == 3
    for rel, data in files.items():
        assert (dst_root / "to" / rel).read_bytes() == data
    completed = read_list(dst_root, "local-job", "run1", "completed")
    assert sorted(row[0] for row in completed) == sorted(f"to/{rel}" for rel in files)
    assert all(int(row[2]) == crc64(files[row[0][3:]]) for row in completed)
    total = read_list(dst_root, "local-job", "run1", "total")
    assert len(total) == len(files)
    assert read_list(dst_root, "local-job", "run1", "error") == []


def test_running_the_job_again_copies_nothing(env) -> None:  # type: ignore[no-untyped-def]
    files, src, dst, work, _ = env
    job = JobSpec(name="local-job", source="src-local", destination="dst-local")
    run_job(job, src, dst, work_dir=str(work), run_id="run1")
    again = run_job(job, src, dst, work_dir=str(work), run_id="run2")
    assert again["files_copied"] == 0
    assert again["files_skipped"] == len(files)
    assert list(again["skipped_reasons"]) == [
        "already migrated: destination has the same size and modification time"
    ]


def test_the_runner_records_an_invalid_address_as_create_failed(env) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from sharelift.engine.state import StateStore
    from sharelift.errors import AddressError

    _, src, dst, work, dst_root = env
    missing = dataclasses.replace(dst, path=str(dst_root / "missing"))
    job = JobSpec(name="local-job", source="src-local", destination="dst-local")
    with pytest.raises(AddressError):
        run_job(job, src, missing, work_dir=str(work), run_id="run1")
    state = StateStore(f"sqlite:///{work}/state.db")
    run = state.get_run("local-job", "run1")
    state.close()
    assert run is not None and run["state"] == "Create Failed"
    assert "does not exist" in run["message"]


def test_the_runner_records_the_job_settings_with_the_run(env) -> None:  # type: ignore[no-untyped-def]
    import json

    from sharelift.engine.state import StateStore

    _, src, dst, work, _ = env
    job = JobSpec(name="local-job", source="src-local", destination="dst-local")
    run_job(job, src, dst, work_dir=str(work), run_id="run1")
    state = StateStore(f"sqlite:///{work}/state.db")
    spec = json.loads(state.get_run("local-job", "run1")["spec"])  # type: ignore[index]
    state.close()
    assert spec["job"] == job.to_dict()
    assert spec["dag_id"] is None


def test_an_incremental_run_through_the_runner_takes_only_the_changes_since_the_last(
    env,
) -> None:  # type: ignore[no-untyped-def]
    files, src, dst, work, dst_root = env
    first = JobSpec(
        name="inc-job",
        source="src-local",
        destination="dst-local",
        migration_type="incremental",
        migration_times=2,
    )
    assert run_job(first, src, dst, work_dir=str(work), run_id="run1")["files_copied"] == len(files)
    (Path(src.path) / "new.txt").write_bytes(b"new")
    second = JobSpec.from_dict({**first.to_dict(), "run_number": 2})
    summary = run_job(second, src, dst, work_dir=str(work), run_id="run2")
    assert summary["files_total"] == 1
    assert summary["files_copied"] == 1
    assert (dst_root / "to" / "new.txt").read_bytes() == b"new"


def test_partition_closes_a_subtask_at_the_file_count_or_the_size(tmp_path: Path) -> None:
    src = tmp_path / "s"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}").write_bytes(b"x" * 1024 * 1024)
    from sharelift.engine.state import StateStore

    job = JobSpec(name="part-job", source="a", destination="b")
    manifest = Manifest(StateStore(f"sqlite:///{tmp_path}/state.db"), job.name, "run1")
    with open_source(SourceAddress(name="src", protocol="local", path=str(src))) as source:
        scan(source, job, manifest)
    assert [s.files for s in partition(manifest, 4, 10**12)] == [4, 4, 2]
    assert [s.files for s in partition(manifest, 1000, 3 * 1024 * 1024)] == [3, 3, 3, 1]


def test_a_file_deleted_after_the_scan_fails_alone_with_its_reason(env) -> None:  # type: ignore[no-untyped-def]
    from sharelift.engine.copier import run_subtask
    from sharelift.engine.state import StateStore
    from sharelift.storage import open_destination

    files, src, dst, work, _ = env
    job = JobSpec(name="local-job", source="src-local", destination="dst-local")
    victim = sorted(files)[0]
    state = StateStore(f"sqlite:///{work}/state.db")
    manifest = Manifest(state, job.name, "run1")
    with open_source(src) as source, open_destination(dst) as destination:
        scan(source, job, manifest)
        os.unlink(Path(src.path) / victim)
        (subtask,) = partition(manifest, 1000, 10**12)
        counts = run_subtask(job, "run1", subtask, manifest, source, destination, state)
    assert counts == {"copied": len(files) - 1, "failed": 1}
    (failed,) = list(state.iter_outcomes(job.name, "run1", status="failed"))
    assert failed["path"] == victim
    assert "not found" in failed["reason"]


def test_a_rerun_subtask_copies_nothing_twice(env) -> None:  # type: ignore[no-untyped-def]
    from sharelift.engine.copier import run_subtask
    from sharelift.engine.state import StateStore
    from sharelift.storage import open_destination

    files, src, dst, work, _ = env
    job = JobSpec(name="local-job", source="src-local", destination="dst-local")
    state = StateStore(f"sqlite:///{work}/state.db")
    manifest = Manifest(state, job.name, "run1")
    with open_source(src) as source, open_destination(dst) as destination:
        scan(source, job, manifest)
        (subtask,) = partition(manifest, 1000, 10**12)
        first = run_subtask(job, "run1", subtask, manifest, source, destination, state)
        second = run_subtask(job, "run1", subtask, manifest, source, destination, state)
    assert first == {"copied": len(files)}
    assert second == {"previously-done": len(files)}


def test_verify_turns_an_object_changed_after_its_copy_into_a_failed_file(env) -> None:  # type: ignore[no-untyped-def]
    from sharelift.engine.verify import verify

    files, _, _, _, dst_root = env
    with copied_subtask(env) as (job, destination, state):
        victim = sorted(files)[1]
        (dst_root / "to" / victim).write_bytes(b"truncated")
        checked = verify(job.name, "run1", destination, state)
        ok, bad = checked.verified, checked.mismatched
    assert (ok, bad) == (len(files) - 1, 1)
    (failed,) = list(state.iter_outcomes(job.name, "run1", status="failed"))
    assert failed["path"] == victim and "size differs" in failed["reason"]
    assert sum(1 for o in state.iter_outcomes(job.name, "run1") if o["verified"]) == len(files) - 1


def test_verify_heads_only_objects_the_listing_shows_changed(env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sharelift.engine.verify import verify

    files, _, _, _, dst_root = env
    with copied_subtask(env) as (job, destination, state):
        victim = sorted(files)[2]
        replacement = bytes(b ^ 0xFF for b in files[victim])  # same size, other bytes
        new = dst_root / "to" / (victim + ".new")
        new.write_bytes(replacement)
        new.rename(dst_root / "to" / victim)
        headed: list[str] = []
        real_head = destination.head
        monkeypatch.setattr(destination, "head", lambda k: headed.append(k) or real_head(k))
        checked = verify(job.name, "run1", destination, state)
        ok, bad = checked.verified, checked.mismatched
    assert (ok, bad) == (len(files) - 1, 1)
    assert headed == [victim]
    (failed,) = list(state.iter_outcomes(job.name, "run1", status="failed"))
    assert failed["path"] == victim and "CRC-64 differs" in failed["reason"]


def test_outcomes_are_recorded_only_after_the_destination_committed_their_bytes(
    env, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import contextlib

    from sharelift.engine import copier
    from sharelift.engine.state import StateStore
    from sharelift.storage import open_destination

    files, src, dst, work, _ = env
    job = JobSpec(name="local-job", source="src-local", destination="dst-local")
    state = StateStore(f"sqlite:///{work}/state.db")
    manifest = Manifest(state, job.name, "run1")
    events: list[str] = []
    monkeypatch.setattr(copier, "FLUSH_EVERY", 7)
    real_record = state.record
    monkeypatch.setattr(
        state, "record", lambda *a: events.append(f"record {len(list(a[2]))}") or real_record(*a)
    )
    with open_source(src) as source, open_destination(dst) as destination:
        real_batch = destination.batch

        @contextlib.contextmanager
        def batch():  # type: ignore[no-untyped-def]
            with real_batch() as commit:
                yield lambda: (events.append("commit"), commit())

        monkeypatch.setattr(destination, "batch", batch)
        scan(source, job, manifest)
        (subtask,) = partition(manifest, 1000, 10**12)
        counts = copier.run_subtask(job, "run1", subtask, manifest, source, destination, state)
    assert counts == {"copied": len(files)}
    records = [i for i, e in enumerate(events) if e.startswith("record")]
    assert len(records) >= len(files) // 7
    assert all(events[i - 1] == "commit" for i in records)


def test_a_state_database_from_before_the_etag_column_gets_it_added(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from sharelift.engine.state import StateStore

    url = f"sqlite:///{tmp_path}/old.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE sharelift_file_outcomes (job VARCHAR(63), run_id VARCHAR(250), "
                "path TEXT, object_key TEXT, subtask INTEGER, status VARCHAR(16), size BIGINT, "
                "mtime_ns BIGINT, crc64 VARCHAR(20), reason TEXT, started_at FLOAT, "
                "finished_at FLOAT, verified BOOLEAN, PRIMARY KEY (job, run_id, path))"
            )
        )
    engine.dispose()
    state = StateStore(url)
    columns = {c["name"] for c in sa.inspect(state.engine).get_columns("sharelift_file_outcomes")}
    assert "etag" in columns
    StateStore(url).close()  # a second opening finds it there and changes nothing


def test_verify_catches_an_object_rewritten_in_place_with_the_same_size(env) -> None:  # type: ignore[no-untyped-def]
    from sharelift.engine.verify import verify

    files, _, _, _, dst_root = env
    with copied_subtask(env) as (job, destination, state):
        victim = sorted(files)[3]
        with open(dst_root / "to" / victim, "r+b") as f:  # same inode, xattrs kept
            f.write(bytes(b ^ 0x55 for b in files[victim]))
        checked = verify(job.name, "run1", destination, state)
        ok, bad = checked.verified, checked.mismatched
    assert (ok, bad) == (len(files) - 1, 1)
    (failed,) = list(state.iter_outcomes(job.name, "run1", status="failed"))
    assert failed["path"] == victim and "CRC-64 differs" in failed["reason"]
