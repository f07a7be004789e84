"""Run a whole job without Airflow: the same steps the DAG runs, in one process tree.

Used by the demo, the benchmark (engine alone vs. through Airflow) and tests. Subtasks run
in parallel: in processes when the source's client library holds the GIL (libnfs,
smbprotocol), in threads otherwise. Each worker opens its own source and destination from
the addresses (clients are not shared across processes).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.engine.copier import run_subtask
from sharelift.engine.flow_control import open_throttle
from sharelift.engine.jobs import JobSpec
from sharelift.engine.partition import Subtask, partition
from sharelift.engine.report import write_report
from sharelift.engine.scan import scan
from sharelift.engine.state import StateStore
from sharelift.engine.verify import verify
from sharelift.storage import TransferConfig, open_destination, open_source


@dataclass(frozen=True)
class RunPaths:
    work_dir: str
    job: str
    run_id: str

    @property
    def folder(self) -> str:
        safe = self.run_id.replace("/", "_").replace(":", "-").replace("+", "_")
        return os.path.join(self.work_dir, "runs", self.job, safe)

    @property
    def manifest(self) -> str:
        return os.path.join(self.folder, "manifest.parquet")

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.work_dir, "checkpoints", self.job)


def _copy_worker(
    job: dict[str, Any],
    run_id: str,
    subtask: dict[str, Any],
    manifest: str,
    src: SourceAddress,
    dst: DestinationAddress,
    state_url: str,
    transfer: TransferConfig,
) -> dict[str, int]:
    state = StateStore(state_url)
    spec = JobSpec.from_dict(job)
    st = Subtask.from_dict(subtask)
    throttle = None
    try:
        # Flow control (docs/flow-control.md): one lease per running subtask; the job's limit is shared.
        throttle = open_throttle(state, spec.name, run_id, st.index)
        with open_source(src) as source, open_destination(dst, transfer=transfer) as destination:
            counts = run_subtask(
                spec, run_id, st, manifest, source, destination, state, throttle=throttle
            )
        return dict(counts)
    finally:
        if throttle is not None:
            throttle.close()
        state.close()


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
) -> dict[str, Any]:
    """Scan, partition, copy, verify and report; returns the report summary."""
    run_id = run_id or time.strftime("manual__%Y%m%dT%H%M%S")
    paths = RunPaths(work_dir, job.name, run_id)
    os.makedirs(paths.folder, exist_ok=True)
    state_url = state_url or f"sqlite:///{os.path.join(work_dir, 'state.db')}"
    transfer = transfer or TransferConfig(checkpoint_dir=paths.checkpoints)
    state = StateStore(state_url)
    state.upsert_run(job.name, run_id, migration_type=job.migration_type, state="Scanning")
    with open_source(source_address) as source:
        source.check()
        with open_destination(destination_address, transfer=transfer) as destination:
            destination.check()
        result = scan(
            source,
            job,
            paths.manifest,
            progress=lambda n, b: state.upsert_run(
                job.name, run_id, files_scanned=n, bytes_scanned=b
            ),
        )
        state.record_scan(job.name, run_id, result)
        subtasks = partition(paths.manifest, job.subtask_files, job.subtask_bytes)
        state.upsert_run(job.name, run_id, state="Migrating", subtasks=len(subtasks))
        pool: Executor
        if source.features.gil_bound and workers > 1:
            pool = ProcessPoolExecutor(workers)
        else:
            pool = ThreadPoolExecutor(max(1, workers))
        totals: Counter[str] = Counter()
        with pool:
            futures = [
                pool.submit(
                    _copy_worker,
                    job.to_dict(),
                    run_id,
                    st.to_dict(),
                    paths.manifest,
                    source_address,
                    destination_address,
                    state_url,
                    transfer,
                )
                for st in subtasks
            ]
            for f in futures:
                totals.update(f.result())
        with open_destination(destination_address, transfer=transfer) as destination:
            verified, mismatched = verify(job.name, run_id, destination, state)
            summary = write_report(
                job.name,
                run_id,
                paths.manifest,
                source,
                destination,
                state,
                scan_summary=result.to_dict(),
                extra={
                    "subtasks": len(subtasks),
                    "verified": verified,
                    "verify_mismatches": mismatched,
                },
            )
    state.upsert_run(job.name, run_id, state=summary["state"], finished_at=time.time())
    state.close()
    return summary
