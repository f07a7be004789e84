"""A full migration through ``dag.test()``: local folder -> local bucket folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sharelift.engine.report import REPORT_ROOT


def set_connection(conn_id: str, **fields: object) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)


@pytest.fixture
def local_job(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    src, dst = tmp_path / "src", tmp_path / "bucket"
    files = {f"dir {i % 2}/f#{i}.txt": f"data {i}".encode() for i in range(12)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    dst.mkdir()
    set_connection("dag_src", conn_type="sharelift_local", extra={"path": str(src)})
    set_connection("dag_dst", conn_type="sharelift_local_bucket", extra={"path": str(dst)})
    return src, dst, files


def run(dagbag, **conf: object):  # type: ignore[no-untyped-def]
    dag = dagbag.get_dag("sharelift_migrate")
    params = {
        "job_name": "dag-local",
        "source_conn_id": "dag_src",
        "destination_conn_id": "dag_dst",
        "destination_prefix": "to/",
        "subtask_file_count": 5,
    }
    params.update(conf)
    return dag.test(run_conf=params)


def test_full_migration_copies_every_file_and_writes_the_report(dagbag, local_job) -> None:  # type: ignore[no-untyped-def]
    src, dst, files = local_job
    dr = run(dagbag)
    assert dr.state == "success"
    for rel, data in files.items():
        assert (dst / "to" / rel).read_bytes() == data
    reports = list((dst / REPORT_ROOT / "dag-local").iterdir())
    assert len(reports) == 1
    completed = (reports[0] / "dag-local_completed_list.txt").read_text().splitlines()
    assert len(completed) == len(files)


def test_bad_job_name_is_rejected_naming_the_field(dagbag, local_job) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="job_name"):
        run(dagbag, job_name="Bad_Name")


def test_an_unknown_connection_fails_at_the_first_task(dagbag, local_job) -> None:  # type: ignore[no-untyped-def]
    src, dst, _ = local_job
    dr = run(dagbag, source_conn_id="no_such_conn")
    assert dr.state == "failed"
    assert not (dst / "to").exists()


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("migration_times", 31),
        ("migration_interval_hours", 0),
        ("migration_interval_hours", 25),
        ("subtask_file_count", 0),
        ("destination_prefix", "/x/"),
        ("start_time", "yesterday"),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_field(
    dagbag, local_job, param, value
) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.definitions.param import ParamValidationError

    src, dst, _ = local_job
    with pytest.raises(ParamValidationError, match=param):
        run(dagbag, **{param: value})
    assert not (dst / "to").exists()
