"""Where a run keeps its files: the manifest in the work folder, upload checkpoints per job.

On several Airflow workers the work folder is a shared volume: every task of a run finds
the manifest the scan wrote by the job name and run id alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def safe_run_id(run_id: str) -> str:
    """The run id as one folder name (Airflow run ids carry ':', '+' and may carry '/')."""
    return run_id.replace("/", "_").replace(":", "-").replace("+", "_")


@dataclass(frozen=True)
class RunPaths:
    work_dir: str
    job: str
    run_id: str

    @property
    def folder(self) -> str:
        return os.path.join(self.work_dir, "runs", self.job, safe_run_id(self.run_id))

    @property
    def manifest(self) -> str:
        return os.path.join(self.folder, "manifest.parquet")

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.work_dir, "checkpoints", self.job)
