"""Declared jobs: a YAML file per job becomes a DAG; a bad file is a clear import error."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharelift.airflow.job_files import JobFileError, load_all, load_job_file
from sharelift.errors import ConfigError

GOOD = """\
job_name: {name}
source_conn_id: src
destination_conn_id: dst
destination_prefix: data/
subtask_file_count: 10
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_a_valid_job_file_gives_the_params_of_its_dag(tmp_path: Path) -> None:
    data = load_job_file(write(tmp_path, "good-job", GOOD.format(name="good-job")))
    assert data["job_name"] == "good-job"
    assert data["subtask_file_count"] == 10


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD.format(name="Bad_Name"), "job_name"),
        (GOOD.format(name="good-job") + "colour: blue\n", "colour"),
        (GOOD.format(name="good-job").replace("data/", "/x/"), "destination_prefix"),
        (GOOD.format(name="good-job") + "start_time: yesterday\n", "start_time"),
        (GOOD.format(name="good-job").replace("10", "0"), "subtask_file_count"),
        ("job_name: good-job\n", "source_conn_id"),
        (GOOD.format(name="good-job").replace("data/", "../"), "destination_prefix"),
        (GOOD.format(name="good-job") + "source_path: ../outside\n", "source_path"),
        (GOOD.format(name="good-job") + "source_path: ..\n", "source_path"),
        (
            GOOD.format(name="good-job") + "subtask_file_size_mb: 1000000000000\n",
            "subtask_file_size_mb",
        ),
        (GOOD.format(name="good-job") + "migration_times: 31\n", "migration_times"),
    ],
    ids=[
        "name",
        "unknown-key",
        "prefix",
        "start-time",
        "file-count",
        "missing-source",
        "prefix-dot-dot",
        "source-path-dot-dot-outside",
        "source-path-dot-dot",
        "size-mb-over-the-form-bound",
        "migration-times",
    ],
)
def test_a_bad_job_file_names_the_file_and_the_field(tmp_path: Path, text: str, field: str) -> None:
    name = "Bad_Name" if "Bad_Name" in text else "good-job"
    with pytest.raises(JobFileError) as info:
        load_job_file(write(tmp_path, name, text))
    assert info.value.field == field
    assert f"{name}.yaml" in str(info.value)


def test_a_job_file_states_the_same_rule_as_the_trigger_form(tmp_path: Path) -> None:
    from sharelift.airflow.dag_factory import migration_params

    text = GOOD.format(name="good-job") + "subtask_file_size_mb: 1000000000000\n"
    with pytest.raises(JobFileError) as info:
        load_job_file(write(tmp_path, "good-job", text))
    rule = "an integer from 1 to 10,485,760"
    assert f"must be {rule}" in str(info.value)
    assert f"Must be {rule}." in migration_params()["subtask_file_size_mb"].description


def test_all_bad_files_are_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "one-job", "job_name: one-job\n")
    write(tmp_path, "two-job", GOOD.format(name="two-job") + "x: 1\n")
    with pytest.raises(ConfigError) as info:
        load_all(tmp_path)
    assert "one-job.yaml" in str(info.value) and "two-job.yaml" in str(info.value)


def test_the_demo_job_file_becomes_its_own_dag_with_its_name_fixed(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.get_dag("sharelift_job_demo_share")
    assert dag is not None
    assert dag.params.get_param("job_name").schema["enum"] == ["demo-share"]
    assert dag.params["subtask_file_count"] == 50
