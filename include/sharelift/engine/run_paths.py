"""What a run keeps on the worker's own disk: upload checkpoints, and nothing else.

Workers share no folder (a copy task retried may land on any worker), so everything a
task needs from an earlier task is in the state database (``sharelift.engine.manifest``).
The work folder holds only the multipart upload checkpoints of the files this worker is
uploading: a checkpoint lost with its worker costs the parts already sent, which the
retried copy uploads again; it never costs a wrong object.
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
    def checkpoints(self) -> str:
        return os.path.join(self.work_dir, "checkpoints", self.job)
