"""``sharelift airflow-setup``: what an Airflow deployment needs before the first job runs.

Creates the ``sharelift_copy`` pool (without it, copy tasks would wait in ``scheduled``
forever), records its size in the Variable ``sharelift_copy_pool_slots`` (what a run with
small subtasks maps its copy tasks to) and creates the work folder. A run copies at most 20 subtasks at once (the DAG caps
each run at 20); the pool is the deployment's capacity, so by default it is sized to this
machine: two copy tasks per CPU, at least 4, at most 20. Each copy task already keeps
several files in flight on its own threads; on the 2-CPU benchmark machine 20 slots made
ten copy tasks thrash (set S took far longer than with 4 slots). A deployment with
several workers sets ``--pool-slots`` to what all of them together can carry.
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

from sharelift.airflow.tasks import POOL_NAME, POOL_SLOTS, SLOTS_VARIABLE, work_dir

POOL_DESCRIPTION = "sharelift copy subtasks: at most this many run at once across all jobs"


def default_pool_slots() -> int:
    """Two copy tasks per CPU of this machine, at least 4, at most 20 (a run's limit)."""
    return max(4, min(POOL_SLOTS, 2 * (os.cpu_count() or 2)))


def _slots(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 1 <= value <= POOL_SLOTS:
        raise argparse.ArgumentTypeError(
            f"must be between 1 and {POOL_SLOTS} (a run copies at most {POOL_SLOTS} subtasks at once)"
        )
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pool-slots",
        type=_slots,
        default=None,
        help=f"slots of the {POOL_NAME} pool, 1-{POOL_SLOTS} "
        f"(default: 2 per CPU, at least 4, at most {POOL_SLOTS}; here {default_pool_slots()})",
    )


def airflow_executable() -> str:
    beside = Path(sys.executable).with_name("airflow")
    return str(beside) if beside.exists() else (shutil.which("airflow") or "airflow")


def run(args: argparse.Namespace) -> int:
    os.makedirs(work_dir(), exist_ok=True)
    slots = args.pool_slots or default_pool_slots()
    cmd = [airflow_executable(), "pools", "set", POOL_NAME, str(slots), POOL_DESCRIPTION]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(
            f"sharelift: could not create pool {POOL_NAME}: {done.stderr.strip()[-500:]}",
            file=sys.stderr,
        )
        return done.returncode
    # Recorded where a task can read it (a task cannot read a pool): a run with small
    # subtasks maps no more copy tasks than the pool runs at once.
    cmd = [airflow_executable(), "variables", "set", SLOTS_VARIABLE, str(slots)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(
            f"sharelift: could not set Variable {SLOTS_VARIABLE}: {done.stderr.strip()[-500:]}",
            file=sys.stderr,
        )
        return done.returncode
    print(f"sharelift: pool {POOL_NAME} has {slots} slots; work folder {work_dir()}")
    return 0
