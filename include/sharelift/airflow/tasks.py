"""The bodies of the DAG's tasks: check -> scan -> partition -> copy -> verify -> report.

Each resolves what Airflow holds (params, connections, the state database's connection,
the work folder) into the engine's terms and calls one step of ``sharelift.engine.steps``,
the same functions a run outside Airflow calls; it takes and returns small JSON-safe
dicts (XCom), and turns a failure the run must stop on into an Airflow exception. The
real output (manifest, subtasks, per-file outcomes) is in the state database, so each task
may run on any worker; the work folder holds only that worker's upload checkpoints. Every
task can run twice with the same result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.airflow.state_connection import resolve_config
from sharelift.engine import steps
from sharelift.engine.jobs import DEFAULT_SUBTASK_BYTES, JobSpec
from sharelift.engine.partition import SubtaskGroup
from sharelift.engine.state import StateStore
from sharelift.errors import ShareliftError

POOL_NAME = "sharelift_copy"
POOL_SLOTS = 20
MIB = 1024 * 1024
# What the report task hands on through XCom (the whole summary is in the bucket).
REPORT_XCOM_KEYS = (
    "state",
    "files_copied",
    "files_skipped",
    "files_failed",
    "bytes_copied",
    "report_folder",
)


def work_dir() -> str:
    """Where this worker keeps its upload checkpoints (``sharelift.config``: the same rule everywhere)."""
    return resolve_config().work_dir


def state_url() -> str:
    """The state database (``sharelift.config``: the same rule as the CLI and the UI)."""
    return resolve_config().state_url


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
    )


def _addresses(job: JobSpec, prefix: str | None) -> tuple[SourceAddress, DestinationAddress]:
    from airflow.sdk import BaseHook

    from sharelift.airflow import connections
    from sharelift.errors import ConfigError

    try:
        src_conn = BaseHook.get_connection(job.source)
    except Exception:  # noqa: BLE001 - Airflow raises its own not-found types
        raise ConfigError("source_conn_id", f"no Airflow connection named {job.source!r}") from None
    try:
        dst_conn = BaseHook.get_connection(job.destination)
    except Exception:  # noqa: BLE001
        raise ConfigError(
            "destination_conn_id", f"no Airflow connection named {job.destination!r}"
        ) from None
    return (
        connections.source_address(src_conn, job.source_path),
        connections.destination_address(dst_conn, prefix),
    )


@contextlib.contextmanager
def _run(job_dict: dict[str, Any], run_id: str) -> Iterator[steps.RunContext]:
    """The step context of this task: the job from XCom, its addresses from connections."""
    job = JobSpec.from_dict(job_dict)
    src, dst = _addresses(job, job_dict.get("destination_prefix"))
    with steps.open_run(job, run_id, src, dst, work_dir=work_dir(), state_url=state_url()) as run:
        yield run


def check_addresses(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Validate the job and both addresses; fail fast ("Create Failed") with the cause."""
    from airflow.sdk.exceptions import AirflowFailException

    state = StateStore(state_url())
    try:
        job = job_from_params(params)
        src, dst = _addresses(job, params.get("destination_prefix"))
        steps.check(src, dst)
    except ShareliftError as exc:
        message = steps.record_create_failed(state, str(params.get("job_name")), run_id, exc)
        raise AirflowFailException(f"Create Failed: {message}") from None
    finally:
        state.close()
    out = job.to_dict()
    out["destination_prefix"] = dst.prefix
    return out


def scan_step(
    job_dict: dict[str, Any],
    run_id: str,
    *,
    dag_id: str = "sharelift_migrate",
    params: dict[str, Any] | None = None,
    backfill_window: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    spec = {"dag_id": dag_id, "params": params or {}}
    with _run(job_dict, run_id) as run:
        return steps.scan(run, spec=spec, backfill_window=backfill_window).to_dict()


def copy_tasks() -> int:
    """How many mapped copy tasks a run may have: Airflow's ``[core] max_map_length`` (it
    refuses to map more), or ``SHARELIFT_MAX_COPY_TASKS`` when that is smaller."""
    import os

    from airflow.configuration import conf

    from sharelift.errors import ConfigError

    limit = conf.getint("core", "max_map_length", fallback=1024)
    cap = os.environ.get("SHARELIFT_MAX_COPY_TASKS", "").strip()
    if cap:
        if not cap.isdigit() or int(cap) < 1:
            raise ConfigError(
                "SHARELIFT_MAX_COPY_TASKS", f"must be a whole number of at least 1 (got {cap!r})"
            )
        limit = min(limit, int(cap))
    return max(1, limit)


def partition_step(job_dict: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """The subtasks, in at most ``copy_tasks()`` groups: one mapped copy task each."""
    with _run(job_dict, run_id) as run:
        subtasks = steps.partition(run)
    return [g.to_dict() for g in steps.group(subtasks, copy_tasks())]


def copy_step(job_dict: dict[str, Any], run_id: str, group: dict[str, Any]) -> dict[str, int]:
    with _run(job_dict, run_id) as run:
        return dict(steps.copy_group(run, SubtaskGroup.from_dict(group)))


def verify_step(job_dict: dict[str, Any], run_id: str) -> dict[str, int]:
    with _run(job_dict, run_id) as run:
        return steps.verify(run)


def report_step(
    job_dict: dict[str, Any],
    run_id: str,
    scan_summary: dict[str, Any] | None,
    verify_result: dict[str, int] | None,
) -> dict[str, Any]:
    with _run(job_dict, run_id) as run:
        summary = steps.report(run, scan_summary, verify_result)
    return {k: summary[k] for k in REPORT_XCOM_KEYS}


def finish_step(report_result: dict[str, Any] | None) -> dict[str, Any]:
    """The run's verdict as the task's outcome: failed when ``steps.finish`` says why."""
    from airflow.sdk.exceptions import AirflowFailException

    failure = steps.finish(report_result)
    if failure is not None:
        raise AirflowFailException(failure)
    return report_result or {}
