"""The bodies of the DAG's three tasks: plan (check, scan, partition) -> copy (mapped) ->
close (verify, report, queue the next run, finish).

Each resolves what Airflow holds (params, connections, the state database's connection,
the work folder) into the engine's terms and calls the steps of ``sharelift.engine.steps``,
the same functions a run outside Airflow calls; it takes and returns small JSON-safe
dicts (XCom), and turns a failure the run must stop on into an Airflow exception. Steps
that always run one after the other share a task: every task costs a scheduler round, a
process start and a parse of the DAG file, which on a small run cost more than the steps. The
real output (manifest, subtasks, per-file outcomes) is in the state database, so each task
may run on any worker; the work folder holds only that worker's upload checkpoints. Every
task can run twice with the same result.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.airflow.job_params import job_from_params
from sharelift.airflow.state_connection import resolve_config
from sharelift.engine import steps
from sharelift.engine.jobs import JobSpec
from sharelift.engine.partition import Subtask, SubtaskGroup
from sharelift.engine.state import StateStore
from sharelift.errors import ShareliftError, scrub

log = logging.getLogger(__name__)

POOL_NAME = "sharelift_copy"
POOL_SLOTS = 20
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


def check_addresses(
    params: dict[str, Any], run_id: str
) -> tuple[JobSpec, SourceAddress, DestinationAddress]:
    """Validate the job and both addresses; fail fast ("Create Failed") with the cause."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        job = job_from_params(params)
        src, dst = _addresses(job, params.get("destination_prefix"))
        steps.check(src, dst)
    except ShareliftError as exc:
        state = StateStore(state_url())
        try:
            message = steps.record_create_failed(state, str(params.get("job_name")), run_id, exc)
        finally:
            state.close()
        raise AirflowFailException(f"Create Failed: {message}") from None
    return job, src, dst


@dataclass(frozen=True)
class Plan:
    """What ``plan_step`` hands on through XCom: the job as the later tasks read it (with
    the destination prefix the check normalised), the scan's totals for the report, and
    the groups of subtasks the copy task is mapped over."""

    job: dict[str, Any]
    scan_summary: dict[str, Any]
    groups: list[dict[str, Any]]


def plan_step(
    params: dict[str, Any],
    run_id: str,
    *,
    dag_id: str = "sharelift_migrate",
    backfill_window: tuple[Any, Any] | None = None,
) -> Plan:
    """Check, scan and partition: one task, because each task start costs a scheduler round,
    a process and a DAG parse, and these three always run one after the other. Each step
    still records what it records alone: Create Failed when the check fails (nothing else
    runs), Scanning, Scan Finished, Migrating, and "<step> failed: <cause>" when the scan or
    the partition raises."""
    job, src, dst = check_addresses(params, run_id)
    job_dict = job.to_dict()
    job_dict["destination_prefix"] = dst.prefix
    spec = {"dag_id": dag_id, "params": params}
    with steps.open_run(job, run_id, src, dst, work_dir=work_dir(), state_url=state_url()) as run:
        with steps.ends_run_on_failure(run, "scan"):
            scanned = steps.scan(run, spec=spec, backfill_window=backfill_window)
        with steps.ends_run_on_failure(run, "partition"):
            subtasks = steps.partition(run)
            groups = steps.group(subtasks, copy_task_count(subtasks))
    return Plan(job_dict, scanned.to_dict(), [g.to_dict() for g in groups])


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


# A copy task is worth its start (a scheduler round, a process, a parse of the DAG file:
# about a second of a worker's CPU, more on a busy one) when it copies for much longer than
# that. Below these amounts, a run's subtasks share copy tasks, down to one per slot of
# the copy pool; above them, every subtask keeps a task of its own up to
# ``copy_tasks()``, so that a large job spreads over many workers and a retry repeats
# little.
GROUP_FILES = 10_000
GROUP_BYTES = 4 * 1024**3
SLOTS_VARIABLE = "sharelift_copy_pool_slots"


def copy_pool_slots() -> int:
    """The slots of the copy pool, as ``sharelift airflow-setup`` recorded them (Airflow
    Variable ``sharelift_copy_pool_slots``: a task cannot read a pool); a run's limit of
    20 when it did not."""
    from airflow.sdk import Variable

    try:
        value = Variable.get(SLOTS_VARIABLE, default=None)
    except Exception:  # noqa: BLE001 - the Variable is an optimisation, never a reason to fail
        return POOL_SLOTS
    text = str(value or "").strip()
    return min(POOL_SLOTS, int(text)) if text.isdigit() and int(text) >= 1 else POOL_SLOTS


def copy_task_count(subtasks: list[Subtask]) -> int:
    """How many mapped copy tasks the run's subtasks go into: one each, except that small
    subtasks (together less than a copy task is worth, see ``GROUP_FILES``) share tasks,
    never fewer than the copy pool can run at once; at most ``copy_tasks()``."""
    files = sum(s.files for s in subtasks)
    size = sum(s.bytes for s in subtasks)
    worth = max(-(-files // GROUP_FILES), -(-size // GROUP_BYTES))
    return max(1, min(len(subtasks), copy_tasks(), max(copy_pool_slots(), worth)))


def copy_step(job_dict: dict[str, Any], run_id: str, group: dict[str, Any]) -> dict[str, int]:
    with _run(job_dict, run_id) as run:
        return dict(steps.copy_group(run, SubtaskGroup.from_dict(group)))


def close_step(
    params: dict[str, Any],
    run_id: str,
    *,
    dag_id: str,
    planned: tuple[dict[str, Any] | None, dict[str, Any] | None] | None,
    failed_tasks: Callable[[], list[str]],
) -> dict[str, Any]:
    """Verify, report, queue the next run, finish: one task, for the same reason as
    ``plan_step``. Runs whatever failed before it.

    ``planned`` is the job and the scan's totals from ``plan`` (None when it did not finish:
    then nothing was copied, and verify and report do not run; the cause is recorded with
    the run). The next run of an incremental job is queued before the verdict, so that it
    is queued even when this run fails. Fails (the Airflow run fails) when any file failed,
    with the recorded cause when there is no report, or when the next run could not be
    queued.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from sharelift.airflow.next_run import queue_next_incremental_run

    job_dict, scan_summary = planned or (None, None)
    report_result = None
    if job_dict is None:
        log.info(
            "verify and report skipped: plan did not finish (Create Failed, or the scan "
            "or the partition failed), so nothing was copied"
        )
    else:
        report_result = _verify_and_report(job_dict, run_id, scan_summary)
    not_queued = None
    try:
        queue_next_incremental_run(dag_id, params, log)
    except Exception as exc:  # noqa: BLE001 - the run's verdict comes first; said below
        log.exception("the next run could not be queued")
        not_queued = f"the next run could not be queued: {scrub(str(exc))}"
    failure = verdict(
        report_result,
        job_name=params.get("job_name"),
        run_id=run_id,
        failed_tasks=None if report_result else failed_tasks(),
    )
    if failure or not_queued:
        raise AirflowFailException("; ".join(m for m in (failure, not_queued) if m))
    return report_result or {}


def _verify_and_report(
    job_dict: dict[str, Any], run_id: str, scan_summary: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The report's XCom summary, or None when verify or report did not run or failed: a
    run an earlier step ended is left as it is; a step that fails records the run Failed
    with "<step> failed: <cause>" (a report the bucket refuses: "report could not be
    written: ..."), which the verdict then reports."""
    from sharelift.storage.retrying import describe

    step = "verify"
    try:
        with _run(job_dict, run_id) as run:
            recorded = steps.ended(run)
            if recorded is not None:
                log.info(
                    "verify and report skipped: the run has ended %s: %s",
                    recorded["state"],
                    recorded.get("message") or "",
                )
                return None
            with steps.ends_run_on_failure(run, "verify"):
                verified = steps.verify(run)
            step = "report"
            with steps.ends_run_on_failure(run, "report"):
                summary = steps.report(run, scan_summary, verified)
    except steps.ReportNotWritten as exc:
        log.error("%s", exc)  # recorded with the run by the report step
        return None
    except Exception as exc:  # noqa: BLE001 - recorded with the run; the verdict says it
        log.exception("%s failed", step)
        # A step that raised has already recorded its cause (the first cause stands); this
        # records what failed before it could (the run's addresses could not be opened).
        _record_failed(str(job_dict.get("name")), run_id, f"{step} failed: {describe(exc)}")
        return None
    return {k: summary[k] for k in REPORT_XCOM_KEYS}


def _record_failed(job_name: str, run_id: str, cause: str) -> None:
    state = StateStore(state_url())
    try:
        steps.record_failed(state, job_name, run_id, cause)
    finally:
        state.close()


def record_failed_run(context: Any) -> None:
    """The DAG's ``on_failure_callback``: the safety net when ``close`` could not run (the
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


def verdict(
    report_result: dict[str, Any] | None,
    *,
    job_name: str | None = None,
    run_id: str | None = None,
    failed_tasks: list[str] | None = None,
) -> str | None:
    """Why the run failed (``steps.finish``), or None when it did not.

    Without a report, the run's recorded state holds the cause; a run still recorded in a
    step's state (a task died before it could record anything: a killed worker) is ended
    here, Failed, naming the tasks that failed.
    """
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
    return steps.finish(report_result, recorded)
