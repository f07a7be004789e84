"""Building a migration DAG: the ad-hoc one (Params from the trigger form) and one per
declared job file. Parse-time work is limited to building the DAG object: no network,
no database, no file-system walk.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sharelift.airflow.tasks import POOL_NAME, POOL_SLOTS
from sharelift.engine.jobs import JOB_NAME_RE, JOB_NAME_RULE

START_TIME_PATTERN = (
    r"^(All|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)$"
)
PREFIX_PATTERN = r"^$|^[^/].*/$"


def migration_params(
    defaults: dict[str, Any] | None = None, *, locked: bool = False
) -> dict[str, Any]:
    """The trigger form: types, bounds, enums and sections so it explains itself.

    ``locked``: a declared job's name and addresses are fixed by its file (enum of one).
    """
    from airflow.sdk import Param

    d = defaults or {}
    params = {
        "job_name": Param(
            d.get("job_name", "my-migration"),
            type="string",
            pattern=JOB_NAME_RE.pattern,
            title="Job name",
            description=f"{JOB_NAME_RULE}.",
            section="Job",
        ),
        "source_conn_id": Param(
            d.get("source_conn_id", "sharelift_source"),
            type="string",
            minLength=1,
            title="Source address",
            description="Connection id of an NFS, SMB or local-folder address.",
            section="Job",
        ),
        "source_path": Param(
            d.get("source_path", ""),
            type="string",
            title="Source sub-folder",
            description="Relative to the share; empty = the whole share.",
            section="Job",
        ),
        "destination_conn_id": Param(
            d.get("destination_conn_id", "sharelift_destination"),
            type="string",
            minLength=1,
            title="Destination address",
            description="Connection id of an OSS address (type oss).",
            section="Job",
        ),
        "destination_prefix": Param(
            d.get("destination_prefix"),
            type=["null", "string"],
            pattern=PREFIX_PATTERN,
            title="Prefix",
            description="Optional; must not start with '/' and must end with '/'. "
            "Empty = bucket root; null = the address's own prefix.",
            section="Job",
        ),
        "migration_type": Param(
            d.get("migration_type", "full"),
            type="string",
            enum=["full", "incremental"] if d.get("migration_type") != "sync" else ["sync"],
            title="Migration type",
            description="full: every file once (a re-run copies only changes). incremental: run 1 "
            "is full, then N-1 runs take the changes since the previous run's start.",
            section="Job",
        ),
        "migration_interval_hours": Param(
            d.get("migration_interval_hours", 1),
            type="integer",
            minimum=1,
            maximum=24,
            title="Migration interval (hours)",
            description="Incremental: hours from the END of one run to the start of the next.",
            section="Incremental",
        ),
        "migration_times": Param(
            d.get("migration_times", 1),
            type="integer",
            minimum=1,
            maximum=30,
            title="Migration times (N)",
            description="Incremental: total number of runs, the first (full) one included.",
            section="Incremental",
        ),
        "run_number": Param(
            1,
            type="integer",
            minimum=1,
            maximum=30,
            title="Run number",
            description="Set by sharelift when it queues the next incremental run; leave at 1.",
            section="Internal",
        ),
        "retry_of": Param(
            None,
            type=["null", "string"],
            title="Retry of run",
            description="Run id of a failed run of this job: migrate exactly the files of its "
            "error list (nothing already completed is copied again).",
            section="Retry",
        ),
        "start_time": Param(
            d.get("start_time", "All"),
            type="string",
            pattern=START_TIME_PATTERN,
            title="Start time point of file",
            description="'All', or an ISO date-time: only files modified later are migrated.",
            section="Job",
        ),
        "subtask_file_count": Param(
            d.get("subtask_file_count", 1000),
            type="integer",
            minimum=1,
            maximum=1_000_000,
            title="Subtask file count",
            section="Performance",
        ),
        "subtask_file_size_mb": Param(
            d.get("subtask_file_size_mb", 1024),
            type="integer",
            minimum=1,
            maximum=10 * 1024 * 1024,
            title="Subtask file size (MiB)",
            section="Performance",
        ),
        "estimated_files": Param(
            d.get("estimated_files"),
            type=["null", "integer"],
            minimum=0,
            title="Estimated file count",
            section="Performance",
        ),
        "estimated_size_gb": Param(
            d.get("estimated_size_gb"),
            type=["null", "number"],
            minimum=0,
            title="Estimated data size (GiB)",
            section="Performance",
        ),
        "include": Param(
            d.get("include", []),
            type="array",
            items={"type": "string"},
            title="Include patterns",
            description="Globs like *.pdf or docs/**",
            section="Filters",
        ),
        "exclude": Param(
            d.get("exclude", []),
            type="array",
            items={"type": "string"},
            title="Exclude patterns",
            section="Filters",
        ),
        "dry_run": Param(
            d.get("dry_run", False),
            type="boolean",
            title="Dry run",
            description="Scan and report what would be copied; copy nothing.",
            section="Filters",
        ),
    }
    if locked:
        for key in ("job_name", "source_conn_id", "destination_conn_id"):
            params[key].schema["enum"] = [d[key]]
    return params


def build_migration_dag(
    dag_id: str,
    *,
    defaults: dict[str, Any] | None = None,
    description: str = "",
    tags: list[str] | None = None,
    locked: bool = False,
    schedule: Any = None,
    start_date: datetime | None = None,
    max_active_runs: int = 16,
) -> Any:
    """``schedule``/``start_date``/``max_active_runs`` serve sync jobs (a period, a start,
    and 1 run at a time when "do not start a new run while another is running" is on)."""
    from airflow.sdk import dag, get_current_context, task
    from airflow.task.trigger_rule import TriggerRule

    from sharelift.airflow import tasks as t
    from sharelift.airflow.operators import queue_next_incremental_run

    @dag(
        dag_id=dag_id,
        description=description
        or "Migrate a file share into OSS: scan, partition, copy, verify, report.",
        schedule=schedule,
        start_date=start_date or datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=max_active_runs,
        params=migration_params(defaults, locked=locked),
        max_active_tasks=POOL_SLOTS + 8,
        tags=tags or ["sharelift"],
        doc_md=__doc__,
    )
    def migration() -> None:
        @task
        def check_addresses() -> dict[str, Any]:
            ctx = get_current_context()
            return t.check_addresses(dict(ctx["params"]), ctx["run_id"])

        @task
        def scan(job: dict[str, Any]) -> dict[str, Any]:
            ctx = get_current_context()
            dag_run = ctx["dag_run"]
            backfill = None
            if str(getattr(dag_run, "run_type", "")).lower().endswith("backfill"):
                backfill = (ctx.get("data_interval_start"), ctx.get("data_interval_end"))
            return t.scan_step(
                job,
                ctx["run_id"],
                dag_id=dag_id,
                params=dict(ctx["params"]),
                backfill_window=backfill,
            )

        @task
        def partition(job: dict[str, Any], _scan: dict[str, Any]) -> list[dict[str, Any]]:
            return t.partition_step(job, get_current_context()["run_id"])

        @task(
            pool=POOL_NAME,
            max_active_tis_per_dagrun=POOL_SLOTS,
            retries=2,
            map_index_template="subtask {{ subtask_label }}",
        )
        def copy(job: dict[str, Any], subtask: dict[str, Any]) -> dict[str, int]:
            ctx = get_current_context()
            ctx["subtask_label"] = f"{subtask['index']} ({subtask['files']} files)"  # type: ignore[typeddict-unknown-key]
            return t.copy_step(job, ctx["run_id"], subtask)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def verify(job: dict[str, Any]) -> dict[str, int]:
            return t.verify_step(job, get_current_context()["run_id"])

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def report(
            job: dict[str, Any],
            scan_summary: dict[str, Any] | None,
            verify_result: dict[str, int] | None,
        ) -> dict[str, Any]:
            return t.report_step(job, get_current_context()["run_id"], scan_summary, verify_result)

        @task(task_id="queue_next_run", trigger_rule=TriggerRule.ALL_DONE)
        def queue_next_run() -> None:
            import logging

            params = dict(get_current_context()["params"])
            queue_next_incremental_run(dag_id, params, logging.getLogger("sharelift"))

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def finish(report_result: dict[str, Any] | None) -> dict[str, Any]:
            return t.finish_step(report_result)

        job = check_addresses()
        scanned = scan(job)
        subtasks = partition(job, scanned)
        copied = copy.partial(job=job).expand(subtask=subtasks)
        verified = verify(job)
        copied >> verified
        reported = report(job, scanned, verified)
        reported >> queue_next_run() >> finish(reported)

    return migration()
