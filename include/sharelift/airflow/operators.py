"""Operators sharelift adds to Airflow's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator


class NextIncrementalRunOperator(TriggerDagRunOperator):
    """Queue the next run of an incremental job, ``interval`` after THIS run ends.

    Airflow's timetables count intervals between scheduled starts; the SPEC counts from the
    end of the previous run (08:00 start, 1 h run, 1 h interval -> next at 10:00). So the
    last task of each run queues the next one with ``run_after = now + interval``, and the
    scheduler holds it until then. Runs are numbered through the conf; after run N nothing is
    queued and the job stays finished. Pausing the DAG holds the queued run.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("conf", {})
        super().__init__(**kwargs)

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException

        from sharelift.airflow.tasks import next_incremental_run

        nxt = next_incremental_run(dict(context["params"]))
        if nxt is None:
            raise AirflowSkipException(
                "no further run: not incremental, a retry, or run N of N done"
            )
        conf, delay = nxt
        self.conf = conf
        self.run_after = datetime.now(UTC) + timedelta(seconds=delay)
        self.log.info(
            "next run %d of %d queued for %s",
            conf["run_number"],
            conf.get("migration_times"),
            self.run_after.isoformat(),
        )
        return super().execute(context)
