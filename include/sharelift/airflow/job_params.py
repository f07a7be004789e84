"""A run's Params (the trigger form's or a job file's settings) as a ``JobSpec``.

Its own module because the task bodies and the queueing of the next incremental run both
need it, and the task bodies also queue that run.
"""

from __future__ import annotations

from typing import Any

from sharelift.engine.jobs import (
    DEFAULT_RETRY_FILE_SECONDS,
    DEFAULT_RETRY_REQUEST_SECONDS,
    DEFAULT_SUBTASK_BYTES,
    JobSpec,
)

MIB = 1024 * 1024


def _int_param(params: dict[str, Any], key: str, default: int) -> int:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        from sharelift.errors import ConfigError

        raise ConfigError(key, f"must be an integer (got {value!r})")
    return value


def job_from_params(params: dict[str, Any]) -> JobSpec:
    start = params.get("start_time") or "All"
    size_mb = _int_param(params, "subtask_file_size_mb", DEFAULT_SUBTASK_BYTES // MIB)
    est_gb = params.get("estimated_size_gb")
    return JobSpec(
        name=params["job_name"],
        source=params["source_conn_id"],
        destination=params["destination_conn_id"],
        source_path=params.get("source_path") or "",
        migration_type=params.get("migration_type") or "full",
        start_time=None if start == "All" else start,  # type: ignore[arg-type]
        subtask_files=_int_param(params, "subtask_file_count", 1000),
        subtask_bytes=size_mb * MIB,
        include=tuple(params.get("include") or ()),
        exclude=tuple(params.get("exclude") or ()),
        dry_run=bool(params.get("dry_run")),
        estimated_files=params.get("estimated_files"),
        estimated_bytes=int(est_gb * 1024**3) if est_gb else None,
        interval_hours=_int_param(params, "migration_interval_hours", 1),
        migration_times=_int_param(params, "migration_times", 1),
        run_number=_int_param(params, "run_number", 1),
        retry_of=params.get("retry_of") or None,
        retry_request_seconds=_int_param(
            params, "retry_request_seconds", DEFAULT_RETRY_REQUEST_SECONDS
        ),
        retry_file_seconds=_int_param(params, "retry_file_seconds", DEFAULT_RETRY_FILE_SECONDS),
    )
