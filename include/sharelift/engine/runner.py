"""Run a whole job without Airflow: the DAG's steps (``sharelift.engine.steps``) in a loop.

Used by the demo's engine-only path, the benchmark's engine cases and tests, so what they
show is the DAG's own code: the same check (a failure is recorded as Create Failed), scan
(windows of incremental runs, retries of a failed run, the job's settings recorded),
partition, copy of each subtask, verify, report and verdict. What Airflow adds is left
out: the scheduler, task retries, and queueing the next run of an incremental job (call
``run_job`` again with the next ``run_number``).

Subtasks run in parallel like the DAG's mapped copy tasks: in processes when the source's
client library holds the GIL (libnfs, smbprotocol), in threads otherwise. Each worker
opens its own clients and state database connection from the addresses (clients are not
shared across processes). A subtask that raises is logged and left to the report, which
lists its files as failed, as when a copy task of the DAG fails.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.engine import steps
from sharelift.engine.jobs import JobSpec
from sharelift.engine.partition import Subtask
from sharelift.errors import ShareliftError
from sharelift.storage import TransferConfig

log = logging.getLogger(__name__)


def copy_in_worker(
    job: dict[str, Any],
    run_id: str,
    subtask: dict[str, Any],
    source: SourceAddress,
    destination: DestinationAddress,
    work_dir: str,
    state_url: str,
    transfer: TransferConfig | None = None,
) -> dict[str, int]:
    """``steps.copy`` of one subtask, from plain data (what a worker process receives)."""
    with steps.open_run(
        JobSpec.from_dict(job),
        run_id,
        source,
        destination,
        work_dir=work_dir,
        state_url=state_url,
        transfer=transfer,
    ) as run:
        return dict(steps.copy(run, Subtask.from_dict(subtask)))


def default_run_id() -> str:
    return time.strftime("manual__%Y%m%dT%H%M%S")


def run_job(
    job: JobSpec,
    source_address: SourceAddress,
    destination_address: DestinationAddress,
    *,
    work_dir: str,
    state_url: str | None = None,
    run_id: str | None = None,
    workers: int = 2,
    transfer: TransferConfig | None = None,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check, scan, partition, copy, verify, report and finish; returns the report summary
    (its ``state`` says Completed, Success or Failed). Raises what the check raises
    (``ConfigError``, ``AddressError``) after recording the run as Create Failed, and what
    a later step raises after recording the run as Failed with the cause (a report the
    bucket refused: ``steps.ReportNotWritten``)."""
    run_id = run_id or default_run_id()
    state_url = state_url or f"sqlite:///{os.path.join(work_dir, 'state.db')}"
    with steps.open_run(
        job,
        run_id,
        source_address,
        destination_address,
        work_dir=work_dir,
        state_url=state_url,
        transfer=transfer,
    ) as run:
        try:
            steps.check(source_address, destination_address)
        except ShareliftError as exc:
            steps.record_create_failed(run.state, job.name, run_id, exc)
            raise
        with steps.ends_run_on_failure(run, "scan"):
            scanned = steps.scan(run, spec=spec)
        with steps.ends_run_on_failure(run, "partition"):
            subtasks = steps.partition(run)
        _copy_all(run, subtasks, workers, state_url, gil_bound=_gil_bound(source_address))
        with steps.ends_run_on_failure(run, "verify"):
            verified = steps.verify(run)
        with steps.ends_run_on_failure(run, "report"):
            summary = steps.report(run, scanned.to_dict(), verified)
        failure = steps.finish(summary)
        if failure:
            log.warning("run %s of %s failed: %s", run_id, job.name, failure)
    return summary


def _gil_bound(source: SourceAddress) -> bool:
    from sharelift.storage import open_source

    with open_source(source) as src:  # connects lazily: nothing is opened here
        return src.features.gil_bound


def _copy_all(
    run: steps.RunContext,
    subtasks: list[Subtask],
    workers: int,
    state_url: str,
    *,
    gil_bound: bool,
) -> Counter[str]:
    pool: Executor
    if gil_bound and workers > 1:
        pool = ProcessPoolExecutor(workers)
    else:
        pool = ThreadPoolExecutor(max(1, workers))
    totals: Counter[str] = Counter()
    with pool:
        futures = {
            st.index: pool.submit(
                copy_in_worker,
                run.job.to_dict(),
                run.run_id,
                st.to_dict(),
                run.source,
                run.destination,
                run.paths.work_dir,
                state_url,
                run.transfer,
            )
            for st in subtasks
        }
        for index, future in futures.items():
            try:
                totals.update(future.result())
            except Exception:  # noqa: BLE001 - as a failed copy task: the report lists its files
                log.exception("subtask %d failed", index)
    return totals
