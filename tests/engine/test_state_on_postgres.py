"""The state database on PostgreSQL: a whole run, then an idempotent re-run."""

from __future__ import annotations

import os
from pathlib import Path

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.engine.jobs import JobSpec
from sharelift.engine.runner import run_job


def test_a_run_and_its_rerun_record_their_outcomes_in_postgresql(postgres, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sharelift.engine.state import StateStore

    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(30):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}.bin").write_bytes(os.urandom(100 + i))
    dst.mkdir()
    job = JobSpec(name="pg-job", source="s", destination="d", subtask_files=7)
    src_a = SourceAddress(name="src", protocol="local", path=str(src))
    dst_a = DestinationAddress(name="dst", kind="local", path=str(dst))
    first = run_job(
        job, src_a, dst_a, work_dir=str(tmp_path / "w"), state_url=postgres.url, run_id="r1"
    )
    again = run_job(
        job, src_a, dst_a, work_dir=str(tmp_path / "w"), state_url=postgres.url, run_id="r2"
    )
    assert (first["files_copied"], first["subtasks"]) == (30, 5)
    assert (again["files_copied"], again["files_skipped"]) == (0, 30)
    store = StateStore(postgres.url)
    assert [r["state"] for r in store.list_runs("pg-job")] == ["Completed", "Completed"]
    assert max(int(o["crc64"]) for o in store.iter_outcomes("pg-job", "r1")) > 0
    store.close()
