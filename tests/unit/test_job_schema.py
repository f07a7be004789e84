"""One schema: the trigger form's Params and the job-file checks come from one table, so they
have the same fields, accept and refuse the same values, and state the same rule."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.definitions.param import ParamValidationError

from sharelift.airflow.dag_factory import migration_params
from sharelift.airflow.job_files import ALLOWED_KEYS
from sharelift.airflow.job_schema import BY_NAME, FILE_FIELDS, FORM_FIELDS
from sharelift.errors import ConfigError

REFUSED: list[tuple[str, Any]] = [
    ("job_name", "Bad_Name"),
    ("source_conn_id", ""),
    ("source_path", ".."),
    ("source_path", "../outside"),
    ("source_path", "a//b"),
    ("destination_prefix", "../"),
    ("destination_prefix", "a/./"),
    ("destination_prefix", "/x/"),
    ("destination_prefix", "x"),
    ("migration_type", "weekly"),
    ("migration_interval_hours", 0),
    ("migration_interval_hours", 25),
    ("migration_times", 31),
    ("start_time", "yesterday"),
    ("subtask_file_count", 0),
    ("subtask_file_count", 1_000_001),
    ("subtask_file_size_mb", 0),
    ("subtask_file_size_mb", 1_000_000_000_000),
    ("estimated_files", -1),
    ("estimated_size_gb", -0.5),
    ("include", "*.pdf"),
    ("include", [1]),
    ("dry_run", "yes"),
    ("retry_request_seconds", -1),
    ("retry_file_seconds", 86_401),
]
ACCEPTED: list[tuple[str, Any]] = [
    ("source_path", "reports/2024"),
    ("destination_prefix", None),
    ("destination_prefix", ""),
    ("destination_prefix", "data/2024/"),
    ("migration_interval_hours", 24),
    ("migration_times", 30),
    ("start_time", "2024-01-31T08:00:00Z"),
    ("subtask_file_count", 1_000_000),
    ("subtask_file_size_mb", 10 * 1024 * 1024),
    ("estimated_size_gb", 1.5),
    ("include", ["*.pdf", "docs/**"]),
    ("retry_request_seconds", 0),
    ("retry_file_seconds", 3600),
]


@pytest.mark.parametrize(("name", "value"), REFUSED, ids=lambda v: str(v)[:20])
def test_the_form_and_a_job_file_refuse_the_same_value_with_the_same_rule(
    name: str, value: Any
) -> None:
    param = migration_params()[name]
    with pytest.raises(ParamValidationError):
        param.resolve(value)
    spec = BY_NAME[name]
    with pytest.raises(ConfigError) as info:
        spec.check_value(value)
    assert info.value.field == name
    assert info.value.rule.startswith(f"must be {spec.rule} (got ")
    assert f"Must be {spec.rule}." in param.description


@pytest.mark.parametrize(("name", "value"), ACCEPTED, ids=lambda v: str(v)[:20])
def test_the_form_and_a_job_file_accept_the_same_value(name: str, value: Any) -> None:
    assert migration_params()[name].resolve(value) == value
    assert BY_NAME[name].check_value(value) == value


def test_the_form_has_the_job_file_fields_plus_only_the_run_time_ones() -> None:
    form = set(migration_params())
    assert form == {spec.name for spec in FORM_FIELDS}
    assert {spec.name for spec in FILE_FIELDS} == ALLOWED_KEYS
    assert form - ALLOWED_KEYS == {"run_number", "retry_of"}
    assert ALLOWED_KEYS - form == {
        "description",
        "tags",
        "sync_period",
        "sync_start",
        "sync_no_overlap",
    }


def test_a_declared_jobs_form_fixes_its_name_and_addresses() -> None:
    defaults = {"job_name": "finance", "source_conn_id": "s", "destination_conn_id": "d"}
    params = migration_params(defaults, locked=True)
    with pytest.raises(ParamValidationError):
        params["source_conn_id"].resolve("other")
    assert params["source_conn_id"].resolve("s") == "s"


def test_sync_appears_in_the_form_only_for_a_sync_job() -> None:
    assert migration_params()["migration_type"].schema["enum"] == ["full", "incremental"]
    sync = migration_params({"migration_type": "sync"})
    assert sync["migration_type"].schema["enum"] == ["sync"]
