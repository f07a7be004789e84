"""A job with more subtasks than Airflow will map (``[core] max_map_length``) still runs,
and small subtasks share copy tasks: the copy tasks take groups of subtasks and work
through each group in order."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from sharelift.engine.report import REPORT_ROOT


def set_connection(conn_id: str, **fields: object) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)


@pytest.fixture
def twelve_files(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    src, dst = tmp_path / "src", tmp_path / "bucket"
    files = {f"d{i % 3}/f{i:02d}.txt": f"data {i}".encode() for i in range(12)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    dst.mkdir()
    set_connection("maps_src", conn_type="sharelift_local", extra={"path": str(src)})
    set_connection("maps_dst", conn_type="sharelift_local_bucket", extra={"path": str(dst)})
    return dst, files


def done_subtasks(job: str, run_id: str) -> int:
    """The run's subtasks, each recorded done (fails on one that is not)."""
    from sharelift.airflow.tasks import state_url
    from sharelift.engine.state import manifests, subtasks

    engine = sa.create_engine(state_url())
    with engine.connect() as conn:
        (ident,) = conn.execute(
            sa.select(manifests.c.id).where(manifests.c.job == job, manifests.c.run_id == run_id)
        ).one()
        done = conn.execute(
            sa.select(subtasks.c.subtask, subtasks.c.done_at).where(subtasks.c.manifest == ident)
        ).all()
    engine.dispose()
    assert all(at is not None for _, at in done)
    return len(done)


def test_twelve_subtasks_run_in_five_mapped_copy_tasks_when_airflow_maps_five(
    dagbag, twelve_files, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "5")
    dst, files = twelve_files
    dag = dagbag.get_dag("sharelift_migrate")
    dr = dag.test(
        run_conf={
            "job_name": "many-subtasks",
            "source_conn_id": "maps_src",
            "destination_conn_id": "maps_dst",
            "destination_prefix": "to/",
            "subtask_file_count": 1,
        }
    )
    assert dr.state == "success"
    for rel, data in files.items():
        assert (dst / "to" / rel).read_bytes() == data
    copies = [ti for ti in dr.get_task_instances() if ti.task_id == "copy"]
    assert sorted(ti.map_index for ti in copies) == [0, 1, 2, 3, 4]
    assert all(ti.state == "success" for ti in copies)
    assert done_subtasks("many-subtasks", dr.run_id) == 12
    (report,) = (dst / REPORT_ROOT / "many-subtasks").iterdir()
    completed = (report / "many-subtasks_completed_list.txt").read_text().splitlines()
    assert len(completed) == len(files)


def test_six_small_subtasks_run_in_two_copy_tasks_when_the_pool_has_two_slots(
    dagbag, twelve_files, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Small subtasks share copy tasks, one per slot of the copy pool (as ``sharelift
    airflow-setup`` records it): fewer task starts, the same work done."""
    monkeypatch.setenv("AIRFLOW_VAR_SHARELIFT_COPY_POOL_SLOTS", "2")
    dst, files = twelve_files
    dag = dagbag.get_dag("sharelift_migrate")
    dr = dag.test(
        run_conf={
            "job_name": "pool-groups",
            "source_conn_id": "maps_src",
            "destination_conn_id": "maps_dst",
            "destination_prefix": "to/",
            "subtask_file_count": 2,
        }
    )
    assert dr.state == "success"
    for rel, data in files.items():
        assert (dst / "to" / rel).read_bytes() == data
    copies = [ti for ti in dr.get_task_instances() if ti.task_id == "copy"]
    assert sorted(ti.map_index for ti in copies) == [0, 1]
    assert done_subtasks("pool-groups", dr.run_id) == 6
