"""The next run of an incremental job: when it starts, and queueing it from inside a task.

Airflow's timetables count intervals between scheduled starts; a sharelift incremental job
counts from the end of the previous run (08:00 start, 1 h run, 1 h interval -> next at
10:00). So the
last task of each run queues the next one with ``run_after = now + interval``, and the
scheduler holds it until then. Runs are numbered through the conf; after run N nothing is
queued and the job stays finished. Pausing the DAG holds the queued run.

Why not ``TriggerDagRunOperator``: in Airflow 3 it only raises ``DagRunTriggerException``
for the task runner to act on, and importing its module pulls in Airflow's ORM and API,
most of what every task process spent importing the DAG file. A plain task that raises the
same exception does the same with none of that.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sharelift.airflow.tasks import job_from_params


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


def queue_next_incremental_run(dag_id: str, params: dict[str, Any], log: Any) -> None:
    """Raise what makes the task runner queue run k+1; skip when there is none."""
    from airflow.sdk.exceptions import AirflowSkipException, DagRunTriggerException

    nxt = next_incremental_run(params)
    if nxt is None:
        raise AirflowSkipException("no further run: not incremental, a retry, or run N of N done")
    conf, delay = nxt
    run_after = datetime.now(UTC) + timedelta(seconds=delay)
    log.info(
        "next run %d of %s queued for %s",
        conf["run_number"],
        conf.get("migration_times"),
        run_after.isoformat(),
    )
    raise DagRunTriggerException(
        trigger_dag_id=dag_id,
        # The run id TriggerDagRunOperator gives a run with only a run_after.
        dag_run_id=f"manual__{run_after.isoformat()}_{secrets.token_hex(4)}",
        conf=conf,
        logical_date=None,
        run_after=run_after,
        reset_dag_run=False,
        skip_when_already_exists=False,
        wait_for_completion=False,
        allowed_states=["success"],
        failed_states=["failed"],
        poke_interval=60,
        deferrable=False,
    )
