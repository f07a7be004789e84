"""``sharelift airflow-setup``: what an Airflow deployment needs before the first job runs.

Creates the ``sharelift_copy`` pool with its 20 slots (SPEC: at most 20 subtasks at once;
without the pool, copy tasks would wait in ``scheduled`` forever) and the work folder.
Uses the ``airflow`` CLI of this environment, so it works against any metadata database
the deployment is configured with; run it once after ``airflow db migrate``. Idempotent.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sharelift.airflow.tasks import POOL_NAME, POOL_SLOTS, work_dir

POOL_DESCRIPTION = "sharelift copy subtasks: at most this many run at once across all jobs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pool-slots",
        type=int,
        default=POOL_SLOTS,
        help=f"slots of the {POOL_NAME} pool (default {POOL_SLOTS})",
    )


def airflow_executable() -> str:
    beside = Path(sys.executable).with_name("airflow")
    return str(beside) if beside.exists() else (shutil.which("airflow") or "airflow")


def run(args: argparse.Namespace) -> int:
    os.makedirs(work_dir(), exist_ok=True)
    cmd = [airflow_executable(), "pools", "set", POOL_NAME, str(args.pool_slots), POOL_DESCRIPTION]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(
            f"sharelift: could not create pool {POOL_NAME}: {done.stderr.strip()[-500:]}",
            file=sys.stderr,
        )
        return done.returncode
    print(f"sharelift: pool {POOL_NAME} has {args.pool_slots} slots; work folder {work_dir()}")
    return 0
