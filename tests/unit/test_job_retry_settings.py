"""The job's retry settings: checked with the field named, and what the copy then uses."""

from __future__ import annotations

import pytest

from sharelift.engine.jobs import JobSpec
from sharelift.errors import ConfigError
from sharelift.storage import RetryPolicy

JOB = {"name": "retry-settings", "source": "src", "destination": "dst"}


def test_by_default_a_request_tries_for_90_s_and_a_file_for_300_s() -> None:
    policy = JobSpec(**JOB).retry_policy
    assert (policy.request_time, policy.file_time) == (90.0, 300.0)
    assert (policy.first_wait, policy.max_wait) == (
        RetryPolicy().first_wait,
        RetryPolicy().max_wait,
    )


def test_a_job_sets_how_long_a_request_and_a_file_keep_trying() -> None:
    policy = JobSpec(**JOB, retry_request_seconds=5, retry_file_seconds=20).retry_policy
    assert (policy.request_time, policy.file_time) == (5.0, 20.0)


def test_a_file_budget_below_the_request_time_is_refused_naming_both_fields() -> None:
    with pytest.raises(ConfigError) as info:
        JobSpec(**JOB, retry_request_seconds=120, retry_file_seconds=60)
    assert info.value.field == "retry_file_seconds"
    assert "retry_request_seconds" in info.value.rule


@pytest.mark.parametrize("value", [-1, 86_401, 1.5, True, "90"])
def test_a_retry_time_outside_0_to_a_day_is_refused(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        JobSpec(**JOB, retry_request_seconds=value)  # type: ignore[arg-type]
    assert info.value.field == "retry_request_seconds"


def test_the_settings_survive_the_jobs_round_trip_through_xcom() -> None:
    job = JobSpec(**JOB, retry_request_seconds=7, retry_file_seconds=70)
    assert JobSpec.from_dict(job.to_dict()) == job


def test_a_runs_copy_uses_the_jobs_retry_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sharelift.addresses import DestinationAddress, SourceAddress
    from sharelift.engine import steps

    job = JobSpec(**JOB, retry_request_seconds=7, retry_file_seconds=70)
    src = SourceAddress(name="src", protocol="local", path=str(tmp_path))
    dst = DestinationAddress(name="dst", kind="local", path=str(tmp_path))
    with steps.open_run(
        job, "r1", src, dst, work_dir=str(tmp_path), state_url=f"sqlite:///{tmp_path}/s.db"
    ) as run:
        assert run.transfer.retry == job.retry_policy
