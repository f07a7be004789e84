"""The steps of a run, one function each: check, scan, partition, copy one subtask, verify,
report, finish.

These are the pipeline. The DAG's tasks (``sharelift.airflow.tasks``) resolve Airflow
connections and params into addresses and call them; the engine runner
(``sharelift.engine.runner``: the demo's engine-only path, the benchmark's engine cases,
tests) calls the very same functions in a loop. So a run outside Airflow is the DAG's code,
and what one measures or tests holds for the other.

Each step takes a ``RunContext`` (the job, the run id, the two addresses, the state
database, the run's work paths), opens the clients it needs from the addresses and closes
them, leaves its real output in the state database (the manifest, the subtasks, every
file's outcome) or the destination bucket, never on the worker's disk: the next step may
run on another worker. Each can run twice with the same result. ``check`` takes the two addresses alone: it runs before there is a
run to speak of, and a failure is recorded with ``record_create_failed``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.engine.jobs import JobSpec
from sharelift.engine.manifest import Manifest
from sharelift.engine.partition import Subtask, SubtaskGroup
from sharelift.engine.run_paths import RunPaths
from sharelift.engine.scan import ScanResult
from sharelift.engine.state import StateStore
from sharelift.errors import ShareliftError, scrub
from sharelift.storage import TransferConfig, open_destination, open_source

log = logging.getLogger(__name__)
MIB = 1024 * 1024


@dataclass(frozen=True)
class RunContext:
    """What every step of one run works with. ``state`` is open for the context's life."""

    job: JobSpec
    run_id: str
    source: SourceAddress
    destination: DestinationAddress
    state: StateStore
    paths: RunPaths
    transfer: TransferConfig

    @property
    def manifest(self) -> Manifest:
        return Manifest(self.state, self.job.name, self.run_id)


@contextlib.contextmanager
def open_run(
    job: JobSpec,
    run_id: str,
    source: SourceAddress,
    destination: DestinationAddress,
    *,
    work_dir: str,
    state_url: str,
    transfer: TransferConfig | None = None,
) -> Iterator[RunContext]:
    """A ``RunContext`` with its state database open; closed on exit.

    ``transfer`` defaults to resumable uploads with checkpoints in the work folder and the
    job's retry settings.
    """
    paths = RunPaths(work_dir, job.name, run_id)
    state = StateStore(state_url)
    try:
        yield RunContext(
            job,
            run_id,
            source,
            destination,
            state,
            paths,
            transfer or TransferConfig(checkpoint_dir=paths.checkpoints, retry=job.retry_policy),
        )
    finally:
        state.close()


# -- check ---------------------------------------------------------------------------------


def check(source: SourceAddress, destination: DestinationAddress) -> None:
    """Both addresses reachable and usable, or ``AddressError`` naming the cause."""
    with open_source(source) as src:
        src.check()
    with open_destination(destination) as dst:
        dst.check()
    log.info("addresses are Normal: %s -> %s", source.display_url(), destination.display_url())


def record_create_failed(state: StateStore, job_name: str, run_id: str, exc: Exception) -> str:
    """Record a run that could not start ("Create Failed", docs/states.md); returns the message.

    Called for anything that stops a run before its scan: a bad setting, an unknown
    connection, an address that is Invalid.
    """
    message = scrub(str(exc))
    try:
        state.upsert_run(
            job_name[:63], run_id, state="Create Failed", message=message, finished_at=time.time()
        )
    except Exception:  # noqa: BLE001 - recording must not hide the real cause
        log.exception("could not record Create Failed")
    return message


# -- scan ----------------------------------------------------------------------------------


def scan(
    run: RunContext,
    *,
    spec: dict[str, Any] | None = None,
    backfill_window: tuple[Any, Any] | None = None,
) -> ScanResult:
    """Scan the source into the run's manifest (or, for a retry, the failed run's error list).

    ``spec`` (what started the run: DAG id and params) is recorded with the run so that
    ``sharelift retry`` can start it again. ``backfill_window`` (a backfill run's data
    interval) narrows the scan to the files modified in that past window: a backfill
    re-migrates the changes of the window, and the overwrite rule keeps it from copying
    anything twice.
    """
    from sharelift.engine.retry import build_retry_manifest
    from sharelift.engine.scan import scan as scan_source
    from sharelift.engine.windows import window_for

    job, state = run.job, run.state
    recorded = {"dag_id": None, "params": {}, **(spec or {}), "job": job.to_dict()}
    state.upsert_run(
        job.name,
        run.run_id,
        migration_type=job.migration_type,
        state="Scanning",
        message=None,
        finished_at=None,
        run_number=job.run_number,
        retry_of=job.retry_of,
        spec=json.dumps(recorded, sort_keys=True, default=str),
    )

    def progress(files: int, size: int) -> None:
        log.info("Scanning: %d files, %.1f MB so far", files, size / 1e6)
        state.upsert_run(job.name, run.run_id, files_scanned=files, bytes_scanned=size)

    with open_source(run.source) as source:
        if job.retry_of:
            log.info("Retry of run %s: exactly the files of its error list", job.retry_of)
            result = build_retry_manifest(source, state, job.name, job.retry_of, run.manifest)
        else:
            window = window_for(state, job, run.run_id, override=backfill_window)
            log.info(
                "Run %d of %s (%s): %s",
                job.run_number,
                job.name,
                job.migration_type,
                window.describe(),
            )
            result = scan_source(
                source,
                job,
                run.manifest,
                newer_than_ns=window.newer_than_ns,
                not_newer_than_ns=window.not_newer_than_ns,
                progress=progress,
            )
    state.record_scan(job.name, run.run_id, result)
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
    return result


# -- partition -----------------------------------------------------------------------------


def partition(run: RunContext) -> list[Subtask]:
    """Split the manifest into subtasks (docs/jobs.md: by file count and by bytes), recorded
    in the state database for the copy tasks."""
    from sharelift.engine.partition import partition as split

    job = run.job
    subtasks = split(run.manifest, job.subtask_files, job.subtask_bytes)
    run.state.upsert_run(job.name, run.run_id, state="Migrating", subtasks=len(subtasks))
    log.info(
        "%d subtasks (at most %d files or %d MiB each)",
        len(subtasks),
        job.subtask_files,
        job.subtask_bytes // MIB,
    )
    return subtasks


# -- copy ----------------------------------------------------------------------------------


def group(subtasks: list[Subtask], max_groups: int) -> list[SubtaskGroup]:
    """The subtasks in at most ``max_groups`` groups, one per copy task (``partition.group``)."""
    from sharelift.engine.partition import group as split_into

    groups = split_into(subtasks, max_groups)
    if len(groups) < len(subtasks):
        log.info(
            "%d subtasks in %d copy tasks (at most %d)", len(subtasks), len(groups), max_groups
        )
    return groups


def copy_group(run: RunContext, group: SubtaskGroup) -> Counter[str]:
    """Copy the subtasks of ``group`` in order; returns counts by status.

    The subtasks are read from the state database, so the task may run on any worker; one
    already done (an earlier try of this task got that far) is skipped whole.
    """
    totals: Counter[str] = Counter()
    for stored in run.manifest.subtasks(group.first, group.stop):
        subtask = Subtask(
            stored.index, stored.start_row, stored.stop_row, stored.files, stored.bytes
        )
        if stored.done:
            log.info("subtask %d: done by an earlier try, skipped", stored.index)
            totals["previously-done"] += stored.stop_row - stored.start_row
            continue
        totals.update(copy(run, subtask))
    return totals


def copy(run: RunContext, subtask: Subtask) -> Counter[str]:
    """Copy one subtask; returns counts by status (``previously-done`` included). Its
    completion is recorded with it, once every row has an outcome.

    Flow control (docs/flow-control.md): the subtask holds a share of the job's live bandwidth limit,
    through the state database, for as long as it copies.
    """
    started = time.monotonic()
    try:
        counts = _copy(run, subtask)
    except Exception as exc:
        _record_unfinished(run, subtask, exc)
        raise
    log.info(
        "subtask %d: %s in %.2f s (%d files, %.1f MB planned)",
        subtask.index,
        dict(counts),
        time.monotonic() - started,
        subtask.files,
        subtask.bytes / 1e6,
    )
    return counts


def _record_unfinished(run: RunContext, subtask: Subtask, exc: BaseException) -> None:
    """The subtask's files without an outcome fail with its cause ("subtask N did not
    finish: ..."); a retry of the task copies them and replaces these records."""
    from sharelift.engine.report import record_unattempted
    from sharelift.storage.retrying import describe

    reason = f"subtask {subtask.index} did not finish: {scrub(describe(exc))}"
    try:
        with open_destination(run.destination, transfer=run.transfer) as destination:
            record_unattempted(
                run.job.name,
                run.run_id,
                run.manifest,
                destination,
                run.state,
                rows=(subtask.start_row, subtask.stop_row),
                subtask=subtask.index,
                reason=reason,
            )
    except Exception:  # noqa: BLE001 - recording must not hide the real cause
        log.exception("could not record the files of subtask %d as failed", subtask.index)


def _copy(run: RunContext, subtask: Subtask) -> Counter[str]:
    from sharelift.engine.copier import run_subtask
    from sharelift.engine.flow_control import open_throttle

    job = run.job
    manifest = run.manifest
    with (
        open_throttle(run.state, job.name, run.run_id, subtask.index) as throttle,
        open_source(run.source) as source,
        open_destination(run.destination, transfer=run.transfer) as destination,
    ):
        counts = run_subtask(
            job,
            run.run_id,
            subtask,
            manifest,
            source,
            destination,
            run.state,
            throttle=throttle,
        )
    manifest.mark_done(subtask.index)
    if throttle.waited:
        log.info("flow control: waited %.1f s for the job's bandwidth limit", throttle.waited)
    return counts


# -- verify --------------------------------------------------------------------------------


def verify(run: RunContext) -> dict[str, int]:
    """Every copied object's size and CRC-64 against the source's; only a measured mismatch
    fails a file, an object that could not be checked stays copied and is counted
    ``unverified`` with the reason (``sharelift.engine.verify``)."""
    from sharelift.engine.verify import verify as verify_objects

    with open_destination(run.destination, transfer=run.transfer) as destination:
        result = verify_objects(run.job.name, run.run_id, destination, run.state)
    log.info(
        "verified %d objects by size and CRC-64; %d differ; %d could not be checked",
        result.verified,
        result.mismatched,
        result.unverified,
    )
    return result.to_dict()


# -- report --------------------------------------------------------------------------------


class ReportNotWritten(ShareliftError):
    """The bucket refused the report (after the shared retry policy): the run is Failed."""


def report(
    run: RunContext,
    scan_summary: dict[str, Any] | None,
    verify_result: dict[str, int] | None,
) -> dict[str, Any]:
    """Write the three lists and the summary (docs/reports.md); returns the summary.

    Also ends the run in the state database with its state (Completed, Success or Failed).
    What the report is built from is kept with the run first, so that a report the bucket
    refuses (``ReportNotWritten``; the run is then recorded Failed with the cause) can be
    stored again by ``sharelift report`` (``report_again``): its lists are built from the
    state database, which keeps every outcome.
    """
    job, state = run.job, run.state
    recorded = state.get_run(job.name, run.run_id) or {}
    extra = {
        "subtasks": recorded.get("subtasks"),
        "verified": (verify_result or {}).get("verified"),
        "verify_mismatches": (verify_result or {}).get("mismatched"),
        "dry_run": job.dry_run,
    }
    state.upsert_run(
        job.name,
        run.run_id,
        report_input=json.dumps(
            {"scan_summary": scan_summary, "verify_result": verify_result},
            sort_keys=True,
            default=str,
        ),
    )
    return _write_report(run, scan_summary, extra)


def report_again(run: RunContext) -> dict[str, Any]:
    """Store the report of a run whose report step could not (``sharelift report``)."""
    recorded = run.state.get_run(run.job.name, run.run_id) or {}
    kept = json.loads(recorded.get("report_input") or "{}")
    return report(run, kept.get("scan_summary"), kept.get("verify_result"))


def _write_report(
    run: RunContext, scan_summary: dict[str, Any] | None, extra: dict[str, Any]
) -> dict[str, Any]:
    from sharelift.engine.report import format_summary, write_report
    from sharelift.storage.retrying import describe

    job, state = run.job, run.state
    try:
        with (
            open_source(run.source) as source,
            open_destination(run.destination, transfer=run.transfer) as destination,
        ):
            summary = write_report(
                job.name,
                run.run_id,
                run.manifest,
                source,
                destination,
                state,
                scan_summary=scan_summary,
                extra=extra,
            )
    except Exception as exc:
        cause = f"{REPORT_FAILED}: {scrub(describe(exc))}"
        record_failed(state, job.name, run.run_id, cause, replace=True)
        raise ReportNotWritten(
            f"{cause} (the lists are kept in the state database; store them with "
            f"`sharelift report {job.name} {run.run_id}`)"
        ) from exc
    state.upsert_run(
        job.name,
        run.run_id,
        state=summary["state"],
        finished_at=time.time(),
        message=_verdict(summary),
    )
    for line in format_summary(summary).splitlines():
        log.info("%s", line)
    return summary


# -- finish --------------------------------------------------------------------------------


def finish(summary: dict[str, Any] | None, recorded: dict[str, Any] | None = None) -> str | None:
    """The run's verdict (docs/states.md): ``None`` when it Completed (or, for sync, Succeeded),
    else why it failed (some file failed, or the cause an earlier step recorded).

    A step of its own, last in the run, so that the report is written (and in Airflow the
    next run of an incremental job is queued) before the run is marked failed. Without a
    report, ``recorded`` (the run's row in the state database) holds the cause.
    """
    from sharelift.engine.states import run_state_mapping

    if not summary:
        if recorded and recorded.get("state") in ("Create Failed", "Failed"):
            return f"{recorded['state']}: {recorded.get('message') or NO_CAUSE}"
        return (
            "no report: an earlier step failed (see the logs of the check, scan and report steps)"
        )
    log.info("%s (Airflow run state: %s)", summary["state"], run_state_mapping()[summary["state"]])
    return _verdict(summary)


NO_CAUSE = "an earlier step failed without a recorded cause (see the failed task's log)"


def _verdict(summary: dict[str, Any]) -> str | None:
    if summary["state"] == "Failed":
        return (
            f"{summary['files_failed']} file(s) failed; see the error list in "
            f"{summary['report_folder']}"
        )
    return None


# -- ending a run that a step could not carry on -------------------------------------------

TERMINAL_STATES = ("Create Failed", "Failed", "Completed", "Success")


def record_failed(
    state: StateStore, job_name: str, run_id: str, cause: str, *, replace: bool = False
) -> str:
    """End the run Failed with ``cause`` (docs/states.md); returns the cause recorded.

    The first cause stands: a run already ended (Create Failed, Failed, or finished by its
    report) keeps its state and message, unless ``replace`` (the report step, whose failure
    undoes the verdict it was about to store). Recording must never hide the real cause,
    so a database that cannot be written is only logged.
    """
    cause = scrub(cause).strip() or NO_CAUSE
    try:
        recorded = state.get_run(job_name[:63], run_id) or {}
        if recorded.get("state") == "Create Failed":
            return str(recorded.get("message") or cause)
        if recorded.get("state") in TERMINAL_STATES and not replace:
            return str(recorded.get("message") or recorded["state"])
        state.upsert_run(
            job_name[:63], run_id, state="Failed", message=cause, finished_at=time.time()
        )
    except Exception:  # noqa: BLE001 - recording must not hide the real cause
        log.exception("could not record the run as Failed")
    return cause


@contextlib.contextmanager
def ends_run_on_failure(run: RunContext, step: str) -> Iterator[None]:
    """A step that raises ends the run Failed with "<step> failed: <cause>", then re-raises
    (the DAG's task fails too). Steps after it see the run ended and skip."""
    from sharelift.storage.retrying import describe

    try:
        yield
    except ReportNotWritten:
        raise  # recorded with its own cause
    except Exception as exc:
        record_failed(run.state, run.job.name, run.run_id, f"{step} failed: {describe(exc)}")
        raise


def ended(run: RunContext) -> dict[str, Any] | None:
    """The run's row when an earlier step ended it (Create Failed, or Failed by a step that
    could not go on): the steps after it skip. Not a run Failed by its files or by a
    refused report: running the report again is how those are mended."""
    recorded = run.state.get_run(run.job.name, run.run_id)
    if not recorded or recorded.get("report_url"):
        return None
    if recorded.get("state") == "Create Failed":
        return recorded
    message = str(recorded.get("message") or "")
    if recorded.get("state") == "Failed" and not message.startswith(REPORT_FAILED):
        return recorded
    return None


REPORT_FAILED = "report could not be written"
