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
from sharelift.engine.jobs import (
    DEFAULT_RETRY_FILE_SECONDS,
    DEFAULT_RETRY_REQUEST_SECONDS,
    DEFAULT_SUBTASK_BYTES,
    JobSpec,
)
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
        retry_request_seconds=_int_param(
            params, "retry_request_seconds", DEFAULT_RETRY_REQUEST_SECONDS
        ),
        retry_file_seconds=_int_param(params, "retry_file_seconds", DEFAULT_RETRY_FILE_SECONDS),
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
    with _run(job_dict, run_id) as run, steps.ends_run_on_failure(run, "scan"):
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
    with _run(job_dict, run_id) as run, steps.ends_run_on_failure(run, "partition"):
        subtasks = steps.partition(run)
    return [g.to_dict() for g in steps.group(subtasks, copy_tasks())]


def copy_step(job_dict: dict[str, Any], run_id: str, group: dict[str, Any]) -> dict[str, int]:
    with _run(job_dict, run_id) as run:
        return dict(steps.copy_group(run, SubtaskGroup.from_dict(group)))


def _skip(why: str) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    raise AirflowSkipException(why)


def _skip_when_ended(run: steps.RunContext) -> None:
    recorded = steps.ended(run)
    if recorded is not None:
        _skip(f"the run has ended {recorded['state']}: {recorded.get('message') or ''}".strip())


def verify_step(
    job_dict: dict[str, Any] | None, run_id: str, subtasks: list[Any] | None = None
) -> dict[str, int]:
    """Skips (not fails) when the run never got to copying: Create Failed, or the scan or
    the partition failed; their cause is recorded with the run and ``finish`` reports it."""
    if job_dict is None:
        _skip("the run did not start (Create Failed): nothing to verify")
    assert job_dict is not None
    if subtasks is None:
        _skip("the scan or the partition did not finish: nothing was copied")
    with _run(job_dict, run_id) as run:
        _skip_when_ended(run)
        with steps.ends_run_on_failure(run, "verify"):
            return steps.verify(run)


def report_step(
    job_dict: dict[str, Any] | None,
    run_id: str,
    scan_summary: dict[str, Any] | None,
    verify_result: dict[str, int] | None,
) -> dict[str, Any]:
    """Skips like ``verify_step``; a report the bucket refuses fails the task at once
    (the run is recorded Failed with the cause; ``sharelift report`` stores it later)."""
    from airflow.sdk.exceptions import AirflowFailException

    if job_dict is None:
        _skip("the run did not start (Create Failed): nothing to report")
    assert job_dict is not None
    if scan_summary is None:
        _skip("the scan did not finish: there is no list of files to report")
    with _run(job_dict, run_id) as run:
        _skip_when_ended(run)
        try:
            with steps.ends_run_on_failure(run, "report"):
                summary = steps.report(run, scan_summary, verify_result)
        except steps.ReportNotWritten as exc:
            raise AirflowFailException(str(exc)) from None
    return {k: summary[k] for k in REPORT_XCOM_KEYS}


def record_failed_run(context: Any) -> None:
    """The DAG's ``on_failure_callback``: the safety net when ``finish`` could not run (the
    run was marked failed by hand, its tasks were killed): a run recorded in a step's state
    ends Failed. A run already ended keeps its own state and cause."""
    import logging

    log = logging.getLogger("sharelift")
    try:
        params = context.get("params") or {}
        job_name, run_id = params.get("job_name"), context.get("run_id")
        if not job_name or not run_id:
            return
        state = StateStore(state_url())
        try:
            reason = context.get("reason") or "the Airflow run failed"
            steps.record_failed(
                state, str(job_name), str(run_id), f"the run did not finish: {reason}"
            )
        finally:
            state.close()
    except Exception:  # noqa: BLE001 - a callback must not fail the scheduler's work
        log.exception("could not record the failed run")


def finish_step(
    report_result: dict[str, Any] | None,
    *,
    job_name: str | None = None,
    run_id: str | None = None,
    failed_tasks: list[str] | None = None,
) -> dict[str, Any]:
    """The run's verdict as the task's outcome: failed when ``steps.finish`` says why.

    Without a report, the run's recorded state holds the cause; a run still recorded in a
    step's state (a task died before it could record anything: a killed worker) is ended
    here, Failed, naming the tasks that failed.
    """
    from airflow.sdk.exceptions import AirflowFailException

    recorded = None
    if not report_result and job_name and run_id:
        state = StateStore(state_url())
        try:
            recorded = state.get_run(job_name[:63], run_id)
            if recorded is None or recorded.get("state") not in steps.TERMINAL_STATES:
                tasks = ", ".join(failed_tasks or []) or "unknown"
                steps.record_failed(
                    state,
                    job_name,
                    run_id,
                    f"the run did not finish: task(s) {tasks} failed or their worker died "
                    "before recording a cause (see their logs)",
                )
                recorded = state.get_run(job_name[:63], run_id)
        finally:
            state.close()
    failure = steps.finish(report_result, recorded)
    if failure is not None:
        raise AirflowFailException(failure)
    return report_result or {}
