"""Workers share no folder: a step finds what an earlier step left in the state database,
whatever worker (work folder) it runs on; and a copy task works through a group of
subtasks, skipping those an earlier try finished."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.engine import steps
from sharelift.engine.jobs import JobSpec
from sharelift.engine.partition import Subtask, group


def make_files(root: Path, n: int) -> dict[str, bytes]:
    files = {f"d{i % 4}/f{i:03d}.bin": os.urandom(50 + i) for i in range(n)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    else:
        yield request.getfixturevalue("postgres_database")


@pytest.fixture
def job_and_addresses(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    files = make_files(tmp_path / "src", 30)
    job = JobSpec(name="no-share", source="src-local", destination="dst-local", subtask_files=7)
    src = SourceAddress(name="src-local", protocol="local", path=str(tmp_path / "src"))
    dst = DestinationAddress(name="dst-local", kind="local", path=str(tmp_path / "dst"))
    return job, src, dst, files


def test_copy_verify_and_report_run_on_a_worker_whose_work_folder_is_empty(
    tmp_path: Path, state_url: str, job_and_addresses
) -> None:  # type: ignore[no-untyped-def]
    job, src, dst, files = job_and_addresses
    worker_a, worker_b = tmp_path / "worker-a", tmp_path / "worker-b"
    with steps.open_run(job, "r1", src, dst, work_dir=str(worker_a), state_url=state_url) as run:
        scanned = steps.scan(run)
        subtasks = steps.partition(run)
    assert len(subtasks) == 5
    shutil.rmtree(worker_a, ignore_errors=True)  # worker A is gone, and its disk with it

    with steps.open_run(job, "r1", src, dst, work_dir=str(worker_b), state_url=state_url) as run:
        for g in steps.group(subtasks, 2):
            steps.copy_group(run, g)
        verified = steps.verify(run)
        summary = steps.report(run, scanned.to_dict(), verified)
    assert summary["state"] == "Completed"
    assert (summary["files_copied"], verified["verified"]) == (len(files), len(files))
    for rel, data in files.items():
        assert (tmp_path / "dst" / rel).read_bytes() == data
    assert not worker_a.exists()
    # Worker B needed nothing on its disk (a local destination keeps no upload checkpoints).
    assert not worker_b.exists() or not any(p.is_file() for p in worker_b.rglob("*"))


def test_partition_without_a_finished_scan_says_so(tmp_path: Path, job_and_addresses) -> None:  # type: ignore[no-untyped-def]
    from sharelift.engine.manifest import ManifestMissing

    job, src, dst, _ = job_and_addresses
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with (
        steps.open_run(
            job, "never-scanned", src, dst, work_dir=str(tmp_path), state_url=url
        ) as run,
        pytest.raises(ManifestMissing, match="no finished scan"),
    ):
        steps.partition(run)


def test_a_retried_copy_task_skips_the_subtasks_its_first_try_finished(
    tmp_path: Path, job_and_addresses, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from sharelift.engine import copier

    job, src, dst, files = job_and_addresses
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with steps.open_run(job, "r1", src, dst, work_dir=str(tmp_path / "w1"), state_url=url) as run:
        steps.scan(run)
        (whole,) = steps.group(steps.partition(run), 1)
        real = copier.run_subtask

        def dies_at_the_third(job, run_id, subtask, *a, **kw):  # type: ignore[no-untyped-def]
            if subtask.index == 2:
                raise RuntimeError("worker lost")
            return real(job, run_id, subtask, *a, **kw)

        monkeypatch.setattr(copier, "run_subtask", dies_at_the_third)
        with pytest.raises(RuntimeError, match="worker lost"):
            steps.copy_group(run, whole)
        monkeypatch.setattr(copier, "run_subtask", real)
    first_two = 14  # 7 files per subtask

    with steps.open_run(job, "r1", src, dst, work_dir=str(tmp_path / "w2"), state_url=url) as run:
        counts = steps.copy_group(run, whole)
        assert all(s.done for s in run.manifest.subtasks())
    assert counts == {"previously-done": first_two, "copied": len(files) - first_two}


def test_groups_are_consecutive_subtasks_of_nearly_equal_count() -> None:
    subtasks = [Subtask(i, i * 10, i * 10 + 10, 10, 100) for i in range(12)]
    groups = group(subtasks, 5)
    assert [(g.first, g.stop) for g in groups] == [(0, 2), (2, 4), (4, 7), (7, 9), (9, 12)]
    assert sum(g.files for g in groups) == 120
    assert [(g.first, g.stop) for g in group(subtasks[:3], 5)] == [(0, 1), (1, 2), (2, 3)]
    assert group([], 5) == []
