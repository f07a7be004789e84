"""The bodies of the DAG's tasks: check -> scan -> partition -> copy -> verify -> report.

Each takes and returns small JSON-safe dicts (XCom), opens what it needs from Airflow
connections at run time, and leaves its real output (manifest, per-file outcomes) in the
shared work folder and the state database. Every task can run twice with the same result.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from sharelift.airflow.state_connection import resolve_config
from sharelift.engine.jobs import DEFAULT_SUBTASK_BYTES, JobSpec
from sharelift.engine.runner import RunPaths
from sharelift.engine.state import StateStore
from sharelift.errors import SharelIftError, scrub

log = logging.getLogger("sharelift")

POOL_NAME = "sharelift_copy"
POOL_SLOTS = 20
MIB = 1024 * 1024


def work_dir() -> str:
    """Where manifests and checkpoints live (``sharelift.config``: the same rule everywhere)."""
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


def _addresses(job: JobSpec, prefix: str | None) -> tuple[Any, Any]:
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


def check_addresses(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Validate the job and both addresses; fail fast ("Create Failed") with the cause."""
    from airflow.sdk.exceptions import AirflowFailException

    from sharelift.storage import open_destination, open_source

    state = StateStore(state_url())
    job_name = str(params.get("job_name"))
    try:
        job = job_from_params(params)
        src, dst = _addresses(job, params.get("destination_prefix"))
        with open_source(src) as source:
            source.check()
        with open_destination(dst) as destination:
            destination.check()
    except SharelIftError as exc:
        message = scrub(str(exc))
        try:
            state.upsert_run(
                job_name[:63],
                run_id,
                state="Create Failed",
                message=message,
                finished_at=time.time(),
            )
        except Exception:  # noqa: BLE001 - recording must not hide the real cause
            log.exception("could not record Create Failed")
        raise AirflowFailException(f"Create Failed: {message}") from None
    finally:
        state.close()
    log.info("addresses are Normal: %s -> %s", src.display_url(), dst.display_url())
    out = job.to_dict()
    out["destination_prefix"] = dst.prefix
    return out


def _open(job_dict: dict[str, Any]) -> tuple[JobSpec, Any, Any]:
    job = JobSpec.from_dict(job_dict)
    src, dst = _addresses(job, job_dict.get("destination_prefix"))
    return job, src, dst


def scan_step(
    job_dict: dict[str, Any],
    run_id: str,
    *,
    dag_id: str = "sharelift_migrate",
    params: dict[str, Any] | None = None,
    backfill_window: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Scan the source into the manifest.

    ``backfill_window`` (a backfill run's data interval) narrows the scan to the files
    modified in that past window: a backfill re-migrates the changes of the window, and the
    overwrite rule keeps it from copying anything twice.
    """
    import json

    from sharelift.engine.scan import scan
    from sharelift.storage import open_source

    job, src, _ = _open(job_dict)
    paths = RunPaths(work_dir(), job.name, run_id)
    state = StateStore(state_url())
    spec = {"dag_id": dag_id, "params": params or {}, "job": job.to_dict()}
    state.upsert_run(
        job.name,
        run_id,
        migration_type=job.migration_type,
        state="Scanning",
        run_number=job.run_number,
        retry_of=job.retry_of,
        spec=json.dumps(spec, sort_keys=True, default=str),
    )

    def progress(files: int, size: int) -> None:
        log.info("Scanning: %d files, %.1f MB so far", files, size / 1e6)
        state.upsert_run(job.name, run_id, files_scanned=files, bytes_scanned=size)

    with open_source(src) as source:
        if job.retry_of:
            from sharelift.engine.retry import build_retry_manifest

            log.info("Retry of run %s: exactly the files of its error list", job.retry_of)
            result = build_retry_manifest(source, state, job.name, job.retry_of, paths.manifest)
        else:
            from sharelift.engine.windows import window_for

            window = window_for(state, job, run_id, override=backfill_window)
            log.info(
                "Run %d of %s (%s): %s",
                job.run_number,
                job.name,
                job.migration_type,
                window.describe(),
            )
            result = scan(
                source,
                job,
                paths.manifest,
                newer_than_ns=window.newer_than_ns,
                not_newer_than_ns=window.not_newer_than_ns,
                progress=progress,
            )
    state.record_scan(job.name, run_id, result)
    state.close()
    log.info(
        "Scan Finished: %d files to copy (%.1f MB); %d seen; skipped %s; left out %s; errors %d",
        result.files_to_copy,
        result.bytes_to_copy / 1e6,
        result.files_seen,
        dict(result.skipped),
        dict(result.left_out),
        result.errors,
    )
    if job.estimated_files is not None or job.estimated_bytes is not None:
        log.info(
            "operator's estimate: %s files, %s bytes; scanned: %d files, %d bytes",
            job.estimated_files,
            job.estimated_bytes,
            result.files_to_copy,
            result.bytes_to_copy,
        )
    return result.to_dict()


def partition_step(job_dict: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    from sharelift.engine.partition import partition

    job = JobSpec.from_dict(job_dict)
    paths = RunPaths(work_dir(), job.name, run_id)
    subtasks = partition(paths.manifest, job.subtask_files, job.subtask_bytes)
    state = StateStore(state_url())
    state.upsert_run(job.name, run_id, state="Migrating", subtasks=len(subtasks))
    state.close()
    log.info(
        "%d subtasks (at most %d files or %d MiB each)",
        len(subtasks),
        job.subtask_files,
        job.subtask_bytes // MIB,
    )
    return [s.to_dict() for s in subtasks]


def copy_step(job_dict: dict[str, Any], run_id: str, subtask: dict[str, Any]) -> dict[str, int]:
    from sharelift.engine.copier import run_subtask
    from sharelift.engine.flow_control import open_throttle
    from sharelift.engine.partition import Subtask
    from sharelift.storage import TransferConfig, open_destination, open_source

    job, src, dst = _open(job_dict)
    st = Subtask.from_dict(subtask)
    paths = RunPaths(work_dir(), job.name, run_id)
    state = StateStore(state_url())
    started = time.monotonic()
    transfer = TransferConfig(checkpoint_dir=paths.checkpoints)
    # Flow control (docs/flow-control.md): this task's share of the job's live limit, via the state DB.
    throttle = open_throttle(state, job.name, run_id, st.index)
    try:
        with open_source(src) as source, open_destination(dst, transfer=transfer) as destination:
            counts = run_subtask(
                job, run_id, st, paths.manifest, source, destination, state, throttle=throttle
            )
    finally:
        throttle.close()
    if throttle.waited:
        log.info("flow control: waited %.1f s for the job's bandwidth limit", throttle.waited)
    state.close()
    seconds = time.monotonic() - started
    log.info(
        "subtask %d: %s in %.2f s (%d files, %.1f MB planned)",
        st.index,
        dict(counts),
        seconds,
        st.files,
        st.bytes / 1e6,
    )
    return dict(counts)


def verify_step(job_dict: dict[str, Any], run_id: str) -> dict[str, int]:
    from sharelift.engine.verify import verify
    from sharelift.storage import open_destination

    job, _, dst = _open(job_dict)
    state = StateStore(state_url())
    with open_destination(dst) as destination:
        ok, bad = verify(job.name, run_id, destination, state)
    state.close()
    log.info("verified %d objects by size and CRC-64; %d differ", ok, bad)
    return {"verified": ok, "mismatched": bad}


def report_step(
    job_dict: dict[str, Any],
    run_id: str,
    scan_summary: dict[str, Any] | None,
    verify_result: dict[str, int] | None,
) -> dict[str, Any]:

    from sharelift.engine.report import format_summary, write_report
    from sharelift.storage import open_destination, open_source

    job, src, dst = _open(job_dict)
    paths = RunPaths(work_dir(), job.name, run_id)
    state = StateStore(state_url())
    extra = {
        "verified": (verify_result or {}).get("verified"),
        "verify_mismatches": (verify_result or {}).get("mismatched"),
        "dry_run": job.dry_run,
    }
    with open_source(src) as source, open_destination(dst) as destination:
        summary = write_report(
            job.name,
            run_id,
            paths.manifest,
            source,
            destination,
            state,
            scan_summary=scan_summary,
            extra=extra,
        )
    state.upsert_run(job.name, run_id, state=summary["state"], finished_at=time.time())
    state.close()
    for line in format_summary(summary).splitlines():
        log.info("%s", line)
    return {
        k: summary[k]
        for k in (
            "state",
            "files_copied",
            "files_skipped",
            "files_failed",
            "bytes_copied",
            "report_folder",
        )
    }


def finish_step(report_result: dict[str, Any] | None) -> dict[str, Any]:
    """The run's verdict (docs/states.md): Failed when any file failed, Completed otherwise.

    A task of its own, last in the run, so that the report is written and the next run of
    an incremental job is queued before the run is marked failed.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from sharelift.engine.states import run_state_mapping

    if not report_result:
        raise AirflowFailException(
            "no report: an earlier step failed (see check_addresses, scan or report)"
        )
    log.info(
        "%s (Airflow run state: %s)",
        report_result["state"],
        run_state_mapping()[report_result["state"]],
    )
    if report_result["state"] == "Failed":
        raise AirflowFailException(
            f"{report_result['files_failed']} file(s) failed; see the error list in {report_result['report_folder']}"
        )
    return report_result


def hour_seconds() -> float:
    """Seconds in an "hour" of the incremental interval: 3600, or less for tests and demos
    (``SHARELIFT_HOUR_SECONDS``), so schedules can be proven with a controlled clock."""
    return float(os.environ.get("SHARELIFT_HOUR_SECONDS", "3600"))


def next_incremental_run(params: dict[str, Any]) -> tuple[dict[str, Any], float] | None:
    """The conf and start delay (seconds) of the next run of an incremental job, or None.

    Called at the END of a run: the interval is counted from the end of the previous
    run (docs/jobs.md). After run N the job is finished and nothing more is triggered.
    """
    job = job_from_params(params)
    if job.migration_type != "incremental" or job.retry_of or job.run_number >= job.migration_times:
        return None
    conf = dict(params)
    conf["run_number"] = job.run_number + 1
    return conf, job.interval_hours * hour_seconds()
