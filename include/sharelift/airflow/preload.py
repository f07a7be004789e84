"""Import what sharelift's tasks run into the Airflow components their processes are forked
from, so that every task inherits the modules instead of importing them again.

Under the LocalExecutor each task runs in a process forked from one of the scheduler's
worker processes, and the workers are forked from the scheduler when it starts; the
dag-processor parses each DAG file in a process forked from itself. A module imported
before those forks is shared copy-on-write; one imported after is imported again, and
compiled again where no bytecode was written, by every task. The DAG factory, the steps and
the storage clients (``oss2`` alone pulls in requests, pycryptodome and the Alibaba SDK)
are most of a task's start-up CPU, and a run's copy tasks all start at once
(``bench/results/findings.md`` has the figures).

Airflow calls the ``on_starting`` listener in each of its jobs (scheduler, dag-processor,
triggerer) before the job starts, and also in every task process (there, with the task
runner as the component, nothing is imported: the task imports what it needs itself, and
another project's tasks must not pay for sharelift's modules). Imports only: no
connection, thread or file is opened, so forking afterwards stays safe. A module that
cannot be imported (a client library missing) is left to the task that needs it, which
then reports the error in its own log.

A component keeps the code it imported when it started: after installing a new version of
sharelift, restart the components (docs/deployment.md, "Upgrading").
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

# What the DAG files and the task bodies import (parse: the factory and Airflow's @task;
# run: the steps and every storage client a route may use), in dependency order.
TASK_MODULES = (
    "airflow.sdk.definitions.decorators",
    "sharelift.airflow.dag_factory",
    "sharelift.airflow.job_files",
    "sharelift.airflow.tasks",
    "sharelift.airflow.connections",
    "sharelift.airflow.next_run",
    "sharelift.engine.steps",
    "sharelift.engine.copier",
    "sharelift.engine.flow_control",
    "sharelift.engine.verify",
    "sharelift.engine.report",
    "sharelift.storage.local_source",
    "sharelift.storage.local_destination",
    "sharelift.storage.nfs_source",
    "sharelift.storage.smb_source",
    "smbclient",
    "sharelift.storage.oss_destination",
)


def is_airflow_job(component: Any) -> bool:
    """A scheduler, dag-processor or triggerer job; not a task runner. A process that has
    not imported Airflow's job model is not running a job."""
    jobs = sys.modules.get("airflow.jobs.job")
    return jobs is not None and isinstance(component, jobs.Job)


def import_task_modules() -> list[str]:
    """Import ``TASK_MODULES``; returns the names that could not be imported."""
    missing = []
    for name in TASK_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - the task that needs it reports it
            missing.append(name)
            log.debug("sharelift: %s not preloaded: %s", name, exc)
    return missing


@hookimpl
def on_starting(component: Any) -> None:
    if is_airflow_job(component):
        import_task_modules()
