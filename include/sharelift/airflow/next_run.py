"""The next run of an incremental job: when it starts, and queueing it from inside a task.

Airflow's timetables count intervals between scheduled starts; a sharelift incremental job
counts from the end of the previous run (08:00 start, 1 h run, 1 h interval -> next at
10:00). So the
last task of each run queues the next one with ``run_after = now + interval``, and the
scheduler holds it until then. Runs are numbered through the conf; after run N nothing is
queued and the job stays finished. Pausing the DAG holds the queued run.

Why not ``TriggerDagRunOperator``: it would be a task of its own (a task start per run),
in Airflow 3 it only raises ``DagRunTriggerException`` for the task runner to act on, and
importing its module pulls in Airflow's ORM and API, most of what every task process spent
importing the DAG file. The closing task sends the same request itself (``_trigger``).
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sharelift.airflow.job_params import job_from_params
from sharelift.errors import ShareliftError


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


def queue_next_incremental_run(dag_id: str, params: dict[str, Any], log: Any) -> str | None:
    """Queue run k+1 from inside the running task; returns its run id, or None when there
    is no further run (not incremental, a retry, run N of N done, or settings a run could
    not start with)."""
    try:
        nxt = next_incremental_run(params)
    except ShareliftError as exc:
        log.info("no further run: the job's settings are invalid (%s)", exc)
        return None
    if nxt is None:
        log.info("no further run: not incremental, a retry, or run N of N done")
        return None
    conf, delay = nxt
    run_after = datetime.now(UTC) + timedelta(seconds=delay)
    # The run id TriggerDagRunOperator gives a run with only a run_after.
    run_id = f"manual__{run_after.isoformat()}_{secrets.token_hex(4)}"
    _trigger(dag_id, run_id, conf, run_after)
    log.info(
        "next run %d of %s queued for %s: %s",
        conf["run_number"],
        conf.get("migration_times"),
        run_after.isoformat(),
        run_id,
    )
    return run_id


def _trigger(dag_id: str, run_id: str, conf: dict[str, Any], run_after: datetime) -> None:
    """Ask the task's supervisor to create the DAG run.

    This is the message the task runner sends when a task raises ``DagRunTriggerException``
    (all ``TriggerDagRunOperator`` does in Airflow 3). Raising it would end the task there,
    successful; the closing task must still give the run's verdict afterwards (and fail the
    run when a file failed), so it sends the message itself and carries on.
    """
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import ErrorResponse, TriggerDagRun

    reply = task_runner.SUPERVISOR_COMMS.send(
        TriggerDagRun(
            dag_id=dag_id,
            run_id=run_id,
            logical_date=None,
            run_after=run_after,
            conf=conf,
            reset_dag_run=False,
        )
    )
    if isinstance(reply, ErrorResponse):
        raise RuntimeError(f"Airflow refused to create run {run_id}: {reply.error} {reply.detail}")
